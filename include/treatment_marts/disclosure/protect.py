"""Aggregate protection of linked tables: the one place that composes the disclosure core.

primary (primary.py: K3 hides counts of 1..k) -> secondary (optimal.py, when configured: the minimum-cost
complements of every small table; secondary.py: complementary cells until every relation is safe and the
attacker pins nothing) -> clean-up (cleanup.py: publish complementary cells the
finished pattern no longer needs) -> the independent audit (audit.py) has the last word on the clean-up.
Then the mart tables, the suppression log (restricted: every hidden cell, its true count, primary or
secondary and why) and the information loss per mart.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.audit import AttackModel
from treatment_marts.disclosure.cleanup import clean_up
from treatment_marts.disclosure.lattice import Lattice, build_lattice
from treatment_marts.disclosure.optimal import Complements, choose_complements
from treatment_marts.disclosure.relations import published_through
from treatment_marts.disclosure.secondary import Exposure, Suppressor, settle
from treatment_marts.disclosure.tables import (
    LinearRelation,
    MartTable,
    ProtectionError,
    Zeros,
    cell_key,
    scoped_key,
    table_cell,
)

logger = logging.getLogger(__name__)


@dataclass
class ProtectionResult:
    """The protected tables, the suppression log (restricted) and the information loss per mart."""

    tables: list[MartTable]
    log: pd.DataFrame
    information_loss: pd.DataFrame


class PopulationNotProtected(ProtectionError):
    """No safe pattern for one population (``population``), or for the release's populations together
    (``population`` None): the pipeline names the marts and what to do."""

    def __init__(self, population: str | None, reason: str) -> None:
        self.population, self.reason = population, reason
        super().__init__(f"population {population}: {reason}" if population else reason)


CARRIED_RULE = "carried forward: suppressed in an earlier release of this period"
DEFAULT_CLEANUP_AUDITS = 20  # rules.yaml disclosure.cleanup_audits ships the same value


def audit_exposure(
    tables: Sequence[MartTable],
    lattice: Lattice,
    k: int,
    zeros: Zeros,
    carried: Collection[str] = (),
    *,
    scopes: Sequence[str | None] | None = None,
    relations: Sequence[LinearRelation] = (),
    public: Collection[str] = (),
    small_only: bool = False,
) -> Exposure:
    """The independent audit's verdict on a suppression mask (the suppressor's `Exposure`): cells whose
    interval it can pin, in key order. The audit derives its equations from the tables themselves;
    ``scopes``/``relations``: several populations in one system (audit.AttackModel), as the release audit
    sees them."""
    attacker = AttackModel(tables, scopes, relations)
    index = {key: i for i, key in enumerate(lattice.keys)}
    truth = pd.Series(lattice.counts.astype(float), index=lattice.keys)

    def exposed(suppressed: np.ndarray) -> list[int]:
        published = truth.where(~pd.Series(suppressed, index=lattice.keys))
        intervals = attacker.intervals(
            published,
            k=k,
            zeros=zeros,
            reference=truth,
            carried=carried,
            verdict_only=True,
            public=public,
            small_only=small_only,
        )
        return [index[key] for key in sorted(set(intervals.loc[intervals["disclosed"], "key"]))]

    return exposed


def protect(
    tables: Sequence[MartTable],
    *,
    k: int = 3,
    zeros: Zeros = "show",
    max_rounds: int = 200,
    carried: Collection[str] = (),
    cleanup_audits: int = DEFAULT_CLEANUP_AUDITS,
    complements: Complements = "greedy",
    a_priori: Mapping[str, str] | None = None,
) -> ProtectionResult:
    """Suppress cells of linked tables so no suppressed value is recoverable (checked by the audit).

    ``carried``: canonical keys suppressed in an earlier release of the same period (a revision). They stay
    suppressed, so differencing a revised release against the earlier one cannot expose a hidden cell,
    even when a cell is now zero (the attacker, who may hold the earlier release, then knows only >= 0).
    Keys not in these tables (another population, a changed rule set) are ignored.
    ``cleanup_audits``: the clean-up's budget of audits (cleanup.py; 0 keeps the greedy pattern as it is).
    ``complements``: "optimal" starts from the minimum-cost pattern of every small table (optimal.py), then
    the greedy repair, widening and clean-up as for "greedy".
    ``a_priori``: keys suppressed whatever their count, with the reason (tau-argus's a-priori unsafe cells:
    a very small area's cells its table design does not publish, marts/designs.py). They are protected as
    primary cells are (the clean-up never publishes them; the attacker holds them like any hidden cell).
    """
    if not tables:
        return ProtectionResult([], _empty_log(), _loss([], _empty_log()))
    lattice, suppressor = _suppress(tables, k, zeros, max_rounds, carried, cleanup_audits, complements, a_priori or {})
    return _result(tables, lattice, suppressor)


def protect_release(
    populations: Mapping[str, Sequence[MartTable]],
    *,
    relations: Sequence[LinearRelation] = (),
    k: int = 3,
    zeros: Zeros = "show",
    max_rounds: int = 200,
    carried: Mapping[str, Collection[str]] | None = None,
    cleanup_audits: int = DEFAULT_CLEANUP_AUDITS,
    context: Mapping[str, Sequence[MartTable]] | None = None,
    complements: Complements = "greedy",
    small_only: bool = False,
    a_priori: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, ProtectionResult]:
    """Protect every population of a release against one attacker who holds them all.

    Each population is protected as its linked tables (`protect`, with its clean-up); then the whole
    release is one system: the populations' cells, scoped by population (tables.scoped_key), and
    ``relations`` over them (a subset population is at most its superset, cell by cell; see
    pipeline/protect.population_relations). Any cell that system can still pin or prove small is
    protected by further complementary suppression (`settle` with the release-wide audit as its
    attacker), so a release the audit would refuse is repaired rather than refused. ``context``: published
    tables the attacker also holds but this release cannot change (an earlier release), scoped by their
    own names; their hidden cells are unknowns, their published cells constants, and they are never
    suppressed further. ``small_only``: the release-wide attacker counts a cell as disclosed only when it
    proves it 0..k (a revision against the release it replaces; docs/disclosure.md), not when it pins a
    larger one. ``a_priori``: per population, keys suppressed whatever their count (`protect`).
    Deterministic: the repair takes cells in key order, ties by key.
    """
    carried = carried or {}
    a_priori = a_priori or {}
    context = context or {}
    parts: dict[str, tuple[Lattice, Suppressor]] = {}
    for name, tables in populations.items():
        if not tables:
            continue
        try:
            parts[name] = _suppress(
                tables, k, zeros, max_rounds, carried.get(name, ()), cleanup_audits, complements, a_priori.get(name, {})
            )
        except ProtectionError as exc:
            raise PopulationNotProtected(name, str(exc)) from None
    if (relations or context) and parts:
        try:
            _settle_release(populations, parts, relations, k, zeros, max_rounds, carried, context, small_only)
        except ProtectionError as exc:
            raise PopulationNotProtected(None, str(exc)) from None
    results = {name: _result(populations[name], *parts[name]) for name in parts}
    empty = ProtectionResult([], _empty_log(), _loss([], _empty_log()))
    return {name: results.get(name, empty) for name in populations}


def _suppress(
    tables: Sequence[MartTable],
    k: int,
    zeros: Zeros,
    max_rounds: int,
    carried: Collection[str],
    cleanup_audits: int,
    complements: Complements = "greedy",
    a_priori: Mapping[str, str] | None = None,
) -> tuple[Lattice, Suppressor]:
    """Primary, secondary and clean-up for one population's linked tables; the independent audit of that
    population has the last word on the clean-up."""
    lattice = build_lattice(tables)
    suppressor = Suppressor(lattice, k, zeros)
    if a_priori:
        # a-priori unsafe cells are primary cells to the suppressor and the clean-up (never published);
        # the attacker's floor for them is the usual one, since a published zero is still a zero
        for cell in (i for i, key in enumerate(lattice.keys) if key in a_priori):
            if not suppressor.suppressed[cell]:
                suppressor.reason[cell] = a_priori[lattice.keys[cell]]
            suppressor.primary[cell] = suppressor.suppressed[cell] = True
    if carried:
        wanted = set(carried)
        for cell in (i for i, key in enumerate(lattice.keys) if key in wanted):
            suppressor.carried[cell] = True
            if not suppressor.suppressed[cell]:
                suppressor.suppressed[cell] = True
                suppressor.reason[cell] = CARRIED_RULE
    if complements == "optimal":
        report = choose_complements(suppressor)
        logger.info("minimum-cost complements: %s", report)
    suppressor.close_relations()
    exposed = audit_exposure(tables, lattice, k, zeros, carried)
    settle(suppressor, exposed, max_rounds)
    if cleanup_audits > 0:
        greedy = suppressor.suppressed.copy(), dict(suppressor.reason)
        clean_up(suppressor, cleanup_audits)
        if exposed(suppressor.suppressed):  # the independent attacker has the last word
            logger.warning("clean-up pattern failed the audit; keeping the greedy pattern")
            suppressor.suppressed, suppressor.reason = greedy
    return lattice, suppressor


def _settle_release(
    populations: Mapping[str, Sequence[MartTable]],
    parts: dict[str, tuple[Lattice, Suppressor]],
    relations: Sequence[LinearRelation],
    k: int,
    zeros: Zeros,
    max_rounds: int,
    carried: Mapping[str, Collection[str]],
    context: Mapping[str, Sequence[MartTable]],
    small_only: bool = False,
) -> None:
    """Widen the populations' patterns until the release-wide attacker pins nothing (in place)."""
    names = list(parts)
    tables = [t for n in names for t in populations[n]]
    scopes: list[str | None] = [n for n in names for _ in populations[n]]
    # Context tables (an earlier release): their true counts stand in for the hidden ones, as the
    # suppressor needs a feasible point; their status is fixed.
    fixed = [(n, t) for n, ts in context.items() for t in ts]
    joint = build_lattice(tables + [_complete(t) for _, t in fixed], scopes + [n for n, _ in fixed])
    suppressor = Suppressor(joint, k, zeros)
    index = {key: i for i, key in enumerate(joint.keys)}
    positions = {}
    for name in names:
        lattice, own = parts[name]
        at = np.array([index[scoped_key(name, key)] for key in lattice.keys], dtype=np.int64)
        positions[name] = at
        suppressor.suppressed[at] = own.suppressed
        suppressor.carried[at] = own.carried
        suppressor.reason.update({int(at[c]): why for c, why in own.reason.items()})
    context_cell = np.zeros(len(joint.keys), dtype=bool)
    zero_context: set[str] = set()
    for name, table in fixed:
        keys = [scoped_key(name, key) for key in _keys(table.frame, list(table.dimensions))]
        hidden = table.frame["count"].isna().to_numpy()
        for key, is_hidden in zip(keys, hidden, strict=True):
            cell = index[key]
            context_cell[cell] = True
            suppressor.suppressed[cell] = bool(is_hidden)
            suppressor.carried[cell] = True  # never published by the repair
            suppressor.forbidden[cell] = not is_hidden  # never hidden now: it is already public
            if is_hidden and joint.counts[cell] == 0:
                zero_context.add(key)  # a hidden zero (carried forward there): the attacker knows only >= 0
    published_context = {
        scoped_key(n, key) for n, t in fixed for key in _keys(t.frame[t.frame["count"].notna()], list(t.dimensions))
    }
    public = published_through(relations, published_context)
    for key in public:  # hiding a cell the earlier release published (and that did not change) hides nothing
        suppressor.futile[index[key]] = True
    scoped_carried = {scoped_key(n, key) for n, keys in carried.items() for key in keys} | zero_context
    exposure = audit_exposure(
        tables + [t for _, t in fixed],
        joint,
        k,
        zeros,
        scoped_carried,
        scopes=scopes + [n for n, _ in fixed],
        relations=relations,
        public=public,
        small_only=small_only,  # a revision against its earlier release: a cell pinned above k reveals no small group
    )
    settle(suppressor, _through_release(exposure, suppressor, relations, index, context_cell), max_rounds)
    for name in names:
        lattice, own = parts[name]
        at = positions[name]
        added = suppressor.suppressed[at] & ~own.suppressed
        own.suppressed = suppressor.suppressed[at].copy()
        for c in np.flatnonzero(added):
            own.reason[int(c)] = suppressor.reason.get(
                int(at[c]), "complementary: protects a relation between populations"
            )


_LINE_SEARCH = 5000  # context cells a search for an exposed earlier cell's partners visits at most


class _Partners:
    """The release's cells a relation ties to a context cell, or, when none does, to the nearest context
    cells reached through table lines and relations among context cells (an age band of an earlier month
    is bounded through its area's margin, and that margin through the window; the month that left a
    rolling window through the previous window, and that through this release's window): breadth first,
    the first ring that has any."""

    def __init__(
        self, relations: Sequence[LinearRelation], index: dict[str, int], context_cell: np.ndarray, lattice: Lattice
    ) -> None:
        self.direct: dict[int, list[int]] = {}
        self.linked: dict[int, list[int]] = {}  # context cells one relation ties together
        for relation in relations:
            cells = [index[key] for key, _ in relation.terms]
            earlier = [c for c in cells if context_cell[c]]
            for c in earlier:
                self.direct.setdefault(c, []).extend(p for p in cells if not context_cell[p])
                self.linked.setdefault(c, []).extend(o for o in earlier if o != c)
        self.context_cell, self.lattice = context_cell, lattice
        self.found: dict[int, list[int]] = {}

    def __call__(self, c: int) -> list[int]:
        if c not in self.found:
            ring, seen = [c], {c}
            found: list[int] = list(self.direct.get(c, []))
            while not found and ring and len(seen) < _LINE_SEARCH:
                ring = [o for cell in ring for o in self._neighbours(cell, seen)]
                found = sorted({p for cell in ring for p in self.direct.get(cell, [])})
            self.found[c] = found
        return self.found[c]

    def _neighbours(self, cell: int, seen: set[int]) -> list[int]:
        """Context cells sharing a table line or a relation with ``cell``, not seen before."""
        out = []
        lines = (self.lattice.relations[r] for r in self.lattice.relations_of[cell])
        candidates = [o for total, members in lines for o in (total, *members.tolist())]
        for other in [*candidates, *self.linked.get(cell, [])]:
            if other not in seen and self.context_cell[other]:
                seen.add(other)
                out.append(other)
        return out


def _through_release(
    exposure: Exposure,
    suppressor: Suppressor,
    relations: Sequence[LinearRelation],
    index: dict[str, int],
    context_cell: np.ndarray,
) -> Exposure:
    """The release-wide exposure, with an exposed cell of a context table (an earlier release, which
    cannot be changed) protected through this release: the cheapest published cell of this release that
    a relation ties to it, or to the nearest cells of its table's lines (`_Partners`), is suppressed (ties
    by key); if none is left, the related cells are widened."""
    partners_of = _Partners(relations, index, context_cell, suppressor.lattice)

    def exposed(mask: np.ndarray) -> list[int]:
        while True:
            found = exposure(mask)
            earlier = [c for c in found if context_cell[c]]
            if not earlier:
                return found
            chosen = set()
            for c in earlier:
                open_ = [p for p in partners_of(c) if not suppressor.suppressed[p] and not suppressor.forbidden[p]]
                if open_:
                    p = min(open_, key=lambda q: suppressor.position[q])
                    suppressor.suppressed[p] = True
                    suppressor.reason.setdefault(
                        p, f"complementary: protects {suppressor.lattice.keys[c]} of the earlier release"
                    )
                    chosen.add(p)
            if not chosen:
                related = sorted({p for c in earlier for p in partners_of(c)})
                return [c for c in found if not context_cell[c]] + related
            suppressor.close_relations()

    return exposed


def _keys(frame: pd.DataFrame, dims: list[str]) -> list[str]:
    return [
        cell_key(str(p), dict(zip(dims, row, strict=False)))
        for p, row in zip(
            frame["period"].astype(str), frame[dims].astype(str).itertuples(index=False, name=None), strict=False
        )
    ]


def _complete(table: MartTable) -> MartTable:
    """A context table with its hidden counts filled by ``true_count`` (a column the caller supplies)."""
    frame = table.frame
    if "true_count" not in frame.columns:
        raise ValueError(f"context table {table.name}: needs true_count for its hidden cells")
    filled = frame.assign(count=frame["count"].astype("Int64").fillna(frame["true_count"].astype("Int64")))
    return replace(table, frame=filled.drop(columns=["true_count"]))


def _result(tables: Sequence[MartTable], lattice: Lattice, suppressor: Suppressor) -> ProtectionResult:
    protected = _apply(tables, lattice, suppressor.suppressed)
    log = _log(tables, lattice, suppressor)
    return ProtectionResult(protected, log, _loss(protected, log))


def _apply(tables: Sequence[MartTable], lattice: Lattice, suppressed: np.ndarray) -> list[MartTable]:
    out = []
    for table, row_cells in zip(tables, lattice.rows, strict=False):
        frame = table.frame.copy()
        hidden = suppressed[row_cells]
        frame["count"] = frame["count"].astype("Int64").mask(hidden)
        frame["status"] = pd.array(_markers(hidden), dtype="string")
        out.append(replace(table, frame=frame))  # keeps what the table declares (MartTable.overlap)
    return out


def _markers(hidden: np.ndarray) -> np.ndarray:
    """The status column: "c" (confidential) where hidden, missing elsewhere."""
    status = np.full(len(hidden), None, dtype=object)
    status[hidden] = "c"
    return status


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


def _log(tables: Sequence[MartTable], lattice: Lattice, suppressor: Suppressor) -> pd.DataFrame:
    records = []
    for table, row_cells in zip(tables, lattice.rows, strict=False):
        dims = list(table.dimensions)
        frame = table.frame.reset_index(drop=True)
        for i in np.flatnonzero(suppressor.suppressed[row_cells]):
            cell = int(row_cells[i])
            # an a-priori cell above k is withheld by design, not by the threshold rule: logged as secondary
            primary = bool(suppressor.primary[cell]) and int(lattice.counts[cell]) <= suppressor.k
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
