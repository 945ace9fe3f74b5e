"""Shared test fixtures: a real, throwaway PostgreSQL server for the warehouse tests.

``postgres_url`` (session scope) starts one PostgreSQL server for the whole test session from the
server binaries on this machine (``initdb`` + ``postgres``), creates a database and yields
``postgresql+psycopg://postgres@127.0.0.1:<port>/<db>``; the server is stopped and its folder removed at
the end of the session. Nothing is mocked and nothing is skipped: if the binaries are missing the
fixture FAILS and says what to install (``apt-get install -y postgresql``; ``.ci/run`` does this, see
``scripts/ci_postgres.sh``).

How it runs the server:

* binaries: ``$TREATMENT_MARTS_PG_BIN`` if set, else ``pg_config --bindir``, else the newest
  ``/usr/lib/postgresql/<major>/bin`` (Debian/Ubuntu layout), else ``initdb`` on ``PATH``;
* PostgreSQL refuses to run as root: when the tests run as root, ``initdb`` and ``postgres`` run as the
  ``postgres`` system user (created by the Debian package) through ``subprocess``'s ``user=``/``group=``,
  in a temporary folder owned by that user;
* ``initdb -A trust`` (loopback only, tests only), ``listen_addresses=127.0.0.1`` on a free port, the
  unix socket in the temporary folder, durability off (``fsync=off``) for speed;
* ``$TREATMENT_MARTS_TEST_POSTGRES_URL`` (a ``postgresql+psycopg://`` URL with CREATEDB rights) makes the
  fixture use that server instead of starting one (e.g. a CI service container).

Helpers: :func:`create_database` gives a test its own empty database on the same server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

ENV_PG_BIN = "TREATMENT_MARTS_PG_BIN"
ENV_EXTERNAL_URL = "TREATMENT_MARTS_TEST_POSTGRES_URL"
INSTALL_HINT = (
    "install the PostgreSQL server: `apt-get install -y postgresql` (Debian/Ubuntu; .ci/run does this via "
    "scripts/ci_postgres.sh), or point TREATMENT_MARTS_PG_BIN at the folder holding initdb and postgres, or "
    "set TREATMENT_MARTS_TEST_POSTGRES_URL to a server the tests may create databases on"
)
STARTUP_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """The test PostgreSQL server cannot be started; the message says what to install or fix."""


def find_pg_bin(explicit: str | None = None) -> Path:
    """The folder holding ``initdb`` and ``postgres``; :class:`PostgresUnavailable` with a hint if none."""
    explicit = explicit if explicit is not None else os.environ.get(ENV_PG_BIN)
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
        versioned = glob.glob("/usr/lib/postgresql/*/bin")
        versioned.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
        candidates += [Path(p) for p in versioned]
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates) or "pg_config, /usr/lib/postgresql/*/bin, PATH"
    raise PostgresUnavailable(
        f"PostgreSQL server binaries (initdb, postgres) not found (looked in: {looked}); {INSTALL_HINT}"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user() -> dict:
    """subprocess keyword arguments that run a child as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "tests run as root and PostgreSQL refuses to run as root, but there is no `postgres` system user; "
            "`apt-get install -y postgresql` creates it (or `useradd --system postgres`)"
        ) from None
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": [],
        "env": {**os.environ, "HOME": str(Path(entry.pw_dir))},
    }


class PostgresServer:
    """One throwaway server: ``start()``, ``url(db)``, ``stop()``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="treatment-marts-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.startup_seconds = 0.0

    def _log_tail(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no server log)"

    def start(self) -> None:
        began = time.perf_counter()
        user = _as_user()
        if user:
            os.chown(self.root, user["user"], user["group"])
        os.chmod(self.root, 0o700)
        init = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            **user,
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed (exit {init.returncode}): {init.stderr.strip()[-1500:]}")
        for _attempt in range(3):
            self.port = free_port()
            log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - handed to the child process
            self.process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=50",
                    "-c",
                    "shared_buffers=32MB",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                **user,
            )
            log.close()
            if self._wait_ready():
                self.startup_seconds = time.perf_counter() - began
                return
            self.stop(remove=False)
        raise PostgresUnavailable(
            f"PostgreSQL did not start within {STARTUP_TIMEOUT_S}s; server log:\n{self._log_tail()}"
        )

    def _wait_ready(self) -> bool:
        import psycopg

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False  # exited (e.g. port taken between free_port() and bind): caller retries
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=2
                ):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        return False

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self, remove: bool = True) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: PostgreSQL "fast" shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server of ``server_url``; return its SQLAlchemy URL."""
    import psycopg
    import sqlalchemy as sa

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"unsafe database name {name!r}")
    url = sa.engine.make_url(server_url)
    with psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
    ) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return url.set(database=name).render_as_string(hide_password=False)
