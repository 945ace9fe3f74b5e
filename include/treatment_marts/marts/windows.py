"""Windows: the periods a needs assessment counts over (rolling 12 months, financial year, trends).

A mart declares its window in marts.yaml (``window:``; ``month`` by default). A window is a run of
calendar months ending with the release's period; its counts are distinct clients over the whole window,
as NDTMS counts them (a client in treatment in three months of it counts once, by their latest episode in
the window):

* stock (``in_treatment``): an episode open at any time in the window;
* flows (``new_presentations``, ``exits``): the triage (or discharge) date falls in the window.

The financial year runs April to March; the **March period closes it** (its data month is the last of the
year, delivered and run in April), so ``financial_year`` marts are built at March releases only and
``fy_to_date`` covers April up to the release's month. A window is built only when every month it covers
has an accepted month in the history (pipeline/history.py); otherwise it is "not built", with the months
missing.

Why the relations below: anyone holding several releases knows, from the definitions, how a window's
cells relate to its months' cells and to overlapping windows (docs/disclosure.md, cross-release policy).
Each relation is true of the true counts up to a *slack* the pipeline computes from the clients (never
published): giving the attacker that number makes them at least as strong as a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from treatment_marts.core.ids import Period
from treatment_marts.marts.populations import EPISODE_KEY, episodes_between

Window = Literal["month", "rolling_12", "fy_to_date", "financial_year", "pooled_3y"]
WINDOWS: tuple[Window, ...] = ("month", "rolling_12", "fy_to_date", "financial_year", "pooled_3y")
# Populations a window can count: the month populations whose definition is a date range.
WINDOWED_POPULATIONS = ("in_treatment", "new_presentations", "exits")
# flows: an episode enters (or leaves) in one month only, so a flow over a window is its months summed,
# less the clients who entered (or left) twice; a stock (in treatment) is not
FLOWS = ("new_presentations", "exits")
FY_START_MONTH = 4  # April
FY_CLOSE_MONTH = 3  # March: the period that closes the financial year
WINDOW_TITLES = {
    "month": "the month",
    "rolling_12": "the 12 months ending with the period",
    "fy_to_date": "the financial year to date (April to the period)",
    "financial_year": "the financial year (April to March), at its close",
    "pooled_3y": "the three financial years ending with the period (pooled)",
}


@dataclass(frozen=True)
class WindowSpan:
    """The months a window covers at one release, oldest first (``months[-1]`` is the release's period)."""

    window: Window
    months: tuple[Period, ...]

    @property
    def first(self) -> Period:
        return self.months[0]

    @property
    def last(self) -> Period:
        return self.months[-1]

    def bounds(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        start = pd.Timestamp(f"{self.first}-01")
        return start, pd.Timestamp(f"{self.last}-01") + pd.offsets.MonthEnd(0)

    def label(self) -> str:
        """``2024-04..2025-03``: the months, for manifests and the IG review (never in a cell key)."""
        return str(self.first) if len(self.months) == 1 else f"{self.first}..{self.last}"


def financial_year(period: Period) -> str:
    """``2024/25`` for any month April 2024 .. March 2025."""
    year = int(str(period)[:4])
    month = int(str(period)[5:7])
    start = year if month >= FY_START_MONTH else year - 1
    return f"{start}/{(start + 1) % 100:02d}"


def _months_back(period: Period, count: int) -> tuple[Period, ...]:
    return tuple(period.minus(back) if back else period for back in range(count - 1, -1, -1))


def window_span(window: Window, period: Period) -> WindowSpan | None:
    """The months ``window`` covers at the release for ``period``, or None when the window is not built at
    this period (``financial_year`` and ``pooled_3y`` close at the March period only)."""
    month = int(str(period)[5:7])
    if window == "month":
        return WindowSpan(window, (period,))
    if window == "rolling_12":
        return WindowSpan(window, _months_back(period, 12))
    if window == "fy_to_date":
        return WindowSpan(window, _months_back(period, (month - FY_START_MONTH) % 12 + 1))
    if window == "financial_year":
        return WindowSpan(window, _months_back(period, 12)) if month == FY_CLOSE_MONTH else None
    if window == "pooled_3y":
        return WindowSpan(window, _months_back(period, 36)) if month == FY_CLOSE_MONTH else None
    raise ValueError(f"unknown window {window!r}; known: {list(WINDOWS)}")


def episodes_in_window(frame: pd.DataFrame, population: str, span: WindowSpan) -> pd.Series:
    """Episodes of ``population`` in the window (the month definitions, with the window's bounds)."""
    if population not in WINDOWED_POPULATIONS:
        raise ValueError(f"population {population!r} has no window; windowed populations: {list(WINDOWED_POPULATIONS)}")
    return episodes_between(frame, population, *span.bounds())


def select_window_population(history: pd.DataFrame, population: str, span: WindowSpan) -> pd.DataFrame:
    """One row per client over the window: their latest episode (by triage date, then agency and episode
    id) among the window's episodes of ``population``. ``history`` holds the recoded months of the window;
    each episode is taken once, as its latest month describes it (the one that carries its discharge)."""
    from treatment_marts.marts.populations import distinct_episodes

    episodes = distinct_episodes(history)
    chosen = episodes[episodes_in_window(episodes, population, span).fillna(False)]
    ordered = chosen.sort_values(["client_key", "triage_date", "agency_code", "episode_id"], kind="stable")
    return ordered.drop_duplicates("client_key", keep="last").reset_index(drop=True)


def not_counted_by_same_episode(part: pd.DataFrame, whole: pd.DataFrame) -> int:
    """Clients of ``part`` that ``whole`` counts by another episode (so possibly in another cell): the
    slack of ``whole[cell] >= part[cell] - slack`` when ``part``'s clients are all clients of ``whole``."""
    matched = part[EPISODE_KEY].merge(whole[EPISODE_KEY].drop_duplicates(), on=EPISODE_KEY, how="left", indicator=True)
    return int((matched["_merge"] == "left_only").sum())


def not_counted_in_parts(whole: pd.DataFrame, parts: list[pd.DataFrame]) -> int:
    """Clients of ``whole`` that no part counts by the same episode: the slack of
    ``whole[cell] <= sum(part[cell]) + slack`` when the parts' windows cover the whole's."""
    if not parts:
        return len(whole)
    counted = pd.concat([p[EPISODE_KEY] for p in parts], ignore_index=True).drop_duplicates()
    matched = whole[EPISODE_KEY].merge(counted, on=EPISODE_KEY, how="left", indicator=True)
    return int((matched["_merge"] == "left_only").sum())


def repeated_in_parts(whole: pd.DataFrame, parts: list[pd.DataFrame]) -> int:
    """Entries of the parts (a flow's months) whose episode ``whole`` does not count: the slack of
    ``whole[cell] >= sum(part[cell]) - slack`` for a flow, 0 when no client enters twice in the window."""
    entries = pd.concat([p[EPISODE_KEY] for p in parts], ignore_index=True)
    matched = whole[EPISODE_KEY].drop_duplicates().merge(entries.drop_duplicates(), on=EPISODE_KEY)
    return len(entries) - len(matched)


def window_scope(population: str, window: str) -> str:
    """A window's marts form their own system of linked tables: ``in_treatment.rolling_12`` (a month
    mart's scope is its population, as before windows)."""
    return population if window == "month" else f"{population}.{window}"
