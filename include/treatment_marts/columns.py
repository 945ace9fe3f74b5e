"""Column conversions that matter at national scale (~1M rows): categorical <-> Arrow-backed strings.

The analysis frame holds publishable dimensions as categoricals (cheap to filter, sort and group); products
written for people (the record-level extract, loss reports) hold plain strings. pandas converts a
categorical to strings through one Python object per row; decoding Arrow's dictionary array does it in C.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def as_strings(series: pd.Series) -> pd.Series:
    """The series as pandas' Arrow-backed ``string`` dtype (nulls stay null); categoricals decoded natively."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype("string")
    categories = pa.array([str(c) for c in series.cat.categories], type=pa.string())
    codes = series.cat.codes.to_numpy()
    indices = pa.array(codes.astype(np.int32), mask=codes < 0, type=pa.int32())
    decoded = pa.DictionaryArray.from_arrays(indices, categories).cast(pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(decoded), index=series.index, name=series.name)


def holds_value(series: pd.Series, value: str) -> bool:
    """Does any row of the series hold ``value`` (compared as text)? Categoricals look at used categories only."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = series.cat.categories[np.unique(series.cat.codes.to_numpy()[series.cat.codes.to_numpy() >= 0])]
        return any(str(c) == value for c in used)
    return bool(series.astype("string").eq(value).any())
