"""Benchmarks (not tests): per-stage time and peak memory, a bare read+write baseline, the scaling curve.

Speed and memory targets live here, never in timed tests. Peak memory is the process's resident set size
sampled every 20 ms during each stage (psutil), so it includes everything Python and Arrow hold.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.memory import release_memory
from treatment_marts.core.settings import Settings


@dataclass
class StageMeasure:
    stage: str
    seconds: float
    peak_rss_mb: float
    rows: int | None = None
    extra: dict = field(default_factory=dict)


class _PeakSampler:
    """Samples this process's RSS in a thread; `peak` is the maximum seen since `start`."""

    def __init__(self, interval: float = 0.02) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    def start(self) -> None:
        self.peak = self._process.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        return self.peak


@contextmanager
def measure(stage: str, results: list[StageMeasure], rows: int | None = None) -> Iterator[StageMeasure]:
    sampler = _PeakSampler()
    sampler.start()
    started = time.perf_counter()
    record = StageMeasure(stage=stage, seconds=0.0, peak_rss_mb=0.0, rows=rows)
    try:
        yield record
    finally:
        record.seconds = round(time.perf_counter() - started, 3)
        record.peak_rss_mb = round(sampler.stop() / 2**20, 1)
        results.append(record)


def bench_pipeline(
    clients: int, *, workdir: Path, fmt: str = "parquet", seed: int = 20240101, period: str = "2024-03"
) -> dict:
    """Generate a month of ``clients`` and run every stage in-process, measuring each."""
    from treatment_marts.ops.synth import generate_extract, write_extract
    from treatment_marts.pipeline.run import run_period

    results: list[StageMeasure] = []
    with measure("generate (not part of the pipeline)", results) as m:
        frame = generate_extract(period, clients=clients, seed=seed)
        m.rows = len(frame)
    rows = len(frame)
    extract = write_extract(frame, workdir / "inbox" / f"extract.{fmt}")
    del frame
    before_pipeline = settled_rss_mb()  # the generator's frames are gone: they are not the pipeline's memory

    with measure("bare read + write (baseline)", results, rows):
        bare = pd.read_parquet(extract) if fmt == "parquet" else pd.read_csv(extract, dtype=str)
        bare.to_parquet(workdir / "bare.parquet", index=False)
        del bare

    settings = Settings.from_env(data_root=workdir / "data")
    # The benchmark measures the pipeline `treatment-marts run` runs (run_period: protect reads the
    # accepted files, memory released between stages), timing each stage through its hook.
    labels = {"protect": "protect (recode, marts, suppress, audit)"}

    def around_stage(stage: str) -> AbstractContextManager[StageMeasure]:
        return measure(labels.get(stage, stage), results, rows)

    run = run_period(settings, Period.parse(period), extract, RunId("bench"), around_stage=around_stage)
    protect_measure = next(r for r in results if r.stage.startswith("protect"))
    protect_measure.extra = {"marts": len(run.protect.marts), "suppressed_cells": run.protect.suppressed_cells}

    pipeline = [r for r in results if r.stage in {"land", "validate", "publish"} or r.stage.startswith("protect")]
    total = sum(r.seconds for r in pipeline)
    baseline = next(r for r in results if r.stage.startswith("bare"))
    return {
        "clients": clients,
        "rows": rows,
        "format": fmt,
        "stages": [asdict(r) for r in results],
        "pipeline_seconds": round(total, 2),
        "baseline_seconds": baseline.seconds,
        "ratio_to_baseline": round(total / baseline.seconds, 1) if baseline.seconds else None,
        "peak_rss_mb": max(r.peak_rss_mb for r in pipeline),
        "settled_rss_before_pipeline_mb": round(before_pipeline, 1),
    }


def bench_validation(clients: int, *, workdir: Path, seed: int = 20240101, period: str = "2024-03") -> dict:
    """GX with the full suite vs the same rules in plain pandas (plain_checks), on one generated month."""
    from treatment_marts.ops.synth import generate_extract
    from treatment_marts.validation.gx_runner import (
        suite_parameters,
        suite_path,
        validate_extract,
        with_derived_columns,
    )
    from treatment_marts.validation.plain_checks import evaluate, load_suite

    frame = generate_extract(period, clients=clients, seed=seed)
    settings = Settings.from_env(data_root=workdir / "data")
    results: list[StageMeasure] = []
    with measure("GX suite (validate_extract)", results, len(frame)):
        validate_extract(frame, period=period, settings=settings, run_id="bench", source="bench")
    with measure("same rules, plain pandas", results, len(frame)):
        evaluate(with_derived_columns(frame), load_suite(suite_path(settings)), suite_parameters(period))
    gx_run, plain = results
    return {
        "rows": len(frame),
        "gx_seconds": gx_run.seconds,
        "plain_seconds": plain.seconds,
        "gx_rows_per_second": round(len(frame) / gx_run.seconds),
        "ratio": round(gx_run.seconds / plain.seconds, 1) if plain.seconds else None,
        "stages": [asdict(r) for r in results],
    }


def bench_catalogue(clients: int, *, workdir: Path, seed: int = 20240101, period: str = "2024-03") -> dict:
    """Build + publish of the whole mart catalogue for one month of ``clients`` (validation not included).

    Build = the protect stage (recode, every mart, suppression, audit, derived marts); publish = Parquet
    release, SQL warehouse (SQLite), suppression log, IG report and exports. Peak RSS is the process's.
    """
    from treatment_marts.ops.synth import generate_extract, write_extract
    from treatment_marts.pipeline.land import land
    from treatment_marts.pipeline.protect import protect
    from treatment_marts.pipeline.publish import publish

    frame = generate_extract(period, clients=clients, seed=seed)
    rows = len(frame)
    extract = write_extract(frame, workdir / "inbox" / "extract.parquet")
    del frame
    settings = Settings.from_env(data_root=workdir / "data")
    checked, run_id = Period.parse(period), RunId("bench")
    paths = land(settings, checked, extract, run_id).landed_paths  # validation is not part of this benchmark
    results: list[StageMeasure] = []
    sampler = _PeakSampler()
    sampler.start()
    started = time.perf_counter()
    with measure("build (recode, marts, suppress, audit)", results, rows) as m:
        protected = protect(settings, checked, run_id, paths)
        m.extra = {"marts": len(protected.marts), "suppressed_cells": protected.suppressed_cells}
    with measure("publish (Parquet, warehouse, log, report, exports)", results, rows):
        published = publish(settings, checked, run_id, protected.staged_dir)
    total = round(time.perf_counter() - started, 2)
    peak = round(sampler.stop() / 2**20, 1)
    cells = sum(len(pd.read_parquet(p)) for p in published.marts.values())
    return {
        "clients": clients,
        "rows": rows,
        "marts": len(published.marts),
        "cells": cells,
        "stages": [asdict(r) for r in results],
        "build_publish_seconds": total,
        "peak_rss_mb": peak,
    }


def settled_rss_mb() -> float:
    """This process's resident set after a full GC and returning free heap pages to the OS (glibc), so
    that what is left is what the process still holds, not allocator slack."""
    release_memory()
    return psutil.Process().memory_info().rss / 2**20


def load_config(target: Path, areas: int, source: Path | None = None) -> Path:
    """A copy of the configuration with ``areas`` areas: the configured ones first, then synthetic areas
    cloned from them (new GSS-style code and name), so the load benchmark can run 20 areas."""
    import yaml

    from treatment_marts.core.settings import REPO_DIR

    shutil.copytree(source or REPO_DIR / "include" / "config", target)
    config = yaml.safe_load((target / "areas.yaml").read_text())
    configured = config["areas"]
    chosen = configured[:areas]
    for i in range(len(chosen), areas):
        clone = dict(configured[i % len(configured)])
        clone.update(code=f"E06951{i:03d}", name=f"Loadshire {i + 1}", location="Other")
        chosen.append(clone)
    config["areas"] = chosen
    (target / "areas.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def bench_load(
    months: int,
    *,
    workdir: Path,
    areas: int | list[str] = 20,
    clients: int | None = None,
    start: str = "2023-01",
    seed: int = 20240101,
) -> dict:
    """A backfill: ``months`` consecutive periods through the whole pipeline, back to back, in this process.

    Records each period's time and the settled RSS after it; ``slope_mb_per_period`` is the least-squares
    growth over the periods after the first (which pays for imports and the GX context), the figure the
    load test bounds. ``areas`` is a count (configured areas first, then synthetic ones) or a list of names.
    """
    import numpy as np

    from treatment_marts.ops.synth import generate_history, write_extract
    from treatment_marts.pipeline.run import run_period

    settings = Settings.from_env(data_root=workdir / "data")
    if isinstance(areas, int):
        config_dir, names = load_config(workdir / "config", areas, settings.config_dir), None
        settings = dataclasses.replace(settings, config_dir=config_dir)
    else:
        config_dir, names = settings.config_dir, list(areas)
    periods: list[dict[str, Any]] = []
    for period, frame in generate_history(
        start, months, clients=clients, areas=names, seed=seed, config_dir=config_dir
    ):
        rows = len(frame)
        extract = write_extract(frame, workdir / "inbox" / f"period={period}" / "extract.parquet")
        del frame
        started = time.perf_counter()
        run_period(settings, Period.parse(period), extract.parent, run_id=RunId(f"load_{period}"))
        seconds = time.perf_counter() - started
        periods.append(
            {"period": period, "rows": rows, "seconds": round(seconds, 2), "rss_mb": round(settled_rss_mb(), 1)}
        )
        extract.unlink()
    rss = [p["rss_mb"] for p in periods]
    steady = rss[1:]
    slope = float(np.polyfit(range(len(steady)), steady, 1)[0]) if len(steady) >= 2 else 0.0
    return {
        "months": months,
        "areas": areas if isinstance(areas, int) else len(areas),
        "periods": periods,
        "slope_mb_per_period": round(slope, 2),
        "rss_first_mb": rss[0],
        "rss_last_mb": rss[-1],
        "seconds_total": round(sum(p["seconds"] for p in periods), 1),
    }


def render_load(result: dict) -> str:
    lines = [
        f"\nbackfill: {result['months']} months x {result['areas']} areas, back to back in one process",
        f"  {'period':8s} {'rows':>9s} {'seconds':>9s} {'settled RSS MB':>15s}",
    ]
    for p in result["periods"]:
        lines.append(f"  {p['period']:8s} {p['rows']:9,d} {p['seconds']:9.1f} {p['rss_mb']:15.0f}")
    lines.append(
        f"  total {result['seconds_total']:.0f} s; RSS {result['rss_first_mb']:.0f} -> {result['rss_last_mb']:.0f} MB; "
        f"growth after the first period {result['slope_mb_per_period']:+.2f} MB/period"
    )
    return "\n".join(lines)


def bench_scaling(client_sizes: list[int], *, fmt: str = "parquet") -> list[dict]:
    out = []
    for clients in client_sizes:
        with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
            out.append(bench_pipeline(clients, workdir=Path(tmp), fmt=fmt))
    return out


def render(results: list[dict]) -> str:
    lines = []
    for result in results:
        lines.append(f"\n{result['clients']:,} clients, {result['rows']:,} episode rows ({result['format']})")
        lines.append(f"  {'stage':45s} {'seconds':>9s} {'peak RSS MB':>12s}")
        for stage in result["stages"]:
            lines.append(f"  {stage['stage']:45s} {stage['seconds']:9.2f} {stage['peak_rss_mb']:12.0f}")
        lines.append(
            f"  pipeline total {result['pipeline_seconds']:.1f} s = {result['ratio_to_baseline']}x bare read+write; "
            f"peak {result['peak_rss_mb']:.0f} MB (process settled at {result['settled_rss_before_pipeline_mb']:.0f} MB "
            "before the pipeline)"
        )
    return "\n".join(lines)


def _write_figures(json_out: Path | None, figures: dict | list) -> None:
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2))


def main(
    clients: list[int],
    fmt: str,
    json_out: Path | None,
    validation_clients: int | None = None,
    catalogue_clients: int | None = None,
    load: tuple[int, int] | None = None,
    load_clients: int | None = None,
) -> int:
    if load:
        months, area_count = load
        with tempfile.TemporaryDirectory(prefix="tm-bench-load-") as tmp:
            figures = bench_load(months, workdir=Path(tmp), areas=area_count, clients=load_clients)
        print(render_load(figures))
        _write_figures(json_out, figures)
        return 0
    if catalogue_clients:
        with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
            figures = bench_catalogue(catalogue_clients, workdir=Path(tmp))
        for stage in figures["stages"]:
            print(f"  {stage['stage']:55s} {stage['seconds']:9.2f} s {stage['peak_rss_mb']:9.0f} MB")
        print(
            f"catalogue of {figures['marts']} marts ({figures['cells']:,} cells) from {figures['rows']:,} episode rows: "
            f"build + publish {figures['build_publish_seconds']:.1f} s, peak RSS {figures['peak_rss_mb']:.0f} MB"
        )
        _write_figures(json_out, figures)
        return 0
    if validation_clients:
        with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
            figures = bench_validation(validation_clients, workdir=Path(tmp))
        print(
            f"validation of {figures['rows']:,} rows: GX {figures['gx_seconds']:.1f} s "
            f"({figures['gx_rows_per_second']:,} rows/s), plain pandas {figures['plain_seconds']:.1f} s: "
            f"GX/plain = {figures['ratio']}x"
        )
        _write_figures(json_out, figures)
        return 0
    results = bench_scaling(clients, fmt=fmt)
    print(render(results))
    _write_figures(json_out, results)
    return 0
