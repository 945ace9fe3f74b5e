"""`airflow backfill create` with the real CLI: two years of monthly runs are planned, one per period, and a
short backfill creates its runs (logical date = the month processed) for the scheduler to execute.

The runs themselves are executed by the scheduler; what each one does is the DAG run of test_dag_run.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DAG_ID = "monthly_treatment_pipeline"


def test_two_years_backfill_plans_one_run_per_month_and_a_short_one_is_created(airflow_db: Path, airflow, tmp_path: Path) -> None:
    airflow_cli = airflow
    result = airflow_cli("dags", "reserialize")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    dry = airflow_cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", "2022-01-01", "--to-date", "2023-12-01",
                      "--dry-run")
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    months = sorted(set(re.findall(r"(20\d\d-\d\d)-01[T ]00:00:00", dry.stdout)))
    assert len(months) == 24 and months[0] == "2022-01" and months[-1] == "2023-12", dry.stdout[-3000:]

    # 2023 months: other tests of the session run 2024-03 with dag.test, and a backfill skips existing runs
    conf = json.dumps({"data_root": str(tmp_path)})
    created = airflow_cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", "2023-10-01", "--to-date", "2023-12-01",
                          "--max-active-runs", "1", "--dag-run-conf", conf)
    assert created.returncode == 0, (created.stdout + created.stderr)[-3000:]

    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        backfill = session.scalars(select(Backfill).where(Backfill.dag_id == DAG_ID)).one()
        assert backfill.max_active_runs == 1 and backfill.dag_run_conf == {"data_root": str(tmp_path)}
        runs = session.scalars(select(DagRun).where(DagRun.backfill_id == backfill.id).order_by(DagRun.logical_date)).all()
        assert [r.logical_date.strftime("%Y-%m") for r in runs] == ["2023-10", "2023-11", "2023-12"]
        assert {str(r.run_type) for r in runs} == {"backfill"} and all(r.conf["data_root"] == str(tmp_path) for r in runs)
