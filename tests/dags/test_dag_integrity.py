"""DAG integrity: it parses without errors, reads like the pipeline, and imports nothing heavy at parse time."""

from __future__ import annotations

import subprocess
import sys

from airflow_env import AIRFLOW_ENV, REPO


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["monthly_treatment_pipeline"]


def test_dag_has_the_pipeline_tasks_in_order() -> None:
    dag = load_dag()
    assert [t.task_id for t in dag.topological_sort()] == ["land", "validate", "protect", "publish"]
    for upstream, downstream in (("land", "validate"), ("validate", "protect"), ("protect", "publish")):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}


def test_schedule_params_and_outlet() -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable

    dag = load_dag()
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert {"period", "extract", "data_root", "warehouse_url"} <= set(dag.params.keys())
    publish = dag.get_task("publish")
    assert [a.name for a in publish.outlets] == ["treatment_marts_public_marts"] and publish.retries == 2


def test_parsing_the_dag_file_imports_no_pandas_or_gx() -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('great_expectations', 'treatment_marts.stages', 'scipy') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / "monthly_treatment_pipeline.py")],
                            capture_output=True, text=True, env={**AIRFLOW_ENV, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-1000:]
