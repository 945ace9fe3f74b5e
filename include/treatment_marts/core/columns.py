"""Column conversions that matter at national scale (~1M rows): Arrow-backed strings <-> categoricals.

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


def as_categorical(series: pd.Series, declared: list[str]) -> pd.Categorical:
    """The series as a categorical whose categories are ``declared`` first, then any other value present
    (as text, sorted), so nothing is lost and a caller can name what was not declared. One Arrow-native
    factorize per column; a categorical that already starts with the declared levels is returned as is."""
    if isinstance(series.dtype, pd.CategoricalDtype) and list(series.cat.categories[: len(declared)]) == list(declared):
        return series.array
    codes, present = pd.factorize(series, use_na_sentinel=True)
    categories = [*declared, *sorted({str(v) for v in present} - set(declared))]
    position = {category: i for i, category in enumerate(categories)}
    recoded = np.array([position[str(v)] for v in present] + [-1], dtype=np.int32)
    return pd.Categorical.from_codes(recoded[codes], categories=categories)  # code -1 (null) stays -1


def holds_value(series: pd.Series, value: str) -> bool:
    """Does any row of the series hold ``value`` (compared as text)? Categoricals look at used categories only."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        used = series.cat.categories[np.unique(codes[codes >= 0])]
        return any(str(c) == value for c in used)
    return bool(series.astype("string").eq(value).any())
