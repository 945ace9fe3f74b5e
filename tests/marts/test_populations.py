"""Populations count each client once, by their latest episode, so tables are additive."""

from __future__ import annotations

import pandas as pd

from treatment_marts.marts import select_population


def episodes() -> pd.DataFrame:
    ts = pd.Timestamp
    return pd.DataFrame(
        {
            "client_key": ["a", "a", "b", "c", "d"],
            "agency_code": ["N0001"] * 5,
            "episode_id": ["1", "2", "3", "4", "5"],
            "triage_date": [ts("2023-01-05"), ts("2024-03-10"), ts("2024-02-01"), ts("2024-04-02"), ts("2022-06-01")],
            "discharge_date": [ts("2024-01-31"), pd.NaT, ts("2024-03-01"), pd.NaT, ts("2024-02-29")],
            "area": ["Exborough", "Northton", "Exborough", "Exborough", "Northton"],
        }
    )


def test_in_treatment_means_open_at_any_time_in_the_month() -> None:
    chosen = select_population(episodes(), "in_treatment", "2024-03")
    assert sorted(chosen["client_key"]) == ["a", "b"]  # c starts in April, d left in February
    # client a had two episodes; the latest one (Northton, March) is the one counted
    assert chosen.set_index("client_key").loc["a", "area"] == "Northton"


def test_new_presentations_and_exits() -> None:
    assert list(select_population(episodes(), "new_presentations", "2024-03")["client_key"]) == ["a"]
    assert list(select_population(episodes(), "exits", "2024-03")["client_key"]) == ["b"]
    assert list(select_population(episodes(), "exits", "2024-02")["client_key"]) == ["d"]
