"""The attacker's bounds model: the one HiGHS programme both the audit and the clean-up solve.

An attacker who holds the published tables knows, for the hidden cells x, the additive relations A x = b
(b from the published cells), the a-priori bound x >= floor (the rule is public, so a hidden cell is at
least 1 when zeros are published; see `a_priori_lower`) and that every count is an integer. The smallest
and largest integer value of one hidden cell over that system is its *protection interval* as the attacker
sees it (tau-argus / sdcTable `attack`). A cell is *disclosed* when the interval holds a single value, or its
upper bound is k or less (the attacker proves a small group of 1..k).

The integer interval is found in two steps (`decide`). The LP relaxation's bounds, rounded inwards to
integers (`tighten`), already decide most cells: an upper bound of k or less, or a single value, is
disclosed (the integer hull lies inside the LP polytope, so integer bounds are at least as tight), and an
interval reaching k + 2 or more and at least two units wide is safe. The *borderline* cells, where the LP
relaxation and the integer hull could differ on the verdict (tightened upper bound exactly k + 1, or
tightened width 1), are decided by an exact integer programme (HiGHS MIP) over the cell's connected system.
(Issue 13: an LP interval [1, 3.5] passed under the relaxation, yet no integer table has 4 there.) The
residual assumption is that the integrality gap of a linked table's bound is below one unit wherever the
tightened LP interval is at least k + 2 and two wide; the property test in tests/disclosure/test_audit.py
checks the verdict against an independent exact integer programme on random linked tables.

Written once, so the audit (audit.py) and the clean-up's incremental attacker (cleanup.py) cannot
disagree on the model, its solver options or the verdict; neither depends on the suppressor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse import csc_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from treatment_marts.disclosure.tables import Zeros

EXACT_MARGIN = 0.5  # an interval narrower than this holds a single integer: the count is pinned
SMALL_TOLERANCE = 1e-9  # an upper bound within this of k counts as k (LP round-off)
# An LP bound within INTEGER_EPS of an integer is taken as that integer (`tighten`). HiGHS accepts a point
# whose rows and bounds are violated by up to its primal feasibility tolerance (1e-7 by default), so a
# reported optimum may lie that far beyond the true one; 1e-6 absorbs that with room to spare. It is sound
# because it can only move a bound across an integer it is within 1e-6 of, which lands the tightened
# interval on the borderline (upper k + 1, or width 1) where the exact integer programme decides anyway.
INTEGER_EPS = 1e-6
MIP_TIME_LIMIT = 30.0  # seconds per integer programme; a cell not proved safe in time counts as disclosed


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


def tighten(lower: float, upper: float) -> tuple[float, float]:
    """The LP bounds rounded inwards to integers: every integer solution lies within them. An infinite
    upper bound (the attacker learns none) stays infinite."""
    low = float(math.ceil(lower - INTEGER_EPS))
    high = float(math.floor(upper + INTEGER_EPS)) if math.isfinite(upper) else math.inf
    return low, high


def borderline(lower: float, upper: float, k: int) -> bool:
    """Tightened LP bounds on which the relaxation and the integer hull could disagree about the verdict:
    not already disclosed, and upper bound exactly k + 1 or exactly two integers in the interval."""
    if upper <= k or upper - lower < 1:
        return False
    return upper == k + 1 or upper - lower == 1


def safe_by_point(value: ArrayLike, reference: ArrayLike, k: int) -> np.ndarray:
    """A feasible value this far above k and above a feasible reference (the truth) proves a verdict of
    safe without solving: the tightened upper bound is then at least k + 2 and two above the lower one,
    so the cell is not borderline."""
    value, reference = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
    return (value >= k + 2 - INTEGER_EPS) & (value >= reference + 2 - INTEGER_EPS)


@dataclass(frozen=True)
class Interval:
    """The attacker's integer interval of one cell and whether it was proved (False: an integer
    programme hit its time limit, so the bounds are only valid bounds and the cell counts as disclosed)."""

    lower: float
    upper: float
    proved: bool = True
    witnesses: tuple[np.ndarray, ...] = ()  # integer points the programme found (NaN off the cell's system)


IntegerCache = dict[tuple[object, ...], tuple[float, bool, np.ndarray | None]]
"""Integer programme results by system (column names, rows, right-hand side, floors) and objective: the
same system always has the same answer, so the cache is exact."""


def _finite_or_inf(values: np.ndarray) -> np.ndarray:
    """Row bounds for HiGHS: an infinite side as HiGHS's own infinity."""
    return np.clip(np.asarray(values, dtype=float), -highspy.kHighsInf, highspy.kHighsInf)


class BoundsModel:
    """min / max of one variable at a time subject to A x = b (or b <= A x <= b_upper), x >= floor (HiGHS
    primal simplex).

    One model per connected system; only the objective changes between solves, so HiGHS restarts from the
    previous optimal basis and each bound costs a few simplex iterations. Warm starts only help without
    presolve; the primal simplex keeps the basis primal feasible when only the objective changes.
    """

    def __init__(
        self,
        a_eq: csc_matrix,
        rhs: np.ndarray,
        floor: np.ndarray,
        *,
        names: np.ndarray | None = None,
        cache: IntegerCache | None = None,
        rhs_upper: np.ndarray | None = None,
    ) -> None:
        """``names`` (one per column, stable across models) and ``cache`` let integer programmes be reused:
        a caller that audits mask after mask of the same tables meets the same connected systems again.
        ``rhs_upper``: rows are ``rhs <= A x <= rhs_upper`` (default ``rhs``: equations); an infinite side
        is an inequality (a relation between populations or releases)."""
        n = a_eq.shape[1]
        self._names = names
        self._cache = cache
        self.n = n
        self.solves = 0
        self.integer_solves = 0
        self._a_eq, self._rhs, self._floor = a_eq.tocsc(), np.asarray(rhs, dtype=float), np.asarray(floor, dtype=float)
        self._rhs_upper = self._rhs if rhs_upper is None else np.asarray(rhs_upper, dtype=float)
        self._component: np.ndarray | None = None
        self._point = np.zeros(0)
        # (variable, maximise) -> the LP optimum was attained at an integral point, so it is the integer one
        self._attained: dict[tuple[int, bool], bool] = {}
        # The largest and smallest value of each variable over the integral solutions seen so far (LP optima
        # that happen to be integral, integer programmes' points): integer values the attacker's system has.
        self._integral_high = np.full(n, -np.inf)
        self._integral_low = np.full(n, np.inf)
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
        lp.row_lower_ = _finite_or_inf(self._rhs)
        lp.row_upper_ = _finite_or_inf(self._rhs_upper)
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
            self._point = np.asarray(solver.getSolution().col_value, dtype=float)
            integral = bool(np.abs(self._point - np.round(self._point)).max(initial=0.0) < 1e-7)
            self._attained[(j, maximise)] = integral
            if integral:
                self._integral(np.round(self._point))
            return float(solver.getInfo().objective_function_value)
        if status == highspy.HighsModelStatus.kInfeasible:
            raise InconsistentSystem(
                "the attacker's system has no solution: the published cells contradict the additive relations"
            )
        return None  # unbounded: the attacker learns no bound in that direction

    def _integral(self, point: np.ndarray) -> None:
        """Record an integer solution (NaN: a variable outside the system the point covers)."""
        np.fmax(self._integral_high, point, out=self._integral_high)
        np.fmin(self._integral_low, point, out=self._integral_low)

    def point(self) -> np.ndarray:
        """The optimal point of the last solve: a feasible value for every variable at once."""
        return self._point

    def decide(self, j: int, lower: float, upper: float, k: int) -> Interval:
        """The integer interval of variable ``j`` from its LP bounds: tightened, and for a borderline cell
        the exact integer programme's bounds."""
        low, high = tighten(lower, upper)
        if not borderline(low, high, k):
            return Interval(low, high)
        # A tightened LP bound that some integer solution already reaches is the integer optimum (no integer
        # point lies beyond it): an LP optimum attained at an integral point (rounded, it satisfies the
        # integer relations exactly: its residual is an integer below one), or any integral point seen so
        # far (other cells' LP optima, earlier integer programmes' points). Only the others need a MIP.
        top, top_proved, top_point = (high, True, None)
        if not (self._attained.get((j, True), False) or self._integral_high[j] >= high):
            top, top_proved, top_point = self._integer_bound(j, maximise=True)
        if top <= k:  # even an unproved dual bound is a valid upper bound: proved small
            return Interval(low, top)
        bottom, bottom_proved, bottom_point = (low, True, None)
        if not (self._attained.get((j, False), False) or self._integral_low[j] <= low):
            bottom, bottom_proved, bottom_point = self._integer_bound(j, maximise=False)
        found = tuple(p for p in (top_point, bottom_point) if p is not None)
        for point in found:  # integer solutions of the whole connected system: witnesses for its other cells
            self._integral(point)
        return Interval(bottom, top, top_proved and bottom_proved, found)

    def verdict(self, j: int, lower: float, upper: float, k: int, truth: float) -> Interval:
        """The integer verdict of ``j`` when a caller knows an integer solution (the true table, ``truth``
        its value of ``j``), as the suppressor does: the same decision as `decide`, by feasibility
        programmes (is there an integer table with ``j`` above k? with ``j`` at another value?), which stop
        at the first integer point instead of proving an optimum. The interval is then a valid outer bound
        (the verdict-only mode), exact only when disclosed."""
        low, high = tighten(lower, upper)
        if not borderline(low, high, k):
            return Interval(low, high)
        # Integer values of j known to be attained: the truth, and LP optima attained at integral points.
        known = {truth} | {b for b, m in ((high, True), (low, False)) if self._attained.get((j, m), False)}
        known |= {float(v) for v in (self._integral_high[j], self._integral_low[j]) if math.isfinite(v)}
        found: list[np.ndarray] = []
        if max(known) <= k:
            exists, proved, point = self._integer_point(j, k + 1, high)
            if not exists:
                return Interval(low, min(high, k), proved)
            found.append(point)
            known.add(float(point[j]))
        if len(known) >= 2:
            return Interval(low, high, True, tuple(found))
        value = max(known)
        for box in ((low, value - 1), (value + 1, high)):
            if box[0] <= box[1]:
                exists, proved, point = self._integer_point(j, *box)
                if exists:
                    return Interval(low, high, True, (*found, point))
                if not proved:
                    return Interval(low, high, False, tuple(found))
        return Interval(value, value, True, tuple(found))

    def _integer_point(self, j: int, lowest: float, highest: float) -> tuple[bool, bool, np.ndarray]:
        """Is there an integer solution with ``j`` in [lowest, highest]? (exists, proved, the point)."""
        value, proved, point = self._integer_bound(j, maximise=True, box=(lowest, highest), feasibility=True)
        if point is not None:
            self._integral(point)
        return bool(point is not None), bool(proved or point is not None), np.asarray(point)

    def _integer_bound(
        self, j: int, *, maximise: bool, box: tuple[float, float] | None = None, feasibility: bool = False
    ) -> tuple[float, bool, np.ndarray | None]:
        """The largest (smallest) integer value of ``j`` over its connected system (HiGHS MIP), whether it
        is proved optimal (if not: the solver's dual bound, still a valid bound) and the optimal integer
        point (NaN for the variables outside the system)."""
        if self._component is None:
            pattern = (self._a_eq.T @ self._a_eq).tocsr()
            self._component = connected_components(pattern, directed=False)[1]
        columns = np.flatnonzero(self._component == self._component[j])
        sub = self._a_eq[:, columns]
        rows = np.unique(sub.nonzero()[0])
        sub = sub[rows, :].tocsc()
        key: tuple[object, ...] | None = None
        if self._cache is not None and self._names is not None:
            key = (
                tuple(self._names[columns].tolist()),
                self._rhs[rows].tobytes(),
                self._rhs_upper[rows].tobytes(),
                self._floor[columns].tobytes(),
                sub.indptr.tobytes(),
                sub.indices.tobytes(),
                sub.data.tobytes(),
                int(np.searchsorted(columns, j)),
                maximise,
                box,
                feasibility,
            )
            if key in self._cache:
                value, proved, values = self._cache[key]
                return value, proved, None if values is None else self._spread(columns, values)
        value, proved, values = self._solve_integer(sub, columns, rows, j, maximise, box, feasibility)
        if key is not None and self._cache is not None:
            self._cache[key] = (value, proved, values)
        return value, proved, None if values is None else self._spread(columns, values)

    def _spread(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        point = np.full(self.n, np.nan)
        point[columns] = values
        return point

    def _solve_integer(
        self,
        sub: csc_matrix,
        columns: np.ndarray,
        rows: np.ndarray,
        j: int,
        maximise: bool,
        box: tuple[float, float] | None,
        feasibility: bool,
    ) -> tuple[float, bool, np.ndarray | None]:
        """One HiGHS MIP over the system's integer points (presolve on, exact gap, time limit): optimise
        ``j``, or (``feasibility``) find any point with ``j`` in ``box``. A feasibility programme that finds
        no point returns (nan, proved infeasible?, None)."""
        solver = highspy.Highs()
        solver.setOptionValue("output_flag", False)
        solver.setOptionValue("mip_rel_gap", 0.0)
        solver.setOptionValue("time_limit", MIP_TIME_LIMIT)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(columns), len(rows)
        position = int(np.searchsorted(columns, j))
        cost = np.zeros(len(columns))
        cost[position] = 0.0 if feasibility else 1.0
        lp.col_cost_ = cost
        col_lower = self._floor[columns].copy()
        col_upper = np.full(len(columns), highspy.kHighsInf)
        if box is not None:
            col_lower[position] = max(col_lower[position], box[0])
            col_upper[position] = box[1] if math.isfinite(box[1]) else highspy.kHighsInf
        lp.col_lower_ = col_lower
        lp.col_upper_ = col_upper
        lp.row_lower_ = _finite_or_inf(self._rhs[rows])
        lp.row_upper_ = _finite_or_inf(self._rhs_upper[rows])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = sub.indptr.astype(np.int32)
        lp.a_matrix_.index_ = sub.indices.astype(np.int32)
        lp.a_matrix_.value_ = sub.data.astype(float)
        lp.sense_ = highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize
        lp.integrality_ = [highspy.HighsVarType.kInteger] * len(columns)
        solver.passModel(lp)
        solver.run()
        self.integer_solves += 1
        status = solver.getModelStatus()
        info = solver.getInfo()
        if status == highspy.HighsModelStatus.kOptimal:
            values = np.round(np.asarray(solver.getSolution().col_value, dtype=float))
            return float(round(info.objective_function_value)), True, values
        if status == highspy.HighsModelStatus.kInfeasible:
            if feasibility:
                return math.nan, True, None
            raise InconsistentSystem("the attacker's system has no integer solution: the published cells contradict it")
        if feasibility:
            return math.nan, False, None
        bound = float(info.mip_dual_bound)
        valid = float(math.floor(bound + INTEGER_EPS)) if maximise else float(math.ceil(bound - INTEGER_EPS))
        return valid, False, None
