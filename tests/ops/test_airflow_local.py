"""treatment_marts.ops.airflow_local without Airflow processes: the environment the components share, and the
command line's refusals. The components themselves are exercised by tests/dags/test_backfill.py."""

from __future__ import annotations

from datetime import datetime

import pytest

from treatment_marts.ops.airflow_local import BackfillState, RunState, executor_env, main


def test_executor_env_points_tasks_at_the_api_server_and_keeps_the_base() -> None:
    base = {
        "AIRFLOW_HOME": "/h",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////h/airflow.db",
        "AIRFLOW__API__PORT": "8080",
    }
    env = executor_env(base, api_port=18080, log_port=18793, jwt_secret="s")
    assert (
        env["AIRFLOW_HOME"] == "/h"
        and env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "s" and env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "18793"
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False", "unpausing must not start a scheduled run"
    assert "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC" not in env
    assert (
        executor_env(base, api_port=1, log_port=2, jwt_secret="s", fast=True)[
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC"
        ]
        == "1"
    )
    assert base["AIRFLOW__API__PORT"] == "8080", "the caller's mapping is not changed"


def test_backfill_summary_names_months_and_states_only() -> None:
    runs = tuple(
        RunState(f"backfill__{m}", datetime(2024, m, 1), "backfill", s, None, None, {"data_root": "/secret"})
        for m, s in [(1, "success"), (2, "running"), (3, "queued")]
    )
    state = BackfillState(7, False, 1, runs)
    assert state.summary() == "2024-01=success, 2024-02=running, 2024-03=queued"
    assert [r.run_id for r in state.unfinished] == ["backfill__2", "backfill__3"]


def test_main_needs_the_metadata_database(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in capsys.readouterr().err
