"""The optimal secondary-suppression pattern of a small table, for measuring the suppressor's information loss.

Why: the suppressor (secondary.py, composed in protect.py) is a fast heuristic (greedy relation repair, then
audit-guided widening), as tau-argus' hypercube method is; the benchmark must say how far from optimal it
lands. Loss is tau-argus' default cost, the sum of the values of the suppressed cells (margins included:
hiding a margin hides its people too). Optimal means the least loss among all patterns that contain the
primary cells (primary.py, the suppressor's rule), leave the grand total published (the suppressor's policy)
and pass the *same* independent audit (audit.py). The search enumerates complementary sets in order of cost
and stops at the first one the audit accepts, so it is exact but exponential in the number of candidate
cells (every non-zero cell that is neither primary nor the grand total): it refuses a table with more than
MAX_CANDIDATES (24) and gives up after ``max_audits`` patterns; the benchmark's 3 x 4 tables have at most 19.
It is a measuring instrument, never used to publish.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.audit import attack_intervals
from treatment_marts.disclosure.primary import primary_cells
from treatment_marts.disclosure.protect import protect
from treatment_marts.disclosure.tables import MartTable, Zeros

MAX_CANDIDATES = 24  # beyond this the subset search (2^n patterns) is refused outright


@dataclass(frozen=True)
class OptimalPattern:
    loss: int  # sum of the suppressed cells' values
    suppressed_cells: int
    audits: int  # patterns audited before the optimum was found


def optimal_pattern(table: MartTable, *, k: int = 3, zeros: Zeros = "show", max_audits: int = 20000) -> OptimalPattern:
    """Least-loss pattern (sum of suppressed values) that passes the audit; exact search."""
    frame = table.frame.reset_index(drop=True)
    counts = frame["count"].astype("int64").to_numpy()
    grand = (frame[list(table.dimensions)] == TOTAL).all(axis=1).to_numpy()
    primary = primary_cells(counts, k, zeros)
    candidates = np.flatnonzero(~primary & (counts > 0) & ~grand)
    if len(candidates) > MAX_CANDIDATES:
        raise ValueError(f"{len(candidates)} candidate cells: too many for an exact search (max {MAX_CANDIDATES})")
    cost = counts.astype(float)
    base = int(counts[primary].sum())
    order = candidates[np.argsort(cost[candidates], kind="stable")]
    heap: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    seen: set[tuple[int, ...]] = set()
    audits = 0
    while heap and audits < max_audits:
        total, chosen = heapq.heappop(heap)
        if chosen in seen:
            continue
        seen.add(chosen)
        mask = primary.copy()
        mask[list(chosen)] = True
        published = frame.assign(
            count=pd.array(np.where(mask, pd.NA, counts), dtype="Int64"),
            status=pd.array(np.where(mask, "c", pd.NA), dtype="string"),
        )
        audits += 1
        if not attack_intervals([MartTable(table.name, table.dimensions, published)], k=k, zeros=zeros)[
            "disclosed"
        ].any():
            return OptimalPattern(
                loss=base + int(sum(counts[c] for c in chosen)), suppressed_cells=int(mask.sum()), audits=audits
            )
        # Children: add one more candidate after the last chosen (each subset generated once).
        start = 0 if not chosen else int(np.flatnonzero(order == chosen[-1])[0]) + 1
        for cell in order[start:]:
            heapq.heappush(heap, (total + cost[cell], (*chosen, int(cell))))
    raise RuntimeError(f"no safe pattern found within {max_audits} audits")


def gap_on_random_tables(n_tables: int, *, shape: tuple[int, int] = (3, 4), seed: int = 1, k: int = 3) -> pd.DataFrame:
    """The suppressor's loss beside the optimum on random small 2-way tables with some small cells."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_tables):
        inner = rng.integers(4, 40, size=shape)
        small = rng.random(shape) < 0.2
        inner[small] = rng.integers(1, k + 1, size=int(small.sum()))
        table = cube_table(inner)
        if not ((table.frame["count"] >= 1) & (table.frame["count"] <= k)).any():
            continue
        optimum = optimal_pattern(table, k=k)
        result = protect([table], k=k)
        frame = result.tables[0].frame
        heuristic = int(table.frame.loc[frame["count"].isna(), "count"].sum())
        rows.append(
            {
                "table": i,
                "optimal_loss": optimum.loss,
                "suppressor_loss": heuristic,
                "optimal_cells": optimum.suppressed_cells,
                "suppressor_cells": int(frame["count"].isna().sum()),
            }
        )
    return pd.DataFrame(rows)


def cube_table(inner: np.ndarray) -> MartTable:
    """A mart-format table over every combination of the axes of ``inner`` with every margin (Total)."""
    names = ["row", "col"]
    levels = [[f"r{i}" for i in range(inner.shape[0])], [f"c{j}" for j in range(inner.shape[1])]]
    records = []
    for combo in product(*[[*lv, TOTAL] for lv in levels]):
        index = tuple(
            slice(None) if label == TOTAL else lv.index(label) for lv, label in zip(levels, combo, strict=False)
        )
        records.append(
            {"period": "2024-03", **dict(zip(names, combo, strict=False)), "count": int(np.asarray(inner[index]).sum())}
        )
    frame = pd.DataFrame(records)
    frame["count"] = frame["count"].astype("Int64")
    frame["status"] = pd.array([None] * len(frame), dtype="string")
    return MartTable("random", tuple(names), frame)


def summarise_gap(gaps: pd.DataFrame) -> dict[str, float]:
    """Totals over the tables: the suppressor's extra loss relative to the optimum."""
    optimal, heuristic = int(gaps["optimal_loss"].sum()), int(gaps["suppressor_loss"].sum())
    return {
        "tables": len(gaps),
        "optimal_loss": optimal,
        "suppressor_loss": heuristic,
        "gap_percent": round(100 * (heuristic - optimal) / optimal, 1) if optimal else 0.0,
        "tables_at_optimum": int((gaps["suppressor_loss"] <= gaps["optimal_loss"]).sum()),
    }
