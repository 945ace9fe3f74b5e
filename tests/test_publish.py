"""Publishing: SQLite and a real PostgreSQL, atomic under a killed process, idempotent, never Parquet-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from treatment_marts.publish import PublishError, publish_release, read_mart
from treatment_marts.settings import Settings
from treatment_marts.warehouse import WarehouseError, read_table, table_names

PERIOD = "2024-03"


def mart(scale: int = 1) -> pd.DataFrame:
    return pd.DataFrame({
        "period": pd.array([PERIOD] * 3, dtype="string"),
        "area": pd.array(["Exborough", "Northton", "Total"], dtype="string"),
        "count": pd.array([10 * scale, None, None], dtype="Int64"),
        "status": pd.array([None, "c", "c"], dtype="string"),
    })


def log() -> pd.DataFrame:
    return pd.DataFrame({"run_id": ["r"], "mart": ["m_area"], "period": [PERIOD], "cell": ['{"area": "Northton"}'],
                         "true_count": pd.array([2], dtype="Int64"), "suppression": ["primary"], "rule": ["count<=3"]})


def publish(settings: Settings, run_id: str = "run1", scale: int = 1) -> None:
    publish_release(settings, period=PERIOD, run_id=run_id, marts={"m_area": mart(scale), "m_other": mart(scale)},
                    suppression_log=log(), manifest={"ruleset_sha256": "x" * 64, "inputs": []})


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings.from_env(data_root=tmp_path)
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a clean warehouse per test
        conn.execute(sa.text("DROP SCHEMA IF EXISTS marts CASCADE"))
        conn.execute(sa.text("DROP SCHEMA IF EXISTS restricted CASCADE"))
    engine.dispose()
    return Settings.from_env(data_root=tmp_path, warehouse_url=url)


def test_publish_writes_parquet_and_warehouse_with_restricted_data_apart(settings: Settings) -> None:
    publish(settings)
    frame = read_mart(settings, "m_area", PERIOD)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), mart(), check_dtype=False)
    assert pd.read_parquet(settings.public_dir / "marts" / "m_area" / f"period={PERIOD}").shape == (3, 4)
    assert set(table_names(settings.warehouse_url)) >= {"m_area", "m_other", "releases"}
    assert "suppression_log" not in table_names(settings.warehouse_url)
    assert "suppression_log" in table_names(settings.restricted_warehouse_url, restricted=True)
    assert len(read_table(settings.warehouse_url, "m_area", where_period=PERIOD)) == 3
    manifest = json.loads((settings.public_dir / "marts" / "m_area" / f"period={PERIOD}" / "_manifest.json").read_text())
    assert manifest["run_id"] == "run1" and manifest["rows"]["m_area"] == 3
    log_dir = settings.restricted_dir / "suppression_log" / f"period={PERIOD}"
    assert oct(log_dir.stat().st_mode & 0o777) == "0o700"


def test_republishing_is_idempotent_and_replaces_the_period_exactly(settings: Settings) -> None:
    publish(settings, "run1")
    first = (settings.public_dir / "marts" / "m_area" / f"period={PERIOD}" / "data.parquet").read_bytes()
    publish(settings, "run2")
    assert (settings.public_dir / "marts" / "m_area" / f"period={PERIOD}" / "data.parquet").read_bytes() == first
    assert len(read_table(settings.warehouse_url, "m_area")) == 3
    publish(settings, "run3", scale=2)
    rows = read_table(settings.warehouse_url, "m_area")
    assert len(rows) == 3 and rows["count"].max() == 20


def test_unsafe_mart_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="unsafe SQL mart name"):
        publish_release(Settings.from_env(data_root=tmp_path), period=PERIOD, run_id="r",
                        marts={"m; drop table x": mart()}, suppression_log=log(), manifest={})


def test_warehouse_down_fails_clearly_and_changes_no_parquet(tmp_path: Path) -> None:
    good = Settings.from_env(data_root=tmp_path)
    publish(good)
    before = {p: p.read_bytes() for p in good.public_dir.rglob("*") if p.is_file()}
    down = Settings.from_env(data_root=tmp_path, warehouse_url="postgresql+psycopg://nobody@127.0.0.1:9/none")
    with pytest.raises(PublishError, match="(could not be written|unavailable).*(unchanged|nothing was published)"):
        publish_release(down, period=PERIOD, run_id="run2", marts={"m_area": mart(2), "m_other": mart(2)},
                        suppression_log=log(), manifest={})
    after = {p: p.read_bytes() for p in good.public_dir.rglob("*") if p.is_file()}
    assert after == before


PUBLISH_SCRIPT = """
import sys, pandas as pd
sys.path.insert(0, {tests!r})
from test_publish import publish
from treatment_marts.settings import Settings
publish(Settings.from_env(data_root={root!r}, warehouse_url={url!r}), "run2", scale=2)
"""


@pytest.mark.parametrize("point", ["publish:after_restricted", "publish:after_parquet_staged",
                                   "publish:inside_warehouse_transaction", "publish:after_warehouse",
                                   "publish:mid_parquet_swap"])
def test_a_killed_publish_leaves_a_whole_release(settings: Settings, point: str) -> None:
    publish(settings, "run1")
    script = PUBLISH_SCRIPT.format(tests=str(Path(__file__).parent), root=str(settings.data_root), url=settings.warehouse_url)
    env = {**os.environ, "TREATMENT_MARTS_FAULT": point}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr
    # Whatever the kill point, each reader sees one whole release: old (10) or new (20), never a mix within a mart.
    for name in ("m_area", "m_other"):
        parquet = read_mart(settings, name, PERIOD)
        warehouse = read_table(settings.warehouse_url, name)
        assert len(parquet) == 3 and len(warehouse) == 3
        assert parquet["count"].max() in (10, 20) and warehouse["count"].max() in (10, 20)
    warehouse_scale = read_table(settings.warehouse_url, "m_area")["count"].max()
    if point in ("publish:after_restricted", "publish:after_parquet_staged", "publish:inside_warehouse_transaction"):
        assert warehouse_scale == 10 and read_mart(settings, "m_area", PERIOD)["count"].max() == 10
    # Re-running without the fault completes the new release everywhere.
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    for name in ("m_area", "m_other"):
        assert read_mart(settings, name, PERIOD)["count"].max() == 20
        assert read_table(settings.warehouse_url, name)["count"].max() == 20
