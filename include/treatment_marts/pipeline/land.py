"""The land stage: every extract file of the period copied (raw + checksum), then typed to Parquet."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treatment_marts.core.ids import Period, RunId, checked
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import LandedExtract, discover_extracts, land_extract
from treatment_marts.pipeline.record import run_dir, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandResult:
    """What `land` wrote: one entry per file (also the run record ``landed.json``)."""

    period: Period
    run_id: RunId
    landed: tuple[LandedExtract, ...]

    @property
    def landed_paths(self) -> list[str]:
        return [item.landed_path for item in self.landed]

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "run_id": self.run_id, "landed": [item.to_dict() for item in self.landed]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LandResult:
        return cls(
            period=Period.parse(data["period"]),
            run_id=RunId.parse(data["run_id"]),
            landed=tuple(LandedExtract(**item) for item in data["landed"]),
        )


def land(
    settings: Settings, period: Period, extract_paths: list[str | Path] | list[str] | str | Path, run_id: RunId
) -> LandResult:
    """Land every extract file found at the given locations (files or folders)."""
    period, run_id = checked(period, run_id)
    started = time.monotonic()
    locations = [extract_paths] if isinstance(extract_paths, (str, Path)) else list(extract_paths)
    files = [f for location in locations for f in discover_extracts(location, settings.allowed_roots)]
    log.info("land %s: %d extract file(s) found", period, len(files))
    landed = []
    for f in files:
        landed.append(land_extract(settings, period, f, run_id))
        log.info("land %s: %s, %d rows typed and checksummed", period, landed[-1].source, landed[-1].rows)
    result = LandResult(period=period, run_id=run_id, landed=tuple(landed))
    write_json(run_dir(settings, run_id) / "landed.json", result.to_dict())
    log.info(
        "land %s: %d file(s), %d rows landed in %.1fs",
        period,
        len(landed),
        sum(x.rows for x in landed),
        time.monotonic() - started,
    )
    return result
