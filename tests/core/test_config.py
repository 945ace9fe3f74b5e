"""Configuration is validated on load: a mistake names the file and the field, before any data is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from treatment_marts.core.config import ConfigError, load_areas, load_rules, ruleset_hash
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts import dimension_levels, load_marts

CONFIG = REPO_DIR / "include" / "config"


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target)
    return target


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_shipped_configuration_is_valid() -> None:
    rules = load_rules(CONFIG)
    areas = load_areas(CONFIG)
    levels = dimension_levels(rules, areas)
    marts = load_marts(CONFIG, set(levels))
    assert rules.disclosure.k == 3
    assert {"Exborough", "Northton"} <= {a.name for a in areas.areas}
    assert marts.marts[0].name == "in_treatment_substance_area_sex"
    assert levels["age_band"][0] == "18-24" and levels["age_band"][-1] == "65+"


def test_an_unmapped_code_in_a_collapse_is_named(config_copy: Path) -> None:
    edit(config_copy / "rules.yaml", lambda d: d["collapses"]["ethnicity_group"]["groups"]["White"].remove("C"))
    with pytest.raises(ConfigError, match=r"collapse ethnicity_group .*unmapped \['C'\]"):
        load_rules(config_copy)


def test_age_bands_must_be_contiguous(config_copy: Path) -> None:
    edit(config_copy / "rules.yaml", lambda d: d["age_bands"]["schemes"]["five_year"]["bands"].pop(2))
    with pytest.raises(ConfigError, match="not contiguous"):
        load_rules(config_copy)


def test_threshold_must_be_positive(config_copy: Path) -> None:
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(k=0))
    with pytest.raises(ConfigError, match="disclosure.k"):
        load_rules(config_copy)


def test_cleanup_budget_is_validated(config_copy: Path) -> None:
    from treatment_marts.disclosure.protect import DEFAULT_CLEANUP_AUDITS

    assert load_rules(CONFIG).disclosure.cleanup_audits == DEFAULT_CLEANUP_AUDITS  # the shipped budget
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(cleanup_audits=-1))
    with pytest.raises(ConfigError, match="disclosure.cleanup_audits"):
        load_rules(config_copy)
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(cleanup_audits=0))
    assert load_rules(config_copy).disclosure.cleanup_audits == 0  # off: the greedy pattern as it is


def test_complementary_choice_is_one_of_the_named_methods(config_copy: Path) -> None:
    assert load_rules(CONFIG).disclosure.complements == "greedy"  # the shipped default (issue 14's evidence)
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(complements="fastest"))
    with pytest.raises(ConfigError, match="disclosure.complements"):
        load_rules(config_copy)
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(complements="optimal"))
    assert load_rules(config_copy).disclosure.complements == "optimal"


def test_substance_mix_must_be_a_distribution(config_copy: Path) -> None:
    edit(config_copy / "areas.yaml", lambda d: d["areas"][0]["substance_mix"].update(alcohol_only=0.9))
    with pytest.raises(ConfigError, match="substance_mix sums to"):
        load_areas(config_copy)


def test_mart_with_unknown_dimension_or_population(config_copy: Path) -> None:
    edit(config_copy / "marts.yaml", lambda d: d["marts"][0].update(dimensions=["area", "shoe_size"], percent_of=None))
    with pytest.raises(ConfigError, match="unknown dimension.*shoe_size"):
        load_marts(config_copy, {"area", "sex"})
    edit(config_copy / "marts.yaml", lambda d: d["marts"][0].update(population="everyone"))
    with pytest.raises(ConfigError, match="unknown population 'everyone'"):
        load_marts(config_copy)


def test_mart_names_must_be_safe_sql_identifiers(config_copy: Path) -> None:
    edit(config_copy / "marts.yaml", lambda d: d["marts"][0].update(name="marts; drop table x"))
    with pytest.raises(ConfigError, match="name"):
        load_marts(config_copy)


def test_ruleset_hash_changes_with_the_rules(config_copy: Path) -> None:
    before = ruleset_hash(config_copy)
    assert before == ruleset_hash(CONFIG)
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(k=4))
    assert ruleset_hash(config_copy) != before


def test_ruleset_hash_covers_the_reference_data_marts_read(config_copy: Path) -> None:
    """The unmet-need mart divides by reference/prevalence.csv: new estimates are new published figures."""
    before = ruleset_hash(config_copy)
    prevalence = config_copy / "reference" / "prevalence.csv"
    assert prevalence.exists()
    prevalence.write_text(prevalence.read_text() + "\n")
    assert ruleset_hash(config_copy) != before


# --- strict numbers and the K floor (issue 18 item 3) -------------------------------------------------


@pytest.mark.parametrize("value", [True, False, 3.0, "3", "three"])
def test_k_must_be_a_plain_integer_not_a_bool_float_or_string(config_copy: Path, value: object) -> None:
    """`k: true` is an int to pydantic's lax mode (k = 1): cells of 2 and 3 would be published."""
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(k=value))
    with pytest.raises(ConfigError, match="disclosure.k"):
        load_rules(config_copy)


@pytest.mark.parametrize(
    ("section", "change"),
    [
        ("cleanup_audits", lambda d: d["disclosure"].update(cleanup_audits=True)),
        ("top_code", lambda d: d["age_bands"]["schemes"]["five_year"].update(top_code="65")),
        ("bands", lambda d: d["age_bands"]["schemes"]["five_year"]["bands"][0].__setitem__(0, 18.0)),
        (
            "time_in_treatment",
            lambda d: d["time_in_treatment"]["bands"].update({next(iter(d["time_in_treatment"]["bands"])): False}),
        ),
    ],
)
def test_every_numeric_rule_is_strict(config_copy: Path, section: str, change) -> None:
    edit(config_copy / "rules.yaml", change)
    with pytest.raises(ConfigError, match=section):
        load_rules(config_copy)


def test_area_client_counts_and_mixes_are_strict(config_copy: Path) -> None:
    edit(config_copy / "areas.yaml", lambda d: d["areas"][0].update(clients="300"))
    with pytest.raises(ConfigError, match="clients"):
        load_areas(config_copy)


@pytest.mark.parametrize("k", [1, 2])
def test_k_below_the_floor_is_refused_without_an_override(config_copy: Path, k: int) -> None:
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(k=k))
    with pytest.raises(ConfigError, match=r"below the floor of 3.*k_floor_override"):
        load_rules(config_copy)


def test_k_below_the_floor_with_an_override_loads_and_is_logged(
    config_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    edit(
        config_copy / "rules.yaml",
        lambda d: d["disclosure"].update(k=2, k_floor_override="IG board 2026-11 approved K2 for the pilot"),
    )
    with caplog.at_level("WARNING", logger="treatment_marts.core.config"):
        rules = load_rules(config_copy)
    assert rules.disclosure.k == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warnings and "k = 2" in warnings[0].getMessage() and "IG board 2026-11" in warnings[0].getMessage()


def test_an_empty_override_reason_is_refused(config_copy: Path) -> None:
    edit(config_copy / "rules.yaml", lambda d: d["disclosure"].update(k=2, k_floor_override="  "))
    with pytest.raises(ConfigError, match="k_floor_override"):
        load_rules(config_copy)


def test_the_shipped_k_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="treatment_marts.core.config"):
        assert load_rules(CONFIG).disclosure.k == 3
    assert not caplog.records


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["retention"].update(raw_months=True), "raw_months"),
        (lambda d: d["arrival"].update(due_day="10"), "due_day"),
        (lambda d: d["approval"].update(response_timeout_hours=72.0), "response_timeout_hours"),
        (lambda d: d["input_limits"].update(max_file_mb=True), "max_file_mb"),
        (lambda d: d["input_limits"]["xlsx"].update(max_compression_ratio="100"), "max_compression_ratio"),
    ],
)
def test_operations_numbers_are_strict(config_copy: Path, change, field: str) -> None:
    from treatment_marts.core.safety import load_input_limits
    from treatment_marts.ops.policy import load_operations

    edit(config_copy / "operations.yaml", change)
    with pytest.raises(ConfigError, match=field):
        load_operations(config_copy)
    if "input_limits" in field or field.startswith("max_"):
        with pytest.raises(ConfigError, match=field):
            load_input_limits(config_copy)
