"""Execute an Airflow backfill on one machine: the minimal set of real Airflow 3.3 components.

`airflow backfill create` only queues DAG runs; someone has to execute them. What Airflow 3.3 needs for that
(found by running it, and in its code):

* the **scheduler**, with an executor that runs task instances (`LocalExecutor`, Airflow 3's default). It
  promotes queued backfill runs only for an **unpaused** DAG (`DagRun.get_queued_dag_runs_to_set_running`
  joins `DagModel.is_paused == false`); the DAG is unpaused here with `[scheduler] use_job_schedule = False`
  so the scheduler executes the backfill (and manual runs) but creates no scheduled run of its own;
* the **API server**: a task's supervisor reports state, XComs and connection look-ups to the Execution API
  (`[core] execution_api_server_url`), never to the metadata database; the scheduler signs each task's JWT
  and the API server checks it, so both need the same `[api_auth] jwt_secret`;
* not the dag-processor when the DAGs are serialised first (`airflow dags reserialize`): the scheduler reads
  serialised DAGs, and each task process parses its own DAG file;
* the **triggerer** only for deferred tasks (the IG approval gate, when it is on);
* SQLite metadata is accepted with LocalExecutor in Airflow 3 (`airflow standalone` does the same): task
  processes never open the metadata database, only the scheduler and the API server do.

For scale-out the same components run with the **CeleryExecutor** (`celery_env`): the scheduler queues task
instances on a Redis broker and `airflow celery worker` processes take them, each worker named by
`TREATMENT_MARTS_WORKER_NAME` so a task instance records which worker ran it (`[core] hostname_callable`
= `worker_hostname`). Workers share the data root (here one machine; across hosts, a shared file system).

Used by `make backfill` (`python -m treatment_marts.ops.airflow_local`), tests/dags/test_backfill.py and
tests/dags/test_scale_out.py.
Like the rest of include/ it does not import Airflow: it runs the `airflow` command and reads two metadata
tables (`backfill`, `dag_run`) with SQLAlchemy Core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

UNFINISHED = ("queued", "running")
DEFAULT_COMPONENTS = ("api-server", "scheduler")
UI_COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")
ENV_WORKER_NAME = "TREATMENT_MARTS_WORKER_NAME"
CELERY_WORKER = "celery-worker-"  # component name prefix: celery-worker-1, celery-worker-2, ...


def worker_hostname() -> str:
    """`[core] hostname_callable`: the worker's configured name, else the machine's FQDN (Airflow's default)."""
    return os.environ.get(ENV_WORKER_NAME) or socket.getfqdn()


def celery_env(base: Mapping[str, str], *, broker_url: str, result_backend: str) -> dict[str, str]:
    """`base` (from `executor_env`) switched to the CeleryExecutor on `broker_url`.

    One task per worker at a time and no prefetching, so queued task instances spread over idle workers
    instead of queueing behind a busy one.
    """
    env = dict(base)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "treatment_marts.ops.airflow_local.worker_hostname",
        }
    )
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_command() -> str:
    """This environment's `airflow` (next to the running Python), so a venv need not be on PATH."""
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else "airflow"


def executor_env(
    base: Mapping[str, str], *, api_port: int, log_port: int, jwt_secret: str, fast: bool = False
) -> dict[str, str]:
    """The environment every component shares (same AIRFLOW_HOME and metadata DB as `base`).

    Ports are explicit so a second Airflow (another checkout, a parallel test) does not collide on 8080/8793.
    `fast` shortens the scheduler's loop for tests (a 1 s heartbeat instead of 5 s).
    """
    env = dict(base)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            # execute backfill and manual runs only: unpausing must not start this month's scheduled run
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
    )
    if fast:
        env.update(
            {
                "AIRFLOW__CORE__PARALLELISM": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            }
        )
    return env


@dataclass(frozen=True)
class RunState:
    run_id: str
    logical_date: datetime | None
    run_type: str
    state: str
    start_date: datetime | None
    end_date: datetime | None
    conf: object


@dataclass(frozen=True)
class BackfillState:
    backfill_id: int
    completed: bool
    max_active_runs: int
    runs: tuple[RunState, ...]

    @property
    def unfinished(self) -> list[RunState]:
        return [r for r in self.runs if r.state in UNFINISHED]

    def summary(self) -> str:
        """One line per run: logical month and state (no data, no conf)."""
        return ", ".join(
            f"{r.logical_date:%Y-%m}={r.state}" if r.logical_date else f"{r.run_id}={r.state}" for r in self.runs
        )


def latest_backfill_id(metadata_url: str, dag_id: str) -> int | None:
    engine = sa.create_engine(metadata_url)
    try:
        with engine.connect() as conn:
            backfill = sa.table("backfill", sa.column("id"), sa.column("dag_id"))
            return conn.execute(sa.select(sa.func.max(backfill.c.id)).where(backfill.c.dag_id == dag_id)).scalar()
    finally:
        engine.dispose()


def backfill_state(metadata_url: str, backfill_id: int) -> BackfillState:
    """The backfill and its runs (ordered by logical date), read from the metadata database."""
    backfill = sa.table("backfill", sa.column("id"), sa.column("completed_at"), sa.column("max_active_runs"))
    dag_run = sa.table(
        "dag_run",
        sa.column("run_id"),
        sa.column("logical_date", sa.DateTime),
        sa.column("run_type"),
        sa.column("state"),
        sa.column("start_date", sa.DateTime),
        sa.column("end_date", sa.DateTime),
        sa.column("conf", sa.JSON),
        sa.column("backfill_id"),
    )
    engine = sa.create_engine(metadata_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(backfill.c.completed_at, backfill.c.max_active_runs).where(backfill.c.id == backfill_id)
            ).one()
            runs = conn.execute(
                sa.select(
                    dag_run.c.run_id,
                    dag_run.c.logical_date,
                    dag_run.c.run_type,
                    dag_run.c.state,
                    dag_run.c.start_date,
                    dag_run.c.end_date,
                    dag_run.c.conf,
                )
                .where(dag_run.c.backfill_id == backfill_id)
                .order_by(dag_run.c.logical_date)
            ).all()
    finally:
        engine.dispose()
    return BackfillState(
        backfill_id, row.completed_at is not None, row.max_active_runs, tuple(RunState(*run) for run in runs)
    )


def wait_for_backfill(
    metadata_url: str,
    backfill_id: int,
    timeout: float,
    *,
    poll: float = 2.0,
    alive: Callable[[], str | None] = lambda: None,
    on_change: Callable[[BackfillState], None] = lambda state: None,
) -> BackfillState:
    """Poll until the scheduler marks the backfill completed (it checks every 30 s once no run is unfinished).

    `alive()` returns a message when a component died: waiting further would be pointless. Raises
    TimeoutError / RuntimeError with the last state, so the caller can show the logs.
    """
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        state = backfill_state(metadata_url, backfill_id)
        if state.summary() != last:
            last = state.summary()
            on_change(state)
        if state.completed:
            return state
        dead = alive()
        if dead:
            raise RuntimeError(f"{dead}; backfill {backfill_id}: {state.summary()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} not completed after {timeout:.0f} s: {state.summary()}")
        time.sleep(poll)


class LocalAirflow:
    """Airflow components as child processes (each in its own process group), logs in `log_dir`.

    A context manager: on exit every component's whole process group (LocalExecutor workers and task
    processes included) gets SIGTERM, then SIGKILL.
    """

    def __init__(self, env: Mapping[str, str], log_dir: Path, components: Sequence[str] = DEFAULT_COMPONENTS) -> None:
        self.env = dict(env)
        self.log_dir = Path(log_dir)
        self.components = tuple(components)
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> LocalAirflow:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in self.components:
                self._start(name)
                if name == "api-server":  # tasks fail if their supervisor cannot reach the Execution API
                    self.wait_api_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, name: str) -> None:
        argv, env = [airflow_command(), name], self.env
        if name.startswith(CELERY_WORKER):  # several workers on one machine: own name, no log server each
            worker = name.removeprefix("celery-")
            argv = [airflow_command(), "celery", "worker", "--celery-hostname", f"{worker}@%h", "--skip-serve-logs"]
            env = {**self.env, ENV_WORKER_NAME: worker}
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_api_ready(self, timeout: float = 120.0) -> None:
        url = f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}/execution/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = self.dead()
            if dead:
                raise RuntimeError(f"{dead}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the API server did not answer {url} within {timeout:.0f} s\n{self.log_tail()}")

    def dead(self) -> str | None:
        """A message naming a component that exited, else None."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                return f"airflow {name} exited with code {process.returncode} (log: {self.log_dir / (name + '.log')})"
        return None

    def log_tail(self, lines: int = 40) -> str:
        """The end of each component's log and of the newest task logs, for a failure message."""
        parts = []
        for name in self.processes:
            path = self.log_dir / f"{name}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            parts.append(f"--- {name} ({path}) ---\n" + "\n".join(text))
        base = Path(self.env.get("AIRFLOW_HOME", ".")) / "logs"
        task_logs = sorted(base.glob("dag_id=*/run_id=*/task_id=*/**/*.log"), key=lambda p: p.stat().st_mtime)[-3:]
        for path in task_logs:
            parts.append(
                f"--- task log {path.relative_to(base)} ---\n"
                + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            )
        return "\n".join(parts)

    def stop(self, grace: float = 20.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)  # stray workers/task processes of the group, if any
            process.wait(timeout=10)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # start_new_session: the group id is the child's pid


def run_backfill(
    dag_id: str,
    *,
    env: Mapping[str, str],
    log_dir: Path,
    timeout: float,
    components: Sequence[str] = DEFAULT_COMPONENTS,
    fast: bool = False,
    backfill_id: int | None = None,
    report: Callable[[str], None] = print,
) -> BackfillState:
    """Unpause `dag_id`, start the components and wait until the (latest) backfill is completed."""
    metadata_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    backfill_id = backfill_id if backfill_id is not None else latest_backfill_id(metadata_url, dag_id)
    if backfill_id is None:
        raise LookupError(f"no backfill of {dag_id}: run `airflow backfill create --dag-id {dag_id} ...` first")
    state = backfill_state(metadata_url, backfill_id)
    if not state.runs:  # e.g. --reprocess-behavior failed and every month already succeeded
        report(f"backfill {backfill_id}: no run to execute (every month it covers already has a run)")
        return state
    component_env = executor_env(
        env, api_port=free_port(), log_port=free_port(), jwt_secret=secrets.token_urlsafe(32), fast=fast
    )
    unpause = subprocess.run(
        [airflow_command(), "dags", "unpause", dag_id], env=component_env, capture_output=True, text=True, check=False
    )
    if unpause.returncode != 0:
        raise RuntimeError(f"airflow dags unpause {dag_id} failed:\n{(unpause.stdout + unpause.stderr)[-2000:]}")
    with LocalAirflow(component_env, log_dir, components) as airflow:
        report(f"backfill {backfill_id}: {', '.join(components)} running (logs: {log_dir})")
        try:
            return wait_for_backfill(
                metadata_url,
                backfill_id,
                timeout,
                alive=airflow.dead,
                on_change=lambda state: report(f"backfill {backfill_id}: {state.summary()}"),
            )
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n{airflow.log_tail()}") from None


def serve_ui(env: Mapping[str, str], log_dir: Path, port: int, report: Callable[[str], None] = print) -> int:
    """Run the UI stack (API server, scheduler, triggerer, dag-processor) until Ctrl-C or a component dies.

    The triggerer serves the IG approval gate (a deferred task); the dag-processor keeps the DAGs current
    and the home page's health panel green. Returns 0 on Ctrl-C, 1 when a component exited.
    """
    component_env = executor_env(env, api_port=port, log_port=free_port(), jwt_secret=secrets.token_urlsafe(32))
    home = Path(component_env.get("AIRFLOW_HOME", Path.home() / "airflow"))
    passwords = Path(
        component_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        or home / "simple_auth_manager_passwords.json.generated"
    )
    users = component_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the components as Ctrl-C does
    with LocalAirflow(component_env, log_dir, UI_COMPONENTS) as airflow:
        report(f"Airflow UI: http://127.0.0.1:{port}/  (components: {', '.join(UI_COMPONENTS)}; logs: {log_dir})")
        report(f"Sign in as one of {users} (user:role); passwords: {passwords}")
        report("Governance page: Browse > Disclosure governance (IG reports open for TREATMENT_MARTS_IG_REVIEWERS)")
        report("Trigger a month: DAGs > monthly_treatment_pipeline > Trigger. Ctrl-C stops everything.")
        try:
            while True:
                dead = airflow.dead()
                if dead:
                    report(f"error: {dead}\n{airflow.log_tail()}")
                    return 1
                time.sleep(1)
        except KeyboardInterrupt:
            report("stopping the Airflow components")
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m treatment_marts.ops.airflow_local",
        description="Execute a created Airflow backfill locally (API server + scheduler with LocalExecutor) "
        "until it completes. Uses the Airflow configuration of the environment (AIRFLOW_HOME, "
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN).",
    )
    parser.add_argument("--dag-id", default="monthly_treatment_pipeline")
    parser.add_argument("--backfill-id", type=int, help="default: the DAG's latest backfill")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds (default 6 h)")
    parser.add_argument(
        "--triggerer", action="store_true", help="also run the triggerer (needed when the IG approval gate is on)"
    )
    parser.add_argument("--log-dir", help="component logs (default $AIRFLOW_HOME/components)")
    parser.add_argument(
        "--ui",
        type=int,
        metavar="PORT",
        help="instead: serve the Airflow UI on PORT (API server, scheduler, triggerer, dag-processor) until Ctrl-C",
    )
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env:
        parser.error(
            "set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (and AIRFLOW_HOME) to the metadata database of the backfill"
        )
    home = Path(env.get("AIRFLOW_HOME", Path.home() / "airflow"))
    if args.ui:
        return serve_ui(env, Path(args.log_dir) if args.log_dir else home / "components", args.ui)
    components = (*DEFAULT_COMPONENTS, "triggerer") if args.triggerer else DEFAULT_COMPONENTS
    try:
        state = run_backfill(
            args.dag_id,
            env=env,
            log_dir=Path(args.log_dir) if args.log_dir else home / "components",
            timeout=args.timeout,
            components=components,
            backfill_id=args.backfill_id,
        )
    except (LookupError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = [r for r in state.runs if r.state != "success"]
    print(
        f"backfill {state.backfill_id} completed: {len(state.runs) - len(failed)} of {len(state.runs)} runs succeeded"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
