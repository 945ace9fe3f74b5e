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
