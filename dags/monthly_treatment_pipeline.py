"""
### Monthly treatment pipeline

`plan_areas → land_area[area] → validate_area[area] → protect → (ig_approval) → publish → all_areas_included`,
one run per month of adult drug and alcohol treatment extracts.

* **Period.** The run whose data interval is March (scheduled when March closes) has logical date
  2024-03-01 and processes period `2024-03`. A manual run (`airflow dags test monthly_treatment_pipeline
  2024-03-01`, a backfill) processes the month of its logical date; the `period` param overrides both.
* **Extract.** Param `extract` (a file, or a folder); default `<data root>/inbox/period=YYYY-MM/`. A folder may
  hold one file per area, named after the area (`Northton.csv`, `E06900002.parquet`), or one combined file.
* **Per-area mapping.** `land_area` and `validate_area` are mapped over the areas (dynamic task mapping), so a
  bad area fails only its own mapped task. `protect` (trigger rule `all_done_min_one_success`) then runs over
  the areas that passed -- the national comparator needs them together -- and records the areas left out,
  and why, in the restricted run record `areas.json`. The marts of the other areas are published, and the
  final task `all_areas_included` fails, so the run ends **failed** and the failure alert names the areas.
* **Where.** Params `data_root` / `warehouse_url` override `TREATMENT_MARTS_DATA_ROOT` /
  `TREATMENT_MARTS_WAREHOUSE_URL` (defaults: `./data`, SQLite under the data root).
* **Failures and retries.** A stage's exception fails its task with an actionable message that never contains
  an identifying value. Data errors fail at once (retrying cannot fix a file); the I/O tasks `land_area` and
  `publish` retry other errors (file system, warehouse) with exponential backoff. `validate_area` and
  `publish` write to the warehouse and run in the pool `warehouse`, which bounds its connections.
* **IG approval.** When operations.yaml (per `TREATMENT_MARTS_ENVIRONMENT`) or `TREATMENT_MARTS_IG_APPROVAL`
  asks for it, `ig_approval` (human-in-the-loop) holds publication until an IG reviewer approves, showing
  the disclosure summary; a rejection publishes nothing and records who and why (`approval.json`).
* **Downstream.** `publish` updates the asset `treatment_marts_public_marts` (event extra: period, run id,
  marts, areas left out) so consumers can schedule on it.

Tasks pass only periods, run ids, area names and paths through XCom. pandas and Great Expectations load
inside the tasks, never when this file is parsed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Connection, Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable

from treatment_marts.core.settings import REPO_DIR, env_path
from treatment_marts.ops.dag_support import send, settings_from_params
from treatment_marts.ops.policy import approval_required, load_operations

log = logging.getLogger(__name__)

PUBLIC_MARTS = Asset(name="treatment_marts_public_marts", uri="treatment-marts://public/marts", group="treatment-marts")
WAREHOUSE_POOL = "warehouse"  # create once per installation: airflow pools set warehouse 4 "..." (make demo does)
IO_RETRIES = {
    "retries": 3,
    "retry_delay": pendulum.duration(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": pendulum.duration(minutes=10),
}
OPERATIONS = load_operations(env_path("TREATMENT_MARTS_CONFIG_DIR", REPO_DIR / "include" / "config"))
IG_APPROVAL = approval_required(OPERATIONS.approval)  # decided at parse time: it changes the DAG's shape


# --- helpers (run inside tasks only) -------------------------------------------------------------------


def _period(context) -> str:
    """`period` param, else the month of the logical date (= data interval start for scheduled runs)."""
    if context["params"].get("period"):
        return context["params"]["period"]
    # Scheduled and backfill runs: logical date == start of the data interval == the month processed.
    # Manual runs with a logical date: that month. Runs triggered without a logical date: the data interval.
    when = context.get("logical_date") or context["data_interval_start"]
    return when.strftime("%Y-%m")


def _run_id(context) -> str:
    from treatment_marts.pipeline.stages import safe_run_id  # [A-Za-z0-9_.-] only: it becomes a folder name

    return safe_run_id(context["run_id"])


def _data_error(exc: Exception) -> None:
    """Re-raise a data problem as AirflowFailException: retrying cannot fix a file, so the task fails at once."""
    from treatment_marts.ingest.land import ExtractError

    if isinstance(exc, (ExtractError, ValueError, KeyError)):
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def _notify(context, state: str, facts: dict[str, Any] | None = None) -> None:
    """PII-free run summary to the log, and to a webhook / SMTP when their connections exist."""
    from treatment_marts.ops.notify import RunSummary

    try:
        period = _period(context)
    except Exception:
        period = "unknown"
    exception = context.get("exception")
    ti = context["task_instance"]
    facts = dict(facts or {})
    if state == "failed" and getattr(ti, "map_index", -1) >= 0:
        facts["map index"] = ti.map_index
    send(
        RunSummary(
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            period=period,
            state=state,
            task_id=ti.task_id if state == "failed" else None,
            reason=f"{type(exception).__name__}: {exception}" if exception else None,
            facts=facts,
        ),
        Connection.get,
    )


def _on_failure(context) -> None:
    _notify(context, "failed")


def _on_published(context) -> None:
    published = context["task_instance"].xcom_pull(task_ids="publish") or {}
    _notify(
        context,
        "success",
        {"marts published": len(published.get("marts", [])), "areas left out": len(published.get("excluded", []))},
    )


class IGApprovalOperator(ApprovalOperator):
    """ApprovalOperator that records the IG decision (who, when, why) in the restricted run record and
    alerts on a rejection. On Reject the parent skips `publish`, so nothing is published."""

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        from treatment_marts.pipeline.stages import record_approval

        chosen = (event.get("chosen_options") or ["?"])[0]
        user = event.get("responded_by_user") or {}
        settings = settings_from_params(context["params"])
        record_approval(
            settings,
            _run_id(context),
            decision=chosen,
            by=str(user.get("name") or user.get("id") or "unknown"),
            at=str(event.get("responded_at")),
            comment=str((event.get("params_input") or {}).get("comment") or ""),
        )
        if chosen == self.REJECT:
            _notify(context, "rejected", {"decision": "IG rejected the release; nothing published"})
        return super().execute_complete(context, event)


# --- the DAG ---------------------------------------------------------------------------------------------


@dag(
    dag_id="monthly_treatment_pipeline",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    # Two years of history can be backfilled (`airflow backfill create`); catchup=False so a fresh deployment
    # does not start 24 runs by itself.
    start_date=pendulum.datetime(2022, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["treatment-marts", "ndtms", "disclosure-control"],
    doc_md=__doc__,
    default_args={
        "owner": "treatment-marts",
        "retries": 0,  # data problems do not heal by retrying; the I/O tasks override this
        "on_failure_callback": _on_failure,
    },
    params={
        "period": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            title="Period (YYYY-MM)",
            description="Month to process; default: the month of the run's logical date / data interval.",
        ),
        "extract": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Extract file or folder",
            description="CSV/XLSX/Parquet file, or a folder (one file per area, or one combined file); "
            "default <data root>/inbox/period=YYYY-MM/.",
        ),
        "data_root": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Data root",
            description="Default: $TREATMENT_MARTS_DATA_ROOT, else ./data.",
        ),
        "warehouse_url": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Warehouse SQLAlchemy URL",
            description="Default: $TREATMENT_MARTS_WAREHOUSE_URL, else sqlite:///<data root>/warehouse.db.",
        ),
    },
)
def monthly_treatment_pipeline():
    @task
    def plan_areas() -> list[dict]:
        """Split the period's extract location into areas (one file per area) or one combined unit."""
        from treatment_marts.pipeline import stages

        context = get_current_context()
        settings = settings_from_params(context["params"])
        period = _period(context)
        location = context["params"].get("extract") or str(settings.data_root / "inbox" / f"period={period}")
        try:
            return stages.plan_areas(settings, period, _run_id(context), location)
        except (FileNotFoundError, ValueError) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    @task(map_index_template="{{ area }}", **IO_RETRIES)
    def land_area(unit: dict) -> dict:
        """Immutable raw copy + checksum of the area's files, then the typed (restricted) Parquet."""
        from treatment_marts.pipeline import stages

        context = get_current_context()
        context["area"] = unit["unit"]
        settings = settings_from_params(context["params"])
        try:
            landed = stages.land_area(settings, _period(context), _run_id(context), unit["unit"], unit["paths"])
        except Exception as exc:
            _data_error(exc)
            raise
        return {**landed, "area_code": unit["area_code"]}

    @task(map_index_template="{{ area }}", pool=WAREHOUSE_POOL)
    def validate_area(landed: dict) -> dict:
        """The area's rows only, then the Great Expectations suite and month-over-month checks."""
        from treatment_marts.pipeline import stages

        context = get_current_context()
        context["area"] = landed["unit"]
        settings = settings_from_params(context["params"])
        return stages.validate_area(
            settings, _period(context), _run_id(context), landed["unit"], landed["area_code"], landed["landed_paths"]
        )

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def protect() -> dict:
        """Over the areas that passed: recode, build the marts, suppress (K3 + secondary), audit; stage."""
        from treatment_marts.ops.policy import approval_body
        from treatment_marts.pipeline import stages

        context = get_current_context()
        settings = settings_from_params(context["params"])
        period, run_id = _period(context), _run_id(context)
        expected = OPERATIONS.arrival.expected_areas if OPERATIONS.arrival else None
        accepted = stages.accept_areas(settings, period, run_id, expected_areas=expected)  # units: plan.json
        result = stages.protect(settings, period, run_id, accepted["landed_paths"])
        summary = stages.disclosure_summary(result["staged_dir"], accepted["excluded"])
        return {
            "period": period,
            "run_id": run_id,
            "staged_dir": result["staged_dir"],
            "suppressed_cells": result["suppressed_cells"],
            "included": accepted["included"],
            "excluded": accepted["excluded"],
            "approval_body": approval_body(summary),
        }

    @task(outlets=[PUBLIC_MARTS], pool=WAREHOUSE_POOL, on_success_callback=_on_published, **IO_RETRIES)
    def publish(protected: dict) -> dict:
        """Public Parquet marts + warehouse tables (atomic, idempotent per period) and the restricted log."""
        from treatment_marts.pipeline import stages

        context = get_current_context()
        settings = settings_from_params(context["params"])
        result = stages.publish(settings, protected["period"], protected["run_id"], protected["staged_dir"])
        marts = sorted(result["marts"])
        left_out = sorted(e["unit"] for e in protected["excluded"])
        context["outlet_events"][PUBLIC_MARTS].extra = {
            "period": result["period"],
            "run_id": result["run_id"],
            "marts": marts,
            "areas_left_out": left_out,
        }
        return {
            "period": result["period"],
            "run_id": result["run_id"],
            "marts": marts,
            "excluded": protected["excluded"],
            "suppression_log": result["suppression_log"],
            "ig_report": result["ig_report"],
        }

    @task
    def all_areas_included(published: dict) -> None:
        """Fail the run (visibly, with an alert) when areas were left out, after the others were published."""
        if published["excluded"]:
            raise AirflowFailException(
                f"published {published['period']} without {len(published['excluded'])} area(s): "
                + "; ".join(f"{e['unit']} ({e['stage']}: {e['reason'][:300]})" for e in published["excluded"])
            )

    units = plan_areas()
    validated = validate_area.expand(landed=land_area.expand(unit=units))
    protected = protect()  # reads the plan from the run record: its only upstream is validate_area
    validated >> protected
    published = publish(protected)
    if IG_APPROVAL:
        gate = IGApprovalOperator(
            task_id="ig_approval",
            subject="IG approval: publish treatment marts for {{ ti.xcom_pull(task_ids='protect')['period'] }}?",
            body="{{ ti.xcom_pull(task_ids='protect')['approval_body'] }}",
            params={"comment": Param("", type="string", title="Reason (required to reject)")},
            response_timeout=timedelta(hours=OPERATIONS.approval.response_timeout_hours),
        )
        protected >> gate >> published
    all_areas_included(published)


monthly_treatment_pipeline()
