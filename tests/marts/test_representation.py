"""Successful completions not re-presenting within 6 months (PHOF C19-style), from twelve months of extracts."""

from __future__ import annotations

import pandas as pd
import pytest

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.deidentify.recode import recode
from treatment_marts.disclosure.audit import audit
from treatment_marts.disclosure.protect import protect as protect_tables
from treatment_marts.disclosure.tables import MartTable
from treatment_marts.marts import build_mart, dimension_levels, load_marts, select_population
from treatment_marts.marts.populations import (
    NOT_REPRESENTED,
    REPRESENTED,
    SUCCESS,
    completion_window,
    distinct_episodes,
)
from treatment_marts.ops.synth import generate_history

CONFIG = REPO_DIR / "include" / "config"
PERIOD = "2024-12"  # completions January-June 2024, followed up to 31 December 2024
KEY = "0123456789abcdef"
ts = pd.Timestamp


def _episode(client: str, episode: str, triage: str, discharge: str | None, group: str, period: str) -> dict:
    return {
        "client_key": client,
        "agency_code": "N0001",
        "episode_id": episode,
        "period": period,
        "triage_date": ts(triage),
        "discharge_date": ts(discharge) if discharge else pd.NaT,
        "discharge_group": group,
        "area": "Exborough",
        "substance_group": "Alcohol only",
    }


def history() -> pd.DataFrame:
    open_ = "Not discharged"
    rows = [
        _episode("a", "1", "2023-06-01", "2024-02-10", SUCCESS, "2024-02"),  # no later episode
        _episode("b", "2", "2023-01-01", "2024-03-15", SUCCESS, "2024-03"),
        _episode("b", "3", "2024-09-15", None, open_, "2024-12"),  # triage exactly 6 months later: re-presented
        _episode("c", "4", "2023-01-01", "2024-03-15", SUCCESS, "2024-03"),
        _episode("c", "5", "2024-09-16", None, open_, "2024-12"),  # 6 months and a day: not a re-presentation
        _episode("d", "6", "2023-01-01", "2024-04-01", SUCCESS, "2024-04"),
        _episode("d", "7", "2024-03-01", None, open_, "2024-12"),  # still in treatment elsewhere: no journey exit
        _episode("e", "8", "2023-01-01", "2024-04-01", "Dropped out, withdrawn or declined", "2024-04"),
        _episode("f", "9", "2023-01-01", "2023-12-31", SUCCESS, "2023-12"),  # before the window
        _episode("g", "10", "2023-01-01", "2024-07-01", SUCCESS, "2024-07"),  # after the window
        _episode("h", "11", "2023-01-01", None, open_, "2024-01"),  # the same episode, open in January...
        _episode("h", "11", "2023-01-01", "2024-06-30", SUCCESS, "2024-06"),  # ...and completed in June
        _episode("h", "12", "2024-07-20", "2024-08-01", "Dropped out, withdrawn or declined", "2024-08"),
    ]
    return pd.DataFrame(rows)


def test_window_is_the_six_months_before_the_follow_up_window() -> None:
    assert completion_window(PERIOD) == (ts("2024-01-01"), ts("2024-06-30"))
    assert completion_window("2024-03") == (ts("2023-04-01"), ts("2023-09-30"))


def test_representation_boundaries_and_exclusions() -> None:
    chosen = select_population(history(), "completions_followed_up", PERIOD).set_index("client_key")["representation"]
    assert chosen.to_dict() == {"a": NOT_REPRESENTED, "b": REPRESENTED, "c": NOT_REPRESENTED, "h": REPRESENTED}


def test_an_episode_seen_in_several_extracts_counts_once_as_last_described() -> None:
    episodes = distinct_episodes(history())
    h = episodes[episodes["episode_id"] == "11"]
    assert len(h) == 1 and h["discharge_group"].iloc[0] == SUCCESS


def _brute_force(frame: pd.DataFrame, period: str) -> dict[str, str]:
    """The definition again, client by client with plain loops: an independent oracle on generated data."""
    first, last = completion_window(period)
    episodes = {}
    for row in frame.sort_values("period").itertuples():
        episodes[(row.agency_code, row.episode_id)] = row
    by_client: dict[str, list] = {}
    for row in episodes.values():
        by_client.setdefault(row.client_key, []).append(row)
    out = {}
    for client, rows in by_client.items():
        exits = []
        for r in rows:
            if r.discharge_group != SUCCESS or pd.isna(r.discharge_date) or not first <= r.discharge_date <= last:
                continue
            overlapping = [
                o
                for o in rows
                if o is not r
                and o.triage_date <= r.discharge_date
                and (pd.isna(o.discharge_date) or o.discharge_date > r.discharge_date)
            ]
            if not overlapping:
                exits.append(r)
        if not exits:
            continue
        latest = max(exits, key=lambda r: (r.discharge_date, r.agency_code, r.episode_id))
        back = any(
            o is not latest and latest.discharge_date < o.triage_date <= latest.discharge_date + pd.DateOffset(months=6)
            for o in rows
        )
        out[client] = REPRESENTED if back else NOT_REPRESENTED
    return out


@pytest.fixture(scope="module")
def generated_history() -> pd.DataFrame:
    rules, areas = load_rules(CONFIG), load_areas(CONFIG)
    frames = [
        recode(frame, rules, areas, pseudonym_key=KEY).frame
        for _, frame in generate_history("2024-01", 12, clients=2500, areas=["Exborough", "Northton"], seed=11)
    ]
    return pd.concat(frames, ignore_index=True)


def test_generated_history_agrees_with_a_brute_force_oracle(generated_history: pd.DataFrame) -> None:
    chosen = select_population(generated_history, "completions_followed_up", PERIOD)
    assert chosen["client_key"].is_unique
    assert chosen.set_index("client_key")["representation"].to_dict() == _brute_force(generated_history, PERIOD)
    counts = chosen["representation"].value_counts()
    assert counts[NOT_REPRESENTED] > 100 and counts.get(REPRESENTED, 0) > 0


def test_the_mart_builds_from_the_population(generated_history: pd.DataFrame) -> None:
    rules, areas = load_rules(CONFIG), load_areas(CONFIG)
    levels = dimension_levels(rules, areas)
    mart = next(m for m in load_marts(CONFIG, set(levels)).marts if m.population == "completions_followed_up")
    table = build_mart(select_population(generated_history, mart.population, PERIOD), mart, PERIOD, levels)
    cell = table.set_index(list(mart.dimensions))["count"]
    assert (
        cell[("Total", "Total", "Total")]
        == cell[("Total", "Total", NOT_REPRESENTED)] + cell[("Total", "Total", REPRESENTED)]
    )
    # It is a population of its own: protected alone, K3 + secondary suppression, and the audit passes.
    protected = protect_tables(
        [MartTable(mart.name, tuple(mart.dimensions), table)], k=rules.disclosure.k, zeros=rules.disclosure.zeros
    )
    assert audit(protected.tables, k=rules.disclosure.k, zeros=rules.disclosure.zeros, true_counts=protected.log).passed
    published = protected.tables[0].frame["count"].dropna()
    assert not ((published >= 1) & (published <= rules.disclosure.k)).any()


def test_without_twelve_accepted_months_the_mart_is_not_built_and_the_manifest_says_why(tmp_path) -> None:
    """One month alone (no earlier accepted extract): the stage skips the mart rather than publish a partial one."""
    import json
    from pathlib import Path

    from treatment_marts.core.settings import Settings
    from treatment_marts.ops.synth import generate_extract, write_extract
    from treatment_marts.pipeline.land import land
    from treatment_marts.pipeline.protect import protect

    settings = Settings.from_env(data_root=tmp_path / "data")
    period = "2024-03"  # the month tests/pipeline/test_stages.py publishes
    path = write_extract(
        generate_extract(period, clients=800, areas=["Exborough", "Northton"], seed=7), tmp_path / "x.parquet"
    )
    landed = land(settings, period, path, run_id="one")
    result = protect(settings, period, "one", landed.landed_paths)
    assert "completions_representation_area_substance" not in result.marts
    assert "unmet_need_area_substance" in result.marts
    manifest = json.loads((Path(result.staged_dir) / "run_manifest.json").read_text())
    reason = manifest["marts_not_built"]["completions_representation_area_substance"]
    assert reason.startswith("no accepted extract for 2023-04") and reason.endswith("2024-02")
