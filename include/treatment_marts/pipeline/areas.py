"""Per-area runs: the DAG maps land + validate over the areas of a period (see ingest.inbox.area_units).

Each area lands and validates under its own run id ``<run id>.<area>`` (its own landed.json,
validation.json and validation_results rows), so mapped tasks never write the same file. `accept_areas`
then gathers the areas that passed into the run's own landed.json and the period's CURRENT pointer, and
records which areas were left out and why (restricted run record areas.json) before `protect` runs over
them. Results are dataclasses with ``to_dict`` / ``from_dict``: the DAG passes them through XCom as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from treatment_marts.core.config import load_areas
from treatment_marts.core.ids import Period, RunId, area_run_id, checked
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import ExtractError, read_landed
from treatment_marts.pipeline.land import land
from treatment_marts.pipeline.record import point_current, read_json, run_dir, write_json
from treatment_marts.pipeline.validate import validate


@dataclass(frozen=True)
class AreaUnit:
    """One unit of a period's extract: an area's own file(s), or the combined national file (no area code)."""

    unit: str
    area_code: str | None
    paths: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AreaUnit:
        return cls(unit=data["unit"], area_code=data.get("area_code"), paths=list(data["paths"]))


@dataclass(frozen=True)
class AreaLanded:
    unit: str
    area_code: str | None
    landed_paths: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AreaLanded:
        return cls(unit=data["unit"], area_code=data.get("area_code"), landed_paths=list(data["landed_paths"]))


@dataclass(frozen=True)
class AreaValidated:
    unit: str
    landed_paths: list[str]  # the accepted files (landed, minus quarantined rows)
    warnings: int = 0
    quarantined_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExcludedArea:
    """An area left out of the release, the stage where it was lost and why (PII-free stage message)."""

    unit: str
    stage: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExcludedArea:
        return cls(unit=data["unit"], stage=data["stage"], reason=data.get("reason", ""))


@dataclass(frozen=True)
class AcceptedAreas:
    """The areas `protect` runs over, and the ones left out (also the run record ``areas.json``)."""

    period: Period
    run_id: RunId
    included: list[str]
    excluded: list[ExcludedArea]
    landed_paths: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "run_id": str(self.run_id),
            "included": list(self.included),
            "excluded": [e.to_dict() for e in self.excluded],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.record(), "landed_paths": list(self.landed_paths)}


def _area_record_path(settings: Settings, run_id: RunId, unit: str) -> Path:
    return run_dir(settings, run_id) / "areas" / f"{RunId.sanitise(unit)}.json"


def _record_area(settings: Settings, run_id: RunId, unit: str, **record: Any) -> None:
    write_json(_area_record_path(settings, run_id, unit), {"unit": unit, **record})


def _failure_reason(exc: BaseException) -> str:
    # Stage messages are PII-free by construction (they name files, columns, rules and rows, never values).
    return f"{type(exc).__name__}: {exc}"[:2000]


def plan_areas(settings: Settings, period: Period, run_id: RunId, location: str | Path) -> list[AreaUnit]:
    """The units (areas, or one combined file) of the period's extract location; recorded (plan.json) so
    `accept_areas` accounts for every planned area, whatever happened to its tasks."""
    period, run_id = checked(period, run_id)
    from treatment_marts.ingest.inbox import area_units

    units = [AreaUnit.from_dict(u) for u in area_units(location, load_areas(settings.config_dir))]
    write_json(run_dir(settings, run_id) / "plan.json", {"period": period, "units": [u.to_dict() for u in units]})
    return units


def land_area(settings: Settings, period: Period, run_id: RunId, unit: AreaUnit) -> AreaLanded:
    """Land one area's files under the area's run id; a failure is recorded for the run, then re-raised."""
    period, run_id = checked(period, run_id)
    try:
        result = land(settings, period, unit.paths, area_run_id(run_id, unit.unit))
    except Exception as exc:
        _record_area(settings, run_id, unit.unit, status="failed", stage="land", reason=_failure_reason(exc))
        raise
    landed = result.to_dict()["landed"]
    _record_area(settings, run_id, unit.unit, status="landed", stage="land", landed=landed)
    return AreaLanded(unit=unit.unit, area_code=unit.area_code, landed_paths=result.landed_paths)


def _check_own_rows(unit: str, area_code: str, landed_paths: list[str]) -> None:
    from treatment_marts.ingest.inbox import foreign_area_codes

    la_codes = [c for p in landed_paths for c in read_landed(p)["la_code"].tolist()]
    foreign = foreign_area_codes([c if isinstance(c, str) else None for c in la_codes], area_code)
    if foreign:
        raise ExtractError(
            f"{unit}: {sum(foreign.values())} row(s) of this area's file carry another area's la_code "
            f"({', '.join(f'{code}: {n}' for code, n in sorted(foreign.items()))}); an area file holds only its own area"
        )


def validate_area(settings: Settings, period: Period, run_id: RunId, landed: AreaLanded) -> AreaValidated:
    """Validate one area: its file holds only its own rows, then the whole `validate` stage on it."""
    period, run_id = checked(period, run_id)
    unit = landed.unit
    record = read_json(_area_record_path(settings, run_id, unit))
    try:
        if landed.area_code:
            _check_own_rows(unit, landed.area_code, landed.landed_paths)
        result = validate(settings, period, area_run_id(run_id, unit), landed.landed_paths)
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
    accepted = {Path(p).name: p for p in result.accepted_paths}
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
        warnings=result.warnings,
        month_over_month=result.month_over_month,
        quarantined_rows=result.quarantined_rows,
    )
    return AreaValidated(
        unit=unit,
        landed_paths=list(result.accepted_paths),
        warnings=result.warnings,
        quarantined_rows=result.quarantined_rows,
    )


def areas_missing_from(landed_paths: list[str], settings: Settings) -> list[str]:
    """Configured areas (areas.yaml) whose code no row of these landed files carries, sorted. Reads only the
    ``la_code`` column: cheap even for a national month."""
    import pyarrow.parquet as pq

    codes: set[str] = set()
    for path in landed_paths:
        codes |= {c for c in pq.read_table(path, columns=["la_code"]).column(0).unique().to_pylist() if c}
    return sorted(a.name for a in load_areas(settings.config_dir).areas if a.code not in codes)


def accept_areas(
    settings: Settings,
    period: Period,
    run_id: RunId,
    units: list[str] | None = None,
    expected_areas: list[str] | None = None,
) -> AcceptedAreas:
    """Gather the areas that passed for `protect`; record the ones left out (failed, or expected and absent).

    `units` default to the run's plan.json. Raises when no area passed: there is nothing to protect.
    """
    period, run_id = checked(period, run_id)
    from treatment_marts.ingest.inbox import COMBINED_UNIT

    if units is None:
        units = [u["unit"] for u in read_json(run_dir(settings, run_id) / "plan.json")["units"]]
    included: list[str] = []
    excluded: list[ExcludedArea] = []
    landed: list[dict[str, Any]] = []
    for unit in units:
        path = _area_record_path(settings, run_id, unit)
        record: dict[str, Any] = (
            read_json(path) if path.exists() else {"status": "failed", "stage": "land", "reason": "did not run"}
        )
        if record["status"] == "passed":
            included.append(unit)
            landed += record["landed"]
        else:
            excluded.append(ExcludedArea(unit, record["stage"], record.get("reason", "did not finish")))
    if expected_areas and COMBINED_UNIT not in units:
        excluded += [
            ExcludedArea(a, "arrival", "no extract in the inbox") for a in sorted(set(expected_areas) - set(units))
        ]
    if COMBINED_UNIT in included:  # which areas a combined file holds is known only once it is landed
        paths = [item["landed_path"] for item in landed]
        wanted = set(expected_areas) if expected_areas else {a.name for a in load_areas(settings.config_dir).areas}
        excluded += [
            ExcludedArea(a, "validate", "the combined extract holds no episode for this area")
            for a in areas_missing_from(paths, settings)
            if a in wanted and a not in {e.unit for e in excluded}
        ]
    outcome = AcceptedAreas(period=period, run_id=run_id, included=included, excluded=excluded)
    write_json(run_dir(settings, run_id) / "areas.json", outcome.record())
    if not included:
        raise ExtractError(
            f"no area passed land and validate for {period}: " + "; ".join(f"{e.unit} ({e.stage})" for e in excluded)
        )
    write_json(run_dir(settings, run_id) / "landed.json", {"period": period, "run_id": run_id, "landed": landed})
    landed_paths = [item["landed_path"] for item in landed]
    point_current(settings, period, run_id, landed_paths)
    return AcceptedAreas(period=period, run_id=run_id, included=included, excluded=excluded, landed_paths=landed_paths)
