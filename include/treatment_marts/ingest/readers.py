"""Read an extract file (CSV, XLSX, Parquet) into an untyped frame whose columns are the contract's.

Hostile input is refused by :mod:`treatment_marts.core.safety` before a parser sees it; every parser failure
becomes an :class:`ExtractError`; header problems (a first row of data, a title row, unnamed, duplicated,
ragged or mislabelled columns) are named without printing a value.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from treatment_marts.contract import ExtractContract, load_contract
from treatment_marts.core.safety import (
    ExtractError,
    InputLimits,
    check_csv_bytes,
    check_fields,
    check_file_size,
    check_xlsx_archive,
    display_name,
)

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".parquet")


# --- reading ------------------------------------------------------------------------------------------


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


def read_frame(path: Path, label: str, limits: InputLimits, contract: ExtractContract) -> pd.DataFrame:
    """The file's rows as text (or as Parquet typed them), checked against the contract's columns."""
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
            f"{label}: unsupported file type {display_name(suffix or '(none)')}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    check_fields(frame, limits, label)
    _check_columns(label, frame, contract)
    return frame
