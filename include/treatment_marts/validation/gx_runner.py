"""Validate a typed extract with Great Expectations (GX Core 1.x) and report it safely.

The suite is the reviewed JSON committed under expectations/ (generated from the contract); it is loaded
as-is on every run, never regenerated at run time. Runtime artefacts (validation results, Data Docs) go to
a file-backed GX context under the restricted zone of the data root rather than the repository: they
describe record-level data, and the repository stays read-only in containers.

PII safety: GX runs with the BASIC result format and no partial unexpected values, so no cell value of
any column reaches a result, Data Docs page or log (BASIC also skips the unexpected-index lists, which
are both identifying and the costliest metrics). For *non-identifying* code columns the report adds a
few offending codes, computed here, because they tell the engineer what the export got wrong.

Speed: the suite runs one narrow batch per few columns (`_run_by_domain`) and is stored as one merged
result, because GX's pandas engine copies the whole batch frame for every column metric.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network here, and no telemetry of health data

import great_expectations as gx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from great_expectations.constants import DATAFRAME_REPLACEMENT_STR  # noqa: E402
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.data_context.types.resource_identifiers import (  # noqa: E402
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.execution_engine.execution_engine import NoOpDict  # noqa: E402
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration  # noqa: E402
from great_expectations.validator.v1_validator import Validator as V1Validator  # noqa: E402
from great_expectations.validator.validation_statistics import calc_validation_statistics  # noqa: E402

from treatment_marts.contract import load_contract  # noqa: E402
from treatment_marts.core.files import make_private_dirs  # noqa: E402
from treatment_marts.core.locks import exclusive_lock  # noqa: E402
from treatment_marts.core.safety import code_examples  # noqa: E402
from treatment_marts.core.settings import Settings  # noqa: E402
from treatment_marts.deidentify.recode import age_in_years  # noqa: E402
from treatment_marts.validation.data_docs import make_offline  # noqa: E402

log = logging.getLogger(__name__)
# GX logs every decorated call at INFO (`_docs_decorators`: 214 of the 238 lines of a validate task's log);
# its warnings and errors still come through. The summary line below is what an engineer reads.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0, "include_unexpected_rows": False}
SUITE_DIGEST_KEY = "treatment_marts_suite_sha256"
_EXAMPLES = 3
DOMAIN_WIDTH = 4  # columns per batch: see _domains


@dataclass
class ValidationReport:
    success: bool
    period: str
    source: str
    rows: list[dict]
    data_docs_index: Path | None = None
    row_count: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def blocking_failures(self) -> list[dict]:
        return [r for r in self.rows if not r["success"] and r["severity"] == "blocking"]

    def warnings(self) -> list[dict]:
        return [r for r in self.rows if not r["success"] and r["severity"] == "warning"]

    def summary_text(self) -> str:
        failed = [r for r in self.rows if not r["success"]]
        quarantined = f", {len(self.quarantined())} quarantined" if self.quarantined() else ""
        head = (
            f"validation of {self.source} for {self.period}: {len(self.rows)} expectations, "
            f"{len(self.blocking_failures())} blocking and {len(self.warnings())} warning failure(s){quarantined}, "
            f"{self.row_count} rows"
        )
        if not failed:
            return head + " - all passed"
        lines = [head, f"  {'severity':11s} {'column(s)':28s} {'unexpected':>10s} {'%':>7s}  rule"]
        for r in sorted(failed, key=lambda r: (r["severity"] != "blocking", r["severity"], r["column"])):
            count = "" if r["unexpected_count"] is None else str(r["unexpected_count"])
            percent = "" if r["unexpected_percent"] is None else f"{r['unexpected_percent']:.2f}"
            example = self.examples.get(r["id"])
            extra = f" (e.g. {', '.join(example)})" if example else ""
            lines.append(f"  {r['severity']:11s} {r['column'][:28]:28s} {count:>10s} {percent:>7s}  {r['rule']}{extra}")
        return "\n".join(lines)

    def absorb_quarantined(self, rules: set[str]) -> None:
        """Failures of these (row-level) rules were quarantined row by row: report them, don't block on them."""
        for row in self.rows:
            if not row["success"] and row["severity"] == "blocking" and row["rule"] in rules:
                row["severity"] = "quarantined"
        self.success = not self.blocking_failures()

    def quarantined(self) -> list[dict]:
        return [r for r in self.rows if not r["success"] and r["severity"] == "quarantined"]

    def raise_for_blocking(self) -> None:
        if self.blocking_failures():
            raise ValidationFailed(self)


class ValidationFailed(Exception):
    """A blocking expectation failed: nothing downstream may run. The message is the PII-safe summary."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.summary_text())


def suite_path(settings: Settings) -> Path:
    return settings.expectations_dir / f"{load_contract().name}.json"


def with_derived_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the suite's cross-field rules read (see contract/suite.py)."""
    out = frame.copy(deep=False)  # copy-on-write: replacing a column never touches the caller's frame
    out["_age_at_triage"] = age_in_years(frame["date_of_birth"], frame["triage_date"])
    out["_discharge_consistent"] = frame["discharge_date"].notna() == frame["discharge_reason"].notna()
    d1, d2, d3 = frame["drug_1"], frame["drug_2"], frame["drug_3"]
    out["_drugs_distinct"] = (
        ((d2.isna() | (d2 != d1)) & (d3.isna() | ((d3 != d1) & (d3 != d2)))).fillna(True).astype(bool)
    )
    out["_route_consistent"] = (
        (~(frame["route"] == "1") | frame["injecting_status"].isin(["C", "P"])).fillna(True).astype(bool)
    )
    # GX vectorises range checks only for numpy floats/ints and datetime64[ns] (parsing ISO bounds from the
    # JSON suite); nullable Int64 and datetime64[ms] would fall back to a slow per-value Python path.
    # GX's pandas engine filters its batch for every metric (nulls, row conditions), so row takes dominate:
    # code-list columns as categoricals take ~20x faster than Arrow strings and halve memory. Pattern-checked
    # text (keys, initials, postcodes) stays Arrow strings: GX's regex runs vectorised on them (3x faster
    # than on a categorical), and factorising near-unique keys cost ~4 s per national month.
    coded = {c.name for c in load_contract().columns if c.allowed_values is not None}
    for column in out.columns:
        dtype = out[column].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype):
            out[column] = out[column].astype("datetime64[ns]")
        elif isinstance(dtype, pd.Int64Dtype):
            out[column] = out[column].astype("float64")
        elif isinstance(dtype, pd.StringDtype) and column in coded:
            out[column] = out[column].astype("category")
    return out


def suite_parameters(period: str) -> dict:
    """Values of the suite's `$PARAMETER`s for a period (end of the month as a datetime bound)."""
    period_end = (pd.Timestamp(f"{period}-01") + pd.offsets.MonthEnd(0)).strftime("%Y-%m-%dT23:59:59")
    return {"period_end": period_end, "period_values": [period]}


def _context(settings: Settings) -> Any:  # a GX FileDataContext
    make_private_dirs(settings.gx_dir, top=settings.restricted_dir)
    context = gx.get_context(mode="file", project_root_dir=settings.gx_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # task logs, not a terminal
    return context


def _checkpoint(context: Any, suite_file: Path) -> Any:
    """The checkpoint validating the committed suite, registered in the context only when the suite changed.

    ``add_or_update`` compares every expectation pairwise (seconds for a 100-expectation suite, twice per
    run), so the stored suite carries the digest of the reviewed JSON and is reused while it matches.
    """
    text = suite_file.read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    spec = json.loads(text)
    try:
        checkpoint = context.checkpoints.get("monthly_extract_checkpoint")
        stored = context.suites.get(spec["name"])
        if (stored.meta or {}).get(SUITE_DIGEST_KEY) == digest:
            return checkpoint
    except Exception:  # noqa: BLE001 - any missing/unreadable piece: register everything afresh
        pass
    for factory, name in (
        (context.checkpoints, "monthly_extract_checkpoint"),
        (context.validation_definitions, "monthly_extract_validation"),
        (context.suites, spec["name"]),
    ):
        with contextlib.suppress(Exception):  # not there yet
            factory.delete(name)
    suite = gx.ExpectationSuite(name=spec["name"], meta={**spec.get("meta", {}), SUITE_DIGEST_KEY: digest})
    for item in spec["expectations"]:
        suite.add_expectation_configuration(
            ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"], meta=item.get("meta", {}))
        )
    suite = context.suites.add(suite)
    datasource = context.data_sources.add_or_update_pandas("extracts")
    asset = next((a for a in datasource.assets if a.name == "monthly_extract"), None) or datasource.add_dataframe_asset(
        "monthly_extract"
    )
    batch = next(
        (b for b in asset.batch_definitions if b.name == "whole_extract"), None
    ) or asset.add_batch_definition_whole_dataframe("whole_extract")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="monthly_extract_validation", data=batch, suite=suite)
    )
    return context.checkpoints.add(
        gx.Checkpoint(
            name="monthly_extract_checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format=RESULT_FORMAT,
        )
    )


def _domain_columns(config: ExpectationConfiguration, columns: pd.Index) -> tuple[str, ...] | None:
    """The batch columns one expectation reads (its domain and row condition); None for table-level rules,
    which read the column names and row count only and so take no rows."""
    kwargs = config.kwargs
    named = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs] + list(kwargs.get("column_list", []))
    if not named:
        return None
    condition = kwargs.get("row_condition")
    if condition:  # a pandas query string, or GX's structured condition holding one: every column it names
        named += [c for c in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(condition)) if c in columns]
    return tuple(dict.fromkeys(named))


def _domains(
    configs: list[ExpectationConfiguration], frame: pd.DataFrame, width: int = DOMAIN_WIDTH
) -> list[tuple[tuple[str, ...] | None, list[ExpectationConfiguration]]]:
    """The suite's expectations packed into batches of at most ``width`` columns (more only when one
    expectation alone reads more), table-level rules on the whole frame.

    A batch per expectation would make every take as narrow as possible, but each batch costs GX a metric
    graph and its table metrics; a few columns per batch keeps both costs small. Text columns (Arrow
    strings: keys, initials, postcodes) are never packed with columns their expectations do not read: GX
    filters the whole batch for every metric, and copying text is the dearest part of those takes (row
    takes 0.6 -> 0.4 s CPU at 600k rows when the four key columns stopped sharing one batch)."""
    whole: list[ExpectationConfiguration] = []
    packed: list[tuple[list[str], list[ExpectationConfiguration]]] = []

    def fixed_width(columns: list[str] | tuple[str, ...]) -> bool:
        return all(isinstance(frame[c].dtype, (pd.CategoricalDtype, np.dtype)) for c in columns)

    for config in configs:
        needed = _domain_columns(config, frame.columns)
        if needed is None:
            whole.append(config)
            continue
        for group_columns, members in packed:
            union = list(dict.fromkeys([*group_columns, *needed]))
            if (
                (len(union) <= width or set(needed) <= set(group_columns))
                if fixed_width(union)
                else set(needed) == set(group_columns)
            ):
                group_columns[:] = union
                members.append(config)
                break
        else:
            packed.append((list(needed), [config]))
    out: list[tuple[tuple[str, ...] | None, list[ExpectationConfiguration]]] = [(None, whole)] if whole else []
    return out + [(tuple(group_columns), members) for group_columns, members in packed]


def _run_by_domain(
    context: Any, checkpoint: Any, batch_frame: pd.DataFrame, *, expectation_parameters: dict, run: Any
) -> Any:
    """Validate the checkpoint's suite one domain at a time and store ONE merged validation result.

    Why: GX's pandas engine takes a row-filtered copy of the *whole* batch frame for every column metric
    (`df[df[column].notnull()]`, row conditions): 206 copies of an 81-column frame per national month, 25 s
    of a 29 s validation. Each expectation only ever reads its own columns, so it is validated on a batch
    of just those columns (the same batch definition, the same expectation, the same verdict and counts),
    and the per-domain results are merged, in suite order, into the one result the checkpoint would have
    stored: one validation result and one Data Docs entry per extract, with the whole frame's fingerprint.
    """
    definition = checkpoint.validation_definitions[0]
    suite = definition.suite
    configs = suite.expectation_configurations
    # One validator and one batch: what ValidationDefinition.run builds. Getting the batch fingerprints the
    # whole frame (GX's `pandas_data_fingerprint`, kept in the result and its Data Docs page); the domains
    # then reload that batch id with their own columns, so GX hashes the extract once, not once more per
    # domain as a validator per domain did (~1.6 s per million rows each time).
    validator = V1Validator(
        batch_definition=definition.batch_definition,
        batch_parameters={"dataframe": batch_frame},
        result_format=RESULT_FORMAT,
    )
    batch_id = validator.active_batch_id
    engine = definition.batch_definition.data_asset.datasource.get_execution_engine()
    by_id: dict[str, Any] = {}
    first_part: Any = None
    for columns, members in _domains(configs, batch_frame):
        engine.load_batch_data(batch_id, batch_frame if columns is None else batch_frame[list(columns)])
        _clear_metrics(engine)  # metrics are cached per batch id, which every domain's data shares
        part = validator.validate_expectation_suite(
            gx.ExpectationSuite(name=suite.name, expectations=members), expectation_parameters
        )
        if first_part is None:
            first_part = part
        for item in part.results:
            if item.expectation_config is None:  # GX sets it on every result of a suite run
                raise RuntimeError("GX returned a validation result without its expectation")
            by_id[str(item.expectation_config.id)] = item
    del validator
    _release_batches(context)
    results = [by_id[str(config.id)] for config in configs]
    statistics = calc_validation_statistics(results)
    merged = ExpectationSuiteValidationResult(
        results=results,
        success=statistics.success,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        },
        meta={
            **(first_part.meta if first_part is not None else {}),
            "validation_id": definition.id,
            "checkpoint_id": checkpoint.id,
            "run_id": run,
            "validation_time": run.run_time,
            "batch_parameters": {"dataframe": DATAFRAME_REPLACEMENT_STR},
        },
        batch_id=first_part.batch_id if first_part is not None else None,
    )
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        run_id=run,
        batch_identifier=merged.batch_id,
    )
    context.validation_results_store.store_validation_results(
        suite_validation_result=merged,
        suite_validation_result_identifier=key,
        expectation_suite_identifier=key.expectation_suite_identifier,
    )
    # what the checkpoint's UpdateDataDocsAction builds: the result's page, the suite's page and the index
    context.build_data_docs(resource_identifiers=[key, key.expectation_suite_identifier])
    return merged


def _release_batches(context: Any) -> None:
    """Drop the batch and metrics GX's execution engine keeps cached after a run: the context lives on in the process
    (GX keeps it as the current project), so the cache would hold a copy of the whole extract (1.3 GB for
    a national month) until the next validation, through every later stage of an in-process run."""
    for datasource in context.data_sources.all().values():
        engine = getattr(datasource, "_execution_engine", None)
        if engine is not None:
            engine.batch_manager.reset_batch_cache()
            engine.batch_manager.batch_data_cache.clear()
            _clear_metrics(engine)  # ... and every resolved metric, row-level series included (~0.7 GB)


def _clear_metrics(engine: Any) -> None:
    """Forget every metric the engine resolved. GX has no public call for this; the cache is a plain dict on
    the engine (a `NoOpDict` when caching is off). Fail loudly if a GX upgrade moves it: a domain reading
    the metrics of another domain's columns would give wrong verdicts, not just slow ones."""
    metric_cache = getattr(engine, "_metric_cache", None)
    if isinstance(metric_cache, dict):
        metric_cache.clear()
    elif not isinstance(metric_cache, NoOpDict):
        raise RuntimeError("GX's execution engine has no metric cache to clear: check the pinned GX version")


def _column_of(kwargs: dict) -> str:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if "column_list" in kwargs:
        return ", ".join(kwargs["column_list"])
    return "(table)"


def _examples(frame: pd.DataFrame, rows: list[dict]) -> dict[str, list[str]]:
    """A few offending codes of failed set expectations on non-identifying columns (never identifiers).

    Only values that are provably codes are quoted (:func:`treatment_marts.core.safety.code_examples`): with two
    headers swapped, the failing values of ``sex`` are postcodes or client references."""
    identifying = set(load_contract().identifying_columns)
    out: dict[str, list[str]] = {}
    for r in rows:
        column = r["column"]
        if (
            r["success"]
            or r["type"] != "expect_column_values_to_be_in_set"
            or column in identifying
            or column not in frame
        ):
            continue
        if column.startswith("_") or column == "period":
            continue
        values = frame[column].dropna()
        bad = values[~values.isin(r["value_set"])].astype(str).drop_duplicates().head(1000)
        shown = code_examples(bad, _EXAMPLES)
        if shown:
            out[r["id"]] = shown
    return out


def validate_extract(
    frame: pd.DataFrame, *, period: str, settings: Settings, run_id: str, source: str
) -> ValidationReport:
    """Run the committed suite over one typed extract; build Data Docs; return the (PII-safe) report.

    One validation at a time per GX context: GX's file context is not safe for concurrent writers (two
    mapped validate_area tasks on Celery workers raced registering the suite: "Store already has the
    following key"), and the Data Docs index is rebuilt by every run (tests/dags/test_scale_out.py).
    """
    with exclusive_lock(settings.gx_dir.parent / ".gx.lock"):
        return _validate_extract(frame, period=period, settings=settings, run_id=run_id, source=source)


def _validate_extract(
    frame: pd.DataFrame, *, period: str, settings: Settings, run_id: str, source: str
) -> ValidationReport:
    context = _context(settings)
    checkpoint = _checkpoint(context, suite_path(settings))
    batch_frame = with_derived_columns(frame)
    try:
        result = _run_by_domain(
            context,
            checkpoint,
            batch_frame,
            expectation_parameters=suite_parameters(period),
            run=gx.RunIdentifier(run_name=f"{run_id}-{Path(source).stem}"[:200]),
        )
    finally:
        del batch_frame
        _release_batches(context)
    rows = []
    for item in result.results:
        config = item.expectation_config
        kwargs = dict(config.kwargs)
        stats = item.result or {}
        rows.append(
            {
                "id": str(config.id),
                "type": config.type,
                "column": _column_of(kwargs),
                "severity": (config.meta or {}).get("severity", "blocking"),
                "rule": (config.meta or {}).get("rule", config.type),
                "success": bool(item.success),
                "unexpected_count": stats.get("unexpected_count"),
                "unexpected_percent": stats.get("unexpected_percent"),
                "value_set": kwargs.get("value_set") if isinstance(kwargs.get("value_set"), list) else None,
            }
        )
    docs = context.get_docs_sites_urls()
    index = Path(docs[0]["site_url"].removeprefix("file://")) if docs else None
    if index is not None:
        make_offline(index.parent)  # restricted networks: no CDN, no asset bucket (validation/data_docs.py)
    report = ValidationReport(
        success=not any(not r["success"] and r["severity"] == "blocking" for r in rows),
        period=period,
        source=source,
        rows=rows,
        data_docs_index=index,
        row_count=len(frame),
    )
    report.examples = _examples(frame, rows)
    (log.info if report.success else log.error)("%s", report.summary_text())
    return report
