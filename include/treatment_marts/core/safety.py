"""Guards against hostile or broken input, applied before any parser sees the bytes.

Why a module of its own: the readers (CSV, XLSX, Parquet) and the path handling of the CLI and the DAG
share one set of limits (``input_limits`` in ``include/config/operations.yaml``) and one rule for
messages: they name the file, the column, the row or the byte offset and the limit, never a value (a
value may be a client's identity, or a payload meant for a terminal or a spreadsheet).

What is guarded (docs/security.md has the threat model and the tests):

* size: whole file, CSV physical line, any parsed field or header name;
* CSV: NUL bytes (binary or UTF-16 files) before decoding;
* XLSX: zip bombs (declared uncompressed sizes, total and per-member ratio, member count) and XML bombs
  (a DTD or entity declaration in any XML part; XLSX never needs one) BEFORE openpyxl parses anything;
  every member is streamed once, so a central directory that lies about sizes fails its CRC here;
* paths: ``..`` components and control characters in a data root or extract location, symlinks that
  leave the inbox folder, and (when ``TREATMENT_MARTS_ALLOWED_ROOTS`` is set) anything outside the
  allowed roots;
* names: file names become raw-zone names and message labels only after :func:`safe_stem` /
  :func:`display_name`.

No pandas import at module level: ``settings`` imports this module.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from treatment_marts.contract import ExtractContract

ENV_ALLOWED_ROOTS = "TREATMENT_MARTS_ALLOWED_ROOTS"
MB = 1 << 20
_MAX_ROWS_LISTED = 5
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class ExtractError(ValueError):
    """The extract cannot be read or typed against the contract. The message says what to fix."""


class UnsafePath(ExtractError):
    """A path from a parameter or an inbox would leave the folders the pipeline may read or write."""


# --- limits (operations.yaml: input_limits) -------------------------------------------------------------


# Limits are strict numbers (a bool or a quoted number is a mistake, not a limit): see core/config.py.
_StrictNumber = Annotated[float, Field(strict=True)]


class XlsxLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_uncompressed_mb: StrictInt = Field(default=1024, ge=1, description="sum of the declared sizes of all members")
    max_compression_ratio: _StrictNumber = Field(
        default=100.0, gt=1, description="per member, for members above ratio_floor_mb"
    )
    ratio_floor_mb: StrictInt = Field(default=1, ge=0, description="members smaller than this are not ratio-checked")
    max_members: StrictInt = Field(default=1000, ge=1)


class InputLimits(BaseModel):
    """Upper bounds on what an extract may contain. A real extract is far below each (docs/security.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_file_mb: StrictInt = Field(default=4096, ge=1)
    max_line_bytes: StrictInt = Field(default=65536, ge=1024, description="CSV physical line, header included")
    max_field_chars: StrictInt = Field(default=256, ge=16, description="any field or header name after parsing")
    xlsx: XlsxLimits = XlsxLimits()


def load_input_limits(config_dir: Path) -> InputLimits:
    """``input_limits`` of operations.yaml (defaults when the section is absent), validated on load."""
    import yaml

    from treatment_marts.core.config import ConfigError

    path = config_dir / "operations.yaml"
    if not path.exists():
        return InputLimits()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return InputLimits.model_validate(data.get("input_limits") or {})
    except (yaml.YAMLError, AttributeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    except ValidationError as exc:
        raise ConfigError(f"{path}: input_limits: {exc}") from None


# --- names and messages ---------------------------------------------------------------------------------


def display_name(name: object, limit: int = 60) -> str:
    """A file or column name fit for a message or a log line: control characters escaped, length capped."""
    text = str(name)
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return shown if len(shown) <= limit else f"{shown[:limit]}...[{len(text)} chars]"


def safe_stem(name: str) -> str:
    """A file stem safe as a name in the raw zone: [A-Za-z0-9._-], no leading dot, at most 80 characters."""
    stem = _UNSAFE_NAME_CHARS.sub("_", name).lstrip(".") or "extract"
    return stem[:80]


def row_list(positions: Sequence[int] | Iterable[int]) -> str:
    """Spreadsheet-style row numbers (header is row 1) of offending rows, capped for readability."""
    positions = list(positions)
    rows = [int(p) + 2 for p in positions[:_MAX_ROWS_LISTED]]
    more = len(positions) - len(rows)
    return ", ".join(map(str, rows)) + (f" and {more} more" if more > 0 else "")


_CODE_SHAPE = re.compile(r"[A-Z0-9_]{2,24}")
_MAX_EXAMPLES = 3


def code_examples(values: Iterable[object], limit: int = _MAX_EXAMPLES) -> list[str]:
    """Up to ``limit`` distinct values fit to quote in a message (as ``repr``): only values that are provably
    codes, i.e. a code of some closed code list of the extract contract, code-shaped, at least two characters.

    Why so narrow: a failing value is shown to say what the export got wrong, but when two headers are
    swapped or a column is mislabelled the failing values of a *code* column are identifiers (client
    references, postcodes, dates of birth). A code of another list ('CHRISTIAN' under sex) still tells the
    engineer which columns were swapped; anything else is withheld. Single characters are never shown: an
    initial is indistinguishable from a one-letter code.
    """
    from treatment_marts.contract import load_contract

    codes = _closed_list_codes(load_contract())
    shown: list[str] = []
    for value in values:
        text = str(value)
        if text in codes and _CODE_SHAPE.fullmatch(text) and repr(text) not in shown:
            shown.append(repr(text))
            if len(shown) >= limit:
                break
    return shown


def value_shapes(values: Iterable[object], limit: int = _MAX_EXAMPLES) -> list[str]:
    """The format of values without the values: digits as 9, letters as A, other characters kept (a local
    date '17/05/1980' is '99/99/9999'). For messages about a format on non-identifying columns."""
    shapes: list[str] = []
    for value in values:
        shape = re.sub(r"[^\W\d_]", "A", re.sub(r"\d", "9", str(value)))
        shape = _CONTROL.sub("?", shape)
        shape = shape if len(shape) <= 24 else f"{shape[:24]}...[{len(shape)} chars]"
        if shape not in shapes:
            shapes.append(shape)
            if len(shapes) >= limit:
                break
    return shapes


def _closed_list_codes(contract: ExtractContract) -> frozenset[str]:
    return frozenset(code for col in contract.columns for code in (col.allowed_values or []))


# --- size, bytes and fields -----------------------------------------------------------------------------


def check_file_size(path: Path, limits: InputLimits, label: str) -> int:
    size = path.stat().st_size
    if size > limits.max_file_mb * MB:
        raise ExtractError(
            f"{label}: the file is {size / MB:,.0f} MB, above the {limits.max_file_mb:,} MB limit "
            "(input_limits.max_file_mb in operations.yaml); split the extract or raise the limit"
        )
    return size


def check_csv_bytes(raw: bytes, limits: InputLimits, label: str) -> None:
    """NUL bytes and over-long physical lines, found on the bytes before any decoding or parsing."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        hint = (
            "it looks UTF-16 encoded; re-export it as UTF-8 CSV"
            if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[1:2] == b"\x00"
            else "a CSV extract is text; this looks like a binary or corrupted file"
        )
        line = raw.count(b"\n", 0, nul) + 1
        raise ExtractError(f"{label}: NUL byte at byte {nul} (line {line}); {hint}")
    longest, line = _longest_line(raw)
    if longest > limits.max_line_bytes:
        raise ExtractError(
            f"{label}: line {line} is {longest:,} bytes long, above the {limits.max_line_bytes:,}-byte limit "
            "(input_limits.max_line_bytes in operations.yaml); the file is not a row-per-episode extract "
            "(missing line breaks, or a runaway quoted field)"
        )


def _longest_line(raw: bytes, chunk: int = 64 * MB) -> tuple[int, int]:
    """(length, 1-based line number) of the longest physical line, in bounded memory."""
    import numpy as np

    best, best_line, line_no, carry = 0, 1, 1, 0
    for start in range(0, len(raw), chunk):
        block = np.frombuffer(raw, dtype=np.uint8, count=min(chunk, len(raw) - start), offset=start)
        breaks = np.flatnonzero(block == 10)
        if len(breaks) == 0:
            carry += len(block)
            if carry > best:
                best, best_line = carry, line_no
            continue
        lengths = np.diff(breaks, prepend=-1) - 1
        lengths[0] += carry
        i = int(lengths.argmax())
        if lengths[i] > best:
            best, best_line = int(lengths[i]), line_no + i
        line_no += len(breaks)
        carry = len(block) - int(breaks[-1]) - 1
        if carry > best:
            best, best_line = carry, line_no
    return best, best_line


def check_fields(frame: pd.DataFrame, limits: InputLimits, label: str) -> None:
    """Every header name and text field within max_field_chars and free of NUL; one error listing all."""
    import pandas as pd

    problems: list[str] = []
    for position, name in enumerate(frame.columns):
        text = str(name)
        if len(text) > limits.max_field_chars or "\x00" in text:
            problems.append(
                f"header name in column position {position + 1} is {len(text):,} characters long or holds a NUL byte "
                f"(limit {limits.max_field_chars})"
            )
    for name in frame.columns:
        series = frame[name]
        if not (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)):
            continue
        shown = display_name(name)
        try:
            text = series.astype("string")
        except (TypeError, ValueError):  # e.g. nested Parquet values
            problems.append(f"column {shown}: holds values that are not text or numbers")
            continue
        too_long = text.str.len().gt(limits.max_field_chars).fillna(False)
        has_nul = text.str.contains("\x00", regex=False).fillna(False)
        if too_long.any():
            problems.append(
                f"column {shown}: {int(too_long.sum())} value(s) longer than {limits.max_field_chars} characters "
                f"(rows {row_list(too_long[too_long].index)}) [values not shown]"
            )
        if has_nul.any():
            problems.append(
                f"column {shown}: {int(has_nul.sum())} value(s) hold a NUL byte (rows {row_list(has_nul[has_nul].index)})"
            )
    if problems:
        raise ExtractError(
            f"{label}: {len(problems)} field problem(s) (input_limits.max_field_chars in operations.yaml):\n  "
            + "\n  ".join(problems)
        )


# --- XLSX: zip and XML bombs ----------------------------------------------------------------------------


def check_xlsx_archive(path: Path, limits: InputLimits, label: str) -> None:
    """Refuse zip bombs and XML with a DTD before openpyxl opens the workbook.

    Declared sizes are checked first (cheap); then every XML part is streamed once: zipfile stops at the
    declared size and checks the CRC, so a member that inflates beyond what the directory says fails here,
    and the scan finds any ``<!DOCTYPE``/``<!ENTITY`` (entity expansion, external entities).
    """
    x = limits.xlsx
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ExtractError(f"{label}: not a readable XLSX workbook ({type(exc).__name__})") from None
    with archive:
        members = archive.infolist()
        if len(members) > x.max_members:
            raise ExtractError(
                f"{label}: the XLSX archive has {len(members):,} parts, above the limit of {x.max_members:,}"
            )
        total = sum(m.file_size for m in members)
        if total > x.max_uncompressed_mb * MB:
            raise ExtractError(
                f"{label}: the XLSX would inflate to {total / MB:,.0f} MB, above the {x.max_uncompressed_mb:,} MB limit "
                "(input_limits.xlsx.max_uncompressed_mb); refusing to open it (possible zip bomb)"
            )
        for member in members:
            if member.file_size >= x.ratio_floor_mb * MB:
                ratio = member.file_size / max(member.compress_size, 1)
                if ratio > x.max_compression_ratio:
                    raise ExtractError(
                        f"{label}: part {display_name(member.filename)} compresses {ratio:,.0f}:1, above the "
                        f"{x.max_compression_ratio:,.0f}:1 limit (input_limits.xlsx.max_compression_ratio); "
                        "refusing to open it (possible zip bomb)"
                    )
        for member in members:
            if member.filename.lower().endswith(_XML_SUFFIXES):
                _scan_xml_part(archive, member, label)


def _scan_xml_part(archive: zipfile.ZipFile, member: zipfile.ZipInfo, label: str) -> None:
    keep = max(len(m) for m in _DTD_MARKERS) - 1
    tail = b""
    first = True
    try:
        with archive.open(member) as stream:
            while block := stream.read(MB):
                if first:
                    first = False
                    if block[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in block[:64]:
                        raise ExtractError(
                            f"{label}: XML part {display_name(member.filename)} is not UTF-8; refusing it"
                        )
                window = tail + block
                if any(marker in window for marker in _DTD_MARKERS):
                    raise ExtractError(
                        f"{label}: XML part {display_name(member.filename)} declares a DTD or entities, which no "
                        "spreadsheet needs (XML entity-expansion attack); refusing it"
                    )
                tail = window[-keep:]
    except ExtractError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        # BadZipFile: bad CRC (sizes that lie); zlib.error: a corrupt deflate stream; NotImplementedError:
        # unknown compression; RuntimeError: encrypted member.
        raise ExtractError(f"{label}: not a readable XLSX workbook ({type(exc).__name__} in a part)") from None


# --- paths ----------------------------------------------------------------------------------------------


def allowed_roots_from_env() -> tuple[Path, ...] | None:
    """``TREATMENT_MARTS_ALLOWED_ROOTS`` (os.pathsep-separated, resolved), or None when unset."""
    value = os.environ.get(ENV_ALLOWED_ROOTS, "").strip()
    if not value:
        return None
    return tuple(Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip())


def check_path_text(value: str | os.PathLike[str], what: str) -> Path:
    """Refuse a path parameter with a ``..`` component, a control character or nothing in it."""
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise UnsafePath(f"{what}: an empty path")
    if _CONTROL.search(text):
        raise UnsafePath(f"{what}: the path {display_name(text)} holds control characters")
    if ".." in Path(text).parts:
        raise UnsafePath(f"{what}: the path {display_name(text)} has a '..' component; give a path without '..'")
    return Path(text).expanduser()


def check_within(path: Path, roots: Sequence[Path] | None, what: str) -> Path:
    """The resolved path (symlinks followed), which must lie under one of ``roots`` when roots are set."""
    resolved = path.resolve()
    if roots is not None and not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise UnsafePath(
            f"{what}: {display_name(resolved, 120)} is outside the allowed roots "
            f"({', '.join(str(r) for r in roots)}; set by {ENV_ALLOWED_ROOTS})"
        )
    return resolved


def inbox_files(
    location: str | os.PathLike[str], suffixes: Sequence[str], roots: Sequence[Path] | None = None
) -> list[Path]:
    """The extract files at ``location`` (a file, or every supported file of a folder), sorted.

    Refused: ``..`` components, control characters, anything resolving outside ``roots`` (when set), and
    in a folder any entry that is a symlink leaving the folder or is not a regular file.
    """
    given = check_path_text(location, "extract location")
    if not given.exists():
        raise ExtractError(f"extract location does not exist: {display_name(given, 200)}")
    resolved = check_within(given, roots, "extract location")
    if resolved.is_file():
        if given.is_symlink() and not resolved.is_relative_to(given.parent.resolve()):
            raise UnsafePath(
                f"extract location: {display_name(given.name)} is a symlink leaving its folder; copy the file in instead"
            )
        return [given]
    if not resolved.is_dir():
        raise ExtractError(f"extract location is neither a file nor a folder: {display_name(given, 200)}")
    found: list[Path] = []
    for entry in sorted(given.iterdir()):
        if entry.name.startswith(".") or entry.suffix.lower() not in suffixes:
            continue
        target = entry.resolve()
        if entry.is_symlink() and not target.is_relative_to(resolved):
            raise UnsafePath(
                f"extract location: {display_name(entry.name)} is a symlink leaving the inbox folder; copy the file in instead"
            )
        if not target.is_file():
            raise ExtractError(f"extract location: {display_name(entry.name)} is not a regular file")
        found.append(entry)
    if not found:
        raise ExtractError(f"no extract files ({', '.join(suffixes)}) in {display_name(given, 200)}")
    return found
