"""Mart builder: full cube with every level (zeros included) and margins that add up."""

from __future__ import annotations

import pandas as pd
import pytest

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts import TOTAL, build_mart, dimension_levels, load_marts
from treatment_marts.marts.builder import MartBuildError
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.populations import mark_counted_nationally, national_overlap

CONFIG = REPO_DIR / "include" / "config"
LEVELS = dimension_levels(load_rules(CONFIG), load_areas(CONFIG))
MART = MartDefinition(name="t", title="t", population="in_treatment", dimensions=["area", "sex"], measure="clients")


def clients(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["area", "sex"])


def test_every_level_is_listed_and_margins_add_up() -> None:
    table = build_mart(clients([("Exborough", "Male")] * 5 + [("Northton", "Female")] * 2), MART, "2024-03", LEVELS)
    n_area, n_sex = len(LEVELS["area"]), len(LEVELS["sex"])
    assert len(table) == (n_area + 1) * (n_sex + 1)
    assert list(table.columns) == ["period", "area", "sex", "count", "status"]
    assert str(table["count"].dtype) == "Int64" and table["status"].isna().all()
    cell = table.set_index(["area", "sex"])["count"]
    assert cell[("Exborough", "Male")] == 5 and cell[("Little Haven", "Female")] == 0
    assert cell[(TOTAL, TOTAL)] == 7
    inner = table[(table["area"] != TOTAL) & (table["sex"] != TOTAL)]
    by_area = inner.groupby("area")["count"].sum()
    for area, total in by_area.items():
        assert cell[(area, TOTAL)] == total
    for sex, total in inner.groupby("sex")["count"].sum().items():
        assert cell[(TOTAL, sex)] == total


def test_order_is_deterministic_with_total_last() -> None:
    data = clients([("Northton", "Female"), ("Exborough", "Male")])
    first = build_mart(data, MART, "2024-03", LEVELS)
    again = build_mart(data.iloc[::-1], MART, "2024-03", LEVELS)
    pd.testing.assert_frame_equal(first, again)
    assert first["area"].iloc[-1] == TOTAL and first["sex"].iloc[-1] == TOTAL
    assert first["area"].iloc[0] == LEVELS["area"][0]


def test_undeclared_category_fails_with_the_dimension_named() -> None:
    with pytest.raises(MartBuildError, match="dimension sex .*'Unknown'"):
        build_mart(clients([("Exborough", "Unknown")]), MART, "2024-03", LEVELS)


def test_shipped_marts_build_over_three_dimensions() -> None:
    config = load_marts(CONFIG, set(LEVELS))
    mart = config.marts[0]
    frame = pd.DataFrame({"area": ["Exborough"], "substance_group": ["Alcohol only"], "sex": ["Female"]})
    table = build_mart(frame, mart, "2024-03", LEVELS)
    sizes = [len(LEVELS[d]) + 1 for d in mart.dimensions]
    assert len(table) == sizes[0] * sizes[1] * sizes[2]
    assert int(table["count"].sum()) == 8  # one client counted in the cell and in each of its 7 margins


def test_a_client_open_in_two_areas_is_in_both_areas_and_once_in_the_national_total() -> None:
    """Issue 18: 20 clients open in Exborough and in Northton (one person, the same attributor, two area
    pseudonyms) were counted twice in the national Total. Each area counts the clients it treats; the
    national Total counts each person once, by their latest episode over both areas."""
    early, late = pd.Timestamp("2024-01-05"), pd.Timestamp("2024-02-20")
    rows = []
    for i in range(20):  # in both areas: Exborough's episode is older, so Northton's counts nationally
        rows.append(("Exborough", "Female", f"x{i}", f"p{i}", early))
        rows.append(("Northton", "Female", f"n{i}", f"p{i}", late))
    rows += [("Exborough", "Male", f"x1{i}", f"q{i}", early) for i in range(30)]  # in one area only
    frame = pd.DataFrame(rows, columns=["area", "sex", "client_key", "person_key", "triage_date"])
    frame["agency_code"], frame["episode_id"] = "A", frame["client_key"]
    population = mark_counted_nationally(frame, ["triage_date", "agency_code", "episode_id"])
    assert national_overlap(population) == 20
    cell = build_mart(population, MART, "2024-03", LEVELS).set_index(["area", "sex"])["count"]
    assert cell[("Exborough", TOTAL)] == 50 and cell[("Northton", TOTAL)] == 20
    assert cell[(TOTAL, TOTAL)] == 50  # distinct people: 20 + 30, not 70
    assert cell[(TOTAL, "Female")] == 20 and cell[(TOTAL, "Male")] == 30
    assert cell[(TOTAL, "Female")] + cell[(TOTAL, "Male")] == cell[(TOTAL, TOTAL)]  # other margins exact
    sum_of_areas = sum(int(cell[(a, TOTAL)]) for a in LEVELS["area"])
    assert cell[(TOTAL, TOTAL)] <= sum_of_areas <= cell[(TOTAL, TOTAL)] + national_overlap(population)


def test_the_national_cells_count_a_person_by_their_latest_episode_over_all_areas() -> None:
    """A person whose older Exborough episode and newer Northton episode fall in different cells is in
    one cell in each area and in the Northton episode's cell nationally."""
    frame = pd.DataFrame(
        {
            "area": ["Exborough", "Northton"],
            "sex": ["Female", "Female"],
            "substance_group": ["Alcohol only", "Opiate (not crack)"],
            "client_key": ["x", "n"],
            "person_key": ["p", "p"],
            "triage_date": [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-02-20")],
            "agency_code": ["A", "B"],
            "episode_id": ["1", "2"],
        }
    )
    mart = MartDefinition(
        name="s", title="s", population="in_treatment", dimensions=["area", "substance_group"], measure="clients"
    )
    cell = build_mart(
        mark_counted_nationally(frame, ["triage_date", "agency_code", "episode_id"]), mart, "2024-03", LEVELS
    )
    counts = cell.set_index(["area", "substance_group"])["count"]
    opiate, alcohol = "Opiate (not crack)", "Alcohol only"
    assert counts[("Exborough", alcohol)] == 1 and counts[("Northton", opiate)] == 1
    assert counts[(TOTAL, opiate)] == 1 and counts[(TOTAL, alcohol)] == 0 and counts[(TOTAL, TOTAL)] == 1
