"""Helpers for tests that run real Airflow components in an Airflow of their own (a uniquely named module:
a `conftest` import would clash with tests/conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "include" / "config"


def config_expecting(areas: Sequence[str], folder: Path) -> Path:
    """A copy of the shipped configuration at ``folder`` whose deployment expects only ``areas``
    (operations.yaml), so a month holding just those is complete rather than partial (ends failed)."""
    shutil.copytree(SHIPPED_CONFIG, folder)
    operations = folder / "operations.yaml"
    text = operations.read_text()
    expected = re.search(r"expected_areas: \[.*\]", text)
    assert expected, "operations.yaml lists arrival.expected_areas on one line"
    operations.write_text(text.replace(expected.group(0), f"expected_areas: [{', '.join(areas)}]"))
    return folder


def deployment_env(home: Path, data_root: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow of its own (for real components: scheduler, API server, workers), set up
    like a deployment: SQLite metadata under `home`, the run's data_root param must lie under an allowed
    root, no default data root or warehouse, the IG gate off."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "TREATMENT_MARTS_ALLOWED_ROOTS": str(data_root),
        "TREATMENT_MARTS_IG_APPROVAL": "false",
        **extra,
    }
    env.pop("TREATMENT_MARTS_DATA_ROOT", None)
    env.pop("TREATMENT_MARTS_WAREHOUSE_URL", None)
    return env


def airflow_in(env: dict[str, str], *args: str) -> str:
    """Run the real `airflow` command in `env`; fail the test with the end of its output if it fails."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"airflow {' '.join(args)}:\n{(result.stdout + result.stderr)[-3000:]}"
    return result.stdout
