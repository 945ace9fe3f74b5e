"""Reference-population marts: the local adult population by sex, age band and ethnic group, from a
reference file, so "under-represented in treatment" comparisons (seed 004 Figs 6, 11: new presentations
against the 2021 Census shares) can be made from the release alone.

Reference data is a published aggregate, not client data: it is not subject to K3 and adds nothing to
protect. Categories use the marts' own labels (rules.yaml), so a share joins to the matching mart on
(area, category). The file is validated on load: known areas, characteristics and categories, one row per
cell, every characteristic of an area summing to the same adult population, and a synthetic row's source
starting with ``SYNTHETIC`` (the shipped file is synthetic, as the prevalence file is).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from treatment_marts.core.config import AreasConfig, ConfigError
from treatment_marts.core.labels import TOTAL
from treatment_marts.marts.definitions import REFERENCE_CHARACTERISTICS as CHARACTERISTICS
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.rates import add_percentages
from treatment_marts.marts.unmet_need import SYNTHETIC_PREFIX


class PopulationRow(BaseModel):
    """One row of a reference-population file (e.g. include/config/reference/population.csv)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    area: str = Field(min_length=1)
    characteristic: str = Field(min_length=1)
    category: str = Field(min_length=1)
    population: int = Field(ge=0)
    year: str = Field(pattern=r"^\d{4}(-\d{2})?$")
    source: str = Field(min_length=1)
    synthetic: bool

    @model_validator(mode="after")
    def _labelled(self) -> PopulationRow:
        if self.synthetic != self.source.startswith(SYNTHETIC_PREFIX):
            raise ValueError(
                f"{self.area} / {self.category}: a synthetic row's source must start with {SYNTHETIC_PREFIX!r} "
                "(and only a synthetic one), so made-up figures are never mistaken for real ones"
            )
        return self


def load_population(path: Path, areas: AreasConfig, levels: dict[str, list[str]]) -> list[PopulationRow]:
    """Read and validate the file against the configured areas and the marts' category labels."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    except FileNotFoundError as exc:
        raise ConfigError(f"reference population file not found: {path}") from exc
    known = {a.name for a in areas.areas}
    rows: list[PopulationRow] = []
    for line, record in enumerate(records, start=2):
        if record.get("synthetic") in {"yes", "no"}:
            record = {**record, "synthetic": record["synthetic"] == "yes"}
        try:
            row = PopulationRow.model_validate(record)
        except ValidationError as exc:
            raise ConfigError(f"{path}, line {line}: {exc}") from exc
        if row.area not in known or row.characteristic not in CHARACTERISTICS:
            raise ConfigError(
                f"{path}, line {line}: unknown area {row.area!r} or characteristic {row.characteristic!r}; "
                f"areas: {sorted(known)}, characteristics: {list(CHARACTERISTICS)}"
            )
        if row.category not in levels[row.characteristic]:
            raise ConfigError(
                f"{path}, line {line}: {row.characteristic} category {row.category!r} is not a mart label; "
                f"use one of {levels[row.characteristic]}"
            )
        rows.append(row)
    keys = [(r.area, r.characteristic, r.category) for r in rows]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ConfigError(f"{path}: more than one row for {dupes[:3]}")
    for area in sorted({r.area for r in rows}):
        sums = {c: sum(r.population for r in rows if r.area == area and r.characteristic == c) for c in CHARACTERISTICS}
        if len(set(sums.values())) != 1:
            raise ConfigError(f"{path}: {area}'s characteristics sum to different adult populations {sums}")
    return rows


def build_reference_population(
    rows: list[PopulationRow], mart: MartDefinition, areas: AreasConfig, period: str
) -> pd.DataFrame:
    """Per area in the release (and Total, their sum) the adults by one characteristic (the mart's second
    dimension, its own column name, so it joins to client marts on it): ``count`` = adults in the population,
    ``percent`` = share of the area's adults, with the file's year and source. Categories the file lacks
    are left out (a census has no sex "Not known"); an area the file lacks has no rows."""
    characteristic = mart.dimensions[1]
    names = [a.name for a in areas.areas]
    chosen = [r for r in rows if r.area in names and r.characteristic == characteristic]
    categories = list(dict.fromkeys(r.category for r in chosen))
    out = []
    for area in [*names, TOTAL]:
        members = chosen if area == TOTAL else [r for r in chosen if r.area == area]
        if not members:
            continue  # no reference figures for this area: no rows (not zeros)
        cells = {c: sum(r.population for r in members if r.category == c) for c in categories}
        for category, count in [*cells.items(), (TOTAL, sum(cells.values()))]:
            out.append(
                {
                    "area": area,
                    characteristic: category,
                    "count": count,
                    "reference_year": ", ".join(sorted({r.year for r in members})),
                    "reference_source": "; ".join(sorted({r.source for r in members})),
                }
            )
    frame = pd.DataFrame(out)
    frame.insert(0, "period", period)
    frame["status"] = pd.NA
    for column in ("period", "area", characteristic, "status", "reference_year", "reference_source"):
        frame[column] = frame[column].astype("string")
    frame["count"] = frame["count"].astype("Int64")
    frame = add_percentages(frame, list(mart.dimensions), characteristic)
    return frame[["period", "area", characteristic, "count", "status", "percent", "reference_year", "reference_source"]]
