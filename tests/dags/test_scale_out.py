"""Scale-out: the monthly DAG on the CeleryExecutor, its mapped area tasks on different workers.

Real components only, on this machine: Debian's `redis-server` as the broker and result backend (loopback,
no persistence), `airflow api-server` + `airflow scheduler` + two `airflow celery worker` processes, each
named so the task instance records which worker ran it. The same two-area month is run once with the
LocalExecutor and once with the CeleryExecutor, in separate Airflow homes and data roots; the published
marts must be the same bytes. Workers share the data root, as they would a shared file system across hosts
(docs/architecture.md, "Scale-out").
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from airflow_helpers import airflow_in, config_expecting, deployment_env

from treatment_marts.cli import main as treatment_marts_cli
from treatment_marts.ops.airflow_local import (
    LocalAirflow,
    celery_env,
    executor_env,
    free_port,
)

DAG_ID = "monthly_treatment_pipeline"
PERIOD = "2024-01"
LOGICAL_DATE = f"{PERIOD}-01T00:00:00+00:00"
AREAS = ("Northton", "Southmoor")
CLIENTS = "2000"  # publishable with two areas (a few hundred clients cannot be protected)
WORKERS = ("celery-worker-1", "celery-worker-2")
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    assert server, "Debian's redis-server is not installed (.ci/run installs it)"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
        time.sleep(0.2)
    yield f"redis://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped configuration, expecting only the two areas of this month (else the run ends failed)."""
    return config_expecting(AREAS, tmp_path_factory.mktemp("config") / "config")


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One extract file per area (named by its GSS code), so the DAG maps land and validate over two areas."""
    work = tmp_path_factory.mktemp("extract")
    combined = work / "combined.csv"
    args = ["generate", "--period", PERIOD, "--clients", CLIENTS, "--areas", ",".join(AREAS), "--out", str(combined)]
    assert treatment_marts_cli(args) == 0
    frame = pd.read_csv(combined, dtype=str, keep_default_na=False)
    folder = work / "inbox" / f"period={PERIOD}"
    folder.mkdir(parents=True)
    for code, rows in frame.groupby("la_code"):
        rows.to_csv(folder / f"{code}.csv", index=False)
    assert len(list(folder.iterdir())) == len(AREAS)
    return folder


def _run_month(
    tmp: Path, inbox: Path, config: Path, executor: str, redis: str | None
) -> tuple[Path, list[tuple[str, str]]]:
    """Run the DAG for PERIOD with real components; -> (data root, [(task_id, hostname)] of its task instances)."""
    home, data_root = tmp / "airflow", tmp / "data"
    shutil.copytree(inbox, data_root / "inbox" / f"period={PERIOD}")
    base = deployment_env(
        home, data_root, TREATMENT_MARTS_PSEUDONYM_KEY="scale-out-test-key", TREATMENT_MARTS_CONFIG_DIR=str(config)
    )
    metadata_url = base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    env = executor_env(base, api_port=free_port(), log_port=free_port(), jwt_secret="scale-out-" * 4, fast=True)
    components: tuple[str, ...] = ("api-server", "scheduler")
    if executor == "CeleryExecutor":
        assert redis
        env = celery_env(env, broker_url=f"{redis}/0", result_backend=f"redis://{redis.split('//')[1]}/1")
        components = (*components, *WORKERS)

    def airflow(*args: str) -> str:
        return airflow_in(env, *args)

    airflow("db", "migrate")
    airflow("pools", "set", "warehouse", "4", "treatment-marts warehouse connections")
    airflow("dags", "reserialize")
    airflow("dags", "unpause", DAG_ID)
    with LocalAirflow(env, home / "components", components) as running:
        conf = json.dumps({"data_root": str(data_root)})
        airflow("dags", "trigger", DAG_ID, "--logical-date", LOGICAL_DATE, "--conf", conf)
        engine = sa.create_engine(metadata_url)
        dag_run = sa.table("dag_run", sa.column("dag_id"), sa.column("run_id"), sa.column("state"))
        ti = sa.table("task_instance", sa.column("run_id"), sa.column("task_id"), sa.column("hostname"))
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while True:
                with engine.connect() as conn:
                    run = conn.execute(sa.select(dag_run.c.run_id, dag_run.c.state)).first()
                if run and run.state in ("success", "failed"):
                    break
                assert not running.dead(), f"{running.dead()}\n{running.log_tail()}"
                assert time.monotonic() < deadline, f"{executor}: run not finished\n{running.log_tail()}"
                time.sleep(2)
            assert run.state == "success", f"{executor}: the run {run.state}\n{running.log_tail()}"
            with engine.connect() as conn:
                hosts = [(r.task_id, r.hostname) for r in conn.execute(sa.select(ti.c.task_id, ti.c.hostname))]
        finally:
            engine.dispose()
    return data_root, hosts


@pytest.fixture(scope="module")
def local_run(
    tmp_path_factory: pytest.TempPathFactory, inbox: Path, config_dir: Path
) -> tuple[Path, list[tuple[str, str]]]:
    return _run_month(tmp_path_factory.mktemp("local"), inbox, config_dir, "LocalExecutor", None)


@pytest.fixture(scope="module")
def celery_run(
    tmp_path_factory: pytest.TempPathFactory, inbox: Path, config_dir: Path, redis_url: str
) -> tuple[Path, list[tuple[str, str]]]:
    return _run_month(tmp_path_factory.mktemp("celery"), inbox, config_dir, "CeleryExecutor", redis_url)


def test_the_area_tasks_ran_on_different_celery_workers(celery_run) -> None:
    _, hosts = celery_run
    names = {worker.removeprefix("celery-") for worker in WORKERS}
    for task in ("land_area", "validate_area"):
        on = [host for task_id, host in hosts if task_id == task]
        assert len(on) == len(AREAS), (task, hosts)
        assert set(on) <= names, f"{task} ran outside the Celery workers: {on}"
    area_hosts = {host for task_id, host in hosts if task_id in ("land_area", "validate_area")}
    assert area_hosts == names, f"every area task ran on one worker: {hosts}"


def test_celery_publishes_the_same_marts_byte_for_byte_as_the_local_executor(local_run, celery_run) -> None:
    local_marts = sorted((local_run[0] / "public" / "marts").glob(f"*/period={PERIOD}/data.parquet"))
    celery_marts = sorted((celery_run[0] / "public" / "marts").glob(f"*/period={PERIOD}/data.parquet"))
    assert len(local_marts) >= 10
    assert [p.parts[-3] for p in local_marts] == [p.parts[-3] for p in celery_marts]
    for ours, theirs in zip(local_marts, celery_marts, strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), ours.parts[-3]
    areas = set(pd.read_parquet(local_marts[0])["area"])
    assert set(AREAS) <= areas
