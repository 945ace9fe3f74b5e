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
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.memory import release_memory
from treatment_marts.core.settings import Settings
from treatment_marts.marts.windows import FLOWS


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
    clients: int,
    *,
    workdir: Path,
    fmt: str = "parquet",
    seed: int = 20240101,
    period: str = "2024-03",
    areas: Sequence[str] | None = None,
) -> dict:
    """Generate a month of ``clients`` and run every stage in-process, measuring each. ``areas``: only
    these configured areas send an extract (default: all; the test suite's smoke run takes two)."""
    from treatment_marts.ops.synth import generate_extract, write_extract
    from treatment_marts.pipeline.run import run_period

    results: list[StageMeasure] = []
    with measure("generate (not part of the pipeline)", results) as m:
        frame = generate_extract(period, clients=clients, seed=seed, areas=areas)
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


def bench_validation(
    clients: int, *, workdir: Path, seed: int = 20240101, period: str = "2024-03", rounds: int = 2
) -> dict:
    """GX with the full suite vs the same rules in plain pandas (plain_checks), on one generated month.

    A deployment registers the suite in its GX context once (again only when the committed suite changes),
    so that first run is timed on its own ("first_run_seconds") and the comparison is on validations of an
    existing context. GX and plain pandas alternate ``rounds`` times; the ratio is of the fastest reading
    of each (on a shared machine the minimum is the reading least disturbed by other jobs)."""
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
    first: list[StageMeasure] = []
    with measure("GX first run (context and suite registration, 1,000 rows)", first, 1000):
        validate_extract(frame.head(1000), period=period, settings=settings, run_id="first", source="first")
    results: list[StageMeasure] = []
    for round_ in range(1, rounds + 1):
        with measure(f"GX suite (validate_extract), round {round_}", results, len(frame)):
            validate_extract(frame, period=period, settings=settings, run_id=f"bench{round_}", source="bench")
        with measure(f"same rules, plain pandas, round {round_}", results, len(frame)):
            evaluate(with_derived_columns(frame), load_suite(suite_path(settings)), suite_parameters(period))
    gx_seconds = min(r.seconds for r in results if r.stage.startswith("GX"))
    plain_seconds = min(r.seconds for r in results if r.stage.startswith("same"))
    return {
        "rows": len(frame),
        "gx_seconds": gx_seconds,
        "plain_seconds": plain_seconds,
        "gx_rows_per_second": round(len(frame) / gx_seconds),
        "ratio": round(gx_seconds / plain_seconds, 2) if plain_seconds else None,
        "ratios_per_round": [
            round(gx.seconds / plain.seconds, 2) for gx, plain in zip(results[::2], results[1::2], strict=True)
        ],
        "first_run_seconds": first[0].seconds,
        "stages": [asdict(r) for r in first + results],
    }


def landed_month(
    workdir: Path, period: str, clients: int | None, seed: int, run_id: RunId
) -> tuple[Settings, Period, RunId, list[str], int]:
    """A generated month landed under ``workdir`` (validation is not part of these benchmarks): the
    settings, period, run id, landed paths and episode rows the stage benchmarks start from."""
    from treatment_marts.ops.synth import generate_extract, write_extract
    from treatment_marts.pipeline.land import land

    frame = generate_extract(period, clients=clients, seed=seed)
    rows = len(frame)
    extract = write_extract(frame, workdir / "inbox" / "extract.parquet")
    del frame
    settings = Settings.from_env(data_root=workdir / "data")
    checked = Period.parse(period)
    return settings, checked, run_id, land(settings, checked, extract, run_id).landed_paths, rows


def bench_catalogue(clients: int, *, workdir: Path, seed: int = 20240101, period: str = "2024-03") -> dict:
    """Build + publish of the whole mart catalogue for one month of ``clients`` (validation not included).

    Build = the protect stage (recode, every mart, suppression, audit, derived marts); publish = Parquet
    release, SQL warehouse (SQLite), suppression log, IG report and exports. Peak RSS is the process's.
    """
    from treatment_marts.pipeline.protect import protect
    from treatment_marts.pipeline.publish import publish

    settings, checked, run_id, paths, rows = landed_month(workdir, period, clients, seed, RunId("bench"))
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


# --- `bench --loss`: issue 14's information-loss figures on a generated default month --------------------

WHITE = "White"
NOT_A_MINORITY = {WHITE, "Other or not stated", "(missing)"}


def bench_loss(workdir: Path, *, seed: int = 20240101, period: str = "2024-03", clients: int | None = None) -> dict:
    """Issue 14's figures on one generated month (``treatment-marts generate`` defaults: every configured
    area at its areas.yaml size): individuals hidden in the in-treatment linked set, cells suppressed
    (primary, secondary), % of individuals hidden per mart, ethnic minorities' withheld share beside
    White's, and the protect stage's time. Validation is not run (it changes nothing protect sees)."""
    import os

    from treatment_marts.pipeline.protect import protect
    from treatment_marts.pipeline.review import WITHHELD, loss_by_group

    settings, checked, run_id, paths, rows = landed_month(workdir, period, clients, seed, RunId("bench_loss"))
    load_before = os.getloadavg()
    started = time.perf_counter()
    protected = protect(settings, checked, run_id, paths)
    seconds = round(time.perf_counter() - started, 1)
    figures = loss_figures(protected.staged_dir)
    figures.update(
        rows=rows,
        seed=seed,
        period=period,
        protect_seconds=seconds,
        load_average=[round(x, 1) for x in (*load_before, *os.getloadavg())],
    )
    marts = {p.stem: pd.read_parquet(p) for p in sorted((protected.staged_dir / "marts").glob("*.parquet"))}
    log = pd.read_parquet(protected.staged_dir / "suppression_log.parquet", columns=["mart", "suppression", "cell"])
    cells = pd.DataFrame([json.loads(c) for c in log["cell"].astype(str)]) if len(log) else pd.DataFrame()
    logged = pd.concat([log[["mart", "suppression"]].reset_index(drop=True), cells], axis=1)
    ethnic = loss_by_group(marts, logged, WITHHELD, "ethnicity_group")
    figures["ethnic_groups"] = ethnic
    white = next((g["percent_withheld"] for g in ethnic if g["value"] == WHITE), 0.0)
    minority = [g["percent_withheld"] for g in ethnic if g["value"] not in NOT_A_MINORITY]
    figures["white_percent_withheld"] = white
    figures["minority_percent_withheld_max"] = max(minority, default=0.0)
    figures["minority_to_white_ratio"] = round(max(minority) / white, 2) if minority and white else None
    return figures


def loss_figures(staged: Path) -> dict:
    """The loss figures of a staged release (its restricted suppression log and information loss)."""
    log = pd.read_parquet(staged / "suppression_log.parquet")
    loss = pd.read_parquet(staged / "information_loss.parquet")
    in_treatment = log[log["population"] == "in_treatment"]
    distinct = in_treatment.drop_duplicates("key")
    population_of = log.drop_duplicates("mart").set_index("mart")["population"].to_dict()
    marts = [
        {
            "mart": str(r.mart),
            "population": population_of.get(str(r.mart)),
            "cells": int(r.cells),
            "suppressed_cells": int(r.suppressed_cells),
            "individuals_hidden": int(r.individuals_hidden),
            "percent_hidden": round(100 * float(r.share_hidden), 1),
        }
        for r in loss.itertuples()
    ]
    treated = [m for m in marts if str(m["mart"]).startswith("in_treatment")]
    flows = [m for m in marts if str(m["mart"]).startswith(FLOWS)]  # the goal's flow marts (completions: a window mart)
    shares = sorted(m["percent_hidden"] for m in treated)
    return {
        "in_treatment_individuals_hidden": sum(m["individuals_hidden"] for m in treated),
        "in_treatment_cells_suppressed": len(distinct),
        "in_treatment_primary": int((distinct["suppression"] == "primary").sum()),
        "in_treatment_secondary": int((distinct["suppression"] == "secondary").sum()),
        "in_treatment_median_percent_hidden": float(pd.Series(shares).median()) if shares else 0.0,
        "in_treatment_max_percent_hidden": max(shares, default=0.0),
        "flow_max_percent_hidden": max((m["percent_hidden"] for m in flows), default=0.0),
        "marts": marts,
    }


def render_loss(f: dict) -> str:
    lines = [
        f"\ninformation loss on {f['period']} (seed {f['seed']}, {f['rows']:,} episode rows):",
        f"  in-treatment linked set: {f['in_treatment_individuals_hidden']:,} individuals hidden in suppressed inner "
        f"cells; {f['in_treatment_cells_suppressed']:,} distinct cells suppressed ({f['in_treatment_primary']:,} primary, "
        f"{f['in_treatment_secondary']:,} secondary)",
        f"  % individuals hidden per in-treatment mart: median {f['in_treatment_median_percent_hidden']:.1f}%, "
        f"max {f['in_treatment_max_percent_hidden']:.1f}%; max per flow mart {f['flow_max_percent_hidden']:.1f}%",
        f"  cells withheld, ethnic minority groups at most {f['minority_percent_withheld_max']:.1f}% vs White "
        f"{f['white_percent_withheld']:.1f}% (ratio {f['minority_to_white_ratio']})",
        f"  protect stage {f['protect_seconds']:.1f} s (load average {f['load_average'][0]:.1f} before, "
        f"{f['load_average'][3]:.1f} after)",
        f"  {'mart':52s} {'cells':>6s} {'hidden':>7s} {'people':>7s} {'%':>6s}",
    ]
    for m in f["marts"]:
        lines.append(
            f"  {m['mart']:52s} {m['cells']:6d} {m['suppressed_cells']:7d} {m['individuals_hidden']:7d} "
            f"{m['percent_hidden']:5.1f}%"
        )
    return "\n".join(lines)


def loss_main(json_out: Path | None, seed: int = 20240101) -> int:
    """`bench --loss`: print issue 14's figures (and write them as JSON)."""
    with tempfile.TemporaryDirectory(prefix="tm-bench-loss-") as tmp:
        figures = bench_loss(Path(tmp), seed=seed)
    print(render_loss(figures))
    _write_figures(json_out, figures)
    return 0


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


def bench_scaling(client_sizes: list[int], *, fmt: str = "parquet", areas: Sequence[str] | None = None) -> list[dict]:
    out = []
    for clients in client_sizes:
        with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
            out.append(bench_pipeline(clients, workdir=Path(tmp), fmt=fmt, areas=areas))
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


# --- `make bench`: every figure of docs/performance.md in one run ------------------------------------------

# The goals of issue 19, checked on figures measured in the same run (ratios, so that a loaded machine
# inflates both sides alike; the absolute times are only comparable on an idle machine).
GOAL_PIPELINE_RATIO = 10.0  # whole pipeline / bare Parquet read + write, national month
GOAL_GX_RATIO = 3.0  # GX validation / the same suite in plain pandas
GOAL_PEAK_RSS_MB = 3 * 1024
GOAL_SCALING_EXPONENT = 1.1  # pipeline seconds ~ rows^b from the smallest to the largest month: linear or better
FULL_SIZES = (107_000, 300_000, 1_070_000)  # adults in treatment: ~100k, ~280k, ~1M episode rows


def scaling_exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(seconds) on log(rows): 1 is linear, below 1 means fixed costs still show."""
    import numpy as np

    usable = [(rows, seconds) for rows, seconds in points if rows > 0 and seconds > 0]
    if len(usable) < 2:
        return None
    x, y = np.log([r for r, _ in usable]), np.log([s for _, s in usable])
    return round(float(np.polyfit(x, y, 1)[0]), 2)


def goals(figures: dict) -> list[dict]:
    """Each goal of issue 19 with the figure measured for it in this run, and whether it is met."""
    pipeline = figures.get("pipeline") or []
    out: list[dict] = []
    if pipeline:
        largest = max(pipeline, key=lambda r: r["rows"])
        out.append(
            {
                "goal": f"whole pipeline within {GOAL_PIPELINE_RATIO:g}x a bare read + write ({largest['rows']:,} rows)",
                "measured": largest["ratio_to_baseline"],
                "unit": "x",
                "met": largest["ratio_to_baseline"] is not None and largest["ratio_to_baseline"] <= GOAL_PIPELINE_RATIO,
            }
        )
        peak = max(r["peak_rss_mb"] for r in pipeline)
        out.append(
            {
                "goal": f"peak RSS under {GOAL_PEAK_RSS_MB:,} MB",
                "measured": peak,
                "unit": "MB",
                "met": peak < GOAL_PEAK_RSS_MB,
            }
        )
        exponent = scaling_exponent([(r["rows"], r["pipeline_seconds"]) for r in pipeline])
        if exponent is not None:
            out.append(
                {
                    "goal": f"linear in rows (seconds ~ rows^b, b <= {GOAL_SCALING_EXPONENT:g}) from "
                    f"{min(r['rows'] for r in pipeline):,} to {largest['rows']:,} rows",
                    "measured": exponent,
                    "unit": "b",
                    "met": exponent <= GOAL_SCALING_EXPONENT,
                }
            )
    validation = figures.get("validation")
    if validation:
        out.append(
            {
                "goal": f"GX within {GOAL_GX_RATIO:g}x the same suite in plain pandas ({validation['rows']:,} rows)",
                "measured": validation["ratio"],
                "unit": "x",
                "met": validation["ratio"] is not None and validation["ratio"] <= GOAL_GX_RATIO,
            }
        )
    return out


def render_goals(rows: list[dict]) -> str:
    lines = ["\ngoals (issue 19), measured in this run:"]
    for row in rows:
        lines.append(f"  {'MET    ' if row['met'] else 'NOT MET'} {row['goal']}: {row['measured']}{row['unit']}")
    return "\n".join(lines)


def plot(figures: dict, target: Path) -> Path | None:
    """Two panels: seconds per stage against rows (stacked), and the pipeline / bare read+write ratio."""
    if not figures.get("pipeline"):
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    pipeline = sorted(figures["pipeline"], key=lambda r: r["rows"])
    rows = [r["rows"] for r in pipeline]
    stages = [s["stage"] for s in pipeline[0]["stages"] if not s["stage"].startswith(("generate", "bare"))]
    labels = [f"{n:,}" for n in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bottom = [0.0] * len(rows)
    for stage in stages:
        seconds = [next(s["seconds"] for s in r["stages"] if s["stage"] == stage) for r in pipeline]
        left.bar(labels, seconds, bottom=bottom, label=stage.split(" (")[0])
        bottom = [b + s for b, s in zip(bottom, seconds, strict=True)]
    left.plot(labels, [r["baseline_seconds"] for r in pipeline], "k_", markersize=30, label="bare read + write")
    left.set_xlabel("episode rows")
    left.set_ylabel("seconds")
    left.set_title("time per stage")
    left.legend(fontsize=8)
    right.plot(rows, [r["ratio_to_baseline"] for r in pipeline], marker="o", label="pipeline / bare read+write")
    right.axhline(GOAL_PIPELINE_RATIO, linestyle="--", color="grey", label=f"goal {GOAL_PIPELINE_RATIO:g}x")
    validation = figures.get("validation")
    if validation:
        right.plot([validation["rows"]], [validation["ratio"]], marker="s", linestyle="", label="GX / plain pandas")
        right.axhline(GOAL_GX_RATIO, linestyle=":", color="grey", label=f"GX goal {GOAL_GX_RATIO:g}x")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("episode rows")
    right.set_ylabel("ratio")
    right.set_title("ratio against rows (same run)")
    right.legend(fontsize=8)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def bench_all(
    out_dir: Path,
    *,
    sizes: tuple[int, ...] = FULL_SIZES,
    validation_clients: int | None = 1_070_000,
    catalogue_clients: int | None = 300_000,
    optimal_gap_tables: int | None = 30,
    load: tuple[int, int] | None = None,
    load_clients: int | None = None,
    areas: Sequence[str] | None = None,
) -> dict:
    """Every benchmark of docs/performance.md in one run; writes ``bench.json`` and ``bench.png`` to ``out_dir``.
    ``areas``: the pipeline months hold only these areas (default all; the test suite's smoke run).

    The machine's load average is recorded before and after: the goals are ratios measured in this run,
    but absolute times are only comparable between idle runs."""
    import datetime
    import os
    import platform

    figures: dict[str, Any] = {
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": os.getloadavg()},
    }
    figures["pipeline"] = bench_scaling(list(sizes), areas=areas)
    if validation_clients:
        with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
            figures["validation"] = bench_validation(validation_clients, workdir=Path(tmp))
    if catalogue_clients:
        with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
            figures["catalogue"] = bench_catalogue(catalogue_clients, workdir=Path(tmp))
    if optimal_gap_tables:
        from treatment_marts.disclosure.optimal_gap import gap_on_random_tables, summarise_gap

        gaps = gap_on_random_tables(optimal_gap_tables, shape=(3, 4))
        figures["optimal_gap"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in summarise_gap(gaps).items()}
    if load:
        with tempfile.TemporaryDirectory(prefix="tm-bench-load-") as tmp:
            figures["load"] = bench_load(load[0], workdir=Path(tmp), areas=load[1], clients=load_clients)
    figures["machine"]["load_after"] = os.getloadavg()
    figures["goals"] = goals(figures)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(figures, indent=2, default=str))
    plot(figures, out_dir / "bench.png")
    return figures


def render_all(figures: dict) -> str:
    parts = [render(figures["pipeline"])] if figures.get("pipeline") else []
    if "validation" in figures:
        v = figures["validation"]
        parts.append(
            f"\nvalidation of {v['rows']:,} rows (fastest of {len(v['ratios_per_round'])} rounds): GX "
            f"{v['gx_seconds']:.1f} s, plain pandas {v['plain_seconds']:.1f} s: GX/plain = {v['ratio']}x "
            f"(per round {v['ratios_per_round']}; GX's first run in a new context {v['first_run_seconds']:.1f} s)"
        )
    if "catalogue" in figures:
        c = figures["catalogue"]
        parts.append(
            f"\ncatalogue of {c['marts']} marts ({c['cells']:,} cells) from {c['rows']:,} episode rows: "
            f"build + publish {c['build_publish_seconds']:.1f} s, peak RSS {c['peak_rss_mb']:.0f} MB"
        )
    if "optimal_gap" in figures:
        g = figures["optimal_gap"]
        parts.append(
            f"\nsecondary suppression on {g['tables']} random 3x4 tables: loss {g['suppressor_loss']} vs optimal "
            f"{g['optimal_loss']}: gap {g['gap_percent']}%"
        )
    if "load" in figures:
        parts.append(render_load(figures["load"]))
    before, after = figures["machine"]["load_before"], figures["machine"]["load_after"]
    parts.append(
        f"\nload average {before[0]:.1f} before, {after[0]:.1f} after ({figures['machine']['cpus']} CPUs): "
        "absolute times are comparable only between idle runs; the ratios are measured in this same run"
    )
    parts.append(render_goals(figures["goals"]))
    return "\n".join(parts)


def cli(argv: list[str] | None = None) -> int:
    """`python -m treatment_marts.ops.bench` (what `make bench` runs)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m treatment_marts.ops.bench", description=bench_all.__doc__)
    parser.add_argument("--out", default="build/bench", help="folder for bench.json and bench.png")
    parser.add_argument(
        "--clients", default=",".join(str(n) for n in FULL_SIZES), help="pipeline sizes (adults; '' to skip)"
    )
    parser.add_argument(
        "--validation", type=int, default=1_070_000, help="GX vs plain pandas on a month of N (0: skip)"
    )
    parser.add_argument("--catalogue", type=int, default=300_000, help="build + publish on a month of N (0: skip)")
    parser.add_argument("--optimal-gap", type=int, default=30, help="random tables for the optimum gap (0: skip)")
    parser.add_argument("--load", help="also a backfill MONTHSxAREAS (hours at 24x20; not in the default run)")
    parser.add_argument("--load-clients", type=int)
    parser.add_argument("--loss", action="store_true", help="instead: issue 14's information-loss figures")
    parser.add_argument("--seed", type=int, default=20240101, help="with --loss: the generated month's seed")
    args = parser.parse_args(argv)
    if args.loss:
        return loss_main(Path(args.out) / "loss.json", args.seed)
    load = None
    if args.load:
        months, _, areas = args.load.lower().partition("x")
        load = (int(months), int(areas))
    figures = bench_all(
        Path(args.out),
        sizes=tuple(int(n) for n in args.clients.split(",") if n.strip()),
        validation_clients=args.validation or None,
        catalogue_clients=args.catalogue or None,
        optimal_gap_tables=args.optimal_gap or None,
        load=load,
        load_clients=args.load_clients,
    )
    print(render_all(figures))
    print(f"\nfigures: {Path(args.out) / 'bench.json'}; plot: {Path(args.out) / 'bench.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
