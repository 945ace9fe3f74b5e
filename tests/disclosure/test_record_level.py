"""Record-level K-anonymity by local suppression: k-anonymity is proven by an independent checker, loss is
compared with the seed study's naive deletion, output is deterministic and free of identifiers."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from treatment_marts.contract import load_contract
from treatment_marts.core.config import NEVER_IN_RECORD_LEVEL, ConfigError, RecordLevel, load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR, Settings
from treatment_marts.deidentify.recode import recode
from treatment_marts.disclosure.record_level import (
    AnonymisationError,
    anonymise,
    k_anonymity_violations,
    naive_deletion,
    wildcard_group_sizes,
    write_record_level,
)
from treatment_marts.marts import select_population
from treatment_marts.ops.synth import generate_extract

CONFIG = REPO_DIR / "include" / "config"
PERIOD = "2024-03"
MARK = "Suppressed"
RULES = load_rules(CONFIG)
QIS = list(RULES.record_level.quasi_identifiers)


def brute_force_sizes(frame: pd.DataFrame, qis: list[str], marker: str) -> list[int]:
    """Plain-Python O(n^2) definition of the wildcard group size, to check the checker."""
    rows = [tuple(None if pd.isna(v) else v for v in row) for row in frame[qis].itertuples(index=False)]
    return [sum(all(a in (b, marker) or b == marker for a, b in zip(r, s, strict=False)) for s in rows) for r in rows]


def config_for(qis: list[str], carry: list[str] | None = None, max_suppressed: int | None = None) -> RecordLevel:
    return RecordLevel(
        population="in_treatment",
        quasi_identifiers=qis,
        carry=carry or [],
        suppressed_value=MARK,
        max_suppressed_per_record=max_suppressed,
    )


@st.composite
def random_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, list[str]]:
    q = draw(st.integers(1, 4))
    alphabets = [
        draw(st.sampled_from([["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", None], ["a", "b", "c", "d"]]))
        for _ in range(q)
    ]
    n = draw(st.integers(0, 50))
    rows = draw(st.lists(st.tuples(*[st.sampled_from(a) for a in alphabets]), min_size=n, max_size=n))
    qis = [f"q{j}" for j in range(q)]
    frame = (
        pd.DataFrame(rows, columns=qis, dtype="string")
        if rows
        else pd.DataFrame({c: pd.Series([], dtype="string") for c in qis})
    )
    frame["payload"] = pd.array(np.arange(len(frame)), dtype="Int64")
    return frame, qis


# --- properties on random frames ----------------------------------------------------------------------


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_frames(), st.integers(1, 4))
def test_random_frames_become_k_anonymous_without_losing_records(case: tuple[pd.DataFrame, list[str]], k: int) -> None:
    frame, qis = case
    config = config_for(qis, carry=["payload"])
    if 0 < len(frame) <= k:
        with pytest.raises(AnonymisationError, match="not larger than k"):
            anonymise(frame, config, k)
        return
    result = anonymise(frame, config, k)
    assert len(result.frame) == len(frame) and not result.dropped.any()
    assert k_anonymity_violations(result.frame, qis, k, MARK).empty
    # only records the naive method would delete are touched, never more values than it deletes
    naive = naive_deletion(frame, qis, k)
    assert not (result.suppressed.any(axis=1) & ~naive).any()
    # every kept value is the original: the product is the input with the suppressed values masked
    expected = frame.copy()
    for qi in qis:
        expected[qi] = expected[qi].where(~result.suppressed[qi], MARK)
    got = result.frame.drop(columns="record_id").sort_values("payload").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.sort_values("payload").reset_index(drop=True), check_dtype=False)


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_frames(), st.integers(1, 4), st.integers(1, 2))
def test_last_resort_respects_the_limit_and_keeps_the_rest_k_anonymous(
    case: tuple[pd.DataFrame, list[str]], k: int, limit: int
) -> None:
    frame, qis = case
    if limit > len(qis):
        return
    result = anonymise(frame, config_for(qis, carry=["payload"], max_suppressed=limit), k)
    kept = ~result.dropped
    assert (result.suppressed[kept].sum(axis=1) <= limit).all()
    assert len(result.frame) == int(kept.sum()) and result.loss.iloc[0]["local_dropped"] == int(result.dropped.sum())
    assert k_anonymity_violations(result.frame, qis, k, MARK).empty
    assert set(result.frame["payload"]) == set(frame.loc[kept.to_numpy(), "payload"])


@hyp_settings(max_examples=40, deadline=None)
@given(random_frames(), st.lists(st.booleans(), min_size=200, max_size=200))
def test_checker_agrees_with_the_definition(case: tuple[pd.DataFrame, list[str]], masks: list[bool]) -> None:
    frame, qis = case
    cells = iter(masks)
    for qi in qis:  # sprinkle wildcards anywhere, including on records that did not need them
        frame[qi] = frame[qi].where(
            pd.Series([not next(cells) for _ in range(len(frame))], dtype=bool, index=frame.index), MARK
        )
    expected = brute_force_sizes(frame, qis, MARK)
    for method in ("pairwise", "patterns", "auto"):
        assert wildcard_group_sizes(frame, qis, MARK, method=method).tolist() == expected, method


def test_checker_catches_a_unique_record() -> None:
    frame = pd.DataFrame({"sex": ["F", "M", "M", "M", "M"], "band": ["18-24"] * 5}, dtype="string")
    violations = k_anonymity_violations(frame, ["sex", "band"], 3, MARK)
    assert violations["group_size"].tolist() == [1]  # the woman; 4 men is > k
    assert wildcard_group_sizes(frame.assign(sex=[MARK, "M", "M", "M", "M"]), ["sex", "band"], MARK).tolist() == [
        5,
        5,
        5,
        5,
        5,
    ]


def test_least_important_value_is_suppressed_first() -> None:
    # One woman aged 65+ beside four men aged 65+ and four women aged 18-24: either value alone would
    # protect her; the one listed later (less important) is the one suppressed.
    frame = pd.DataFrame({"sex": ["F"] + ["M"] * 4 + ["F"] * 4, "band": ["65+"] * 5 + ["18-24"] * 4}, dtype="string")
    result = anonymise(frame, config_for(["sex", "band"]), 3)
    assert result.suppressed.sum().to_dict() == {"sex": 0, "band": 1}
    result = anonymise(frame, config_for(["band", "sex"]), 3)
    assert result.suppressed.sum().to_dict() == {"band": 0, "sex": 1}


def test_records_are_dropped_only_as_a_configured_last_resort() -> None:
    # Four records on a diagonal: each needs two of three values suppressed to match the others.
    frame = pd.DataFrame({"a": list("wxyz"), "b": list("wxyz"), "c": list("wxyz")}, dtype="string")
    kept = anonymise(frame, config_for(["a", "b", "c"]), 3)
    assert not kept.dropped.any() and kept.values_suppressed > 0
    assert k_anonymity_violations(kept.frame, ["a", "b", "c"], 3, MARK).empty
    dropped = anonymise(frame, config_for(["a", "b", "c"], max_suppressed=1), 3)
    assert dropped.dropped.all() and dropped.frame.empty
    assert dropped.loss.iloc[0]["local_dropped"] == 4


def test_tiny_population_fails_clearly() -> None:
    frame = pd.DataFrame({"sex": ["F", "M"], "band": ["18-24", "65+"]}, dtype="string")
    with pytest.raises(AnonymisationError, match=r"population \(2 records\) is not larger than k=3"):
        anonymise(frame, config_for(["sex", "band"]), 3)


def test_suppressed_value_must_not_be_a_real_category() -> None:
    frame = pd.DataFrame({"sex": [MARK] * 5}, dtype="string")
    with pytest.raises(AnonymisationError, match="already hold the suppressed value"):
        anonymise(frame, config_for(["sex"]), 3)


# --- a synthetic month --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clients() -> pd.DataFrame:
    extract = generate_extract(PERIOD, clients=3000, seed=7)
    recoded = recode(extract, RULES, load_areas(CONFIG), pseudonym_key="k" * 16).frame
    return select_population(recoded, RULES.record_level.population, PERIOD)


@pytest.fixture(scope="module")
def month(clients: pd.DataFrame):
    return anonymise(clients, RULES.record_level, RULES.disclosure.k)


def test_synthetic_month_is_k_anonymous(month, clients: pd.DataFrame) -> None:
    k = RULES.disclosure.k
    assert k_anonymity_violations(month.frame, QIS, k, MARK).empty
    assert wildcard_group_sizes(month.frame, QIS, MARK).min() >= k + 1
    assert len(month.frame) == len(clients)  # nobody dropped
    assert naive_deletion(clients, QIS, k).sum() > 0, "a realistic month must have rare combinations"


def test_loss_is_smaller_than_naive_deletion_overall_and_per_group(month) -> None:
    loss = month.loss
    overall = loss.iloc[0]
    assert overall["quasi_identifier"] == "(all)" and overall["records"] == len(month.frame)
    assert overall["local_dropped"] == 0 < overall["naive_deleted"]
    # local suppression touches exactly the records naive deletion would delete, but loses only single values
    assert overall["local_records_touched"] == overall["naive_deleted"]
    groups = loss.iloc[1:]
    assert set(groups["quasi_identifier"]) == set(QIS)
    assert (groups["local_lost"] <= groups["naive_deleted"]).all()
    per_qi = groups.groupby("quasi_identifier")[["records", "local_value_suppressed", "local_values_suppressed"]].sum()
    assert per_qi["records"].eq(len(month.frame)).all()
    assert per_qi["local_values_suppressed"].eq(overall["local_values_suppressed"]).all()
    assert per_qi["local_value_suppressed"].sum() == overall["local_values_suppressed"] == month.values_suppressed
    assert per_qi["local_value_suppressed"].to_dict() == month.suppressed.sum().to_dict()
    by_group = groups.set_index(["quasi_identifier", "category"])
    # the groups seed 000 says naive K3 deletion hurt: women, religious and global-majority populations
    minorities = [
        ("sex", "Female"),
        ("religion_group", "Muslim"),
        ("ethnicity_group", "Asian / Asian British"),
        ("ethnicity_group", "Black / African / Caribbean / Black British"),
        ("ethnicity_group", "Mixed / multiple ethnic groups"),
    ]
    for key in minorities:
        row = by_group.loc[key]
        assert row["naive_deleted"] > 0, key
        assert row["local_lost"] < row["naive_deleted"], key
        assert row["local_lost_pct"] < row["naive_deleted_pct"], key
    assert by_group.loc[("sex", "Female"), "local_lost"] == 0  # sex is important: nobody's is suppressed here


def test_output_is_deterministic_and_independent_of_row_order(month, clients: pd.DataFrame) -> None:
    def parquet(frame: pd.DataFrame) -> bytes:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()

    again = anonymise(clients, RULES.record_level, RULES.disclosure.k)
    shuffled = anonymise(clients.sample(frac=1.0, random_state=3), RULES.record_level, RULES.disclosure.k)
    assert parquet(again.frame) == parquet(month.frame) == parquet(shuffled.frame)
    pd.testing.assert_frame_equal(again.loss, month.loss)
    pd.testing.assert_frame_equal(shuffled.loss, month.loss)


def test_no_identifying_column_or_value_survives(month, clients: pd.DataFrame) -> None:
    columns = set(month.frame.columns)
    assert list(month.frame.columns) == ["record_id", *RULES.record_level.columns]
    assert not columns & (set(load_contract().identifying_columns) | set(NEVER_IN_RECORD_LEVEL))
    cells = set(month.frame.astype("string").stack().dropna())
    assert not cells & set(clients["client_key"]) and not cells & set(clients["episode_id"])


# --- writing the product ------------------------------------------------------------------------------


def test_write_record_level_to_the_restricted_zone(tmp_path: Path, clients: pd.DataFrame) -> None:
    extract = generate_extract(PERIOD, clients=3000, seed=7)
    recoded = recode(extract, RULES, load_areas(CONFIG), pseudonym_key="k" * 16).frame
    settings = Settings.from_env(data_root=tmp_path / "data")
    summary = write_record_level(settings, PERIOD, "run_1", recoded, RULES)
    assert summary is not None
    product = Path(summary["path"])
    assert product.is_relative_to(settings.restricted_dir) and not settings.public_dir.exists()
    for path in (product, Path(summary["loss_report"]), product.with_name("manifest.json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    frame = pd.read_parquet(product)
    assert len(frame) == len(clients) == summary["records_out"] == summary["records_in"]
    assert k_anonymity_violations(frame, QIS, RULES.disclosure.k, MARK).empty
    assert summary["naive_deleted"] > summary["records_dropped"] == 0
    assert summary["sha256"] == hashlib.sha256(product.read_bytes()).hexdigest()
    loss = pd.read_csv(summary["loss_report"])
    assert {"quasi_identifier", "category", "naive_deleted", "local_lost"} <= set(loss.columns)
    manifest = json.loads(product.with_name("manifest.json").read_text())
    assert manifest["run_id"] == "run_1" and manifest["k"] == 3
    first = product.read_bytes()
    write_record_level(settings, PERIOD, "run_2", recoded, RULES)  # a re-run replaces it, byte-identical
    assert product.read_bytes() == first


def test_no_record_level_section_means_no_product(tmp_path: Path) -> None:
    rules = RULES.model_copy(update={"record_level": None})
    assert write_record_level(Settings.from_env(data_root=tmp_path), PERIOD, "r", pd.DataFrame(), rules) is None


# --- scale --------------------------------------------------------------------------------------------


def test_300k_records_are_k_anonymous(clients: pd.DataFrame) -> None:
    """National scale: draw 300,000 records from the synthetic month's category shares, independently per
    quasi-identifier (which gives more rare combinations than real, correlated data)."""
    rng = np.random.default_rng(11)
    big = pd.DataFrame(
        {
            qi: pd.array(rng.choice(shares.index.to_numpy(), size=300_000, p=shares.to_numpy()), dtype="string")
            for qi, shares in ((qi, clients[qi].value_counts(normalize=True, sort=False).sort_index()) for qi in QIS)
        }
    )
    result = anonymise(big, config_for(QIS), 3)  # its time is in docs/performance.md, not asserted here
    assert len(result.frame) == 300_000 and result.values_suppressed > 0
    assert k_anonymity_violations(result.frame, QIS, 3, MARK).empty


# --- configuration ------------------------------------------------------------------------------------


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target)
    return target


def edit_record_level(config_dir: Path, **changes: object) -> None:
    path = config_dir / "rules.yaml"
    data = yaml.safe_load(path.read_text())
    data["record_level"].update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"quasi_identifiers": ["sex", "age_band", "sex"]},
            r"record_level.quasi_identifiers lists \['sex'\] more than once",
        ),
        ({"carry": ["sex"]}, r"\['sex'\] are both quasi-identifiers and carried"),
        ({"carry": ["client_key"]}, r"\['client_key'\] identify or link a person"),
        ({"carry": ["triage_date"]}, r"\['triage_date'\] identify or link a person"),
        ({"carry": ["date_of_birth"]}, r"\['date_of_birth'\] are identifying extract columns"),
        ({"quasi_identifiers": ["sex", "shoe_size"]}, r"\['shoe_size'\] are not recoded attributes"),
        ({"quasi_identifiers": []}, r"record_level.quasi_identifiers\n  List should have at least 1 item"),
        ({"suppressed_value": ""}, r"record_level.suppressed_value"),
        (
            {"max_suppressed_per_record": 9},
            r"max_suppressed_per_record \(9\) exceeds the number of quasi-identifiers \(7\)",
        ),
        ({"population": "everyone"}, r"record_level.population"),
    ],
)
def test_config_errors_name_the_problem(config_copy: Path, changes: dict, message: str) -> None:
    edit_record_level(config_copy, **changes)
    with pytest.raises(ConfigError, match=message) as error:
        load_rules(config_copy)
    assert "rules.yaml" in str(error.value)


def test_shipped_record_level_config() -> None:
    config = RULES.record_level
    assert config is not None and config.quasi_identifiers[0] == "location" and config.max_suppressed_per_record is None
    assert set(config.columns) <= set(RULES.recoded_attributes)


def test_a_population_no_larger_than_k_is_withheld_with_a_reason_not_a_traceback(tmp_path: Path) -> None:
    extract = generate_extract(PERIOD, clients=3000, seed=7)
    recoded = recode(extract, RULES, load_areas(CONFIG), pseudonym_key="k" * 16).frame
    population = select_population(recoded, RULES.record_level.population, PERIOD)
    tiny = recoded[recoded["client_key"].isin(population["client_key"].head(RULES.disclosure.k))]
    settings = Settings.from_env(data_root=tmp_path / "data")
    summary = write_record_level(settings, PERIOD, "run_tiny", tiny, RULES)
    assert summary is not None and summary["withheld"] and summary["records_out"] == 0
    assert (
        summary["reason"] == f"the population ({RULES.disclosure.k} records) is not larger than k={RULES.disclosure.k}"
    )
    assert not (settings.restricted_dir / "record_level").exists()
