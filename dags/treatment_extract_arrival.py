"""
### Treatment extract arrival (late-data alert)

Every morning, checks that each area listed in `include/config/operations.yaml` (`arrival.expected_areas`)
has delivered last month's extract to `<data root>/inbox/period=YYYY-MM/` by `arrival.due_day` of this
month. After that day, a missing area sends a **late** alert through the pipeline's notifier (log, and the
webhook / SMTP Airflow connections when configured): the period, the due date and the area names -- no
record-level data. The task itself succeeds (the alert is the signal; failing it every morning until the
file arrives would bury real failures); its return value (XCom) lists what was missing.

Why a task and not an Airflow Deadline Alert: deadline alerts (experimental since Airflow 3.1, see
airflow.apache.org/docs/apache-airflow/3.3.2/howto/deadline-alerts.html) fire when a *Dag run* has not
finished by a reference time plus an interval; what is late here is a *file per area*, which only a look
at the inbox can see, and which must be reported before any run exists.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Connection, Param, dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from treatment_marts.ops.dag_support import send, settings_from_params


@dag(
    dag_id="treatment_extract_arrival",
    schedule=CronTriggerTimetable("0 7 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["treatment-marts", "alerts"],
    doc_md=__doc__,
    default_args={"owner": "treatment-marts", "retries": 0},
    params={
        "data_root": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Data root",
            description="Default: $TREATMENT_MARTS_DATA_ROOT, else ./data.",
        ),
    },
)
def treatment_extract_arrival():
    @task
    def check_arrival() -> dict:
        """Expected areas without last month's extract after the due day: alert (PII-free)."""
        from treatment_marts.core.config import load_areas
        from treatment_marts.ops.notify import RunSummary
        from treatment_marts.ops.policy import arrival_status, expected_period, load_operations

        context = get_current_context()
        settings = settings_from_params(context["params"])
        policy = load_operations(settings.config_dir).arrival
        if policy is None:
            return {"checked": False}
        today = (context.get("logical_date") or pendulum.now("UTC")).date()
        status = arrival_status(
            settings.data_root / "inbox", expected_period(today), policy, load_areas(settings.config_dir), today
        )
        if status["late"]:
            status["alerted"] = send(
                RunSummary(
                    dag_id=context["dag"].dag_id,
                    run_id=context["run_id"],
                    period=status["period"],
                    state="late",
                    reason=f"{len(status['missing'])} expected area extract(s) not in the inbox after the due day "
                    f"({policy.due_day} of the following month)",
                    facts={
                        "missing areas": ", ".join(status["missing"]),
                        "arrived": f"{len(status['arrived'])} of {len(policy.expected_areas)}",
                    },
                ),
                Connection.get,
            )
        return status

    check_arrival()


treatment_extract_arrival()
