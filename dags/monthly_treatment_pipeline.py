"""Monthly treatment pipeline: land -> validate -> protect -> publish, one run per month.

The run whose data interval is March processes period 2024-03 (CronDataIntervalTimetable: the logical
date is the start of the month; a manual run processes the month of its logical date, or `period`). Each task calls one stage of the `treatment_marts` package and passes
only paths and run ids on; pandas and Great Expectations are imported inside the tasks, never at parse
time. A stage's exception fails its task with an actionable, PII-free message; nothing downstream runs.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

PUBLIC_MARTS = Asset("treatment_marts_public_marts")


def _settings(params: dict):
    from treatment_marts.settings import Settings

    return Settings.from_env(data_root=params.get("data_root"), warehouse_url=params.get("warehouse_url"))


def _period_and_run() -> tuple[str, str]:
    from treatment_marts.stages import safe_run_id

    context = get_current_context()
    # Scheduled runs: logical date = start of the data interval = the month processed. Manual runs
    # (`airflow dags test ... 2024-03-01`) carry the logical date they were given.
    when = context.get("logical_date") or context["data_interval_start"]
    period = context["params"].get("period") or when.strftime("%Y-%m")
    return period, safe_run_id(context["run_id"])


@dag(
    dag_id="monthly_treatment_pipeline",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["treatment-marts", "ndtms", "disclosure-control"],
    doc_md=__doc__,
    params={
        "period": Param(None, type=["null", "string"], pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                        description="YYYY-MM; default: the month of the data interval"),
        "extract": Param(None, type=["null", "string"],
                         description="extract file or folder; default <data root>/inbox/period=YYYY-MM/"),
        "data_root": Param(None, type=["null", "string"], description="default $TREATMENT_MARTS_DATA_ROOT or ./data"),
        "warehouse_url": Param(None, type=["null", "string"], description="SQLAlchemy URL; default SQLite under the data root"),
    },
)
def monthly_treatment_pipeline():
    @task
    def land() -> dict:
        from treatment_marts import stages

        params = get_current_context()["params"]
        settings = _settings(params)
        period, run_id = _period_and_run()
        location = params.get("extract") or str(settings.data_root / "inbox" / f"period={period}")
        result = stages.land(settings, period, location, run_id)
        return {"period": period, "run_id": run_id, "landed_paths": [i["landed_path"] for i in result["landed"]]}

    @task
    def validate(landed: dict) -> dict:
        from treatment_marts import stages

        settings = _settings(get_current_context()["params"])
        result = stages.validate(settings, landed["period"], landed["run_id"], landed["landed_paths"])
        # Protection reads the accepted rows: the landed files, minus any quarantined rows.
        return {**landed, "landed_paths": result["accepted_paths"], "data_docs": result["data_docs"],
                "quarantined_rows": result["quarantined_rows"]}

    @task
    def protect(validated: dict) -> dict:
        from treatment_marts import stages

        settings = _settings(get_current_context()["params"])
        result = stages.protect(settings, validated["period"], validated["run_id"], validated["landed_paths"])
        return {"period": validated["period"], "run_id": validated["run_id"], "staged_dir": result["staged_dir"],
                "suppressed_cells": result["suppressed_cells"]}

    @task(outlets=[PUBLIC_MARTS], retries=2, retry_delay=pendulum.duration(minutes=2), retry_exponential_backoff=True)
    def publish(protected: dict) -> dict:
        from treatment_marts import stages

        settings = _settings(get_current_context()["params"])
        result = stages.publish(settings, protected["period"], protected["run_id"], protected["staged_dir"])
        return {"period": result["period"], "run_id": result["run_id"], "marts": sorted(result["marts"]),
                "ig_report": result["ig_report"]}

    publish(protect(validate(land())))


monthly_treatment_pipeline()
