"""DAG tests run against a real, isolated Airflow: its own AIRFLOW_HOME in a temporary folder, SQLite
metadata, the repository's dags/ folder, no example DAGs.

The environment is set when this conftest is imported, i.e. before any test imports Airflow (Airflow reads
its configuration once, on first import). `airflow db migrate` runs once per test session, in a
subprocess, the first time a test asks for the `airflow_db` fixture.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
_HOME = Path(tempfile.mkdtemp(prefix="tm-airflow-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "GX_ANALYTICS_ENABLED": "False",
}
if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != AIRFLOW_ENV["AIRFLOW_HOME"]:
    raise RuntimeError("Airflow was imported before tests/dags/conftest.py set up its isolated AIRFLOW_HOME")
os.environ.update(AIRFLOW_ENV)


def airflow_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run this virtual environment's real `airflow` command against the isolated AIRFLOW_HOME."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run(
        [airflow, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **AIRFLOW_ENV}
    )


@pytest.fixture
def alert_log(capfd, caplog):
    """Everything the notifier's log channel said during the test: depending on where in the task runner it
    was called (task body, callback), the line goes to stdlib logging (caplog) or to the task log (stdout)."""
    caplog.set_level("INFO", logger="treatment_marts.ops.notify")

    def text() -> str:
        captured = capfd.readouterr()
        return caplog.text + captured.out + captured.err

    return text


@pytest.fixture(scope="session")
def airflow():
    """The real `airflow` CLI against the isolated AIRFLOW_HOME: airflow("dags", "list") -> CompletedProcess."""
    return airflow_cli


@pytest.fixture(scope="session")
def airflow_env() -> dict[str, str]:
    return dict(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return DAGS_FOLDER


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata database (once per session; ~4 s on SQLite)."""
    result = airflow_cli("db", "migrate")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    # The pool the DAG's warehouse writers run in (as `make demo` and the compose init job create it).
    result = airflow_cli("pools", "set", "warehouse", "4", "treatment-marts warehouse connections")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return _HOME


@pytest.fixture(scope="session")
def pipeline_dag(dags_folder: Path):
    """The real DAG object, parsed from dags/ the way the dag processor does (DagBag)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["monthly_treatment_pipeline"]
