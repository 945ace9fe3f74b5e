"""The committed GX suite evaluated in plain, vectorised pandas: row-level failure masks.

Why a second evaluator of the same JSON: it gives the failing *rows* of each row-level rule (which the
PII-safe GX run deliberately does not keep) for quarantine, and it is the hand-written baseline the
benchmark compares GX against. A test checks that both agree on every unexpected count, so the two
cannot drift apart.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ROW_LEVEL = {
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_be_between",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_compound_columns_to_be_unique",
}


@dataclass
class PlainResult:
    rule: str
    type: str
    severity: str
    success: bool
    unexpected_count: int | None
    rows: pd.Series | None  # boolean mask of failing rows (row-level rules only)


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters[value["$PARAMETER"]]
    return value


def _bound(series: pd.Series, value: Any) -> Any:
    if value is None:
        return None
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.Timestamp(value)
    return value


def _regex_misses(column: pd.Series, regex: str) -> pd.Series:
    """Non-null values not matching ``regex`` (GX's str.contains semantics); on a categorical, each distinct
    code is tested once rather than every row."""
    with warnings.catch_warnings():  # groups in the contract's patterns are for alternation, not extraction
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = column.cat.categories.astype("string")
            matches = pd.Series(categories.str.contains(regex, regex=True), index=column.cat.categories)
            return column.notna() & ~column.map(matches).astype("boolean").fillna(True).astype(bool)
        return column.notna() & ~column.astype("string").str.contains(regex, regex=True).fillna(False)


def _condition(frame: pd.DataFrame, kwargs: dict[str, Any]) -> pd.Series:
    if kwargs.get("row_condition"):
        return frame.eval(kwargs["row_condition"]).fillna(False).astype(bool)
    return pd.Series(True, index=frame.index)


def evaluate(frame: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any]) -> list[PlainResult]:
    """Evaluate every expectation of ``suite`` on ``frame`` (the batch frame validate.py hands to GX)."""
    results = []
    for item in suite["expectations"]:
        kind, kwargs, meta = item["type"], item["kwargs"], item.get("meta", {})
        rows: pd.Series | None = None
        if kind == "expect_table_columns_to_match_set":
            success = (
                set(frame.columns) == set(kwargs["column_set"])
                if kwargs.get("exact_match")
                else set(kwargs["column_set"]) <= set(frame.columns)
            )
            count = None
        elif kind == "expect_table_row_count_to_be_between":
            success, count = len(frame) >= (kwargs.get("min_value") or 0), None
        else:
            scope = _condition(frame, kwargs)
            if kind == "expect_column_values_to_be_in_set":
                column = frame[kwargs["column"]]
                rows = column.notna() & ~column.isin(_resolve(kwargs["value_set"], parameters))
            elif kind == "expect_column_values_to_not_be_null":
                rows = frame[kwargs["column"]].isna()
            elif kind == "expect_column_values_to_match_regex":
                rows = _regex_misses(frame[kwargs["column"]], kwargs["regex"])
            elif kind == "expect_column_values_to_be_between":
                column = frame[kwargs["column"]]
                low = _bound(column, _resolve(kwargs.get("min_value"), parameters))
                high = _bound(column, _resolve(kwargs.get("max_value"), parameters))
                outside = pd.Series(False, index=frame.index)
                if low is not None:
                    outside |= column < low
                if high is not None:
                    outside |= column > high
                rows = column.notna() & outside.fillna(False)
            elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
                a, b = frame[kwargs["column_A"]], frame[kwargs["column_B"]]
                worse = (a < b) if kwargs.get("or_equal") else (a <= b)
                rows = a.notna() & b.notna() & worse.fillna(False)
            elif kind == "expect_compound_columns_to_be_unique":
                rows = frame.duplicated(kwargs["column_list"], keep=False)
            else:
                raise ValueError(f"plain evaluator does not know {kind}")
            rows = (rows & scope).astype(bool)
            count = int(rows.sum())
            success = count == 0
        results.append(
            PlainResult(meta.get("rule", kind), kind, meta.get("severity", "blocking"), bool(success), count, rows)
        )
    return results


def failing_rows(results: list[PlainResult], severity: str = "blocking") -> pd.DataFrame:
    """Per row that breaks a row-level rule of ``severity``: the rules it breaks (for quarantine)."""
    masks = {r.rule: r.rows for r in results if r.rows is not None and r.severity == severity and r.type in ROW_LEVEL}
    if not masks:
        return pd.DataFrame({"failed_rules": pd.Series(dtype="string")})
    table = pd.DataFrame(masks)
    broken = table.any(axis=1)
    reasons = table[broken].apply(lambda row: "; ".join(rule for rule, hit in row.items() if hit), axis=1)
    return pd.DataFrame({"failed_rules": reasons.astype("string")})


def load_suite(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
