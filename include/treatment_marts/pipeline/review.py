"""The evidence an IG reviewer decides on, written right after protect and before the approval gate.

The reviewer must see what a release withholds before approving it, so this runs between protect and the
gate (the DAG's `protect` task, `run_period`): it reads the staged marts themselves (a cell is withheld
where its status is the suppression marker, so derived marts such as unmet need count, though they have no
suppression-log rows), the restricted suppression log (which cells primary suppression alone would hide),
the run's validation records (what validation let through) and the previous public release (what changed),
and writes into the run's restricted ``review/`` folder:

* ``summary.json``: the figures (counts of cells, never of people in a cell, never an identifier);
* the IG report pages (``publish.ig_report``): a summary page, then detail pages;
* ``suppression_log.csv``: the log, downloadable from the restricted zone (it holds true values).

Publishing later adds only what publishing adds (where and when), see `publish.ig_report.add_publication`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from treatment_marts.core.config import load_rules
from treatment_marts.core.ids import Period, RunId, area_run_id, checked
from treatment_marts.core.settings import Settings
from treatment_marts.marts import load_marts
from treatment_marts.pipeline.areas import ExcludedArea
from treatment_marts.pipeline.record import read_json, run_dir, write_json
from treatment_marts.publish.ig_report import REVIEW_DIR, SUMMARY_FILE, SUPPRESSION_LOG_CSV, write_report_pages

log = logging.getLogger(__name__)

# The groups an IG reviewer checks loss for (column -> label): where suppression falls on one group of
# people more than another, the release under-represents it (protected characteristics, and areas).
GROUPS = {"area": "Area", "sex": "Sex", "ethnicity_group": "Ethnic group", "religion_group": "Religion"}
_NOT_DIMENSIONS = {"period", "count", "status", "percent"}
WITHHELD = "c"  # a mart cell's status when withheld (disclosure.protect); exports show rules.yaml's marker


@dataclass(frozen=True)
class ReviewEvidence:
    """Where the evidence for one staged release is, and its headline figures (for logs and the gate)."""

    folder: Path
    report: Path
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "report": str(self.report)}


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _dimensions(name: str, frame: pd.DataFrame, definitions: dict[str, list[str]]) -> list[str]:
    """A mart's dimension columns (marts.yaml), else its text columns other than the status."""
    if name in definitions:
        return [d for d in definitions[name] if d in frame.columns]
    return [c for c in frame.columns if c not in _NOT_DIMENSIONS and pd.api.types.is_string_dtype(frame[c])]


def _read_marts(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def _logged_cells(log_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per logged cell: mart, suppression kind and its dimension values (parsed from ``cell``)."""
    if log_frame.empty:
        return pd.DataFrame(columns=["mart", "suppression"])
    cells = pd.DataFrame([json.loads(c) for c in log_frame["cell"].astype(str)])
    return pd.concat(
        [log_frame[["mart", "suppression"]].astype(str).reset_index(drop=True), cells.reset_index(drop=True)], axis=1
    )


def _withheld(frame: pd.DataFrame, marker: str) -> pd.Series:
    return frame["status"].astype("string").eq(marker).fillna(False).astype(bool)


def loss_by_mart(marts: dict[str, pd.DataFrame], logged: pd.DataFrame, marker: str) -> list[dict[str, Any]]:
    """Cells and withheld cells of every mart, split into primary, secondary and derived (withheld with the
    cells a derived mart is computed from, so absent from the log)."""
    kinds = logged.groupby(["mart", "suppression"]).size().to_dict() if not logged.empty else {}
    rows = []
    for name, frame in marts.items():
        withheld = int(_withheld(frame, marker).sum())
        primary, secondary = int(kinds.get((name, "primary"), 0)), int(kinds.get((name, "secondary"), 0))
        rows.append(
            {
                "mart": name,
                "cells": len(frame),
                "withheld": withheld,
                "primary": primary,
                "secondary": secondary,
                "derived": max(withheld - primary - secondary, 0),
                "percent_withheld": _percent(withheld, len(frame)),
            }
        )
    return rows


def loss_by_group(
    marts: dict[str, pd.DataFrame], logged: pd.DataFrame, marker: str, column: str
) -> list[dict[str, Any]]:
    """Per value of one group column (over every mart that has it): cells, cells withheld, and the cells
    primary suppression alone would withhold; the difference is the cost of secondary suppression."""
    totals: dict[str, list[int]] = {}
    for frame in marts.values():
        if column not in frame.columns:
            continue
        withheld = _withheld(frame, marker)
        values = frame[column].astype("string").fillna("(missing)")
        for value, cells in values.value_counts().items():
            entry = totals.setdefault(str(value), [0, 0, 0])
            entry[0] += int(cells)
            entry[1] += int(withheld[values == value].sum())
    if not logged.empty and column in logged.columns:
        primary = logged[logged["suppression"] == "primary"]
        for value, cells in primary[column].dropna().astype(str).value_counts().items():
            totals.setdefault(str(value), [0, 0, 0])[2] += int(cells)
    return [
        {
            "value": value,
            "cells": cells,
            "withheld": withheld,
            "percent_withheld": _percent(withheld, cells),
            "primary_alone": primary_alone,
            "percent_primary_alone": _percent(primary_alone, cells),
        }
        for value, (cells, withheld, primary_alone) in sorted(totals.items(), key=lambda kv: (-kv[1][1], kv[0]))
    ]


def loss_by_mart_and_area(marts: dict[str, pd.DataFrame], marker: str) -> list[dict[str, Any]]:
    """The detail page's grid: cells withheld per mart per area."""
    rows = []
    for name, frame in marts.items():
        if "area" not in frame.columns:
            continue
        withheld = _withheld(frame, marker)
        for area, part in frame.groupby(frame["area"].astype("string").fillna("(missing)")):
            hidden = int(withheld.loc[part.index].sum())
            rows.append(
                {
                    "mart": name,
                    "area": str(area),
                    "cells": len(part),
                    "withheld": hidden,
                    "percent": _percent(hidden, len(part)),
                }
            )
    return rows


def _area_folders(settings: Settings, run_id: RunId) -> dict[str, Path]:
    plan = run_dir(settings, run_id) / "plan.json"
    if not plan.exists():
        return {}
    return {
        str(u["unit"]): run_dir(settings, area_run_id(run_id, str(u["unit"])))
        for u in read_json(plan).get("units", [])
        if isinstance(u, dict) and u.get("unit")
    }


def validation_let_through(settings: Settings, run_id: RunId) -> dict[str, Any]:
    """What validation passed with a caveat: warning-level expectation failures (rule and column, no
    counts), rows set aside in quarantine, and month-over-month flags; per area for a per-area run."""
    folders = _area_folders(settings, run_id) or {"": run_dir(settings, run_id)}
    warnings, flags, quarantined = [], [], []
    for unit, folder in folders.items():
        path = folder / "validation.json"
        if not path.exists():
            continue
        record = read_json(path)
        for source in record.get("expectations", []):
            for row in source.get("results", []):
                if not row.get("success", True) and row.get("severity") == "warning":
                    warnings.append(
                        {
                            "area": unit,
                            "rule": str(row.get("rule") or row.get("type")),
                            "column": str(row.get("column")),
                        }
                    )
        for finding in record.get("month_over_month", []):
            if finding.get("status") == "flag":  # not "pass", nor a check skipped for want of a baseline
                flags.append({"area": unit, "status": str(finding["status"]), "message": str(finding.get("message"))})
        for outcome in record.get("quarantine", []):
            rows = int(outcome.get("rows_quarantined", 0) or 0)
            if rows:
                quarantined.append({"area": unit, "source": str(outcome.get("source", "")), "rows": rows})
    return {
        "warnings": warnings,
        "month_over_month": flags,
        "quarantine": quarantined,
        "quarantined_rows": sum(q["rows"] for q in quarantined),
    }


def _previous_release(settings: Settings, period: Period, run_id: RunId) -> tuple[str, str] | None:
    """(period, run id) of the release to compare with: the period's current public release when this run
    revises it, else the previous month's."""
    for candidate in (period, period.minus(1)):
        manifest = settings.public_dir / "releases" / f"period={candidate}" / "manifest.json"
        if manifest.exists():
            previous = str(read_json(manifest).get("run_id", ""))
            if previous and previous != str(run_id):
                return str(candidate), previous
    return None


def changes_since(
    settings: Settings,
    period: Period,
    run_id: RunId,
    marts: dict[str, pd.DataFrame],
    marker: str,
    definitions: dict[str, list[str]],
) -> dict[str, Any]:
    """Withheld cells per mart now and in the previous release; for a revision of the same period, also the
    cells newly withheld and newly published (matched on the mart's dimensions)."""
    previous = _previous_release(settings, period, run_id)
    if previous is None:
        return {"against": None, "marts": []}
    previous_period, previous_run = previous
    rows = []
    for name, frame in marts.items():
        path = settings.public_dir / "marts" / name / f"period={previous_period}" / "data.parquet"
        if not path.exists():
            rows.append({"mart": name, "before": None, "now": int(_withheld(frame, marker).sum()), "note": "new mart"})
            continue
        before = pd.read_parquet(path)
        row: dict[str, Any] = {
            "mart": name,
            "before": int(_withheld(before, marker).sum()),
            "now": int(_withheld(frame, marker).sum()),
            "cells_before": len(before),
            "cells_now": len(frame),
        }
        dims = [d for d in _dimensions(name, frame, definitions) if d in before.columns]
        if previous_period == str(period) and dims:
            joined = (
                frame[dims]
                .assign(now=_withheld(frame, marker).values)
                .merge(before[dims].assign(before=_withheld(before, marker).values), on=dims, how="inner")
            )
            row["newly_withheld"] = int((joined["now"] & ~joined["before"]).sum())
            row["newly_published"] = int((~joined["now"] & joined["before"]).sum())
        rows.append(row)
    return {"against": {"period": previous_period, "run_id": previous_run}, "marts": rows}


def review_figures(
    settings: Settings,
    period: Period,
    run_id: RunId,
    staged_dir: Path,
    excluded: list[ExcludedArea] | None = None,
    gate: bool = False,
) -> dict[str, Any]:
    """Every figure of the review (JSON-able): cells, never people; no identifier."""
    manifest = read_json(staged_dir / "run_manifest.json")
    marker = WITHHELD
    definitions = {d.name: list(d.dimensions) for d in load_marts(settings.config_dir).marts}
    marts = _read_marts(staged_dir / "marts")
    log_path = staged_dir / "suppression_log.parquet"
    logged = _logged_cells(
        pd.read_parquet(log_path, columns=["mart", "suppression", "cell"]) if log_path.exists() else pd.DataFrame()
    )
    if excluded is None:
        areas = staged_dir / "areas.json"
        excluded = [ExcludedArea.from_dict(e) for e in read_json(areas).get("excluded", [])] if areas.exists() else []
    left_out = [e.to_dict() for e in excluded] or [
        {"unit": name, "stage": "validate", "reason": ""} for name in manifest.get("areas_left_out", [])
    ]
    by_mart = loss_by_mart(marts, logged, marker)
    cells, withheld = sum(m["cells"] for m in by_mart), sum(m["withheld"] for m in by_mart)
    primary = sum(m["primary"] for m in by_mart)
    audit = manifest.get("audit") or {}
    record_level = staged_dir / "record_level.json"
    return {
        "period": str(period),
        "run_id": str(run_id),
        "k": manifest["k"],
        "gate": gate,  # an IG approval gate holds this release (the DAG's ig_approval)
        "zeros": manifest.get("zeros"),
        "marker": load_rules(settings.config_dir).disclosure.suppressed_marker,
        "ruleset_sha256": manifest.get("ruleset_sha256"),
        "package_version": manifest.get("package_version"),
        "protected_at": manifest.get("protected_at"),
        "areas_left_out": left_out,
        "area_designs": list(manifest.get("area_designs") or []),  # marts/designs.py: area -> design, why
        "audit": {
            "cells_checked": int(audit.get("cells_checked", 0)),
            "disclosed": int(audit.get("disclosed", 0)),
            "passed": int(audit.get("disclosed", 0)) == 0,
            "revision": manifest.get("revision_audit"),  # a revision: the rule against the release it replaces
        },
        "totals": {
            "marts": len(by_mart),
            "cells": cells,
            "withheld": withheld,
            "percent_withheld": _percent(withheld, cells),
            "primary": primary,
            "percent_primary": _percent(primary, cells),
        },
        "marts": by_mart,
        "groups": {label: loss_by_group(marts, logged, marker, column) for column, label in GROUPS.items()},
        "mart_areas": loss_by_mart_and_area(marts, marker),
        "validation": validation_let_through(settings, run_id),
        "changes": changes_since(settings, period, run_id, marts, marker, definitions),
        "marts_not_built": manifest.get("marts_not_built", {}),
        "inputs": [
            {"source": str(i.get("source")), "sha256": str(i.get("sha256", ""))[:16]}
            for i in manifest.get("inputs", [])
        ],
        "record_level": read_json(record_level) if record_level.exists() else None,
        # the windows built and the earlier published releases this one was protected together with
        "windows": read_json(staged_dir / "windows.json") if (staged_dir / "windows.json").exists() else None,
    }


def write_review(
    settings: Settings,
    period: Period,
    run_id: RunId,
    staged_dir: str | Path,
    excluded: list[ExcludedArea] | None = None,
    *,
    gate: bool = False,
) -> ReviewEvidence:
    """Write the approval summary, the IG report and the suppression log CSV for the staged release;
    `gate`: an IG approval gate will hold it (the governance page then shows it awaiting a decision)."""
    period, run_id = checked(period, run_id)
    started = time.monotonic()
    staged = Path(staged_dir)
    folder = staged / REVIEW_DIR
    figures = review_figures(settings, period, run_id, staged, excluded, gate)
    write_json(folder / SUMMARY_FILE, figures)
    log_path = staged / "suppression_log.parquet"
    if log_path.exists():
        from treatment_marts.core.files import write_private

        write_private(folder / SUPPRESSION_LOG_CSV, pd.read_parquet(log_path).to_csv(index=False).encode("utf-8"))
    report = write_report_pages(folder, figures)
    totals = figures["totals"]
    log.info(
        "review %s: %d of %d cells withheld (%.1f%%; primary alone %d) in %d marts, %d area(s) left out, "
        "%d validation warning(s); IG report written in %.1fs",
        period,
        totals["withheld"],
        totals["cells"],
        totals["percent_withheld"],
        totals["primary"],
        totals["marts"],
        len(figures["areas_left_out"]),
        len(figures["validation"]["warnings"]) + len(figures["validation"]["month_over_month"]),
        time.monotonic() - started,
    )
    return ReviewEvidence(folder=folder, report=report, summary=figures)


def read_review(staged_dir: str | Path) -> dict[str, Any] | None:
    """The figures `write_review` recorded for a staged release, or None when it has not run."""
    path = Path(staged_dir) / REVIEW_DIR / SUMMARY_FILE
    return read_json(path) if path.exists() else None
