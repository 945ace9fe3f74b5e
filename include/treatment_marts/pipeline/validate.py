"""The validate stage: the GX suite per file, quarantine (when configured) and the month-over-month checks.

Raises (nothing downstream runs) on a blocking failure, after writing ``validation.json`` and the
``validation_results`` rows, so the engineer sees every file's outcome, not just the first failure.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from treatment_marts.core.config import load_rules
from treatment_marts.core.files import write_private
from treatment_marts.core.ids import Period, RunId, checked
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import read_landed
from treatment_marts.pipeline.record import accepted_extract, point_current, run_dir, write_json

if TYPE_CHECKING:
    from treatment_marts.validation.quarantine import QuarantineRules

log = logging.getLogger(__name__)
# Before GX is first imported (inside `validate`): its import alone logs ~200 `_docs_decorators` INFO lines,
# emitted before validation.gx_runner can lower its level. Its warnings and errors still show.
logging.getLogger("great_expectations").setLevel(logging.WARNING)


class DriftCheckFailed(RuntimeError):
    """A blocking month-over-month check failed (validation.yaml severity: blocking)."""


@dataclass(frozen=True)
class ValidateResult:
    """The accepted files (landed files, or their quarantine-filtered copies) and what was found."""

    period: Period
    run_id: RunId
    accepted_paths: list[str]
    data_docs: list[str | None] = field(default_factory=list)
    warnings: int = 0
    quarantined_rows: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    month_over_month: list[str] = field(default_factory=list)


def record_validation_results(settings: Settings, period: Period, run_id: RunId, reports: list) -> None:
    """One row per expectation per file in `validation_results` (restricted schema: counts of anomalies can
    be small numbers of people). Failing runs are recorded too; a warehouse outage only logs a warning,
    since validation.json and the Data Docs hold the same results."""
    import sqlalchemy as sa

    from treatment_marts.publish.warehouse import engine_for, replace_rows, schema_for

    rows = [
        {
            "run_id": str(run_id),
            "period": str(period),
            "source": r.source,
            "expectation": row["type"],
            "column_name": row["column"],
            "severity": row["severity"],
            "success": row["success"],
            "unexpected_count": row["unexpected_count"],
            "unexpected_percent": row["unexpected_percent"],
            "rule": row["rule"],
            "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for r in reports
        for row in r.rows
    ]
    if not rows:
        return
    frame = pd.DataFrame(rows).astype({"unexpected_count": "Int64", "unexpected_percent": "Float64"})
    url = settings.restricted_warehouse_url
    engine = engine_for(url, write=True)
    try:
        with engine.begin() as conn:
            replace_rows(conn, "validation_results", frame, schema_for(url, restricted=True), {"run_id": str(run_id)})
    except sa.exc.SQLAlchemyError as exc:
        log.warning("validation results not recorded in the warehouse (%s); see validation.json", type(exc).__name__)
    finally:
        engine.dispose()


def quarantine_dir(settings: Settings, period: Period, run_id: RunId) -> Path:
    return settings.quarantine_dir / f"period={period}" / f"run_id={run_id}"


def _set_aside(
    settings: Settings, period: Period, run_id: RunId, frame: pd.DataFrame, source: str, policy: QuarantineRules
) -> tuple[pd.DataFrame, Any, str]:
    """Quarantine the rows breaking blocking row-level rules; return (accepted rows, outcome, accepted path)."""
    from treatment_marts.validation.gx_runner import suite_parameters, suite_path, with_derived_columns
    from treatment_marts.validation.plain_checks import evaluate, load_suite
    from treatment_marts.validation.quarantine import split, write_quarantine

    results = evaluate(with_derived_columns(frame), load_suite(suite_path(settings)), suite_parameters(period))
    accepted, quarantined, outcome = split(frame, results, source=source, rules=policy)
    outcome.path = write_quarantine(quarantined, quarantine_dir(settings, period, run_id), source)
    buffer = io.BytesIO()
    accepted.reset_index(drop=True).to_parquet(buffer, index=False)
    accepted_path = run_dir(settings, run_id) / "accepted" / source
    write_private(accepted_path, buffer.getvalue())
    return accepted.reset_index(drop=True), outcome, str(accepted_path)


def validate(
    settings: Settings,
    period: Period,
    run_id: RunId,
    landed_paths: list[str],
    *,
    accept: bool = True,
    echo: Callable[[str], object] | None = None,
) -> ValidateResult:
    """Validate the period's landed files; ``accept=False`` (the `validate` command) checks without making
    them the period's accepted extract."""
    period, run_id = checked(period, run_id)
    from treatment_marts.validation.drift import compare_months, flagged, load_validation_policy
    from treatment_marts.validation.gx_runner import validate_extract  # GX import is slow: only when validating
    from treatment_marts.validation.quarantine import QuarantineCeilingExceeded

    say = echo or (lambda line: None)
    started = time.monotonic()
    policy = load_validation_policy(settings.config_dir)
    reports, frames, accepted_paths, outcomes, refusals = [], [], [], [], []
    for landed_path in landed_paths:
        frame = read_landed(landed_path)
        source = Path(landed_path).name
        report = validate_extract(frame, period=period, settings=settings, run_id=run_id, source=source)
        accepted_path = str(landed_path)
        if policy.quarantine.enabled and report.blocking_failures():
            try:
                frame, outcome, accepted_path = _set_aside(settings, period, run_id, frame, source, policy.quarantine)
            except QuarantineCeilingExceeded as exc:
                refusals.append(exc)
            else:
                report.absorb_quarantined(set(outcome.by_rule))
                outcomes.append(outcome)
                log.warning("%s", outcome.summary_text())
                say(outcome.summary_text())
        say(report.summary_text())
        reports.append(report)
        frames.append(frame)
        accepted_paths.append(accepted_path)
    findings = compare_months(
        pd.concat(frames, ignore_index=True),
        accepted_extract(settings, period.minus(1)),
        policy.month_over_month,
        load_rules(settings.config_dir),
        period,
    )
    for finding in findings:
        if finding.status != "pass":
            say(f"month-over-month [{finding.status}] {finding.message}")
    summary = {
        "expectations": [{"source": r.source, "success": r.success, "results": r.rows} for r in reports],
        "quarantine": [o.to_dict() for o in outcomes],
        "month_over_month": [f.to_dict() for f in findings],
    }
    write_json(run_dir(settings, run_id) / "validation.json", summary)
    record_validation_results(settings, period, run_id, reports)
    for refusal in refusals:
        raise refusal
    for report in reports:
        report.raise_for_blocking()
    drift_flags = flagged(findings)
    if drift_flags and policy.month_over_month.severity == "blocking":
        raise DriftCheckFailed(
            f"{len(drift_flags)} month-over-month check(s) failed for {period}:\n  "
            + "\n  ".join(f.message for f in drift_flags)
        )
    if accept:
        point_current(settings, period, run_id, accepted_paths)
    result = ValidateResult(
        period=period,
        run_id=run_id,
        accepted_paths=accepted_paths,
        data_docs=[str(r.data_docs_index) if r.data_docs_index else None for r in reports],
        warnings=sum(len(r.warnings()) for r in reports),
        quarantined_rows=sum(o.rows_quarantined for o in outcomes),
        quarantine=[o.to_dict() for o in outcomes],
        month_over_month=[f.message for f in findings if f.status != "pass"],
    )
    log.info(
        "validate %s: %d file(s) passed; %d warning(s), %d row(s) quarantined, %d month-over-month flag(s) in %.1fs",
        period,
        len(reports),
        result.warnings,
        result.quarantined_rows,
        len(drift_flags),
        time.monotonic() - started,
    )
    return result
