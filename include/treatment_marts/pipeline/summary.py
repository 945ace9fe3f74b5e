"""What an IG reviewer sees before approving a staged release, and where their decision is recorded."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from treatment_marts.core.ids import RunId
from treatment_marts.core.settings import Settings
from treatment_marts.pipeline.areas import ExcludedArea
from treatment_marts.pipeline.record import read_json, run_dir, write_json


@dataclass(frozen=True)
class DisclosureSummary:
    """Cells and suppressed cells per mart and the audit result: cell counts only, never a true value."""

    period: str
    run_id: str
    k: int
    marts: list[dict[str, Any]]
    suppressed_cells: int
    cells_checked: int
    disclosed: int
    audit_passed: bool
    excluded_areas: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def disclosure_summary(staged_dir: str | Path, excluded: list[ExcludedArea] | None = None) -> DisclosureSummary:
    """The summary of a staged release (read from its run manifest, log and marts)."""
    staged = Path(staged_dir)
    manifest = read_json(staged / "run_manifest.json")
    log = (
        pd.read_parquet(staged / "suppression_log.parquet", columns=["mart"]) if manifest["suppressed_cells"] else None
    )
    suppressed = log["mart"].value_counts().to_dict() if log is not None and "mart" in log.columns else {}
    marts = []
    for path in sorted((staged / "marts").glob("*.parquet")):
        frame = pd.read_parquet(path, columns=["count"])
        marts.append({"mart": path.stem, "cells": int(len(frame)), "suppressed": int(suppressed.get(path.stem, 0))})
    return DisclosureSummary(
        period=manifest["period"],
        run_id=manifest["run_id"],
        k=manifest["k"],
        marts=marts,
        suppressed_cells=manifest["suppressed_cells"],
        cells_checked=manifest["audit"]["cells_checked"],
        disclosed=manifest["audit"]["disclosed"],
        audit_passed=manifest["audit"]["disclosed"] == 0,
        excluded_areas=[{"unit": e.unit, "stage": e.stage} for e in (excluded or [])],
    )


def record_approval(settings: Settings, run_id: RunId, *, decision: str, by: str, at: str, comment: str) -> Path:
    """The IG reviewer's decision on a staged release, in the restricted run record (approval.json)."""
    path = run_dir(settings, run_id) / "approval.json"
    write_json(path, {"run_id": str(run_id), "decision": decision, "by": by, "at": at, "comment": comment[:2000]})
    return path
