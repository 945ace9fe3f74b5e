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
from treatment_marts.core.config import load_areas, load_rules, ruleset_hash
from treatment_marts.core.files import write_private
from treatment_marts.core.settings import Settings
from treatment_marts.deidentify.pseudonymise import pseudonym_key
from treatment_marts.deidentify.recode import recode
from treatment_marts.ingest.land import (
    ExtractError,
    check_period,
    discover_extracts,
    land_extract,
    read_landed,
)
from treatment_marts.marts import build_mart, dimension_levels, load_marts, select_population
from treatment_marts.marts.populations import history_months
from treatment_marts.marts.rates import add_percentages
from treatment_marts.marts.unmet_need import build_unmet_need, load_prevalence

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

    from treatment_marts.publish.warehouse import engine_for, replace_rows, schema_for

    rows = [
        {
            "run_id": run_id,
            "period": period,
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
            replace_rows(conn, "validation_results", frame, schema_for(url, restricted=True), {"run_id": run_id})
    except sa.exc.SQLAlchemyError as exc:
        log.warning("validation results not recorded in the warehouse (%s); see validation.json", type(exc).__name__)
    finally:
        engine.dispose()


def _quarantine_dir(settings: Settings, period: str, run_id: str) -> Path:
    return settings.quarantine_dir / f"period={period}" / f"run_id={run_id}"


def _set_aside(
    settings: Settings, period: str, run_id: str, frame: pd.DataFrame, source: str, policy
) -> tuple[pd.DataFrame, Any, str]:
    """Quarantine the rows breaking blocking row-level rules; return (accepted rows, outcome, accepted path)."""
    import io

    from treatment_marts.validation.gx_runner import suite_parameters, suite_path, with_derived_columns
    from treatment_marts.validation.plain_checks import evaluate, load_suite
    from treatment_marts.validation.quarantine import split, write_quarantine

    results = evaluate(with_derived_columns(frame), load_suite(suite_path(settings)), suite_parameters(period))
    accepted, quarantined, outcome = split(frame, results, source=source, rules=policy)
    outcome.path = write_quarantine(quarantined, _quarantine_dir(settings, period, run_id), source)
    buffer = io.BytesIO()
    accepted.reset_index(drop=True).to_parquet(buffer, index=False)
    accepted_path = run_dir(settings, run_id) / "accepted" / source
    write_private(accepted_path, buffer.getvalue())
    return accepted.reset_index(drop=True), outcome, str(accepted_path)


def validate(
    settings: Settings, period: str, run_id: str, landed_paths: list[str], *, accept: bool = True, echo=None
) -> dict[str, Any]:
    """Run the GX suite, quarantine (when configured) and the month-over-month checks.

    Raises (nothing downstream runs) on a blocking failure, after writing validation.json and the
    `validation_results` rows, so the engineer sees every file's outcome, not just the first failure.
    ``accept=False`` (the `validate` command) checks without making the period's extract the accepted one.
    """
    from treatment_marts.validation.drift import compare_months, flagged, load_validation_policy, previous_period
    from treatment_marts.validation.gx_runner import validate_extract  # GX import is slow: only when validating
    from treatment_marts.validation.quarantine import QuarantineCeilingExceeded

    say = echo or (lambda line: None)
    run_id = safe_run_id(run_id)
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
        accepted_extract(settings, previous_period(period)),
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
    _write_json(run_dir(settings, run_id) / "validation.json", summary)
    _record_validation_results(settings, period, run_id, reports)
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
        _write_json(_current_pointer(settings, period), {"run_id": run_id, "landed_paths": accepted_paths})
    return {
        "period": period,
        "run_id": run_id,
        "accepted_paths": accepted_paths,
        "data_docs": [str(r.data_docs_index) if r.data_docs_index else None for r in reports],
        "warnings": sum(len(r.warnings()) for r in reports),
        "quarantined_rows": sum(o.rows_quarantined for o in outcomes),
        "quarantine": [o.to_dict() for o in outcomes],
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


def suppressed_in_current_release(settings: Settings, period: str) -> dict[str | None, set[str]]:
    """Canonical keys of the cells suppressed in the period's current release, per population.

    Policy across releases (docs/disclosure.md): a revision of a period keeps every cell the earlier
    release suppressed, so the two releases cannot be differenced to expose a hidden value. Keys are per
    population (the same labels exist in every population's lattice); a log without the population
    column (older releases) carries its keys into every population (key None).
    """
    path = settings.restricted_dir / "suppression_log" / f"period={period}" / "suppression_log.parquet"
    if not path.exists():
        return {}
    log = pd.read_parquet(path)
    if "population" not in log.columns:
        return {None: set(log["key"].dropna().astype(str))}
    return {str(pop): set(group["key"].dropna().astype(str)) for pop, group in log.groupby("population")}


def protect(settings: Settings, period: str, run_id: str, landed_paths: list[str]) -> dict[str, Any]:
    """Recode, build every mart, suppress (primary + secondary) and audit; stage the release in the restricted zone."""
    from treatment_marts.disclosure.audit import DisclosureAuditFailed, audit
    from treatment_marts.disclosure.protect import protect as protect_tables
    from treatment_marts.disclosure.record_level import write_record_level
    from treatment_marts.disclosure.tables import MartTable

    run_id = safe_run_id(run_id)
    rules = load_rules(settings.config_dir)
    areas = load_areas(settings.config_dir)
    levels = dimension_levels(rules, areas)
    marts_config = load_marts(settings.config_dir, set(levels))

    recoded = recode(_combined_extract(landed_paths), rules, areas, pseudonym_key=pseudonym_key(settings))
    analysis = as_dimensions(recoded.frame, levels)

    staged = run_dir(settings, run_id)
    marts_dir = staged / "marts"
    marts_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    carried = suppressed_in_current_release(settings, period)
    logs, losses, intervals, mart_names, not_built = [], [], [], [], {}
    for population, definitions in marts_config.by_population().items():
        source = analysis
        if history_months(population) > 1:
            source, missing = _history(settings, period, history_months(population), analysis, rules, areas, levels)
            if missing:
                not_built.update({d.name: f"no accepted extract for {', '.join(missing)}" for d in definitions})
                continue
        clients = select_population(source, population, period)
        tables = [
            MartTable(name=d.name, dimensions=tuple(d.dimensions), frame=build_mart(clients, d, period, levels))
            for d in definitions
        ]
        earlier = carried.get(population, carried.get(None, set()))
        protected = protect_tables(
            tables,
            k=rules.disclosure.k,
            zeros=rules.disclosure.zeros,
            carried=earlier,
            cleanup_audits=rules.disclosure.cleanup_audits,
        )
        result = audit(
            protected.tables,
            k=rules.disclosure.k,
            zeros=rules.disclosure.zeros,
            true_counts=protected.log,
            carried=earlier,
        )
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

    for definition in marts_config.derived():  # from published (suppressed) marts only: no new disclosure
        source = pd.read_parquet(marts_dir / f"{definition.derived_from}.parquet")
        groups = list(definition.prevalence_groups or {})
        estimates = load_prevalence(settings.config_dir / "reference" / str(definition.reference), areas, groups)
        frame = build_unmet_need(source, definition, estimates, rules, areas, period)
        _assert_k_safe(frame, definition.name, rules.disclosure.k)
        frame.to_parquet(marts_dir / f"{definition.name}.parquet", index=False)
        mart_names.append(definition.name)

    log = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame()
    audit_intervals = pd.concat(intervals, ignore_index=True) if intervals else pd.DataFrame()
    if not log.empty and not audit_intervals.empty:
        log = _attach_audit(log, audit_intervals)
    log.insert(0, "run_id", run_id)
    log.to_parquet(staged / "suppression_log.parquet", index=False)
    audit_intervals.to_parquet(staged / "audit_intervals.parquet", index=False)
    info_loss = pd.concat(losses, ignore_index=True) if losses else pd.DataFrame()
    info_loss.to_parquet(staged / "information_loss.parquet", index=False)
    # The optional record-level product (rules.yaml record_level): restricted, K-anonymous, with its loss report.
    record_level = write_record_level(settings, period, run_id, analysis, rules)
    if record_level:
        _write_json(staged / "record_level.json", record_level)

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
            if Path(item["landed_path"]).name in {Path(p).name for p in landed_paths}  # accepted = landed name
        ],
        "episodes_in": recoded.episodes_in,
        "excluded_no_consent": recoded.excluded_no_consent,
        "marts": mart_names,
        "marts_not_built": not_built,
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


def as_dimensions(frame: pd.DataFrame, levels: dict[str, list[str]]) -> pd.DataFrame:
    """The recoded frame with every publishable dimension held as a categorical over its declared levels.

    Marts filter, sort and group a national month (~1M episodes) several times per population; integer
    codes make each of those cheap and the frame a fraction of its size as Arrow strings. Values outside the
    declared levels are kept (the categories are extended), so the mart builder still names and refuses them.
    """
    from treatment_marts.core.columns import as_categorical

    out = frame.copy(deep=False)
    for name, declared in levels.items():
        if name in out.columns and (out[name].dtype == "string" or out[name].dtype == object):
            out[name] = as_categorical(out[name], declared)
    return out


def _history(
    settings: Settings, period: str, months: int, current: pd.DataFrame, rules, areas, levels: dict[str, list[str]]
) -> tuple[pd.DataFrame, list[str]]:
    """Recoded episodes of the ``months`` accepted extracts ending with ``period`` (for re-presentation);
    the periods with no accepted extract are returned instead of a partial history."""
    first = pd.Period(period, freq="M") - (months - 1)
    frames, missing = [current], []
    for offset in range(months - 1):
        earlier = (first + offset).strftime("%Y-%m")
        extract = accepted_extract(settings, earlier)
        if extract is None:
            missing.append(earlier)
        else:
            frames.append(
                as_dimensions(recode(extract, rules, areas, pseudonym_key=pseudonym_key(settings)).frame, levels)
            )
    return (pd.concat(frames, ignore_index=True) if not missing else current), missing


def _assert_k_safe(frame: pd.DataFrame, name: str, k: int) -> None:
    """Last line of defence, independent of the suppressor: no published count in 1..k."""
    counts = frame["count"]
    unsafe = counts.notna() & (counts >= 1) & (counts <= k)
    if unsafe.any():
        raise RuntimeError(
            f"mart {name}: {int(unsafe.sum())} published cell(s) hold 1..{k} individuals; refusing to stage"
        )


def _attach_audit(log: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("mart", "period", "cell") if c in log.columns and c in intervals.columns]
    bounds = intervals[keys + ["lower", "upper"]].rename(columns={"lower": "audit_lower", "upper": "audit_upper"})
    return log.merge(bounds, on=keys, how="left")


# --- publish ------------------------------------------------------------------------------------------


def publish(settings: Settings, period: str, run_id: str, staged_dir: str | Path) -> dict[str, Any]:
    """Publish the staged, audited release: public marts (Parquet + warehouse) and the restricted log."""
    from treatment_marts.publish.exports import write_exports
    from treatment_marts.publish.ig_report import write_ig_report
    from treatment_marts.publish.release import publish_release

    run_id = safe_run_id(run_id)
    staged = Path(staged_dir)
    manifest = json.loads((staged / "run_manifest.json").read_text())
    marts = {p.stem: pd.read_parquet(p) for p in sorted((staged / "marts").glob("*.parquet"))}
    log = pd.read_parquet(staged / "suppression_log.parquet")
    result = publish_release(
        settings, period=period, run_id=run_id, marts=marts, suppression_log=log, manifest=manifest
    )
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


def run_period(
    settings: Settings, period: str, extract_paths: list[str | Path] | str | Path, run_id: str | None = None
) -> dict[str, Any]:
    """The whole pipeline in-process, in the DAG's order (used by `treatment-marts run`)."""
    run_id = safe_run_id(run_id or new_run_id())
    from treatment_marts.core.faults import fault_point  # kill-test hook (TREATMENT_MARTS_FAULT), a no-op otherwise
    from treatment_marts.core.memory import release_memory  # one process for every stage: see memory.py

    landed = land(settings, period, extract_paths, run_id)
    fault_point("stage:after_land")
    release_memory()
    landed_paths = [item["landed_path"] for item in landed["landed"]]
    validated = validate(settings, period, run_id, landed_paths)
    fault_point("stage:after_validate")
    release_memory()
    protected = protect(settings, period, run_id, validated["accepted_paths"])
    fault_point("stage:after_protect")
    release_memory()
    published = publish(settings, period, run_id, protected["staged_dir"])
    return {"land": landed, "validate": validated, "protect": protected, "publish": published}


# --- per-area runs (the DAG maps land + validate over areas; see operations.area_units) --------------------
#
# Each area lands and validates under its own run id `<run id>.<area>` (its own landed.json, validation.json
# and validation_results rows), so mapped tasks never write the same file. `accept_areas` then gathers the
# areas that passed into the run's own landed.json and the period's CURRENT pointer, and records which
# areas were left out and why (restricted run record areas.json) before `protect` runs over them.


def area_run_id(run_id: str, unit: str) -> str:
    return safe_run_id(f"{safe_run_id(run_id)}.{unit}")


def _area_record_path(settings: Settings, run_id: str, unit: str) -> Path:
    return run_dir(settings, run_id) / "areas" / f"{safe_run_id(unit)}.json"


def _record_area(settings: Settings, run_id: str, unit: str, **record: Any) -> None:
    _write_json(_area_record_path(settings, run_id, unit), {"unit": unit, **record})


def _failure_reason(exc: BaseException) -> str:
    # Stage messages are PII-free by construction (they name files, columns, rules and rows, never values).
    return f"{type(exc).__name__}: {exc}"[:2000]


def plan_areas(settings: Settings, period: str, run_id: str, location: str | Path) -> list[dict[str, Any]]:
    """The units (areas, or one combined file) of the period's extract location; recorded (plan.json) so
    `accept_areas` accounts for every planned area, whatever happened to its tasks."""
    from treatment_marts.ingest.inbox import area_units

    check_period(period)
    units = area_units(location, load_areas(settings.config_dir))
    _write_json(run_dir(settings, run_id) / "plan.json", {"period": period, "units": units})
    return units


def land_area(settings: Settings, period: str, run_id: str, unit: str, paths: list[str]) -> dict[str, Any]:
    """Land one area's files under the area's run id; a failure is recorded for the run, then re-raised."""
    try:
        result = land(settings, period, paths, area_run_id(run_id, unit))
    except Exception as exc:
        _record_area(settings, run_id, unit, status="failed", stage="land", reason=_failure_reason(exc))
        raise
    landed_paths = [item["landed_path"] for item in result["landed"]]
    _record_area(settings, run_id, unit, status="landed", stage="land", landed=result["landed"])
    return {"unit": unit, "landed_paths": landed_paths}


def validate_area(
    settings: Settings, period: str, run_id: str, unit: str, area_code: str | None, landed_paths: list[str]
) -> dict[str, Any]:
    """Validate one area: its file holds only its own rows, then the whole `validate` stage on it."""
    from treatment_marts.ingest.inbox import foreign_area_codes

    record = json.loads(_area_record_path(settings, run_id, unit).read_text())
    try:
        if area_code:
            la_codes = [c for p in landed_paths for c in read_landed(p)["la_code"].tolist()]
            foreign = foreign_area_codes([c if isinstance(c, str) else None for c in la_codes], area_code)
            if foreign:
                raise ExtractError(
                    f"{unit}: {sum(foreign.values())} row(s) of this area's file carry another area's la_code "
                    f"({', '.join(f'{code}: {n}' for code, n in sorted(foreign.items()))}); an area file holds only its own area"
                )
        result = validate(settings, period, area_run_id(run_id, unit), landed_paths)
    except Exception as exc:
        _record_area(
            settings,
            run_id,
            unit,
            status="failed",
            stage="validate",
            reason=_failure_reason(exc),
            landed=record.get("landed", []),
        )
        raise
    # Protection reads the accepted rows: the landed files minus any quarantined rows (same file names).
    accepted = {Path(p).name: p for p in result["accepted_paths"]}
    landed_items = [
        {**item, "landed_path": accepted.get(Path(item["landed_path"]).name, item["landed_path"])}
        for item in record.get("landed", [])
    ]
    _record_area(
        settings,
        run_id,
        unit,
        status="passed",
        stage="validate",
        landed=landed_items,
        warnings=result["warnings"],
        month_over_month=result["month_over_month"],
        quarantined_rows=result["quarantined_rows"],
    )
    return {
        "unit": unit,
        "landed_paths": list(result["accepted_paths"]),
        "warnings": result["warnings"],
        "quarantined_rows": result["quarantined_rows"],
    }


def accept_areas(
    settings: Settings,
    period: str,
    run_id: str,
    units: list[str] | None = None,
    expected_areas: list[str] | None = None,
) -> dict[str, Any]:
    """Gather the areas that passed for `protect`; record the ones left out (failed, or expected and absent).

    `units` default to the run's plan.json. Raises when no area passed: there is nothing to protect.
    """
    run_id = safe_run_id(run_id)
    if units is None:
        units = [u["unit"] for u in json.loads((run_dir(settings, run_id) / "plan.json").read_text())["units"]]
    included, excluded, landed = [], [], []
    for unit in units:
        path = _area_record_path(settings, run_id, unit)
        record = (
            json.loads(path.read_text())
            if path.exists()
            else {"status": "failed", "stage": "land", "reason": "did not run"}
        )
        if record["status"] == "passed":
            included.append(unit)
            landed += record["landed"]
        else:
            excluded.append({"unit": unit, "stage": record["stage"], "reason": record.get("reason", "did not finish")})
    if expected_areas:
        from treatment_marts.ingest.inbox import COMBINED_UNIT

        if COMBINED_UNIT not in units:  # a combined file's areas are checked by validation, not by name
            excluded += [
                {"unit": a, "stage": "arrival", "reason": "no extract in the inbox"}
                for a in sorted(set(expected_areas) - set(units))
            ]
    outcome = {"period": period, "run_id": run_id, "included": included, "excluded": excluded}
    _write_json(run_dir(settings, run_id) / "areas.json", outcome)
    if not included:
        raise ExtractError(
            f"no area passed land and validate for {period}: "
            + "; ".join(f"{e['unit']} ({e['stage']})" for e in excluded)
        )
    _write_json(run_dir(settings, run_id) / "landed.json", {"period": period, "run_id": run_id, "landed": landed})
    landed_paths = [item["landed_path"] for item in landed]
    _write_json(_current_pointer(settings, period), {"run_id": run_id, "landed_paths": landed_paths})
    return {**outcome, "landed_paths": landed_paths}


def disclosure_summary(staged_dir: str | Path, excluded: list[dict] | None = None) -> dict[str, Any]:
    """What an IG reviewer needs before approving a staged release: cells and suppressed cells per mart and
    the audit result. Cell counts only -- never a true (suppressed) value."""
    staged = Path(staged_dir)
    manifest = json.loads((staged / "run_manifest.json").read_text())
    log = (
        pd.read_parquet(staged / "suppression_log.parquet", columns=["mart"]) if manifest["suppressed_cells"] else None
    )
    suppressed = log["mart"].value_counts().to_dict() if log is not None and "mart" in log.columns else {}
    marts = []
    for path in sorted((staged / "marts").glob("*.parquet")):
        frame = pd.read_parquet(path, columns=["count"])
        marts.append({"mart": path.stem, "cells": int(len(frame)), "suppressed": int(suppressed.get(path.stem, 0))})
    return {
        "period": manifest["period"],
        "run_id": manifest["run_id"],
        "k": manifest["k"],
        "marts": marts,
        "suppressed_cells": manifest["suppressed_cells"],
        "cells_checked": manifest["audit"]["cells_checked"],
        "disclosed": manifest["audit"]["disclosed"],
        "audit_passed": manifest["audit"]["disclosed"] == 0,
        "excluded_areas": [{"unit": e["unit"], "stage": e["stage"]} for e in (excluded or [])],
    }


def record_approval(settings: Settings, run_id: str, *, decision: str, by: str, at: str, comment: str) -> Path:
    """The IG reviewer's decision on a staged release, in the restricted run record (approval.json)."""
    path = run_dir(settings, run_id) / "approval.json"
    _write_json(
        path, {"run_id": safe_run_id(run_id), "decision": decision, "by": by, "at": at, "comment": comment[:2000]}
    )
    return path
