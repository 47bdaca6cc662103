"""crmlib.lookup.isin: the booleans of pandas' isin, from Arrow's hash lookup."""

import numpy as np
import pandas as pd
import pytest

from crmlib.lookup import isin

TEXT = pd.Series(["007", "7", None, "D1", "d1", "", "D1"], dtype="str", index=[5, 3, 9, 1, 0, 2, 8], name="deal_id")


@pytest.mark.parametrize("keys", [
    pd.Series(["7", "D1", "x"], dtype="str"),
    pd.Series(["007", None], dtype="str"),  # a missing key matches the missing value
    pd.Index(["", "d1"], dtype="str"),
    {"D1", "nope"},
    ["007"],
    [],
    pd.Series([], dtype="str"),
    pd.Series(["D1", "D1", "7"], dtype="object"),
])
def test_the_same_booleans_as_pandas_for_text(keys):
    got = isin(TEXT, keys)
    want = TEXT.isin(keys)
    pd.testing.assert_series_equal(got, want.astype(bool))


def test_anything_but_text_on_both_sides_is_left_to_pandas():
    numbers = pd.Series([1, 2, 3, np.nan])
    pd.testing.assert_series_equal(isin(numbers, [2, 3]), numbers.isin([2, 3]))
    pd.testing.assert_series_equal(isin(TEXT, [7]), TEXT.isin([7]))
    mixed = pd.Series(["a", 1, None], dtype="object")
    pd.testing.assert_series_equal(isin(mixed, ["a"]), mixed.isin(["a"]))


def test_a_million_keys_by_hand():
    ids = pd.Series([f"D{i:07d}" for i in range(1_000_000)], dtype="str")
    some = pd.Series(["D0000003", "D0999999", "D1000000", None], dtype="str")
    assert isin(some, ids).tolist() == [True, True, False, False]
