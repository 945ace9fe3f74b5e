"""Publish a release: Parquet marts and the SQL warehouse, atomic and idempotent per period.

Layout (``<root>`` is the data root, ``P`` the period ``YYYY-MM``)::

    public/marts/<mart>/period=P            -> symlink to .releases/period=P/<version>   (what readers open)
    public/marts/<mart>/.releases/period=P/<version>/data.parquet      the mart, one file
    public/marts/<mart>/.releases/period=P/<version>/_manifest.json    release manifest + this mart's rows/sha256
    public/releases/period=P/manifest.json                              release manifest (written last)
    restricted/suppression_log/period=P     -> symlink to .releases/period=P/<version>   (0o700 dirs)
    restricted/suppression_log/.releases/period=P/<version>/suppression_log.parquet   (0o600)

``<version>`` is ``<run_id>.<random>``: a fresh folder per publish attempt, so a re-publish never
writes into the folder a reader may be reading. Names starting with ``.`` or ``_`` are skipped by
pyarrow/pandas dataset discovery, so ``pd.read_parquet(".../<mart>/period=P")`` reads exactly the data.

Order of a publish (under an exclusive lock file, one publisher per data root at a time):

1. **stage**: every mart's Parquet + manifest and the suppression log are written (and fsynced) into new
   version folders. Nothing a reader opens has changed.
2. **warehouse**: the public marts, the ``releases`` row and the restricted ``suppression_log`` of the
   period are replaced (delete the period's rows, insert the new ones, tables/schemas created if absent).

   * Same server for public and restricted (PostgreSQL, schemas ``marts`` and ``restricted``): ONE
     transaction covers everything.
   * Separate databases (SQLite default: ``warehouse.db`` and ``restricted/warehouse_restricted.db``):
     the restricted rows of this ``run_id`` are written first, *added beside* the previous run's rows
     (every log row carries its ``run_id``); then ONE transaction replaces all public marts and the
     ``releases`` row; only after that are the superseded runs' restricted rows of the period deleted.
     ``releases.run_id`` always names the run whose log is current.

   If the warehouse is down or the transaction fails, :class:`PublishError` is raised, the staged
   folders are removed and nothing public changes: never a Parquet-only release.
3. **swap**: each ``period=P`` symlink is replaced by ``rename(2)`` of a new symlink over it, then the
   suppression log's, then ``public/releases/period=P/manifest.json`` is replaced (also by rename).

Guarantee, precisely:

* Warehouse: a reader sees all public marts and the ``releases`` row of the old release or all of the
  new one (one transaction; SQLite included, see ``warehouse.py`` on transactional DDL).
* Parquet, per mart: opening ``<mart>/period=P/data.parquet`` yields the complete old file or the
  complete new file, never a partial or missing one (rename of a symlink is atomic; old versions are
  kept, the last ``RELEASES_KEPT`` per period, so a reader that resolved the old link keeps reading it).
* Parquet, across marts: the swaps happen one after another within milliseconds, so a reader that reads
  several marts *during* that window, or after a crash inside it, may get some marts of the new release
  and some of the old one; each mart's ``_manifest.json`` names its ``run_id``, and
  ``public/releases/period=P/manifest.json`` names the run only once every link points at it.
* Crash (``kill -9``) at any point: before the warehouse commit, the previous release is intact
  everywhere (staged folders are orphans, pruned by the next publish); after it, the warehouse already
  holds the new release and the Parquet links point at old or new versions, each complete. Re-running
  the publish (Airflow's retry) completes the new release; it is idempotent.
* Re-publishing the same inputs gives byte-identical ``data.parquet`` files (rows sorted by period and
  dimension columns, ``Total`` last; fixed dtypes and writer options; no timestamp inside data files)
  and the same warehouse mart rows. ``published_at`` lives only in manifests and ``releases``.

Retries belong to Airflow, not here. ``TREATMENT_MARTS_FAULT=<point>[,<point>]`` hard-exits the process
(``os._exit(137)``) at the named points of :data:`FAULT_POINTS`; it exists for the kill tests only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from treatment_marts import __version__
from treatment_marts.core.faults import fault_point
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.publish.warehouse import (
    WarehouseError,
    check_identifier,
    describe,
    engine_for,
    is_sqlite,
    replace_period,
    replace_rows,
    schema_for,
)

log = logging.getLogger(__name__)

RELEASES_KEPT = 3
RELEASES_TABLE = "releases"
LOG_TABLE = "suppression_log"
MEASURE_COLUMNS = ("count", "status", "percent")
PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "row_group_size": 1 << 20,
}


class PublishError(RuntimeError):
    """Publishing failed; the message says what happened and what to do, never a record-level value."""


@dataclass
class PublishResult:
    period: str
    run_id: str
    marts: dict[str, Path]  # mart name -> <mart>/period=P/data.parquet (through the link)
    manifest_path: Path  # public/releases/period=P/manifest.json
    suppression_log_path: Path  # restricted/suppression_log/period=P/suppression_log.parquet
    warehouse_tables: list[str]  # public tables written (marts + releases); the log table is restricted


# --- helpers ------------------------------------------------------------------------------------------


def _check_period(period: str) -> str:
    if not isinstance(period, str) or not PERIOD_RE.match(period):
        raise PublishError(f"period must be YYYY-MM, got {period!r}")
    return period


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise PublishError(
            f"run id {run_id!r} is not safe as a folder name: use letters, digits, '_', '.', '-' "
            "(stages.safe_run_id makes one)"
        )
    return run_id


def _identifier(name: object, what: str) -> str:
    try:
        return check_identifier(name, what)
    except WarehouseError as exc:
        raise PublishError(str(exc)) from None


def _dimensions(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if c != "period" and c not in MEASURE_COLUMNS and not pd.api.types.is_float_dtype(frame[c])
    ]


def canonical_mart(frame: pd.DataFrame, name: str, period: str) -> pd.DataFrame:
    """A mart in the mart format with fixed dtypes and a deterministic row order.

    Columns are kept in their order; ``period``, dimension and ``status`` columns become pandas
    ``string``, ``count`` ``Int64``. Rows are sorted by period then each dimension column in column
    order, ``Total`` after every category, missing values after that (stable sort).
    """
    missing = [c for c in ("period", "count", "status") if c not in frame.columns]
    if missing:
        raise PublishError(f"mart {name}: not in the mart format, missing column(s) {missing}")
    for column in frame.columns:
        _identifier(column, f"column name in mart {name}")
    if frame.columns.duplicated().any():
        raise PublishError(f"mart {name}: duplicate column names")
    out = frame.reset_index(drop=True).copy()
    wrong = out["period"].astype("string").ne(period).fillna(True)
    if wrong.any():
        raise PublishError(
            f"mart {name}: {int(wrong.sum())} row(s) are not for period {period}; a release publishes one period"
        )
    try:
        out["count"] = out["count"].astype("Int64")
    except (TypeError, ValueError):
        raise PublishError(f"mart {name}: column 'count' must hold whole numbers or nulls") from None
    dims = _dimensions(out)
    keys = pd.DataFrame(index=out.index)
    for i, column in enumerate(["period", *dims]):
        series = out[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            value, is_total = series, pd.Series(False, index=out.index)
        else:
            text = series.astype("string")
            value = (
                pd.Series(series.cat.codes, index=out.index)
                if isinstance(series.dtype, pd.CategoricalDtype)
                else text.fillna("")
            )
            is_total = text.eq(TOTAL).fillna(False)
            out[column] = text
        keys[f"t{i}"] = is_total.astype("int8")  # Total after every category
        keys[f"n{i}"] = series.isna().astype("int8")  # missing after Total
        keys[f"v{i}"] = value
    out["status"] = out["status"].astype("string")
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return out.loc[order].reset_index(drop=True)


def canonical_log(frame: pd.DataFrame, period: str, run_id: str) -> pd.DataFrame:
    """The restricted suppression log, stamped with this run and period (first two columns)."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        _identifier(column, "column name in the suppression log")
    if "period" in out.columns:
        wrong = out["period"].astype("string").ne(period).fillna(False)
        if wrong.any():
            raise PublishError(f"suppression log: {int(wrong.sum())} row(s) are not for period {period}")
    out = out.drop(columns=[c for c in ("run_id", "period") if c in out.columns])
    out.insert(0, "period", pd.Series([period] * len(out), dtype="string"))
    out.insert(0, "run_id", pd.Series([run_id] * len(out), dtype="string"))
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_parquet(frame: pd.DataFrame, path: Path, mode: int = 0o644) -> str:
    """Write deterministically (same frame -> same bytes) and durably; return the file's sha256."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    data = sink.getvalue().to_pybytes()
    _write_bytes(path, data, mode)
    return hashlib.sha256(data).hexdigest()


def _write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def _make_dir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)


def _private_tree(root: Path, leaf: Path) -> None:
    """Create ``leaf`` under ``root`` with every folder from ``root`` down owner-only (0o700)."""
    _make_dir(leaf, 0o700)
    for folder in [leaf, *leaf.parents]:
        os.chmod(folder, 0o700)
        if folder == root:
            break


def _swap_link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically: a new relative symlink renamed over the old one."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.swap")
    os.symlink(os.path.relpath(target, link.parent), tmp)
    if link.exists() and not link.is_symlink():
        # A plain folder (not made by this module): move it aside once. rename(2) cannot put a link over a
        # directory, so there is a moment without the folder here; it happens at most once per folder.
        os.replace(link, link.with_name(f".{link.name}.replaced.{uuid.uuid4().hex}"))
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _prune(versions_dir: Path, current: Path | None) -> None:
    """Keep the version the link points at and the newest others, up to RELEASES_KEPT in all."""
    if not versions_dir.is_dir():
        return
    others = [p for p in versions_dir.iterdir() if p.is_dir() and (current is None or p.resolve() != current)]
    others.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in others[max(RELEASES_KEPT - 1, 0) :]:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _publish_lock(settings: Settings) -> Iterator[None]:
    """One publisher per data root at a time (released by the kernel if the process dies)."""
    _make_dir(settings.restricted_dir, 0o700)
    lock_path = settings.restricted_dir / ".publish.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _db_failure(url: str, exc: BaseException, stage: str) -> PublishError:
    """A message naming the warehouse and the failure class; driver text only for connection failures
    (which carry host/port, never data), since other driver errors can quote row values."""
    detail = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is not None:
        detail += f"/{type(orig).__name__}"
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate:
            detail += f" SQLSTATE {sqlstate}"
    if stage == "connect":
        first_line = str(orig or exc).strip().splitlines()[0][:300] if str(orig or exc).strip() else ""
        return PublishError(
            f"cannot connect to the warehouse {describe(url)} ({detail}: {first_line}); nothing was published and "
            "the previous release is unchanged (Parquet and warehouse); check the server and the URL, then re-run "
            "the publish task"
        )
    return PublishError(
        f"writing the warehouse {describe(url)} failed ({detail}) during {stage}; the transaction was rolled back, "
        "nothing was published and the previous release is unchanged (Parquet and warehouse); re-run the "
        "publish task (check the server log if it fails again)"
    )


# --- the warehouse step -------------------------------------------------------------------------------


def _write_public(
    conn: sa.Connection, schema: str | None, period: str, frames: Mapping[str, pd.DataFrame], releases: pd.DataFrame
) -> None:
    for name, frame in frames.items():
        replace_period(conn, name, frame, period, schema)
    replace_period(conn, RELEASES_TABLE, releases, period, schema)


def _write_warehouse(  # noqa: C901 - split by the publish refactor
    settings: Settings,
    *,
    period: str,
    run_id: str,
    frames: Mapping[str, pd.DataFrame],
    log_frame: pd.DataFrame,
    releases: pd.DataFrame,
) -> None:
    public_url, restricted_url = settings.warehouse_url, settings.restricted_warehouse_url
    public_schema = schema_for(public_url, restricted=False)
    restricted_schema = schema_for(restricted_url, restricted=True)
    shared = sa.engine.make_url(public_url) == sa.engine.make_url(restricted_url) and not is_sqlite(public_url)
    if sa.engine.make_url(public_url) == sa.engine.make_url(restricted_url) and is_sqlite(public_url):
        raise PublishError(
            "the public and the restricted warehouse are the same SQLite file; SQLite has no schemas, so the "
            "restricted suppression log needs its own database (Settings.restricted_warehouse_url)"
        )

    public_engine = engine_for(public_url, write=True)
    restricted_engine = public_engine if shared else engine_for(restricted_url, write=True)
    try:
        # Connect to both before writing anything: a server that is down changes nothing.
        with contextlib.ExitStack() as stack:
            try:
                public_conn = stack.enter_context(public_engine.connect())
            except SQLAlchemyError as exc:
                raise _db_failure(public_url, exc, "connect") from None
            if shared:
                restricted_conn = public_conn
            else:
                try:
                    restricted_conn = stack.enter_context(restricted_engine.connect())
                except SQLAlchemyError as exc:
                    raise _db_failure(restricted_url, exc, "connect") from None

            if shared:
                try:
                    with public_conn.begin():
                        replace_period(public_conn, LOG_TABLE, log_frame, period, restricted_schema)
                        fault_point("publish:after_restricted_warehouse")  # here: inside the one transaction
                        _write_public(public_conn, public_schema, period, frames, releases)
                        fault_point("publish:in_warehouse_transaction")
                except (SQLAlchemyError, WarehouseError) as exc:
                    raise _db_failure(public_url, exc, "the release transaction") from None
                return

            try:
                with restricted_conn.begin():
                    replace_rows(
                        restricted_conn, LOG_TABLE, log_frame, restricted_schema, {"period": period, "run_id": run_id}
                    )
            except (SQLAlchemyError, WarehouseError) as exc:
                raise _db_failure(restricted_url, exc, "the restricted suppression log write") from None
            fault_point("publish:after_restricted_warehouse")
            try:
                with public_conn.begin():
                    _write_public(public_conn, public_schema, period, frames, releases)
                    fault_point("publish:in_warehouse_transaction")
            except (SQLAlchemyError, WarehouseError) as exc:
                raise _db_failure(public_url, exc, "the public release transaction") from None
            try:
                with restricted_conn.begin():
                    table = sa.Table(LOG_TABLE, sa.MetaData(schema=restricted_schema), autoload_with=restricted_conn)
                    restricted_conn.execute(table.delete().where(table.c.period == period, table.c.run_id != run_id))
            except SQLAlchemyError as exc:
                log.warning(
                    "release %s %s published; superseded suppression-log rows of earlier runs of the period could not "
                    "be removed from %s (%s); re-run the publish to tidy them (rows are keyed by run_id)",
                    period,
                    run_id,
                    describe(restricted_url),
                    type(exc).__name__,
                )
    finally:
        public_engine.dispose()
        if restricted_engine is not public_engine:
            restricted_engine.dispose()
    if is_sqlite(restricted_url):
        database = sa.engine.make_url(restricted_url).database
        if database and database != ":memory:" and Path(database).exists():
            os.chmod(database, 0o600)


# --- the API ------------------------------------------------------------------------------------------


def publish_release(
    settings: Settings,
    *,
    period: str,
    run_id: str,
    marts: Mapping[str, pd.DataFrame],
    suppression_log: pd.DataFrame,
    manifest: Mapping[str, Any],
) -> PublishResult:
    """Publish one period's release (module docstring: order, guarantee, layout). Raises PublishError."""
    _check_period(period)
    _check_run_id(run_id)
    if not marts:
        raise PublishError(f"nothing to publish for {period}: no marts given")
    names = sorted(marts)
    for name in names:
        _identifier(name, "mart name")
        if name in (RELEASES_TABLE, LOG_TABLE):
            raise PublishError(f"mart name {name!r} is reserved for the warehouse's own table; rename the mart")
    frames = {name: canonical_mart(marts[name], name, period) for name in names}
    log_frame = canonical_log(suppression_log, period, run_id)

    marts_root = settings.public_dir / "marts"
    log_root = settings.restricted_dir / "suppression_log"
    with _publish_lock(settings):
        published_at = datetime.now(UTC).isoformat(timespec="seconds")
        version = f"{run_id}.{uuid.uuid4().hex[:12]}"
        release_manifest = {
            **dict(manifest),
            "period": period,
            "run_id": run_id,
            "published_at": published_at,
            "marts": names,
            "rows": {name: int(len(frames[name])) for name in names},
            "warehouse": {
                "public": describe(settings.warehouse_url),
                "schema": schema_for(settings.warehouse_url, restricted=False),
                "tables": [*names, RELEASES_TABLE],
            },
            "parquet": {"layout": "public/marts/<mart>/period=YYYY-MM/data.parquet", "options": PARQUET_OPTIONS},
        }
        release_manifest.setdefault("package_version", __version__)

        # 1. stage --------------------------------------------------------------------------------------
        staged: dict[str, Path] = {}
        sha256: dict[str, str] = {}
        try:
            for name in names:
                folder = marts_root / name / ".releases" / f"period={period}" / version
                _make_dir(folder, 0o755)
                staged[name] = folder
                sha256[name] = _write_parquet(frames[name], folder / "data.parquet")
            for name in names:
                mart_manifest = {
                    **release_manifest,
                    "mart": name,
                    "data_sha256": sha256[name],
                    "columns": list(frames[name].columns),
                }
                _write_bytes(staged[name] / "_manifest.json", _json(mart_manifest))
            log_folder = log_root / ".releases" / f"period={period}" / version
            _private_tree(settings.restricted_dir, log_folder)
            _write_parquet(log_frame, log_folder / "suppression_log.parquet", mode=0o600)
            _write_bytes(
                log_folder / "_manifest.json",
                _json({**release_manifest, "suppression_log_rows": int(len(log_frame))}),
                mode=0o600,
            )
        except OSError as exc:
            _remove(staged.values())
            raise PublishError(
                f"staging the release under {settings.data_root} failed ({type(exc).__name__}: {exc.strerror}); "
                "nothing was published; free space / fix permissions and re-run"
            ) from None
        release_manifest["data_sha256"] = sha256
        fault_point("publish:after_staging")

        # 2. warehouse, one transaction for the public release ----------------------------------------------
        releases = pd.DataFrame(
            {
                "period": pd.Series([period], dtype="string"),
                "run_id": pd.Series([run_id], dtype="string"),
                "published_at": pd.Series([published_at], dtype="string"),
                "manifest": pd.Series([json.dumps(release_manifest, sort_keys=True, default=str)], dtype="string"),
            }
        )
        try:
            _write_warehouse(
                settings, period=period, run_id=run_id, frames=frames, log_frame=log_frame, releases=releases
            )
        except PublishError:
            _remove([*staged.values(), log_folder])
            raise
        fault_point("publish:after_warehouse")

        # 3. swap the Parquet links -------------------------------------------------------------------------
        published: dict[str, Path] = {}
        for index, name in enumerate(names):
            link = marts_root / name / f"period={period}"
            _swap_link(link, staged[name])
            published[name] = link / "data.parquet"
            if index == 0:
                fault_point("publish:mid_parquet_swap")
        fault_point("publish:after_parquet_swap")
        log_link = log_root / f"period={period}"
        _swap_link(log_link, log_folder)
        manifest_dir = settings.public_dir / "releases" / f"period={period}"
        _make_dir(manifest_dir, 0o755)
        manifest_path = manifest_dir / "manifest.json"
        tmp = manifest_dir / f".manifest.{version}.tmp"
        _write_bytes(tmp, _json(release_manifest))
        os.replace(tmp, manifest_path)
        _fsync_dir(manifest_dir)

        for name in names:
            _prune(staged[name].parent, staged[name].resolve())
        _prune(log_folder.parent, log_folder.resolve())

    log.info(
        "published %s run %s: %d mart(s) to Parquet and %s",
        period,
        run_id,
        len(names),
        describe(settings.warehouse_url),
    )
    return PublishResult(
        period=period,
        run_id=run_id,
        marts=published,
        manifest_path=manifest_path,
        suppression_log_path=log_link / "suppression_log.parquet",
        warehouse_tables=[*names, RELEASES_TABLE],
    )


def _remove(folders: Any) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def read_mart(settings: Settings, mart: str, period: str | None = None) -> pd.DataFrame:
    """Analysts' convenience: one published period of a mart, or every published period (in order)."""
    _identifier(mart, "mart name")
    root = settings.public_dir / "marts" / mart
    if period is not None:
        _check_period(period)
        folders = [root / f"period={period}"]
    else:
        folders = sorted(p for p in root.glob("period=*") if PERIOD_RE.match(p.name.removeprefix("period=")))
    frames = [pd.read_parquet(folder / "data.parquet") for folder in folders if (folder / "data.parquet").exists()]
    if not frames:
        raise FileNotFoundError(
            f"no published release of mart {mart}" + (f" for {period}" if period else "") + f" under {root}"
        )
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def published_release(settings: Settings, period: str) -> dict[str, Any] | None:
    """The warehouse's ``releases`` row of a period (run_id, published_at, manifest), or None."""
    _check_period(period)
    engine = engine_for(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            schema = schema_for(settings.warehouse_url, restricted=False)
            if not sa.inspect(conn).has_table(RELEASES_TABLE, schema=schema):
                return None
            table = sa.Table(RELEASES_TABLE, sa.MetaData(schema=schema), autoload_with=conn)
            row = conn.execute(sa.select(table).where(table.c.period == period)).mappings().first()
    except SQLAlchemyError as exc:
        raise _db_failure(settings.warehouse_url, exc, "connect") from None
    finally:
        engine.dispose()
    if row is None:
        return None
    return {
        "period": row["period"],
        "run_id": row["run_id"],
        "published_at": row["published_at"],
        "manifest": json.loads(row["manifest"]),
    }
