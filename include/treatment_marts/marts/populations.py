"""Populations: who a mart counts in a period, reduced to one row per client.

Counting each client once, by their latest episode in the population, makes every table additive (a
client cannot sit in two cells of one dimension), which is what margins and the suppression audit assume.
"""

from __future__ import annotations

import pandas as pd


def period_bounds(period: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(f"{period}-01")
    return start, start + pd.offsets.MonthEnd(0)


def _episodes_in(frame: pd.DataFrame, population: str, period: str) -> pd.Series:
    start, end = period_bounds(period)
    triage, discharge = frame["triage_date"], frame["discharge_date"]
    if population == "in_treatment":
        return (triage <= end) & (discharge.isna() | (discharge >= start))
    if population == "new_presentations":
        return (triage >= start) & (triage <= end)
    if population == "exits":
        return discharge.notna() & (discharge >= start) & (discharge <= end)
    raise ValueError(f"unknown population {population!r}")


def select_population(frame: pd.DataFrame, population: str, period: str) -> pd.DataFrame:
    """One row per client: their latest episode (by triage date, then agency and episode id) in the population."""
    episodes = frame[_episodes_in(frame, population, period).fillna(False)]
    ordered = episodes.sort_values(["client_key", "triage_date", "agency_code", "episode_id"], kind="stable")
    return ordered.drop_duplicates("client_key", keep="last").reset_index(drop=True)
