"""Percentages derived from protected counts only.

A percentage with a known base reveals its count (seed 000 published 4% of a base of 73-93: 3 people).
So a percentage is computed *after* suppression from published cells alone, and is withheld whenever its
numerator or its denominator is suppressed: it never carries information the counts do not.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from treatment_marts.marts.builder import TOTAL
from treatment_marts.marts.populations import SUCCESS


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


def build_completion_rate(
    exits: pd.DataFrame,
    in_treatment: pd.DataFrame,
    period: str,
    *,
    exits_dimensions: Sequence[str],
    in_treatment_dimensions: Sequence[str],
) -> pd.DataFrame:
    """Successful completions as a share of the adults in treatment over one window, by area and substance
    group (the NDTMS / PHOF measure), from two *published* marts of that window: the exits mart's
    successful-completion cells and the in-treatment mart's cells (every other dimension at Total).

    A row is withheld whole (``status`` c: count, base and percent empty) when either published cell is, so
    the mart holds no number the two marts do not already show and needs no protection of its own. The
    marts' declared dimensions say which columns to hold at Total (a published mart has others, such as
    the area code).
    """
    keys = ["area", "substance_group"]

    def cells(frame: pd.DataFrame, dimensions: Sequence[str], fixed: dict[str, str]) -> pd.DataFrame:
        rows = frame
        for column in [d for d in dimensions if d not in keys]:
            rows = rows[rows[column] == fixed.get(column, TOTAL)]
        return rows[[*keys, "count"]]

    if SUCCESS not in set(exits["discharge_group"].astype(str)):
        raise ValueError(f"the exits mart has no discharge_group {SUCCESS!r} (rules.yaml discharge_group)")
    numerator = cells(exits, exits_dimensions, {"discharge_group": SUCCESS}).rename(columns={"count": "_completions"})
    base = cells(in_treatment, in_treatment_dimensions, {}).rename(columns={"count": "_base"})
    merged = base.merge(numerator, on=keys, how="left", validate="one_to_one")
    completions = merged["_completions"].astype("Float64")
    denominator = merged["_base"].astype("Float64")
    shown = completions.notna() & denominator.notna()
    usable = shown & (denominator > 0)
    frame = pd.DataFrame(
        {
            "period": pd.array([period] * len(merged), dtype="string"),
            "area": merged["area"].astype("string").to_numpy(),
            "substance_group": merged["substance_group"].astype("string").to_numpy(),
            "count": completions.where(shown).astype("Int64").to_numpy(),
            "in_treatment": denominator.where(shown).astype("Int64").to_numpy(),
            "percent": (completions / denominator.where(usable) * 100)
            .round(1)
            .where(usable)
            .astype("Float64")
            .to_numpy(),
            "status": pd.array([pd.NA if s else "c" for s in shown], dtype="string"),
        }
    )
    return frame
