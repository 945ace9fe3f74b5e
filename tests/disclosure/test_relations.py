"""Relations between populations (issue 13): the attacker holds every population of a release at once and
knows the subset relations the definitions imply (new presentations of a cell are in treatment in that
cell). Patterns safe population by population are attacked through them; the release is protected and
audited as one system."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp
from test_suppress import cube, published

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.audit import AttackModel, audit
from treatment_marts.disclosure.lp_model import InconsistentSystem
from treatment_marts.disclosure.protect import protect, protect_release
from treatment_marts.disclosure.relations import subset_relations
from treatment_marts.disclosure.tables import MartTable, Zeros, cell_key, scoped_key

DIMS = {"area": ["A", "B", "C"], "sex": ["F", "M"]}
# Adults in treatment and, among them, the month's new presentations, per area x sex. Area C is small in
# both; in area B nearly everyone in treatment is not new.
IN_TREATMENT = np.array([[6, 7], [9, 11], [2, 3]])
NEW = np.array([[6, 7], [2, 3], [2, 3]])


def relations_of(sub: MartTable, sup: MartTable) -> list:
    return subset_relations("new_presentations", [sub], "in_treatment", [sup])


def test_new_presentations_safe_alone_are_pinned_by_the_in_treatment_tables() -> None:
    """Each population protected and audited alone passes; the same published tables read together with
    "new presentations <= in treatment, cell by cell" pin both hidden new-presentation cells of area B."""
    it, new = cube("it", DIMS, IN_TREATMENT), cube("np", DIMS, NEW)
    alone_it, alone_new = protect([it]).tables, protect([new]).tables
    assert audit(alone_it).passed and audit(alone_new).passed
    together = audit(
        alone_it + alone_new, scopes=["in_treatment", "new_presentations"], relations=relations_of(new, it)
    )
    assert not together.passed
    pinned = together.intervals[together.intervals["disclosed"]]
    assert set(pinned["mart"]) == {"np"}
    assert (pinned["lower"] == pinned["upper"]).all()  # exact values recovered


def test_protect_release_repairs_what_the_release_audit_would_refuse() -> None:
    it, new = cube("it", DIMS, IN_TREATMENT), cube("np", DIMS, NEW)
    relations = relations_of(new, it)
    out = protect_release({"in_treatment": [it], "new_presentations": [new]}, relations=relations)
    tables = out["in_treatment"].tables + out["new_presentations"].tables
    assert audit(tables, scopes=["in_treatment", "new_presentations"], relations=relations).passed
    # every primary cell still hidden, and more hidden than by the populations alone
    for result, source in ((out["in_treatment"], it), (out["new_presentations"], new)):
        small = source.frame["count"].between(1, 3).to_numpy()
        assert result.tables[0].frame["count"].isna().to_numpy()[small].all()
    alone = protect([new]).tables[0].frame["count"].isna().sum() + protect([it]).tables[0].frame["count"].isna().sum()
    assert sum(int(t.frame["count"].isna().sum()) for t in tables) > alone
    # the added cells say why they are hidden
    assert (out["new_presentations"].log["rule"].str.len() > 0).all()


def test_protect_release_is_deterministic() -> None:
    it, new = cube("it", DIMS, IN_TREATMENT), cube("np", DIMS, NEW)
    runs = [
        protect_release({"in_treatment": [it], "new_presentations": [new]}, relations=relations_of(new, it))
        for _ in range(2)
    ]
    for name in ("in_treatment", "new_presentations"):
        pd.testing.assert_frame_equal(runs[0][name].tables[0].frame, runs[1][name].tables[0].frame)


def test_subset_relations_link_every_cell_both_populations_publish_margins_included() -> None:
    it = cube("it", DIMS, IN_TREATMENT)
    by_area = cube("np_area", {"area": DIMS["area"]}, NEW.sum(axis=1))
    relations = subset_relations("new_presentations", [by_area], "in_treatment", [it], slack=2)
    keys = [cell_key("2024-03", {"area": a}) for a in DIMS["area"]] + [cell_key("2024-03", {})]
    assert [r.terms[0][0] for r in relations] == sorted(scoped_key("new_presentations", k) for k in keys)
    assert all(r.upper == 2 and r.terms[1][0].startswith("in_treatment|") for r in relations)


def test_a_relation_naming_a_cell_no_table_publishes_is_refused() -> None:
    it = cube("it", DIMS, IN_TREATMENT)
    bad = subset_relations("new_presentations", [it], "in_treatment", [it])
    try:
        AttackModel([it], scopes=["in_treatment"], relations=bad)
    except ValueError as exc:
        assert "no table publishes" in str(exc)
    else:
        raise AssertionError("a relation over an unknown population was accepted")


# --- the audit's verdict equals an exact integer programme's, with nested populations --------------------


def exact_nested_intervals(
    sub: MartTable, sup: MartTable, zeros: Zeros
) -> dict[tuple[str, tuple[str, ...]], tuple[float, float]]:
    """Integer min and max of every hidden cell of two area x sex cubes (each Total the sum of its line)
    with sub <= sup cell by cell, derived here from the tables' shape with scipy's MILP."""
    dims = list(sub.dimensions)
    value: dict[tuple[str, tuple[str, ...]], float] = {}
    for name, table in (("sub", sub), ("sup", sup)):
        for row in table.frame.itertuples(index=False):
            value[(name, tuple(getattr(row, d) for d in dims))] = row.count
    system = IntegerSystem(value)
    add = system.add
    levels = {d: DIMS[d] for d in dims}
    for name, labels in list(value):
        for axis, label in enumerate(labels):
            if label == TOTAL:
                members = [(name, (*labels[:axis], lv, *labels[axis + 1 :])) for lv in levels[dims[axis]]]
                add([*((m, 1.0) for m in members), ((name, labels), -1.0)], 0.0, 0.0)
        if name == "sub":
            add([(("sub", labels), 1.0), (("sup", labels), -1.0)], -np.inf, 0.0)
    return system.bounds(zeros)


class IntegerSystem:
    """Linear rows over the hidden cells of ``value`` (cell -> count, NaN where hidden; published cells
    enter as constants), and every hidden cell's integer min and max under them (scipy's MILP)."""

    def __init__(self, value: dict) -> None:
        self.value = value
        self.hidden = [cell for cell, v in value.items() if pd.isna(v)]
        self.column = {cell: j for j, cell in enumerate(self.hidden)}
        self.rows: list[np.ndarray] = []
        self.low: list[float] = []
        self.high: list[float] = []

    def add(self, terms: list, lo: float, hi: float) -> None:
        """``lo <= sum(sign * cell) <= hi``; a row naming no hidden cell adds nothing."""
        coefficient, constant = np.zeros(len(self.hidden)), 0.0
        for cell, sign in terms:
            if cell in self.column:
                coefficient[self.column[cell]] += sign
            else:
                constant += sign * float(self.value[cell])
        if coefficient.any():
            self.rows.append(coefficient)
            self.low.append(lo - constant)
            self.high.append(hi - constant)

    def bounds(self, zeros: Zeros) -> dict:
        if not self.hidden:
            return {}
        constraint = LinearConstraint(np.array(self.rows), self.low, self.high)
        floor = 1 if zeros == "show" else 0
        return {cell: milp_bounds(constraint, j, len(self.hidden), floor) for cell, j in self.column.items()}


def milp_bounds(constraint: LinearConstraint, j: int, n: int, floor: int) -> tuple[float, float]:
    """The integer minimum and maximum of variable ``j`` (inf when unbounded)."""
    bounds = []
    for sense in (1.0, -1.0):
        c = np.zeros(n)
        c[j] = sense
        result = milp(c, constraints=[constraint], integrality=np.ones(n), bounds=Bounds(floor, np.inf))
        bounds.append(np.inf if result.status == 3 or result.fun is None else sense * result.fun)
    return bounds[0], bounds[1]


def hide_mask(table: MartTable, mask: list[bool]) -> MartTable:
    rows = np.asarray(mask[: len(table.frame)], dtype=bool)
    frame = table.frame.assign(count=table.frame["count"].mask(rows))
    frame["status"] = pd.array(np.where(rows, "c", pd.NA), dtype="string")
    return replace(table, frame=frame)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["show", "suppress"]),
    st.lists(st.integers(0, 9), min_size=6, max_size=6),
    st.lists(st.integers(0, 9), min_size=6, max_size=6),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_property_the_release_audit_decides_as_the_exact_integer_programme_with_nested_populations(
    zeros: Zeros, sup_values: list[int], sub_values: list[int], sup_mask: list[bool], sub_mask: list[bool]
) -> None:
    """Random area x sex tables of a population and a subset of it, random cells hidden in both: each
    hidden cell is disclosed by the release audit exactly when the independent integer programme (the
    two tables' lines and sub <= sup per cell) pins it or proves it 1..3."""
    sup_counts = np.array(sup_values).reshape(3, 2)
    sub_counts = np.minimum(sup_counts, np.array(sub_values).reshape(3, 2))
    if zeros == "show":  # a hidden zero would contradict the attacker's a-priori >= 1
        sup_counts, sub_counts = np.maximum(sup_counts, 1), np.maximum(np.minimum(sup_counts, sub_counts), 1)
    sup, sub = cube("sup", DIMS, sup_counts), cube("sub", DIMS, sub_counts)
    hidden_sup, hidden_sub = hide_mask(sup, sup_mask), hide_mask(sub, sub_mask)
    relations = subset_relations("new_presentations", [sub], "in_treatment", [sup])
    exact = exact_nested_intervals(hidden_sub, hidden_sup, zeros)
    result = audit(
        [hidden_sup, hidden_sub], zeros=zeros, scopes=["in_treatment", "new_presentations"], relations=relations
    ).intervals
    assert len(result) == len(exact)
    for row in result.itertuples(index=False):
        labels = tuple(json_labels(row.cell))
        lower, upper = exact[("sub" if row.mart == "sub" else "sup", labels)]
        assert bool(row.disclosed) == bool(upper <= 3 or lower == upper), (row.mart, labels)
        assert row.lower <= lower
        assert pd.isna(row.upper) or upper <= row.upper


def json_labels(cell: str) -> list[str]:
    import json

    labels = json.loads(cell)
    return [labels[d] for d in DIMS]


# --- a distinct-count national Total (issue 18: a client open in two areas counts once nationally) ---------


def distinct_national(name: str, areas: np.ndarray, overlap: np.ndarray) -> MartTable:
    """An area x sex cube whose national cells count each person once: the sum of the areas' cells less
    ``overlap`` (per sex: the clients counted in two areas), declared as MartTable.overlap."""
    table = cube(name, DIMS, areas)
    frame = table.frame.copy()
    for s, sex in enumerate(DIMS["sex"]):
        frame.loc[(frame["area"] == TOTAL) & (frame["sex"] == sex), "count"] -= int(overlap[s])
    frame.loc[(frame["area"] == TOTAL) & (frame["sex"] == TOTAL), "count"] -= int(overlap.sum())
    return MartTable(name, table.dimensions, frame, overlap={"area": int(overlap.sum())})


def exact_distinct_intervals(table: MartTable, zeros: Zeros = "show") -> dict[tuple[str, str], tuple[float, float]]:
    """Integer min and max of every hidden cell of an area x sex table whose national Total is a distinct
    count, from the table's shape alone (scipy's MILP): along sex each Total is the sum of its line; along
    area the areas sum to between the national cell and it + D; the national Total is at least each area's."""
    d = float(table.overlap.get("area", 0))
    value = {(row.area, row.sex): row.count for row in table.frame.itertuples(index=False)}
    system = IntegerSystem(value)
    add = system.add
    for area in [*DIMS["area"], TOTAL]:  # along sex: exact
        add([*(((area, s), 1.0) for s in DIMS["sex"]), ((area, TOTAL), -1.0)], 0.0, 0.0)
    for sex in [*DIMS["sex"], TOTAL]:  # along area: 0 <= sum of areas - national <= D
        add([*(((a, sex), 1.0) for a in DIMS["area"]), ((TOTAL, sex), -1.0)], 0.0, d)
    for area in DIMS["area"]:  # a person counted in an area is counted nationally
        add([((TOTAL, TOTAL), 1.0), ((area, TOTAL), -1.0)], 0.0, np.inf)
    return system.bounds(zeros)


# Areas A and B share 20 clients (12 women, 8 men), counted nationally by their B episodes; C is small.
SHARED_AREAS = np.array([[12, 15], [14, 9], [2, 1]])
SHARED = np.array([12, 8])


def test_a_distinct_national_total_contradicts_an_attacker_who_assumes_it_is_the_sum_of_the_areas() -> None:
    """National 33 where the areas sum to 53: an audit holding "national = sum of areas" finds the true
    release inconsistent (or pins cells at wrong values); holding the inequality form, it decides soundly."""
    table = distinct_national("t", SHARED_AREAS, SHARED)
    cell = published(table)
    assert cell[(TOTAL, TOTAL)] == 33 and sum(int(cell[(a, TOTAL)]) for a in DIMS["area"]) == 53
    rectangle = (table.frame["area"].isin(["A", "B"]) & table.frame["sex"].isin(["F", "M"])).to_list()
    hidden = hide_mask(table, rectangle)
    assumed_sum = MartTable("t", hidden.dimensions, hidden.frame)  # the same cells, no overlap declared
    try:
        audit([assumed_sum])
    except InconsistentSystem:
        pass
    else:
        raise AssertionError("an attacker assuming national = sum of areas found the true release consistent")
    result = audit([hidden]).intervals.set_index("cell")
    exact = exact_distinct_intervals(hidden)
    for row in result.itertuples():
        labels = tuple(json_labels(str(row.Index)))
        lower, upper = exact[labels]
        assert (row.lower, row.upper) == (lower, upper), labels


def test_twenty_clients_in_two_areas_protected_with_the_distinct_total_leak_nothing() -> None:
    """Issue 18's regression: the table with 20 clients in two areas is protected and audited with the
    inequality form; an independent exact integer attacker holding the same relations pins no hidden cell
    and proves none to be 1..3."""
    table = distinct_national("t", SHARED_AREAS, SHARED)
    result = protect([table])
    (protected,) = result.tables
    assert protected.overlap == {"area": 20}  # the published table still says what its Total is
    assert protected.frame.loc[protected.frame["area"] == "C", "count"].isna().all()  # area C: 2, 1, 3
    assert audit([protected]).passed
    exact = exact_distinct_intervals(protected)
    assert exact, "nothing was hidden"
    for labels, (lower, upper) in exact.items():
        assert upper > 3 and upper > lower, (labels, lower, upper)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(1, 9), min_size=6, max_size=6),
    st.lists(st.integers(0, 9), min_size=2, max_size=2),
    st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_property_the_audit_decides_a_distinct_national_total_as_the_exact_integer_programme(
    values: list[int], shared: list[int], mask: list[bool]
) -> None:
    """Random area x sex tables whose areas A and B share clients (at most either area's cell), random
    cells hidden: the audit's verdict on each hidden cell equals the exact integer programme's over the
    inequality form, and its interval contains the programme's."""
    areas = np.array(values).reshape(3, 2)
    overlap = np.minimum(np.array(shared), np.minimum(areas[0], areas[1]))
    table = hide_mask(distinct_national("t", areas, overlap), mask)
    result = audit([table]).intervals
    exact = exact_distinct_intervals(table)
    assert len(result) == len(exact)
    for row in result.itertuples(index=False):
        lower, upper = exact[tuple(json_labels(row.cell))]
        assert bool(row.disclosed) == bool(upper <= 3 or lower == upper), (row.cell, lower, upper)
        assert row.lower <= lower and (pd.isna(row.upper) or upper <= row.upper)
