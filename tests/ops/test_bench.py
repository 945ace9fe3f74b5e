"""The benchmark commands run end to end (figures are in docs/performance.md; nothing here is timed).

`make bench` runs the full sizes; CI runs the same code on tiny months, so that the command, its JSON, its
plot and its goal checks cannot rot between the occasional full runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from treatment_marts.ops.bench import (
    GOAL_GX_RATIO,
    GOAL_PIPELINE_RATIO,
    bench_all,
    goals,
    render,
    render_all,
    scaling_exponent,
)


def test_make_bench_writes_json_a_plot_and_the_goal_ratios_of_one_run(tmp_path: Path) -> None:
    figures = bench_all(
        tmp_path / "out",
        sizes=(1500, 3000),
        validation_clients=800,
        catalogue_clients=None,
        optimal_gap_tables=2,
        areas=["Exborough", "Northton"],  # two areas: the command end to end, not the disclosure workload
    )
    written = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert [r["clients"] for r in written["pipeline"]] == [1500, 3000]
    # each size: every stage of `treatment-marts run` and the bare read + write baseline, all measured
    result = figures["pipeline"][-1]
    stages = [s["stage"] for s in result["stages"]]
    assert stages[:2] == ["generate (not part of the pipeline)", "bare read + write (baseline)"]
    assert stages[2:4] == ["land", "validate"] and stages[4].startswith("protect") and stages[5] == "publish"
    assert result["rows"] > 2000 and all(s["seconds"] > 0 and s["peak_rss_mb"] > 0 for s in result["stages"])
    pipeline = sum(s["seconds"] for s in result["stages"][2:])
    assert abs(result["pipeline_seconds"] - pipeline) < 0.05
    assert result["ratio_to_baseline"] == round(pipeline / result["baseline_seconds"], 1)
    assert 0 < result["settled_rss_before_pipeline_mb"] <= result["peak_rss_mb"]
    assert "bare read+write" in render([result]) and f"{result['rows']:,} episode rows" in render([result])
    assert written["validation"]["rows"] > 0 and written["optimal_gap"]["tables"] >= 1
    assert len(written["machine"]["load_before"]) == 3 and written["machine"]["cpus"] >= 1
    png = (tmp_path / "out" / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    by_goal = {g["goal"].split(" (")[0]: g for g in written["goals"]}
    largest = figures["pipeline"][-1]
    pipeline_goal = by_goal[f"whole pipeline within {GOAL_PIPELINE_RATIO:g}x a bare read + write"]
    assert pipeline_goal["measured"] == largest["ratio_to_baseline"]
    assert pipeline_goal["met"] == (largest["ratio_to_baseline"] <= GOAL_PIPELINE_RATIO)
    gx_goal = by_goal[f"GX within {GOAL_GX_RATIO:g}x the same suite in plain pandas"]
    assert gx_goal["measured"] == figures["validation"]["ratio"]
    assert any(g["goal"].startswith("linear in rows") for g in written["goals"])
    text = render_all(figures)
    assert "goals (issue 19)" in text and "GX/plain" in text and "load average" in text


@pytest.mark.parametrize(
    ("points", "exponent"),
    [
        ([(100_000, 10.0), (1_000_000, 100.0)], 1.0),  # linear
        ([(100_000, 10.0), (1_000_000, 1000.0)], 2.0),  # quadratic
        ([(100_000, 10.0), (1_000_000, 10.0)], 0.0),  # fixed cost only
        ([(100_000, 10.0)], None),  # one size says nothing about scaling
    ],
)
def test_the_scaling_exponent_is_the_log_log_slope(points: list[tuple[int, float]], exponent: float | None) -> None:
    assert scaling_exponent(points) == exponent


def test_goals_are_judged_on_the_largest_month_and_the_worst_peak() -> None:
    def run(rows: int, ratio: float, peak: float) -> dict:
        return {"rows": rows, "ratio_to_baseline": ratio, "peak_rss_mb": peak, "pipeline_seconds": rows / 1000}

    figures = {"pipeline": [run(100_000, 30.0, 3500.0), run(1_000_000, 9.5, 2000.0)], "validation": None}
    judged = {g["unit"]: g for g in goals(figures)}
    assert judged["x"]["measured"] == 9.5 and judged["x"]["met"]
    assert judged["MB"]["measured"] == 3500.0 and not judged["MB"]["met"]
    assert judged["b"]["measured"] == 1.0 and judged["b"]["met"]


def test_bench_loss_figures_are_the_sums_and_extremes_of_the_staged_release(tmp_path: Path) -> None:
    """`bench --loss` reads the staged release's restricted records (the whole command takes minutes: it
    protects a default-size month, so it is run by hand, not here)."""
    import pandas as pd

    from treatment_marts.ops.bench import loss_figures

    a, b = '{"area": "A", "period": "2024-03", "sex": "Male"}', '{"area": "B", "period": "2024-03", "sex": "Male"}'
    pd.DataFrame(
        {
            "mart": ["in_treatment_x", "in_treatment_y", "in_treatment_y", "exits_z"],
            "key": [a, a, b, a],
            "true_count": [2, 2, 40, 1],
            "suppression": ["primary", "primary", "secondary", "primary"],
            "population": ["in_treatment", "in_treatment", "in_treatment", "exits"],
        }
    ).to_parquet(tmp_path / "suppression_log.parquet")
    pd.DataFrame(
        {
            "mart": ["in_treatment_x", "in_treatment_y", "in_treatment_w", "exits_z"],
            "cells": [10, 20, 5, 8],
            "suppressed_cells": [1, 2, 0, 1],
            "individuals_hidden": [2, 42, 0, 1],
            "share_hidden": [0.01, 0.2, 0.0, 0.5],
        }
    ).to_parquet(tmp_path / "information_loss.parquet")
    figures = loss_figures(tmp_path)
    assert figures["in_treatment_individuals_hidden"] == 44
    # a cell shared by two linked marts is one suppressed cell
    assert (figures["in_treatment_cells_suppressed"], figures["in_treatment_primary"]) == (2, 1)
    assert figures["in_treatment_median_percent_hidden"] == 1.0
    assert figures["in_treatment_max_percent_hidden"] == 20.0
    assert figures["flow_max_percent_hidden"] == 50.0
