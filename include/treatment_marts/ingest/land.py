"""Read an extract file, type it against the contract, and land it.

Landing keeps an immutable, checksummed copy of the file exactly as received (the raw zone) *before*
anything can fail, so a bad file is never lost; then types it into a Parquet file in the restricted zone.
Landing is idempotent per period: the same bytes land at the same paths.

Error messages name the file, the column, the rule and row numbers, never a value of an identifying
column (those are the client's identity). Hostile input (bombs, over-long fields, NUL bytes, unsafe
paths) is refused by :mod:`treatment_marts.core.safety` before a parser sees it; any other parser failure
becomes an :class:`ExtractError` too, so a reader raises nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from treatment_marts import __version__
from treatment_marts.contract import ExtractContract, load_contract
from treatment_marts.core.files import make_private_dirs, write_private
from treatment_marts.core.ids import InvalidIdentifier, Period
from treatment_marts.core.safety import (
    ExtractError,
    InputLimits,
    check_file_size,
    display_name,
    inbox_files,
    load_input_limits,
    safe_stem,
)
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.coerce import PLACEHOLDERS, type_frame
from treatment_marts.ingest.readers import SUPPORTED_SUFFIXES, read_frame

PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

__all__ = [
    "PLACEHOLDERS",
    "SUPPORTED_SUFFIXES",
    "ExtractError",
    "LandedExtract",
    "check_period",
    "discover_extracts",
    "land_extract",
    "read_extract",
    "read_landed",
    "type_frame",
]


@dataclass(frozen=True)
class LandedExtract:
    """Where one landed file went; small and JSON-able so it can travel through XCom."""

    source: str
    period: str
    sha256: str
    raw_path: str
    landed_path: str
    rows: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_period(period: str) -> Period:
    try:
        return Period.parse(period)
    except InvalidIdentifier:
        raise ExtractError(f"period must be YYYY-MM (e.g. 2024-03), got {display_name(repr(period), 40)}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_extract(
    path: Path | str,
    contract: ExtractContract | None = None,
    label: str | None = None,
    limits: InputLimits | None = None,
) -> pd.DataFrame:
    """Read a CSV, XLSX or Parquet extract into the typed frame of docs/architecture.md.

    ``label`` is the file name used in messages (the name the provider gave it, not the landed copy's);
    ``limits`` defaults to :class:`~treatment_marts.core.safety.InputLimits` (operations.yaml's defaults).
    Raises :class:`ExtractError` and nothing else for any content of the file.
    """
    path = Path(path)
    label = display_name(label or path.name)
    contract = contract or load_contract()
    limits = limits or InputLimits()
    if not path.is_file():
        raise ExtractError(f"extract not found: {display_name(path, 200)}")
    frame = read_frame(path, label, limits, contract)
    return type_frame(frame, contract, label)


# --- landing ------------------------------------------------------------------------------------------


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def _cannot_write(label: str, folder: Path, exc: OSError) -> ExtractError:
    """A write failure as a message naming the file, the folder and the likely cause (never a traceback)."""
    if exc.errno in _NO_SPACE:
        cause = "no space left (disk full, or a quota or file-size limit reached)"
    elif exc.errno in _READ_ONLY:
        cause = "the folder is read-only for this user (a read-only mount, or permissions)"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        cause = "a file is in the way of a folder of the data root"
    else:
        cause = "the data root cannot be written"
    return ExtractError(
        f"{label}: cannot write to {display_name(folder, 200)}: {cause} ({exc.strerror or type(exc).__name__}). "
        "Nothing was landed; fix the data root and run again"
    )


def _writing(label: str, folder: Path, write: Callable[[], object], leftover: Path | None = None) -> None:
    """Run ``write``; on an ``OSError`` remove ``leftover`` (a partial or orphaned file) and raise ExtractError."""
    try:
        write()
    except OSError as exc:
        if leftover is not None:
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise _cannot_write(label, folder, exc) from None


def land_raw(settings: Settings, period: str, source_path: Path, limits: InputLimits | None = None) -> tuple[Path, str]:
    """Copy the file as received into raw/period=YYYY-MM/, named by a safe stem and the content hash; idempotent.

    A file above ``max_file_mb`` is not copied (it stays where it is): the raw zone must not be filled by it.
    The raw zone is restricted: its folders are owner-only from creation. A failed copy (a full disk, a
    read-only data root) leaves no partial file and is an :class:`ExtractError` naming the folder.
    """
    check_period(period)
    label = display_name(source_path.name)
    if not source_path.is_file():
        raise ExtractError(f"extract not found: {display_name(source_path, 200)}")
    check_file_size(source_path, limits or InputLimits(), label)
    digest = sha256_of(source_path)
    target_dir = settings.raw_dir / f"period={period}"
    _writing(label, target_dir, lambda: make_private_dirs(target_dir, top=settings.raw_dir))
    suffix = source_path.suffix.lower() if source_path.suffix.lower() in SUPPORTED_SUFFIXES else ".bin"
    target = target_dir / f"{safe_stem(source_path.stem)}.{digest[:12]}{suffix}"
    if not target.exists():
        tmp = target.with_name(f".{target.name}.tmp")

        def copy() -> None:
            shutil.copyfile(source_path, tmp)
            os.chmod(tmp, 0o400)  # immutable: the raw zone is evidence of what was received
            os.replace(tmp, target)

        _writing(label, target_dir, copy, leftover=tmp)
    sidecar = target.with_name(target.name + ".sha256")
    _writing(label, target_dir, lambda: write_private(sidecar, f"{digest}  {target.name}\n".encode()))
    return target, digest


def land_extract(settings: Settings, period: str, source_path: Path | str, run_id: str) -> LandedExtract:
    """Land one extract: raw copy first (never lost), then the typed Parquet and its manifest."""
    source_path = Path(source_path)
    limits = load_input_limits(settings.config_dir)
    raw_path, digest = land_raw(settings, period, source_path, limits)
    frame = read_extract(raw_path, label=source_path.name, limits=limits)
    landed_dir = settings.restricted_dir / "landed" / f"period={period}"
    landed_path = landed_dir / f"{safe_stem(source_path.stem)}.{digest[:12]}.parquet"
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    label = display_name(source_path.name)
    _writing(label, landed_dir, lambda: make_private_dirs(landed_dir, top=settings.restricted_dir))
    _writing(label, landed_dir, lambda: write_private(landed_path, buffer.getvalue().to_pybytes()))
    manifest = {
        "source": display_name(source_path.name),
        "period": period,
        "sha256": digest,
        "rows": len(frame),
        "raw_path": str(raw_path),
        "landed_path": str(landed_path),
        "contract": load_contract().name,
        "contract_version": load_contract().version,
        "package_version": __version__,
        "run_id": run_id,
        "landed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    manifest_path = landed_path.with_suffix(".manifest.json")
    # A typed file without its manifest is not landed: remove it if the manifest cannot be written.
    _writing(
        label,
        landed_dir,
        lambda: write_private(manifest_path, json.dumps(manifest, indent=2).encode()),
        leftover=landed_path,
    )
    return LandedExtract(
        source=display_name(source_path.name),
        period=period,
        sha256=digest,
        raw_path=str(raw_path),
        landed_path=str(landed_path),
        rows=len(frame),
    )


def read_landed(landed_path: Path | str) -> pd.DataFrame:
    """Read a landed typed extract back with the contract dtypes."""
    frame = pq.read_table(landed_path).to_pandas()
    contract = load_contract()
    for col in contract.columns:
        if col.type == "date":
            frame[col.name] = frame[col.name].astype("datetime64[ms]")
        elif col.type == "integer":
            frame[col.name] = frame[col.name].astype("Int64")
        else:
            frame[col.name] = frame[col.name].astype("string")
    return frame[contract.column_names]


def discover_extracts(location: Path | str, allowed_roots: tuple[Path, ...] | None = None) -> list[Path]:
    """A file, or every supported file in a directory (sorted, so runs are deterministic).

    Path safety (``..``, control characters, symlinks leaving the folder, roots outside ``allowed_roots``)
    is :func:`treatment_marts.core.safety.inbox_files`'s.
    """
    return inbox_files(location, SUPPORTED_SUFFIXES, allowed_roots)
