"""Publish a release: Parquet marts and the SQL warehouse, atomic and idempotent per period.

The file layout (version folders, period links, the release manifest) is described in ``layout.py``.

Order of a publish (under an exclusive lock file, one publisher per data root at a time):

1. **stage**: every mart's Parquet + manifest and the suppression log (fsynced), and the exports, are
   written into new version folders. Nothing a reader opens has changed.
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
   exports' (staged in step 1 with the marts, so they move with the release), then the suppression
   log's, then ``public/releases/period=P/manifest.json`` is replaced (also by rename). Stale staging
   left by a crashed publish (``exports/.period=P.*``, manifest temporaries) is removed at the next one.

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
import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from treatment_marts import __version__
from treatment_marts.core.faults import fault_point
from treatment_marts.core.ids import InvalidIdentifier, Period, RunId
from treatment_marts.core.settings import Settings
from treatment_marts.publish.canonical import canonical_log, canonical_mart, identifier
from treatment_marts.publish.errors import PublishError, warehouse_failure
from treatment_marts.publish.layout import (
    PARQUET_OPTIONS,
    ExportWriter,
    clean_stale_staging,
    publish_lock,
    remove,
    stage_release,
    swap_release,
)
from treatment_marts.publish.public_facts import public_facts
from treatment_marts.publish.warehouse import (
    WarehouseError,
    describe,
    engine_for,
    is_sqlite,
    replace_period,
    replace_rows,
    schema_for,
)

__all__ = ["LOG_TABLE", "RELEASES_TABLE", "PublishError", "PublishResult", "publish_release"]

log = logging.getLogger(__name__)

RELEASES_TABLE = "releases"
LOG_TABLE = "suppression_log"


@dataclass
class PublishResult:
    period: str
    run_id: str
    marts: dict[str, Path]  # mart name -> <mart>/period=P/data.parquet (through the link)
    manifest_path: Path  # public/releases/period=P/manifest.json
    suppression_log_path: Path  # restricted/suppression_log/period=P/suppression_log.parquet
    warehouse_tables: list[str]  # public tables written (marts + releases); the log table is restricted
    exports_path: Path | None = None  # public/exports/period=P, when the release has exports


def _checked(period: str, run_id: str) -> tuple[Period, RunId]:
    try:
        return Period.parse(period), RunId.parse(run_id)
    except InvalidIdentifier as exc:
        raise PublishError(str(exc)) from None


# --- the warehouse step -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Release:
    """The rows one release writes to the warehouse."""

    period: str
    run_id: str
    frames: Mapping[str, pd.DataFrame]
    log_frame: pd.DataFrame
    releases: pd.DataFrame


def _write_public(conn: sa.Connection, schema: str | None, release: _Release) -> None:
    for name, frame in release.frames.items():
        replace_period(conn, name, frame, release.period, schema)
    replace_period(conn, RELEASES_TABLE, release.releases, release.period, schema)


@contextlib.contextmanager
def _connected(engine: sa.Engine, url: str) -> Iterator[sa.Connection]:
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise warehouse_failure(url, exc, "connect") from None
    with conn:
        yield conn


def _write_shared(conn: sa.Connection, url: str, release: _Release) -> None:
    """Public and restricted on one server: ONE transaction covers the log, the marts and `releases`."""
    try:
        with conn.begin():
            replace_period(conn, LOG_TABLE, release.log_frame, release.period, schema_for(url, restricted=True))
            fault_point("publish:after_restricted_warehouse")  # here: inside the one transaction
            _write_public(conn, schema_for(url, restricted=False), release)
            fault_point("publish:in_warehouse_transaction")
    except (SQLAlchemyError, WarehouseError) as exc:
        raise warehouse_failure(url, exc, "the release transaction") from None


def _write_separate(
    public_conn: sa.Connection, public_url: str, restricted_conn: sa.Connection, restricted_url: str, release: _Release
) -> None:
    """Separate databases: this run's log rows beside the previous run's, then ONE public transaction,
    then the superseded runs' log rows go (so `releases.run_id` always names a run whose log is there)."""
    restricted_schema = schema_for(restricted_url, restricted=True)
    period, run_id = release.period, release.run_id
    try:
        with restricted_conn.begin():
            replace_rows(
                restricted_conn, LOG_TABLE, release.log_frame, restricted_schema, {"period": period, "run_id": run_id}
            )
    except (SQLAlchemyError, WarehouseError) as exc:
        raise warehouse_failure(restricted_url, exc, "the restricted suppression log write") from None
    fault_point("publish:after_restricted_warehouse")
    try:
        with public_conn.begin():
            _write_public(public_conn, schema_for(public_url, restricted=False), release)
            fault_point("publish:in_warehouse_transaction")
    except (SQLAlchemyError, WarehouseError) as exc:
        raise warehouse_failure(public_url, exc, "the public release transaction") from None
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


def _write_warehouse(settings: Settings, release: _Release) -> None:
    """Connect to both warehouses before writing anything (a server that is down changes nothing), then
    write the release as one shared transaction or the separate-database sequence."""
    public_url, restricted_url = settings.warehouse_url, settings.restricted_warehouse_url
    same = sa.engine.make_url(public_url) == sa.engine.make_url(restricted_url)
    if same and is_sqlite(public_url):
        raise PublishError(
            "the public and the restricted warehouse are the same SQLite file; SQLite has no schemas, so the "
            "restricted suppression log needs its own database (Settings.restricted_warehouse_url)"
        )
    public_engine = engine_for(public_url, write=True)
    restricted_engine = public_engine if same else engine_for(restricted_url, write=True)
    try:
        with _connected(public_engine, public_url) as public_conn:
            if same:
                _write_shared(public_conn, public_url, release)
            else:
                with _connected(restricted_engine, restricted_url) as restricted_conn:
                    _write_separate(public_conn, public_url, restricted_conn, restricted_url, release)
    finally:
        public_engine.dispose()
        if restricted_engine is not public_engine:
            restricted_engine.dispose()
    if is_sqlite(restricted_url):
        database = sa.engine.make_url(restricted_url).database
        if database and database != ":memory:" and Path(database).exists():
            os.chmod(database, 0o600)


# --- the API ------------------------------------------------------------------------------------------


def _release_manifest(
    settings: Settings, manifest: Mapping[str, Any], period: str, run_id: str, frames: Mapping[str, pd.DataFrame]
) -> dict[str, Any]:
    names = list(frames)
    release_manifest = {
        **public_facts(manifest),
        "period": period,
        "run_id": run_id,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
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
    return release_manifest


def _releases_row(period: str, run_id: str, published_at: str, release_manifest: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": pd.Series([period], dtype="string"),
            "run_id": pd.Series([run_id], dtype="string"),
            "published_at": pd.Series([published_at], dtype="string"),
            "manifest": pd.Series([json.dumps(release_manifest, sort_keys=True, default=str)], dtype="string"),
        }
    )


def publish_release(
    settings: Settings,
    *,
    period: str,
    run_id: str,
    marts: Mapping[str, pd.DataFrame],
    suppression_log: pd.DataFrame,
    manifest: Mapping[str, Any],
    exports: ExportWriter | None = None,
) -> PublishResult:
    """Publish one period's release (module docstring: order, guarantee). Raises PublishError.

    ``exports`` writes the analyst exports into the folder it is given; they are staged and swapped with
    the marts, so every public artefact of a release moves together or not at all."""
    period, run_id = _checked(period, run_id)
    period_text, run_text = str(period), str(run_id)
    if not marts:
        raise PublishError(f"nothing to publish for {period}: no marts given")
    names = sorted(marts)
    for name in names:
        identifier(name, "mart name")
        if name in (RELEASES_TABLE, LOG_TABLE):
            raise PublishError(f"mart name {name!r} is reserved for the warehouse's own table; rename the mart")
    frames = {name: canonical_mart(marts[name], name, period_text) for name in names}
    log_frame = canonical_log(suppression_log, period_text, run_text)

    with publish_lock(settings):
        clean_stale_staging(settings)
        release_manifest = _release_manifest(settings, manifest, period_text, run_text, frames)
        version = f"{run_text}.{uuid.uuid4().hex[:12]}"
        # 1. stage
        staged = stage_release(
            settings,
            period=period_text,
            version=version,
            frames=frames,
            log_frame=log_frame,
            release_manifest=release_manifest,
            exports=exports,
        )
        release_manifest["data_sha256"] = staged.sha256
        fault_point("publish:after_staging")
        # 2. warehouse, one transaction for the public release
        releases = _releases_row(period_text, run_text, release_manifest["published_at"], release_manifest)
        try:
            _write_warehouse(settings, _Release(period_text, run_text, frames, log_frame, releases))
        except PublishError:
            remove(staged.folders())
            raise
        fault_point("publish:after_warehouse")
        # 3. swap the Parquet links, then the log's, then the release manifest
        swapped = swap_release(settings, staged, release_manifest)

    log.info(
        "published %s run %s: %d mart(s) to Parquet and %s",
        period,
        run_id,
        len(names),
        describe(settings.warehouse_url),
    )
    return PublishResult(
        period=period_text,
        run_id=run_text,
        marts=swapped.marts,
        manifest_path=swapped.manifest_path,
        suppression_log_path=swapped.suppression_log_path,
        warehouse_tables=[*names, RELEASES_TABLE],
        exports_path=swapped.exports_path,
    )
