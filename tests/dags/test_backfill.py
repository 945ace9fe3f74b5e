"""`airflow backfill create` with the real CLI, and the backfill EXECUTED by a real Airflow scheduler.

* Two years of monthly runs are planned, one per period (`--dry-run`).
* Two months of generated history are backfilled and executed the way `make backfill` does it
  (treatment_marts.ops.airflow_local): `airflow api-server` + `airflow scheduler` with the LocalExecutor, as
  separate processes over their own AIRFLOW_HOME and SQLite metadata database -- not `dag.test()`. Each run
  publishes its month's marts; the runs are backfill runs, one per month, one at a time, in order; the
  scheduler marks the backfill completed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from airflow_helpers import airflow_in, deployment_env

from treatment_marts.cli import main as treatment_marts_cli
from treatment_marts.core.ids import RunId
from treatment_marts.core.settings import REPO_DIR, Settings
from treatment_marts.ops.airflow_local import latest_backfill_id, run_backfill
from treatment_marts.publish.readers import published_release, read_mart

DAG_ID = "monthly_treatment_pipeline"
MONTHS = ["2024-01", "2024-02"]
# Small but publishable (test_dag_run.py: with a few hundred clients secondary suppression refuses), and
# three areas rather than eight: protecting eight areas takes ~4x as long.
GENERATE = ["--clients", "3000", "--areas", "Exborough,Northton,Southmoor"]
TIMEOUT_S = 420  # ~2 min expected: two runs of ~35 s, plus the scheduler's 30 s backfill-completion check


def test_two_years_backfill_plans_one_run_per_month(airflow_db: Path, airflow) -> None:
    result = airflow("dags", "reserialize")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    dry = airflow(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", "2022-01-01", "--to-date", "2023-12-01", "--dry-run"
    )
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    months = sorted(set(re.findall(r"(20\d\d-\d\d)-01[T ]00:00:00", dry.stdout)))
    assert len(months) == 24 and months[0] == "2022-01" and months[-1] == "2023-12", dry.stdout[-3000:]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory):
    """Generate, create the backfill, execute it with a real scheduler; -> (state, data root, metadata URL, seconds)."""
    home = tmp_path_factory.mktemp("backfill-airflow")
    data_root = tmp_path_factory.mktemp("backfill-data")
    # the shipped configuration, expecting only the three generated areas (a month missing one ends failed)
    config = tmp_path_factory.mktemp("backfill-config") / "config"
    shutil.copytree(REPO_DIR / "include" / "config", config)
    operations = config / "operations.yaml"
    expected = re.search(r"expected_areas: \[.*\]", operations.read_text())
    assert expected, "operations.yaml lists arrival.expected_areas on one line"
    operations.write_text(
        operations.read_text().replace(expected.group(0), "expected_areas: [Exborough, Northton, Southmoor]")
    )
    env = deployment_env(home, data_root, TREATMENT_MARTS_CONFIG_DIR=str(config))
    metadata_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]

    def airflow(*args: str) -> None:
        airflow_in(env, *args)

    began = time.monotonic()
    assert (
        treatment_marts_cli(
            [
                "generate",
                "--period",
                MONTHS[0],
                "--months",
                str(len(MONTHS)),
                *GENERATE,
                "--out",
                str(data_root / "inbox"),
            ]
        )
        == 0
    )
    airflow("db", "migrate")
    airflow("pools", "set", "warehouse", "4", "treatment-marts warehouse connections")
    airflow("dags", "reserialize")
    airflow(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        f"{MONTHS[0]}-01",
        "--to-date",
        f"{MONTHS[-1]}-01",
        "--max-active-runs",
        "1",
        "--dag-run-conf",
        json.dumps({"data_root": str(data_root)}),
    )
    backfill_id = latest_backfill_id(metadata_url, DAG_ID)
    assert backfill_id is not None
    state = run_backfill(
        DAG_ID,
        env=env,
        log_dir=home / "components",
        timeout=TIMEOUT_S,
        fast=True,
        backfill_id=backfill_id,
        report=lambda line: None,
    )
    return state, data_root, metadata_url, time.monotonic() - began


def test_the_scheduler_executes_every_backfill_run_and_completes_the_backfill(executed) -> None:
    state, _, _, seconds = executed
    print(f"backfill of {len(MONTHS)} months executed in {seconds:.0f} s")
    assert state.completed, "the scheduler marks the backfill completed"
    assert [f"{r.logical_date:%Y-%m}" for r in state.runs] == MONTHS
    assert {r.run_type for r in state.runs} == {"backfill"}
    assert [r.state for r in state.runs] == ["success"] * len(MONTHS), state.summary()
    assert all(r.conf == {"data_root": str(executed[1])} for r in state.runs)


def test_runs_execute_one_at_a_time_in_month_order(executed) -> None:
    state, *_ = executed
    assert state.max_active_runs == 1
    for earlier, later in zip(state.runs, state.runs[1:], strict=False):
        assert earlier.end_date <= later.start_date, f"{earlier.run_id} overlapped {later.run_id}"


def test_task_instances_were_queued_by_the_scheduler_and_run_as_processes(executed) -> None:
    """Not dag.test(): every task instance was queued by a SchedulerJob and ran in its own process."""
    state, _, metadata_url, _ = executed
    ti = sa.table(
        "task_instance",
        sa.column("run_id"),
        sa.column("task_id"),
        sa.column("state"),
        sa.column("queued_by_job_id"),
        sa.column("pid"),
    )
    job = sa.table("job", sa.column("id"), sa.column("job_type"))
    engine = sa.create_engine(metadata_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(ti.c.run_id, ti.c.task_id, ti.c.state, ti.c.pid, job.c.job_type)
                .select_from(ti.outerjoin(job, ti.c.queued_by_job_id == job.c.id))
                .where(ti.c.run_id.in_([r.run_id for r in state.runs]))
            ).all()
    finally:
        engine.dispose()
    assert {row.task_id for row in rows} >= {
        "plan_areas",
        "land_area",
        "validate_area",
        "protect",
        "publish",
        "all_areas_included",
    }
    assert {row.state for row in rows} == {"success"}
    assert {row.job_type for row in rows} == {"SchedulerJob"}
    assert all(row.pid for row in rows) and os.getpid() not in {row.pid for row in rows}


def test_each_backfill_run_published_its_month(executed) -> None:
    state, data_root, _, _ = executed
    settings = Settings.from_env(data_root=str(data_root))
    for month, run in zip(MONTHS, state.runs, strict=True):
        release = published_release(settings, month)
        assert release is not None, f"{month}: no release in the warehouse"
        assert release["run_id"] == RunId.sanitise(run.run_id), "published by the backfill run of that month"
        marts = release["manifest"]["marts"]
        assert "in_treatment_substance_area_sex" in marts
        for mart in marts:
            frame = read_mart(settings, mart, month)
            assert set(frame["period"]) == {month}, mart
            assert not frame["count"].dropna().between(1, 3).any(), f"{mart} {month}: a count of 1-3 was published"
    substance = read_mart(settings, "in_treatment_substance_area_sex")
    assert sorted(set(substance["period"])) == MONTHS
    assert {"Exborough", "Northton", "Southmoor"} <= set(substance["area"])
