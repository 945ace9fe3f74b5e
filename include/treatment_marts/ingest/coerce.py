"""Type an extract's columns against the contract: the one place a value becomes a date, a code or a count.

A value that cannot be read exactly is refused as blocking, never guessed: digits-only integers (no `1e3`,
no 64-bit wrap), placeholder text (`NULL`, `N/A`, `-`) in coded columns, dates with a time zone. Messages
quote a value only when it is provably a code of a closed list (:func:`core.safety.code_examples`).
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa

from treatment_marts.contract import Column, ExtractContract
from treatment_marts.core.safety import (
    ExtractError,
    code_examples,
    row_list,
    value_shapes,
)

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


# --- typing -------------------------------------------------------------------------------------------


def _as_text(series: pd.Series) -> pd.Series:
    """Normalise any input column to stripped strings with <NA> for blanks."""
    is_date = pd.api.types.is_datetime64_any_dtype(series)
    text = series.dt.strftime("%Y-%m-%d") if is_date else series.astype("string")
    text = text.str.strip()
    empty = (text == "").fillna(False).to_numpy(dtype=bool)
    return text.mask(empty, pd.NA) if empty.any() else text  # the mask costs a copy: ~1 s a national month


def _problem(col: Column, text: pd.Series, bad: pd.Series, rule: str) -> str:
    """One line of a typing error. Values are quoted only when they are codes of the contract's closed lists
    (core.safety.code_examples): a mislabelled or swapped column holds identifiers under a harmless name.
    Otherwise the line gives the values' shapes (99/99/9999), which say what format the export used."""
    where = row_list(bad[bad].index)
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
    distinct = pd.Series(text.dropna().unique(), dtype="string")  # a code column has a few dozen values
    if not distinct.str.upper().isin(forms).any():
        return pd.Series(False, index=text.index)
    return text.str.upper().isin(forms).fillna(False).astype(bool)  # upper: vectorised by Arrow, unlike casefold


def _type_column(col: Column, text: pd.Series, problems: list[str]) -> pd.Series:
    present = text.notna()
    if col.type in ("code", "flag", "string"):
        placeholder = _placeholders(col, text)
        if placeholder.any():
            problems.append(
                f"column {col.name}: {int(placeholder.sum())} value(s) are placeholder text for a missing value "
                f"(such as NULL, N/A or -) (rows {row_list(placeholder[placeholder].index)}): leave the cell empty "
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
