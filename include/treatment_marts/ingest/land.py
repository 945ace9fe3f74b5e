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
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from treatment_marts import __version__
from treatment_marts.contract import Column, ExtractContract, load_contract
from treatment_marts.core.files import make_private_dirs, write_private
from treatment_marts.core.ids import InvalidIdentifier, Period
from treatment_marts.core.safety import (
    ExtractError,
    InputLimits,
    check_csv_bytes,
    check_fields,
    check_file_size,
    check_xlsx_archive,
    code_examples,
    display_name,
    inbox_files,
    load_input_limits,
    row_list,
    safe_stem,
    value_shapes,
)
from treatment_marts.core.settings import Settings

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".parquet")
PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]00:00:00(?:\.0+)?)?$")
_MAX_EXAMPLES = 3
# An integer column takes an optional sign, ASCII digits and at most a zero fraction ('3.0', from a
# spreadsheet); never an exponent, a separator, hex or inf. Above 18 digits it cannot be a count.
_INTEGER_TEXT = r"[+-]?[0-9]+(?:\.0+)?"
_MAX_INTEGER_DIGITS = 18
# Text that stands for "no value" in exports (case-insensitive). In a code column it would otherwise be
# read as a real code (e.g. nationality 'NULL' counted as 'Not British'); a real code of the column
# (religion 'NONE') is never one of them.
PLACEHOLDERS = frozenset(
    p.upper()
    for p in ("NULL", "NUL", "N/A", "NA", "#N/A", "N.A.", "NaN", "NaT", "None", "-", "--", "---", "?", ".", "(blank)")
)

__all__ = [
    "ExtractError",
    "LandedExtract",
    "check_period",
    "discover_extracts",
    "land_extract",
    "read_extract",
    "read_landed",
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


# --- reading ------------------------------------------------------------------------------------------


_row_list = row_list


def _read_csv_text(path: Path, label: str, limits: InputLimits) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise ExtractError(f"{label}: the file is empty")
    check_csv_bytes(raw, limits, label)
    try:
        return raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is harmless: accept it
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ExtractError(
            f"{label}: the file is not UTF-8 (invalid byte 0x{raw[exc.start]:02x} at byte {exc.start}, line {line}); "
            "it looks like a Windows (cp1252/Latin-1) export. Re-export the extract as UTF-8 CSV."
        ) from None


def _read_csv(path: Path, label: str, limits: InputLimits) -> pd.DataFrame:
    text = _read_csv_text(path, label, limits)
    lines = text[: 2 * (limits.max_line_bytes + 2)].splitlines()[:2]  # lines are capped: no need to split all
    header_line = lines[0] if lines else ""
    if "," not in header_line:
        for name, delimiter in (("semicolon", ";"), ("tab", "\t"), ("pipe", "|")):
            if delimiter in header_line:
                raise ExtractError(
                    f"{label}: the header is {name}-delimited; the extract contract expects comma-separated values"
                )
        if len(lines) > 1 and lines[1].count(",") > 1:
            raise ExtractError(
                f"{label}: the first row is not the header: it has a single field above comma-separated rows, which "
                "looks like a title line. The column names must be the first line: delete the lines above them"
            )
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=False,
            quoting=csv.QUOTE_MINIMAL,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise ExtractError(f"{label}: the file has no header row") from None
    except pd.errors.ParserError as exc:
        # pandas names the line; it does not echo field values.
        raise ExtractError(f"{label}: the CSV is malformed or truncated ({display_name(exc, 200)})") from None
    except (ValueError, OverflowError, MemoryError) as exc:  # e.g. a header the C parser cannot take
        raise ExtractError(f"{label}: the CSV cannot be parsed ({type(exc).__name__})") from None
    try:
        header = pd.read_csv(io.StringIO(header_line + "\n"), header=None, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        raise ExtractError(f"{label}: the header row cannot be parsed") from None
    names = list(header.iloc[0]) if len(header) else []
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas takes the first column as the index when every data row has one field more than the header
        _check_header(label, names)
        raise ExtractError(
            f"{label}: every data row has 1 field more than the header ({len(names) + 1} against {len(names)}): "
            "a trailing comma at the end of each data row? Every row must have as many fields as the header"
        )
    return _named_by_header(label, frame, names)


def _read_xlsx(path: Path, label: str, limits: InputLimits) -> pd.DataFrame:
    check_xlsx_archive(path, limits, label)  # zip/XML bombs: refused before openpyxl parses anything
    try:
        _check_xlsx_formulas(path, label)
        return _parse_xlsx(path, label)
    except ExtractError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl/ElementTree raise many types for corrupt parts
        raise ExtractError(f"{label}: not a readable XLSX workbook ({type(exc).__name__})") from None


def _parse_xlsx(path: Path, label: str) -> pd.DataFrame:
    sheets = pd.ExcelFile(path, engine="openpyxl")
    names = sheets.sheet_names
    if len(names) == 1:
        sheet = names[0]
    elif "extract" in names:
        sheet = "extract"
    else:
        raise ExtractError(
            f"{label}: the workbook has {len(names)} sheets and none is named 'extract'; "
            "put the extract in a single sheet or name its sheet 'extract'"
        )
    frame = sheets.parse(sheet, dtype=str, keep_default_na=False, na_values=[""])
    first_row = sheets.parse(sheet, header=None, nrows=1, dtype=str)
    names = list(first_row.iloc[0]) if len(first_row) else []
    if len(names) != frame.shape[1]:
        names = (names + [""] * frame.shape[1])[: frame.shape[1]]
    return _named_by_header(label, frame, names)


_FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s>/]")


def _check_xlsx_formulas(path: Path, label: str) -> None:
    """Refuse a workbook with formulas but no saved results: pandas reads such a cell as empty, silently.

    Workbooks written by a program (not saved by Excel) often hold formulas without a cached value. The
    sheet parts are scanned as bytes first; only a sheet holding formulas is parsed (streamed), cell by cell.
    """
    import xml.etree.ElementTree as ET  # the archive passed check_xlsx_archive: no DTD, no entities

    uncached = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not (member.startswith("xl/worksheets/") and member.endswith(".xml")):
                continue
            if not _holds_formula(archive, member):
                continue
            with archive.open(member) as stream:
                for _, element in ET.iterparse(stream):
                    if element.tag.rsplit("}", 1)[-1] != "c":
                        continue
                    tags = {child.tag.rsplit("}", 1)[-1]: child for child in element}
                    value = tags.get("v")
                    if "f" in tags and (value is None or (not value.text and element.get("t") != "str")):
                        uncached += 1
                    element.clear()
    if uncached:
        raise ExtractError(
            f"{label}: the workbook holds formulas without saved values: open and save it in Excel, or export CSV "
            f"({uncached} formula cell(s) would otherwise be read as empty)"
        )


def _holds_formula(archive: zipfile.ZipFile, member: str) -> bool:
    tail = b""
    with archive.open(member) as stream:
        while block := stream.read(1 << 20):
            if _FORMULA_TAG.search(tail + block):
                return True
            tail = block[-8:]
    return False


def _read_parquet(path: Path, label: str) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
        _check_header(label, list(table.column_names))
        return table.to_pandas()
    except ExtractError:
        raise
    except Exception as exc:  # noqa: BLE001 - Arrow raises many types (ArrowInvalid, ArrowTypeError, OSError...)
        raise ExtractError(f"{label}: not a readable Parquet file ({type(exc).__name__})") from None


def _header_name(value: object) -> str:
    """A header cell as a name: an empty cell (None, NaN, blanks) is ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value)
    return "" if not text.strip() else text


def _check_header(label: str, cells: Sequence[object]) -> list[str]:
    """The header's names, after refusing a first row that is not a header, unnamed columns and duplicates.

    Messages never quote the cells of a first row that is not a header: it may be a record (a file without
    a header row) or a title. Empty names at the end are allowed here (trailing empty columns of a
    spreadsheet export); :func:`_named_by_header` drops them when they hold no data.
    """
    names = [_header_name(c) for c in cells]
    end = len(names)
    while end and not names[end - 1]:
        end -= 1
    filled = [n for n in names[:end] if n]
    contract = load_contract()
    # Loosely matched (case, spaces) only to tell a header from something else; the names stay exact.
    known = {_loose(c) for c in contract.column_names}
    mnemonics = {c.ndtms.upper() for c in contract.columns if c.ndtms}
    hits = sum(_loose(n) in known for n in filled)
    mnemonic_hits = sum(n.strip().upper() in mnemonics for n in filled)
    if filled and max(hits, mnemonic_hits) * 2 < len(filled):
        exact = sum(n in contract.column_names for n in filled)
        if len(filled) <= 2 and len(names) > 2 * len(filled):
            raise ExtractError(
                f"{label}: the first row is not the header: it has {len(filled)} filled cell(s) and no contract "
                "column names, which looks like a title row (merged cells?) above the header. The column names "
                "must be the first row: delete the rows above them"
            )
        if any(_DATA_CELL.fullmatch(n.strip()) for n in filled):
            raise ExtractError(
                f"{label}: the first row is data, not a header: {exact} of its {len(filled)} cells are contract "
                "column names and some are numbers or dates. Add the header row (the column names of "
                "docs/extract-spec.md) as the first line [values not shown]"
            )
        raise ExtractError(
            f"{label}: the first row is not a header of this contract: {exact} of its {len(filled)} names are "
            "contract column names. Use the column names of docs/extract-spec.md [names not shown]"
        )
    if mnemonic_hits > hits:
        raise ExtractError(
            f"{label}: the header uses NDTMS mnemonics ({mnemonic_hits} of {len(filled)} names, e.g. AGNCY, CLIENT); "
            "the extract contract names columns in lower_snake_case (AGNCY is agency_code): rename the header "
            "as in docs/extract-spec.md"
        )
    unnamed = [i + 1 for i, n in enumerate(names[:end]) if not n]
    if unnamed:
        raise ExtractError(
            f"{label}: column position {', '.join(map(str, unnamed[:10]))} has no header name; every column "
            "needs its contract name in the first row"
        )
    _check_duplicate_header(label, names[:end])
    return names


_DATA_CELL = re.compile(r"[+-]?\d+(?:\.\d+)?|\d{4}-\d{2}(?:-\d{2})?.*|\d{1,2}/\d{1,2}/\d{2,4}")


def _loose(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _named_by_header(label: str, frame: pd.DataFrame, cells: Sequence[object]) -> pd.DataFrame:
    """The frame with the header's own names (pandas invents 'Unnamed: 3'), trailing empty columns dropped."""
    names = _check_header(label, cells)
    if len(names) != frame.shape[1]:
        return frame  # the parser disagreed on the width: the column checks will name what is wrong
    frame = frame.set_axis([n or f"\x00unnamed{i}" for i, n in enumerate(names)], axis=1)
    trailing = [c for c, n in zip(frame.columns, names, strict=True) if not n]
    if trailing:
        holding = [
            i + 1 for i, (c, n) in enumerate(zip(frame.columns, names, strict=True)) if not n and frame[c].notna().any()
        ]
        if holding:
            raise ExtractError(
                f"{label}: column position {', '.join(map(str, holding[:10]))} has no header name but holds data; "
                "every column needs its contract name in the first row"
            )
        frame = frame.drop(columns=trailing)
    return frame


def _check_duplicate_header(label: str, header: list[str]) -> None:
    seen: set[str] = set()
    dupes = sorted({h for h in header if h in seen or seen.add(h)})  # type: ignore[func-returns-value]
    if dupes:
        raise ExtractError(
            f"{label}: duplicated column(s) in the header: {', '.join(display_name(d) for d in dupes[:10])}"
        )


def _check_columns(label: str, frame: pd.DataFrame, contract: ExtractContract) -> None:
    columns = [str(c) for c in frame.columns]
    _check_duplicate_header(label, columns)
    missing = [c for c in contract.column_names if c not in columns]
    extra = [display_name(c) for c in columns if c not in contract.column_names]
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if extra:
        problems.append(
            f"unknown column(s) not in the extract contract: {', '.join(extra[:10])}"
            + (f" and {len(extra) - 10} more" if len(extra) > 10 else "")
        )
    loose = {_loose(c): c for c in missing}
    renames = [
        f"{display_name(c)} -> {loose[_loose(c)]}"
        for c in columns
        if c not in contract.column_names and _loose(c) in loose
    ]
    if renames:
        problems.append(
            f"names are case-sensitive lower_snake_case: rename {', '.join(renames[:5])}"
            + (f" and {len(renames) - 5} more" if len(renames) > 5 else "")
        )
    if problems:
        raise ExtractError(
            f"{label}: "
            + "; ".join(problems)
            + f" (contract {contract.name} v{contract.version}, see docs/extract-spec.md)"
        )
    if frame.empty:
        raise ExtractError(f"{label}: the file has a header but no data rows")


# --- typing -------------------------------------------------------------------------------------------


def _as_text(series: pd.Series) -> pd.Series:
    """Normalise any input column to stripped strings with <NA> for blanks."""
    is_date = pd.api.types.is_datetime64_any_dtype(series)
    text = series.dt.strftime("%Y-%m-%d") if is_date else series.astype("string")
    text = text.str.strip()
    return text.mask(text == "", pd.NA)


def _problem(col: Column, text: pd.Series, bad: pd.Series, rule: str) -> str:
    """One line of a typing error. Values are quoted only when they are codes of the contract's closed lists
    (core.safety.code_examples): a mislabelled or swapped column holds identifiers under a harmless name.
    Otherwise the line gives the values' shapes (99/99/9999), which say what format the export used."""
    where = _row_list(bad[bad].index)
    message = f"column {col.name}: {int(bad.sum())} value(s) {rule} (rows {where})"
    if col.identifying:
        return message + " [values withheld: identifying column]"
    distinct = text[bad].drop_duplicates().head(1000)
    examples = code_examples(distinct, _MAX_EXAMPLES)
    if examples:
        return f"{message}, e.g. {', '.join(examples)}"
    return (
        f"{message}, shaped {', '.join(value_shapes(distinct, _MAX_EXAMPLES))} (9 digit, A letter) [values not shown]"
    )


def _already_typed(col: Column, raw: pd.Series, problems: list[str]) -> pd.Series | None:
    """A Parquet column that already holds the contract's type needs no round trip through text (at national
    scale that round trip is most of landing): datetimes for dates, integers for integers. None otherwise.

    A timestamp with a time of day keeps its calendar date (a discharge at 14:30 on the last day of the month
    is a discharge in that month); a timezone-aware timestamp is refused, as its date depends on the zone.
    """
    if col.type == "date" and isinstance(raw.dtype, pd.DatetimeTZDtype):
        problems.append(
            f"column {col.name}: holds timezone-aware timestamps (time zone {raw.dtype.tz}), whose calendar date "
            "depends on the zone; write plain dates (Parquet date32, or timestamps without a time zone)"
        )
        return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ms]")
    if col.type == "date" and pd.api.types.is_datetime64_any_dtype(raw):
        return raw.astype("datetime64[ms]").dt.normalize()
    if col.type == "integer" and pd.api.types.is_integer_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        try:
            return raw.astype("Int64")
        except (TypeError, ValueError, OverflowError):  # uint64 beyond int64: the text path refuses it
            return None
    return None


def _whole_numbers(text: pd.Series) -> pd.Series | None:
    """Arrow's integer cast of the text when every present value is a plain whole number (the usual CSV);
    None when any value needs pandas' lenient parse (e.g. '5.0') or is not a number, to report it."""
    if not text.dropna().str.fullmatch(r"-?[0-9]{1,18}").all():  # Arrow alone would also take '0x10'
        return None
    try:
        return text.astype("int64[pyarrow]").astype("Int64")
    except (ValueError, TypeError, pa.ArrowInvalid, OverflowError):
        return None


def _placeholders(col: Column, text: pd.Series) -> pd.Series:
    """Cells of ``text`` holding placeholder text for a missing value, unless it is a real code of ``col``."""
    allowed = {code.upper() for code in (col.allowed_values or [])}
    forms = sorted(PLACEHOLDERS - allowed)
    return text.str.upper().isin(forms).fillna(False).astype(bool)  # upper: vectorised by Arrow, unlike casefold


def _type_column(col: Column, text: pd.Series, problems: list[str]) -> pd.Series:
    present = text.notna()
    if col.type in ("code", "flag", "string"):
        placeholder = _placeholders(col, text)
        if placeholder.any():
            problems.append(
                f"column {col.name}: {int(placeholder.sum())} value(s) are placeholder text for a missing value "
                f"(such as NULL, N/A or -) (rows {_row_list(placeholder[placeholder].index)}): leave the cell empty "
                "for a missing value; a placeholder would be read as a code"
            )
    if col.type == "date":
        match = text.str.extract(_ISO_DATE, expand=False)
        parsed = pd.to_datetime(match, format="%Y-%m-%d", errors="coerce")
        bad = present & parsed.isna()
        if bad.any():
            problems.append(
                _problem(col, text, bad, "are not ISO dates (YYYY-MM-DD); mixed or local date formats are rejected")
            )
        return parsed.astype("datetime64[ms]")
    if col.type == "integer":
        fast = _whole_numbers(text)
        if fast is not None:
            return fast
        return _strict_integers(col, text, problems)
    # string, code, flag: codes are case-sensitive identifiers in NDTMS; keep them exact.
    return text.astype("string")


def _strict_integers(col: Column, text: pd.Series, problems: list[str]) -> pd.Series:
    """Digits only (module note on ``_INTEGER_TEXT``): '1e3' or '1,000' is refused, never read as 1000, and a
    number beyond 18 digits is refused, never wrapped to a negative 64-bit value."""
    present = text.notna()
    shaped = text.str.fullmatch(_INTEGER_TEXT).fillna(False).astype(bool)
    digits = text.where(shaped).str.replace(r"\.0+$", "", regex=True).str.lstrip("+-").str.lstrip("0")
    too_large = shaped & (digits.str.len() > _MAX_INTEGER_DIGITS).fillna(False).astype(bool)
    bad = present & ~shaped
    if bad.any():
        problems.append(_problem(col, text, bad, "are not whole numbers"))
    if too_large.any():
        problems.append(
            _problem(col, text, too_large, f"are too large for a whole number (over {_MAX_INTEGER_DIGITS} digits)")
        )
    ok = shaped & ~too_large
    clean = text.where(ok).str.replace(r"\.0+$", "", regex=True).str.lstrip("+")
    return clean.astype("int64[pyarrow]").astype("Int64")


def type_frame(frame: pd.DataFrame, contract: ExtractContract, source: str) -> pd.DataFrame:
    """Cast a raw frame to the contract's typed frame, collecting every type problem into one error."""
    problems: list[str] = []
    typed: dict[str, pd.Series] = {}
    frame = frame.reset_index(drop=True)
    for col in contract.columns:
        raw = frame[col.name]
        already = _already_typed(col, raw, problems)
        typed[col.name] = already if already is not None else _type_column(col, _as_text(raw), problems)
    if problems:
        raise ExtractError(
            f"{source}: {len(problems)} column(s) do not match the contract types:\n  " + "\n  ".join(problems)
        )
    return pd.DataFrame(typed)


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
    check_file_size(path, limits, label)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = _read_csv(path, label, limits)
    elif suffix == ".xlsx":
        frame = _read_xlsx(path, label, limits)
    elif suffix == ".parquet":
        frame = _read_parquet(path, label)
    else:
        raise ExtractError(
            f"{label}: unsupported file type {display_name(suffix or '(none)')}; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    check_fields(frame, limits, label)
    _check_columns(label, frame, contract)
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
