"""operations.yaml is validated on load; the inbox splits into areas; late data and the approval policy."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from treatment_marts.core.config import ConfigError, load_areas
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.ingest.inbox import COMBINED_UNIT, area_units, foreign_area_codes
from treatment_marts.ops.policy import (
    ApprovalPolicy,
    ArrivalPolicy,
    approval_required,
    arrival_status,
    due_date,
    expected_period,
    load_operations,
)

CONFIG = REPO_DIR / "include" / "config"
AREAS = load_areas(CONFIG)


def touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("x")
    return folder


def test_shipped_operations_policy_loads_and_names_known_areas() -> None:
    ops = load_operations(CONFIG)
    assert ops.retention.raw_months == 24
    assert ops.arrival is not None and 1 <= ops.arrival.due_day <= 28
    assert set(ops.arrival.expected_areas) <= {a.name for a in AREAS.areas}
    assert ops.approval.environments["production"] is True


@pytest.mark.parametrize(
    "change, message",
    [
        (("due_day: 10", "due_day: 31"), "due_day"),
        (("expected_areas: [Exborough,", "expected_areas: [Atlantis, Exborough,"), "unknown area(s) ['Atlantis']"),
        (("  default: false", "  default: maybe"), "default"),
        (("  response_timeout_hours: 72", "  response_timeout_hours: 72\n  approvers: [x]"), "approvers"),
    ],
)
def test_a_mistake_in_operations_yaml_fails_on_load(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    text = (config / "operations.yaml").read_text()
    assert change[0] in text
    (config / "operations.yaml").write_text(text.replace(change[0], change[1]))
    with pytest.raises(ConfigError, match="operations.yaml") as error:
        load_operations(config)
    assert message in str(error.value)


def test_one_file_per_area_by_name_or_code_any_case(tmp_path: Path) -> None:
    inbox = touch(tmp_path, "exborough.csv", "E06900002.parquet", "Little Haven.xlsx", ".hidden.csv", "notes.txt")
    units = area_units(inbox, AREAS)
    assert [(u["unit"], u["area_code"]) for u in units] == [
        ("Exborough", "E08900001"),
        ("Little Haven", AREAS.by_name("Little Haven").code),
        ("Northton", "E06900002"),
    ]
    assert [Path(p).name for u in units for p in u["paths"]] == [
        "exborough.csv",
        "Little Haven.xlsx",
        "E06900002.parquet",
    ]


def test_a_combined_file_is_one_unit_and_comes_last(tmp_path: Path) -> None:
    assert area_units(touch(tmp_path / "a", "extract.csv"), AREAS) == [
        {"unit": COMBINED_UNIT, "area_code": None, "paths": [str(tmp_path / "a" / "extract.csv")]}
    ]
    mixed = area_units(touch(tmp_path / "b", "national.csv", "Northton.csv"), AREAS)
    assert [u["unit"] for u in mixed] == ["Northton", COMBINED_UNIT]
    single = area_units(tmp_path / "b" / "Northton.csv", AREAS)
    assert [u["unit"] for u in single] == ["Northton"]


def test_two_files_for_one_area_or_an_empty_inbox_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two extract files for area Northton"):
        area_units(touch(tmp_path / "a", "Northton.csv", "E06900002.parquet"), AREAS)
    with pytest.raises(FileNotFoundError, match="no extract files"):
        area_units(touch(tmp_path / "b", "readme.txt"), AREAS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        area_units(tmp_path / "missing", AREAS)


def test_foreign_area_codes_counts_other_and_missing_codes() -> None:
    assert foreign_area_codes(["E1", "E1", "E2", None], "E1") == {"E2": 1, "missing": 1}
    assert foreign_area_codes(["E1"], "E1") == {}


def test_due_date_is_in_the_following_month() -> None:
    assert due_date("2024-03", 10) == date(2024, 4, 10)
    assert due_date("2024-12", 5) == date(2025, 1, 5)
    assert expected_period(date(2024, 4, 12)) == "2024-03" and expected_period(date(2025, 1, 2)) == "2024-12"


def test_arrival_is_late_only_after_the_due_day(tmp_path: Path) -> None:
    policy = ArrivalPolicy(due_day=10, expected_areas=["Exborough", "Northton", "Southmoor"])
    touch(tmp_path / "period=2024-03", "Exborough.csv")
    on_time = arrival_status(tmp_path, "2024-03", policy, AREAS, today=date(2024, 4, 10))
    assert on_time == {
        "period": "2024-03",
        "due": "2024-04-10",
        "arrived": ["Exborough"],
        "missing": ["Northton", "Southmoor"],
        "late": False,
    }
    assert arrival_status(tmp_path, "2024-03", policy, AREAS, today=date(2024, 4, 11))["late"] is True
    nothing = arrival_status(tmp_path, "2024-05", policy, AREAS, today=date(2024, 7, 1))
    assert nothing["missing"] == ["Exborough", "Northton", "Southmoor"] and nothing["late"]
    touch(tmp_path / "period=2024-03", "national.csv")  # a combined file counts for every area
    assert arrival_status(tmp_path, "2024-03", policy, AREAS, today=date(2024, 4, 11))["late"] is False


def test_approval_policy_per_environment_with_an_override() -> None:
    policy = ApprovalPolicy(default=False, environments={"production": True})
    assert approval_required(policy, {}) is False
    assert approval_required(policy, {"TREATMENT_MARTS_ENVIRONMENT": "production"}) is True
    assert (
        approval_required(policy, {"TREATMENT_MARTS_ENVIRONMENT": "production", "TREATMENT_MARTS_IG_APPROVAL": "false"})
        is False
    )
    assert approval_required(policy, {"TREATMENT_MARTS_IG_APPROVAL": "TRUE"}) is True
    with pytest.raises(ValueError, match="true or false"):
        approval_required(policy, {"TREATMENT_MARTS_IG_APPROVAL": "perhaps"})
