"""Penetration / unmet need: published in-treatment counts beside prevalence estimates from a reference file.

unmet need = 1 - (adults in treatment / estimated number needing treatment) (seed 000:202; OHID's method).
It is derived *after* suppression from the published clients mart only: the in-treatment count of a
prevalence group is a sum of published cells, and when any of them is suppressed the count, and so the
unmet-need figures, are withheld (status `c`). It can therefore reveal nothing the published counts do not,
and the audit has nothing new to check.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from treatment_marts.core.config import AreasConfig, ConfigError, RulesConfig
from treatment_marts.marts.builder import TOTAL
from treatment_marts.marts.definitions import MartDefinition

SYNTHETIC_PREFIX = "SYNTHETIC"


class PrevalenceEstimate(BaseModel):
    """One row of a prevalence reference file (e.g. include/config/reference/prevalence.csv)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    area: str = Field(min_length=1)
    prevalence_group: str = Field(min_length=1)
    estimate: float = Field(gt=0)
    lower: float = Field(gt=0)
    upper: float = Field(gt=0)
    age_base: str = Field(min_length=1)
    year: str = Field(pattern=r"^\d{4}(-\d{2})?$")
    source: str = Field(min_length=1)
    synthetic: bool

    @model_validator(mode="after")
    def _sane(self) -> PrevalenceEstimate:
        if not self.lower <= self.estimate <= self.upper:
            raise ValueError(f"{self.area} / {self.prevalence_group}: needs lower <= estimate <= upper")
        if self.synthetic != self.source.startswith(SYNTHETIC_PREFIX):
            raise ValueError(
                f"{self.area} / {self.prevalence_group}: a synthetic estimate's source must start with "
                f"{SYNTHETIC_PREFIX!r} (and only a synthetic one), so made-up figures are never mistaken for real ones"
            )
        return self


def load_prevalence(path: Path, areas: AreasConfig, groups: list[str]) -> list[PrevalenceEstimate]:
    """Read and validate the reference file: known areas (or Total) and groups, one row per pair."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    except FileNotFoundError as exc:
        raise ConfigError(f"prevalence reference file not found: {path}") from exc
    known_areas = {a.name for a in areas.areas} | {TOTAL}
    rows: list[PrevalenceEstimate] = []
    for line, record in enumerate(records, start=2):
        if record.get("synthetic") in {"yes", "no"}:
            record = {**record, "synthetic": record["synthetic"] == "yes"}
        try:
            row = PrevalenceEstimate.model_validate(record)
        except ValidationError as exc:
            raise ConfigError(f"{path}, line {line}: {exc}") from exc
        if row.area not in known_areas or row.prevalence_group not in groups:
            raise ConfigError(
                f"{path}, line {line}: unknown area {row.area!r} or prevalence group {row.prevalence_group!r}; "
                f"areas: {sorted(known_areas)}, groups: {groups}"
            )
        rows.append(row)
    pairs = [(r.area, r.prevalence_group) for r in rows]
    dupes = sorted({p for p in pairs if pairs.count(p) > 1})
    if dupes:
        raise ConfigError(f"{path}: more than one estimate for {dupes}")
    return rows


def build_unmet_need(
    published: pd.DataFrame,
    mart: MartDefinition,
    estimates: list[PrevalenceEstimate],
    rules: RulesConfig,
    areas: AreasConfig,
    period: str,
) -> pd.DataFrame:
    """One row per area (and Total) x prevalence group, from the *published* source mart.

    `count` = adults in treatment in the group's substance groups (a sum of published cells; null and
    status `c` if any is suppressed); `unmet_need_percent` = 100 * (1 - count / estimate), with the
    estimate's interval carried as `unmet_need_lower` (at the lower estimate) and `unmet_need_upper`.
    A pair without an estimate has null estimate and unmet-need columns (not suppressed: nothing to show).
    """
    assert mart.prevalence_groups is not None
    rows = published
    for dim in [
        c for c in published.columns if c not in {"period", "area", "substance_group", "count", "status", "percent"}
    ]:
        rows = rows[rows[dim] == TOTAL]
    cells = rows.set_index(["area", "substance_group"])
    by_pair = {(e.area, e.prevalence_group): e for e in estimates}
    out = []
    for area in [a.name for a in areas.areas] + [TOTAL]:
        for group, members in mart.prevalence_groups.items():
            labels = [rules.substances.group_labels[m] for m in members]
            parts = [cells.loc[(area, label), "count"] for label in labels]
            withheld = any(pd.isna(p) for p in parts)
            count = pd.NA if withheld else int(sum(parts))
            estimate = by_pair.get((area, group))
            row = {
                "period": period,
                "area": area,
                "prevalence_group": group,
                "count": count,
                "status": "c" if withheld else pd.NA,
            }
            row["estimate"] = estimate.estimate if estimate else None
            row["estimate_lower"] = estimate.lower if estimate else None
            row["estimate_upper"] = estimate.upper if estimate else None
            bases = {"unmet_need_percent": "estimate", "unmet_need_lower": "lower", "unmet_need_upper": "upper"}
            for column, base in bases.items():
                usable = estimate is not None and not withheld
                row[column] = round(100 * (1 - count / getattr(estimate, base)), 1) if usable else None
            row["estimate_year"] = estimate.year if estimate else None
            row["estimate_source"] = estimate.source if estimate else None
            out.append(row)
    frame = pd.DataFrame(out)
    frame["count"] = frame["count"].astype("Int64")
    for column in ("period", "area", "prevalence_group", "status", "estimate_year", "estimate_source"):
        frame[column] = frame[column].astype("string")
    for column in (
        "estimate",
        "estimate_lower",
        "estimate_upper",
        "unmet_need_percent",
        "unmet_need_lower",
        "unmet_need_upper",
    ):
        frame[column] = frame[column].astype("Float64")
    return frame
