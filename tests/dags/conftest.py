"""DAG-test fixtures; the environment itself is set by airflow_env on import (before Airflow is imported)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_env import AIRFLOW_HOME, airflow_cli


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    result = airflow_cli("db", "migrate")
    assert result.returncode == 0, result.stderr[-2000:]
    return AIRFLOW_HOME
