"""Fast categorical -> string conversion: the same values and nulls as pandas' own astype("string")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from treatment_marts.core.columns import as_strings, holds_value


def test_as_strings_matches_pandas_for_categoricals_with_nulls_and_unused_categories() -> None:
    codes = np.random.default_rng(3).integers(-1, 4, 1000)
    series = pd.Series(
        pd.Categorical.from_codes(codes, ["18-24", "25-29", "Not stated", "unused", "x"]),
        name="age_band",
        index=np.arange(1000) * 2,
    )
    converted = as_strings(series)
    pd.testing.assert_series_equal(converted, series.astype("string"))
    assert converted.isna().sum() == (codes == -1).sum() > 0


def test_as_strings_leaves_other_columns_to_pandas() -> None:
    series = pd.Series(["a", None, "b"], dtype="string")
    pd.testing.assert_series_equal(as_strings(series), series)


def test_holds_value_looks_at_used_categories_only() -> None:
    series = pd.Series(pd.Categorical(["a", "b", None], categories=["a", "b", "*"]))
    assert not holds_value(series, "*")
    assert holds_value(series, "b")
    assert holds_value(pd.Series(["x", "*"], dtype="string"), "*")
    assert not holds_value(pd.Series(["x", None], dtype="string"), "*")


def test_as_categorical_puts_declared_levels_first_and_keeps_other_values() -> None:
    from treatment_marts.core.columns import as_categorical

    series = pd.Series(["b", None, "zz", "a", "b", "y"], dtype="string")
    coded = as_categorical(series, ["a", "b", "c"])
    assert list(coded.categories) == ["a", "b", "c", "y", "zz"]
    assert coded.codes.tolist() == [1, -1, 4, 0, 1, 3]
    again = pd.Series(coded)
    assert as_categorical(again, ["a", "b"]) is again.array  # already declared-first: no conversion
