"""Two runs of the same period never interleave: the second is refused at once, with a clear error, before
it lands anything; another period is not held up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.pipeline.record import PeriodBusy, period_lock
from treatment_marts.pipeline.run import run_period

HOLD = """
import sys, time
from treatment_marts.core.settings import Settings
from treatment_marts.pipeline.record import period_lock
with period_lock(Settings.from_env(data_root=sys.argv[1]), "2024-03"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def other_run(tmp_path: Path):
    root = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield Settings.from_env(data_root=root)
    finally:
        child.kill()
        child.wait()


def test_a_second_run_of_the_same_period_is_refused_before_landing(other_run: Settings, tmp_path: Path) -> None:
    extract = tmp_path / "extract.csv"
    extract.write_text("not read: the run stops first\n")
    with pytest.raises(PeriodBusy, match="another run of 2024-03 is in progress"):
        run_period(other_run, "2024-03", extract, run_id="second")
    assert not other_run.raw_dir.exists()


def test_another_period_is_not_held_up_and_the_lock_is_reentrant(other_run: Settings) -> None:
    with period_lock(other_run, "2024-04"), period_lock(other_run, "2024-04"):
        pass
