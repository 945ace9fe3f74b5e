"""Aggregate protection: primary (K3) and secondary (complementary) cell suppression over linked tables.

Vocabulary follows tau-argus / sdcMicro. A *cell* is one row of a mart. Tables of the same population are
*linked*: a cell that two tables both publish (e.g. {area=X, sex=Total} in area x sex and
{area=X, substance=Total} in area x substance) is one variable, identified by its *canonical key*: the
non-Total dimensions and their labels. Every table is additive along every dimension, which gives the
*relations* an attacker can use: the members of a line sum to its total.

Primary suppression hides every count in 1..k (and zeros, if configured). Secondary suppression then
makes every relation safe: no relation may hold exactly one suppressed cell, and the suppressed cells
of a relation with a published total must hold enough individuals that none of them can be shown to be
k or fewer (the *protection interval*: upper bound > k). Complementary cells are chosen to hide the fewest
individuals, inner cells before margins, the grand total last, with deterministic tie-breaks. The
independent audit (audit.py) then solves the attacker's linear programme; cells it can still pin are
fixed by further suppression until it finds none. Finally the clean-up (cleanup.py) publishes complementary
cells the finished pattern no longer needs, within a budget of audits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from treatment_marts.core.labels import TOTAL

logger = logging.getLogger(__name__)
Zeros = Literal["show", "suppress"]


@dataclass(frozen=True)
class MartTable:
    """One published table in mart format: period, dimension columns, count (Int64), status."""

    name: str
    dimensions: tuple[str, ...]
    frame: pd.DataFrame


@dataclass
class ProtectionResult:
    tables: list[MartTable]
    log: pd.DataFrame
    information_loss: pd.DataFrame


class ProtectionError(RuntimeError):
    """The tables cannot be protected (inconsistent linked tables, or no safe suppression pattern found)."""


def cell_key(period: str, labels: dict[str, str]) -> str:
    """Canonical key of a cell: its period and non-Total dimension labels, independent of the table."""
    inner = {d: v for d, v in sorted(labels.items()) if v != TOTAL}
    return json.dumps({"period": period, **inner}, sort_keys=True, ensure_ascii=False)


def table_cell(labels: dict[str, str]) -> str:
    """Stable JSON of a cell within its table (every dimension, Totals included)."""
    return json.dumps(labels, sort_keys=True, ensure_ascii=False)


@dataclass
class _Lattice:
    """All distinct cells of a set of linked tables and the additive relations among them."""

    keys: list[str]
    counts: np.ndarray  # true counts, int64
    totals_in_key: np.ndarray  # how many dimensions of the widest table are Total (margin depth)
    relations: list[tuple[int, np.ndarray]]  # (total cell, member cells)
    rows: list[np.ndarray]  # per table: cell index of each row
    relations_of: list[list[int]]  # cell -> relations it takes part in


def _build_lattice(  # noqa: C901 - split by the disclosure-core refactor
    tables: Sequence[MartTable],
) -> _Lattice:
    index: dict[str, int] = {}
    counts: list[int] = []
    depth: list[int] = []
    rows: list[np.ndarray] = []
    for table in tables:
        frame = table.frame
        if frame["count"].isna().any():
            raise ProtectionError(f"table {table.name}: counts must be complete before protection")
        dims = list(table.dimensions)
        periods = frame["period"].astype(str).to_numpy()
        labels = frame[dims].astype(str).to_numpy()
        values = frame["count"].astype("int64").to_numpy()
        row_cells = np.empty(len(frame), dtype=np.int64)
        for i in range(len(frame)):
            key = cell_key(periods[i], dict(zip(dims, labels[i], strict=False)))
            j = index.get(key)
            if j is None:
                j = index[key] = len(counts)
                counts.append(int(values[i]))
                depth.append(int((labels[i] == TOTAL).sum()))
            elif counts[j] != values[i]:
                raise ProtectionError(
                    f"linked tables disagree on cell {key}: {table.name} has a different count; "
                    "tables protected together must describe the same population"
                )
            row_cells[i] = j
        rows.append(row_cells)

    seen: set[tuple[int, tuple[int, ...]]] = set()
    relations: list[tuple[int, np.ndarray]] = []
    for table, row_cells in zip(tables, rows, strict=False):
        frame = table.frame
        dims = list(table.dimensions)
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
                    relations.append((int(totals[0]), np.array(signature[1], dtype=np.int64)))
    relations_of: list[list[int]] = [[] for _ in counts]
    for r, (total, members) in enumerate(relations):
        relations_of[total].append(r)
        for m in members:
            relations_of[int(m)].append(r)
    keys = sorted(index, key=index.__getitem__)
    return _Lattice(keys, np.asarray(counts, dtype=np.int64), np.asarray(depth), relations, rows, relations_of)


def _grand_total(lattice: _Lattice) -> np.ndarray:
    """Cells whose key has no inner dimension: the grand total(s)."""
    return np.array([len(json.loads(k)) == 1 for k in lattice.keys])


class _Suppressor:
    def __init__(self, lattice: _Lattice, k: int, zeros: Zeros) -> None:
        self.lattice = lattice
        self.k = k
        self.lower = 1 if zeros == "show" else 0  # what the attacker knows of any suppressed cell
        counts = lattice.counts
        self.primary = (counts >= 1) & (counts <= k) if zeros == "show" else (counts <= k)
        self.suppressed = self.primary.copy()
        self.carried = np.zeros(len(counts), dtype=bool)  # suppressed in an earlier release: never released
        self.forbidden = np.zeros(len(counts), dtype=bool)  # the clean-up's swap move bars a cell it removed
        self.reason: dict[int, str] = {}
        grand = _grand_total(lattice)
        self.grand = grand
        # Preference for complementary cells: never the grand total if avoidable; inner cells before
        # margins (a suppressed margin is shared by every linked table and cascades through all of them);
        # then the fewest individuals; then the key (deterministic).
        self.rank = np.lexsort((np.asarray(lattice.keys), counts, lattice.totals_in_key, grand.astype(int)))
        self.position = np.empty(len(counts), dtype=np.int64)
        self.position[self.rank] = np.arange(len(counts))

    def _relation_safe(self, r: int) -> bool:
        total, members = self.lattice.relations[r]
        sup_members = members[self.suppressed[members]]
        m = len(sup_members) + int(self.suppressed[total])
        if m == 0:
            return True
        if m == 1:
            return False
        if self.suppressed[total]:
            return True
        held = int(self.lattice.counts[sup_members].sum())
        return held - (len(sup_members) - 1) * self.lower > self.k

    def _candidates(self, r: int) -> np.ndarray:
        """Cells that could be suppressed to protect relation r, cheapest first; a grand total only as a last resort."""
        total, members = self.lattice.relations[r]
        cells = np.append(members, total)
        eligible = cells[~self.suppressed[cells] & ~self.forbidden[cells] & (self.lattice.counts[cells] > 0)]
        preferred = eligible[~self.grand[eligible]]
        chosen = preferred if len(preferred) else eligible
        return chosen[np.argsort(self.position[chosen])]

    def _opens(self, cell: int, r: int) -> int:
        """How many other relations of ``cell`` would hold a lone suppressed cell if it were suppressed."""
        count = 0
        for other in self.lattice.relations_of[cell]:
            if other == r:
                continue
            total, members = self.lattice.relations[other]
            if not self.suppressed[members].any() and not self.suppressed[total]:
                count += 1
        return count

    def _closing(self, candidates: np.ndarray, r: int) -> list[int]:
        """Candidates that close the pattern first (a cell whose other lines already hold a suppressed cell
        completes a rectangle instead of opening new lines to protect, as in the hypercube method), then the
        usual preference order; keeps the result deterministic."""
        return sorted((int(c) for c in candidates), key=lambda c: (self._opens(c, r), self.position[c]))

    def _repair(self, r: int, why: str) -> list[int]:
        """Suppress the cheapest cells that make relation r safe; returns the cells added."""
        added: list[int] = []
        while not self._relation_safe(r):
            total, members = self.lattice.relations[r]
            candidates = self._candidates(r)
            if len(candidates) == 0:
                raise ProtectionError(f"no cell left to protect relation around {self.lattice.keys[total]}")
            sup_members = members[self.suppressed[members]]
            held = int(self.lattice.counts[sup_members].sum())
            needed = self.k + 1 + len(sup_members) * self.lower - held
            choice = self._closing(candidates, r)[0]
            if not self.suppressed[total] and len(sup_members) >= 1:
                inner = [c for c in self._closing(candidates, r) if c != total]
                enough = [c for c in inner if self.lattice.counts[c] >= needed]
                choice = enough[0] if enough else (max(inner, key=lambda c: self.lattice.counts[c]) if inner else total)
            self.suppressed[choice] = True
            self.reason.setdefault(int(choice), why)
            added.append(int(choice))
        return added

    def close_relations(self) -> None:
        pending = sorted({r for c in np.flatnonzero(self.suppressed) for r in self.lattice.relations_of[c]})
        queue = list(pending)
        while queue:
            r = queue.pop()
            if self._relation_safe(r):
                continue
            total = self.lattice.relations[r][0]
            for cell in self._repair(r, f"complementary: protects the line totalled by {self.lattice.keys[total]}"):
                queue.extend(self.lattice.relations_of[cell])

    def widen(self, cell: int, max_depth: int = 64) -> bool:
        """The audit could pin ``cell``: suppress the cheapest eligible cell in the nearest relation around it.

        Returns False when nothing is left to suppress around it: cells exposed in the same audit round are
        widened one after another, and an earlier widening may already have protected this one, so only the
        next audit can tell whether it is really stuck.

        Nearest first: the cell's own relations, then those of the suppressed cells they link to (the
        attacker's equations chain through them), so protection spreads only as far as it must.
        """
        visited = {cell}
        frontier = [cell]
        last_resort: int | None = None  # a grand total, used only if nothing else is found
        choice: int | None = None
        for _ in range(max_depth):
            relations = sorted({r for c in frontier for r in self.lattice.relations_of[c]})
            options = [int(c) for r in relations for c in self._candidates(r)[:1]]
            ordinary = [c for c in options if not self.grand[c]]
            if ordinary:
                choice = min(ordinary, key=lambda c: self.position[c])
                break
            if options and last_resort is None:
                last_resort = options[0]
            linked = {int(c) for r in relations for c in (*self.lattice.relations[r][1], self.lattice.relations[r][0])}
            frontier = [c for c in linked if self.suppressed[c] and c not in visited]
            visited.update(frontier)
            if not frontier:
                break
        if choice is None and last_resort is None:
            # Everything linked to the cell is suppressed or zero: only a grand total is left to hide.
            spare = np.flatnonzero(self.grand & ~self.suppressed & ~self.forbidden & (self.lattice.counts > 0))
            last_resort = int(spare[0]) if len(spare) else None
        choice = choice if choice is not None else last_resort
        if choice is None:
            return False
        self.suppressed[choice] = True
        self.reason.setdefault(choice, f"complementary: widens the protection interval of {self.lattice.keys[cell]}")
        self.close_relations()
        return True


CARRIED_RULE = "carried forward: suppressed in an earlier release of this period"
DEFAULT_CLEANUP_AUDITS = 20  # rules.yaml disclosure.cleanup_audits ships the same value

Exposure = Callable[[np.ndarray], list[int]]


def _exposure(
    tables: Sequence[MartTable], lattice: _Lattice, k: int, zeros: Zeros, carried: Collection[str] = ()
) -> Exposure:
    """The attacker's verdict on a suppression mask: cells whose interval pins them, in key order."""
    from treatment_marts.disclosure.audit import AttackModel  # the attacker's LP, derived independently of this module

    attacker = AttackModel(tables)
    index = {key: i for i, key in enumerate(lattice.keys)}
    truth = pd.Series(lattice.counts.astype(float), index=lattice.keys)

    def exposed(suppressed: np.ndarray) -> list[int]:
        published = truth.where(~pd.Series(suppressed, index=lattice.keys))
        intervals = attacker.intervals(published, k=k, zeros=zeros, reference=truth, carried=carried, verdict_only=True)
        return [index[key] for key in sorted(set(intervals.loc[intervals["disclosed"], "key"]))]

    return exposed


def _settle(suppressor: _Suppressor, exposed: Exposure, max_rounds: int) -> int:
    """Widen around every cell the attacker can pin until it pins none; returns the audits run."""
    for rounds in range(1, max_rounds + 1):
        cells = exposed(suppressor.suppressed)
        if not cells:
            return rounds
        stuck = [suppressor.lattice.keys[c] for c in cells if not suppressor.widen(c)]
        if len(stuck) == len(cells):
            raise ProtectionError(
                f"cell {stuck[0]} cannot be protected: every linked cell is already suppressed or zero; "
                "publish coarser categories (rules.yaml) or fewer dimensions for this population (marts.yaml)"
            )
    raise ProtectionError(f"no safe suppression pattern found in {max_rounds} rounds")


def protect(
    tables: Sequence[MartTable],
    *,
    k: int = 3,
    zeros: Zeros = "show",
    max_rounds: int = 200,
    carried: Collection[str] = (),
    cleanup_audits: int = DEFAULT_CLEANUP_AUDITS,
) -> ProtectionResult:
    """Suppress cells of linked tables so no suppressed value is recoverable (checked by the audit).

    ``carried``: canonical keys suppressed in an earlier release of the same period (a revision). They stay
    suppressed, so differencing a revised release against the earlier one cannot expose a hidden cell,
    even when a cell is now zero (the attacker, who may hold the earlier release, then knows only >= 0).
    Keys not in these tables (another population, a changed rule set) are ignored.
    ``cleanup_audits``: the clean-up's budget of audits (cleanup.py; 0 keeps the greedy pattern as it is).
    """
    if not tables:
        return ProtectionResult([], _empty_log(), _loss([], _empty_log()))
    lattice = _build_lattice(tables)
    suppressor = _Suppressor(lattice, k, zeros)
    if carried:
        wanted = set(carried)
        for cell in (i for i, key in enumerate(lattice.keys) if key in wanted):
            suppressor.carried[cell] = True
            if not suppressor.suppressed[cell]:
                suppressor.suppressed[cell] = True
                suppressor.reason[cell] = CARRIED_RULE
    suppressor.close_relations()
    exposed = _exposure(tables, lattice, k, zeros, carried)
    _settle(suppressor, exposed, max_rounds)
    if cleanup_audits > 0:
        from treatment_marts.disclosure.cleanup import clean_up

        greedy = suppressor.suppressed.copy(), dict(suppressor.reason)
        clean_up(suppressor, cleanup_audits)
        if exposed(suppressor.suppressed):  # the independent attacker has the last word
            logger.warning("clean-up pattern failed the audit; keeping the greedy pattern")
            suppressor.suppressed, suppressor.reason = greedy
    protected = _apply(tables, lattice, suppressor.suppressed)
    log = _log(tables, lattice, suppressor)
    return ProtectionResult(protected, log, _loss(protected, log))


def _apply(tables: Sequence[MartTable], lattice: _Lattice, suppressed: np.ndarray) -> list[MartTable]:
    out = []
    for table, row_cells in zip(tables, lattice.rows, strict=False):
        frame = table.frame.copy()
        hidden = suppressed[row_cells]
        frame["count"] = frame["count"].astype("Int64").mask(hidden)
        frame["status"] = pd.array(np.where(hidden, "c", None), dtype="string")
        out.append(MartTable(table.name, table.dimensions, frame))
    return out


def _empty_log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mart": pd.Series(dtype="string"),
            "period": pd.Series(dtype="string"),
            "cell": pd.Series(dtype="string"),
            "key": pd.Series(dtype="string"),
            "true_count": pd.Series(dtype="Int64"),
            "suppression": pd.Series(dtype="string"),
            "rule": pd.Series(dtype="string"),
        }
    )


def _log(tables: Sequence[MartTable], lattice: _Lattice, suppressor: _Suppressor) -> pd.DataFrame:
    records = []
    for table, row_cells in zip(tables, lattice.rows, strict=False):
        dims = list(table.dimensions)
        frame = table.frame.reset_index(drop=True)
        for i in np.flatnonzero(suppressor.suppressed[row_cells]):
            cell = int(row_cells[i])
            primary = bool(suppressor.primary[cell])
            records.append(
                {
                    "mart": table.name,
                    "period": str(frame.at[i, "period"]),
                    "cell": table_cell({d: str(frame.at[i, d]) for d in dims}),
                    "key": lattice.keys[cell],
                    "true_count": int(lattice.counts[cell]),
                    "suppression": "primary" if primary else "secondary",
                    "rule": f"count<={suppressor.k}" if primary else suppressor.reason.get(cell, "complementary"),
                }
            )
    if not records:
        return _empty_log()
    log = pd.DataFrame.from_records(records)
    return log.astype(
        {
            "mart": "string",
            "period": "string",
            "cell": "string",
            "key": "string",
            "true_count": "Int64",
            "suppression": "string",
            "rule": "string",
        }
    )


def _loss(tables: Sequence[MartTable], log: pd.DataFrame) -> pd.DataFrame:
    """Information loss per mart: suppressed cells, and individuals hidden in inner (non-margin) cells."""
    rows = []
    for table in tables:
        frame = table.frame
        inner = ~(frame[list(table.dimensions)] == TOTAL).any(axis=1)
        mine = log[log["mart"] == table.name] if not log.empty else log
        inner_cells = (
            set(
                frame.loc[inner].apply(
                    lambda r, dims=table.dimensions: table_cell({d: str(r[d]) for d in dims}), axis=1
                )
            )
            if len(mine)
            else set()
        )
        hidden = int(mine.loc[mine["cell"].isin(inner_cells), "true_count"].sum()) if len(mine) else 0
        population = int(frame.loc[inner, "count"].fillna(0).sum()) + hidden
        rows.append(
            {
                "mart": table.name,
                "cells": len(frame),
                "suppressed_cells": int(frame["status"].eq("c").sum()),
                "primary": int((mine["suppression"] == "primary").sum()) if len(mine) else 0,
                "secondary": int((mine["suppression"] == "secondary").sum()) if len(mine) else 0,
                "individuals_hidden": hidden,
                "share_hidden": round(hidden / population, 4) if population else 0.0,
            }
        )
    return pd.DataFrame(rows)
