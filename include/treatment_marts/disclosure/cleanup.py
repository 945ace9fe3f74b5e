"""Clean-up of a finished suppression pattern: remove redundant secondary suppressions (tau-argus / sdcMicro).

Why: the greedy repair in secondary.py commits to a complementary cell before it knows which later cells
will also protect the same line, so a finished pattern often hides cells nothing depends on any more.
The clean-up tries to publish them again, largest first, and swaps a large complementary cell for cheaper
ones, keeping a move only while the attacker still pins no cell.

Every move needs the attacker's verdict, and on a release of linked tables most suppressed cells form one
connected system, so a plain audit per move costs as much as the whole audit (1-2 s on the demo's largest
population). `Certifier` makes a move cheap. It keeps feasible points of the attacker's system (values
for the hidden cells that satisfy every published relation, above the floor the attacker knows), stored
less the truth t, so each is a direction d with E d = 0. Publishing a cell fixes its value: a convex
combination of a point above its true value and one below is a feasible point at it. A cell that some
point moves at least two units above its true value, and to k + 2 or more, is safe under the audit's
integer verdict (lp_model.safe_by_point: its tightened interval is not borderline), so only the remaining
cells get an LP (and, if borderline, an integer programme), and every LP solution is a new point. The
verdict is the audit's, cell for cell (tests/disclosure/test_cleanup.py): both solve the one bounds model of
lp_model.py. The finished pattern still goes through the independent audit (audit.py) once more
(protect.py), and if that ever disagreed the greedy pattern is kept.
"""

from __future__ import annotations

import numpy as np

from treatment_marts.disclosure.lattice import Lattice
from treatment_marts.disclosure.lp_model import BoundsModel, IntegerCache, disclosed, relation_matrix, safe_by_point
from treatment_marts.disclosure.secondary import Suppressor, settle
from treatment_marts.disclosure.tables import ProtectionError

NOISE = 1e-9  # relative size below which an entry of a combined point is rounding error


class Certifier:
    """The attacker's verdict on a suppression mask, incrementally (see the module docstring).

    ``points`` hold feasible points of the attacker's system for the ``base`` mask (the last one that
    passed), less the truth, over the base's cells (``columns``); projected, they stay feasible for any
    mask, and reach a cell the base did not hide at its true value.
    """

    def __init__(self, lattice: Lattice, k: int, lower: int, carried: np.ndarray | None = None) -> None:
        self.lattice = lattice
        self.k = k
        # What the attacker knows of a hidden cell: at least 1 when zeros are shown, but only 0 for a cell
        # an earlier release hid (a revision keeps it hidden even if it is now zero); as audit.py.
        self.floor = np.full(len(lattice.counts), float(lower))
        if carried is not None:
            self.floor[carried] = 0.0
        self.truth = lattice.counts.astype(float)
        self.relations = relation_matrix(lattice.relations, len(lattice.counts)).tocsc()
        self.columns = np.zeros(0, dtype=np.int64)
        self.points = np.zeros((0, 0))
        # Integer feasible points less the truth, over every cell (zero where the cell was published): valid
        # for any mask that publishes only cells they leave at zero, they prove integer verdicts that the
        # real-valued points above cannot (a value of k + 1 that some integer table really has).
        self.integer_points = np.zeros((0, len(lattice.counts)))
        self.integer_cache: IntegerCache = {}  # integer programmes by system (lp_model.BoundsModel)
        self.lp_solves = 0

    @staticmethod
    def _project(points: np.ndarray, column: int) -> np.ndarray:
        """Feasible points that leave the cell of ``column`` at its true value.

        A convex combination of a point above the cell's true value with one below it is a feasible point
        at its true value, and still above the floor the attacker knows (a plain elimination would not
        keep that). Each point is paired with the point furthest on the other side, so the combination
        keeps most of it; points with no partner are dropped.
        """
        values = points[:, column]
        above, below = values > 1e-9, values < -1e-9
        if not (above.any() and below.any()):
            points = points[~(above | below)]
        else:
            partner = np.where(above, int(np.argmin(values)), int(np.argmax(values)))
            moving = above | below
            share = (values[partner] / (values[partner] - values))[moving, None]  # weight of the row itself
            mixed = share * points[moving] + (1 - share) * points[partner[moving]]
            # Cancellation leaves rounding noise where two points agree; left in, a noise-sized negative
            # entry would let the extrapolation in `_reach` step arbitrarily far.
            scale = np.abs(mixed).max(axis=1, keepdims=True)
            mixed[np.abs(mixed) <= NOISE * (1 + scale)] = 0.0
            points = np.vstack([points[~moving], mixed])
        points[:, column] = 0.0
        return points[np.abs(points).max(axis=1, initial=0.0) > 0]

    def _reframe(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored points over the cells of ``mask``: published cells projected out, new cells at truth."""
        columns = np.flatnonzero(mask)
        points = self.points.copy()
        kept = mask[self.columns]
        for column in np.flatnonzero(~kept):
            points = self._project(points, int(column))
        out = np.zeros((len(points), len(columns)))
        out[:, np.searchsorted(columns, self.columns[kept])] = points[:, kept]
        truth = self.truth[columns]
        feasible = (truth + out >= self.floor[columns] - 1e-6).all(axis=1)  # rounding guard; the final audit is the net
        return columns, out[feasible]

    def _reach(self, points: np.ndarray, truth: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """How far above its true value each cell provably goes: from the truth through one of the points
        and on, until some cell reaches the floor the attacker knows (E d = 0 holds all along)."""
        if len(points) == 0:
            return np.zeros(len(truth))
        slack = np.maximum(truth - floor, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(points < 0, slack / -points, np.inf).min(axis=1)  # >= 1: the point itself is feasible
            rise = np.where(points > 0, step[:, None] * points, 0.0)
        return np.nan_to_num(rise, nan=0.0, posinf=np.inf).max(axis=0)

    def _integer_safe(self, columns: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Cells of ``columns`` some integer point (valid for the mask) proves safe: a second integer value
        besides the truth, and one above k."""
        if not len(points):
            return np.zeros(len(columns), dtype=bool)
        off = np.ones(points.shape[1], dtype=bool)
        off[columns] = False
        d = points[~(points[:, off] != 0).any(axis=1)][:, columns]
        truth = self.truth[columns]
        return ((d != 0) & (np.maximum(truth, truth + d) >= self.k + 1)).any(axis=0)

    def _integer_point(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray | None:
        """``values`` (over ``columns``, NaN = at the truth) less the truth over every cell, if integral."""
        values = np.where(np.isnan(values), self.truth[columns], values)
        rounded = np.round(values)
        if np.abs(values - rounded).max(initial=0.0) > 1e-9:
            return None
        point = np.zeros(len(self.truth))
        point[columns] = rounded - self.truth[columns]
        return point

    def _safe(self, reach: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Cells whose reach proves the audit's verdict safe without an LP (lp_model.safe_by_point)."""
        return safe_by_point(truth + reach, truth, self.k)

    def _solve(self, columns: np.ndarray, reach: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Exact bounds (lp_model.BoundsModel, as the audit solves them) for the cells the stored points do
        not prove safe (positions in ``columns``): the disclosed ones, and each maximising point (less the
        truth) to keep. Each new point raises the reach of every cell it moves, and each integral solution
        joins the integer points, so later cells often need no LP."""
        truth = self.truth[columns]
        proven = self._integer_safe(columns, self.integer_points)
        if (self._safe(reach, truth) | proven).all():
            return [], np.zeros((0, len(columns)))
        state = _Solve(self, columns, reach, proven)
        for j in (int(j) for j in np.flatnonzero(~(self._safe(reach, truth) | proven))):
            if state.proven[j] or self._safe(state.reach[j : j + 1], truth[j : j + 1])[0]:
                continue
            if state.pinned_or_small(j):
                state.disclosed.append(int(columns[j]))
        if state.integer:
            self.integer_points = np.vstack([np.array(state.integer), self.integer_points])[:200]  # newest first
        self.lp_solves += state.model.solves + state.model.integer_solves
        return state.disclosed, np.array(state.found).reshape(-1, len(columns))

    def exposed(self, mask: np.ndarray) -> list[int]:
        """Cells of ``mask`` the attacker can pin, in key order (the suppressor's `Exposure`); a mask that
        passes becomes the new base."""
        columns, points = self._reframe(mask)
        truth = self.truth[columns]
        disclosed, found = self._solve(columns, self._reach(points, truth, self.floor[columns]))
        if not disclosed:
            self.columns = columns
            self.points = np.vstack([found, points])[: max(200, 2 * len(columns))]  # newest first
        return sorted(disclosed, key=lambda c: self.lattice.keys[c])


class _Solve:
    """One `Certifier._solve` over the cells of a mask: the bounds model and what its solutions prove."""

    def __init__(self, certifier: Certifier, columns: np.ndarray, reach: np.ndarray, proven: np.ndarray) -> None:
        self.certifier = certifier
        self.columns, self.reach, self.proven = columns, reach, proven
        self.truth, self.floor = certifier.truth[columns], certifier.floor[columns]
        sub = certifier.relations[:, columns]
        sub = sub[np.unique(sub.nonzero()[0]), :].tocsc()
        self.model = BoundsModel(sub, sub @ self.truth, self.floor, names=columns, cache=certifier.integer_cache)
        self.disclosed: list[int] = []
        self.found: list[np.ndarray] = []  # maximising points less the truth (real-valued)
        self.integer: list[np.ndarray] = []  # integral solutions less the truth, over every cell

    def learn(self, values: np.ndarray) -> None:
        """Keep an integral solution as an integer point and mark the cells it proves safe."""
        point = self.certifier._integer_point(self.columns, values)
        if point is not None:
            self.integer.append(point)
            self.proven = self.proven | self.certifier._integer_safe(self.columns, point[None, :])

    def pinned_or_small(self, j: int) -> bool:
        """The audit's verdict on cell ``j``: LP bounds (the minimum only if the maximum does not already
        prove safety), then the integer verdict (lp_model.BoundsModel.verdict: the truth is an integer point)."""
        k = self.certifier.k
        upper, lower = np.inf, float(self.floor[j])
        for maximise in (True, False):
            if not maximise and safe_by_point(upper, self.truth[j], k):
                return False  # the maximum already proves safety
            value = self.model.bound(j, maximise=maximise)
            if value is None:
                continue  # unbounded: no bound in that direction (the initial value stands)
            self.learn(self.model.point())
            if maximise:
                upper = value
                point = self.model.point() - self.truth
                point[np.abs(point) <= NOISE * (1 + np.abs(point).max(initial=0.0))] = 0.0
                self.found.append(point)
                self.reach = np.maximum(self.reach, self.certifier._reach(point[None, :], self.truth, self.floor))
            else:
                lower = value
        interval = self.model.verdict(j, lower, upper, k, float(self.truth[j]))
        for witness in interval.witnesses:
            self.learn(witness)
        return not interval.proved or bool(disclosed(interval.lower, interval.upper, k))


def releasable(suppressor: Suppressor) -> list[int]:
    """Secondary cells the clean-up may try to publish, largest first (the biggest saving first); never a
    primary cell nor one carried forward from an earlier release."""
    s = suppressor
    cells = np.flatnonzero(s.suppressed & ~s.primary & ~s.carried)
    return sorted((int(c) for c in cells), key=lambda c: (-int(s.lattice.counts[c]), s.lattice.keys[c]))


def _loss_of(suppressor: Suppressor) -> int:
    return int(suppressor.lattice.counts[suppressor.suppressed].sum())


def _try_release(suppressor: Suppressor, cell: int, certifier: Certifier) -> tuple[bool, int]:
    """Publish ``cell`` if every relation stays safe and the attacker still pins nothing; returns
    (released, audits run). The relation check is the audit's necessary condition, so most cells that must
    stay hidden are kept without an audit."""
    s = suppressor
    s.suppressed[cell] = False
    if all(s.relation_safe(r) for r in s.lattice.relations_of[cell]):
        if not certifier.exposed(s.suppressed):
            s.reason.pop(cell, None)
            return True, 1
        s.suppressed[cell] = True
        return False, 1
    s.suppressed[cell] = True
    return False, 0


def _try_swap(
    suppressor: Suppressor, cell: int, certifier: Certifier, budget: int, max_rounds: int
) -> tuple[bool, int]:
    """Publish ``cell``, bar it, let the greedy repair protect what it protected with other cells and
    release again; kept only if fewer individuals end up hidden. Returns (kept, audits run)."""
    s = suppressor
    saved, reasons, before = s.suppressed.copy(), dict(s.reason), _loss_of(s)
    s.suppressed[cell] = False
    s.reason.pop(cell, None)
    s.forbidden[cell] = True
    spent = 0
    try:
        s.close_relations()
        spent += settle(s, certifier.exposed, max_rounds)
        for other in releasable(s):
            if spent >= budget or _loss_of(s) < before:
                break
            if s.suppressed[other]:
                spent += _try_release(s, other, certifier)[1]
        kept = _loss_of(s) < before
    except ProtectionError:
        kept = False
    s.forbidden[cell] = False
    if not kept:
        s.suppressed, s.reason = saved, reasons
    return kept, spent


def clean_up(suppressor: Suppressor, max_audits: int, max_rounds: int = 50) -> int:
    """Remove redundant secondary suppressions from a pattern that passes the audit; returns audits run.

    Two moves, each kept only while the attacker pins no cell: release a secondary cell (largest first),
    then swap one for cheaper cells (kept only if the loss strictly drops), repeated while a swap helps.
    Bounded by ``max_audits`` incremental audits, so a large release stays affordable; cells that fail
    the cheap relation check cost none. Never touches primary or carried-forward cells.
    """
    s = suppressor
    certifier = Certifier(s.lattice, s.k, s.lower, s.carried)
    spent = 0
    improved = True
    while improved and spent < max_audits:
        improved = False
        for cell in releasable(s):
            if spent >= max_audits:
                return spent
            spent += _try_release(s, cell, certifier)[1]
        for cell in releasable(s):
            if spent >= max_audits:
                return spent
            if s.suppressed[cell]:
                kept, cost = _try_swap(s, cell, certifier, max_audits - spent, max_rounds)
                spent += cost
                improved = improved or kept
    return spent
