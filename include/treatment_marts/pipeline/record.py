"""The run record: a run's restricted folder, its JSON records and the period's accepted-extract pointer.

Every stage writes what it did here (``landed.json``, ``validation.json``, ``run_manifest.json`` ...), so a
retried task, the governance page and an IG reviewer read the same facts the stages acted on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from treatment_marts.core.files import write_private
from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import read_landed


def run_dir(settings: Settings, run_id: RunId | str) -> Path:
    """The run's restricted folder; an unchecked id is made safe first (it becomes a folder name)."""
    return settings.restricted_dir / "runs" / RunId.sanitise(run_id)


def write_json(path: Path, payload: Any) -> None:
    """An owner-only JSON record (sorted keys, so a re-run writes the same bytes)."""
    write_private(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def current_pointer(settings: Settings, period: Period) -> Path:
    """The period's CURRENT.json: which landed files are the accepted (validated) extract."""
    return settings.restricted_dir / "landed" / f"period={period}" / "CURRENT.json"


def point_current(settings: Settings, period: Period, run_id: RunId, landed_paths: list[str]) -> None:
    write_json(current_pointer(settings, period), {"run_id": run_id, "landed_paths": landed_paths})


def accepted_extract(settings: Settings, period: Period) -> pd.DataFrame | None:
    """The period's last accepted (validated) extract files, combined; None if the period never passed."""
    pointer = current_pointer(settings, period)
    if not pointer.exists():
        return None
    paths = read_json(pointer)["landed_paths"]
    return pd.concat([read_landed(p) for p in paths], ignore_index=True)
