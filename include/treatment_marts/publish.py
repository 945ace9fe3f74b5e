"""Publish a release: Parquet marts and the SQL warehouse, atomic and idempotent per period.

Order, so that a crash at any point leaves either the previous release or the new one, never a mix:

1. the restricted suppression log (Parquet + restricted warehouse), which nothing public depends on;
2. new Parquet files are written to a versioned folder ``public/marts/<mart>/.releases/period=P/<run_id>/``
   (not yet visible), each with ``_manifest.json`` beside ``data.parquet`` (the leading underscore keeps
   Parquet dataset readers from mistaking it for data);
3. the public warehouse: every mart's period rows and the ``releases`` row replaced in ONE transaction;
4. ``public/marts/<mart>/period=P`` is a symbolic link, switched to the new folder with an atomic rename.

A reader of the warehouse sees the old or the new release (one transaction). A reader of Parquet
resolves ``period=P`` once and gets one complete release of that mart. If the warehouse is down, step 3
fails and nothing public changes: never a Parquet-only release. Re-publishing identical inputs writes
byte-identical Parquet (deterministic row order, fixed writer options, no timestamps in data files).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from treatment_marts.settings import Settings
from treatment_marts.warehouse import (
    WarehouseError,
    check_identifier,
    describe,
    engine_for,
    replace_period,
    schema_for,
)

ENV_FAULT = "TREATMENT_MARTS_FAULT"
RELEASES_KEPT = 3


class PublishError(RuntimeError):
    """Publishing failed; the previous release is intact. The message says what to do."""


@dataclass
class PublishResult:
    period: str
    run_id: str
    marts: dict[str, Path]
    manifest_path: Path
    suppression_log_path: Path
    warehouse_tables: list[str]


def _fault(point: str) -> None:
    """Test hook: hard-exit at a named point, as a killed worker would."""
    if os.environ.get(ENV_FAULT) == point:
        os._exit(137)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None)  # pandas metadata is not needed by readers of typed columns
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def _publish_log(settings: Settings, period: str, run_id: str, log: pd.DataFrame) -> Path:
    folder = settings.restricted_dir / "suppression_log" / f"period={period}"
    _private_dir(folder)
    path = folder / "suppression_log.parquet"
    tmp = folder / f".{run_id}.tmp"
    _write_parquet(log, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    engine = engine_for(settings.restricted_warehouse_url)
    try:
        with engine.begin() as conn:
            replace_period(conn, "suppression_log", log.assign(period=log["period"] if "period" in log else period),
                           period, schema_for(settings.restricted_warehouse_url, restricted=True))
    except SQLAlchemyError as exc:
        raise PublishError(
            f"restricted warehouse {describe([settings.restricted_warehouse_url])} unavailable ({type(exc).__name__}); "
            "nothing was published; retry when it is back"
        ) from None
    finally:
        engine.dispose()
    return path


def _swap_link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically (rename over the old link)."""
    tmp = link.with_name(f".{link.name}.swap")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(target, link.parent), tmp)
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # a plain folder from an older layout: replaced once by the link
    os.replace(tmp, link)


def _prune(releases: Path, keep: Path) -> None:
    versions = sorted((p for p in releases.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in versions[:-RELEASES_KEPT]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def publish_release(
    settings: Settings,
    *,
    period: str,
    run_id: str,
    marts: Mapping[str, pd.DataFrame],
    suppression_log: pd.DataFrame,
    manifest: Mapping[str, Any],
) -> PublishResult:
    for name in marts:
        check_identifier(name, "mart name")
    published_at = datetime.now(UTC).isoformat(timespec="seconds")
    release_manifest = {**manifest, "period": period, "run_id": run_id, "published_at": published_at,
                        "rows": {name: len(frame) for name, frame in marts.items()}}

    log_path = _publish_log(settings, period, run_id, suppression_log)
    _fault("publish:after_restricted")

    staged: dict[str, Path] = {}
    for name, frame in sorted(marts.items()):
        folder = settings.public_dir / "marts" / name / ".releases" / f"period={period}" / run_id
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        _write_parquet(frame.reset_index(drop=True), folder / "data.parquet")
        (folder / "_manifest.json").write_text(json.dumps({**release_manifest, "mart": name}, indent=2, sort_keys=True, default=str))
        staged[name] = folder
    _fault("publish:after_parquet_staged")

    engine = engine_for(settings.warehouse_url)
    schema = schema_for(settings.warehouse_url, restricted=False)
    try:
        with engine.begin() as conn:
            for name, frame in sorted(marts.items()):
                replace_period(conn, name, frame, period, schema)
            releases = pd.DataFrame([{"period": period, "run_id": run_id, "published_at": published_at,
                                      "manifest": json.dumps(release_manifest, sort_keys=True, default=str)}])
            replace_period(conn, "releases", releases, period, schema)
            _fault("publish:inside_warehouse_transaction")
    except (SQLAlchemyError, WarehouseError) as exc:
        for folder in staged.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise PublishError(
            f"warehouse {describe([settings.warehouse_url])} could not be written ({type(exc).__name__}); "
            "the previous release is unchanged (Parquet and warehouse); retry when the warehouse is back"
        ) from None
    finally:
        engine.dispose()
    _fault("publish:after_warehouse")

    published: dict[str, Path] = {}
    for index, (name, folder) in enumerate(sorted(staged.items())):
        link = settings.public_dir / "marts" / name / f"period={period}"
        _swap_link(link, folder)
        _prune(folder.parent, folder)
        published[name] = link / "data.parquet"
        if index == 0:
            _fault("publish:mid_parquet_swap")
    first = next(iter(sorted(published)), None)
    manifest_path = (settings.public_dir / "marts" / first / f"period={period}" / "_manifest.json") if first else log_path
    return PublishResult(period, run_id, published, manifest_path, log_path, sorted(marts) + ["releases"])


def read_mart(settings: Settings, mart: str, period: str | None = None) -> pd.DataFrame:
    """Analysts' convenience: one period, or every published period of a mart."""
    check_identifier(mart, "mart name")
    root = settings.public_dir / "marts" / mart
    folders = [root / f"period={period}"] if period else sorted(p for p in root.glob("period=*"))
    frames = [pd.read_parquet(folder / "data.parquet") for folder in folders if (folder / "data.parquet").exists()]
    if not frames:
        raise FileNotFoundError(f"no published release of mart {mart}" + (f" for {period}" if period else ""))
    return pd.concat(frames, ignore_index=True)


def warehouse_periods(settings: Settings) -> list[str]:
    engine = engine_for(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            table = sa.Table("releases", sa.MetaData(schema=schema_for(settings.warehouse_url, False)), autoload_with=conn)
            return sorted(r[0] for r in conn.execute(sa.select(table.c.period)))
    finally:
        engine.dispose()
