"""Month-over-month checks: does this month's extract look like last month's for the same area?

Extracts are cumulative (open episodes are re-sent every month), so a sudden drop in rows, a shift in the
substance mix, a column that suddenly goes missing, or open episodes that vanish without a discharge all
point at an export fault rather than a change in the population. Findings name the area, the measure and
both values; no record-level value is ever reported.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from treatment_marts.contract import load_contract
from treatment_marts.core.config import RulesConfig, load_validated
from treatment_marts.deidentify.recode import substance_group
from treatment_marts.validation.quarantine import QuarantineRules

Status = Literal["pass", "flag", "no_baseline"]


class MonthOverMonthRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    severity: Literal["warning", "blocking"]
    # strict numbers: a bool or a quoted number in validation.yaml is a mistake, not a threshold
    row_count_change: float = Field(gt=0, strict=True)
    substance_share_change_pp: float = Field(gt=0, strict=True)
    missing_share_change_pp: float = Field(gt=0, strict=True)
    vanished_without_discharge_share: float = Field(ge=0, le=1, strict=True)
    min_rows_for_shares: StrictInt = Field(ge=0)


class ValidationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    month_over_month: MonthOverMonthRules
    quarantine: QuarantineRules = QuarantineRules()


def load_validation_policy(config_dir: Path) -> ValidationPolicy:
    return load_validated(ValidationPolicy, config_dir / "validation.yaml")


@dataclass(frozen=True)
class DriftFinding:
    area: str
    check: str
    status: Status
    severity: str
    observed: float | None
    baseline: float | None
    message: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def previous_period(period: str) -> str:
    return (pd.Period(period, freq="M") - 1).strftime("%Y-%m")


def _shares(series: pd.Series) -> pd.Series:
    return series.value_counts(normalize=True, dropna=False)


def compare_months(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    rules: MonthOverMonthRules,
    substance_rules: RulesConfig,
    period: str,
) -> list[DriftFinding]:
    """Compare two typed extracts area by area (la_code)."""
    findings: list[DriftFinding] = []
    sev = rules.severity
    la_pattern = re.compile(load_contract().column("la_code").pattern or r"^$")
    # Row positions per area, not the groups themselves: splitting a national month into per-area copies of
    # every column cost ~2.5 s, for first months that only need to say there is no baseline.
    positions = current.groupby("la_code", sort=True).indices
    for code in sorted(positions):
        before = None if previous is None else previous[previous["la_code"] == code]
        # A findings message names the area by its LA code; a value that is not one (a shifted or mislabelled
        # column) may be an identifier and is never printed.
        area = str(code) if la_pattern.fullmatch(str(code)) else "(a la_code value that is not an LA code)"
        if before is None or before.empty:
            findings.append(
                DriftFinding(
                    area,
                    "baseline",
                    "no_baseline",
                    sev,
                    None,
                    None,
                    f"area {area}: no landed extract for {previous_period(period)}; first month, no baseline",
                )
            )
            continue
        now = current.take(positions[code])
        change = len(now) / len(before) - 1
        findings.append(
            DriftFinding(
                area,
                "row_count",
                "flag" if abs(change) > rules.row_count_change else "pass",
                sev,
                float(len(now)),
                float(len(before)),
                f"area {area}: {len(now)} rows vs {len(before)} last month ({change:+.1%}; limit ±{rules.row_count_change:.0%})",
            )
        )

        if min(len(now), len(before)) >= rules.min_rows_for_shares:
            mix_now = _shares(substance_group(now, substance_rules).fillna("none"))
            mix_before = _shares(substance_group(before, substance_rules).fillna("none"))
            groups = sorted(set(mix_now.index) | set(mix_before.index))
            diffs = {g: 100 * (mix_now.get(g, 0.0) - mix_before.get(g, 0.0)) for g in groups}
            worst = max(diffs, key=lambda g: abs(diffs[g]))
            findings.append(
                DriftFinding(
                    area,
                    "substance_mix",
                    "flag" if abs(diffs[worst]) > rules.substance_share_change_pp else "pass",
                    sev,
                    100 * float(mix_now.get(worst, 0.0)),
                    100 * float(mix_before.get(worst, 0.0)),
                    f"area {area}: largest substance-group shift {worst} {diffs[worst]:+.1f} pp (limit ±{rules.substance_share_change_pp} pp)",
                )
            )

            missing_now = now.isna().mean() * 100
            missing_before = before.isna().mean() * 100
            delta = (missing_now - missing_before).abs()
            column = str(delta.idxmax())
            findings.append(
                DriftFinding(
                    area,
                    "missing_values",
                    "flag" if delta[column] > rules.missing_share_change_pp else "pass",
                    sev,
                    float(missing_now[column]),
                    float(missing_before[column]),
                    f"area {area}: largest change in missing values is column {column}: {missing_now[column]:.1f}% vs "
                    f"{missing_before[column]:.1f}% (limit ±{rules.missing_share_change_pp} pp)",
                )
            )

        was_open = before[before["discharge_date"].isna()]
        key = ["agency_code", "episode_id"]
        vanished = was_open.merge(now[key], on=key, how="left", indicator=True)
        vanished_n = int((vanished["_merge"] == "left_only").sum())
        share = vanished_n / len(was_open) if len(was_open) else 0.0
        findings.append(
            DriftFinding(
                area,
                "vanished_without_discharge",
                "flag" if share > rules.vanished_without_discharge_share else "pass",
                sev,
                float(vanished_n),
                float(len(was_open)),
                f"area {area}: {vanished_n} of {len(was_open)} episodes open last month are missing without a discharge "
                f"({share:.1%}; limit {rules.vanished_without_discharge_share:.0%})",
            )
        )
    return findings


def flagged(findings: list[DriftFinding]) -> list[DriftFinding]:
    return [f for f in findings if f.status == "flag"]
