"""Publishing a release to Parquet + SQLite and + a real PostgreSQL: layout, separation of restricted data,
idempotency, exact replacement of a period, kills at every fault point, a warehouse that is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from postgres_server import create_database
from treatment_marts.core.faults import FAULT_POINTS
from treatment_marts.core.settings import Settings
from treatment_marts.publish.readers import published_release, read_mart
from treatment_marts.publish.release import PublishError, publish_release
from treatment_marts.publish.warehouse import read_table, table_names

P1, P2 = "2024-03", "2024-04"
MARTS = ("m_area", "m_sex")


def mart(period: str = P1, scale: int = 1, shuffle: bool = False) -> pd.DataFrame:
    """A tiny mart in the mart format: area x sex with margins, one suppressed cell pair."""
    rows = []
    for area in ("Exborough", "Northton", "Total"):
        for sex in ("Female", "Male", "Total"):
            rows.append((area, sex))
    frame = pd.DataFrame(rows, columns=["area", "sex"])
    frame.insert(0, "period", period)
    counts = [(i + 4) * scale for i in range(len(frame))]
    counts[1] = counts[4] = None  # Exborough/Male and Northton/Male suppressed
    frame["count"] = pd.array(counts, dtype="Int64")
    frame["status"] = pd.array([None if c is not None else "c" for c in counts], dtype="string")
    frame = frame.astype({"period": "string", "area": "string", "sex": "string"})
    return frame.sample(frac=1, random_state=3).reset_index(drop=True) if shuffle else frame


def suppression_log(period: str = P1, scale: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mart": ["m_area", "m_area"],
            "cell": ['{"area": "Exborough", "sex": "Male"}', '{"area": "Northton", "sex": "Male"}'],
            "true_count": pd.array([2 * scale, 9 * scale], dtype="Int64"),
            "suppression": ["primary", "secondary"],
        }
    )


def do_publish(settings: Settings, run_id: str = "run1", scale: int = 1, period: str = P1, shuffle: bool = False):
    return publish_release(
        settings,
        period=period,
        run_id=run_id,
        marts={name: mart(period, scale, shuffle) for name in MARTS},
        suppression_log=suppression_log(period, scale),
        manifest={
            "ruleset_sha256": "a" * 64,
            "inputs": [{"source": "extract.csv", "sha256": "b" * 64, "rows": 9}],
            "package_version": "0.1.0",
        },
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A data root per test; SQLite warehouse files under it, or a fresh database on the real server."""
    if request.param == "sqlite":
        return Settings.from_env(data_root=tmp_path / "data")
    url = create_database(request.getfixturevalue("postgres_url"))
    return Settings.from_env(data_root=tmp_path / "data", warehouse_url=url)


def tree(root: Path) -> dict[str, object]:
    """Every file (bytes) and link (target) under root, for before/after comparisons."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = ("link", os.readlink(path))
        elif path.is_file() and path.name != ".publish.lock":
            out[key] = path.read_bytes()
    return out


def public_snapshot(settings: Settings) -> dict[str, pd.DataFrame]:
    return {
        name: read_table(settings.warehouse_url, name).sort_values(["period", "area", "sex"]).reset_index(drop=True)
        for name in MARTS
    }


def restricted_tables(settings: Settings) -> list[str]:
    return table_names(settings.restricted_warehouse_url, restricted=True)


# --- layout and separation ---------------------------------------------------------------------------


def test_publish_writes_parquet_warehouse_and_a_separate_restricted_log(settings: Settings) -> None:
    result = do_publish(settings)

    for name in MARTS:
        folder = settings.public_dir / "marts" / name / f"period={P1}"
        frame = pd.read_parquet(folder)  # readers open the period folder with plain pandas/pyarrow
        assert frame.shape == (9, 5)
        assert str(frame["count"].dtype) == "Int64"
        assert result.marts[name] == folder / "data.parquet"
        # Deterministic order: by area then sex, Total last along each dimension.
        assert list(frame["area"].drop_duplicates()) == ["Exborough", "Northton", "Total"]
        assert list(frame.loc[frame.area == "Total", "sex"]) == ["Female", "Male", "Total"]
        assert frame["period"].astype(str).eq(P1).all()  # categorical: the Hive partition type (layout.py)
        pd.testing.assert_frame_equal(read_mart(settings, name, P1), frame.astype({"period": "string"}))
        manifest = json.loads((folder / "_manifest.json").read_text())
        assert manifest["run_id"] == "run1" and manifest["period"] == P1 and manifest["mart"] == name
        assert manifest["rows"] == {"m_area": 9, "m_sex": 9} and manifest["ruleset_sha256"] == "a" * 64
        assert manifest["inputs"][0]["sha256"] == "b" * 64 and manifest["published_at"] and manifest["package_version"]

        rows = read_table(settings.warehouse_url, name, where_period=P1)
        assert len(rows) == 9 and rows["count"].sum() == frame["count"].sum()
        assert (rows["status"] == "c").sum() == 2

    release = json.loads(result.manifest_path.read_text())
    assert release["run_id"] == "run1" and set(release["data_sha256"]) == set(MARTS)
    row = published_release(settings, P1)
    assert row is not None and row["run_id"] == "run1" and row["manifest"]["rows"]["m_area"] == 9

    # Restricted data never sits beside the public tables.
    public = table_names(settings.warehouse_url)
    assert {"m_area", "m_sex", "releases"} <= set(public) and "suppression_log" not in public
    assert "suppression_log" in restricted_tables(settings)
    if settings.warehouse_url.startswith("postgresql"):
        engine = sa.create_engine(settings.warehouse_url)
        with engine.connect() as conn:
            located = (
                conn.execute(
                    sa.text("select table_schema from information_schema.tables where table_name = 'suppression_log'")
                )
                .scalars()
                .all()
            )
        engine.dispose()
        assert located == ["restricted"]
    else:
        assert settings.restricted_warehouse_url != settings.warehouse_url
        restricted_db = Path(sa.engine.make_url(settings.restricted_warehouse_url).database)
        assert restricted_db.is_relative_to(settings.restricted_dir)
        assert restricted_db.stat().st_mode & 0o777 == 0o600
    logged = read_table(settings.restricted_warehouse_url, "suppression_log", restricted=True)
    assert set(logged["run_id"]) == {"run1"} and set(logged["period"]) == {P1} and len(logged) == 2

    log_path = result.suppression_log_path
    assert log_path.is_relative_to(settings.restricted_dir) and len(pd.read_parquet(log_path)) == 2
    assert log_path.resolve().stat().st_mode & 0o777 == 0o600
    for folder in [log_path.resolve().parent, *log_path.resolve().parents]:
        if folder == settings.data_root:
            break
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert not any(settings.public_dir.rglob("*suppression*"))


# --- idempotency and exact replacement ---------------------------------------------------------------


def test_republishing_the_same_inputs_gives_identical_bytes_and_rows(settings: Settings) -> None:
    do_publish(settings, "run1")
    files = {
        name: (settings.public_dir / "marts" / name / f"period={P1}" / "data.parquet").read_bytes() for name in MARTS
    }
    rows = public_snapshot(settings)

    do_publish(settings, "run1")  # the same run again (an Airflow retry)
    do_publish(settings, "run2", shuffle=True)  # a new run, rows arriving in another order
    for name in MARTS:
        assert (settings.public_dir / "marts" / name / f"period={P1}" / "data.parquet").read_bytes() == files[name]
    for name, frame in public_snapshot(settings).items():
        pd.testing.assert_frame_equal(frame, rows[name])
    releases = read_table(settings.warehouse_url, "releases")
    assert list(releases["period"]) == [P1] and list(releases["run_id"]) == ["run2"]
    logged = read_table(settings.restricted_warehouse_url, "suppression_log", restricted=True)
    assert set(logged["run_id"]) == {"run2"} and len(logged) == 2  # superseded runs' rows are gone


def test_republishing_a_period_with_new_data_replaces_it_exactly_and_leaves_other_periods(settings: Settings) -> None:
    do_publish(settings, "march", period=P1)
    do_publish(settings, "april", period=P2)
    april_file = (settings.public_dir / "marts" / "m_area" / f"period={P2}" / "data.parquet").read_bytes()
    april_rows = read_table(settings.warehouse_url, "m_area", where_period=P2)

    do_publish(settings, "march_fix", period=P1, scale=2)

    for name in MARTS:
        march = read_mart(settings, name, P1)
        assert march["count"].max() == 2 * mart(P1)["count"].max()
        rows = read_table(settings.warehouse_url, name, where_period=P1)
        assert len(rows) == 9 and rows["count"].max() == march["count"].max()
        assert len(read_table(settings.warehouse_url, name)) == 18
    assert (settings.public_dir / "marts" / "m_area" / f"period={P2}" / "data.parquet").read_bytes() == april_file
    pd.testing.assert_frame_equal(read_table(settings.warehouse_url, "m_area", where_period=P2), april_rows)
    assert len(read_mart(settings, "m_area")) == 18  # every period, in period order
    releases = read_table(settings.warehouse_url, "releases").sort_values("period")
    assert list(releases["run_id"]) == ["march_fix", "april"]
    logged = read_table(settings.restricted_warehouse_url, "suppression_log", restricted=True)
    assert sorted(set(zip(logged["period"], logged["run_id"], strict=True))) == [(P1, "march_fix"), (P2, "april")]


def test_old_versions_are_pruned(settings: Settings) -> None:
    for i in range(6):
        do_publish(settings, f"run{i}")
    versions = settings.public_dir / "marts" / "m_area" / ".releases" / f"period={P1}"
    kept = sorted(p.name.split(".")[0] for p in versions.iterdir())
    assert len(kept) == 3 and "run5" in kept


# --- a killed publish --------------------------------------------------------------------------------

KILLABLE = """
import sys
sys.path[:0] = [{tests!r}, {root_tests!r}]
from test_release import do_publish
from treatment_marts.core.settings import Settings
do_publish(Settings.from_env(data_root={root!r}, warehouse_url={url!r}), "run2", scale=2)
"""


def run_publish_process(settings: Settings, fault: str | None) -> subprocess.CompletedProcess:
    script = KILLABLE.format(
        tests=str(Path(__file__).parent),
        root_tests=str(Path(__file__).parents[1]),
        root=str(settings.data_root),
        url=settings.warehouse_url,
    )
    env = {k: v for k, v in os.environ.items() if k != "TREATMENT_MARTS_FAULT"}
    if fault:
        env["TREATMENT_MARTS_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_publish_killed_at_any_point_leaves_whole_releases_and_a_rerun_completes(
    settings: Settings, point: str
) -> None:
    do_publish(settings, "run1")
    old_public = tree(settings.public_dir)
    old_rows = public_snapshot(settings)

    killed = run_publish_process(settings, point)
    assert killed.returncode == 137, killed.stderr[-2000:]

    # Each mart, in Parquet and in the warehouse, is a whole release: old (scale 1) or new (scale 2).
    new_max = mart(P1, 2)["count"].max()
    warehouse_scales = set()
    for name in MARTS:
        parquet = read_mart(settings, name, P1)
        assert len(parquet) == 9 and parquet["count"].max() in (new_max // 2, new_max)
        rows = read_table(settings.warehouse_url, name)
        assert len(rows) == 9
        warehouse_scales.add(int(rows["count"].max()))
    assert len(warehouse_scales) == 1, "the warehouse shows all marts of one release"
    release = published_release(settings, P1)
    assert release is not None and release["run_id"] == ("run1" if warehouse_scales == {new_max // 2} else "run2")
    logged = read_table(settings.restricted_warehouse_url, "suppression_log", restricted=True)
    assert release["run_id"] in set(logged["run_id"]), "the published run's suppression log is there"

    committed = FAULT_POINTS.index(point) >= FAULT_POINTS.index("publish:after_warehouse")
    if not committed:  # killed before the warehouse commit: the previous release is untouched everywhere
        assert warehouse_scales == {new_max // 2}
        assert {k: v for k, v in tree(settings.public_dir).items() if "/.releases/" not in k} == {
            k: v for k, v in old_public.items() if "/.releases/" not in k
        }
        for name, frame in public_snapshot(settings).items():
            pd.testing.assert_frame_equal(frame, old_rows[name])
    else:
        assert warehouse_scales == {new_max}

    rerun = run_publish_process(settings, None)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for name in MARTS:
        assert read_mart(settings, name, P1)["count"].max() == new_max
        assert read_table(settings.warehouse_url, name)["count"].max() == new_max
        manifest = json.loads((settings.public_dir / "marts" / name / f"period={P1}" / "_manifest.json").read_text())
        assert manifest["run_id"] == "run2"
    assert published_release(settings, P1)["run_id"] == "run2"
    assert (
        json.loads((settings.public_dir / "releases" / f"period={P1}" / "manifest.json").read_text())["run_id"]
        == "run2"
    )
    logged = read_table(settings.restricted_warehouse_url, "suppression_log", restricted=True)
    assert set(logged["run_id"]) == {"run2"} and len(logged) == 2
    assert pd.read_parquet(settings.restricted_dir / "suppression_log" / f"period={P1}")["true_count"].max() == 18


# --- failures ----------------------------------------------------------------------------------------


def test_a_warehouse_that_is_down_fails_clearly_and_changes_no_parquet(tmp_path: Path) -> None:
    root = tmp_path / "data"
    do_publish(Settings.from_env(data_root=root))
    before = tree(root)
    down = Settings.from_env(
        data_root=root,
        warehouse_url="postgresql+psycopg://analyst:secret@127.0.0.1:9/warehouse",
        restricted_warehouse_url="postgresql+psycopg://analyst:secret@127.0.0.1:9/warehouse",
    )
    with pytest.raises(PublishError) as caught:
        do_publish(down, "run2", scale=2)
    message = str(caught.value)
    assert "cannot connect to the warehouse" in message and "127.0.0.1:9" in message
    assert "previous release is unchanged" in message and "secret" not in message
    assert tree(root) == before  # nothing staged is left behind, no link moved, no log replaced


def test_a_restricted_warehouse_that_is_down_publishes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    good = Settings.from_env(data_root=root)
    do_publish(good)
    before, rows = tree(root), public_snapshot(good)
    down = Settings.from_env(
        data_root=root,
        warehouse_url=good.warehouse_url,
        restricted_warehouse_url="postgresql+psycopg://ig@127.0.0.1:9/restricted",
    )
    with pytest.raises(PublishError, match="cannot connect to the warehouse .*127.0.0.1:9"):
        do_publish(down, "run2", scale=2)
    assert tree(root) == before
    for name, frame in public_snapshot(good).items():
        pd.testing.assert_frame_equal(frame, rows[name])


def test_an_unsafe_mart_name_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    for bad in ("m; drop table releases", "Area", "1st", "x" * 64, "mart-name", "märt"):
        with pytest.raises(PublishError, match="unsafe SQL mart name"):
            publish_release(
                settings, period=P1, run_id="r", marts={bad: mart()}, suppression_log=suppression_log(), manifest={}
            )
    with pytest.raises(PublishError, match="unsafe SQL column name in mart m_area"):
        publish_release(
            settings,
            period=P1,
            run_id="r",
            marts={"m_area": mart().rename(columns={"sex": 'Sex"; --'})},
            suppression_log=suppression_log(),
            manifest={},
        )
    with pytest.raises(PublishError, match="reserved"):
        publish_release(
            settings, period=P1, run_id="r", marts={"releases": mart()}, suppression_log=suppression_log(), manifest={}
        )
    assert not settings.public_dir.exists() and not Path(settings.warehouse_url.removeprefix("sqlite:///")).exists()


def test_malformed_releases_are_refused(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    with pytest.raises(PublishError, match="1 row.*not for period 2024-03"):
        frame = mart()
        frame.loc[0, "period"] = P2
        publish_release(
            settings, period=P1, run_id="r", marts={"m_area": frame}, suppression_log=suppression_log(), manifest={}
        )
    with pytest.raises(PublishError, match="missing column"):
        publish_release(
            settings,
            period=P1,
            run_id="r",
            marts={"m_area": mart().drop(columns="status")},
            suppression_log=suppression_log(),
            manifest={},
        )
    with pytest.raises(PublishError, match="period must be YYYY-MM"):
        publish_release(
            settings,
            period="2024-13",
            run_id="r",
            marts={"m_area": mart()},
            suppression_log=suppression_log(),
            manifest={},
        )
    with pytest.raises(PublishError, match="run id"):
        publish_release(
            settings,
            period=P1,
            run_id="../../etc",
            marts={"m_area": mart()},
            suppression_log=suppression_log(),
            manifest={},
        )
    assert not settings.public_dir.exists()


# --- concurrent readers ------------------------------------------------------------------------------


def test_concurrent_readers_see_the_old_or_the_new_release_never_a_mix(settings: Settings) -> None:
    """Analysts reading while releases alternate: each Parquet mart is whole, and one warehouse query sees
    every mart and the releases row of the same release."""
    import threading

    do_publish(settings, "s1_0", scale=1)
    engine = sa.create_engine(settings.warehouse_url)  # a plain analyst's engine, nothing of ours
    schema = "marts" if settings.warehouse_url.startswith("postgresql") else None
    tables = {
        name: sa.Table(name, sa.MetaData(schema=schema), sa.Column("period"), sa.Column("count"))
        for name in (*MARTS, "releases")
    }
    releases = sa.Table("releases", sa.MetaData(schema=schema), sa.Column("period"), sa.Column("run_id"))
    one_snapshot = sa.select(
        *(sa.select(sa.func.max(tables[n].c.count)).where(tables[n].c.period == P1).scalar_subquery() for n in MARTS),
        sa.select(releases.c.run_id).where(releases.c.period == P1).scalar_subquery(),
    )
    base = int(mart(P1)["count"].max())
    stop, errors, seen = threading.Event(), [], set()

    def reader() -> None:
        try:
            while not stop.is_set():
                for name in MARTS:
                    frame = read_mart(settings, name, P1)
                    assert len(frame) == 9 and int(frame["count"].max()) in (base, 2 * base)
                with engine.connect() as conn:
                    *maxima, run_id = conn.execute(one_snapshot).one()
                scale = int(run_id.split("_")[0][1:])
                assert maxima == [scale * base] * len(MARTS), (maxima, run_id)
                seen.add(run_id)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for i in range(1, 7):
            do_publish(settings, f"s{1 + i % 2}_{i}", scale=1 + i % 2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        engine.dispose()
    assert not errors, errors[0]
    assert len(seen) >= 2, "the readers overlapped several releases"
