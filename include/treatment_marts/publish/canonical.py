"""The canonical form of what a release publishes: fixed dtypes and a deterministic row order, so that
re-publishing the same inputs writes byte-identical Parquet and the same warehouse rows."""

from __future__ import annotations

import pandas as pd

from treatment_marts.core.labels import TOTAL
from treatment_marts.publish.errors import PublishError
from treatment_marts.publish.warehouse import WarehouseError, check_identifier

MEASURE_COLUMNS = ("count", "status", "percent")


def identifier(name: object, what: str) -> str:
    """A safe SQL / folder name, or PublishError naming what it was for."""
    try:
        return check_identifier(name, what)
    except WarehouseError as exc:
        raise PublishError(str(exc)) from None


def _dimensions(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if c != "period" and c not in MEASURE_COLUMNS and not pd.api.types.is_float_dtype(frame[c])
    ]


def canonical_mart(frame: pd.DataFrame, name: str, period: str) -> pd.DataFrame:
    """A mart in the mart format with fixed dtypes and a deterministic row order.

    Columns are kept in their order; ``period``, dimension and ``status`` columns become pandas
    ``string``, ``count`` ``Int64``. Rows are sorted by period then each dimension column in column
    order, ``Total`` after every category, missing values after that (stable sort).
    """
    missing = [c for c in ("period", "count", "status") if c not in frame.columns]
    if missing:
        raise PublishError(f"mart {name}: not in the mart format, missing column(s) {missing}")
    for column in frame.columns:
        identifier(column, f"column name in mart {name}")
    if frame.columns.duplicated().any():
        raise PublishError(f"mart {name}: duplicate column names")
    out = frame.reset_index(drop=True).copy()
    wrong = out["period"].astype("string").ne(str(period)).fillna(True)
    if wrong.any():
        raise PublishError(
            f"mart {name}: {int(wrong.sum())} row(s) are not for period {period}; a release publishes one period"
        )
    try:
        out["count"] = out["count"].astype("Int64")
    except (TypeError, ValueError):
        raise PublishError(f"mart {name}: column 'count' must hold whole numbers or nulls") from None
    dims = _dimensions(out)
    keys = pd.DataFrame(index=out.index)
    for i, column in enumerate(["period", *dims]):
        series = out[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            value, is_total = series, pd.Series(False, index=out.index)
        else:
            text = series.astype("string")
            value = (
                pd.Series(series.cat.codes, index=out.index)
                if isinstance(series.dtype, pd.CategoricalDtype)
                else text.fillna("")
            )
            is_total = text.eq(TOTAL).fillna(False)
            out[column] = text
        keys[f"t{i}"] = is_total.astype("int8")  # Total after every category
        keys[f"n{i}"] = series.isna().astype("int8")  # missing after Total
        keys[f"v{i}"] = value
    out["status"] = out["status"].astype("string")
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return out.loc[order].reset_index(drop=True)


def canonical_log(frame: pd.DataFrame, period: str, run_id: str) -> pd.DataFrame:
    """The restricted suppression log, stamped with this run and period (first two columns)."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        identifier(column, "column name in the suppression log")
    if "period" in out.columns:
        wrong = out["period"].astype("string").ne(str(period)).fillna(False)
        if wrong.any():
            raise PublishError(f"suppression log: {int(wrong.sum())} row(s) are not for period {period}")
    out = out.drop(columns=[c for c in ("run_id", "period") if c in out.columns])
    out.insert(0, "period", pd.Series([str(period)] * len(out), dtype="string"))
    out.insert(0, "run_id", pd.Series([str(run_id)] * len(out), dtype="string"))
    return out
