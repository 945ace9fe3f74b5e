"""A process killed at each stage boundary leaves the previous release whole; a re-run gives the same bytes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from treatment_marts.core.faults import STAGE_FAULT_POINTS
from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period

PERIOD = "2024-03"
POINTS = STAGE_FAULT_POINTS


def _public_digest(settings: Settings) -> dict[str, str]:
    files = {
        str(p.relative_to(settings.data_root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(settings.public_dir.rglob("*"))
        if p.is_file()
    }
    warehouse = settings.data_root / "warehouse.db"
    if warehouse.exists():
        files["warehouse.db"] = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    return files


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path, dict[str, bytes]]:
    """One published release (in-process); the mart files' bytes by their public path."""
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    extract = write_extract(
        generate_extract(PERIOD, clients=600, areas=["Northton", "Exborough"], seed=11),
        tmp_path_factory.mktemp("inbox") / "extract.csv",
    )
    result = run_period(settings, PERIOD, extract, run_id="first")
    marts = {path: Path(path).read_bytes() for path in result.publish.marts.values()}
    return settings, extract, marts


def _run(settings: Settings, extract: Path, run_id: str, fault: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False"}
    env.pop("TREATMENT_MARTS_FAULT", None)
    if fault:
        env["TREATMENT_MARTS_FAULT"] = fault
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "treatment_marts.cli",
            "run",
            "--period",
            PERIOD,
            "--extract",
            str(extract),
            "--data-root",
            str(settings.data_root),
            "--run-id",
            run_id,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_at_a_stage_boundary_changes_no_public_output(released, point: str) -> None:
    settings, extract, _ = released
    before = _public_digest(settings)
    killed = _run(settings, extract, f"killed_{point.split(':')[1]}", point)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert _public_digest(settings) == before


def test_a_rerun_after_the_kills_publishes_byte_identical_marts(released) -> None:
    settings, extract, marts = released
    done = _run(settings, extract, "rerun", None)
    assert done.returncode == 0, done.stderr[-2000:]
    for path, data in marts.items():
        assert Path(path).read_bytes() == data, f"{path} differs after the re-run"
