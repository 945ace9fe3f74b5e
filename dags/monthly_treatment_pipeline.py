"""
### Monthly treatment pipeline

`land → validate → protect → publish`, one run per month of adult drug and alcohol treatment extracts.

* **Period.** The run whose data interval is March (scheduled when March closes) has logical date
  2024-03-01 and processes period `2024-03`. A manual run (`airflow dags test monthly_treatment_pipeline
  2024-03-01`, a backfill) processes the month of its logical date; the `period` param overrides both.
* **Extract.** Param `extract` (a file, or a folder whose CSV/XLSX/Parquet files are all landed); default
  `<data root>/inbox/period=YYYY-MM/`.
* **Where.** Params `data_root` / `warehouse_url` override `TREATMENT_MARTS_DATA_ROOT` /
  `TREATMENT_MARTS_WAREHOUSE_URL` (defaults: `./data`, SQLite under the data root).
* **Failures.** Each task calls one stage of `treatment_marts.stages`; a stage's exception fails its task with
  an actionable message that never contains an identifying value, and nothing downstream runs, so nothing
  is published. Only `publish` (file and warehouse I/O) retries, with exponential backoff.
* **Downstream.** `publish` updates the asset `treatment_marts_public_marts` (event extra: period, run id,
  marts) so consumers can schedule on it.

Tasks pass only periods, run ids and paths through XCom. pandas and Great Expectations load inside the
tasks, never when this file is parsed.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

log = logging.getLogger(__name__)

PUBLIC_MARTS = Asset(name="treatment_marts_public_marts", uri="treatment-marts://public/marts", group="treatment-marts")
ALERT_WEBHOOK_CONN = "treatment_marts_webhook"  # optional Airflow connection: host (or extra "url") = webhook URL
ALERT_SMTP_CONN = "treatment_marts_smtp"  # optional: host, port; extra {"sender": ..., "recipients": [...]}


# --- helpers (run inside tasks only) -------------------------------------------------------------------


def _settings(params: dict[str, Any]):
    from treatment_marts.settings import Settings

    return Settings.from_env(data_root=params.get("data_root") or None, warehouse_url=params.get("warehouse_url") or None)


def _period(context) -> str:
    """`period` param, else the month of the logical date (= data interval start for scheduled runs)."""
    if context["params"].get("period"):
        return context["params"]["period"]
    # Scheduled and backfill runs: logical date == start of the data interval == the month processed.
    # Manual runs with a logical date: that month. Runs triggered without a logical date: the data interval.
    when = context.get("logical_date") or context["data_interval_start"]
    return when.strftime("%Y-%m")


def _run_id(context) -> str:
    from treatment_marts.stages import safe_run_id  # [A-Za-z0-9_.-] only: it becomes a folder name

    return safe_run_id(context["run_id"])


def _connection(conn_id: str):
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id)
    except Exception:  # not configured: log-only notifications
        return None


def _notify(context, state: str, facts: dict[str, Any] | None = None) -> None:
    """PII-free run summary to the log, and to a webhook / SMTP when their connections exist."""
    from treatment_marts.notify import RunSummary, notify

    try:
        period = _period(context)
    except Exception:
        period = "unknown"
    exception = context.get("exception")
    summary = RunSummary(
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
        period=period,
        state=state,
        task_id=context["task_instance"].task_id if state == "failed" else None,
        reason=f"{type(exception).__name__}: {exception}" if exception else None,
        facts=facts or {},
    )
    webhook = _connection(ALERT_WEBHOOK_CONN)
    smtp = _connection(ALERT_SMTP_CONN)
    notify(
        summary,
        webhook_url=(webhook.extra_dejson.get("url") or webhook.host) if webhook else None,
        smtp={"host": smtp.host, "port": smtp.port or 25, **smtp.extra_dejson} if smtp else None,
    )


def _on_failure(context) -> None:
    _notify(context, "failed")


def _on_published(context) -> None:
    published = context["task_instance"].xcom_pull(task_ids="publish") or {}
    _notify(context, "success", {"marts published": len(published.get("marts", []))})


# --- the DAG ---------------------------------------------------------------------------------------------


@dag(
    dag_id="monthly_treatment_pipeline",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["treatment-marts", "ndtms", "disclosure-control"],
    doc_md=__doc__,
    default_args={
        "owner": "treatment-marts",
        "retries": 0,  # data problems do not heal by retrying; publish overrides this
        "on_failure_callback": _on_failure,
    },
    params={
        "period": Param(
            None, type=["null", "string"], pattern=r"^\d{4}-(0[1-9]|1[0-2])$", title="Period (YYYY-MM)",
            description="Month to process; default: the month of the run's logical date / data interval.",
        ),
        "extract": Param(
            None, type=["null", "string"], minLength=1, title="Extract file or folder",
            description="CSV/XLSX/Parquet file, or a folder of them; default <data root>/inbox/period=YYYY-MM/.",
        ),
        "data_root": Param(
            None, type=["null", "string"], minLength=1, title="Data root",
            description="Default: $TREATMENT_MARTS_DATA_ROOT, else ./data.",
        ),
        "warehouse_url": Param(
            None, type=["null", "string"], minLength=1, title="Warehouse SQLAlchemy URL",
            description="Default: $TREATMENT_MARTS_WAREHOUSE_URL, else sqlite:///<data root>/warehouse.db.",
        ),
    },
)
def monthly_treatment_pipeline():
    @task
    def land() -> dict:
        """Immutable raw copy + checksum of each extract file, then the typed (restricted) Parquet."""
        from treatment_marts import stages

        context = get_current_context()
        params = context["params"]
        settings = _settings(params)
        period, run_id = _period(context), _run_id(context)
        location = params.get("extract") or str(settings.data_root / "inbox" / f"period={period}")
        result = stages.land(settings, period, location, run_id)
        return {"period": period, "run_id": run_id, "landed_paths": [item["landed_path"] for item in result["landed"]]}

    @task
    def validate(landed: dict) -> dict:
        """Great Expectations suite from expectations/; raises ValidationFailed (nothing is published)."""
        from treatment_marts import stages

        settings = _settings(get_current_context()["params"])
        result = stages.validate(settings, landed["period"], landed["run_id"], landed["landed_paths"])
        return {**landed, "data_docs": result["data_docs"]}

    @task
    def protect(validated: dict) -> dict:
        """Recode, build the marts, suppress (K3 primary + secondary), audit; stage the release."""
        from treatment_marts import stages

        settings = _settings(get_current_context()["params"])
        result = stages.protect(settings, validated["period"], validated["run_id"], validated["landed_paths"])
        return {
            "period": validated["period"],
            "run_id": validated["run_id"],
            "staged_dir": result["staged_dir"],
            "suppressed_cells": result["suppressed_cells"],
        }

    @task(
        outlets=[PUBLIC_MARTS],
        retries=3,
        retry_delay=pendulum.duration(seconds=30),
        retry_exponential_backoff=2.0,
        max_retry_delay=pendulum.duration(minutes=10),
        on_success_callback=_on_published,
    )
    def publish(protected: dict) -> dict:
        """Public Parquet marts + warehouse tables (atomic, idempotent per period) and the restricted log."""
        from treatment_marts import stages

        context = get_current_context()
        settings = _settings(context["params"])
        result = stages.publish(settings, protected["period"], protected["run_id"], protected["staged_dir"])
        marts = sorted(result["marts"])
        context["outlet_events"][PUBLIC_MARTS].extra = {"period": result["period"], "run_id": result["run_id"], "marts": marts}
        return {
            "period": result["period"],
            "run_id": result["run_id"],
            "marts": marts,
            "suppression_log": result["suppression_log"],
            "ig_report": result["ig_report"],
        }

    publish(protect(validate(land())))


monthly_treatment_pipeline()
