"""Load, at a reduced size (the full 24 months x 20 areas is `treatment-marts bench --load 24x20`):

* a backfill of several periods back to back in one process does not grow its memory;
* a reader in another process, querying the warehouse in a loop while releases are published (SQLite and
  the real PostgreSQL server), always sees one whole release: every mart and the `releases` row of the old
  run, or all of the new one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from postgres_server import create_database
from treatment_marts.core.settings import Settings
from treatment_marts.ops.bench import bench_load
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.land import land
from treatment_marts.pipeline.protect import protect
from treatment_marts.pipeline.publish import publish

PERIOD = "2024-03"
LOAD_MONTHS = int(os.environ.get("TREATMENT_MARTS_LOAD_MONTHS", "4"))
MAX_SLOPE_MB = 8.0  # per period; 24 months at this rate would be < 200 MB, and a leak of a month's frames is far more

pytestmark = pytest.mark.timeout(1800)


def test_a_backfill_processes_periods_back_to_back_without_memory_growth(tmp_path: Path) -> None:
    result = bench_load(LOAD_MONTHS, workdir=tmp_path, areas=["Northton"], clients=2000, start="2024-01", seed=21)
    periods = result["periods"]
    print(json.dumps(result, indent=1))  # shown with -s; the figures go in docs/performance.md
    assert [p["period"] for p in periods] == [str(pd.Period("2024-01", "M") + i) for i in range(LOAD_MONTHS)]
    settings = Settings.from_env(data_root=tmp_path / "data")
    for p in periods:  # every period really went through: published, with its own release
        assert (settings.public_dir / "releases" / f"period={p['period']}" / "manifest.json").exists()
    assert result["slope_mb_per_period"] < MAX_SLOPE_MB, periods
    assert periods[-1]["rss_mb"] - periods[1]["rss_mb"] < MAX_SLOPE_MB * (LOAD_MONTHS - 1), periods


# --- concurrent readers in another process -----------------------------------------------------------------

READER = r"""
import json, sys, time
from pathlib import Path
import sqlalchemy as sa

url, schema, marts, stop = sys.argv[1], sys.argv[2] or None, sys.argv[3].split(","), Path(sys.argv[4])
period = sys.argv[5]
engine = sa.create_engine(url)  # a plain analyst's engine: nothing of the package
meta = sa.MetaData(schema=schema)
tables = {n: sa.Table(n, meta, sa.Column("period"), sa.Column("count")) for n in marts}
releases = sa.Table("releases", meta, sa.Column("period"), sa.Column("run_id"))
one_statement = sa.select(
    *(sa.select(sa.func.coalesce(sa.func.sum(tables[n].c["count"]), -1)).where(tables[n].c.period == period).scalar_subquery() for n in marts),
    sa.select(releases.c.run_id).where(releases.c.period == period).scalar_subquery(),
)
seen, errors, queries = [], [], 0
while not stop.exists():
    try:
        with engine.connect() as conn:
            *sums, run_id = conn.execute(one_statement).one()
        seen.append([run_id, [int(s) for s in sums]])
        queries += 1
    except Exception as exc:  # a reader error is a finding too: report it
        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    time.sleep(0.005)
print(json.dumps({"seen": seen, "errors": errors, "queries": queries}))
"""


@pytest.fixture(scope="module")
def two_staged_releases(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, str], dict[str, list[int]], list[str]]:
    """Two protected releases of the same period from different extracts (land + protect, real stages)."""
    base = tmp_path_factory.mktemp("staged")
    settings = Settings.from_env(data_root=base / "data")
    staged, expected = {}, {}
    for run_id, seed in (("run_a", 7), ("run_b", 8)):
        extract = write_extract(
            generate_extract(PERIOD, clients=1000, areas=["Northton"], seed=seed), base / run_id / "extract.parquet"
        )
        landed = land(settings, PERIOD, extract, run_id)
        result = protect(settings, PERIOD, run_id, landed.landed_paths)
        staged[run_id] = result.staged_dir
    marts = sorted(p.stem for p in (Path(staged["run_a"]) / "marts").glob("*.parquet"))
    for run_id, folder in staged.items():
        # The reader's SUM over a mart whose every count is withheld is NULL (coalesced to -1), not 0.
        sums = [pd.read_parquet(Path(folder) / "marts" / f"{m}.parquet")["count"].sum(min_count=1) for m in marts]
        expected[run_id] = [-1 if pd.isna(s) else int(s) for s in sums]
    assert expected["run_a"] != expected["run_b"], "the two releases must be distinguishable"
    return staged, expected, marts


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_reader_process_sees_the_old_or_the_new_release_during_publish(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, two_staged_releases: tuple
) -> None:
    staged, expected, marts = two_staged_releases
    settings = Settings.from_env(data_root=tmp_path / "data")
    if backend == "postgresql":
        url = create_database(request.getfixturevalue("postgres_url"))
        settings = replace(settings, warehouse_url=url, restricted_warehouse_url=url)
    schema = "marts" if backend == "postgresql" else ""
    publish(settings, PERIOD, "run_a", staged["run_a"])  # the reader starts on a published period

    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, settings.warehouse_url, schema, ",".join(marts), str(stop), PERIOD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        for run_id in ("run_b", "run_a", "run_b"):
            publish(settings, PERIOD, run_id, staged[run_id])
        time.sleep(0.5)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err[-2000:]
    report = json.loads(out)
    assert not report["errors"], report["errors"][:3]
    assert report["queries"] > 20, report["queries"]
    mixed = [(run_id, sums) for run_id, sums in report["seen"] if sums != expected[run_id]]
    assert not mixed, f"{len(mixed)} read(s) mixed two releases, e.g. {mixed[0]}"
    runs_seen = [run_id for run_id, _ in report["seen"]]
    switches = sum(1 for a, b in zip(runs_seen, runs_seen[1:], strict=False) if a != b)
    assert set(runs_seen) == {"run_a", "run_b"} and switches >= 2, "the reader overlapped several publishes"


def test_the_full_size_benchmark_config_has_twenty_valid_areas(tmp_path: Path) -> None:
    """`bench --load 24x20` needs 20 areas; the configuration has fewer, so it clones valid synthetic ones."""
    from treatment_marts.core.config import load_areas
    from treatment_marts.ops.bench import load_config
    from treatment_marts.ops.synth import generate_extract

    areas = load_areas(load_config(tmp_path / "config", 20)).areas
    assert len(areas) == 20 and len({a.code for a in areas}) == 20 and len({a.name for a in areas}) == 20
    frame = generate_extract("2024-01", clients=4000, config_dir=tmp_path / "config")
    assert frame["la_code"].nunique() == 20


def test_bench_load_usage_errors_exit_2() -> None:
    from treatment_marts.cli import main

    assert main(["bench", "--load", "1x20"]) == 2 and main(["bench", "--load", "24by20"]) == 2
