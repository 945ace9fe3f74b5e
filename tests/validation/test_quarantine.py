"""Quarantine: rows breaking blocking row-level rules are set aside (by configuration), within a ceiling."""

from __future__ import annotations

import dataclasses
import json
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
import yaml

from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import read_landed
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period
from treatment_marts.validation.gx_runner import suite_parameters, suite_path, with_derived_columns
from treatment_marts.validation.plain_checks import evaluate, load_suite
from treatment_marts.validation.quarantine import QuarantineCeilingExceeded, QuarantineRules, split

PERIOD = "2024-03"
BAD_ROWS = 6


@pytest.fixture(scope="module")
def month() -> pd.DataFrame:
    return generate_extract(PERIOD, clients=800, areas=["Northton", "Exborough"], seed=7)  # a partial release: seconds


def _with_bad_rows(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    bad = frame.copy()
    rows = bad.index[bad["referral_date"].notna()][10 : 10 + n]
    bad.loc[rows[: n // 2], "sex"] = "X"  # a code outside the contract's list
    bad.loc[rows[n // 2 :], "triage_date"] = bad.loc[rows[n // 2 :], "referral_date"] - pd.Timedelta(
        days=30
    )  # out of order
    return bad


def _settings_with_quarantine(tmp_path: Path, *, enabled: bool = True, max_share: float = 0.02) -> Settings:
    base = Settings.from_env(data_root=tmp_path / "data")
    config = tmp_path / "config"
    shutil.copytree(base.config_dir, config)
    policy = yaml.safe_load((config / "validation.yaml").read_text())
    policy["quarantine"] = {"enabled": enabled, "max_share": max_share}
    (config / "validation.yaml").write_text(yaml.safe_dump(policy))
    return dataclasses.replace(base, config_dir=config)


def _results(frame: pd.DataFrame, settings: Settings):
    return evaluate(with_derived_columns(frame), load_suite(suite_path(settings)), suite_parameters(PERIOD))


def test_split_sets_aside_exactly_the_failing_rows_with_their_rules(month: pd.DataFrame) -> None:
    settings = Settings.from_env()
    bad = _with_bad_rows(month, BAD_ROWS)
    accepted, quarantined, outcome = split(
        bad, _results(bad, settings), source="x.csv", rules=QuarantineRules(enabled=True)
    )
    assert len(quarantined) == BAD_ROWS and len(accepted) == len(bad) - BAD_ROWS
    assert set(quarantined.index).isdisjoint(accepted.index)
    assert quarantined["failed_rules"].str.contains("sex").sum() == BAD_ROWS // 2
    assert quarantined["failed_rules"].str.contains("triage_date").sum() >= BAD_ROWS - BAD_ROWS // 2
    assert all(_r.success for _r in _results(accepted, settings) if _r.severity == "blocking")
    assert outcome.rows_quarantined == BAD_ROWS and sum(outcome.by_rule.values()) >= BAD_ROWS


def test_above_the_ceiling_the_whole_extract_is_refused_naming_rules_and_counts(month: pd.DataFrame) -> None:
    settings = Settings.from_env()
    bad = month.copy()
    bad.loc[bad.index[:200], "sex"] = "X"  # about a fifth of the rows
    with pytest.raises(QuarantineCeilingExceeded) as err:
        split(bad, _results(bad, settings), source="x.csv", rules=QuarantineRules(enabled=True, max_share=0.02))
    message = str(err.value)
    assert "200 of" in message and "2.00%" in message and "sex" in message and "max_share" in message


def test_invalid_policy_is_refused_on_load(tmp_path: Path) -> None:
    from treatment_marts.core.config import ConfigError
    from treatment_marts.validation.drift import load_validation_policy

    settings = _settings_with_quarantine(tmp_path, max_share=1.5)
    with pytest.raises(ConfigError, match="max_share"):
        load_validation_policy(settings.config_dir)


def test_a_run_with_quarantine_publishes_the_rest_and_keeps_the_rows_owner_only(
    month: pd.DataFrame, tmp_path: Path
) -> None:
    settings = _settings_with_quarantine(tmp_path)
    bad = _with_bad_rows(month, BAD_ROWS)
    path = write_extract(bad, tmp_path / "inbox" / "extract.csv")
    result = run_period(settings, PERIOD, path, run_id="q_run")

    assert result.validate.quarantined_rows == BAD_ROWS
    [outcome] = result.validate.quarantine
    files = list((settings.quarantine_dir / f"period={PERIOD}" / "run_id=q_run").glob("*.parquet"))
    assert [Path(outcome["path"])] == files
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    kept = pd.read_parquet(files[0])
    assert len(kept) == BAD_ROWS and kept["failed_rules"].notna().all()
    assert set(kept["episode_id"]) == set(bad.loc[bad["referral_date"].notna(), "episode_id"].iloc[10 : 10 + BAD_ROWS])

    accepted = read_landed(result.validate.accepted_paths[0])
    assert len(accepted) == len(bad) - BAD_ROWS
    assert not set(kept["episode_id"]) & set(accepted["episode_id"])
    assert result.publish.marts, "the accepted rows were published"

    summary = json.loads((settings.restricted_dir / "runs" / "q_run" / "validation.json").read_text())
    quarantined_rules = [r for s in summary["expectations"] for r in s["results"] if r["severity"] == "quarantined"]
    assert {r["column"] for r in quarantined_rules} >= {"sex"}


def test_quarantine_off_fails_the_batch(month: pd.DataFrame, tmp_path: Path) -> None:
    from treatment_marts.validation.gx_runner import ValidationFailed

    settings = _settings_with_quarantine(tmp_path, enabled=False)
    path = write_extract(_with_bad_rows(month, BAD_ROWS), tmp_path / "inbox" / "extract.csv")
    with pytest.raises(ValidationFailed, match="sex"):
        run_period(settings, PERIOD, path, run_id="q_off")
    assert not settings.public_dir.exists() or not any(p.is_file() for p in settings.public_dir.rglob("*"))
    assert not (settings.quarantine_dir).exists()


def test_ceiling_in_a_run_publishes_nothing_and_records_the_results(month: pd.DataFrame, tmp_path: Path) -> None:
    settings = _settings_with_quarantine(tmp_path, max_share=0.001)
    path = write_extract(_with_bad_rows(month, BAD_ROWS), tmp_path / "inbox" / "extract.csv")
    with pytest.raises(QuarantineCeilingExceeded):
        run_period(settings, PERIOD, path, run_id="q_ceiling")
    assert not settings.public_dir.exists() or not any(p.is_file() for p in settings.public_dir.rglob("*"))
    assert (settings.restricted_dir / "runs" / "q_ceiling" / "validation.json").exists()
