"""The DAG's answer to a warehouse that is down: the publish task retries (with a delay), then fails with
PublishError's message; bad data is not retried. Asserted on the real DAG object (dags/ is not edited here)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["monthly_treatment_pipeline"]


def test_publish_retries_with_a_delay_and_bad_data_does_not() -> None:
    dag = load_dag()
    publish = dag.get_task("publish")
    assert publish.retries >= 1 and publish.retry_delay >= timedelta(seconds=30) and publish.retry_exponential_backoff
    for task_id in ("validate_area", "protect"):
        assert dag.get_task(task_id).retries == 0, f"{task_id}: a bad extract or rule fails the same way on every try"


def test_publish_error_is_an_ordinary_failure_so_airflow_retries_it() -> None:
    from airflow.exceptions import AirflowException
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from treatment_marts.publish.release import PublishError

    # AirflowFailException / AirflowSkipException would end the task without its retries.
    assert not issubclass(PublishError, (AirflowFailException, AirflowSkipException, AirflowException))
    assert issubclass(PublishError, RuntimeError)
