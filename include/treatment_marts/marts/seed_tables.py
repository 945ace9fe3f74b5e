"""The seed tables as queries over the published marts: seed 000 Tables 1-9 (location x cohort) and the
seed 004 figures the marts can express. An analyst can run them on a release (``seed_table``) or copy the
documented query (docs/marts.md); tests/marts/test_seed_tables.py checks each against the client-level
truth of a generated month.

A cell of a seed table is a sum of published mart cells, so it is withheld (null) when any of them is
withheld; nothing is estimated. Cohorts are seed 000's (000:294): opiate = opiate (not crack) + opiate and
crack; crack = crack (not opiate); alcohol = alcohol only; Table 1 uses the four together as its base.
Seed 000's age groupings (18-29 / 30-39 / 40-65, 18-29 / 30-39 / 40-49 / 50-65) are sums of the 5-year
bands; their ambiguous upper edge (domain notes 6.2, item 6) is read as "and over" (65+ included).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from treatment_marts.core.labels import TOTAL

OPIATE = ("opiate_not_crack", "opiate_and_crack")
CRACK = ("crack_not_opiate",)
ALCOHOL = ("alcohol_only",)
FOUR_COHORTS = ("opiate_not_crack", "opiate_and_crack", "crack_not_opiate", "alcohol_only")


@dataclass(frozen=True)
class Column:
    """One column of a seed table: the mart, its dimension and the levels summed (``Yes`` for a flag)."""

    mart: str
    dimension: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class SeedTable:
    """``count`` = clients of the cohort in the column's levels; ``base`` = clients of the cohort (the
    dimension at Total); per location (or area, for ``by = "area"``)."""

    key: str
    title: str
    cohort: tuple[str, ...]  # substance group keys (rules.yaml)
    columns: dict[str, Column]
    by: str = "location"
    fixed: tuple[tuple[str, str], ...] = ()  # other dimensions held at a level (Total unless given)


def _disability(cohort: tuple[str, ...], key: str, title: str) -> SeedTable:
    return SeedTable(
        key,
        title,
        cohort,
        {
            "Learning disability": Column(
                "in_treatment_disability_learning_location_substance", "disability_learning", ("Yes",)
            ),
            "Mental health (behavioural or emotional)": Column(
                "in_treatment_disability_mental_health_location_substance", "disability_mental_health", ("Yes",)
            ),
            "Physical disability": Column(
                "in_treatment_disability_physical_location_substance", "disability_physical", ("Yes",)
            ),
        },
    )


def _housing(cohort: tuple[str, ...], key: str, title: str) -> SeedTable:
    mart = "in_treatment_housing_need_location_substance"
    return SeedTable(
        key,
        title,
        cohort,
        {
            "No problem": Column(mart, "housing_need", ("No problem",)),
            "Housing problem": Column(mart, "housing_need", ("Housing problem",)),
            "Urgent housing problem": Column(mart, "housing_need", ("Urgent housing problem",)),
        },
    )


AGE = "in_treatment_age_location_substance"
UNDER_30 = ("18-24", "25-29")
THIRTIES = ("30-34", "35-39")
FORTY_PLUS = ("40-44", "45-49", "50-54", "55-59", "60-64", "65+")

SEED000: dict[str, SeedTable] = {
    "T1": SeedTable(
        "T1",
        "Seed 000 Table 1: drug use x cohort (share of the four cohorts)",
        FOUR_COHORTS,
        {
            "opiate_not_crack": Column("in_treatment_substance_location_sex", "substance_group", ("opiate_not_crack",)),
            "opiate_and_crack": Column("in_treatment_substance_location_sex", "substance_group", ("opiate_and_crack",)),
            "crack_not_opiate": Column("in_treatment_substance_location_sex", "substance_group", ("crack_not_opiate",)),
            "alcohol_only": Column("in_treatment_substance_location_sex", "substance_group", ("alcohol_only",)),
        },
    ),
    "T2": _disability(OPIATE, "T2", "Seed 000 Table 2: opiate cohort x disability"),
    "T3": _housing(OPIATE, "T3", "Seed 000 Table 3: opiate cohort x housing"),
    "T4": SeedTable(
        "T4",
        "Seed 000 Table 4: crack cohort x age (18-29 / 30-39 / 40 and over)",
        CRACK,
        {
            "18-29": Column(AGE, "age_band", UNDER_30),
            "30-39": Column(AGE, "age_band", THIRTIES),
            "40 and over": Column(AGE, "age_band", FORTY_PLUS),
        },
    ),
    "T5": _disability(CRACK, "T5", "Seed 000 Table 5: crack cohort x disability"),
    "T6": _housing(CRACK, "T6", "Seed 000 Table 6: crack cohort x housing"),
    "T7": SeedTable(
        "T7",
        "Seed 000 Table 7: alcohol cohort x age (18-29 / 30-39 / 40-49 / 50 and over)",
        ALCOHOL,
        {
            "18-29": Column(AGE, "age_band", UNDER_30),
            "30-39": Column(AGE, "age_band", THIRTIES),
            "40-49": Column(AGE, "age_band", ("40-44", "45-49")),
            "50 and over": Column(AGE, "age_band", ("50-54", "55-59", "60-64", "65+")),
        },
    ),
    "T8": _disability(ALCOHOL, "T8", "Seed 000 Table 8: alcohol cohort x disability"),
    "T9": _housing(ALCOHOL, "T9", "Seed 000 Table 9: alcohol cohort x housing"),
}
"""Seed 000 Tables 1-9: every NDTMS row of the seed, by location (Exborough / Northton / Other)."""

ALL_GROUPS = (*FOUR_COHORTS, "non_opiate_only", "non_opiate_and_alcohol")
SEED004: dict[str, SeedTable] = {
    "Fig9": SeedTable(
        "Fig9",
        "Seed 004 Fig 9: adults in drug treatment by NDTMS drug category (opiate / non-opiate / non-opiate and alcohol)",
        ("opiate_not_crack", "opiate_and_crack", "crack_not_opiate", "non_opiate_only", "non_opiate_and_alcohol"),
        {
            "Opiate": Column("in_treatment_substance_area_sex", "substance_group", OPIATE),
            "Non-opiate": Column(
                "in_treatment_substance_area_sex", "substance_group", ("crack_not_opiate", "non_opiate_only")
            ),
            "Non-opiate and alcohol": Column(
                "in_treatment_substance_area_sex", "substance_group", ("non_opiate_and_alcohol",)
            ),
        },
        by="area",
    ),
}
"""Seed 004 figures the marts express as a cohort table (the others: ``FIG8`` and ``ethnicity_vs_population``)."""


def _labels(levels: tuple[str, ...], dimension: str, group_labels: Mapping[str, str]) -> list[str]:
    return [group_labels[v] for v in levels] if dimension == "substance_group" else list(levels)


def _cells(frame: pd.DataFrame, keep: set[str], fixed: Mapping[str, str]) -> pd.DataFrame:
    """Rows with every dimension outside ``keep`` at its fixed level (Total unless given)."""
    measures = {"period", "count", "status", "percent", "area_code"}
    rows = frame
    for column in frame.columns:
        if column in measures or column in keep or pd.api.types.is_float_dtype(frame[column]):
            continue
        rows = rows[rows[column] == fixed.get(column, TOTAL)]
    return rows


def seed_table(marts: Mapping[str, pd.DataFrame], table: SeedTable, group_labels: Mapping[str, str]) -> pd.DataFrame:
    """The seed table from published marts: one row per location (or area) and column, with ``count``,
    ``base`` and ``percent`` (100 x count / base), each null when a cell it sums is withheld."""
    cohort = [group_labels[g] for g in table.cohort]
    out = []
    places: list[str] | None = None
    for name, column in table.columns.items():
        mart = marts[column.mart]
        rows = _cells(mart, {table.by, "substance_group", column.dimension}, dict(table.fixed))
        if places is None:
            places = list(dict.fromkeys(rows[table.by]))
        levels = _labels(column.levels, column.dimension, group_labels)
        for place in places:
            here = rows[rows[table.by] == place]
            if column.dimension == "substance_group":
                numerator = here[here["substance_group"].isin([v for v in levels if v in cohort])]["count"]
                denominator = here[here["substance_group"].isin(cohort)]["count"]
            else:
                in_cohort = here[here["substance_group"].isin(cohort)]
                numerator = in_cohort[in_cohort[column.dimension].isin(levels)]["count"]
                denominator = in_cohort[in_cohort[column.dimension] == TOTAL]["count"]
            count = pd.NA if numerator.isna().any() else int(numerator.sum())
            base = pd.NA if denominator.isna().any() else int(denominator.sum())
            percent = pd.NA if pd.isna(count) or pd.isna(base) or base == 0 else 100 * count / base
            out.append({table.by: place, "column": name, "count": count, "base": base, "percent": percent})
    frame = pd.DataFrame(out)
    frame["count"] = frame["count"].astype("Int64")
    frame["base"] = frame["base"].astype("Int64")
    frame["percent"] = frame["percent"].astype("Float64")
    return frame


def ethnicity_vs_population(new_presentations: pd.DataFrame, population: pd.DataFrame) -> pd.DataFrame:
    """Seed 004 Figs 6 / 11: the ethnic profile of new presentations beside the local adult population's
    (the published ``new_presentations_ethnicity_area`` and ``reference_population_ethnicity_area``),
    per area and ethnic group, with the difference in percentage points (negative: under-represented)."""
    keys = ["area", "ethnicity_group"]
    left = new_presentations[keys + ["count", "percent"]].rename(
        columns={"count": "presentations", "percent": "presentations_percent"}
    )
    right = population[keys + ["percent"]].rename(columns={"percent": "population_percent"})
    joined = left.merge(right, on=keys, how="inner")
    joined = joined[joined["ethnicity_group"] != TOTAL].reset_index(drop=True)
    joined["difference_points"] = (joined["presentations_percent"] - joined["population_percent"]).round(1)
    return joined
