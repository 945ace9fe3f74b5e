"""The real DAG, run in-process with `dag.test()` on a generated month: it publishes; a bad extract fails it;
with one file per area, a bad area is left out of an otherwise published month and the run ends failed.

No Airflow mocks: the DAG is parsed from dags/ (DagBag), its tasks run through Airflow's task runner
against the isolated SQLite metadata database of tests/dags/conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pendulum
import pytest
from airflow_helpers import config_expecting

from treatment_marts.ops.synth import generate_extract, write_extract

MARCH = pendulum.datetime(2024, 3, 1, tz="UTC")
AREAS = ["Exborough", "Northton", "Southmoor"]
# The smallest month that is still publishable: with a few hundred clients, secondary suppression
# refuses (every linked cell suppressed) -- by design, so the test month has a few thousand.
CLIENTS = 3000


def run_dag(dags_folder: Path, data_root: Path, **conf: str):
    """One real run of a freshly parsed DAG (in-process task runs update the task objects' params with the
    run's conf, so a DAG object is not reused across runs -- as in production, where each task is a process)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    assert bag.import_errors == {}, bag.import_errors
    conf = {"data_root": str(data_root), "warehouse_url": f"sqlite:///{data_root / 'warehouse.db'}", **conf}
    return bag.dags["monthly_treatment_pipeline"].test(logical_date=MARCH, run_conf=conf)


def task_states(dag_run) -> dict[str, str]:
    """State per task; a mapped task instance is keyed `task_id[map index]`."""
    return {
        ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
        for ti in dag_run.get_task_instances()
    }


ALL_TASKS = ["plan_areas", "land_area[0]", "validate_area[0]", "protect", "publish", "all_areas_included"]


@pytest.fixture(scope="module")
def published(airflow_db: Path, dags_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    data_root = tmp_path_factory.mktemp("dagrun")
    # Every expected area: a combined file missing one leaves it out and ends the run failed. The deployment
    # here expects three (operations.yaml), so the combined file of those three is a complete month.
    config = config_expecting(AREAS, tmp_path_factory.mktemp("config") / "config")
    frame = generate_extract("2024-03", clients=CLIENTS, areas=AREAS, seed=21)
    # The default extract location: <data root>/inbox/period=2024-03/ (the period comes from the logical date).
    write_extract(frame, data_root / "inbox" / "period=2024-03" / "extract.csv")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TREATMENT_MARTS_CONFIG_DIR", str(config))
        dag_run = run_dag(dags_folder, data_root)
    return dag_run, data_root, frame


def test_the_dag_run_succeeds_and_publishes_every_mart(published) -> None:
    dag_run, data_root, _ = published
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert task_states(dag_run) == dict.fromkeys(ALL_TASKS, "success")
    marts_dir = data_root / "public" / "marts"
    mart_dirs = sorted(p for p in marts_dir.iterdir() if p.is_dir())
    assert any(p.name == "in_treatment_substance_area_sex" for p in mart_dirs)
    for mart_dir in mart_dirs:
        period_dir = mart_dir / "period=2024-03"
        assert list(period_dir.glob("*.parquet")), f"{mart_dir.name}: no Parquet for 2024-03"
        mart = pd.read_parquet(period_dir)
        assert {"period", "count", "status"} <= set(mart.columns), mart_dir.name
        assert set(mart["period"]) == {"2024-03"}
        counts = mart["count"].dropna()
        assert not counts.between(1, 3).any(), f"{mart_dir.name}: a count of 1-3 was published"
        assert mart.loc[mart["count"].isna(), "status"].eq("c").all()
    substance = pd.read_parquet(marts_dir / "in_treatment_substance_area_sex" / "period=2024-03")
    assert set(AREAS) <= set(substance["area"]) and "Total" in set(substance["area"])


def test_the_run_leaves_the_log_and_data_docs_and_announces_the_asset(published) -> None:
    dag_run, data_root, _ = published
    assert (data_root / "restricted" / "suppression_log" / "period=2024-03").is_dir()
    assert list((data_root / "restricted" / "gx").rglob("index.html")), "GX Data Docs are built"
    # The run id became a safe folder name of the restricted zone; the one (combined) unit validated under
    # `<run id>.all-areas`, and the run record says every unit was included.
    runs = sorted(p.name for p in (data_root / "restricted" / "runs").iterdir())
    assert len(runs) == 2 and runs[1] == runs[0] + ".all-areas"
    assert set(runs[0]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
    areas = json.loads((data_root / "restricted" / "runs" / runs[0] / "areas.json").read_text())
    assert areas["included"] == ["all-areas"] and areas["excluded"] == []

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "treatment_marts_public_marts", AssetEvent.source_run_id == dag_run.run_id)
        ).all()
        assert len(events) == 1
        assert events[0].extra["period"] == "2024-03" and "in_treatment_substance_area_sex" in events[0].extra["marts"]


def test_a_bad_extract_fails_the_run_and_publishes_nothing(
    airflow_db: Path, dags_folder: Path, tmp_path: Path, alert_log
) -> None:
    frame = generate_extract("2024-03", clients=500, areas=["Northton"], seed=22).drop(columns=["sex"])
    frame.to_csv(tmp_path / "bad.csv", index=False)
    dag_run = run_dag(dags_folder, tmp_path, extract=str(tmp_path / "bad.csv"))
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed", states
    # validate_area is never expanded (its input never came), so it stays one unmapped, upstream_failed TI
    assert states["land_area[0]"] == "failed" and states["validate_area"] == "upstream_failed", states
    assert states["protect"] == states["publish"] == "upstream_failed", states
    text = alert_log()
    assert "missing column(s): sex" in text, "the stage's message is in the task log"
    assert "FAILED at land_area" in text, "the failure alert (notifier log channel) names the task"
    assert not (tmp_path / "public").exists() and not (tmp_path / "warehouse.db").exists()


def test_one_bad_area_is_left_out_and_the_run_ends_failed(
    airflow_db: Path, dags_folder: Path, tmp_path: Path, alert_log
) -> None:
    """One file per area: Northton's bad code fails only its own mapped validate task; the other areas are
    protected together and published; the run record says who was left out and why; the run ends failed."""
    frame = generate_extract("2024-03", clients=4000, areas=AREAS, seed=24)
    inbox = tmp_path / "inbox" / "period=2024-03"
    codes = {"Exborough": "E08900001", "Northton": "E06900002", "Southmoor": "E10900003"}
    for area, code in codes.items():
        rows = frame[frame["la_code"] == code].copy()
        if area == "Northton":
            rows["sex"] = rows["sex"].astype("object")
            rows.loc[rows.index[:5], "sex"] = "Q"
        # by name, or by code; CSV and Parquet
        write_extract(rows, inbox / (f"{code}.parquet" if area == "Southmoor" else f"{area}.csv"))
    dag_run = run_dag(dags_folder, tmp_path)
    states = task_states(dag_run)
    # units are sorted by name: Exborough, Northton, Southmoor
    assert states == {
        "plan_areas": "success",
        "land_area[0]": "success",
        "land_area[1]": "success",
        "land_area[2]": "success",
        "validate_area[0]": "success",
        "validate_area[1]": "failed",
        "validate_area[2]": "success",
        "protect": "success",
        "publish": "success",
        "all_areas_included": "failed",
    }, states
    assert str(dag_run.state) == "failed", "a run that left an area out must not look successful"

    substance = pd.read_parquet(tmp_path / "public" / "marts" / "in_treatment_substance_area_sex" / "period=2024-03")
    by_area = substance.assign(count=substance["count"].fillna(0)).groupby("area")["count"].sum()
    assert by_area["Exborough"] > 0 and by_area["Southmoor"] > 0
    assert "Northton" not in by_area.index, "an area left out has no row (never a zero)"
    release = json.loads((tmp_path / "public" / "releases" / "period=2024-03" / "manifest.json").read_text())
    assert release["partial"] is True and "Northton" in release["areas_left_out"]

    run_folder = next(p for p in (tmp_path / "restricted" / "runs").iterdir() if (p / "areas.json").exists())
    areas = json.loads((run_folder / "areas.json").read_text())
    assert areas["included"] == ["Exborough", "Southmoor"]
    left_out = {e["unit"]: e for e in areas["excluded"]}
    assert left_out["Northton"]["stage"] == "validate" and "sex" in left_out["Northton"]["reason"]
    # operations.yaml expects eight areas: the five with no file are recorded as not arrived
    assert {u for u, e in left_out.items() if e["stage"] == "arrival"} == {
        "Westfield",
        "Eastcliff",
        "Kingsbridge",
        "Millbrook",
        "Little Haven",
    }
    manifest = json.loads((run_folder / "run_manifest.json").read_text())
    assert sorted(i["source"] for i in manifest["inputs"]) == ["E10900003.parquet", "Exborough.csv"]

    text = alert_log()  # the notifier's log channel
    assert "FAILED at validate_area" in text and "FAILED at all_areas_included" in text
    assert "without 6 area(s)" in text and "Northton (validate" in text
