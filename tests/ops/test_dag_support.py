"""DAG glue: params cannot send the restricted data to a warehouse the deployment does not allow."""

from __future__ import annotations

import pytest

from treatment_marts.ops.dag_support import WarehouseNotAllowed, check_warehouse_param

ALLOWED = {
    "TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS": "postgresql+psycopg://tm@warehouse/warehouse, sqlite:////data/warehouse.db"
}


def test_a_listed_warehouse_is_accepted() -> None:
    assert check_warehouse_param("sqlite:////data/warehouse.db", ALLOWED) == "sqlite:////data/warehouse.db"


def test_an_unlisted_warehouse_is_refused_without_echoing_it() -> None:
    with pytest.raises(WarehouseNotAllowed) as err:
        check_warehouse_param("postgresql://mallory:s3cret@evil.example/db", ALLOWED)
    assert "evil.example" not in str(err.value) and "s3cret" not in str(err.value)
    assert "TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS" in str(err.value)


def test_no_param_uses_the_configured_warehouse_and_no_list_allows_any() -> None:
    assert check_warehouse_param(None, ALLOWED) is None
    assert check_warehouse_param("sqlite:///x.db", {}) == "sqlite:///x.db"


def test_a_dag_run_processes_the_month_of_its_logical_date_unless_the_param_says_otherwise() -> None:
    from datetime import datetime

    from treatment_marts.ops.dag_support import run_period

    assert run_period({}, datetime(2024, 3, 1), None) == "2024-03"
    assert run_period({}, None, datetime(2024, 2, 1)) == "2024-02"
    assert run_period({"period": "2023-11"}, datetime(2024, 3, 1), None) == "2023-11"
    with pytest.raises(ValueError, match="period must be YYYY-MM"):
        run_period({"period": "2024-3"}, None, None)


def test_the_run_id_is_airflows_in_the_safe_alphabet_and_the_inbox_is_the_periods(tmp_path) -> None:
    from treatment_marts.core.ids import Period
    from treatment_marts.core.settings import Settings
    from treatment_marts.ops.dag_support import extract_location, run_id_of

    assert run_id_of("manual__2024-03-01T00:00:00+00:00") == "manual__2024-03-01T00_00_00_00_00"
    settings = Settings.from_env(data_root=tmp_path)
    assert extract_location(settings, Period("2024-03"), None) == tmp_path / "inbox" / "period=2024-03"
    assert str(extract_location(settings, Period("2024-03"), "/elsewhere/x.csv")) == "/elsewhere/x.csv"


def test_data_errors_fail_at_once_and_io_errors_are_retried() -> None:
    from treatment_marts.ingest.land import ExtractError
    from treatment_marts.ops.dag_support import fails_at_once

    assert fails_at_once(ExtractError("bad file")) and fails_at_once(ValueError("bad period"))
    assert not fails_at_once(OSError("disk full")) and not fails_at_once(ConnectionError("warehouse down"))


def test_a_run_dated_in_an_unfinished_month_processes_the_last_complete_month() -> None:
    """The trigger form's default logical date is now: its month has not closed, its extracts are not in."""
    from datetime import date, datetime

    from treatment_marts.ops.dag_support import run_period

    today = date(2026, 12, 1)
    assert run_period({}, datetime(2026, 12, 1, 13, 5), None, today=today) == "2026-11"
    assert run_period({}, datetime(2027, 2, 1), None, today=today) == "2026-11"
    assert run_period({}, datetime(2026, 11, 1), None, today=today) == "2026-11"  # the scheduled run
    assert run_period({"period": "2026-12"}, None, None, today=today) == "2026-12"  # said explicitly


def _decision(tmp_path, monkeypatch, chosen: str, by: str, triggered_by: str | None, comment: str = ""):
    from treatment_marts.core.ids import Period, RunId
    from treatment_marts.core.settings import Settings
    from treatment_marts.ops.dag_support import RunContext
    from treatment_marts.ops.dag_tasks import record_ig_decision

    monkeypatch.setenv("TREATMENT_MARTS_IG_REVIEWERS", "ig.reviewer, second.reviewer")
    run = RunContext(Settings.from_env(data_root=tmp_path / "data"), Period.parse("2024-03"), RunId.parse("run_1"))
    event = {
        "chosen_options": [chosen],
        "responded_by_user": {"id": by, "name": by},
        "responded_at": "2026-12-01T12:00:00+00:00",
        "params_input": {"comment": comment},
    }
    return record_ig_decision(run, event, "Reject", triggered_by)


def test_an_ig_reviewer_approves_without_a_reason(tmp_path, monkeypatch) -> None:
    assert _decision(tmp_path, monkeypatch, "Approve", "ig.reviewer", triggered_by="engineer") is None


def test_the_user_who_triggered_the_run_cannot_approve_it(tmp_path, monkeypatch) -> None:
    import json

    problem = _decision(tmp_path, monkeypatch, "Approve", "ig.reviewer", triggered_by="ig.reviewer")
    assert problem and "separation of duties" in problem
    record = json.loads((tmp_path / "data" / "restricted" / "runs" / "run_1" / "approval.json").read_text())
    assert record["decision"].startswith("refused approval") and record["by"] == "ig.reviewer"


def test_only_a_named_ig_reviewer_can_approve(tmp_path, monkeypatch) -> None:
    problem = _decision(tmp_path, monkeypatch, "Approve", "admin", triggered_by="engineer")
    assert problem and "not an IG reviewer" in problem


def test_a_rejection_is_a_failure_with_its_reason(tmp_path, monkeypatch) -> None:
    problem = _decision(tmp_path, monkeypatch, "Reject", "ig.reviewer", "engineer", comment="too thin")
    assert problem == "IG reviewer ig.reviewer rejected the release of 2024-03: too thin"
    assert "no reason given" in _decision(tmp_path, monkeypatch, "Reject", "ig.reviewer", "engineer")


def test_the_gate_is_assigned_to_the_reviewers(monkeypatch) -> None:
    from treatment_marts.ops.dag_support import ig_reviewer_users

    monkeypatch.setenv("TREATMENT_MARTS_IG_REVIEWERS", "ig.reviewer")
    assert ig_reviewer_users() == [{"id": "ig.reviewer", "name": "ig.reviewer"}]
    monkeypatch.delenv("TREATMENT_MARTS_IG_REVIEWERS")
    assert ig_reviewer_users() is None


def test_a_timed_out_gate_is_never_an_approval(tmp_path, monkeypatch) -> None:
    """The resume after the response timeout carries an error and no chosen option: a refusal, recorded."""
    import json

    from treatment_marts.core.ids import Period, RunId
    from treatment_marts.core.settings import Settings
    from treatment_marts.ops.dag_support import RunContext
    from treatment_marts.ops.dag_tasks import record_ig_decision

    monkeypatch.setenv("TREATMENT_MARTS_IG_REVIEWERS", "ig.reviewer")
    run = RunContext(Settings.from_env(data_root=tmp_path / "data"), Period.parse("2024-03"), RunId.parse("run_1"))
    event = {"error": "The timeout has passed", "error_type": "timeout"}
    problem = record_ig_decision(run, event, "Reject", "engineer")
    assert problem and "no IG decision" in problem and "timeout" in problem
    record = json.loads((tmp_path / "data" / "restricted" / "runs" / "run_1" / "approval.json").read_text())
    assert record["decision"] == "no decision (timeout)" and record["by"] == "unknown"
