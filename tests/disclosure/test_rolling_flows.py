"""Consecutive rolling windows of a flow are differenced (issues 13, 15; fixed in 0.7.0).

A flow counts an episode in one month only, so a rolling window of new presentations is its months summed
(no client presents twice here), and two consecutive windows differ by exactly the month that joined less
the month that left. Here the windows are three months long (the pipeline's are twelve; the algebra is the
same): April's small cell is withheld in April, the April-June window is published in full at June, and
the July release publishes July and the May-July window. An attacker holding all of them pins April's
small cell as window(June) - window(July) + July.

0.6.0 related a rolling window to its months only by "at least each month, at most their sum" and to the
previous window by "at most the previous one plus the new month": protected with those, the July window
is published in full and the attacker recovers April. With the flow relations pipeline/windows now emits
("at least the months summed less the repeats", and the previous window tied to its own months, the month
that left included), the July window protects April.
"""

from __future__ import annotations

import numpy as np
from test_suppress import cube

from treatment_marts.disclosure.audit import AuditResult, audit
from treatment_marts.disclosure.protect import protect, protect_release
from treatment_marts.disclosure.relations import linked_relations
from treatment_marts.disclosure.tables import LinearRelation, MartTable

DIMS = {"area": ["A", "B"], "sex": ["F", "M"]}
MONTHS = {
    "2024-04": np.array([[2, 5], [6, 6]]),  # A / F small: withheld in April, with its complements
    "2024-05": np.array([[3, 5], [6, 6]]),
    "2024-06": np.array([[2, 6], [5, 6]]),
    "2024-07": np.array([[5, 5], [6, 7]]),  # nothing small: July publishes every cell
}
JUNE_WINDOW, JULY_WINDOW = "new_presentations.2024-04..2024-06@2024-06", "new_presentations.2024-05..2024-07"
JULY = "new_presentations"


def month_scope(period: str) -> str:
    return f"new_presentations@{period}"


def held(published: MartTable, truth: MartTable | None = None) -> list[MartTable]:
    """A published table as a later release holds it (context): its cells and, for the suppressor's
    feasible point, the true counts of the withheld ones."""
    true_count = (truth or published).frame["count"]
    return [MartTable(published.name, published.dimensions, published.frame.assign(true_count=true_count))]


def earlier_releases() -> dict[str, list[MartTable]]:
    """April to June as published: each month protected alone, the April-June window in full (safe:
    April's cell is one of three unknowns summed)."""
    context = {}
    for period in ("2024-04", "2024-05", "2024-06"):
        truth = cube("m", DIMS, MONTHS[period], period=period)
        context[month_scope(period)] = held(protect([truth]).tables[0], truth)
    summed = sum(MONTHS[p] for p in ("2024-04", "2024-05", "2024-06"))
    context[JUNE_WINDOW] = held(cube("w", DIMS, summed, period="2024-06"))
    return context


def window_to_months(
    window: str, tables: list[MartTable], months: list[tuple[str, list[MartTable]]], *, flow: bool
) -> list[LinearRelation]:
    """At least each month, at most their sum, and for a flow at least their sum (no repeats: slack 0)."""
    out = []
    for scope, month in months:
        out += linked_relations([(window, tables, 1.0), (scope, month, -1.0)], lower=0)
    summed = [(window, tables, 1.0)] + [(scope, month, -1.0) for scope, month in months]
    out += linked_relations(summed, upper=0)
    if flow:
        out += linked_relations(summed, lower=0)
    return out


def relations(
    context: dict[str, list[MartTable]], july: list[MartTable], window: list[MartTable], *, flow: bool
) -> list[LinearRelation]:
    """The relations of the July release: 0.6.0's (``flow=False``) or 0.7.0's."""
    months = [(month_scope(p), context[month_scope(p)]) for p in ("2024-05", "2024-06")] + [(JULY, july)]
    out = window_to_months(JULY_WINDOW, window, months, flow=flow)
    out += linked_relations(
        [(JULY_WINDOW, window, 1.0), (JUNE_WINDOW, context[JUNE_WINDOW], -1.0), (JULY, july, -1.0)], upper=0
    )
    if flow:  # the previous window with its own months, April (the month that left) included
        before = [(month_scope(p), context[month_scope(p)]) for p in ("2024-04", "2024-05", "2024-06")]
        out += window_to_months(JUNE_WINDOW, context[JUNE_WINDOW], before, flow=True)
    return out


def attacker(july: MartTable, window: MartTable, context: dict[str, list[MartTable]]) -> AuditResult:
    """One attacker holding every release and knowing the flow sums."""
    public = [
        (s, MartTable(t.name, t.dimensions, t.frame.drop(columns=["true_count"])))
        for s, ts in context.items()
        for t in ts
    ]
    known = relations(context, [july], [window], flow=True)
    return audit(
        [july, window, *[t for _, t in public]], scopes=[JULY, JULY_WINDOW, *[s for s, _ in public]], relations=known
    )


def protected_july(flow: bool) -> tuple[MartTable, MartTable, dict[str, list[MartTable]]]:
    context = earlier_releases()
    july = protect([cube("m", DIMS, MONTHS["2024-07"], period="2024-07")]).tables[0]
    window = cube("w", DIMS, sum(MONTHS[p] for p in ("2024-05", "2024-06", "2024-07")), period="2024-07")
    with_july = {**context, JULY: held(july)}
    result = protect_release(
        {JULY_WINDOW: [window]}, relations=relations(context, [july], [window], flow=flow), context=with_july
    )
    return july, result[JULY_WINDOW].tables[0], context


def test_the_earlier_releases_alone_are_safe() -> None:
    context = earlier_releases()
    assert context[month_scope("2024-04")][0].frame["count"].isna().any()
    public = [
        (s, MartTable(t.name, t.dimensions, t.frame.drop(columns=["true_count"])))
        for s, ts in context.items()
        for t in ts
    ]
    before = [(month_scope(p), context[month_scope(p)]) for p in ("2024-04", "2024-05", "2024-06")]
    known = window_to_months(JUNE_WINDOW, context[JUNE_WINDOW], before, flow=True)
    assert audit([t for _, t in public], scopes=[s for s, _ in public], relations=known).passed


def test_july_protected_with_the_relations_of_0_6_0_gives_april_back() -> None:
    july, window, context = protected_july(flow=False)
    assert window.frame["count"].notna().all()  # nothing in the July window looked at risk
    result = attacker(july, window, context)
    pinned = result.intervals[result.intervals["disclosed"]]
    april_small = pinned[pinned["key"].str.endswith('{"area": "A", "period": "2024-04", "sex": "F"}')]
    assert april_small[["lower", "upper"]].astype(int).values.tolist() == [[2, 2]]


def test_july_protected_with_the_flow_relations_discloses_nothing() -> None:
    july, window, context = protected_july(flow=True)
    assert window.frame["count"].isna().any()  # the July window withholds what would give April back
    assert july.frame["count"].notna().all()  # the month keeps the pattern it has alone
    assert attacker(july, window, context).passed
