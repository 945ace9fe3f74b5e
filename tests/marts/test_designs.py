"""Declared table designs (marts.yaml ``designs``): strict configuration, and which design each area takes.

A design is a promise to the reader and to information governance about what is published for an area,
so a misspelt category, an unknown key or designs out of order must fail on load, never publish the
category it meant to merge.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from treatment_marts.core.config import ConfigError, load_areas, load_rules
from treatment_marts.core.labels import TOTAL
from treatment_marts.marts import dimension_levels, load_marts
from treatment_marts.marts.definitions import MartsConfig
from treatment_marts.marts.designs import Design, a_priori_cells, check_levels, choose_designs, size_bounds

CONFIG = Path(__file__).resolve().parents[2] / "include" / "config"
OPIATES = ["Opiate (not crack)", "Opiate and crack"]
NDTMS = {
    "substance_group": {"Opiate": OPIATES, "Non-opiate only (with crack)": ["Crack (not opiate)", "Non-opiate only"]}
}


def designs(*extra: dict) -> list[dict]:
    return [{"name": "full", "description": "Every category."}, *extra]


def config_with(designs_block: list[dict]) -> MartsConfig:
    raw = yaml.safe_load((CONFIG / "marts.yaml").read_text())
    raw["designs"] = designs_block
    return MartsConfig.model_validate(raw)


def test_the_shipped_designs_load_and_name_declared_categories() -> None:
    config = load_marts(CONFIG)
    assert [d.name for d in config.designs] == ["full", "substance_three_groups"]
    levels = dimension_levels(load_rules(CONFIG), load_areas(CONFIG))
    check_levels(config.designs, levels)  # every merged category is a declared level
    coarse = config.designs[1]
    assert coarse.merged("substance_group") == {*OPIATES, "Crack (not opiate)", "Non-opiate only"}
    assert coarse.group_of("substance_group", "Opiate and crack") == "Opiate or non-opiate only"
    assert coarse.group_of("substance_group", "Alcohol only") is None
    assert coarse.group_of("substance_group", "Non-opiate and alcohol") is None


def test_an_unknown_key_in_a_design_is_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        config_with(
            designs({"name": "coarse", "description": "x", "below_adults": 100, "collapse": NDTMS, "tables": 2})
        )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([{"name": "coarse", "description": "x", "below_adults": 100, "collapse": NDTMS}], "first design"),
        (designs({"name": "coarse", "description": "x", "collapse": NDTMS}), "below_adults smaller"),
        (
            designs(
                {"name": "a", "description": "x", "below_adults": 100, "collapse": NDTMS},
                {"name": "b", "description": "x", "below_adults": 150, "collapse": NDTMS},
            ),
            "below_adults smaller",
        ),
        (
            designs(
                {"name": "a", "description": "x", "below_adults": 200, "collapse": NDTMS},
                {"name": "b", "description": "x", "below_adults": 100, "collapse": {}},
            ),
            "does not keep a's substance_group group 'Opiate'",
        ),
        (
            designs({"name": "a", "description": "x", "below_adults": 100, "collapse": {"sex": {"M": ["Male"]}}}),
            "two or more",
        ),
        (
            designs(
                {
                    "name": "a",
                    "description": "x",
                    "below_adults": 100,
                    "collapse": {"sex": {"M": ["Male", "Female"], "F": ["Female", "Not known"]}},
                }
            ),
            "in two groups",
        ),
    ],
)
def test_designs_out_of_order_or_malformed_are_refused(block: list[dict], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config_with(block)


def test_a_misspelt_category_or_a_merged_label_that_is_already_a_category_is_refused() -> None:
    levels = dimension_levels(load_rules(CONFIG), load_areas(CONFIG))
    typo = Design(
        name="a",
        description="x",
        below_adults=9,
        collapse={"substance_group": {"Opiate": ["Opiate", "Opiate and crack"]}},
    )
    with pytest.raises(ConfigError, match="no categories \\['Opiate'\\]"):
        check_levels([typo], levels)
    clash = Design(name="a", description="x", below_adults=9, collapse={"substance_group": {"Alcohol only": OPIATES}})
    with pytest.raises(ConfigError, match="already substance_group categories"):
        check_levels([clash], levels)
    with pytest.raises(ConfigError, match="cannot collapse dimension 'area'"):
        check_levels([Design(name="a", description="x", below_adults=9, collapse={"area": {"X": ["A", "B"]}})], levels)


def test_an_area_takes_the_coarsest_design_its_size_is_under_and_the_national_rows_the_coarsest_in_use() -> None:
    config = config_with(
        designs(
            {"name": "ndtms", "description": "x", "below_adults": 200, "collapse": NDTMS},
            {
                "name": "tiny",
                "description": "x",
                "below_adults": 50,
                "collapse": {**NDTMS, "sex": {"Male or female": ["Male", "Female"]}},
            },
        )
    )
    chosen = choose_designs(
        config.designs, {"Big": 1000, "Small": 199, "Tiny": 49, "Edge": 200}, ["Big", "Small", "Tiny", "Edge"]
    )
    assert [(c.area, c.design) for c in chosen] == [
        ("Big", "full"),
        ("Small", "ndtms"),
        ("Tiny", "tiny"),
        ("Edge", "full"),  # 200 is not fewer than 200
        (TOTAL, "tiny"),
    ]
    assert chosen[1].reason == "fewer than 200 adults in treatment"
    # naming the design tells the reader each area's size band; the release audit is given these bounds
    assert size_bounds(config.designs, chosen) == [
        ("Big", 200, None),
        ("Small", 50, 199),
        ("Tiny", None, 49),
        ("Edge", 200, None),
    ]
    everyone_full = choose_designs(config.designs, {"Big": 1000}, ["Big"])
    assert [(c.area, c.design) for c in everyone_full] == [("Big", "full"), (TOTAL, "full")]
    assert choose_designs([], {"Big": 1}, ["Big"]) == []


def test_the_cells_a_design_does_not_publish_are_its_areas_and_the_national_non_zero_merged_cells() -> None:
    config = config_with(designs({"name": "ndtms", "description": "x", "below_adults": 200, "collapse": NDTMS}))
    chosen = choose_designs(config.designs, {"Big": 1000, "Small": 20}, ["Big", "Small"])
    rows = [
        (area, substance, count)
        for area, counts in {"Big": [500, 100, 0], "Small": [4, 0, 6], TOTAL: [504, 100, 6]}.items()
        for substance, count in zip(["Opiate and crack", "Non-opiate only", "Alcohol only"], counts, strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["area", "substance_group", "count"]).astype({"count": "Int64"})
    hidden = frame[a_priori_cells(frame, ["area", "substance_group"], config.designs, chosen).to_numpy()]
    # Small's opiate cell and the national opiate and non-opiate cells; Small's zero is published as a
    # zero (zeros: show), Alcohol only is not merged, Big is at the full design
    assert sorted(zip(hidden["area"], hidden["substance_group"], strict=True)) == [
        ("Small", "Opiate and crack"),
        (TOTAL, "Non-opiate only"),
        (TOTAL, "Opiate and crack"),
    ]
    no_area = frame[frame["area"] == TOTAL].drop(columns="area")
    assert not a_priori_cells(no_area, ["substance_group"], config.designs, chosen).any()
