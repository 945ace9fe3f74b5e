"""The history of accepted months (pipeline/history.py): recoded and pseudonymised, replaced by a
revision, bounded by its own retention."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from treatment_marts.contract import load_contract
from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.ids import Period
from treatment_marts.core.settings import Settings
from treatment_marts.deidentify.recode import recode
from treatment_marts.ops.retention import purge_expired
from treatment_marts.ops.synth import generate_extract
from treatment_marts.pipeline.history import month_path, read_months, store_month, stored_months


def test_a_month_is_kept_recoded_and_a_revision_replaces_it(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    rules, areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
    extract = generate_extract("2024-03", clients=200, areas=["Exborough"], seed=4)
    first = recode(extract, rules, areas, pseudonym_key="history-test-key").frame
    store_month(settings, Period.parse("2024-03"), first)
    kept = pd.read_parquet(month_path(settings, Period.parse("2024-03")))
    assert not set(kept.columns) & set(load_contract().identifying_columns)
    assert (month_path(settings, Period.parse("2024-03")).stat().st_mode & 0o077) == 0
    revised = first.iloc[: len(first) // 2]
    store_month(settings, Period.parse("2024-03"), revised)
    frames, missing = read_months(settings, [Period.parse("2024-02"), Period.parse("2024-03")], rules, areas)
    assert missing == ["2024-02"]  # never accepted: a window over it is not built
    assert len(frames[Period.parse("2024-03")]) == len(revised)


def test_the_history_has_its_own_retention(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    rules, areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
    frame = recode(
        generate_extract("2020-01", clients=50, areas=["Exborough"]), rules, areas, pseudonym_key="retention-key-16"
    ).frame
    for period in ("2020-01", "2023-01", "2024-12"):
        store_month(settings, Period.parse(period), frame)
    purge_expired(settings, current_period="2025-01", raw_months=24)
    assert len(stored_months(settings)) == 3  # the raw limit does not touch the history
    entries = purge_expired(settings, current_period="2025-01", raw_months=24, history_months=36)
    assert stored_months(settings) == ["2023-01", "2024-12"]
    assert [e["zone"] for e in entries] == ["history"]
