"""A window published beside its months can be differenced (issue 15, "What to build" 3 and 4).

Clients who enter and leave inside a window (short episodes) are in exactly one of its months, so the
year to date is the sum of its months, and the attacker knows it from the definitions: a window is at
least each month it covers and at most their sum. With the April release public, a May month table whose
small cells are suppressed (a safe pattern on its own) and a year to date April-May published in full,
the attacker pins May's hidden cells. Protected together with the earlier release (its cells constants)
and those relations, the same release leaves the attacker nothing.
"""

from __future__ import annotations

import numpy as np
from test_suppress import cube

from treatment_marts.disclosure.audit import AuditResult, audit
from treatment_marts.disclosure.protect import protect, protect_release
from treatment_marts.disclosure.relations import linked_relations
from treatment_marts.disclosure.tables import LinearRelation, MartTable

DIMS = {"area": ["A", "B"], "sex": ["F", "M"]}
APRIL = np.array([[5, 5], [6, 6]])
MAY = np.array([[2, 2], [7, 8]])  # area A's May cells are small: primary suppressed
MONTH, WINDOW, EARLIER = "in_treatment", "in_treatment.2024-04..2024-05", "in_treatment@2024-04"


def releases() -> tuple[list[MartTable], MartTable, MartTable, list[LinearRelation]]:
    april = protect([cube("m", DIMS, APRIL, period="2024-04")]).tables
    held = [MartTable(t.name, t.dimensions, t.frame.assign(true_count=t.frame["count"])) for t in april]
    may = cube("m", DIMS, MAY, period="2024-05")
    to_date = cube("fytd", DIMS, APRIL + MAY, period="2024-05")  # every client in one month only
    relations = (
        linked_relations([(WINDOW, [to_date], 1.0), (EARLIER, held, -1.0)], lower=0)
        + linked_relations([(WINDOW, [to_date], 1.0), (MONTH, [may], -1.0)], lower=0)
        + linked_relations([(WINDOW, [to_date], 1.0), (EARLIER, held, -1.0), (MONTH, [may], -1.0)], upper=0)
    )
    return held, may, to_date, relations


def attacker(released: list[MartTable], held: list[MartTable], relations: list[LinearRelation]) -> AuditResult:
    """One attacker holding both releases: the April cells as published, May's month and window."""
    public = [MartTable(t.name, t.dimensions, t.frame.drop(columns=["true_count"])) for t in held]
    return audit(
        released + public,
        scopes=[MONTH, WINDOW] + [EARLIER] * len(held),
        relations=relations,
        report=range(len(released)),
    )


def test_a_month_protected_alone_is_read_off_the_year_to_date() -> None:
    held, may, to_date, relations = releases()
    month_alone = protect([may]).tables[0]
    window_alone = protect([to_date]).tables[0]
    assert month_alone.frame["count"].isna().sum() >= 2  # K3 and its complement: safe on its own ...
    assert window_alone.frame["count"].notna().all()  # ... and the window has no small cell
    result = attacker([month_alone, window_alone], held, relations)
    pinned = result.intervals[result.intervals["disclosed"]]
    assert not result.passed
    # ... but every cell hidden in May is pinned (A's small cells are the window minus April: 2 exactly)
    assert (pinned["lower"] == pinned["upper"]).all()
    small = pinned[pinned["key"].str.contains('"area": "A"') & pinned["key"].str.contains('"sex": "F"')]
    assert small["lower"].astype(int).tolist() == [2]


def test_the_month_and_window_protected_with_the_earlier_release_disclose_nothing() -> None:
    held, may, to_date, relations = releases()
    protected = protect_release({MONTH: [may], WINDOW: [to_date]}, relations=relations, context={EARLIER: held})
    released = [protected[MONTH].tables[0], protected[WINDOW].tables[0]]
    assert attacker(released, held, relations).passed
    # the earlier release is never changed: protection comes from this release's cells (the month's or the
    # window's, whichever the repair finds cheaper)
    hidden = sum(int(t.frame["count"].isna().sum()) for t in released)
    assert hidden > int(protect([may]).tables[0].frame["count"].isna().sum())
    assert all(t.frame["count"].notna().all() for t in held)
