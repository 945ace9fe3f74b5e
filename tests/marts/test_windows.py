"""Windows (marts/windows.py): which months a window covers, and counts of distinct clients over them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from treatment_marts.core.config import ConfigError
from treatment_marts.core.ids import Period
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts import load_marts, select_population
from treatment_marts.marts.windows import (
    financial_year,
    not_counted_by_same_episode,
    not_counted_in_parts,
    select_window_population,
    window_span,
)


@pytest.mark.parametrize(
    ("window", "period", "first", "months"),
    [
        ("month", "2024-07", "2024-07", 1),
        ("rolling_12", "2024-07", "2023-08", 12),
        ("fy_to_date", "2024-04", "2024-04", 1),
        ("fy_to_date", "2025-02", "2024-04", 11),
        ("fy_to_date", "2025-03", "2024-04", 12),
        ("financial_year", "2025-03", "2024-04", 12),
        ("pooled_3y", "2025-03", "2022-04", 36),
    ],
)
def test_a_window_covers_the_months_ending_with_the_period(window, period, first, months) -> None:
    span = window_span(window, Period.parse(period))
    assert span is not None and span.last == period and span.first == first and len(span.months) == months


def test_the_financial_year_closes_at_the_march_period_only() -> None:
    assert window_span("financial_year", Period.parse("2025-04")) is None
    assert window_span("pooled_3y", Period.parse("2024-12")) is None
    assert financial_year(Period.parse("2025-03")) == "2024/25" and financial_year(Period.parse("2024-04")) == "2024/25"


def months_of(episodes: list[tuple[str, str, str, str | None, str]]) -> pd.DataFrame:
    """Monthly extracts as the provider sends them: each month holds the episodes open in it (as they
    stand at its end: an episode discharged later shows no discharge yet)."""
    frame = pd.DataFrame(episodes, columns=["client_key", "episode_id", "triage_date", "discharge_date", "sex"])
    frame["agency_code"] = "N1"
    frame["triage_date"] = pd.to_datetime(frame["triage_date"])
    frame["discharge_date"] = pd.to_datetime(frame["discharge_date"])
    out = []
    for month in pd.period_range("2024-04", "2024-06", freq="M"):
        start, end = month.start_time, month.end_time.normalize()
        open_ = (frame["triage_date"] <= end) & (frame["discharge_date"].isna() | (frame["discharge_date"] >= start))
        rows = frame[open_].copy()
        rows["discharge_date"] = rows["discharge_date"].where(rows["discharge_date"] <= end)
        out.append(rows.assign(period=str(month)))
    return pd.concat(out, ignore_index=True)


EPISODES = [
    ("stays", "1", "2023-01-01", None, "F"),  # in treatment all quarter: once, not three times
    ("short", "2", "2024-05-03", "2024-05-20", "M"),  # enters and leaves inside the window
    ("moves", "3", "2024-02-01", "2024-04-10", "F"),  # leaves one episode ...
    ("moves", "4", "2024-06-01", None, "M"),  # ... and starts another: counted by the latest
]


def test_a_window_counts_each_client_once_by_their_latest_episode() -> None:
    history = months_of(EPISODES)
    span = window_span("fy_to_date", Period.parse("2024-06"))
    assert span is not None
    stock = select_window_population(history, "in_treatment", span)
    assert sorted(stock["client_key"]) == ["moves", "short", "stays"]
    assert stock.set_index("client_key").loc["moves", "episode_id"] == "4"
    flows = select_window_population(history, "new_presentations", span)
    assert sorted(flows["client_key"]) == ["moves", "short"]
    exits = select_window_population(history, "exits", span)  # discharges as the later months carry them
    assert sorted(exits["client_key"]) == ["moves", "short"]


def test_the_slacks_count_the_clients_a_window_counts_by_another_episode() -> None:
    history = months_of(EPISODES)
    span = window_span("fy_to_date", Period.parse("2024-06"))
    assert span is not None
    window = select_window_population(history, "in_treatment", span)
    months = [
        select_population(history[history["period"] == m], "in_treatment", m) for m in ("2024-04", "2024-05", "2024-06")
    ]
    # April counts "moves" by episode 3, the window by episode 4: a cell of April may exceed the window's
    assert [not_counted_by_same_episode(m, window) for m in months] == [1, 0, 0]
    # every client of the window is counted by the same episode in some month: window <= sum of months
    assert not_counted_in_parts(window, months) == 0
    # "short" is in no month-end stock, but in May's stock (open at any time in the month)
    assert "short" in set(months[1]["client_key"])


def write_catalogue(tmp_path: Path, edit) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    data = yaml.safe_load((REPO_DIR / "include" / "config" / "marts.yaml").read_text())
    edit(data)
    (config / "marts.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def test_the_catalogue_declares_rolling_year_to_date_and_closed_year_marts() -> None:
    config = load_marts(REPO_DIR / "include" / "config")
    windows = {d.window for d in config.marts}
    assert {"month", "rolling_12", "fy_to_date", "financial_year"} <= windows
    unmet = next(d for d in config.derived() if d.window == "rolling_12")
    assert unmet.derived_from == "in_treatment_substance_area_sex_rolling_12"
    assert all(d.window == "month" for ds in config.by_population().values() for d in ds)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window": "fortnight"}, "window"),
        ({"window": "rolling_12", "population": "completions_followed_up"}, "needs a population"),
    ],
)
def test_a_window_is_validated_strictly(tmp_path: Path, change: dict, message: str) -> None:
    def edit(data: dict) -> None:
        data["marts"][0].update(change)

    with pytest.raises(ConfigError, match=message):
        load_marts(write_catalogue(tmp_path, edit))


def test_a_derived_mart_has_its_sources_window(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        unmet = next(m for m in data["marts"] if m["name"] == "unmet_need_area_substance_rolling_12")
        unmet["window"] = "month"

    with pytest.raises(ConfigError, match="differs from its source"):
        load_marts(write_catalogue(tmp_path, edit))
