"""The release's file layout: staged version folders, durable writes, atomic link swaps, pruning, the lock.

Layout (``<root>`` is the data root, ``P`` the period ``YYYY-MM``)::

    public/marts/<mart>/period=P            -> symlink to .releases/period=P/<version>   (what readers open)
    public/marts/<mart>/.releases/period=P/<version>/data.parquet      the mart, one file
    public/marts/<mart>/.releases/period=P/<version>/_manifest.json    release manifest + this mart's rows/sha256
    public/exports/period=P                 -> symlink to .releases/period=P/<version>   (CSV per mart, XLSX per area)
    public/releases/period=P/manifest.json                              release manifest (written last)
    restricted/suppression_log/period=P     -> symlink to .releases/period=P/<version>   (0o700 dirs)
    restricted/suppression_log/.releases/period=P/<version>/suppression_log.parquet   (0o600)

``<version>`` is ``<run_id>.<random>``: a fresh folder per publish attempt, so a re-publish never
writes into the folder a reader may be reading. Names starting with ``.`` or ``_`` are skipped by
pyarrow/pandas dataset discovery (at every level of the path), so ``pd.read_parquet(".../<mart>/period=P")``
reads exactly one period and ``pd.read_parquet(".../<mart>/")`` every current period, never an old version
under ``.releases`` nor a manifest.

Reading the whole mart folder as one dataset: the ``period=P`` links are Hive partitions, and pandas /
``pq.read_table`` infer a partition key as ``dictionary<int32, string>``. The ``period`` column inside each
file is therefore written with exactly that type (:data:`PERIOD_TYPE`): the file's column and the
partition field then unify instead of raising ``ArrowTypeError``, and a single file read on its own still
carries its period (a partition-only column would vanish from ``pd.read_parquet(".../data.parquet")``).
pandas shows the column as a categorical of period strings. DuckDB reads ``<mart>/period=*/data.parquet``
(hive partitioning detected, same values). See docs/marts.md, "Reading every period".
Old versions are kept, the last ``RELEASES_KEPT`` per period, so a reader that resolved the old link keeps
reading it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from treatment_marts.core.faults import fault_point
from treatment_marts.core.locks import exclusive_lock
from treatment_marts.core.settings import Settings
from treatment_marts.publish.errors import PublishError

RELEASES_KEPT = 3
PERIOD_TYPE = pa.dictionary(pa.int32(), pa.string())
"""The type of ``period`` in every published file: what pandas/pyarrow infer for the ``period=P`` partition."""
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "row_group_size": 1 << 20,
}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(frame: pd.DataFrame, path: Path, mode: int = 0o644) -> str:
    """Write deterministically (same frame -> same bytes) and durably; return the file's sha256."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "period" in table.column_names:
        index = table.column_names.index("period")
        period = table.column("period").cast(pa.string()).dictionary_encode()
        table = table.set_column(index, pa.field("period", PERIOD_TYPE), period)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    data = sink.getvalue().to_pybytes()
    write_bytes(path, data, mode)
    return hashlib.sha256(data).hexdigest()


def write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
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


def json_bytes(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def make_dir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)


def private_tree(root: Path, leaf: Path) -> None:
    """Create ``leaf`` under ``root`` with every folder from ``root`` down owner-only (0o700)."""
    make_dir(leaf, 0o700)
    for folder in [leaf, *leaf.parents]:
        os.chmod(folder, 0o700)
        if folder == root:
            break


def swap_link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically: a new relative symlink renamed over the old one."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.swap")
    os.symlink(os.path.relpath(target, link.parent), tmp)
    if link.exists() and not link.is_symlink():
        # A plain folder (not made by this module): move it aside once. rename(2) cannot put a link over a
        # directory, so there is a moment without the folder here; it happens at most once per folder.
        os.replace(link, link.with_name(f".{link.name}.replaced.{uuid.uuid4().hex}"))
    os.replace(tmp, link)
    fsync_dir(link.parent)


def prune(versions_dir: Path, current: Path | None) -> None:
    """Keep the version the link points at and the newest others, up to RELEASES_KEPT in all."""
    if not versions_dir.is_dir():
        return
    others = [p for p in versions_dir.iterdir() if p.is_dir() and (current is None or p.resolve() != current)]
    others.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in others[max(RELEASES_KEPT - 1, 0) :]:
        shutil.rmtree(old, ignore_errors=True)


def remove(folders: Iterable[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def publish_lock(settings: Settings) -> Iterator[None]:
    """One publisher per data root at a time (released by the kernel if the process dies)."""
    make_dir(settings.restricted_dir, 0o700)
    with exclusive_lock(settings.restricted_dir / ".publish.lock"):
        yield


ExportWriter = Callable[[Path], None]
"""Writes a release's exports (CSV, XLSX) into the empty folder it is given (the export version folder)."""


@dataclass(frozen=True)
class StagedRelease:
    """The new version folders of a release, written and fsynced, not yet linked."""

    period: str
    version: str
    marts: dict[str, Path]  # mart name -> its version folder
    log_folder: Path
    sha256: dict[str, str]  # mart name -> sha256 of its data.parquet
    exports: Path | None = None  # the exports' version folder, when the release has exports

    def folders(self) -> list[Path]:
        return [*self.marts.values(), self.log_folder, *([self.exports] if self.exports else [])]


@dataclass(frozen=True)
class SwappedRelease:
    marts: dict[str, Path]  # mart name -> <mart>/period=P/data.parquet (through the link)
    manifest_path: Path
    suppression_log_path: Path
    exports_path: Path | None  # public/exports/period=P (through the link)


def _marts_root(settings: Settings) -> Path:
    return settings.public_dir / "marts"


def _log_root(settings: Settings) -> Path:
    return settings.restricted_dir / "suppression_log"


def _exports_root(settings: Settings) -> Path:
    return settings.public_dir / "exports"


def clean_stale_staging(settings: Settings) -> list[Path]:
    """Remove what a crashed publish left half-written: export staging folders (``.period=P.<run>.tmp``,
    ``.period=P.previous``, ``.period=P.replaced.<hex>``) and release-manifest temporaries. Run under the
    publish lock, so no other publisher is writing them."""
    stale = [
        *_exports_root(settings).glob(".period=*"),
        *(settings.public_dir / "releases").glob("period=*/.manifest.*.tmp"),
    ]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def stage_release(
    settings: Settings,
    *,
    period: str,
    version: str,
    frames: Mapping[str, pd.DataFrame],
    log_frame: pd.DataFrame,
    release_manifest: Mapping[str, Any],
    exports: ExportWriter | None = None,
) -> StagedRelease:
    """Write every mart's Parquet + manifest, the suppression log and the exports into new version
    folders. Nothing a reader opens changes; on a failure the folders are removed (PublishError for a
    file-system error; an export writer's own error is re-raised)."""
    staged: dict[str, Path] = {}
    sha256: dict[str, str] = {}
    exports_folder = _exports_root(settings) / ".releases" / f"period={period}" / version
    log_folder = _log_root(settings) / ".releases" / f"period={period}" / version
    try:
        for name in frames:
            folder = _marts_root(settings) / name / ".releases" / f"period={period}" / version
            make_dir(folder, 0o755)
            staged[name] = folder
            sha256[name] = write_parquet(frames[name], folder / "data.parquet")
        for name in frames:
            mart_manifest = {
                **release_manifest,
                "mart": name,
                "data_sha256": sha256[name],
                "columns": list(frames[name].columns),
            }
            write_bytes(staged[name] / "_manifest.json", json_bytes(mart_manifest))
        private_tree(settings.restricted_dir, log_folder)
        write_parquet(log_frame, log_folder / "suppression_log.parquet", mode=0o600)
        write_bytes(
            log_folder / "_manifest.json",
            json_bytes({**release_manifest, "suppression_log_rows": int(len(log_frame))}),
            mode=0o600,
        )
        if exports is not None:
            make_dir(exports_folder, 0o755)
            exports(exports_folder)
    except OSError as exc:
        remove([*staged.values(), log_folder, exports_folder])
        raise PublishError(
            f"staging the release under {settings.data_root} failed ({type(exc).__name__}: {exc.strerror}); "
            "nothing was published; free space / fix permissions and re-run"
        ) from None
    except BaseException:
        remove([*staged.values(), log_folder, exports_folder])
        raise
    return StagedRelease(
        period=period,
        version=version,
        marts=staged,
        log_folder=log_folder,
        sha256=sha256,
        exports=exports_folder if exports is not None else None,
    )


def swap_release(settings: Settings, staged: StagedRelease, release_manifest: Mapping[str, Any]) -> SwappedRelease:
    """Point every mart's ``period=P`` link at its new version, then the exports' and the log's, then
    replace the release manifest (written last: it names the run only once every link points at it);
    prune old versions."""
    period = staged.period
    published: dict[str, Path] = {}
    for index, (name, folder) in enumerate(staged.marts.items()):
        link = _marts_root(settings) / name / f"period={period}"
        swap_link(link, folder)
        published[name] = link / "data.parquet"
        if index == 0:
            fault_point("publish:mid_parquet_swap")
    fault_point("publish:after_parquet_swap")
    exports_link = None
    if staged.exports is not None:
        exports_link = _exports_root(settings) / f"period={period}"
        swap_link(exports_link, staged.exports)
    log_link = _log_root(settings) / f"period={period}"
    swap_link(log_link, staged.log_folder)
    manifest_dir = settings.public_dir / "releases" / f"period={period}"
    make_dir(manifest_dir, 0o755)
    manifest_path = manifest_dir / "manifest.json"
    tmp = manifest_dir / f".manifest.{staged.version}.tmp"
    write_bytes(tmp, json_bytes(release_manifest))
    os.replace(tmp, manifest_path)
    fsync_dir(manifest_dir)

    for folder in staged.folders():
        prune(folder.parent, folder.resolve())
    clean_stale_staging(settings)  # e.g. the plain exports folder of an older release, moved aside by swap_link
    return SwappedRelease(
        marts=published,
        manifest_path=manifest_path,
        suppression_log_path=log_link / "suppression_log.parquet",
        exports_path=exports_link,
    )
