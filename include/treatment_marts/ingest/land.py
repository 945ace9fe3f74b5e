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

import csv
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from treatment_marts import __version__
from treatment_marts.contract import Column, ExtractContract, load_contract
from treatment_marts.core.files import write_private
from treatment_marts.core.ids import InvalidIdentifier, Period
from treatment_marts.core.safety import (
    ExtractError,
    InputLimits,
    check_csv_bytes,
    check_fields,
    check_file_size,
    check_xlsx_archive,
    display_name,
    inbox_files,
    load_input_limits,
    row_list,
    safe_stem,
)
from treatment_marts.core.settings import Settings

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".parquet")
PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]00:00:00(?:\.0+)?)?$")
_MAX_EXAMPLES = 3

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
    header_line = text.splitlines()[0] if text.splitlines() else ""
    if "," not in header_line:
        for name, delimiter in (("semicolon", ";"), ("tab", "\t"), ("pipe", "|")):
            if delimiter in header_line:
                raise ExtractError(
                    f"{label}: the header is {name}-delimited; the extract contract expects comma-separated values"
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
    _check_duplicate_header(label, [str(c) for c in header.iloc[0]] if len(header) else [])
    return frame


def _read_xlsx(path: Path, label: str, limits: InputLimits) -> pd.DataFrame:
    check_xlsx_archive(path, limits, label)  # zip/XML bombs: refused before openpyxl parses anything
    try:
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
    _check_duplicate_header(label, [str(c) for c in first_row.iloc[0]] if len(first_row) else [])
    return frame


def _read_parquet(path: Path, label: str) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
        _check_duplicate_header(label, table.column_names)
        return table.to_pandas()
    except ExtractError:
        raise
    except Exception as exc:  # noqa: BLE001 - Arrow raises many types (ArrowInvalid, ArrowTypeError, OSError...)
        raise ExtractError(f"{label}: not a readable Parquet file ({type(exc).__name__})") from None


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
    where = _row_list(bad[bad].index)
    message = f"column {col.name}: {int(bad.sum())} value(s) {rule} (rows {where})"
    if col.identifying:
        return message + " [values withheld: identifying column]"
    # Non-identifying codes and dates help the engineer find the export bug; identifiers never appear.
    examples = ", ".join(repr(v) for v in text[bad].drop_duplicates().head(_MAX_EXAMPLES))
    return f"{message}, e.g. {examples}"


def _already_typed(col: Column, raw: pd.Series) -> pd.Series | None:
    """A Parquet column that already holds the contract's type needs no round trip through text (at national
    scale that round trip is most of landing): datetimes for dates, integers for integers. None otherwise."""
    if col.type == "date" and pd.api.types.is_datetime64_any_dtype(raw):
        return raw.astype("datetime64[ms]")
    if col.type == "integer" and pd.api.types.is_integer_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.astype("Int64")
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


def _type_column(col: Column, text: pd.Series, problems: list[str]) -> pd.Series:
    present = text.notna()
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
        numbers = pd.to_numeric(text, errors="coerce")
        bad = present & (numbers.isna() | (numbers.notna() & (numbers % 1 != 0)))
        if bad.any():
            problems.append(_problem(col, text, bad, "are not whole numbers"))
        return numbers.where(~bad).round().astype("Int64")
    # string, code, flag: codes are case-sensitive identifiers in NDTMS; keep them exact.
    return text.astype("string")


def type_frame(frame: pd.DataFrame, contract: ExtractContract, source: str) -> pd.DataFrame:
    """Cast a raw frame to the contract's typed frame, collecting every type problem into one error."""
    problems: list[str] = []
    typed: dict[str, pd.Series] = {}
    frame = frame.reset_index(drop=True)
    for col in contract.columns:
        raw = frame[col.name]
        already = _already_typed(col, raw)
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


def land_raw(settings: Settings, period: str, source_path: Path, limits: InputLimits | None = None) -> tuple[Path, str]:
    """Copy the file as received into raw/period=YYYY-MM/, named by a safe stem and the content hash; idempotent.

    A file above ``max_file_mb`` is not copied (it stays where it is): the raw zone must not be filled by it.
    """
    check_period(period)
    if not source_path.is_file():
        raise ExtractError(f"extract not found: {display_name(source_path, 200)}")
    check_file_size(source_path, limits or InputLimits(), display_name(source_path.name))
    digest = sha256_of(source_path)
    target_dir = settings.raw_dir / f"period={period}"
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    suffix = source_path.suffix.lower() if source_path.suffix.lower() in SUPPORTED_SUFFIXES else ".bin"
    target = target_dir / f"{safe_stem(source_path.stem)}.{digest[:12]}{suffix}"
    if not target.exists():
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source_path, tmp)
        os.chmod(tmp, 0o400)  # immutable: the raw zone is evidence of what was received
        os.replace(tmp, target)
    (target.with_name(target.name + ".sha256")).write_text(f"{digest}  {target.name}\n")
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
    write_private(landed_path, buffer.getvalue().to_pybytes())
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
    write_private(landed_path.with_suffix(".manifest.json"), json.dumps(manifest, indent=2).encode())
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
