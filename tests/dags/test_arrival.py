"""The late-data alert, for real: the `treatment_extract_arrival` DAG runs in-process (dag.test) and posts to
a real HTTP webhook configured as an Airflow connection (env var AIRFLOW_CONN_TREATMENT_MARTS_WEBHOOK)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pendulum
import pytest


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch):
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/alerts"
    monkeypatch.setenv("AIRFLOW_CONN_TREATMENT_MARTS_WEBHOOK", json.dumps({"conn_type": "http", "extra": {"url": url}}))
    yield _Hook.received
    server.shutdown()


def run_arrival(dags_folder: Path, data_root: Path, when: pendulum.DateTime):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["treatment_extract_arrival"].test(logical_date=when, run_conf={"data_root": str(data_root)})


def xcom(dag_run) -> dict:
    (ti,) = dag_run.get_task_instances()
    return ti.xcom_pull(task_ids="check_arrival")


def test_missing_areas_after_the_due_day_alert_the_webhook(
    airflow_db: Path, dags_folder: Path, tmp_path: Path, webhook
) -> None:
    inbox = tmp_path / "inbox" / "period=2024-03"
    inbox.mkdir(parents=True)
    (inbox / "Exborough.csv").write_text("header only\n")
    (inbox / "E06900002.parquet").write_bytes(b"not read: arrival is judged by file name")

    # Before the due day (10 April, operations.yaml): missing areas are not late yet; no alert.
    early = run_arrival(dags_folder, tmp_path, pendulum.datetime(2024, 4, 10, 7, tz="UTC"))
    assert str(early.state) == "success"
    assert xcom(early)["late"] is False and webhook == []

    late = run_arrival(dags_folder, tmp_path, pendulum.datetime(2024, 4, 11, 7, tz="UTC"))
    assert str(late.state) == "success"  # the alert is the signal; the task does not fail every morning
    status = xcom(late)
    assert status["late"] is True and status["arrived"] == ["Exborough", "Northton"]
    assert status["missing"] == ["Eastcliff", "Kingsbridge", "Little Haven", "Millbrook", "Southmoor", "Westfield"]
    assert status["alerted"] == ["log", "webhook"]
    assert len(webhook) == 1
    text = webhook[0]["text"]
    assert text.startswith("treatment-marts 2024-03: LATE")
    assert "missing areas: Eastcliff, Kingsbridge, Little Haven, Millbrook, Southmoor, Westfield" in text
    assert "arrived: 2 of 8" in text


def test_no_alert_when_every_expected_area_arrived(
    airflow_db: Path, dags_folder: Path, tmp_path: Path, webhook
) -> None:
    inbox = tmp_path / "inbox" / "period=2024-03"
    inbox.mkdir(parents=True)
    (inbox / "national_extract.csv").write_text("a combined file counts for every area\n")
    run = run_arrival(dags_folder, tmp_path, pendulum.datetime(2024, 4, 20, 7, tz="UTC"))
    assert str(run.state) == "success" and xcom(run)["missing"] == [] and webhook == []
