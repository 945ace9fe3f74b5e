"""The attacker's bounds model: the one HiGHS programme both the audit and the clean-up solve.

An attacker who holds the published tables knows, for the hidden cells x, the additive relations A x = b
(b from the published cells) and the a-priori bound x >= floor (the rule is public, so a hidden cell is at
least 1 when zeros are published; see `a_priori_lower`). The smallest and largest value of one hidden
cell over that polytope is its *protection interval* as the attacker sees it (tau-argus / sdcTable
`attack`). A cell is *disclosed* when the interval pins it (narrower than `EXACT_MARGIN`: only one integer
fits) or its upper bound is k or less (the attacker proves a small group).

Written once, so the audit (audit.py) and the clean-up's incremental attacker (cleanup.py) cannot
disagree on the model, its solver options or the verdict; neither depends on the suppressor.
"""

from __future__ import annotations

from collections.abc import Sequence

import highspy
import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse import csc_matrix, csr_matrix

from treatment_marts.disclosure.tables import Zeros

EXACT_MARGIN = 0.5  # an interval narrower than this holds a single integer: the count is pinned
SMALL_TOLERANCE = 1e-9  # an upper bound within this of k counts as k (LP round-off)


class InconsistentSystem(ValueError):
    """The attacker's system has no solution: the published cells contradict the additive relations."""


def a_priori_lower(zeros: Zeros) -> int:
    """What the attacker knows of any hidden cell before solving: >= 1 when zeros are published (a zero
    would have been shown), else >= 0."""
    return 1 if zeros == "show" else 0


def relation_matrix(relations: Sequence[tuple[int, Sequence[int] | np.ndarray]], n: int) -> csr_matrix:
    """E: one row per relation (total, members), +1 for its members, -1 for its total; the true counts
    t satisfy E t = 0."""
    rows, cols, vals = [], [], []
    for r, (total, members) in enumerate(relations):
        rows.extend([r] * (len(members) + 1))
        cols.extend([*map(int, members), int(total)])
        vals.extend([1.0] * len(members) + [-1.0])
    return csr_matrix((vals, (rows, cols)), shape=(len(relations), n))


def pinned(lower: ArrayLike, upper: ArrayLike) -> np.ndarray:
    """The interval holds a single integer: the exact value is recoverable."""
    return (np.asarray(upper) - np.asarray(lower)) < EXACT_MARGIN


def proved_small(upper: ArrayLike, k: int) -> np.ndarray:
    """The upper bound is k or less: the attacker proves a group of 1..k."""
    return np.asarray(upper) <= k + SMALL_TOLERANCE


def disclosed(lower: ArrayLike, upper: ArrayLike, k: int) -> np.ndarray:
    """The verdict on a protection interval: pinned, or proved to be a small group."""
    return pinned(lower, upper) | proved_small(upper, k)


class BoundsModel:
    """min / max of one variable at a time subject to A x = b, x >= floor (HiGHS primal simplex).

    One model per connected system; only the objective changes between solves, so HiGHS restarts from the
    previous optimal basis and each bound costs a few simplex iterations. Warm starts only help without
    presolve; the primal simplex keeps the basis primal feasible when only the objective changes.
    """

    def __init__(self, a_eq: csc_matrix, rhs: np.ndarray, floor: np.ndarray) -> None:
        n = a_eq.shape[1]
        self.n = n
        self.solves = 0
        self._objective: int | None = None
        solver = highspy.Highs()
        solver.setOptionValue("output_flag", False)
        solver.setOptionValue("presolve", "off")
        solver.setOptionValue("solver", "simplex")
        solver.setOptionValue("simplex_strategy", 4)
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = a_eq.shape[0]
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.asarray(floor, dtype=float)
        lp.col_upper_ = np.full(n, highspy.kHighsInf)
        lp.row_lower_ = np.asarray(rhs, dtype=float)
        lp.row_upper_ = np.asarray(rhs, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a_eq.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a_eq.indices.astype(np.int32)
        lp.a_matrix_.value_ = a_eq.data.astype(float)
        solver.passModel(lp)
        self._solver = solver

    def bound(self, j: int, *, maximise: bool) -> float | None:
        """The largest (or smallest) value of variable ``j``; None when unbounded in that direction."""
        solver = self._solver
        if self._objective != j:
            if self._objective is not None:
                solver.changeColCost(self._objective, 0.0)
            solver.changeColCost(j, 1.0)
            self._objective = j
        solver.changeObjectiveSense(highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize)
        solver.run()
        self.solves += 1
        status = solver.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return float(solver.getInfo().objective_function_value)
        if status == highspy.HighsModelStatus.kInfeasible:
            raise InconsistentSystem(
                "the attacker's system has no solution: the published cells contradict the additive relations"
            )
        return None  # unbounded: the attacker learns no bound in that direction

    def point(self) -> np.ndarray:
        """The optimal point of the last solve: a feasible value for every variable at once."""
        return np.asarray(self._solver.getSolution().col_value, dtype=float)
