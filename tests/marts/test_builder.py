"""Mart builder: full cube with every level (zeros included) and margins that add up."""

from __future__ import annotations

import pandas as pd
import pytest

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts import TOTAL, build_mart, dimension_levels, load_marts
from treatment_marts.marts.builder import MartBuildError
from treatment_marts.marts.definitions import MartDefinition

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
