"""DAG integrity: it parses without errors, reads like the pipeline, and imports nothing heavy at parse time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pendulum
import pytest

STAGES = ["land", "validate", "protect", "publish"]


def test_the_dag_folder_parses_without_import_errors(dags_folder: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"monthly_treatment_pipeline"}


def test_the_dag_runs_the_four_stages_in_order(pipeline_dag) -> None:
    assert [t.task_id for t in pipeline_dag.topological_sort()] == STAGES
    for upstream, downstream in zip(STAGES, STAGES[1:]):
        assert pipeline_dag.get_task(downstream).upstream_task_ids == {upstream}
    assert pipeline_dag.get_task("land").upstream_task_ids == set()


def test_monthly_schedule_over_the_month_processed(pipeline_dag) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable

    assert isinstance(pipeline_dag.timetable, CronDataIntervalTimetable)
    assert pipeline_dag.catchup is False and pipeline_dag.max_active_runs == 1
    assert pipeline_dag.start_date == pendulum.datetime(2024, 1, 1, tz="UTC")
    assert "treatment-marts" in pipeline_dag.tags and pipeline_dag.doc_md
    # The run whose data interval is March (scheduled when March closes) has logical date 2024-03-01.
    interval = pipeline_dag.timetable.infer_manual_data_interval(run_after=pendulum.datetime(2024, 4, 1, tz="UTC"))
    assert (interval.start, interval.end) == (pendulum.datetime(2024, 3, 1, tz="UTC"), pendulum.datetime(2024, 4, 1, tz="UTC"))


def test_params_have_a_schema(pipeline_dag) -> None:
    params = pipeline_dag.params
    assert {"period", "extract", "data_root", "warehouse_url"} <= set(params.keys())
    for name in ("period", "extract", "data_root", "warehouse_url"):
        assert params[name] is None  # all optional: the defaults come from the schedule and Settings.from_env()
    period = params.get_param("period")
    period.resolve("2024-03")
    for bad in ("2024-3", "2024-13", "March", "2024-03-01"):
        with pytest.raises(Exception):  # ParamValidationError
            period.resolve(bad)


def test_only_publish_retries_and_it_announces_the_marts(pipeline_dag) -> None:
    publish = pipeline_dag.get_task("publish")
    assert [a.name for a in publish.outlets] == ["treatment_marts_public_marts"]
    assert publish.retries >= 1 and publish.retry_exponential_backoff
    for task_id in ("land", "validate", "protect"):
        assert pipeline_dag.get_task(task_id).retries == 0, f"{task_id} must not retry: its failures are about the data"


def test_parsing_the_dag_file_imports_no_pandas_or_gx(dags_folder: Path, airflow_env: dict[str, str]) -> None:
    """Parse-time cost: the dag processor re-parses the file often; pandas/GX must load only inside tasks."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('pandas', 'great_expectations', 'treatment_marts.stages', 'scipy') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(dags_folder / "monthly_treatment_pipeline.py")],
                            capture_output=True, text=True, env={**airflow_env, "PATH": "/usr/bin:/bin"}, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
