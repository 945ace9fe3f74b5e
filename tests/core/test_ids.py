"""Periods and run ids are checked once and then travel typed; the safe alphabet keeps them folder names."""

from __future__ import annotations

from datetime import datetime

import pytest

from treatment_marts.core.ids import InvalidIdentifier, Period, RunId, area_run_id, checked, new_run_id


@pytest.mark.parametrize("text", ["2024-3", "2024-13", "2024-00", "../2024-03", "2024-03\n", " 2024-03", "", None])
def test_a_period_is_a_calendar_month_or_refused(text: object) -> None:
    with pytest.raises(InvalidIdentifier, match="period must be YYYY-MM"):
        Period.parse(text)


def test_a_period_knows_its_neighbours_across_a_year_end() -> None:
    assert Period.parse("2024-01").minus(1) == "2023-12"
    assert Period.parse("2024-03").minus(14) == "2023-01"
    assert Period.parse("2023-12").minus(-1) == "2024-01"
    assert Period.of(datetime(2024, 3, 31, 23, 59)) == "2024-03"


@pytest.mark.parametrize("text", ["../etc", "a/b", "a..b", "-x", ".hidden", "x" * 121, "a b", ""])
def test_an_unsafe_run_id_is_refused_not_rewritten(text: str) -> None:
    with pytest.raises(InvalidIdentifier, match="not safe as a folder name"):
        RunId.parse(text)


@pytest.mark.parametrize(
    "text", ["manual__2024-03-01T00:00:00+00:00", "../../../../etc/cron.d/x", "a..b", "...", "-" * 200]
)
def test_an_external_run_id_is_made_safe(text: str) -> None:
    safe = RunId.sanitise(text)
    assert RunId.parse(safe) == safe  # sanitised ids pass the strict check
    assert "/" not in safe and ".." not in safe and len(safe) <= 120


def test_an_airflow_run_id_keeps_its_readable_form() -> None:
    assert RunId.sanitise("manual__2024-03-01T00:00:00+00:00") == "manual__2024-03-01T00_00_00_00_00"


def test_area_and_cli_run_ids_are_safe() -> None:
    run = RunId.parse("scheduled__2024-04-01")
    assert area_run_id(run, "Exborough") == "scheduled__2024-04-01.Exborough"
    assert area_run_id(run, "../Northton") == "scheduled__2024-04-01._Northton"
    assert RunId.parse(new_run_id()).startswith("cli_")


def test_checked_types_plain_strings_and_keeps_typed_values() -> None:
    period, run_id = checked("2024-03", "r1")
    assert isinstance(period, Period) and isinstance(run_id, RunId)
    assert checked(period, run_id)[0] is period
