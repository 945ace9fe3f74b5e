"""GSS codes beside area names: an attribute of the area, not a dimension."""

from __future__ import annotations

import pandas as pd
import pytest

from treatment_marts.core.config import load_areas
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts.codes import AREA_CODE, with_area_codes

AREAS = load_areas(REPO_DIR / "include" / "config")


def _mart() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": ["2024-03"] * 3,
            "area": pd.array(["Exborough", "Little Haven", TOTAL], dtype="string"),
            "sex": ["Male"] * 3,
            "count": pd.array([10, 4, 14], dtype="Int64"),
            "status": pd.array([None] * 3, dtype="string"),
        }
    )


def test_the_code_from_areas_yaml_sits_right_after_the_name_and_total_has_none() -> None:
    coded = with_area_codes(_mart(), AREAS)
    assert list(coded.columns) == ["period", "area", AREA_CODE, "sex", "count", "status"]
    assert coded[AREA_CODE].tolist()[:2] == ["E08900001", "E06900008"]
    assert pd.isna(coded[AREA_CODE].iloc[2])
    assert coded[AREA_CODE].dtype == "string"


def test_a_table_without_areas_is_unchanged_and_an_unknown_area_is_refused() -> None:
    location = _mart().drop(columns="area").assign(location=["Other"] * 3)
    assert with_area_codes(location, AREAS) is location
    bad = _mart()
    bad.loc[0, "area"] = "Atlantis"
    with pytest.raises(ValueError, match="Atlantis"):
        with_area_codes(bad, AREAS)


def test_codes_are_added_once() -> None:
    once = with_area_codes(_mart(), AREAS)
    assert list(with_area_codes(once, AREAS).columns) == list(once.columns)
