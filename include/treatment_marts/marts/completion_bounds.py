"""What the exits marts of a completion window's months tell about the completions mart (issue 13).

Every client counted in `completions_followed_up` left treatment successfully in one month of its
completion window, and that month's release published the exits by reason: so a completions cell (area x
substance group, both representation levels together) is at most the sum of the "Successful completion"
exits of the same cell over the window's months. An attacker holding those releases uses the sum to narrow
a suppressed completions cell (Little Haven / Alcohol only / "Did not re-present" came out exactly 3), so
the release audit must hold the same bound.
"""

from __future__ import annotations

import pandas as pd

from treatment_marts.core.labels import TOTAL
from treatment_marts.marts.builder import build_mart
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.populations import SUCCESS, completion_window, select_population

EXIT_DIMENSIONS = ("area", "substance_group", "discharge_group")


def window_months(period: str) -> list[str]:
    """The months whose exits hold the completions the release for ``period`` counts."""
    first, last = completion_window(period)
    return [str(p) for p in pd.period_range(first, last, freq="M")]


def true_exit_sums(
    history: pd.DataFrame, period: str, exits_mart: MartDefinition, levels: dict[str, list[str]]
) -> pd.DataFrame:
    """Per area x substance group cell (margins included, `Total` labels), the true sum over the completion
    window's months of the successful exits each month's exits mart counts, rebuilt from the accepted
    extracts with the mart's own definition and builder. Used only to make the attacker's relation true
    (``completion_bound_slack``); the attacker's own bound is ``published_exit_bounds``."""
    if tuple(exits_mart.dimensions) != EXIT_DIMENSIONS:
        raise ValueError(f"mart {exits_mart.name}: the completion bound needs dimensions {EXIT_DIMENSIONS}")
    months = []
    for month in window_months(period):
        frame = history[history["period"].astype(str) == month]
        table = build_mart(select_population(frame, "exits", month), exits_mart, month, levels)
        months.append(table[table["discharge_group"] == SUCCESS])
    return _summed(months, "count")


def published_exit_bounds(published: dict[str, pd.DataFrame | None], period: str) -> pd.DataFrame:
    """What an attacker holding the window months' releases knows: per area x substance group cell, the
    sum over the months of each successful-exits cell as published, or, where that month withheld it, the
    upper end of its protection interval from that month's audit (``upper``; the most the attacker can
    prove it holds). A cell is bounded only when every month of the window was published with it: a month
    not (yet) released gives the attacker nothing. ``published``: month -> that month's exits mart with
    ``upper`` (count, or audit upper where withheld), or None when the month has no release."""
    months = []
    for month in window_months(period):
        frame = published.get(month)
        if frame is None:
            return pd.DataFrame(columns=["area", "substance_group", "bound"])
        months.append(frame[frame["discharge_group"] == SUCCESS])
    return _summed(months, "upper").dropna(subset=["bound"])


def _summed(months: list[pd.DataFrame], column: str) -> pd.DataFrame:
    dims = ["area", "substance_group"]
    if not months:
        return pd.DataFrame(columns=[*dims, "bound"])
    frame = pd.concat(months)[[*dims, column]]
    frame[column] = frame[column].astype("Float64")
    # min_count: a cell with no bound in one month has no bound over the window
    grouped = frame.groupby(dims, sort=False)[column]
    summed = grouped.sum(min_count=1).where(grouped.count() == grouped.size()).reset_index(name="bound")
    summed["bound"] = summed["bound"].astype(float)
    return summed


def completion_bound_slack(completions: pd.DataFrame, truth: pd.DataFrame) -> float:
    """How far any completions cell (``completions``: its mart, true counts) exceeds the true sum of its
    window's successful exits (``true_exit_sums``): 0 when each completion is one of those exits in the
    same cell. A client whose successful exit is not their latest exit of that month is counted in another
    exits cell; this slack covers such clients, so the relation stays true. Known to the pipeline, never
    published."""
    cells = completions[completions["representation"] == TOTAL][["area", "substance_group", "count"]]
    joined = cells.merge(truth, on=["area", "substance_group"], how="left")
    excess = joined["count"].astype(float) - joined["bound"].fillna(0.0)
    return float(max(0.0, excess.max())) if len(excess) else 0.0
