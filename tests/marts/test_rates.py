"""Percentages come from published counts only and are withheld with their numerator or denominator."""

from __future__ import annotations

import pandas as pd

from treatment_marts.marts.rates import add_percentages


def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": ["2024-03"] * 6,
            "area": ["A", "A", "A", "B", "B", "B"],
            "sex": ["Male", "Female", "Total", "Male", "Female", "Total"],
            "count": pd.array([30, 10, 40, None, None, 9], dtype="Int64"),
            "status": pd.array([None, None, None, "c", "c", None], dtype="string"),
        }
    )


def test_share_of_the_margin() -> None:
    result = add_percentages(table(), ["area", "sex"], "sex")
    shares = result.set_index(["area", "sex"])["percent"]
    assert shares[("A", "Male")] == 75.0 and shares[("A", "Female")] == 25.0 and shares[("A", "Total")] == 100.0


def test_suppressed_numerator_or_denominator_withholds_the_percentage() -> None:
    frame = table()
    frame.loc[2, ["count", "status"]] = [pd.NA, "c"]  # A's total suppressed
    result = add_percentages(frame, ["area", "sex"], "sex").set_index(["area", "sex"])["percent"]
    assert pd.isna(result[("A", "Male")]) and pd.isna(result[("A", "Female")])
    assert pd.isna(result[("B", "Male")]) and pd.isna(result[("B", "Female")])
    assert result[("B", "Total")] == 100.0


def _published(column: str, cells: dict[tuple[str, str], int | None]) -> pd.DataFrame:
    """A published mart by area and ``column`` (substance group Total): a missing count is withheld (c)."""
    rows = [{"area": a, "substance_group": "Total", column: level, "count": c} for (a, level), c in cells.items()]
    frame = pd.DataFrame(rows).assign(period="2025-03")
    frame["count"] = frame["count"].astype("Int64")
    frame["status"] = pd.array(["c" if pd.isna(c) else None for c in frame["count"]], dtype="string")
    return frame


def _exits() -> pd.DataFrame:
    success, total = "Successful completion", "Total"
    return _published(
        "discharge_group",
        {("A", success): 12, ("A", total): 40, ("B", success): None, ("B", total): 9}
        | {("Total", success): 20, ("Total", total): 49},
    )


def _in_treatment() -> pd.DataFrame:
    return _published(
        "sex",
        {("A", "Female"): None, ("A", "Total"): 300, ("B", "Female"): None, ("B", "Total"): 80}
        | {("Total", "Female"): None, ("Total", "Total"): None},
    )


def _rate() -> pd.DataFrame:
    from treatment_marts.marts.rates import build_completion_rate

    return build_completion_rate(
        _exits(),
        _in_treatment(),
        "2025-03",
        exits_dimensions=["area", "substance_group", "discharge_group"],
        in_treatment_dimensions=["area", "substance_group", "sex"],
    )


def test_the_completion_rate_is_the_ratio_of_two_published_cells_and_withheld_whole_with_either() -> None:
    """Successful completions over adults in treatment (sex = Total), both as published: A is 12 of 300;
    B's completions are withheld in the exits mart and the national base in the in-treatment mart, so those
    rows show nothing at all (not the count either mart already withholds, nor a percentage of it)."""
    built = _rate()
    rate = built.set_index("area")
    assert rate.loc["A", ["count", "in_treatment", "percent"]].tolist() == [12, 300, 4.0]
    for area in ("B", "Total"):
        assert rate.loc[area, "status"] == "c"
        assert rate.loc[area, ["count", "in_treatment", "percent"]].isna().all()
    assert list(built.columns) == [
        "period",
        "area",
        "substance_group",
        "count",
        "in_treatment",
        "percent",
        "status",
    ]


def test_a_completion_rate_needs_an_exits_numerator_and_an_in_treatment_base_of_its_window() -> None:
    import pytest
    import yaml

    from treatment_marts.core.settings import REPO_DIR
    from treatment_marts.marts.definitions import MartsConfig

    config = yaml.safe_load((REPO_DIR / "include" / "config" / "marts.yaml").read_text())
    MartsConfig.model_validate(config)  # the shipped one is valid
    rate = next(m for m in config["marts"] if m["measure"] == "completion_rate")
    for change, message in (
        ({"denominator_from": "exits_reason_area_substance_fy"}, "denominator_from must name an in_treatment"),
        ({"derived_from": "in_treatment_substance_area_sex_fy"}, "derived_from must be an exits mart"),
        ({"denominator_from": "in_treatment_substance_area_sex_rolling_12"}, "window financial_year"),
        ({"dimensions": ["area"]}, "dimensions [area, substance_group]"),
    ):
        broken = {**config, "marts": [({**m, **change} if m is rate else m) for m in config["marts"]]}
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            MartsConfig.model_validate(broken)
