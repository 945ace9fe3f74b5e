"""Relations an attacker knows between the populations of a release (and between releases).

Each population's tables are additive on their own (lattice.py); across populations the definitions give
inequalities instead: every new presentation of a month is in treatment that month, so the new
presentations of any cell both populations publish are at most the adults in treatment of that cell
(sdcTable and tau-argus protect one table set at a time; linking sets by such relations is what lets a
pattern safe population by population be attacked, issue 13). A relation may carry a *slack*: when the
definitions imply it only up to a number of clients the pipeline knows (and never publishes), the
attacker is given that number, which can only make them stronger than a real one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

from treatment_marts.disclosure.tables import LinearRelation, MartTable, cell_key, scoped_key


def table_keys(tables: Iterable[MartTable]) -> set[str]:
    """Every canonical cell key the tables publish (margins included)."""
    keys: set[str] = set()
    for table in tables:
        dims = list(table.dimensions)
        frame = table.frame
        for period, row in zip(
            frame["period"].astype(str), frame[dims].astype(str).itertuples(index=False, name=None), strict=True
        ):
            keys.add(cell_key(period, dict(zip(dims, row, strict=True))))
    return keys


def subset_relations(
    subset: str,
    subset_tables: Sequence[MartTable],
    superset: str,
    superset_tables: Sequence[MartTable],
    *,
    slack: float = 0.0,
) -> list[LinearRelation]:
    """``subset[key] - superset[key] <= slack`` for every cell key both populations publish (in key
    order): the clients of a subset population counted in a cell are among the superset's clients of the
    same cell, up to ``slack`` clients counted in another cell of the superset."""
    shared = sorted(table_keys(subset_tables) & table_keys(superset_tables))
    return [
        LinearRelation(((scoped_key(subset, key), 1.0), (scoped_key(superset, key), -1.0)), upper=float(slack))
        for key in shared
    ]


def cell_values(tables: Iterable[MartTable], scope: str | None = None) -> dict[str, float]:
    """Every cell's true count by (scoped) canonical key: ``count``, or ``true_count`` where the count is
    hidden (NaN where neither is known)."""
    values: dict[str, float] = {}
    for table in tables:
        dims = list(table.dimensions)
        frame = table.frame
        count = frame["count"].astype("Float64")
        if "true_count" in frame.columns:
            count = count.fillna(frame["true_count"].astype("Float64"))
        for period, row, value in zip(
            frame["period"].astype(str),
            frame[dims].astype(str).itertuples(index=False, name=None),
            count.to_numpy(dtype=float, na_value=float("nan")),
            strict=True,
        ):
            values[scoped_key(scope, cell_key(period, dict(zip(dims, row, strict=True))))] = float(value)
    return values


def revision_relations(
    scope: str,
    tables: Sequence[MartTable],
    earlier_scope: str,
    earlier_tables: Sequence[MartTable],
    *,
    by: str = "area",
) -> list[LinearRelation]:
    """What an attacker holding both releases of a period knows of each cell both publish:
    ``|new - old| <= r``, per level of ``by`` (the area), where r is the most any cell of that area moved
    between the releases (0 for an area whose input did not change: the same cell in both).

    Why r from the cells: the attacker of issue 13 knows "how few records changed" in an area; r records
    changed move no cell by more than r, so the largest change of a cell is at most the records changed,
    and giving the attacker that bound makes them at least as strong as one who knows the true number.
    Cells without ``by`` (national margins) are a group of their own, with r the most any national cell
    moved: they are not the sums of the area cells (a national cell counts a person once, however many
    areas treat them; issue 18). ``earlier_tables`` carry ``true_count`` for their
    hidden cells (from the restricted suppression log); the bound is known to the pipeline, never
    published."""
    new, old = cell_values(tables), cell_values(earlier_tables)
    shared = sorted(set(new) & set(old))
    if any(math.isnan(new[key]) or math.isnan(old[key]) for key in shared):
        raise ValueError("revision relations need every cell's true count (true_count for hidden cells)")
    level = {key: json.loads(key).get(by) for key in shared}
    moved: dict[str | None, float] = {}
    for key in shared:
        moved[level[key]] = max(moved.get(level[key], 0.0), abs(new[key] - old[key]))
    return [
        LinearRelation(
            ((scoped_key(scope, key), 1.0), (scoped_key(earlier_scope, key), -1.0)),
            lower=-moved[level[key]],
            upper=moved[level[key]],
        )
        for key in shared
    ]


def published_through(relations: Iterable[LinearRelation], published: set[str]) -> set[str]:
    """Keys that a relation holds equal to a cell in ``published`` (scoped keys of an earlier release's
    published cells): a revision's cell of an unchanged area, whose value is public already. Pinning such
    a cell discloses nothing new, and hiding it protects nothing."""
    out: set[str] = set()
    for relation in relations:
        if len(relation.terms) == 2 and relation.lower == relation.upper == 0:
            (a, _), (b, _) = relation.terms
            if b in published and a not in published:
                out.add(a)
            elif a in published and b not in published:
                out.add(b)
    return out


def upper_bound_relations(
    scope: str, period: str, bounds: Iterable[tuple[dict[str, str], float]], *, slack: float = 0.0
) -> list[LinearRelation]:
    """``cell <= bound + slack`` for cells of ``scope`` named by their labels (Totals allowed): what an
    attacker learns of a cell from other releases' published counts, e.g. the completions of a window are
    at most the successful exits its months published (marts/completion_bounds.py)."""
    return [
        LinearRelation(((scoped_key(scope, cell_key(period, labels)), 1.0),), upper=float(bound) + float(slack))
        for labels, bound in bounds
    ]


def _labels_of(key: str) -> str:
    """A canonical key without its period: the same cell of another release or window."""
    labels = json.loads(key)
    labels.pop("period", None)
    return json.dumps(labels, sort_keys=True, ensure_ascii=False)


def linked_relations(
    terms: Sequence[tuple[str, Sequence[MartTable], float]],
    *,
    lower: float = -math.inf,
    upper: float = math.inf,
) -> list[LinearRelation]:
    """``lower <= sum(coefficient * cell) <= upper`` for every cell (by its labels, whatever its period)
    that all the term systems publish, in label order. Each term is (scope, tables, coefficient); its
    tables may be of another release (another period in their keys). How windows relate across releases
    (marts/windows.py): a window is at least each month it covers (terms window +1, month -1, lower
    -slack), at most the sum of its months (upper slack), and a financial year to date at least the one
    before it."""
    by_labels: list[dict[str, str]] = []
    for _, tables, _ in terms:
        by_labels.append({_labels_of(key): key for key in table_keys(tables)})
    shared = set(by_labels[0]).intersection(*by_labels[1:]) if by_labels else set()
    relations = []
    for labels in sorted(shared):
        cells: dict[str, float] = {}
        for (scope, _, coefficient), keys in zip(terms, by_labels, strict=True):
            name = scoped_key(scope, keys[labels])
            cells[name] = cells.get(name, 0.0) + coefficient
        relations.append(LinearRelation(tuple(cells.items()), lower=lower, upper=upper))
    return relations


def widened_to(relations: Iterable[LinearRelation], values: dict[str, float]) -> list[LinearRelation]:
    """The relations with bounds widened just enough that ``values`` (scoped key -> the count each release
    published, or its true count where hidden) satisfy them. A revised month makes an earlier release's
    window disagree with the months as they now are; the attacker then knows the relation only up to how
    far the revision moved it, as `revision_relations` bounds a revision by the most a cell moved."""
    out = []
    for relation in relations:
        total = sum(c * values[key] for key, c in relation.terms)
        out.append(LinearRelation(relation.terms, lower=min(relation.lower, total), upper=max(relation.upper, total)))
    return out
