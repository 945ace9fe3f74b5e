"""Shared test fixtures. The PostgreSQL helpers live in tests/postgres_server.py (a uniquely named module,
so test files can import them without clashing with tests/dags/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from postgres_server import ENV_EXTERNAL_URL, PostgresServer, PostgresUnavailable, create_database, find_pg_bin


def _report(request: pytest.FixtureRequest, line: str) -> None:
    """Show a line on the terminal even while output is being captured."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)
    else:
        reporter.write_line("\n" + line)


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on a real PostgreSQL server for this test session (module docstring)."""
    external = os.environ.get(ENV_EXTERNAL_URL)
    if external:
        yield create_database(external)
        return
    try:
        server = PostgresServer(find_pg_bin())
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
    except PostgresUnavailable as exc:
        server.stop()
        pytest.fail(str(exc), pytrace=False)
    _report(
        request,
        f"[postgres_url] PostgreSQL from {server.bin_dir} started in {server.startup_seconds:.2f}s on port {server.port}",
    )
    try:
        yield create_database(server.url("postgres"), "treatment_marts_test")
    finally:
        server.stop()
