"""GX validation: a good extract passes, each kind of bad extract fails naming the rule, and no identifier leaks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract
from treatment_marts.validation.gx_runner import ValidationFailed, validate_extract

PERIOD = "2024-03"


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return generate_extract(PERIOD, clients=1200, areas=["Northton", "Little Haven"], seed=9)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.from_env(data_root=tmp_path_factory.mktemp("data"))


def failed_rules(frame: pd.DataFrame, settings: Settings, source: str = "x.csv") -> dict[str, dict]:
    report = validate_extract(frame, period=PERIOD, settings=settings, run_id="t", source=source)
    return {r["rule"]: r for r in report.blocking_failures()}


def test_a_good_extract_passes_and_builds_data_docs(good: pd.DataFrame, settings: Settings) -> None:
    report = validate_extract(good, period=PERIOD, settings=settings, run_id="t", source="good.csv")
    assert report.success and not report.blocking_failures(), report.summary_text()
    assert report.data_docs_index and report.data_docs_index.exists()
    assert report.data_docs_index.is_relative_to(settings.restricted_dir)
    assert "all passed" in report.summary_text()


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda f: f.assign(sex=f["sex"].mask(f.index < 4, "X")), "sex uses the contract's code list"),
        (lambda f: f.assign(agency_code=f["agency_code"].mask(f.index < 2, pd.NA)), "agency_code is always present"),
        (
            lambda f: pd.concat([f, f.iloc[:3]], ignore_index=True),
            "one row per episode: (agency_code, episode_id) is unique",
        ),
        (
            lambda f: f.assign(triage_date=f["triage_date"].mask(f.index < 2, pd.Timestamp("2024-04-02"))),
            "triage_date is not before 2005-01-01 and not after the end of the period",
        ),
        (lambda f: f.assign(period="2024-02"), "every row is for the run's period"),
    ],
)
def test_bad_extracts_fail_naming_the_rule(good: pd.DataFrame, settings: Settings, mutate, rule: str) -> None:
    failures = failed_rules(mutate(good.copy()), settings)
    assert rule in failures, list(failures)
    assert failures[rule]["unexpected_count"] is None or failures[rule]["unexpected_count"] >= 1


def test_cross_field_rules(good: pd.DataFrame, settings: Settings) -> None:
    bad = good.copy()
    closed = bad.index[bad["discharge_date"].notna()][:3]
    bad.loc[closed[0], "discharge_date"] = bad.loc[closed[0], "triage_date"] - pd.Timedelta(days=3)
    bad.loc[closed[1], "discharge_reason"] = pd.NA
    bad.loc[closed[2], "drug_2"] = bad.loc[closed[2], "drug_1"]
    failures = failed_rules(bad, settings)
    assert "discharge_date is on or after triage_date" in failures
    assert "discharge_reason is present exactly when discharge_date is present" in failures
    assert "drug_2 differs from drug_1 (and drug_3 from both) where cited" in failures


def test_consent_rule_applies_only_to_consenting_clients(good: pd.DataFrame, settings: Settings) -> None:
    assert (good["consent"] == "N").any()  # non-consenting rows are blank and pass
    bad = good.copy()
    row = bad.index[bad["consent"] == "Y"][0]
    bad.loc[row, "ethnicity"] = pd.NA
    assert "ethnicity is present when the client consented" in failed_rules(bad, settings)


def test_summary_names_column_rule_count_and_raises(good: pd.DataFrame, settings: Settings) -> None:
    bad = good.assign(drug_1=good["drug_1"].mask(good.index < 6, "80"))  # a discharge code under drug_1
    report = validate_extract(bad, period=PERIOD, settings=settings, run_id="t", source="bad.csv")
    text = report.summary_text()
    assert "drug_1" in text and "code list" in text and " 6 " in text and "'80'" in text
    unknown = good.assign(drug_1=good["drug_1"].mask(good.index < 6, "0000"))  # in no list: may be anything
    text = validate_extract(unknown, period=PERIOD, settings=settings, run_id="t", source="bad.csv").summary_text()
    assert "drug_1" in text and "'0000'" not in text
    with pytest.raises(ValidationFailed, match="drug_1"):
        report.raise_for_blocking()


def test_no_identifier_value_reaches_any_gx_artefact(good: pd.DataFrame, tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path)
    bad = good.copy()
    bad.loc[bad.index[:3], "client_ref"] = "ZQXLEAK123!"
    bad.loc[bad.index[:3], "partial_postcode"] = "QQ9Z 9"
    bad.loc[bad.index[:3], "first_initial"] = "qq"
    bad.loc[bad.index[:3], "date_of_birth"] = pd.Timestamp("1850-01-01")
    report = validate_extract(bad, period=PERIOD, settings=settings, run_id="leak", source="leak.csv")
    assert not report.success
    needles = [
        "ZQXLEAK123",
        "QQ9Z 9",
        "1850-01-01",
        "18500101",
        "01/01/1850",
    ]  # whole values: a bare "1850" can occur in a UUID
    texts = {"summary": report.summary_text()}
    with pytest.raises(ValidationFailed) as err:
        report.raise_for_blocking()
    texts["exception"] = str(err.value)
    for path in settings.gx_dir.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "ignore")
    assert len(texts) > 5  # results, Data Docs pages, suites...
    for where, text in texts.items():
        for needle in needles:
            assert needle not in text, f"{needle!r} leaked into {where}"
    assert "client_ref" in texts["summary"] and "date_of_birth" in texts["summary"]


def test_gx_does_not_keep_the_batch_after_the_run(
    good: pd.DataFrame, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GX's engine caches the batch; left there it would hold a copy of the extract through later stages."""
    import gc
    import weakref

    import treatment_marts.validation.gx_runner as validate_module

    batches: list[weakref.ref] = []
    real = validate_module.with_derived_columns

    def remembered(frame: pd.DataFrame) -> pd.DataFrame:
        batch = real(frame)
        batches.append(weakref.ref(batch))
        return batch

    monkeypatch.setattr(validate_module, "with_derived_columns", remembered)
    report = validate_extract(good, period="2024-03", settings=settings, run_id="release", source="x.csv")
    gc.collect()
    assert report.success and len(batches) == 1
    assert batches[0]() is None, "the GX context still references the validated batch"
    # nor any row-level series GX computed from it (condition masks, derived columns): only `good`'s own data
    rows = len(good)
    kept = [
        o for o in gc.get_objects() if isinstance(o, (pd.Series, pd.DataFrame)) and len(o) == rows and o is not good
    ]
    assert not kept, f"{len(kept)} row-level pandas objects outlive the validation"


def test_a_validation_logs_a_summary_not_gx_noise(
    good: pd.DataFrame, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.INFO):
        validate_extract(good, period=PERIOD, settings=settings, run_id="quiet", source="quiet.csv")
    gx_info = [r for r in caplog.records if r.name.startswith("great_expectations") and r.levelno < logging.WARNING]
    ours = [r for r in caplog.records if r.name.startswith("treatment_marts")]
    assert gx_info == [], f"{len(gx_info)} GX INFO lines, e.g. {gx_info[0].getMessage()[:100]}"
    assert ours and any("expectations" in r.getMessage() for r in ours)
    assert len(caplog.records) < 40


def test_one_run_stores_one_gx_result_with_every_expectation_of_the_suite_once(tmp_path: Path) -> None:
    """The suite runs on narrow per-domain batches (speed), but GX keeps one result per extract, as a
    checkpoint run would: every committed expectation once, in suite order, fingerprinting the whole batch."""
    import json

    from great_expectations.execution_engine.pandas_execution_engine import hash_pandas_dataframe

    from treatment_marts.validation.gx_runner import suite_path, with_derived_columns

    settings = Settings.from_env(data_root=tmp_path)
    frame = generate_extract(PERIOD, clients=300, areas=["Northton"], seed=5)
    bad = frame.assign(sex=frame["sex"].mask(frame.index < 2, "X"))
    report = validate_extract(bad, period=PERIOD, settings=settings, run_id="one", source="one.csv")
    stored = list((settings.gx_dir).rglob("validations/**/*.json"))
    assert len(stored) == 1, stored
    result = json.loads(stored[0].read_text())
    committed = json.loads(suite_path(settings).read_text())["expectations"]
    assert [r["expectation_config"]["type"] for r in result["results"]] == [e["type"] for e in committed]
    assert [r["expectation_config"]["meta"]["rule"] for r in result["results"]] == [
        e["meta"]["rule"] for e in committed
    ]
    assert result["statistics"]["evaluated_expectations"] == len(committed)
    assert result["statistics"]["unsuccessful_expectations"] == 1 and result["success"] is False
    assert result["meta"]["batch_markers"]["pandas_data_fingerprint"] == hash_pandas_dataframe(
        with_derived_columns(bad)
    )
    assert result["meta"]["checkpoint_id"] and result["meta"]["validation_id"]
    assert [r["rule"] for r in report.blocking_failures()] == ["sex uses the contract's code list"]
    pages = list(report.data_docs_index.parent.rglob("validations/**/*.html"))  # type: ignore[union-attr]
    assert len(pages) == 1, pages
