"""Aggregate protection of linked tables: the one place that composes the disclosure core.

primary (primary.py: K3 hides counts of 1..k) -> secondary (secondary.py: complementary cells until every
relation is safe and the attacker pins nothing) -> clean-up (cleanup.py: publish complementary cells the
finished pattern no longer needs) -> the independent audit (audit.py) has the last word on the clean-up.
Then the mart tables, the suppression log (restricted: every hidden cell, its true count, primary or
secondary and why) and the information loss per mart.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.audit import AttackModel
from treatment_marts.disclosure.cleanup import clean_up
from treatment_marts.disclosure.lattice import Lattice, build_lattice
from treatment_marts.disclosure.secondary import Exposure, Suppressor, settle
from treatment_marts.disclosure.tables import MartTable, Zeros, table_cell

logger = logging.getLogger(__name__)


@dataclass
class ProtectionResult:
    """The protected tables, the suppression log (restricted) and the information loss per mart."""

    tables: list[MartTable]
    log: pd.DataFrame
    information_loss: pd.DataFrame


CARRIED_RULE = "carried forward: suppressed in an earlier release of this period"
DEFAULT_CLEANUP_AUDITS = 20  # rules.yaml disclosure.cleanup_audits ships the same value


def audit_exposure(
    tables: Sequence[MartTable], lattice: Lattice, k: int, zeros: Zeros, carried: Collection[str] = ()
) -> Exposure:
    """The independent audit's verdict on a suppression mask (the suppressor's `Exposure`): cells whose
    interval it can pin, in key order. The audit derives its equations from the tables themselves."""
    attacker = AttackModel(tables)
    index = {key: i for i, key in enumerate(lattice.keys)}
    truth = pd.Series(lattice.counts.astype(float), index=lattice.keys)

    def exposed(suppressed: np.ndarray) -> list[int]:
        published = truth.where(~pd.Series(suppressed, index=lattice.keys))
        intervals = attacker.intervals(published, k=k, zeros=zeros, reference=truth, carried=carried, verdict_only=True)
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
    lattice = build_lattice(tables)
    suppressor = Suppressor(lattice, k, zeros)
    if carried:
        wanted = set(carried)
        for cell in (i for i, key in enumerate(lattice.keys) if key in wanted):
            suppressor.carried[cell] = True
            if not suppressor.suppressed[cell]:
                suppressor.suppressed[cell] = True
                suppressor.reason[cell] = CARRIED_RULE
    suppressor.close_relations()
    exposed = audit_exposure(tables, lattice, k, zeros, carried)
    settle(suppressor, exposed, max_rounds)
    if cleanup_audits > 0:
        greedy = suppressor.suppressed.copy(), dict(suppressor.reason)
        clean_up(suppressor, cleanup_audits)
        if exposed(suppressor.suppressed):  # the independent attacker has the last word
            logger.warning("clean-up pattern failed the audit; keeping the greedy pattern")
            suppressor.suppressed, suppressor.reason = greedy
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
        out.append(MartTable(table.name, table.dimensions, frame))
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
