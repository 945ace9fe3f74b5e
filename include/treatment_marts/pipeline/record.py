"""The run record: a run's restricted folder, its JSON records and the period's accepted-extract pointer.

Every stage writes what it did here (``landed.json``, ``validation.json``, ``run_manifest.json`` ...), so a
retried task, the governance page and an IG reviewer read the same facts the stages acted on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from treatment_marts.core.files import write_private
from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.locks import LockHeld, exclusive_lock
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


class PeriodBusy(RuntimeError):
    """Another run of the same period holds the period's lock."""


_HELD: dict[Path, int] = {}  # lock files this process holds, with their depth (the lock is re-entrant)


@contextlib.contextmanager
def period_lock(settings: Settings, period: Period | str) -> Iterator[None]:
    """One run of a period at a time under a data root: a second run fails at once, before it writes.

    Why: two runs of a month interleaving their stages would accept one run's extract and publish the
    other's marts. The lock is a ``flock`` on ``restricted/locks/period=P.lock`` (released by the kernel
    if the process dies); re-entrant within a process, so `run_period` and the stages it calls share it.
    """
    path = settings.restricted_dir / "locks" / f"period={Period.parse(period)}.lock"
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(path, wait=False))
        except LockHeld:
            raise PeriodBusy(
                f"another run of {period} is in progress under {settings.data_root} (it holds {path}); "
                "wait for it to finish, then re-run"
            ) from None
        _HELD[path] = 1
        try:
            yield
        finally:
            del _HELD[path]
