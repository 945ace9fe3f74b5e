"""The lattice of linked tables: every distinct cell once, and the additive relations among them.

Every table is additive along every dimension, which gives the *relations* an attacker can use: the
members of a line sum to its total. Cells shared by linked tables appear once (by canonical key), so a
relation in one table constrains the same variable in every other table; that is what makes a pattern
that is safe table by table unsafe across them.

One line is not an exact sum: along a dimension a table declares a distinct-count Total
(``MartTable.overlap``: the national Total of ``area`` counts a client in two areas once), the members sum
to the Total plus 0..D. The lattice keeps that line as (total, members) all the same: the suppressor and
the clean-up reason with the true counts, i.e. as an attacker who knows exactly how far each such Total
falls short of its members, which is stronger than the real one, so what they accept stays safe; the
independent audit (audit.py) holds the inequality form and has the last word.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.tables import MartTable, ProtectionError, cell_key, scoped_key


@dataclass
class Lattice:
    """All distinct cells of a set of linked tables and the additive relations among them."""

    keys: list[str]
    counts: np.ndarray  # true counts, int64
    totals_in_key: np.ndarray  # how many dimensions of the widest table are Total (margin depth)
    relations: list[tuple[int, np.ndarray]]  # (total cell, member cells)
    rows: list[np.ndarray]  # per table: cell index of each row
    relations_of: list[list[int]]  # cell -> relations it takes part in

    def grand_totals(self) -> np.ndarray:
        """Cells whose key has no inner dimension: the grand total(s)."""
        return np.array([len(json.loads(k[k.index("{") :])) == 1 for k in self.keys])  # past any scope


@dataclass
class _Cells:
    index: dict[str, int]
    counts: list[int]
    depth: list[int]
    rows: list[np.ndarray]


def _index_cells(tables: Sequence[MartTable], scopes: Sequence[str | None] | None) -> _Cells:
    """One variable per canonical key (scoped by population); linked tables must agree on every shared cell."""
    cells = _Cells({}, [], [], [])
    for t, table in enumerate(tables):
        scope = None if scopes is None else scopes[t]
        frame = table.frame
        if frame["count"].isna().any():
            raise ProtectionError(f"table {table.name}: counts must be complete before protection")
        dims = list(table.dimensions)
        periods = frame["period"].astype(str).to_numpy()
        labels = frame[dims].astype(str).to_numpy()
        values = frame["count"].astype("int64").to_numpy()
        row_cells = np.empty(len(frame), dtype=np.int64)
        for i in range(len(frame)):
            key = scoped_key(scope, cell_key(periods[i], dict(zip(dims, labels[i], strict=False))))
            j = cells.index.get(key)
            if j is None:
                j = cells.index[key] = len(cells.counts)
                cells.counts.append(int(values[i]))
                cells.depth.append(int((labels[i] == TOTAL).sum()))
            elif cells.counts[j] != values[i]:
                raise ProtectionError(
                    f"linked tables disagree on cell {key}: {table.name} has a different count; "
                    "tables protected together must describe the same population"
                )
            row_cells[i] = j
        cells.rows.append(row_cells)
    return cells


def _table_relations(
    table: MartTable, row_cells: np.ndarray, seen: set[tuple[int, tuple[int, ...]]]
) -> list[tuple[int, np.ndarray]]:
    """The lines of one table along each dimension not already known from another table."""
    frame = table.frame
    dims = list(table.dimensions)
    found: list[tuple[int, np.ndarray]] = []
    for d in dims:
        others = [o for o in dims if o != d] + ["period"]
        is_total = (frame[d] == TOTAL).to_numpy()
        group_ids = frame.groupby(others, sort=False, dropna=False).ngroup().to_numpy()
        for g in np.unique(group_ids):
            in_group = group_ids == g
            totals = row_cells[in_group & is_total]
            members = row_cells[in_group & ~is_total]
            if len(totals) != 1 or len(members) == 0:
                raise ProtectionError(f"table {table.name}: dimension {d} lacks a single Total per line")
            signature = (int(totals[0]), tuple(sorted(int(m) for m in members)))
            if signature not in seen:
                seen.add(signature)
                found.append((int(totals[0]), np.array(signature[1], dtype=np.int64)))
    return found


def build_lattice(tables: Sequence[MartTable], scopes: Sequence[str | None] | None = None) -> Lattice:
    """The lattice of ``tables``; refuses incomplete tables, lines without one Total, and linked tables
    that disagree on a shared cell. ``scopes`` (one per table): the population each belongs to, so several
    populations share one lattice without sharing cells (tables.scoped_key)."""
    cells = _index_cells(tables, scopes)
    seen: set[tuple[int, tuple[int, ...]]] = set()
    relations: list[tuple[int, np.ndarray]] = []
    for table, row_cells in zip(tables, cells.rows, strict=False):
        relations.extend(_table_relations(table, row_cells, seen))
    relations_of: list[list[int]] = [[] for _ in cells.counts]
    for r, (total, members) in enumerate(relations):
        relations_of[total].append(r)
        for m in members:
            relations_of[int(m)].append(r)
    keys = sorted(cells.index, key=cells.index.__getitem__)
    return Lattice(
        keys,
        np.asarray(cells.counts, dtype=np.int64),
        np.asarray(cells.depth),
        relations,
        cells.rows,
        relations_of,
    )
