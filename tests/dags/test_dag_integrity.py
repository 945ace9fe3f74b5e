"""DAG integrity: it parses without errors, reads like the pipeline, and imports nothing heavy at parse time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pendulum
import pytest

STAGES = ["plan_areas", "land_area", "validate_area", "protect", "publish", "all_areas_included"]


def test_the_dag_folder_parses_without_import_errors(dags_folder: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"monthly_treatment_pipeline", "treatment_extract_arrival"}


def test_the_dag_runs_the_stages_in_order_mapped_per_area(pipeline_dag) -> None:
    assert [t.task_id for t in pipeline_dag.topological_sort()] == STAGES
    assert pipeline_dag.get_task("plan_areas").upstream_task_ids == set()
    assert pipeline_dag.get_task("land_area").upstream_task_ids == {"plan_areas"}
    assert pipeline_dag.get_task("validate_area").upstream_task_ids == {"land_area"}
    assert pipeline_dag.get_task("protect").upstream_task_ids == {"validate_area"}
    assert pipeline_dag.get_task("publish").upstream_task_ids == {"protect"}  # no IG gate unless configured
    assert pipeline_dag.get_task("all_areas_included").upstream_task_ids == {"publish"}
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    for task_id in ("land_area", "validate_area"):
        assert isinstance(pipeline_dag.get_task(task_id), MappedOperator), f"{task_id} is mapped per area"
    # protect runs over the areas that passed, once every mapped task is done
    assert pipeline_dag.get_task("protect").trigger_rule == "all_done_min_one_success"


def test_monthly_schedule_over_the_month_processed(pipeline_dag) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable

    assert isinstance(pipeline_dag.timetable, CronDataIntervalTimetable)
    assert pipeline_dag.catchup is False and pipeline_dag.max_active_runs == 1
    assert pipeline_dag.start_date == pendulum.datetime(2022, 1, 1, tz="UTC")  # room for a two-year backfill
    assert "treatment-marts" in pipeline_dag.tags and pipeline_dag.doc_md
    # The run whose data interval is March (scheduled when March closes) has logical date 2024-03-01.
    interval = pipeline_dag.timetable.infer_manual_data_interval(run_after=pendulum.datetime(2024, 4, 1, tz="UTC"))
    assert (interval.start, interval.end) == (
        pendulum.datetime(2024, 3, 1, tz="UTC"),
        pendulum.datetime(2024, 4, 1, tz="UTC"),
    )


def test_params_have_a_schema(pipeline_dag) -> None:
    params = pipeline_dag.params
    assert {"period", "extract", "data_root", "warehouse_url"} <= set(params.keys())
    for name in ("period", "extract", "data_root", "warehouse_url"):
        assert params[name] is None  # all optional: the defaults come from the schedule and Settings.from_env()
    period = params.get_param("period")
    period.resolve("2024-03")
    from airflow.sdk.exceptions import ParamValidationError

    for bad in ("2024-3", "2024-13", "March", "2024-03-01"):
        with pytest.raises(ParamValidationError):
            period.resolve(bad)


def test_io_tasks_retry_with_backoff_and_publish_announces_the_marts(pipeline_dag) -> None:
    publish = pipeline_dag.get_task("publish")
    assert [a.name for a in publish.outlets] == ["treatment_marts_public_marts"]
    for task_id in ("land_area", "publish"):
        t = pipeline_dag.get_task(task_id)
        assert t.retries >= 1 and t.retry_exponential_backoff, f"{task_id} does I/O: it retries with backoff"
        assert t.max_retry_delay is not None
    for task_id in ("plan_areas", "validate_area", "protect", "all_areas_included"):
        assert pipeline_dag.get_task(task_id).retries == 0, f"{task_id} must not retry: its failures are about the data"


def test_warehouse_writers_share_the_warehouse_pool(pipeline_dag) -> None:
    for task_id in ("validate_area", "publish"):
        assert pipeline_dag.get_task(task_id).pool == "warehouse"
    for task_id in ("plan_areas", "land_area", "protect"):
        assert pipeline_dag.get_task(task_id).pool == "default_pool"


@pytest.mark.parametrize("dag_file", ["monthly_treatment_pipeline.py", "treatment_extract_arrival.py"])
def test_parsing_the_dag_file_imports_no_pandas_or_gx(
    dags_folder: Path, airflow_env: dict[str, str], dag_file: str
) -> None:
    """Parse-time cost: the dag processor re-parses the file often; pandas/GX must load only inside tasks."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('pandas', 'great_expectations', 'treatment_marts.pipeline.protect', 'scipy') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(dags_folder / dag_file)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**airflow_env, "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
