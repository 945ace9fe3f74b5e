"""Areas in the inbox: a period's inbox holds one extract per area (`<area name or code>.csv|xlsx|parquet`)
or one combined file; `area_units` splits it into the units the DAG maps land + validate over.

No pandas: the arrival DAG reads the inbox at parse time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from treatment_marts.core.config import AreasConfig

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".parquet")  # as ingest.land.SUPPORTED_SUFFIXES (land imports pandas)
COMBINED_UNIT = "all-areas"


def _area_for(stem: str, areas: AreasConfig) -> tuple[str, str] | None:
    """(name, code) of the area a file is named after (name or GSS-style code, any case), else None."""
    key = stem.strip().lower()
    for area in areas.areas:
        if key in (area.name.lower(), area.code.lower()):
            return area.name, area.code
    return None


def area_units(location: Path | str, areas: AreasConfig) -> list[dict[str, Any]]:
    """Split a period's extract location into units processed independently (one mapped task each).

    A file named after an area (`Exborough.csv`, `E08900001.parquet`) is that area's unit; every other file
    belongs to one combined unit (today's single national file). Two files for the same area are refused:
    which one is current would be a guess. Units are sorted, so map indexes are stable across retries.
    """
    location = Path(location)
    if location.is_file():
        files = [location]
    elif location.is_dir():
        files = sorted(
            p
            for p in location.iterdir()
            if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise FileNotFoundError(f"no extract files ({', '.join(SUPPORTED_SUFFIXES)}) in {location}")
    else:
        raise FileNotFoundError(f"extract location does not exist: {location}")
    units: dict[str, dict[str, Any]] = {}
    for path in files:
        match = _area_for(path.stem, areas)
        name, code = match if match else (COMBINED_UNIT, None)
        unit = units.setdefault(name, {"unit": name, "area_code": code, "paths": []})
        if match and unit["paths"]:
            raise ValueError(
                f"two extract files for area {name}: {Path(unit['paths'][0]).name} and {path.name}; keep one"
            )
        unit["paths"].append(str(path))
    return [units[k] for k in sorted(units, key=lambda u: (u == COMBINED_UNIT, u))]


def foreign_area_codes(la_codes: list[str | None], area_code: str) -> dict[str, int]:
    """Rows of an area's own file that carry another (or no) area code: {code: rows}. Codes are not identifying."""
    counts: dict[str, int] = {}
    for code in la_codes:
        if code != area_code:
            key = code if code else "missing"
            counts[key] = counts.get(key, 0) + 1
    return counts
