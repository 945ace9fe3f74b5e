"""The trend mart: each closed financial year as its March release published it, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from treatment_marts.core.ids import Period
from treatment_marts.core.settings import Settings
from treatment_marts.marts import load_marts
from treatment_marts.pipeline.windows import build_trend

SOURCE = "in_treatment_substance_area_sex_fy"


def year(period: str, counts: list[int | None]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "period": period,
            "area": ["Exborough", "Exborough", "Total"],
            "substance_group": ["Alcohol only", "Total", "Total"],
            "sex": ["Total", "Total", "Total"],
            "count": pd.array(counts, dtype="Int64"),
        }
    )
    frame["status"] = pd.array(["c" if c is None else None for c in counts], dtype="string")
    return frame


def publish(settings: Settings, period: str, frame: pd.DataFrame) -> None:
    folder = settings.public_dir / "marts" / SOURCE / f"period={period}"
    folder.mkdir(parents=True)
    frame.assign(area_code=None).to_parquet(folder / "data.parquet", index=False)
    release = settings.public_dir / "releases" / f"period={period}"
    release.mkdir(parents=True)
    (release / "manifest.json").write_text(json.dumps({"marts": [SOURCE]}))


def test_each_closed_year_is_shown_as_published_and_only_at_the_march_period(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    definition = next(m for m in load_marts(settings.config_dir).trends() if m.derived_from == SOURCE)
    publish(settings, "2023-03", year("2023-03", [40, 90, 300]))
    publish(settings, "2024-03", year("2024-03", [None, 95, 310]))  # a suppressed cell stays suppressed
    trend = build_trend(settings, Period.parse("2025-03"), definition, year("2025-03", [44, 99, 320]))
    assert trend is not None
    assert list(trend.columns[:2]) == ["period", "financial_year"] and "area_code" not in trend.columns
    assert set(trend["period"]) == {"2025-03"}
    by_year = trend.set_index(["financial_year", "area", "substance_group"])
    assert by_year.loc[("2022/23", "Total", "Total"), "count"] == 300
    assert pd.isna(by_year.loc[("2023/24", "Exborough", "Alcohol only"), "count"])
    assert by_year.loc[("2023/24", "Exborough", "Alcohol only"), "status"] == "c"
    assert by_year.loc[("2024/25", "Exborough", "Total"), "count"] == 99
    assert build_trend(settings, Period.parse("2025-02"), definition, year("2025-02", [1, 2, 3])) is None
