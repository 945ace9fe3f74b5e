"""Retention: purge identifiable raw and landed extracts after N months, with an audit entry per purge.

Published marts and suppression logs are kept (they are the release record); what goes is the
record-level, identifying material the pipeline no longer needs. The recoded history of accepted months
(pipeline/history.py: pseudonymised, no identifiers, but client-level) has its own, longer limit
(``retention.history_months``), since windows and trends need years of months.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from treatment_marts.core.files import make_private_dirs
from treatment_marts.core.settings import Settings

# The whole operations.yaml (retention, arrival, approval) is validated in one place.
from treatment_marts.ops.policy import OperationsConfig, RetentionPolicy, load_operations  # noqa: F401


def _period_dirs(root: Path) -> dict[str, Path]:
    if not root.exists():
        return {}
    return {p.name.removeprefix("period="): p for p in root.iterdir() if p.is_dir() and p.name.startswith("period=")}


def purge_expired(
    settings: Settings,
    *,
    current_period: str,
    raw_months: int,
    actor: str = "treatment-marts",
    history_months: int | None = None,
) -> list[dict]:
    """Delete raw and landed partitions older than ``raw_months`` before ``current_period``; audit each.
    ``history_months``: also the months of the recoded history (restricted/history) older than that."""
    cutoffs = {"raw": raw_months, "landed": raw_months}
    zones = {"raw": settings.raw_dir, "landed": settings.restricted_dir / "landed"}
    if history_months is not None:
        cutoffs["history"] = history_months
        zones["history"] = settings.restricted_dir / "history"
    entries = []
    for zone, root in zones.items():
        cutoff = pd.Period(current_period, freq="M") - cutoffs[zone]
        for period, folder in sorted(_period_dirs(root).items()):
            if pd.Period(period, freq="M") >= cutoff:
                continue
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            entry = {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "actor": actor,
                "action": "purge",
                "zone": zone,
                "period": period,
                "files": len(files),
                "bytes": sum(p.stat().st_size for p in files),
                "sha256": sorted(
                    p.name.split(".")[-2] for p in files if zone == "raw" and p.suffix in {".csv", ".xlsx", ".parquet"}
                ),
                "reason": f"older than {cutoffs[zone]} months before {current_period}",
            }
            shutil.rmtree(folder)
            _append_audit(settings, entry)
            entries.append(entry)
    return entries


def _append_audit(settings: Settings, entry: dict) -> None:
    path = settings.restricted_dir / "audit" / "retention.jsonl"
    make_private_dirs(path.parent, top=settings.restricted_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
