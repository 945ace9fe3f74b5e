"""Location marts: named sites vs Other, derived from the published area mart and nothing else."""

from __future__ import annotations

import pandas as pd

from treatment_marts.core.config import load_areas
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.location import build_location_mart

AREAS = load_areas(REPO_DIR / "include" / "config")
SCOPE = AREAS.model_copy(
    update={"areas": [a for a in AREAS.areas if a.name in ("Exborough", "Northton", "Southmoor", "Little Haven")]}
)
MART = MartDefinition(
    name="m_location",
    title="t",
    population="in_treatment",
    dimensions=["location", "sex"],
    measure="location",
    derived_from="m_area",
    percent_of="sex",
)


def _published(counts: dict[tuple[str, str], int | None]) -> pd.DataFrame:
    rows = [(a, s, n) for (a, s), n in counts.items()]
    frame = pd.DataFrame(rows, columns=["area", "sex", "count"]).astype({"area": "string", "sex": "string"})
    frame["count"] = frame["count"].astype("Int64")
    frame.insert(0, "period", pd.array(["2024-03"] * len(frame), dtype="string"))
    frame["status"] = pd.array(["c" if pd.isna(n) else pd.NA for n in frame["count"]], dtype="string")
    return frame


def _area_mart(little_haven_male: int | None = None) -> pd.DataFrame:
    counts = {
        ("Exborough", "Male"): 100, ("Exborough", "Female"): 50, ("Exborough", TOTAL): 150,
        ("Northton", "Male"): 80, ("Northton", "Female"): 40, ("Northton", TOTAL): 120,
        ("Southmoor", "Male"): 60, ("Southmoor", "Female"): None, ("Southmoor", TOTAL): 90,
        ("Little Haven", "Male"): little_haven_male, ("Little Haven", "Female"): None, ("Little Haven", TOTAL): 10,
        (TOTAL, "Male"): 250, (TOTAL, "Female"): 120, (TOTAL, TOTAL): 370,
    }  # fmt: skip
    return _published(counts)


def test_named_sites_are_their_area_and_other_is_total_minus_the_named_sites() -> None:
    mart = build_location_mart(_area_mart(), MART, SCOPE, k=3).set_index(["location", "sex"])
    assert list(mart.index.get_level_values(0).unique()) == ["Exborough", "Northton", "Other", TOTAL]
    assert mart.loc[("Exborough", "Male"), "count"] == 100
    # Other = Total - Exborough - Northton: published although Southmoor and Little Haven females are suppressed.
    assert mart.loc[("Other", "Female"), "count"] == 120 - 50 - 40
    assert mart.loc[("Other", "Male"), "count"] == 250 - 100 - 80
    assert mart.loc[(TOTAL, TOTAL), "count"] == 370
    assert mart.loc[("Other", "Female"), "percent"] == round(100 * 30 / 100, 1)
    assert mart["status"].isna().all()


def test_a_withheld_part_withholds_the_cell_and_a_small_result_is_withheld() -> None:
    frame = _area_mart()
    frame.loc[(frame["area"] == "Northton") & (frame["sex"] == "Female"), ["count", "status"]] = [pd.NA, "c"]
    frame.loc[(frame["area"] == TOTAL) & (frame["sex"] == "Male"), "count"] = 183  # Other male = 3
    mart = build_location_mart(frame, MART, SCOPE, k=3).set_index(["location", "sex"])
    assert pd.isna(mart.loc[("Northton", "Female"), "count"]) and mart.loc[("Northton", "Female"), "status"] == "c"
    assert pd.isna(mart.loc[("Other", "Female"), "count"])  # needs the withheld Northton cell
    assert pd.isna(mart.loc[("Other", "Male"), "count"]) and mart.loc[("Other", "Male"), "status"] == "c"  # 1..k
    assert pd.isna(mart.loc[("Other", "Male"), "percent"])
