"""Reference check (issue 5): a synthetic month built to seed 000 Table 1 reproduces its published
percentages through the real pipeline (recode, every mart, suppression, audit), read from the published mart.

Tolerance: exact on the rounded value. Seed 000 publishes whole percentages, rounded half up, whose rows sum
to 99-101, so the oracle is "our percentage rounds half up to the published integer" (equivalently, lies
within 0.5 points of it), never a row sum. The dataset is built to the verified integer allocation of the
domain notes §5.1, so the underlying counts are also checked exactly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.config import ConfigError, load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR, Settings
from treatment_marts.deidentify.pseudonymise import ENV_KEY, pseudonym_key
from treatment_marts.deidentify.recode import recode
from treatment_marts.disclosure.audit import audit
from treatment_marts.disclosure.protect import protect as protect_tables
from treatment_marts.disclosure.tables import MartTable
from treatment_marts.marts import build_mart, dimension_levels, load_marts, select_population
from treatment_marts.marts.reference import (
    ReferenceBuildError,
    Table1Reference,
    calibrate_extract,
    load_table1,
    round_half_up,
    table1_from_mart,
)
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.land import land
from treatment_marts.pipeline.protect import protect

CONFIG = REPO_DIR / "include" / "config"
PERIOD = "2024-03"
MART = "in_treatment_substance_area_sex"
# Two named sites and two large "Other" areas: the other configured areas are simply absent (zero counts).
REFERENCE_AREAS = ["Exborough", "Northton", "Southmoor", "Westfield"]


def test_round_half_up_is_not_bankers_rounding() -> None:
    assert [round_half_up(x) for x in (17.5, 18.5, 0.49, 43.879)] == [18, 19, 0, 44]


def test_reference_file_is_self_consistent_and_a_typo_fails() -> None:
    reference = load_table1(CONFIG)
    assert reference.targets()[("Exborough", "opiate_not_crack")] == 365
    assert sum(reference.rows["Northton"].counts) == 2076 and sum(reference.rows["Exborough"].counts) == 2027
    bad = reference.model_dump()
    bad["rows"]["Northton"]["counts"] = [900, 457, 93, 550]
    with pytest.raises(ValueError, match="Northton"):
        Table1Reference.model_validate(bad)


def test_missing_reference_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seed000_table1.yaml"):
        load_table1(tmp_path)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, pd.DataFrame, dict, pd.DataFrame]:
    # A fixed pseudonym key: which clients the calibration keeps (first N by key), and so the suppression
    # pattern of the linked catalogue, is then the same on every run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_KEY, "reference-check-fixed-key")
        return _reference_run(tmp_path_factory)


def _reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, pd.DataFrame, dict, pd.DataFrame]:
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    rules, areas = load_rules(CONFIG), load_areas(CONFIG)
    reference = load_table1(CONFIG)
    generated = generate_extract(PERIOD, clients=20000, areas=REFERENCE_AREAS, seed=20240101)
    recoded = recode(generated, rules, areas, pseudonym_key=pseudonym_key(settings)).frame
    extract = calibrate_extract(generated, recoded, PERIOD, reference)
    path = write_extract(extract, tmp_path_factory.mktemp("inbox") / "reference.parquet")
    landed = land(settings, PERIOD, path, run_id="reference")
    protected = protect(settings, PERIOD, "reference", landed.landed_paths)
    mart = pd.read_parquet(Path(protected.staged_dir) / "marts" / f"{MART}.parquet")
    reference_recoded = recode(extract, rules, areas, pseudonym_key=pseudonym_key(settings)).frame
    return settings, mart, protected, reference_recoded


def _table1(mart: pd.DataFrame) -> pd.DataFrame:
    return table1_from_mart(mart, load_areas(CONFIG), load_table1(CONFIG), load_rules(CONFIG).substances.group_labels)


def _assert_reproduces(table: pd.DataFrame, location: str) -> None:
    row = load_table1(CONFIG).rows[location]
    got = table[table["location"] == location]
    assert got["count"].tolist() == row.counts, location
    assert [round_half_up(p) for p in got["percent"]] == row.published_percent, location
    assert all(abs(p - q) <= 0.5 for p, q in zip(got["percent"], row.published_percent, strict=False)), location


def test_table1_mart_protected_as_seed000_published_it_reproduces_every_percentage(
    reference_run: tuple[Settings, pd.DataFrame, dict, pd.DataFrame],
) -> None:
    """Seed 000 published Table 1 as one K3-protected table: protect the mart alone the same way."""
    _, _, _, recoded = reference_run
    rules, areas = load_rules(CONFIG), load_areas(CONFIG)
    levels = dimension_levels(rules, areas)
    definition = next(m for m in load_marts(CONFIG, set(levels)).marts if m.name == MART)
    clients = select_population(recoded, "in_treatment", PERIOD)
    table = MartTable(
        name=MART, dimensions=tuple(definition.dimensions), frame=build_mart(clients, definition, PERIOD, levels)
    )
    protected = protect_tables([table], k=rules.disclosure.k, zeros=rules.disclosure.zeros)
    assert audit(protected.tables, k=rules.disclosure.k, zeros=rules.disclosure.zeros, true_counts=protected.log).passed
    published = _table1(protected.tables[0].frame)
    for location in load_table1(CONFIG).rows:
        _assert_reproduces(published, location)


def test_full_catalogue_publishes_table1_exactly_or_withholds_a_cell(
    reference_run: tuple[Settings, pd.DataFrame, dict, pd.DataFrame],
) -> None:
    """Through the whole catalogue (14 linked in-treatment marts): every Table 1 count it publishes is the
    reference count; a withheld one is marked `c` and its true value in the restricted log is the reference."""
    _, mart, protected, _ = reference_run
    reference = load_table1(CONFIG)
    published = _table1(mart)
    assert published["count"].notna().sum() >= 6  # most of Table 1 survives linked protection
    log = pd.read_parquet(Path(protected.staged_dir) / "suppression_log.parquet")
    logged = log[log["mart"] == MART]
    labels = load_rules(CONFIG).substances.group_labels
    for (location, group), wanted in reference.targets().items():
        got = published[(published["location"] == location) & (published["cohort"] == group)]["count"].iloc[0]
        if pd.notna(got):
            assert got == wanted, (location, group)
        elif location != "Other":
            cell = mart[
                (mart["area"] == location) & (mart["substance_group"] == labels[group]) & (mart["sex"] == "Total")
            ]
            assert cell["status"].tolist() == ["c"]
            true = logged[
                logged["cell"].str.contains(f'"area": "{location}"')
                & logged["cell"].str.contains(f'"substance_group": "{labels[group]}"')
                & logged["cell"].str.contains('"sex": "Total"')
            ]["true_count"]
            assert true.tolist() == [wanted], (location, group)


def test_other_groups_are_outside_the_denominator(
    reference_run: tuple[Settings, pd.DataFrame, dict, pd.DataFrame],
) -> None:
    _, mart, _, _ = reference_run
    labels = load_rules(CONFIG).substances.group_labels
    cell = mart[(mart["sex"] == "Total")].set_index(["area", "substance_group"])["count"]
    # The dataset keeps the non-opiate clients, so an area's all-groups total exceeds the Table 1 base.
    assert cell[("Exborough", "Total")] > 2027
    assert cell[("Exborough", labels["non_opiate_only"])] > 3


def test_too_small_a_month_is_refused_with_the_cell_named() -> None:
    rules, areas = load_rules(CONFIG), load_areas(CONFIG)
    generated = generate_extract(PERIOD, clients=3000, seed=20240101)
    recoded = recode(generated, rules, areas, pseudonym_key="0123456789abcdef").frame
    with pytest.raises(ReferenceBuildError, match="Exborough / opiate_not_crack"):
        calibrate_extract(generated, recoded, PERIOD, load_table1(CONFIG))
