"""crmlib.lookup.isin: the booleans of pandas' isin, from Arrow's hash lookup."""

import numpy as np
import pandas as pd
import pytest

from crmlib import lookup
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


@pytest.mark.parametrize("as_text", [True, False])
def test_positions_are_each_values_first_place_among_the_keys(as_text):
    """Hand-made: a key listed twice gives its first place, a value not among the keys and a
    missing value give -1; the same from Arrow text and from the pandas fallback (numbers)."""
    if as_text:
        keys = pd.Series(["D2", "D1", "D2", "D3"], dtype="str")
        values = pd.Series(["D2", None, "D9", "D3", "D1", "D2"], dtype="str", index=[5, 4, 3, 2, 1, 0])
    else:
        keys = pd.Series([2, 1, 2, 3])
        values = pd.Series([2, np.nan, 9, 3, 1, 2], index=[5, 4, 3, 2, 1, 0])
    got = lookup.positions(values, keys)
    assert got.tolist() == [0, -1, -1, 3, 1, 0]
    frame = pd.DataFrame({"key": keys, "status": ["won", "lost", "open", "won"]})
    mapped = values.map(frame.drop_duplicates("key").set_index("key")["status"])
    taken = pd.Series(frame["status"].array.take(got, allow_fill=True), index=values.index)
    pd.testing.assert_series_equal(taken, mapped, check_dtype=False, check_names=False)
