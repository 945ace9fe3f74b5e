"""Percentages derived from protected counts only.

A percentage with a known base reveals its count (seed 000 published 4% of a base of 73-93: 3 people).
So a percentage is computed *after* suppression from published cells alone, and is withheld whenever its
numerator or its denominator is suppressed: it never carries information the counts do not.
"""

from __future__ import annotations

import pandas as pd

from treatment_marts.marts.builder import TOTAL


def add_percentages(table: pd.DataFrame, dimensions: list[str], percent_of: str, decimals: int = 1) -> pd.DataFrame:
    """Add ``percent``: each cell's share of its margin along ``percent_of`` (the row with ``percent_of`` = Total)."""
    if percent_of not in dimensions:
        raise ValueError(f"percent_of {percent_of!r} is not one of the mart's dimensions {dimensions}")
    others = [d for d in dimensions if d != percent_of]
    denominators = table[table[percent_of] == TOTAL][others + ["count"]].rename(columns={"count": "_denominator"})
    merged = (
        table.merge(denominators, on=others, how="left")
        if others
        else table.assign(_denominator=denominators["count"].iloc[0])
    )
    numerator = merged["count"].astype("Float64")
    denominator = merged["_denominator"].astype("Float64")
    usable = numerator.notna() & denominator.notna() & (denominator > 0)
    percent = (numerator / denominator.where(usable) * 100).round(decimals)
    result = table.copy()
    result["percent"] = percent.where(usable).astype("Float64").to_numpy()
    return result
