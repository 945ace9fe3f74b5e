"""Month-over-month checks flag export faults and say when there is no baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.config import load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.validation.drift import compare_months, flagged, load_validation_policy, previous_period

CONFIG = REPO_DIR / "include" / "config"
RULES = load_rules(CONFIG)
POLICY = load_validation_policy(CONFIG).month_over_month


def month(
    n_opiate: int, n_alcohol: int, area: str = "E08900001", open_ids: range | None = None, first_id: int = 0
) -> pd.DataFrame:
    n = n_opiate + n_alcohol
    ids = [f"E{first_id + i}" for i in range(n)]
    return pd.DataFrame(
        {
            "la_code": [area] * n,
            "agency_code": ["N0001"] * n,
            "episode_id": ids,
            "drug_1": ["1011"] * n_opiate + ["7000"] * n_alcohol,
            "drug_2": ["9996"] * n,
            "drug_3": ["9997"] * n,
            "discharge_date": pd.Series([pd.NaT] * n, dtype="datetime64[ms]"),
            "ethnicity": ["A"] * n,
        }
    )


def test_first_month_has_no_baseline() -> None:
    findings = compare_months(month(100, 100), None, POLICY, RULES, "2024-03")
    assert [f.status for f in findings] == ["no_baseline"]
    assert "first month, no baseline" in findings[0].message and "2024-02" in findings[0].message


def test_a_similar_month_passes() -> None:
    findings = compare_months(month(100, 100), month(98, 101), POLICY, RULES, "2024-03")
    assert not flagged(findings), [f.message for f in flagged(findings)]


def test_row_drop_mix_shift_missing_column_and_vanished_episodes_are_flagged() -> None:
    previous = month(100, 100)
    current = month(40, 100)  # 60 opiate episodes gone without a discharge, mix shifted, rows -30%
    current.loc[current.index[:50], "ethnicity"] = None
    found = {f.check: f for f in flagged(compare_months(current, previous, POLICY, RULES, "2024-03"))}
    assert set(found) == {"row_count", "substance_mix", "missing_values", "vanished_without_discharge"}
    assert "140 rows vs 200" in found["row_count"].message
    assert "column ethnicity" in found["missing_values"].message
    assert found["vanished_without_discharge"].observed == 60


def test_previous_period_wraps_the_year() -> None:
    assert previous_period("2024-01") == "2023-12"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("month_over_month", "row_count_change", True),
        ("month_over_month", "min_rows_for_shares", "50"),
        ("month_over_month", "min_rows_for_shares", 50.0),
        ("quarantine", "enabled", "false"),
        ("quarantine", "max_share", "0.02"),
    ],
)
def test_validation_policy_numbers_and_switches_are_strict(
    tmp_path: Path, section: str, key: str, value: object
) -> None:
    import shutil

    import yaml

    from treatment_marts.core.config import ConfigError

    config = tmp_path / "config"
    shutil.copytree(REPO_DIR / "include" / "config", config)
    data = yaml.safe_load((config / "validation.yaml").read_text())
    data.setdefault(section, {})[key] = value
    (config / "validation.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=key):
        load_validation_policy(config)


def test_a_la_code_that_is_not_an_la_code_is_never_printed() -> None:
    """A shifted column puts client references under la_code: the finding must not quote them."""
    findings = compare_months(month(10, 10, area="CANARYREF01"), None, POLICY, RULES, "2024-03")
    assert findings and all("CANARYREF01" not in f.message and f.area != "CANARYREF01" for f in findings)
    assert "not an LA code" in findings[0].message
