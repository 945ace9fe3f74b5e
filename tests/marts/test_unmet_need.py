"""Unmet-need mart: derived from the *published* in-treatment counts and a validated prevalence reference file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.config import ConfigError, load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.deidentify.recode import recode
from treatment_marts.disclosure.protect import protect as protect_tables
from treatment_marts.disclosure.tables import MartTable
from treatment_marts.marts import TOTAL, build_mart, dimension_levels, load_marts, select_population
from treatment_marts.marts.unmet_need import build_unmet_need, load_prevalence
from treatment_marts.ops.synth import generate_extract

CONFIG = REPO_DIR / "include" / "config"
PERIOD = "2024-03"
RULES, AREAS = load_rules(CONFIG), load_areas(CONFIG)
LEVELS = dimension_levels(RULES, AREAS)
MARTS = load_marts(CONFIG, set(LEVELS))
UNMET = next(m for m in MARTS.marts if m.measure == "unmet_need")
SOURCE = next(m for m in MARTS.marts if m.name == UNMET.derived_from)
GROUPS = list(UNMET.prevalence_groups or {})


def _estimates() -> list:
    return load_prevalence(CONFIG / "reference" / str(UNMET.reference), AREAS, GROUPS)


@pytest.fixture(scope="module")
def published_source() -> pd.DataFrame:
    """The source mart, really protected (K3 + secondary) on a small generated month: small areas get suppressed."""
    frame = generate_extract(PERIOD, clients=3000, seed=7)
    recoded = recode(frame, RULES, AREAS, pseudonym_key="0123456789abcdef").frame
    clients = select_population(recoded, "in_treatment", PERIOD)
    table = MartTable(SOURCE.name, tuple(SOURCE.dimensions), build_mart(clients, SOURCE, PERIOD, LEVELS))
    return protect_tables([table], k=RULES.disclosure.k, zeros=RULES.disclosure.zeros).tables[0].frame


def test_shipped_reference_file_is_complete_synthetic_and_labelled() -> None:
    rows = _estimates()
    assert {(r.area, r.prevalence_group) for r in rows} == {(a, g) for a in [*LEVELS["area"], TOTAL] for g in GROUPS}
    assert all(r.synthetic and r.source.startswith("SYNTHETIC") for r in rows)
    assert all(r.lower <= r.estimate <= r.upper for r in rows)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("Exborough,Opiates,1800,1530", "Exborough,Opiates,1800,1900", 1), "lower <= estimate"),
        (lambda t: t.replace("Northton,Crack", "Nowhere,Crack", 1), "unknown area 'Nowhere'"),
        (lambda t: t + t.splitlines()[1] + "\n", "more than one estimate"),
        (lambda t: t.replace("SYNTHETIC test", "OHID", 1), "must start with 'SYNTHETIC'"),
    ],
)
def test_a_bad_reference_file_fails_on_load_with_the_line(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "prevalence.csv"
    path.write_text(edit((CONFIG / "reference" / "prevalence.csv").read_text()))
    with pytest.raises(ConfigError, match=message):
        load_prevalence(path, AREAS, GROUPS)


def test_unmet_need_sums_published_counts_and_withholds_with_them(published_source: pd.DataFrame) -> None:
    estimates = {(e.area, e.prevalence_group): e for e in _estimates()}
    mart = build_unmet_need(published_source, UNMET, list(estimates.values()), RULES, AREAS, PERIOD)
    assert len(mart) == (len(LEVELS["area"]) + 1) * len(GROUPS)
    cells = published_source[published_source["sex"] == TOTAL].set_index(["area", "substance_group"])
    labels = RULES.substances.group_labels
    withheld = 0
    for row in mart.itertuples():
        parts = [cells.loc[(row.area, labels[m]), "count"] for m in UNMET.prevalence_groups[row.prevalence_group]]
        estimate = estimates[(row.area, row.prevalence_group)]
        if any(pd.isna(p) for p in parts):
            withheld += 1
            assert (
                row.status == "c"
                and pd.isna(row.count)
                and pd.isna(row.unmet_need_percent)
                and pd.isna(row.unmet_need_lower)
            )
        else:
            assert row.count == sum(parts) and pd.isna(row.status)
            assert row.unmet_need_percent == pytest.approx(100 * (1 - row.count / estimate.estimate), abs=0.05)
            assert row.unmet_need_lower <= row.unmet_need_percent <= row.unmet_need_upper
        assert row.estimate == estimate.estimate and row.estimate_source.startswith("SYNTHETIC")
    assert withheld > 0, "the small month should have suppressed cells in small areas"
    national = mart[(mart["area"] == TOTAL) & (mart["prevalence_group"] == "Opiates")].iloc[0]
    assert pd.notna(national["unmet_need_percent"])


def test_a_missing_estimate_leaves_unmet_need_empty_not_suppressed(published_source: pd.DataFrame) -> None:
    estimates = [e for e in _estimates() if not (e.area == TOTAL and e.prevalence_group == "Alcohol")]
    mart = build_unmet_need(published_source, UNMET, estimates, RULES, AREAS, PERIOD)
    row = mart[(mart["area"] == TOTAL) & (mart["prevalence_group"] == "Alcohol")].iloc[0]
    assert (
        pd.notna(row["count"])
        and pd.isna(row["status"])
        and pd.isna(row["estimate"])
        and pd.isna(row["unmet_need_percent"])
    )


def test_definition_errors_name_the_mart() -> None:
    from treatment_marts.marts.definitions import MartDefinition

    with pytest.raises(ValueError, match="unmet_need mart has dimensions"):
        MartDefinition(
            name="u",
            title="u",
            population="in_treatment",
            dimensions=["area"],
            measure="unmet_need",
            derived_from="x",
            reference="p.csv",
            prevalence_groups={"Opiates": ["opiate_not_crack"]},
        )
    with pytest.raises(ValueError, match="prevalence group 'Opiates'"):
        MartDefinition(
            name="u",
            title="u",
            population="in_treatment",
            dimensions=["area", "prevalence_group"],
            measure="unmet_need",
            derived_from="x",
            reference="p.csv",
            prevalence_groups={"Opiates": ["heroin"]},
        )
    assert UNMET not in [m for ms in MARTS.by_population().values() for m in ms]
