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
