"""What an IG reviewer sees before approving a staged release, and where their decision is recorded."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from treatment_marts.core.ids import RunId
from treatment_marts.core.settings import Settings
from treatment_marts.pipeline.record import run_dir, write_json


@dataclass(frozen=True)
class DisclosureSummary:
    """The approval summary: cells and withheld cells per mart (counted in the staged marts, derived marts
    included), the audit result, the areas left out and what validation let through. Counts of cells and
    rows only, never a true value or an identifier."""

    period: str
    run_id: str
    k: int
    marts: list[dict[str, Any]]
    suppressed_cells: int  # withheld cells over every mart (status marker), not the suppression log's rows
    cells: int
    primary_cells: int
    cells_checked: int
    disclosed: int
    audit_passed: bool
    excluded_areas: list[dict[str, str]] = field(default_factory=list)
    validation_warnings: list[str] = field(default_factory=list)
    quarantined_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def disclosure_summary(figures: dict[str, Any]) -> DisclosureSummary:
    """The approval summary of a staged release, from its review figures (`pipeline.review.write_review`)."""
    checked = figures["validation"]
    warnings = [f"{w['area'] + ': ' if w['area'] else ''}{w['rule']} ({w['column']})" for w in checked["warnings"]]
    warnings += [f"month-over-month: {f['message']}" for f in checked["month_over_month"]]
    return DisclosureSummary(
        period=figures["period"],
        run_id=figures["run_id"],
        k=figures["k"],
        marts=[{"mart": m["mart"], "cells": m["cells"], "suppressed": m["withheld"]} for m in figures["marts"]],
        suppressed_cells=figures["totals"]["withheld"],
        cells=figures["totals"]["cells"],
        primary_cells=figures["totals"]["primary"],
        cells_checked=figures["audit"]["cells_checked"],
        disclosed=figures["audit"]["disclosed"],
        audit_passed=figures["audit"]["passed"],
        excluded_areas=[{"unit": e["unit"], "stage": e["stage"]} for e in figures["areas_left_out"]],
        validation_warnings=warnings,
        quarantined_rows=checked["quarantined_rows"],
    )


def approval_markdown(summary: DisclosureSummary, report_url: str | None) -> str:
    """The gate's required-action body (Markdown): areas left out first, the link to the IG report, the
    audit verdict and headline loss, what validation let through, then the marts that withhold cells."""
    lines: list[str] = []
    if summary.excluded_areas:
        lines += [
            f"**Areas left out ({len(summary.excluded_areas)}):** "
            + ", ".join(f"{e['unit']} ({e['stage']})" for e in summary.excluded_areas)
            + ". The run ends failed after publishing the other areas.",
            "",
        ]
    else:
        lines += ["Areas left out: none.", ""]
    if report_url:
        lines += [f"**[Open the IG report]({report_url})** (restricted: per-area and per-group loss, changes).", ""]
    lines += [
        f"**Period {summary.period}**, run `{summary.run_id}`; K = {summary.k} (counts 1..{summary.k} are withheld).",
        "",
        f"Disclosure audit: **{'passed' if summary.audit_passed else 'FAILED'}** "
        f"({summary.cells_checked} suppressed cells checked, {summary.disclosed} recoverable).",
        "",
        f"Withheld: **{summary.suppressed_cells} of {summary.cells} cells**; primary suppression alone: "
        f"{summary.primary_cells}.",
        "",
    ]
    if summary.validation_warnings or summary.quarantined_rows:
        lines += [
            f"Validation let through: {len(summary.validation_warnings)} warning(s)"
            + (f", {summary.quarantined_rows} row(s) quarantined" if summary.quarantined_rows else "")
            + ": "
            + "; ".join(summary.validation_warnings[:5])
            + ("; ..." if len(summary.validation_warnings) > 5 else ""),
            "",
        ]
    withholding = [m for m in summary.marts if m["suppressed"]]
    if withholding:
        lines += ["| mart | cells | withheld |", "|---|---:|---:|"]
        lines += [f"| {m['mart']} | {m['cells']} | {m['suppressed']} |" for m in withholding]
        lines += [f"\n{len(summary.marts) - len(withholding)} other mart(s) withhold nothing.", ""]
    lines += ["Approve to publish (no reason needed). Reject to publish nothing; say why in the Reason field."]
    return "\n".join(lines)


def record_approval(settings: Settings, run_id: RunId, *, decision: str, by: str, at: str, comment: str) -> Path:
    """The IG reviewer's decision on a staged release, in the restricted run record (approval.json)."""
    path = run_dir(settings, run_id) / "approval.json"
    write_json(path, {"run_id": str(run_id), "decision": decision, "by": by, "at": at, "comment": comment[:2000]})
    return path
