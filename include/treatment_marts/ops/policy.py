"""Operational policy (include/config/operations.yaml) and the pure decisions the DAGs take from it.

Light on purpose: no pandas, no Great Expectations, so the DAG files can read the policy at parse time
(whether the IG approval gate is part of the DAG) without slowing the dag processor.

* **Late data.** `arrival_status` says which expected areas have no extract after their due day.
* **IG approval.** `approval_required` (per environment, env var override). The reviewer's summary is
  `pipeline.summary.approval_markdown`, written before the gate by `pipeline.review`.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from treatment_marts.core.config import AreasConfig, ConfigError, load_areas, load_validated
from treatment_marts.core.safety import InputLimits
from treatment_marts.ingest.inbox import COMBINED_UNIT, area_units

ENV_ENVIRONMENT = "TREATMENT_MARTS_ENVIRONMENT"  # e.g. dev, test, production: selects the approval policy
ENV_APPROVAL = "TREATMENT_MARTS_IG_APPROVAL"  # "true"/"false": overrides the policy (one-off, e.g. a re-run)


class _Strict(BaseModel):
    """Numbers and switches are strict (a bool is not a count, "false" is not a switch): see core/config.py."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionPolicy(_Strict):
    raw_months: StrictInt = Field(ge=1)
    # the recoded, pseudonymised history windows and trends are built from (pipeline/history.py): client-level,
    # so bounded too; at least 36 months so a three-year pooled window can be built
    history_months: StrictInt = Field(default=60, ge=36)


class ArrivalPolicy(_Strict):
    """Extracts for month M are due by `due_day` of month M+1 (the data arrive after the month closes)."""

    due_day: StrictInt = Field(ge=1, le=28)
    expected_areas: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ArrivalPolicy:
        dupes = sorted({a for a in self.expected_areas if self.expected_areas.count(a) > 1})
        if dupes:
            raise ValueError(f"expected_areas lists {dupes} more than once")
        return self


class ApprovalPolicy(_Strict):
    """Whether an IG reviewer must approve each release before it is published, per environment."""

    default: StrictBool = False
    environments: dict[str, StrictBool] = Field(default_factory=dict)
    response_timeout_hours: StrictInt = Field(default=72, ge=1)


class OperationsConfig(_Strict):
    retention: RetentionPolicy
    arrival: ArrivalPolicy | None = None
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    input_limits: InputLimits = Field(default_factory=InputLimits)  # enforced by safety.py at read time

    def check_against(self, areas: AreasConfig) -> None:
        """Expected areas must be areas the pipeline knows (names from areas.yaml)."""
        if self.arrival:
            unknown = sorted(set(self.arrival.expected_areas) - {a.name for a in areas.areas})
            if unknown:
                raise ValueError(
                    f"arrival.expected_areas: unknown area(s) {unknown}; known: {[a.name for a in areas.areas]}"
                )


def load_operations(config_dir: Path) -> OperationsConfig:
    path = config_dir / "operations.yaml"
    operations = load_validated(OperationsConfig, path)
    try:
        operations.check_against(load_areas(config_dir))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return operations


# --- late data -------------------------------------------------------------------------------------------


def due_date(period: str, due_day: int) -> date:
    """The day by which the extract for `period` (YYYY-MM) must be in the inbox: `due_day` of the next month."""
    year, month = (int(p) for p in period.split("-"))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return date(year, month, due_day)


def arrival_status(
    inbox: Path | str, period: str, policy: ArrivalPolicy, areas: AreasConfig, today: date
) -> dict[str, Any]:
    """Which expected areas have (not) delivered the period's extract, and whether that is late yet.

    A combined (non-area-named) file counts as every area's delivery: which areas it holds is only known
    once it is landed, and validation reports an area missing from it.
    """
    folder = Path(inbox) / f"period={period}"
    units = area_units(folder, areas) if folder.is_dir() and any(folder.iterdir()) else []
    names = {u["unit"] for u in units}
    arrived = sorted(policy.expected_areas) if COMBINED_UNIT in names else sorted(names & set(policy.expected_areas))
    missing = sorted(set(policy.expected_areas) - set(arrived))
    due = due_date(period, policy.due_day)
    return {
        "period": period,
        "due": due.isoformat(),
        "arrived": arrived,
        "missing": missing,
        "late": bool(missing) and today > due,
    }


def expected_period(today: date) -> str:
    """The period whose extracts are due this month: the previous calendar month."""
    year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    return f"{year:04d}-{month:02d}"


# --- IG approval -----------------------------------------------------------------------------------------


def approval_required(policy: ApprovalPolicy, environ: dict[str, str] | None = None) -> bool:
    """The env var `TREATMENT_MARTS_IG_APPROVAL` wins; else the policy of `TREATMENT_MARTS_ENVIRONMENT`; else the default."""
    environ = dict(os.environ) if environ is None else environ
    override = environ.get(ENV_APPROVAL, "").strip().lower()
    if override in {"1", "true", "yes", "on"}:
        return True
    if override in {"0", "false", "no", "off"}:
        return False
    if override:
        raise ValueError(f"{ENV_APPROVAL} must be true or false, not {override!r}")
    return policy.environments.get(environ.get(ENV_ENVIRONMENT, ""), policy.default)
