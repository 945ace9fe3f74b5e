"""An isolated Airflow for the DAG tests: AIRFLOW_HOME with a SQLite metadata DB, set before Airflow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="tm-airflow-"))
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "GX_ANALYTICS_ENABLED": "False",
}
os.environ.update(AIRFLOW_ENV)


def airflow_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the real `airflow` command of this virtual environment."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run([airflow, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **AIRFLOW_ENV, **(env or {})})


