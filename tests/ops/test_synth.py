"""The synthetic extract generator: deterministic, contract-conformant, realistic, months that follow each other."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.contract import load_contract
from treatment_marts.core.config import load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.deidentify.recode import age_in_years, substance_group
from treatment_marts.ingest.land import read_extract
from treatment_marts.ops.synth import generate_extract, generate_history, write_extract

CONTRACT = load_contract()
RULES = load_rules(REPO_DIR / "include" / "config")


@pytest.fixture(scope="module")
def march() -> pd.DataFrame:
    return generate_extract("2024-03", clients=6000, seed=11)


def test_same_seed_same_frame_other_seed_differs() -> None:
    a = generate_extract("2024-03", clients=800, areas=["Northton"], seed=5)
    pd.testing.assert_frame_equal(a, generate_extract("2024-03", clients=800, areas=["Northton"], seed=5))
    assert not a.equals(generate_extract("2024-03", clients=800, areas=["Northton"], seed=6))


def test_columns_and_dtypes_follow_the_contract(march: pd.DataFrame) -> None:
    assert list(march.columns) == CONTRACT.column_names
    for col in CONTRACT.columns:
        expected = {"date": "datetime64[ms]", "integer": "Int64"}.get(col.type, "string")
        assert str(march[col.name].dtype) == expected, col.name


def test_values_follow_the_contract(march: pd.DataFrame) -> None:
    consented = march["consent"] == "Y"
    for col in CONTRACT.columns:
        values = march[col.name]
        present = values.dropna()
        if col.allowed_values is not None:
            assert set(present) <= set(col.allowed_values), col.name
        if col.pattern:
            assert present.str.fullmatch(col.pattern).all(), col.name
        if col.type == "integer":
            assert present.between(col.min, col.max).all(), col.name
        if col.required == "always":
            assert values.notna().all(), col.name
        if col.required == "when_consented":
            assert values[consented].notna().all(), col.name
    assert not march.duplicated(["agency_code", "episode_id"]).any()
    assert (march["period"] == "2024-03").all()


def test_cross_field_rules_hold(march: pd.DataFrame) -> None:
    end = pd.Timestamp("2024-03-31")
    dates = march.select_dtypes("datetime64[ms]").drop(columns=["date_of_birth"])
    assert (dates.min() >= pd.Timestamp("2005-01-01")).all() and (dates.max() <= end).all()
    m = march[march["consent"] == "Y"]
    assert (m["referral_date"] <= m["triage_date"]).all()
    closed = m["discharge_date"].notna()
    assert (m.loc[closed, "discharge_date"] >= m.loc[closed, "triage_date"]).all()
    assert (closed == m["discharge_reason"].notna()).all()
    assert (m["drug_2"] != m["drug_1"]).all()
    assert m.loc[m["route"] == "1", "injecting_status"].isin(["C", "P"]).all()
    age = age_in_years(m["date_of_birth"], m["triage_date"])
    assert age.between(18, 110).all()
    open_in_march = (m["triage_date"] <= end) & (
        m["discharge_date"].isna() | (m["discharge_date"] >= pd.Timestamp("2024-03-01"))
    )
    assert open_in_march.all()


def test_non_consenting_rows_are_blank_but_for_admin(march: pd.DataFrame) -> None:
    withheld = march[march["consent"] == "N"]
    assert 0 < len(withheld) < 0.03 * len(march)
    keep = {c.name for c in CONTRACT.columns if c.required == "always"}
    assert withheld.drop(columns=list(keep)).isna().all().all()


def test_substance_mix_and_demography_are_realistic(march: pd.DataFrame) -> None:
    m = march[march["consent"] == "Y"]
    groups = substance_group(m, RULES)
    assert groups.notna().all()
    north = groups[m["la_code"] == "E06900002"].value_counts(normalize=True)
    assert north["opiate_not_crack"] == pytest.approx(0.41, abs=0.05)
    assert groups.value_counts(normalize=True)["alcohol_only"] == pytest.approx(0.30, abs=0.06)
    assert (m["sex"] == "M").mean() == pytest.approx(0.69, abs=0.04)
    age = age_in_years(m["date_of_birth"], pd.Series(pd.Timestamp("2024-03-15"), index=m.index))
    assert age[groups.str.startswith("opiate")].median() > age[groups == "non_opiate_only"].median()


def test_months_follow_each_other() -> None:
    (p1, m1), (p2, m2), (p3, m3) = generate_history("2024-03", 3, clients=2000, seed=3)
    assert (p1, p2, p3) == ("2024-03", "2024-04", "2024-05")
    ids = [set(m["episode_id"]) for m in (m1, m2, m3)]
    assert len(ids[0] & ids[1]) > 0.7 * len(ids[0])  # most episodes continue
    assert ids[1] - ids[0] and ids[0] - ids[1]  # some start, some end
    closed_in_march = set(m1.loc[m1["discharge_date"].notna(), "episode_id"])
    assert closed_in_march and not closed_in_march & ids[2]
    continuing = m1.merge(m2, on="episode_id", suffixes=("_a", "_b"))
    assert (continuing["client_ref_a"] == continuing["client_ref_b"]).all()
    assert (
        continuing["date_of_birth_a"].fillna(pd.Timestamp(0)) == continuing["date_of_birth_b"].fillna(pd.Timestamp(0))
    ).all()


def test_tiny_area_and_twins() -> None:
    big = generate_extract("2024-03", clients=40000, seed=1)
    assert 20 < (big["la_code"] == "E06900008").sum() < 2000  # Little Haven stays small
    consented = big[big["consent"] == "Y"]
    attributor = (
        consented["first_initial"]
        + consented["surname_initial"]
        + consented["date_of_birth"].dt.strftime("%Y%m%d")
        + consented["sex"]
        + consented["la_code"]
    )
    per_attributor = consented.groupby(attributor)["client_ref"].nunique()
    assert (per_attributor > 1).sum() > 0, "twins (same attributor, different clients) are generated"


@pytest.mark.parametrize("suffix", ["csv", "xlsx", "parquet"])
def test_written_files_read_back_identically(tmp_path: Path, suffix: str) -> None:
    frame = generate_extract("2024-03", clients=150, areas=["Little Haven", "Eastcliff"], seed=2)
    path = write_extract(frame, tmp_path / f"extract.{suffix}")
    pd.testing.assert_frame_equal(read_extract(path), frame)
