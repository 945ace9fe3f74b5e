"""The IG approval gate, for real: the DAG parsed with TREATMENT_MARTS_IG_APPROVAL=true runs in-process
(dag.test); when `ig_approval` parks in Airflow's awaiting-input state, an IG reviewer answers through
Airflow's own public REST API (the api-server's FastAPI app, PATCH .../hitlDetails, with a JWT for the
reviewer) from another thread -- exactly what the Required Actions page does."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pendulum
import pytest
from airflow_helpers import config_expecting

from treatment_marts.ops.synth import generate_extract, write_extract

MARCH = pendulum.datetime(2024, 3, 1, tz="UTC")
AREAS = ["Northton", "Southmoor"]
REVIEWER = "ig.reviewer"


def respond_when_asked(
    choice: str, comment: str, outcome: dict, data_root: Path, timeout: float = 900
) -> threading.Thread:
    """Wait for the gate's HITL request, note what evidence exists while it waits, then answer it via the
    REST API as REVIEWER."""

    def answer() -> None:
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from fastapi.testclient import TestClient
        from sqlalchemy import select

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                row = session.execute(
                    select(TaskInstance.dag_id, TaskInstance.run_id, HITLDetail.subject, HITLDetail.body)
                    .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                    .where(TaskInstance.task_id == "ig_approval", HITLDetail.responded_at.is_(None))
                ).first()
            if row:
                break
            time.sleep(1)
        else:
            outcome["error"] = "no approval request appeared"
            return
        outcome.update(
            subject=row.subject,
            body=row.body,
            reports_while_waiting=sorted(
                p.parent.parent.name for p in data_root.glob("restricted/runs/*/review/index.html")
            ),
            public_while_waiting=(data_root / "public" / "releases").exists(),
        )
        app = create_app(apps="core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=REVIEWER, role="admin"))
        with TestClient(app) as client:
            response = client.patch(
                f"/api/v2/dags/{row.dag_id}/dagRuns/{row.run_id}/taskInstances/ig_approval/-1/hitlDetails",
                json={"chosen_options": [choice], "params_input": {"comment": comment}},
                headers={"Authorization": f"Bearer {token}"},
            )
        outcome["status"] = response.status_code
        outcome["response"] = response.json()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def gated_dag_folder(dags_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The DAG's shape is decided when the file is parsed: parse it with the gate switched on. The deployment
    expects two areas (operations.yaml), so a month with both is complete and protects in seconds."""
    config = config_expecting(AREAS, tmp_path_factory.mktemp("gated") / "config")
    mp = pytest.MonkeyPatch()
    mp.setenv("TREATMENT_MARTS_IG_APPROVAL", "true")
    mp.setenv("TREATMENT_MARTS_CONFIG_DIR", str(config))
    yield dags_folder
    mp.undo()


def run_gated(dags_folder: Path, data_root: Path, choice: str, comment: str):
    from airflow.dag_processing.dagbag import DagBag

    frame = generate_extract(
        "2024-03", clients=2000, areas=AREAS, seed=31
    )  # every expected area: a month missing one ends failed
    write_extract(frame, data_root / "inbox" / "period=2024-03" / "extract.csv")
    bag = DagBag(dag_folder=str(dags_folder))
    dag = bag.dags["monthly_treatment_pipeline"]
    assert "ig_approval" in dag.task_ids and dag.get_task("publish").upstream_task_ids == {"protect", "ig_approval"}
    outcome: dict = {}
    thread = respond_when_asked(choice, comment, outcome, data_root)
    conf = {"data_root": str(data_root), "warehouse_url": f"sqlite:///{data_root / 'warehouse.db'}"}
    dag_run = dag.test(logical_date=MARCH, run_conf=conf)
    thread.join(timeout=60)
    assert outcome.get("status") == 200, outcome
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances() if ti.map_index < 0}
    return dag_run, states, outcome


def approval_record(data_root: Path) -> dict:
    (path,) = (data_root / "restricted" / "runs").glob("*/approval.json")
    return json.loads(path.read_text())


def test_rejection_publishes_nothing_and_records_who_and_why(
    airflow_db: Path, gated_dag_folder: Path, tmp_path: Path, alert_log
) -> None:
    dag_run, states, outcome = run_gated(
        gated_dag_folder, tmp_path, "Reject", "suppression of Southmoor looks too thin"
    )
    assert states["ig_approval"] == "failed" and states["publish"] == "upstream_failed", states
    assert str(dag_run.state) == "failed", "a rejected release ends the run failed, never green"
    assert not (tmp_path / "public").exists() and not (tmp_path / "warehouse.db").exists(), "nothing published"
    record = approval_record(tmp_path)
    assert record["decision"] == "Reject" and record["by"] == REVIEWER
    assert record["comment"] == "suppression of Southmoor looks too thin" and record["at"]
    assert "2024-03: REJECTED" in alert_log(), "the notifier announces the rejection"
    # What the reviewer was shown: the disclosure summary (cell counts and the audit), no true values
    assert "2024-03" in outcome["subject"]
    body = outcome["body"]
    assert "Disclosure audit: **passed**" in body and "| in_treatment_substance_area_sex |" in body
    assert "true_count" not in body and "client" not in body.lower()
    # The evidence existed while the gate waited, and the gate links it (areas left out first)
    (run_folder,) = outcome["reports_while_waiting"]
    assert not outcome["public_while_waiting"]
    assert f"[Open the IG report](/governance/report/2024-03/{run_folder}/)" in body
    assert body.index("Areas left out") < body.index("Open the IG report") < body.index("| mart |")
    # The withheld figure is the staged marts' own count, the derived unmet-need mart included
    marts = list((tmp_path / "restricted" / "runs" / run_folder / "marts").glob("*.parquet"))
    withheld = sum(int(pd.read_parquet(p, columns=["status"])["status"].eq("c").sum()) for p in marts)
    assert f"Withheld: **{withheld} of " in body
    unmet = pd.read_parquet(next(p for p in marts if p.stem == "unmet_need_area_substance"), columns=["status"])
    assert f"| unmet_need_area_substance | {len(unmet)} | {int(unmet['status'].eq('c').sum())} |" in body


def test_approval_publishes_and_records_the_decision(airflow_db: Path, gated_dag_folder: Path, tmp_path: Path) -> None:
    dag_run, states, _ = run_gated(gated_dag_folder, tmp_path, "Approve", "")
    assert str(dag_run.state) == "success", states
    assert states["ig_approval"] == states["publish"] == states["all_areas_included"] == "success", states
    assert list((tmp_path / "public" / "marts").glob("*/period=2024-03/*.parquet"))
    record = approval_record(tmp_path)
    assert record["decision"] == "Approve" and record["by"] == REVIEWER
