"""Membership tests on large text columns.

``Series.isin(keys)`` on pandas' Arrow-backed text turns every key into a Python object
first, one at a time: with the ten million deal ids of a large export as keys that is
half a minute per call. :func:`isin` gives the same booleans from Arrow's hash lookup
(``pyarrow.compute.is_in``) and falls back to pandas when the two sides are not both text.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["isin"]


def isin(values: pd.Series, keys) -> pd.Series:
    """``values.isin(keys)``: a boolean Series on ``values``' index (a missing value is in
    ``keys`` when a missing value is)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values, pd.Series):
        raise TypeError("isin takes a Series of values")
    try:
        if isinstance(keys, (pd.Series, pd.Index)):
            key_array = pa.array(keys.array)
        else:
            key_array = pa.array(list(keys))
        if not (pa.types.is_string(key_array.type) or pa.types.is_large_string(key_array.type)
                or pa.types.is_null(key_array.type)):
            return values.isin(keys)
        value_array = pa.array(values.array)
        if not (pa.types.is_string(value_array.type) or pa.types.is_large_string(value_array.type)):
            return values.isin(keys)
        found = pc.is_in(value_array, value_set=key_array.cast(value_array.type))
    except (TypeError, ValueError, pa.ArrowException):  # not text on both sides
        return values.isin(keys)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index, name=values.name,
                     dtype=bool)
