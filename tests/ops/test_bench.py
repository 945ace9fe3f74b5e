"""The benchmark command runs end to end (figures are in docs/performance.md; nothing here is timed)."""

from __future__ import annotations

from pathlib import Path

from treatment_marts.ops.bench import bench_pipeline, render


def test_the_pipeline_benchmark_measures_every_stage_and_the_bare_baseline(tmp_path: Path) -> None:
    result = bench_pipeline(3000, workdir=tmp_path)
    stages = [s["stage"] for s in result["stages"]]
    assert stages[:2] == ["generate (not part of the pipeline)", "bare read + write (baseline)"]
    assert stages[2:4] == ["land", "validate"] and stages[4].startswith("protect") and stages[5] == "publish"
    assert result["rows"] > 2000 and all(s["seconds"] > 0 and s["peak_rss_mb"] > 0 for s in result["stages"])
    pipeline = sum(s["seconds"] for s in result["stages"][2:])
    assert abs(result["pipeline_seconds"] - pipeline) < 0.05
    assert result["ratio_to_baseline"] == round(pipeline / result["baseline_seconds"], 1)
    assert 0 < result["settled_rss_before_pipeline_mb"] <= result["peak_rss_mb"]
    text = render([result])
    assert "bare read+write" in text and f"{result['rows']:,} episode rows" in text
    # the run published its marts like `treatment-marts run` would
    assert any((tmp_path / "data" / "public" / "marts").rglob("*.parquet"))
