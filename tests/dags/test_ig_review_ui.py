"""The IG review in Airflow's own UI, end to end (issue 16's "done when").

A real Airflow (api-server, scheduler, triggerer and dag-processor: `ops.airflow_local`'s UI stack, LocalExecutor,
SQLite metadata) with the IG gate on and three SimpleAuthManager users: `admin` (the engineer), `ig_reviewer`
(role `user`, named in TREATMENT_MARTS_IG_REVIEWERS) and `analyst` (viewer). The admin triggers a two-area
month; Debian's Chromium, driven by Playwright, then plays the reviewer:

* the waiting gate (the task's Required Actions page) links the IG report, written before the decision;
  the report shows loss per area and per group; the reviewer approves without typing a reason, and the run
  publishes and succeeds;
* the admin who triggered the run cannot approve it (Airflow refuses: not an assigned user);
* a second month, rejected by the reviewer with a reason, ends the run failed and publishes nothing;
* the run's GX Data Docs, opened from the governance page, are styled with no request leaving the server;
* the validate task's log is under 40 lines.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from airflow_helpers import airflow_in, config_expecting, deployment_env

from treatment_marts.core.config import load_areas
from treatment_marts.core.settings import Settings
from treatment_marts.ops.airflow_local import UI_COMPONENTS, LocalAirflow, executor_env, free_port
from treatment_marts.ops.synth import generate_extract, write_extract

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
DAG_ID = "monthly_treatment_pipeline"
AREAS = ["Northton", "Southmoor"]
ADMIN, REVIEWER, ANALYST = "admin", "ig_reviewer", "analyst"


@dataclass
class Stack:
    url: str
    home: Path
    data_root: Path
    passwords: dict[str, str]
    shots: Path


def _call(url: str, *, method: str = "GET", body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _token(stack: Stack, user: str) -> str:
    status, body = _call(
        f"{stack.url}/auth/token", method="POST", body={"username": user, "password": stack.passwords[user]}
    )
    assert status in (200, 201), body
    return body["access_token"]


def _write_inbox(data_root: Path, period: str, seed: int) -> None:
    """One file per area, named after the area: the DAG maps land and validate over them."""
    codes = {a.name: a.code for a in load_areas(Settings.from_env(data_root=data_root).config_dir).areas}
    frame = generate_extract(period, clients=2000, areas=AREAS, seed=seed)
    for area in AREAS:
        write_extract(frame[frame["la_code"] == codes[area]], data_root / "inbox" / f"period={period}" / f"{area}.csv")


@contextmanager
def ui_stack(home: Path, data_root: Path, shots: Path) -> Iterator[Stack]:
    """The UI stack over its own AIRFLOW_HOME and data root, with two months in the inbox."""
    for period, seed in (("2024-03", 11), ("2024-04", 12)):
        _write_inbox(data_root, period, seed)
    # The deployment expects these two areas (operations.yaml): a month with both is complete, not partial.
    config = config_expecting(AREAS, home / "config")
    passwords = {user: secrets.token_urlsafe(12) for user in (ADMIN, REVIEWER, ANALYST)}
    (home / "passwords.json").write_text(json.dumps(passwords))
    port = free_port()
    env = deployment_env(
        home,
        data_root,
        TREATMENT_MARTS_IG_APPROVAL="true",
        TREATMENT_MARTS_IG_REVIEWERS=REVIEWER,
        TREATMENT_MARTS_DATA_ROOT=str(data_root),
        TREATMENT_MARTS_CONFIG_DIR=str(config),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN}:admin,{REVIEWER}:user,{ANALYST}:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        GX_ANALYTICS_ENABLED="False",
    )
    env["TREATMENT_MARTS_DATA_ROOT"] = str(data_root)  # the governance page reads the same data root
    env = executor_env(env, api_port=port, log_port=free_port(), jwt_secret=secrets.token_urlsafe(32), fast=True)
    airflow_in(env, "db", "migrate")
    airflow_in(env, "pools", "set", "warehouse", "4", "treatment-marts warehouse connections")
    airflow_in(env, "dags", "reserialize")
    airflow_in(env, "dags", "unpause", DAG_ID)
    with LocalAirflow(env, home / "components", UI_COMPONENTS):
        yield Stack(f"http://127.0.0.1:{port}", home, data_root, passwords, shots)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ui_stack(
        tmp_path_factory.mktemp("ui-airflow"), tmp_path_factory.mktemp("ui-data"), tmp_path_factory.mktemp("shots")
    ) as running:
        yield running


def _trigger(stack: Stack, period: str) -> str:
    status, body = _call(
        f"{stack.url}/api/v2/dags/{DAG_ID}/dagRuns",
        method="POST",
        body={"logical_date": f"{period}-01T00:00:00Z", "conf": {"period": period}},
        token=_token(stack, ADMIN),
    )
    assert status == 200, body
    return body["dag_run_id"]


def _task_state(stack: Stack, run_id: str, task_id: str, token: str) -> str | None:
    status, body = _call(f"{stack.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}", token=token)
    return body.get("state") if status == 200 else None


def _wait(stack: Stack, what: str, check, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_for_gate(stack: Stack, run_id: str) -> None:
    token = _token(stack, ADMIN)

    def waiting() -> bool:
        state = _task_state(stack, run_id, "ig_approval", token)
        assert state not in ("failed", "upstream_failed", "skipped"), f"the gate did not wait: {state}"
        return state in ("awaiting_input", "deferred")

    _wait(stack, f"ig_approval of {run_id} to wait for input", waiting)


def _run_state(stack: Stack, run_id: str) -> str:
    token = _token(stack, ADMIN)

    def finished() -> str | None:
        status, body = _call(f"{stack.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token=token)
        return body["state"] if status == 200 and body["state"] in ("success", "failed") else None

    return _wait(stack, f"{run_id} to finish", finished, timeout=180)


def _sign_in(page, stack: Stack, user: str) -> None:
    page.goto(f"{stack.url}/auth/login")
    page.locator("input[name='username']").fill(user)
    page.locator("input[name='password']").fill(stack.passwords[user])
    page.locator("button[type='submit']").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


def _gate_url(stack: Stack, run_id: str) -> str:
    return f"{stack.url}/dags/{DAG_ID}/runs/{run_id}/tasks/ig_approval/required_actions?map_index=-1"


def _validate_log_lines(stack: Stack, run_id: str) -> dict[str, int]:
    logs = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=validate_area"
    return {str(p.relative_to(logs)): len(p.read_text().splitlines()) for p in sorted(logs.rglob("*.log"))}


def _task_log_tail(stack: Stack, run_id: str, task_id: str, lines: int = 40) -> str:
    """The end of a task's logs, for an assertion message when the run went another way than the test."""
    logs = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    text = "\n".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*.log")))
    return "\n".join(text.splitlines()[-lines:]) or f"(no {task_id} log under {logs})"


def test_a_reviewer_decides_on_the_evidence_in_the_airflow_ui(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (.ci/run installs it)"
    approved_run = _trigger(stack, "2024-03")
    _wait_for_gate(stack, approved_run)
    assert not (stack.data_root / "public" / "releases").exists(), "nothing is public while the gate waits"

    # The engineer who triggered the run cannot approve it: Airflow refuses, whatever the UI shows.
    status, body = _call(
        f"{stack.url}/api/v2/dags/{DAG_ID}/dagRuns/{approved_run}/taskInstances/ig_approval/-1/hitlDetails",
        method="PATCH",
        body={"chosen_options": ["Approve"], "params_input": {"comment": None}},
        token=_token(stack, ADMIN),
    )
    assert status == 403, body

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # In the UI too: the admin sees the gate, but Airflow answers the Approve click with Access Denied.
            engineer = browser.new_context(viewport={"width": 1400, "height": 1000})
            admin_page = engineer.new_page()
            admin_page.set_default_timeout(60_000)
            _sign_in(admin_page, stack, ADMIN)
            admin_page.goto(_gate_url(stack, approved_run))
            with admin_page.expect_response(lambda r: "hitlDetails" in r.url and r.request.method == "PATCH") as answer:
                admin_page.locator("[data-testid=hitl-option-Approve]").click()
            assert answer.value.status == 403
            expect(admin_page.get_by_text("Access Denied").first).to_be_visible()
            admin_page.screenshot(path=str(stack.shots / "gate_admin_refused.png"))
            engineer.close()
            assert _task_state(stack, approved_run, "ig_approval", _token(stack, ADMIN)) == "awaiting_input"
            assert not list(stack.data_root.glob("restricted/runs/*/approval.json")), "a refused click records nothing"

            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(60_000)
            _sign_in(page, stack, REVIEWER)
            page.goto(_gate_url(stack, approved_run))
            report_link = page.get_by_role("link", name="Open the IG report")
            expect(report_link).to_be_visible()
            page.screenshot(path=str(stack.shots / "gate.png"), full_page=True)

            # The report, opened from the waiting gate: per-area and per-group loss.
            with context.expect_page() as opened:
                report_link.click(modifiers=["Shift"])  # a new window, the gate stays open
            report = opened.value
            report.wait_for_load_state()
            expect(report.locator("h1")).to_have_text("IG review summary, period 2024-03")
            for table in ("#group-area", "#group-sex", "#group-ethnic-group", "#group-religion"):
                expect(report.locator(table)).to_be_visible()
            for area in AREAS:
                expect(report.locator("#group-area")).to_contain_text(area)
            expect(report.locator("#publication")).to_contain_text("waiting for the IG decision")
            report.screenshot(path=str(stack.shots / "report.png"), full_page=True)
            report.close()

            # The governance page shows the run waiting, with the same report linked.
            page.goto(f"{stack.url}/governance/")
            waiting = page.locator("tr.run", has_text="2024-03")
            expect(waiting.locator("td.approval")).to_contain_text("awaiting IG decision")
            expect(waiting.locator("td.ig-report a.report")).to_be_visible()
            page.goto(_gate_url(stack, approved_run))

            # Approve without typing a reason.
            approve = page.locator("[data-testid=hitl-option-Approve]")  # Airflow's own test id for the option
            expect(approve).to_be_enabled()
            approve.click()
            assert _run_state(stack, approved_run) == "success"
            (record_path,) = stack.data_root.glob("restricted/runs/*/approval.json")
            record = json.loads(record_path.read_text())
            assert record["by"] == REVIEWER and record["decision"] == "Approve" and record["comment"] == ""
            assert (stack.data_root / "public" / "releases" / "period=2024-03" / "manifest.json").exists()

            # A second month, rejected with a reason: the run ends failed and nothing of it is published.
            rejected_run = _trigger(stack, "2024-04")
            _wait_for_gate(stack, rejected_run)
            page.goto(_gate_url(stack, rejected_run))
            # The Reason field (the gate's `comment` param; its label is not tied to the input, so by its id)
            page.locator("#element_comment").fill("the religion table withholds too much; coarser groups first")
            page.locator("[data-testid=hitl-option-Reject]").click()
            assert _run_state(stack, rejected_run) == "failed"
            assert not (stack.data_root / "public" / "releases" / "period=2024-04").exists()
            token = _token(stack, ADMIN)
            assert _task_state(stack, rejected_run, "ig_approval", token) == "failed"
            assert _task_state(stack, rejected_run, "publish", token) == "upstream_failed"
            rejected = [json.loads(p.read_text()) for p in stack.data_root.glob("restricted/runs/*/approval.json")]
            assert {(r["decision"], r["by"]) for r in rejected} == {("Approve", REVIEWER), ("Reject", REVIEWER)}, (
                _task_log_tail(stack, rejected_run, "ig_approval")
            )
            assert "coarser groups first" in next(r["comment"] for r in rejected if r["decision"] == "Reject")

            # The governance page links the run's Data Docs: styled, and nothing loaded from elsewhere.
            page.goto(f"{stack.url}/governance/")
            row = page.locator("tr.run", has_text="2024-04")
            expect(row.locator("td.approval")).to_contain_text("rejected")
            outside: list[str] = []
            page.on(
                "request",
                lambda request: (
                    outside.append(request.url) if not request.url.startswith((stack.url, "data:", "blob:")) else None
                ),
            )
            page.locator("tr.run", has_text="2024-03").locator("a.data-docs").first.click()
            page.wait_for_load_state("networkidle")
            font = page.evaluate("getComputedStyle(document.body).fontFamily")
            page.screenshot(path=str(stack.shots / "data_docs.png"), full_page=True)
            assert "/governance/data-docs/validations/" in page.url
            assert "Times" not in font, f"unstyled Data Docs (font {font!r})"
            # the validation listed: bootstrap-table's JavaScript drew the expectations' rows
            expect(page.locator("body")).to_contain_text("Expectation Validation Result")
            expect(page.locator("body")).to_contain_text("Must have exactly these columns")
            assert page.locator("table tbody tr").count() > 20
            assert outside == [], f"requests left the server: {outside}"
        finally:
            browser.close()

    lines = _validate_log_lines(stack, approved_run)
    assert len(lines) == len(AREAS) and max(lines.values()) < 40, lines
