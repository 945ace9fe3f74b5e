"""The `treatment-marts` command as a user runs it: real subprocesses, real exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

CLI = [sys.executable, "-m", "treatment_marts.cli"]


def run(*args: str, data_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TREATMENT_MARTS_DATA_ROOT": str(data_root)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=600)


def test_generate_then_run_publishes_and_reports_locations(tmp_path: Path) -> None:
    extract = tmp_path / "inbox" / "extract.parquet"
    gen = run(
        "generate",
        "--period",
        "2024-03",
        "--clients",
        "800",
        "--areas",
        "Exborough,Northton,Little Haven",  # three areas (the others send nothing): quick, still suppressed
        "--seed",
        "7",
        "--out",
        str(extract),
        data_root=tmp_path / "data",
    )
    assert gen.returncode == 0, gen.stderr
    assert extract.exists() and "wrote" in gen.stdout

    result = run("run", "--period", "2024-03", "--extract", str(extract.parent), data_root=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "mart in_treatment_substance_area_sex" in result.stdout
    assert "suppression log (restricted)" in result.stdout
    assert "month-over-month: " in result.stdout, "drift flags are printed by run, not only logged"
    mart = pd.read_parquet(
        tmp_path / "data" / "public" / "marts" / "in_treatment_substance_area_sex" / "period=2024-03"
    )
    assert set(mart["area"]) == {"Exborough", "Northton", "Little Haven", "Total"}

    where = run("where", "--period", "2024-03", data_root=tmp_path / "data")
    assert where.returncode == 0 and "public marts" in where.stdout


def test_validate_exits_1_with_a_summary_on_a_blocking_failure(tmp_path: Path) -> None:
    from treatment_marts.ops.synth import generate_extract, write_extract

    frame = generate_extract("2024-03", clients=300, areas=["Northton"], seed=3)
    frame.loc[frame.index[:4], "drug_1"] = "0000"
    path = write_extract(frame, tmp_path / "bad.csv")
    result = run("validate", "--period", "2024-03", "--extract", str(path), data_root=tmp_path / "data")
    assert result.returncode == 1
    assert "drug_1" in result.stdout


def test_unreadable_extract_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = run("run", "--period", "2024-03", "--extract", str(path), data_root=tmp_path / "data")
    assert result.returncode == 1
    assert result.stderr.startswith("error: empty.csv: the file is empty")
    assert "Traceback" not in result.stderr
