"""A revision carries the earlier release's suppressions forward from the public release itself.

Regressions from the hostile-input round: with the restricted suppression-log link missing, a revision
published without carrying anything forward and an attack on both releases recovered a hidden cell (8);
a truncated log blocked every revision with an ArrowInvalid traceback.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.protect import EarlierReleaseUnreadable
from treatment_marts.pipeline.run import run_period

PERIOD = "2024-03"


def _hidden(settings: Settings) -> dict[str, set[tuple]]:
    """Per public mart of the period, the rows it withholds (their dimension labels)."""
    out = {}
    for path in sorted((settings.public_dir / "marts").glob(f"*/period={PERIOD}/data.parquet")):
        frame = pd.read_parquet(path)
        dims = [c for c in frame.columns if c not in ("period", "count", "status", "percent")]
        out[path.parts[-3]] = set(frame.loc[frame["status"].eq("c").fillna(False), dims].itertuples(index=False))
    return out


@pytest.fixture(scope="module")
def first_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("revisions")
    frame = generate_extract(PERIOD, clients=2000, seed=3)
    settings = Settings.from_env(data_root=base / "data")
    run_period(settings, PERIOD, write_extract(frame, base / "v1.csv"), run_id="release_v1")
    return base / "data", frame


def _copy(data: Path, tmp_path: Path) -> Settings:
    target = tmp_path / "data"
    shutil.copytree(data, target, symlinks=True)
    return Settings.from_env(data_root=target)


def test_a_revision_carries_forward_even_when_the_restricted_log_link_is_gone(first_release, tmp_path: Path) -> None:
    data, frame = first_release
    settings = _copy(data, tmp_path)
    before = _hidden(settings)
    (settings.restricted_dir / "suppression_log" / f"period={PERIOD}").unlink()  # the link, not the versions
    corrected = frame.drop(frame.index[::40])  # every 40th row: a correction that keeps every area
    run_period(settings, PERIOD, write_extract(corrected, tmp_path / "v2.csv"), run_id="release_v2")
    after = _hidden(settings)
    for mart, rows in before.items():
        if mart.startswith("unmet_need"):
            continue  # derived: withheld with its source mart
        assert rows <= after[mart], f"{mart}: {len(rows - after[mart])} cell(s) hidden before are published now"


def test_a_revision_whose_earlier_mart_cannot_be_read_is_refused_and_changes_nothing(
    first_release, tmp_path: Path
) -> None:
    data, frame = first_release
    settings = _copy(data, tmp_path)
    mart = settings.public_dir / "marts" / "in_treatment_ethnicity_area_substance" / f"period={PERIOD}"
    parquet = mart / "data.parquet"
    target = parquet.resolve()
    target.write_bytes(target.read_bytes()[:100])  # truncated on disk
    public_before = {p: p.read_bytes() for p in settings.public_dir.rglob("*") if p.is_file()}
    with pytest.raises(EarlierReleaseUnreadable, match="in_treatment_ethnicity_area_substance") as err:
        run_period(settings, PERIOD, write_extract(frame, tmp_path / "v2.csv"), run_id="release_v2")
    assert "restore" in str(err.value) and "Traceback" not in str(err.value)
    assert {p: p.read_bytes() for p in settings.public_dir.rglob("*") if p.is_file()} == public_before
