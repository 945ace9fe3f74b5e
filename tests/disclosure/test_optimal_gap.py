"""The exact least-loss search that measures the suppressor's gap to optimal (benchmark instrument)."""

from __future__ import annotations

import numpy as np

from treatment_marts.disclosure.audit import audit
from treatment_marts.disclosure.optimal_gap import cube_table, gap_on_random_tables, optimal_pattern, summarise_gap
from treatment_marts.disclosure.protect import protect


def test_one_small_cell_needs_a_rectangle_of_four() -> None:
    table = cube_table(np.array([[2, 30, 25], [20, 40, 35]]))
    optimum = optimal_pattern(table, k=3)
    # The primary cell, one partner in its row, one in its column and the opposite corner: 2+20+25+35.
    assert optimum.suppressed_cells == 4 and optimum.loss == 2 + 20 + 25 + 35


def test_the_suppressor_is_never_better_than_the_optimum_and_is_safe() -> None:
    gaps = gap_on_random_tables(3, shape=(2, 3), seed=5)
    assert len(gaps) >= 2
    assert (gaps["suppressor_loss"] >= gaps["optimal_loss"]).all(), "the exact search found a worse pattern"
    summary = summarise_gap(gaps)
    assert summary["optimal_loss"] > 0 and summary["gap_percent"] >= 0


def test_suppressor_closes_rectangles_on_a_classic_table() -> None:
    table = cube_table(np.array([[2, 30, 25], [20, 40, 35]]))
    result = protect([table], k=3)
    assert audit(result.tables, k=3).passed
    assert int(result.tables[0].frame["count"].isna().sum()) == optimal_pattern(table, k=3).suppressed_cells


def test_clean_up_reaches_the_optimum_where_greedy_did_not() -> None:
    table = cube_table(np.array([[22, 13, 4, 3], [6, 14, 2, 21], [8, 39, 30, 3]]))
    optimum = optimal_pattern(table, k=3)
    hidden = lambda result: int(table.frame.loc[result.tables[0].frame["count"].isna(), "count"].sum())  # noqa: E731
    assert hidden(protect([table], k=3, cleanup_audits=0)) > optimum.loss
    assert hidden(protect([table], k=3)) == optimum.loss


def test_gap_on_a_small_sample_is_within_ten_percent() -> None:
    summary = summarise_gap(gap_on_random_tables(8, shape=(3, 4), seed=1))
    assert summary["gap_percent"] <= 10.0, summary
