"""The reference-population file: validated against the areas and the marts' labels, labelled SYNTHETIC."""

from __future__ import annotations

from pathlib import Path

import pytest

from treatment_marts.core.config import ConfigError, load_areas, load_rules
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts import dimension_levels, load_marts
from treatment_marts.marts.reference_population import build_reference_population, load_population

CONFIG = REPO_DIR / "include" / "config"
AREAS = load_areas(CONFIG)
LEVELS = dimension_levels(load_rules(CONFIG), AREAS)
HEADER = "area,characteristic,category,population,year,source,synthetic\n"


def test_the_shipped_file_is_valid_synthetic_and_sums_alike_per_area() -> None:
    rows = load_population(CONFIG / "reference" / "population.csv", AREAS, LEVELS)
    assert {r.area for r in rows} == {a.name for a in AREAS.areas}
    assert all(r.synthetic and r.source.startswith("SYNTHETIC") for r in rows)


def test_the_mart_has_shares_per_area_and_a_total_that_sums_the_areas() -> None:
    rows = load_population(CONFIG / "reference" / "population.csv", AREAS, LEVELS)
    mart = next(m for m in load_marts(CONFIG).marts if m.name == "reference_population_ethnicity_area")
    frame = build_reference_population(rows, mart, AREAS, "2024-03").set_index(["area", "ethnicity_group"])
    white = sum(r.population for r in rows if r.category == "White")
    assert frame.loc[(TOTAL, "White"), "count"] == white
    assert frame.loc[("Exborough", TOTAL), "percent"] == 100.0
    exborough = [r for r in rows if r.area == "Exborough" and r.characteristic == "ethnicity_group"]
    asian = next(r.population for r in exborough if r.category.startswith("Asian"))
    share = frame.loc[("Exborough", "Asian / Asian British"), "percent"]
    assert share == round(100 * asian / sum(r.population for r in exborough), 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Atlantis,sex,Male,10,2021,SYNTHETIC x,yes\n", "Atlantis"),
        ("Exborough,sex,Men,10,2021,SYNTHETIC x,yes\n", "not a mart label"),
        ("Exborough,sex,Male,10,2021,ONS Census,yes\n", "SYNTHETIC"),
        ("Exborough,sex,Male,10,2021,SYNTHETIC x,yes\nExborough,age_band,18-24,9,2021,SYNTHETIC x,yes\n", "sum to"),
    ],
)
def test_a_bad_file_fails_with_the_reason(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "population.csv"
    path.write_text(HEADER + body)
    with pytest.raises(ConfigError, match=message):
        load_population(path, AREAS, LEVELS)
