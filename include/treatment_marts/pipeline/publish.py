"""The publish stage: the staged, audited release goes public (Parquet + warehouse), with the restricted
suppression log, the IG report and the spreadsheet exports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.ids import Period, RunId, checked
from treatment_marts.core.settings import Settings
from treatment_marts.marts import load_marts
from treatment_marts.marts.at_publish import build_publish_marts
from treatment_marts.marts.codes import with_area_codes
from treatment_marts.pipeline.record import read_json


@dataclass(frozen=True)
class PublishedRelease:
    """Where the release went (public marts through their period link, restricted log and report)."""

    period: Period
    run_id: RunId
    marts: dict[str, Path]
    manifest: Path
    suppression_log: Path
    ig_report: Path
    exports: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "run_id": str(self.run_id),
            "marts": {name: str(path) for name, path in self.marts.items()},
            "manifest": str(self.manifest),
            "suppression_log": str(self.suppression_log),
            "ig_report": str(self.ig_report),
            "exports": str(self.exports),
        }


def publish(settings: Settings, period: Period, run_id: RunId, staged_dir: str | Path) -> PublishedRelease:
    """Publish the staged, audited release: public marts (Parquet + warehouse) and the restricted log."""
    period, run_id = checked(period, run_id)
    from treatment_marts.publish.exports import write_export_files
    from treatment_marts.publish.ig_report import write_ig_report
    from treatment_marts.publish.release import publish_release

    staged = Path(staged_dir)
    manifest = read_json(staged / "run_manifest.json")
    areas = load_areas(settings.config_dir)
    left_out = set(manifest.get("areas_left_out", []))  # no workbook for an area not in the release
    scope = areas.model_copy(update={"areas": [a for a in areas.areas if a.name not in left_out]})
    rules = load_rules(settings.config_dir)
    catalogue = load_marts(settings.config_dir)
    definitions = {d.name: d for d in catalogue.marts}
    protected = {p.stem: pd.read_parquet(p) for p in sorted((staged / "marts").glob("*.parquet"))}
    # Location marts from the protected marts and reference-population marts from their file: nothing new
    # is disclosed (marts/at_publish.py). Then GSS codes beside area names: an attribute of the area added
    # after protection, never seen by the suppressor.
    built = build_publish_marts(protected, catalogue, rules, scope, settings.config_dir, str(period))
    marts = {name: with_area_codes(frame, areas) for name, frame in sorted({**protected, **built}.items())}
    log = pd.read_parquet(staged / "suppression_log.parquet")

    def exports(folder: Path) -> None:  # staged and swapped with the release (publish_release)
        write_export_files(
            folder,
            period=period,
            marts=marts,
            titles={name: definitions[name].title for name in marts if name in definitions},
            caveats={name: definitions[name].caveats for name in marts if name in definitions},
            areas=[a.name for a in areas.areas if a.name not in left_out],
            manifest=manifest,
            marker=rules.disclosure.suppressed_marker,
            sheets={
                name: str(definitions[name].sheet) for name in marts if name in definitions and definitions[name].sheet
            },
            publication=catalogue.publication.model_dump() if catalogue.publication else None,
            percent_of={
                name: str(definitions[name].percent_of)
                for name in marts
                if name in definitions and definitions[name].percent_of
            },
        )

    result = publish_release(
        settings, period=period, run_id=run_id, marts=marts, suppression_log=log, manifest=manifest, exports=exports
    )
    report = write_ig_report(settings, period=period, run_id=run_id, staged_dir=staged)
    return PublishedRelease(
        period=period,
        run_id=run_id,
        marts=dict(result.marts),
        manifest=result.manifest_path,
        suppression_log=result.suppression_log_path,
        ig_report=Path(report),
        exports=result.exports_path or settings.public_dir / "exports" / f"period={period}",
    )
