"""Rows and counts of some deals before a date, from a table left in its file (a :class:`ParquetScan`).

A model that learns from a sample of deals, or scores the deals open today, needs the
stage history and the activities of those deals only, and only before a date. These two
functions let DuckDB pick them out where the table lies:

* :func:`deal_rows`: the rows themselves (a few columns, optionally only each deal's
  last one), in the table's order: what filtering the table in memory gives;
* :func:`deal_counts`: per deal, how many rows of each group of values come before the
  date: what counting those rows in memory gives.

Times are compared as integer microseconds since 1970 (UTC), strictly before ``before``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ..periods import ensure_instant
from .expressions import micros, to_micros
from .scan import ParquetScan

__all__ = ["deal_rows", "deal_counts"]

_DIALECT = "duckdb"


def _ids_table(deal_ids):
    import ibis
    import pyarrow as pa

    ids = pd.Series(deal_ids, dtype="str").dropna().drop_duplicates()
    return ibis.memtable(pa.table({"deal_id": pa.array(ids.to_numpy(dtype=object), type=pa.string())}))


def _before(t, time_col: str, before_us: int, deal_ids, values: Mapping[str, Sequence] | None):
    h = t.mutate(_us=micros(t[time_col], _DIALECT))
    h = h.filter(h._us < before_us)
    for col, allowed in (values or {}).items():
        h = h.filter(h[col].isin(list(allowed)))
    if deal_ids is not None:  # built inside the query: the id table belongs to its connection
        h = h.semi_join(_ids_table(deal_ids), "deal_id")
    return h


def deal_rows(scan: ParquetScan, *, columns: Sequence[str], time_col: str, before, deal_ids=None,
              values: Mapping[str, Sequence] | None = None, last: bool = False) -> pd.DataFrame:
    """The rows with ``time_col`` before ``before`` (of the deals ``deal_ids`` when
    given; with ``values``, only rows whose column holds one of the allowed values), the
    ``columns`` asked for, in the table's order and with a fresh index.

    ``last``: only each deal's last such row, the one a stable sort by ``time_col`` puts last
    (the latest time; among equal times, the later row of the table).
    """
    before_us = to_micros(ensure_instant(before, name="before"))
    columns = list(columns)
    if time_col not in columns:
        raise ValueError(f"columns must include the time column {time_col!r}")
    if "deal_id" not in columns:
        raise ValueError("columns must include deal_id")

    def build(t):
        h = _before(t, time_col, before_us, deal_ids, values)
        if last:
            import ibis

            w = ibis.window(group_by="deal_id", order_by=[ibis.desc("_us"), ibis.desc("_pos")])
            h = h.mutate(_rank=ibis.row_number().over(w))
            h = h.filter(h._rank == 0)
        keep = [c for c in columns if c != time_col]
        return h.order_by("_pos").select(*keep, _us=h._us)

    out = scan.run(build)
    out.insert(columns.index(time_col), time_col, scan.timestamps(out.pop("_us"), time_col))
    return out[columns].reset_index(drop=True)


def deal_counts(scan: ParquetScan, *, time_col: str, before, groups: Mapping[str, tuple[str, Sequence]],
                deal_ids=None) -> pd.DataFrame:
    """Per deal with a row before ``before``: one count per group, the rows whose column holds
    one of the group's values. ``groups`` maps an output column to ``(column, values)``.

    Returns deal_id plus the count columns (int64), ordered by deal_id; a deal of
    ``deal_ids`` without such a row is absent (count 0).
    """
    before_us = to_micros(ensure_instant(before, name="before"))
    groups = {name: (col, list(vals)) for name, (col, vals) in groups.items()}
    wanted = {col: sorted({v for c, vals in groups.values() if c == col for v in vals})
              for col, _ in groups.values()}

    def build(t):
        h = _before(t, time_col, before_us, deal_ids, wanted)
        h = h.filter(h.deal_id.notnull())
        return h.group_by("deal_id").agg(**{
            name: h.count(where=h[col].isin(vals)) for name, (col, vals) in groups.items()
        }).order_by("deal_id")

    out = scan.run(build)
    for name in groups:
        out[name] = out[name].astype("int64")
    return out.reset_index(drop=True)
