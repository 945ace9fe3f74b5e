"""The independent audit's verdicts: integer-valid (issue 13: an LP relaxation bound of 3.5 is no bound of
an integer count), equal to an exact integer programme's, and the same in the verdict-only mode the
suppressor uses on every round as in the full interval computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from test_suppress import cube

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.audit import AttackModel, attack_intervals, audit
from treatment_marts.disclosure.lattice import build_lattice
from treatment_marts.disclosure.optimal_gap import cube_table
from treatment_marts.disclosure.protect import audit_exposure, protect
from treatment_marts.disclosure.secondary import Suppressor, settle
from treatment_marts.disclosure.tables import MartTable, Zeros, cell_key


@pytest.mark.parametrize("seed", range(12))
def test_verdict_only_discloses_exactly_the_cells_the_full_intervals_disclose(seed: int) -> None:
    rng = np.random.default_rng(seed)
    inner = np.where(rng.random((4, 5)) < 0.3, rng.integers(1, 4, (4, 5)), rng.integers(4, 40, (4, 5)))
    model = AttackModel([cube_table(inner)])
    truth = model.cells.groupby("key")["value"].first().astype(float)
    hidden = pd.Series(rng.random(len(truth)) < 0.35, index=truth.index)
    published = truth.where(~hidden)
    exact = model.intervals(published, k=3, zeros="show", reference=truth).set_index("key")
    verdict = model.intervals(published, k=3, zeros="show", reference=truth, verdict_only=True).set_index("key")
    assert hidden.sum() > 0
    pd.testing.assert_series_equal(verdict["disclosed"], exact["disclosed"])
    # a cell judged safe without its own LP reports a feasible value, never more than the true maximum
    assert (verdict["upper"] <= exact["upper"] + 1e-6).all()
    assert (verdict.loc[verdict["disclosed"], "upper"] == exact.loc[exact["disclosed"], "upper"]).all()


# --- integer-valid verdicts (issue 13) -------------------------------------------------------------------
#
# The attacker knows every count is an integer. On this 3 x 3 x 3 table with all its margins, hiding the 17
# cells below leaves cell (a1, b1, c1) (true count 2) with an LP relaxation maximum of 3.5: the relaxation
# would call it safe (upper bound above 3), but no integer table fits the published cells with 4 there.

HALVES = np.array(
    [
        [[1, 7, 7], [5, 8, 4], [2, 5, 8]],
        [[8, 6, 2], [1, 2, 6], [7, 1, 5]],
        [[5, 1, 3], [7, 4, 8], [6, 7, 6]],
    ]
)
HALVES_HIDDEN = [
    ("a0", "b0", "c0"), ("a0", "b0", "c2"), ("a0", "b1", "c0"), ("a0", "b1", "c1"), ("a0", TOTAL, "c1"),
    ("a0", TOTAL, "c2"), ("a1", "b0", "c1"), ("a1", "b0", "c2"), ("a1", "b1", "c1"), ("a1", "b1", "c2"),
    ("a2", "b0", "c0"), ("a2", "b0", "c1"), ("a2", "b1", "c0"), ("a2", "b1", "c1"), ("a2", "b1", "c2"),
    ("a2", TOTAL, "c1"), ("a2", TOTAL, "c2"),
]  # fmt: skip
TARGET = cell_key("2024-03", {"a": "a1", "b": "b1", "c": "c1"})


def three_way(counts: np.ndarray) -> MartTable:
    return cube("abc", {d: [f"{d}{i}" for i in range(n)] for d, n in zip("abc", counts.shape, strict=True)}, counts)


def hide(table: MartTable, cells: list[tuple[str, ...]]) -> MartTable:
    frame = table.frame.copy()
    rows = frame[list(table.dimensions)].apply(tuple, axis=1).isin(cells).to_numpy()
    frame["count"] = frame["count"].mask(rows)
    frame["status"] = pd.array(np.where(rows, "c", pd.NA), dtype="string")
    return MartTable(table.name, table.dimensions, frame)


def exact_integer_interval(table: MartTable, zeros: Zeros = "show") -> dict[str, tuple[float, float]]:
    """Integer min and max of every hidden cell, derived here from the table's own lines (a cube with
    every margin: each Total is the sum of its line), with scipy's MILP; independent of the audit."""
    dims = list(table.dimensions)
    frame = table.frame
    labels = [tuple(row) for row in frame[dims].itertuples(index=False, name=None)]
    value = dict(zip(labels, frame["count"], strict=True))
    hidden = [cell for cell in labels if pd.isna(value[cell])]
    column = {cell: i for i, cell in enumerate(hidden)}
    levels = {d: sorted(set(frame[d]) - {TOTAL}) for d in dims}
    rows, rhs = [], []
    for cell in labels:
        for axis, label in enumerate(cell):
            if label != TOTAL:
                continue
            members = [(*cell[:axis], level, *cell[axis + 1 :]) for level in levels[dims[axis]]]
            coefficient = np.zeros(len(hidden))
            constant = 0.0
            for term, sign in [*((m, 1.0) for m in members), (cell, -1.0)]:
                if term in column:
                    coefficient[column[term]] += sign
                else:
                    constant += sign * float(value[term])
            if coefficient.any():
                rows.append(coefficient)
                rhs.append(-constant)
    if not hidden:
        return {}
    constraint = LinearConstraint(np.array(rows), rhs, rhs)
    floor = 1 if zeros == "show" else 0
    out = {}
    for cell, j in column.items():
        bounds = []
        for sense in (1.0, -1.0):
            c = np.zeros(len(hidden))
            c[j] = sense
            result = milp(c, constraints=[constraint], integrality=np.ones(len(hidden)), bounds=Bounds(floor, np.inf))
            bounds.append(np.inf if result.status == 3 or result.fun is None else sense * result.fun)
        out[cell_key("2024-03", dict(zip(dims, cell, strict=True)))] = (bounds[0], bounds[1])
    return out


def lp_relaxation_maximum(table: MartTable, key: str) -> float:
    """The relaxation's bound the audit used to trust: the same lines, without integrality."""
    model = AttackModel([table])
    values = model.cells.groupby("key")["value"].first()
    unknown = sorted(values[values.isna()].index)
    known = values.dropna()
    rows, rhs = [], []
    for total, members in model.equations:
        terms = [(m, 1.0) for m in members] + [(total, -1.0)]
        coefficient = np.array([sum(c for key_, c in terms if key_ == u) for u in unknown])
        if coefficient.any():
            rows.append(coefficient)
            rhs.append(-sum(c * known[key_] for key_, c in terms if key_ in known.index))
    c = -(np.array(unknown) == key).astype(float)
    result = linprog(c, A_eq=np.array(rows), b_eq=rhs, bounds=(1, None), method="highs")
    return float(-result.fun)


def integer_verdict(lower: float, upper: float, k: int = 3) -> bool:
    return bool(upper <= k or lower == upper)


def test_the_lp_relaxation_leaves_a_cell_at_3_5_that_the_integer_programme_proves_at_most_3() -> None:
    published = hide(three_way(HALVES), HALVES_HIDDEN)
    assert exact_integer_interval(published)[TARGET] == (2, 3)
    assert lp_relaxation_maximum(published, TARGET) == pytest.approx(3.5)
    intervals = attack_intervals([published], k=3).set_index("key")
    assert intervals.loc[TARGET, "upper"] == 3, "the integer interval, not the relaxation's 3.5"
    assert bool(intervals.loc[TARGET, "disclosed"]) and intervals.loc[TARGET, "reason"] == "proved to be at most 3"
    assert not audit([published], k=3).passed


def test_the_suppressor_widens_around_a_cell_only_the_integer_programme_exposes() -> None:
    """The suppressor's own attacker (the audit's verdict-only mode) flags the cell, and settling the
    pattern hides enough that no hidden cell is disclosed by the exact integer programme."""
    table = three_way(HALVES)
    lattice = build_lattice([table])
    suppressor = Suppressor(lattice, 3, "show")
    wanted = {cell_key("2024-03", dict(zip("abc", cell, strict=True))) for cell in HALVES_HIDDEN}
    suppressor.suppressed[:] = [key in wanted for key in lattice.keys]
    exposed = audit_exposure([table], lattice, 3, "show")
    assert lattice.keys.index(TARGET) in exposed(suppressor.suppressed)
    settle(suppressor, exposed, 50)
    rows = suppressor.suppressed[lattice.rows[0]]
    assert rows.sum() > len(HALVES_HIDDEN)
    frame = table.frame.assign(count=table.frame["count"].mask(rows))
    exact = exact_integer_interval(MartTable(table.name, table.dimensions, frame))
    assert not any(integer_verdict(lower, upper) for lower, upper in exact.values())


def test_protect_hides_enough_where_the_relaxation_passed_a_group_of_at_most_3() -> None:
    """Before issue 13, protect() published this 3 x 3 x 2 table (with its a x b margin) with a hidden
    cell the relaxation put in [1, 3.5] and the integer programme in [1, 3]. Now every hidden cell has an
    integer interval above 3 and of two values or more."""
    counts = np.array([[[1, 4], [2, 3], [6, 0]], [[1, 1], [5, 9], [1, 7]], [[3, 0], [1, 2], [5, 7]]])
    dims = {d: [f"{d}{i}" for i in range(n)] for d, n in zip("abc", counts.shape, strict=True)}
    tables = [cube("abc", dims, counts), cube("ab", {"a": dims["a"], "b": dims["b"]}, counts.sum(axis=2))]
    result = protect(tables, k=3)
    assert audit(result.tables, k=3).passed
    exact = exact_integer_interval(result.tables[0])
    assert exact and not any(integer_verdict(lower, upper) for lower, upper in exact.values())


def _mask_of(counts: np.ndarray, hidden: list[tuple[str, ...]]) -> list[bool]:
    frame = three_way(counts).frame
    return [tuple(row) in set(hidden) for row in frame[["a", "b", "c"]].itertuples(index=False, name=None)]


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@example((3, 3, 3), "show", HALVES.ravel().tolist(), _mask_of(HALVES, HALVES_HIDDEN))  # the relaxation's 3.5
@given(
    st.tuples(st.integers(2, 3), st.integers(2, 3), st.integers(2, 3)),
    st.sampled_from(["show", "suppress"]),
    st.lists(st.integers(0, 9), min_size=27, max_size=27),
    st.lists(st.booleans(), min_size=64, max_size=64),
)
def test_property_the_audit_decides_every_hidden_cell_as_the_exact_integer_programme_does(
    shape: tuple[int, int, int], zeros: Zeros, values: list[int], mask: list[bool]
) -> None:
    """On random linked tables (a 3-way table and one of its 2-way margins) with random cells hidden, each
    hidden cell is disclosed by the audit exactly when the integer programme derived independently above
    proves it a group of 1..3 or pins it; the audit's interval always holds the integer one."""
    counts = np.array(values[: int(np.prod(shape))]).reshape(shape)
    if zeros == "show":
        counts = np.maximum(counts, 1)  # a hidden zero would contradict the attacker's a-priori >= 1
    abc = three_way(counts)
    cells = [tuple(row) for row in abc.frame[list(abc.dimensions)].itertuples(index=False, name=None)]
    hidden = [cell for cell, h in zip(cells, mask, strict=False) if h]
    ab = cube("ab", {d: [f"{d}{i}" for i in range(n)] for d, n in zip("ab", shape, strict=False)}, counts.sum(axis=2))
    tables = [hide(abc, hidden), hide(ab, [cell[:2] for cell in hidden if cell[2] == TOTAL])]
    exact = exact_integer_interval(tables[0], zeros)
    intervals = attack_intervals(tables, k=3, zeros=zeros).set_index("key")
    assert set(intervals.index) == set(exact)
    for key, (lower, upper) in exact.items():
        assert bool(intervals.loc[key, "disclosed"]) == integer_verdict(lower, upper), key
        assert intervals.loc[key, "lower"] <= lower
        assert pd.isna(intervals.loc[key, "upper"]) or upper <= intervals.loc[key, "upper"]


def test_a_whole_system_audit_narrowed_to_some_scopes_is_the_audit_that_reports_only_them() -> None:
    """`reported` (the window repair's last round reused as the stage's audit) gives the rows, order and
    verdicts of `audit(report=...)` on the same system: the context's cells are solved, not reported."""
    from treatment_marts.disclosure.audit import reported

    first, second = hide(three_way(HALVES), HALVES_HIDDEN), hide(three_way(HALVES + 1), HALVES_HIDDEN[:6])
    tables, scopes = [second, first], ["context", "release"]
    whole = audit(tables, scopes=scopes)
    only = audit(tables, scopes=scopes, report=[1])
    narrowed = reported(whole, ["release"])
    assert len(whole.intervals) > len(narrowed.intervals) > 0
    pd.testing.assert_frame_equal(narrowed.intervals, only.intervals)
