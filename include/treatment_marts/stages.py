"""The four pipeline stages, shared by the CLI and the Airflow DAG.

Each stage reads and writes files under the data root and returns a small JSON-able dict (paths, counts,
run id), so a DAG task passes only that through XCom. Stages are idempotent per (period, run id): a
retried task redoes its work from its inputs and overwrites its own outputs.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from treatment_marts import __version__
from treatment_marts.config import load_areas, load_rules, ruleset_hash
from treatment_marts.files import write_private
from treatment_marts.ingest import (
    ExtractError,
    check_period,
    discover_extracts,
    land_extract,
    read_landed,
)
from treatment_marts.marts import build_mart, dimension_levels, load_marts, select_population
from treatment_marts.marts.rates import add_percentages
from treatment_marts.pseudonymise import pseudonym_key
from treatment_marts.recode import recode
from treatment_marts.settings import Settings

RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
log = logging.getLogger(__name__)


class DriftCheckFailed(RuntimeError):
    """A blocking month-over-month check failed (validation.yaml severity: blocking)."""


def safe_run_id(run_id: str) -> str:
    """Run ids become folder names: keep them to a safe alphabet (no path separators, no '..')."""
    cleaned = RUN_ID_UNSAFE.sub("_", run_id).strip("._") or "run"
    return cleaned[:120]


def new_run_id() -> str:
    return "cli_" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def run_dir(settings: Settings, run_id: str) -> Path:
    return settings.restricted_dir / "runs" / safe_run_id(run_id)


def _write_json(path: Path, payload: Any) -> None:
    write_private(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


# --- land ---------------------------------------------------------------------------------------------


def land(settings: Settings, period: str, extract_paths: list[str | Path] | str | Path, run_id: str) -> dict[str, Any]:
    """Land every extract file of the period (raw copy + checksum, then typed Parquet)."""
    check_period(period)
    run_id = safe_run_id(run_id)
    if isinstance(extract_paths, (str, Path)):
        extract_paths = [extract_paths]
    files = [f for location in extract_paths for f in discover_extracts(location, settings.allowed_roots)]
    landed = [land_extract(settings, period, f, run_id).to_dict() for f in files]
    result = {"period": period, "run_id": run_id, "landed": landed}
    _write_json(run_dir(settings, run_id) / "landed.json", result)
    return result


# --- validate -----------------------------------------------------------------------------------------


def _current_pointer(settings: Settings, period: str) -> Path:
    return settings.restricted_dir / "landed" / f"period={period}" / "CURRENT.json"


def accepted_extract(settings: Settings, period: str) -> pd.DataFrame | None:
    """The period's last accepted (validated) extract files, combined; None if the period never passed."""
    pointer = _current_pointer(settings, period)
    if not pointer.exists():
        return None
    paths = json.loads(pointer.read_text())["landed_paths"]
    return pd.concat([read_landed(p) for p in paths], ignore_index=True)


def _record_validation_results(settings: Settings, period: str, run_id: str, reports: list) -> None:
    """One row per expectation per file in `validation_results` (restricted schema: counts of anomalies can
    be small numbers of people). Failing runs are recorded too; a warehouse outage only logs a warning,
    since validation.json and the Data Docs hold the same results."""
    import sqlalchemy as sa

    from treatment_marts.warehouse import engine_for, replace_rows, schema_for

    rows = [
        {"run_id": run_id, "period": period, "source": r.source, "expectation": row["type"], "column_name": row["column"],
         "severity": row["severity"], "success": row["success"], "unexpected_count": row["unexpected_count"],
         "unexpected_percent": row["unexpected_percent"], "rule": row["rule"],
         "validated_at": datetime.now(UTC).isoformat(timespec="seconds")}
        for r in reports for row in r.rows
    ]
    if not rows:
        return
    frame = pd.DataFrame(rows).astype({"unexpected_count": "Int64", "unexpected_percent": "Float64"})
    url = settings.restricted_warehouse_url
    engine = engine_for(url, write=True)
    try:
        with engine.begin() as conn:
            replace_rows(conn, "validation_results", frame, schema_for(url, restricted=True), {"run_id": run_id})
    except sa.exc.SQLAlchemyError as exc:
        log.warning("validation results not recorded in the warehouse (%s); see validation.json", type(exc).__name__)
    finally:
        engine.dispose()


def validate(settings: Settings, period: str, run_id: str, landed_paths: list[str]) -> dict[str, Any]:
    """Run the GX suite and the month-over-month checks; raise (nothing downstream runs) on a blocking failure."""
    from treatment_marts.drift import compare_months, flagged, load_validation_policy, previous_period
    from treatment_marts.validate import validate_extract  # GX import is slow: only when validating

    run_id = safe_run_id(run_id)
    reports = []
    frames = []
    for landed_path in landed_paths:
        frame = read_landed(landed_path)
        frames.append(frame)
        reports.append(
            validate_extract(frame, period=period, settings=settings, run_id=run_id, source=Path(landed_path).name)
        )
    policy = load_validation_policy(settings.config_dir).month_over_month
    findings = compare_months(
        pd.concat(frames, ignore_index=True),
        accepted_extract(settings, previous_period(period)),
        policy,
        load_rules(settings.config_dir),
        period,
    )
    summary = {
        "expectations": [{"source": r.source, "success": r.success, "results": r.rows} for r in reports],
        "month_over_month": [f.to_dict() for f in findings],
    }
    _write_json(run_dir(settings, run_id) / "validation.json", summary)
    _record_validation_results(settings, period, run_id, reports)
    for report in reports:
        report.raise_for_blocking()
    drift_flags = flagged(findings)
    if drift_flags and policy.severity == "blocking":
        raise DriftCheckFailed(
            f"{len(drift_flags)} month-over-month check(s) failed for {period}:\n  " + "\n  ".join(f.message for f in drift_flags)
        )
    _write_json(_current_pointer(settings, period), {"run_id": run_id, "landed_paths": list(landed_paths)})
    return {
        "period": period,
        "run_id": run_id,
        "data_docs": [str(r.data_docs_index) if r.data_docs_index else None for r in reports],
        "warnings": sum(1 for r in reports for row in r.rows if not row["success"]),
        "month_over_month": [f.message for f in findings if f.status != "pass"],
    }


# --- protect ------------------------------------------------------------------------------------------


def _combined_extract(landed_paths: list[str]) -> pd.DataFrame:
    frames = [read_landed(p) for p in landed_paths]
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    duplicated = combined.duplicated(["agency_code", "episode_id"], keep=False)
    if duplicated.any():
        agencies = sorted(combined.loc[duplicated, "agency_code"].unique())[:5]
        raise ExtractError(
            f"{int(duplicated.sum())} rows share an (agency_code, episode_id) key across the period's files "
            f"(agencies {agencies}); one episode must appear in exactly one file"
        )
    return combined


def protect(settings: Settings, period: str, run_id: str, landed_paths: list[str]) -> dict[str, Any]:
    """Recode, build every mart, suppress (primary + secondary) and audit; stage the release in the restricted zone."""
    from treatment_marts.audit import DisclosureAuditFailed, audit
    from treatment_marts.suppress import MartTable, protect as protect_tables

    run_id = safe_run_id(run_id)
    rules = load_rules(settings.config_dir)
    areas = load_areas(settings.config_dir)
    levels = dimension_levels(rules, areas)
    marts_config = load_marts(settings.config_dir, set(levels))

    extract = _combined_extract(landed_paths)
    recoded = recode(extract, rules, areas, pseudonym_key=pseudonym_key(settings))

    staged = run_dir(settings, run_id)
    marts_dir = staged / "marts"
    marts_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    logs, losses, intervals, mart_names = [], [], [], []
    for population, definitions in marts_config.by_population().items():
        clients = select_population(recoded.frame, population, period)
        tables = [
            MartTable(name=d.name, dimensions=tuple(d.dimensions), frame=build_mart(clients, d, period, levels))
            for d in definitions
        ]
        protected = protect_tables(tables, k=rules.disclosure.k, zeros=rules.disclosure.zeros)
        result = audit(protected.tables, k=rules.disclosure.k, zeros=rules.disclosure.zeros, true_counts=protected.log)
        intervals.append(result.intervals)
        if not result.passed:
            raise DisclosureAuditFailed(result)
        percent_of = {d.name: d.percent_of for d in definitions}
        for table in protected.tables:
            _assert_k_safe(table.frame, table.name, rules.disclosure.k)
            frame = table.frame
            if percent_of[table.name]:
                frame = add_percentages(frame, list(table.dimensions), percent_of[table.name])
            frame.to_parquet(marts_dir / f"{table.name}.parquet", index=False)
            mart_names.append(table.name)
        logs.append(protected.log.assign(population=population))
        losses.append(protected.information_loss)

    log = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame()
    audit_intervals = pd.concat(intervals, ignore_index=True) if intervals else pd.DataFrame()
    if not log.empty and not audit_intervals.empty:
        log = _attach_audit(log, audit_intervals)
    log.insert(0, "run_id", run_id)
    log.to_parquet(staged / "suppression_log.parquet", index=False)
    audit_intervals.to_parquet(staged / "audit_intervals.parquet", index=False)
    info_loss = pd.concat(losses, ignore_index=True) if losses else pd.DataFrame()
    info_loss.to_parquet(staged / "information_loss.parquet", index=False)

    landed_manifest = json.loads((staged / "landed.json").read_text()) if (staged / "landed.json").exists() else {}
    manifest = {
        "run_id": run_id,
        "period": period,
        "package_version": __version__,
        "ruleset_sha256": ruleset_hash(settings.config_dir),
        "k": rules.disclosure.k,
        "zeros": rules.disclosure.zeros,
        "inputs": [
            {"source": item["source"], "sha256": item["sha256"], "rows": item["rows"]}
            for item in landed_manifest.get("landed", [])
            if item["landed_path"] in landed_paths
        ],
        "episodes_in": recoded.episodes_in,
        "excluded_no_consent": recoded.excluded_no_consent,
        "marts": mart_names,
        "suppressed_cells": int(len(log)),
        "audit": {"cells_checked": int(len(audit_intervals)), "disclosed": 0},
        "protected_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(staged / "run_manifest.json", manifest)
    return {
        "period": period,
        "run_id": run_id,
        "staged_dir": str(staged),
        "marts": mart_names,
        "suppressed_cells": int(len(log)),
    }


def _assert_k_safe(frame: pd.DataFrame, name: str, k: int) -> None:
    """Last line of defence, independent of the suppressor: no published count in 1..k."""
    counts = frame["count"]
    unsafe = counts.notna() & (counts >= 1) & (counts <= k)
    if unsafe.any():
        raise RuntimeError(f"mart {name}: {int(unsafe.sum())} published cell(s) hold 1..{k} individuals; refusing to stage")


def _attach_audit(log: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("mart", "period", "cell") if c in log.columns and c in intervals.columns]
    bounds = intervals[keys + ["lower", "upper"]].rename(columns={"lower": "audit_lower", "upper": "audit_upper"})
    return log.merge(bounds, on=keys, how="left")


# --- publish ------------------------------------------------------------------------------------------


def publish(settings: Settings, period: str, run_id: str, staged_dir: str | Path) -> dict[str, Any]:
    """Publish the staged, audited release: public marts (Parquet + warehouse) and the restricted log."""
    from treatment_marts.exports import write_exports
    from treatment_marts.governance import write_ig_report
    from treatment_marts.publish import publish_release

    run_id = safe_run_id(run_id)
    staged = Path(staged_dir)
    manifest = json.loads((staged / "run_manifest.json").read_text())
    marts = {p.stem: pd.read_parquet(p) for p in sorted((staged / "marts").glob("*.parquet"))}
    log = pd.read_parquet(staged / "suppression_log.parquet")
    result = publish_release(settings, period=period, run_id=run_id, marts=marts, suppression_log=log, manifest=manifest)
    report = write_ig_report(settings, period=period, run_id=run_id, staged_dir=staged)
    rules = load_rules(settings.config_dir)
    definitions = {d.name: d for d in load_marts(settings.config_dir).marts}
    exports = write_exports(
        settings,
        period=period,
        marts=marts,
        titles={name: definitions[name].title for name in marts if name in definitions},
        caveats={name: definitions[name].caveats for name in marts if name in definitions},
        areas=[a.name for a in load_areas(settings.config_dir).areas],
        manifest=manifest,
        marker=rules.disclosure.suppressed_marker,
    )
    return {
        "period": period,
        "run_id": run_id,
        "marts": {name: str(path) for name, path in result.marts.items()},
        "manifest": str(result.manifest_path),
        "suppression_log": str(result.suppression_log_path),
        "ig_report": str(report),
        "exports": str(exports),
    }


def run_period(settings: Settings, period: str, extract_paths: list[str | Path] | str | Path, run_id: str | None = None) -> dict[str, Any]:
    """The whole pipeline in-process, in the DAG's order (used by `treatment-marts run`)."""
    run_id = safe_run_id(run_id or new_run_id())
    landed = land(settings, period, extract_paths, run_id)
    landed_paths = [item["landed_path"] for item in landed["landed"]]
    validated = validate(settings, period, run_id, landed_paths)
    protected = protect(settings, period, run_id, landed_paths)
    published = publish(settings, period, run_id, protected["staged_dir"])
    return {"land": landed, "validate": validated, "protect": protected, "publish": published}
