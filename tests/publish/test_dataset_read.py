"""A published mart folder is one dataset: every current period reads with a plain call in pandas, pyarrow
and DuckDB, and in SQL from the warehouse, and never picks up an old version kept under ``.releases``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.publish.layout import PERIOD_TYPE
from treatment_marts.publish.readers import read_mart
from treatment_marts.publish.release import publish_release
from treatment_marts.publish.warehouse import read_table

PERIODS = ("2024-02", "2024-03", "2024-04")


def _mart(period: str, scale: int) -> pd.DataFrame:
    """Area x sex with margins; ``scale`` changes every count so each publish is distinguishable."""
    rows = [(a, s) for a in ("Exborough", "Northton", "Total") for s in ("Female", "Male", "Total")]
    frame = pd.DataFrame(rows, columns=["area", "sex"]).astype("string")
    frame.insert(0, "period", pd.array([period] * len(frame), dtype="string"))
    frame["count"] = pd.array([(i + 4) * scale for i in range(len(frame))], dtype="Int64")
    frame["status"] = pd.array([pd.NA] * len(frame), dtype="string")
    return frame


def _publish(settings: Settings, period: str, run: str, scale: int) -> None:
    publish_release(
        settings,
        period=period,
        run_id=run,
        marts={"m_area_sex": _mart(period, scale)},
        suppression_log=pd.DataFrame({"mart": [], "cell": [], "true_count": pd.array([], dtype="Int64")}),
        manifest={"ruleset_sha256": "a" * 64},
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """Three periods; the middle one re-published twice, so its ``.releases`` holds superseded versions."""
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    for period in PERIODS:
        _publish(settings, period, "first", scale=1)
    _publish(settings, "2024-03", "second", scale=10)
    _publish(settings, "2024-03", "third", scale=100)
    root = settings.public_dir / "marts" / "m_area_sex"
    assert len(list((root / ".releases" / "period=2024-03").iterdir())) == 3  # old versions kept beside
    return settings, root


def _check(frame: pd.DataFrame) -> None:
    """Nine cells per period, each period once, and 2024-03 as its latest publish (scale 100) only."""
    assert len(frame) == 9 * len(PERIODS)
    assert sorted(frame["period"].astype(str).unique()) == list(PERIODS)
    march = frame[frame["period"].astype(str) == "2024-03"]
    assert sorted(march["count"].astype(int)) == [(i + 4) * 100 for i in range(9)]


def test_pandas_reads_the_mart_folder_with_a_plain_call(published: tuple[Settings, Path]) -> None:
    _, root = published
    frame = pd.read_parquet(root)
    _check(frame)
    assert str(frame["count"].dtype) == "Int64"
    one = pd.read_parquet(root, filters=[("period", "==", "2024-04")])  # partition pruning
    assert len(one) == 9 and set(one["period"].astype(str)) == {"2024-04"}


def test_a_single_file_still_carries_its_period(published: tuple[Settings, Path]) -> None:
    _, root = published
    assert pq.read_schema(root / "period=2024-02" / "data.parquet").field("period").type == PERIOD_TYPE
    frame = pd.read_parquet(root / "period=2024-02" / "data.parquet")
    assert set(frame["period"].astype(str)) == {"2024-02"}


def test_pyarrow_reads_the_mart_folder(published: tuple[Settings, Path]) -> None:
    _, root = published
    _check(pq.read_table(root).to_pandas())
    _check(ds.dataset(root).to_table().to_pandas())
    hive = ds.dataset(root, partitioning=ds.HivePartitioning.discover(infer_dictionary=True))
    _check(hive.to_table(filter=ds.field("count") > 0).to_pandas())


def test_duckdb_reads_every_period(published: tuple[Settings, Path]) -> None:
    _, root = published
    frame = duckdb.sql(f"SELECT * FROM read_parquet('{root}/period=*/data.parquet')").df()
    _check(frame)
    by_period = duckdb.sql(
        f"SELECT period, sum(count) AS n FROM read_parquet('{root}/period=*/*.parquet') "
        "WHERE area = 'Total' AND sex = 'Total' GROUP BY period ORDER BY period"
    ).fetchall()
    assert [p for p, _ in by_period] == list(PERIODS) and by_period[1][1] == 12 * 100


def test_sql_reads_every_period_from_the_warehouse(published: tuple[Settings, Path]) -> None:
    settings, _ = published
    _check(read_table(settings.warehouse_url, "m_area_sex"))


def test_read_mart_gives_string_periods_for_every_period(published: tuple[Settings, Path]) -> None:
    settings, root = published
    frame = read_mart(settings, "m_area_sex")
    _check(frame)
    assert frame["period"].dtype == "string"
    pd.testing.assert_frame_equal(frame, pd.read_parquet(root).astype({"period": "string"}))
