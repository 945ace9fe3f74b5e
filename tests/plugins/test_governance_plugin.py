"""The governance page in a real browser, served by a real `airflow api-server` that loads our plugin.

Two periods are generated and published by the real pipeline; an isolated Airflow (own AIRFLOW_HOME,
SQLite metadata, SimpleAuthManager with two viewer accounts) is started with `plugins/` as its plugins
folder; headless Chromium (Debian's package, driven by Playwright) signs in on Airflow's own login page,
reads the listing, follows the IG report link and is checked for identifiers.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AREAS = ["Northton", "Southmoor"]
REVIEWER, ANALYST = "ig.reviewer", "analyst"


@dataclass
class Server:
    url: str
    passwords: dict[str, str]
    settings: Settings
    extracts: pd.DataFrame
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, *, data: dict | None = None, token: str | None = None) -> tuple[int, str, str]:
    """(status, final URL, body) of a GET (or JSON POST), following redirects."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.url, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, url, exc.read().decode("utf-8", "replace")


def _token(server: Server, user: str) -> str:
    status, _, body = _http(f"{server.url}/auth/token", data={"username": user, "password": server.passwords[user]})
    assert status == 201, body[:500]
    return json.loads(body)["access_token"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Two real, published periods.
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    inbox = tmp_path_factory.mktemp("inbox")
    frames = []
    for period, run_id in (("2024-02", "feb_run"), ("2024-03", "mar_run")):
        frame = generate_extract(period, clients=2000, areas=AREAS, seed=7)
        frames.append(frame)
        run_period(settings, period, write_extract(frame, inbox / f"{period}.csv"), run_id=run_id)

    # An isolated Airflow whose plugins folder is the repository's.
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "dags").mkdir()
    passwords = {REVIEWER: secrets.token_urlsafe(12), ANALYST: secrets.token_urlsafe(12)}
    (home / "passwords.json").write_text(json.dumps(passwords))
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{REVIEWER}:viewer,{ANALYST}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")]),
        "TREATMENT_MARTS_DATA_ROOT": str(settings.data_root),
        "TREATMENT_MARTS_IG_REVIEWERS": REVIEWER,
        "GX_ANALYTICS_ENABLED": "False",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    log_path = home / "api-server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, "api-server exited:\n" + log_path.read_text()[-3000:]
            try:
                if _http(f"{url}/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "api-server not up in 240 s:\n" + log_path.read_text()[-3000:]
            time.sleep(1)
        yield Server(url, passwords, settings, pd.concat(frames, ignore_index=True), log_path)
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=30)


def _identifiers(frame: pd.DataFrame) -> set[str]:
    needles = set(frame["client_ref"].dropna().astype(str)) | set(frame["partial_postcode"].dropna().astype(str))
    dobs = frame["date_of_birth"].dropna()
    return needles | set(dobs.dt.strftime("%Y-%m-%d")) | set(dobs.dt.strftime("%d/%m/%Y"))


def test_airflow_loads_the_plugin_and_mounts_the_page(server: Server) -> None:
    status, _, body = _http(f"{server.url}/api/v2/plugins", token=_token(server, REVIEWER))
    assert status == 200, body[:500]
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "treatment_marts_governance")
    assert [(a["name"], a["url_prefix"]) for a in plugin["fastapi_apps"]] == [("Disclosure governance", "/governance")]
    assert plugin["external_views"][0]["href"] == "/governance/"
    status, _, body = _http(f"{server.url}/api/v2/importErrors", token=_token(server, REVIEWER))
    assert status == 200 and "governance_plugin" not in body


def test_the_page_and_the_report_need_a_signed_in_airflow_user(server: Server) -> None:
    for path in ("/governance/", "/governance/report/2024-02/feb_run"):
        status, final_url, body = _http(server.url + path)
        assert "/auth/login" in final_url, (path, final_url)
        assert "feb_run" not in body and "RESTRICTED" not in body
    status, _, body = _http(f"{server.url}/governance/report/2024-02/feb_run", token="not-a-token")
    assert "RESTRICTED" not in body
    # Signed in, but not an IG reviewer: neither the page, nor the report, its log or the Data Docs.
    analyst = _token(server, ANALYST)
    for path in (
        "/",
        "/report/2024-02/feb_run/",
        "/report/2024-02/feb_run/suppression_log.csv",
        "/data-docs/index.html",
    ):
        status, _, body = _http(f"{server.url}/governance{path}", token=analyst)
        assert status == 403 and "RESTRICTED" not in body and "true_count" not in body, path
    reviewer = _token(server, REVIEWER)
    assert _http(f"{server.url}/governance/report/2024-02/..%2F..%2Fruns", token=reviewer)[0] == 404
    for page in ("run_manifest.json", "summary.json", "..%2Fsuppression_log.parquet"):
        assert _http(f"{server.url}/governance/report/2024-02/feb_run/{page}", token=reviewer)[0] == 404, page
    assert _http(f"{server.url}/governance/report/2024-03/feb_run/", token=reviewer)[0] == 404, "another period"
    assert _http(f"{server.url}/governance/data-docs/..%2F..%2F..%2Fpseudonym.key", token=reviewer)[0] == 404


def test_a_reviewer_downloads_the_suppression_log_as_csv(server: Server) -> None:
    status, _, body = _http(
        f"{server.url}/governance/report/2024-02/feb_run/suppression_log.csv", token=_token(server, REVIEWER)
    )
    assert status == 200
    log = pd.read_csv(io.StringIO(body))
    assert {"mart", "cell", "true_count", "suppression"} <= set(log.columns) and len(log) > 0


def test_an_ig_reviewer_reads_the_runs_and_opens_a_report_in_chromium(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (.ci/run installs it)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            # Not signed in: Airflow's own login page, then back to the governance page.
            page.goto(f"{server.url}/governance/")
            page.wait_for_url("**/auth/login**")
            page.locator("input[name='username']").fill(REVIEWER)
            page.locator("input[name='password']").fill(server.passwords[REVIEWER])
            page.locator("button[type='submit']").click()
            page.wait_for_url(f"{server.url}/governance/")

            rows = page.locator("tr.run")
            expect(rows).to_have_count(2)
            assert [rows.nth(i).get_attribute("data-period") for i in range(2)] == ["2024-03", "2024-02"]
            for run_id in ("mar_run", "feb_run"):
                row = page.locator(f"tr.run[data-run-id='{run_id}']")
                expect(row.locator("td.validation")).to_contain_text("passed")
                expect(row.locator("td.audit")).to_have_text("passed")
                expect(row.locator("td.publication")).to_have_text("current")
                expect(row.locator("td.approval")).to_contain_text("no gate record")
                expect(row.locator("td.suppression .total")).to_contain_text("cells suppressed")
                row.locator("td.suppression summary").click()
                expect(row.locator("tr.mart[data-mart='in_treatment_substance_area_sex']")).to_be_visible()
            page.screenshot(path=str(tmp_path / "governance.png"), full_page=True)
            listing = page.content()

            page.locator("tr.run[data-run-id='feb_run'] td.ig-report a.report").click()
            page.wait_for_url("**/governance/report/2024-02/feb_run/")
            expect(page.locator("h1")).to_have_text("IG review summary, period 2024-02")
            expect(page.locator("#group-area")).to_contain_text("Northton")
            expect(page.locator("body")).to_contain_text("RESTRICTED")
            expect(page.locator("body")).to_contain_text("Disclosure audit passed")
            page.screenshot(path=str(tmp_path / "ig_report.png"))  # the viewport: the report is long
            report = page.content()
            page.get_by_role("link", name="Every mart by area").click()
            expect(page.locator("#mart-by-area")).to_contain_text("unmet_need_area_substance")

            # The same page embedded in Airflow's own UI, from the navigation entry (external view).
            page.goto(f"{server.url}/plugin/disclosure-governance")
            embedded = page.frame_locator("iframe[src$='/governance/']")
            expect(embedded.locator("tr.run")).to_have_count(2, timeout=120_000)
        finally:
            browser.close()

    assert (tmp_path / "governance.png").stat().st_size > 10_000
    found = [n for n in _identifiers(server.extracts) if n in listing or n in report]
    assert not found, f"{len(found)} identifier value(s) shown"
    assert "true_count" not in listing
    server_log = server.log.read_text()
    assert not [n for n in _identifiers(server.extracts) if n in server_log]
