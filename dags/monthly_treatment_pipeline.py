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
  and why, in the restricted run record `areas.json`. The marts of the other areas are published; an area
  left out has no row in any mart, warehouse table or export (never a zero), and the release manifest
  (`partial`, `areas_left_out`) and the exports' notes name it. The final task `all_areas_included` fails,
  so the run ends **failed** and the failure alert names the areas.
* **Where.** Params `data_root` / `warehouse_url` override `TREATMENT_MARTS_DATA_ROOT` /
  `TREATMENT_MARTS_WAREHOUSE_URL` (defaults: `./data`, SQLite under the data root).
* **Failures and retries.** A stage's exception fails its task with an actionable message that never contains
  an identifying value. Data errors fail at once (retrying cannot fix a file); the I/O tasks `land_area` and
  `publish` retry other errors (file system, warehouse) with exponential backoff. `validate_area` and
  `publish` write to the warehouse and run in the pool `warehouse`, which bounds its connections.
* **IG approval.** When operations.yaml (per `TREATMENT_MARTS_ENVIRONMENT`) or `TREATMENT_MARTS_IG_APPROVAL`
  asks for it, `ig_approval` (human-in-the-loop) holds publication until an IG reviewer approves. `protect`
  has already written the evidence (the IG report and the approval summary, restricted); the gate shows the
  summary (areas left out first) with a link to the report, to the users named in
  `TREATMENT_MARTS_IG_REVIEWERS` only; the user who triggered the run cannot approve it. A rejection publishes nothing, records who and why
  (`approval.json`) and ends the run **failed**.
* **Windows.** `protect` also builds the window marts ending with the month (rolling 12 months, the
  financial year to date; marts.yaml `window:`) from the restricted history of accepted months, protected
  with the earlier releases they overlap. The **March period closes the financial year**: its data month is
  the year's last (April-March), so the run for `2025-03` (scheduled when March closes, i.e. in April)
  publishes the `financial_year` marts for 2024/25. `max_active_runs=1` makes a backfill (`make backfill`)
  build and publish the months in order, so each month's windows find the earlier releases public.
* **Downstream.** `publish` updates the asset `treatment_marts_public_marts` (event extra: period, run id,
  marts, areas left out) so consumers can schedule on it.

Tasks pass only periods, run ids, area names and paths through XCom. pandas and Great Expectations load
inside the tasks, never when this file is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Connection, Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable

from treatment_marts.ops.dag_support import (
    RunContext,
    deployment_operations,
    fails_at_once,
    ig_reviewer_users,
    send,
)
from treatment_marts.ops.policy import approval_required

log = logging.getLogger(__name__)

PUBLIC_MARTS = Asset(name="treatment_marts_public_marts", uri="treatment-marts://public/marts", group="treatment-marts")
WAREHOUSE_POOL = "warehouse"  # create once per installation: airflow pools set warehouse 4 "..." (make demo does)
IO_RETRIES = {
    "retries": 3,
    "retry_delay": pendulum.duration(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": pendulum.duration(minutes=10),
}
OPERATIONS = deployment_operations()
IG_APPROVAL = approval_required(OPERATIONS.approval)  # decided at parse time: it changes the DAG's shape
EXPECTED_AREAS = OPERATIONS.arrival.expected_areas if OPERATIONS.arrival else None


# --- Airflow glue (run inside tasks only) ----------------------------------------------------------------


def _run(context) -> RunContext:
    return RunContext.of(
        context["params"], context["run_id"], context.get("logical_date"), context.get("data_interval_start")
    )


@contextmanager
def _data_errors_fail_at_once() -> Iterator[None]:
    """A data problem fails the task without its retries (ops.dag_support.fails_at_once)."""
    try:
        yield
    except Exception as exc:
        if fails_at_once(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


def _notify(context, state: str, facts: dict[str, Any] | None = None) -> None:
    """PII-free run summary to the log, and to a webhook / SMTP when their connections exist."""
    from treatment_marts.ops.notify import RunSummary

    try:
        period = str(_run(context).period)
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
    """ApprovalOperator that records the IG decision (who, when, why) in the restricted run record. A
    rejection, or an approval by the user who triggered the run (or by someone not an IG reviewer), fails
    this task with the reason: `publish` never runs and the run ends failed, with an alert."""

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        from treatment_marts.ops.dag_tasks import record_ig_decision

        triggered_by = getattr(context.get("dag_run"), "triggering_user_name", None)
        problem = record_ig_decision(_run(context), event, self.REJECT, triggered_by)
        if problem:
            _notify(context, "rejected", {"decision": problem})
            raise AirflowFailException(problem)
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
        from treatment_marts.ops.dag_tasks import plan

        context = get_current_context()
        return plan(_run(context), context["params"].get("extract"))

    @task(map_index_template="{{ area }}", **IO_RETRIES)
    def land_area(unit: dict) -> dict:
        """Immutable raw copy + checksum of the area's files, then the typed (restricted) Parquet."""
        from treatment_marts.ops.dag_tasks import land_unit

        context = get_current_context()
        context["area"] = unit["unit"]
        with _data_errors_fail_at_once():
            return land_unit(_run(context), unit)

    @task(map_index_template="{{ area }}", pool=WAREHOUSE_POOL)
    def validate_area(landed: dict) -> dict:
        """The area's rows only, then the Great Expectations suite and month-over-month checks."""
        from treatment_marts.ops.dag_tasks import validate_unit

        context = get_current_context()
        context["area"] = landed["unit"]
        return validate_unit(_run(context), landed)

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def protect() -> dict:
        """Over the areas that passed: recode, build the marts, suppress (K3 + secondary), audit; stage the
        release and write its IG review evidence (report, approval summary) before the gate."""
        from treatment_marts.ops.dag_tasks import protect_accepted

        return protect_accepted(_run(get_current_context()), EXPECTED_AREAS, IG_APPROVAL)  # units: plan.json

    @task(outlets=[PUBLIC_MARTS], pool=WAREHOUSE_POOL, on_success_callback=_on_published, **IO_RETRIES)
    def publish(protected: dict) -> dict:
        """Public Parquet marts + warehouse tables (atomic, idempotent per period) and the restricted log."""
        from treatment_marts.ops.dag_tasks import asset_event_extra, publish_protected

        context = get_current_context()
        published = publish_protected(_run(context), protected)
        context["outlet_events"][PUBLIC_MARTS].extra = asset_event_extra(published)
        return published

    @task
    def all_areas_included(published: dict) -> None:
        """Fail the run (visibly, with an alert) when areas were left out, after the others were published."""
        from treatment_marts.ops.dag_tasks import left_out_message

        message = left_out_message(published)
        if message:
            raise AirflowFailException(message)

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
            params={
                "comment": Param(
                    None, type=["null", "string"], title="Reason", description="Why, when you reject (recorded)"
                )
            },
            assigned_users=ig_reviewer_users(),  # only IG reviewers see and answer the gate
            response_timeout=timedelta(hours=OPERATIONS.approval.response_timeout_hours),
        )
        protected >> gate >> published
    all_areas_included(published)


monthly_treatment_pipeline()
