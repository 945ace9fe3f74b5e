"""A real Airflow DAG run (`airflow dags test`) on a generated month: it publishes; a bad extract fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from airflow_env import airflow_cli
from treatment_marts.synth import generate_extract, write_extract


def run_dag(data_root: Path, period: str = "2024-03", **conf: str):
    return airflow_cli("dags", "test", "monthly_treatment_pipeline", f"{period}-01", "-c", json.dumps({"data_root": str(data_root), **conf}))


def test_the_dag_publishes_the_month(airflow_db: Path, tmp_path: Path) -> None:
    frame = generate_extract("2024-03", clients=20000, seed=21)
    write_extract(frame, tmp_path / "inbox" / "period=2024-03" / "extract.csv")
    result = run_dag(tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    mart = pd.read_parquet(tmp_path / "public" / "marts" / "in_treatment_substance_area_sex" / "period=2024-03")
    assert {"period", "area", "substance_group", "sex", "count", "status"} <= set(mart.columns)
    assert not mart["count"].dropna().between(1, 3).any()
    assert (tmp_path / "restricted" / "suppression_log" / "period=2024-03" / "suppression_log.parquet").exists()
    assert list((tmp_path / "restricted" / "gx").rglob("index.html")), "GX Data Docs are built"
    logs = result.stdout + result.stderr
    for client_ref in frame["client_ref"].dropna().head(200):
        assert client_ref not in logs


def test_a_bad_extract_fails_the_run_and_publishes_nothing(airflow_db: Path, tmp_path: Path) -> None:
    frame = generate_extract("2024-03", clients=2000, areas=["Northton"], seed=22)
    frame = frame.drop(columns=["sex"])
    frame.to_csv(tmp_path / "bad.csv", index=False)
    result = run_dag(tmp_path, extract=str(tmp_path / "bad.csv"))
    logs = result.stdout + result.stderr
    assert result.returncode != 0
    assert "missing column(s): sex" in logs
    assert not (tmp_path / "public").exists()
    assert list((tmp_path / "raw" / "period=2024-03").glob("bad.*.csv")), "the raw file is kept"
