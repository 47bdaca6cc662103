"""Per-deal rows and reductions before a date, from a table left in its file (a :class:`ParquetScan`).

A model that learns from a sample of deals, or scores the deals open today, needs the
stage history and the activities of those deals only, and only before a date; the
next-task check needs each deal's open tasks. These functions let DuckDB pick them out
where the table lies:

* :func:`deal_rows`: the rows themselves (a few columns, optionally only each deal's
  last one), in the table's order: what filtering the table in memory gives;
* :func:`deal_counts`: per deal, how many rows of each group of values come before the
  date: what counting those rows in memory gives;
* :func:`open_tasks`: per deal, its tasks open at a date and their earliest due dates
  (:func:`crmlib.metrics.pipeline.task_coverage`).

Times are compared as integer microseconds since 1970 (UTC), strictly before ``before``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ..periods import ensure_instant
from .expressions import micros, to_micros
from .scan import ParquetScan

__all__ = ["deal_rows", "deal_counts", "open_tasks", "ids_memtable"]

_DIALECT = "duckdb"


def ids_memtable(deal_ids):
    """Deal ids (missing and repeated ones dropped) as a one-column Ibis table, to semi-join with."""
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
        h = h.semi_join(ids_memtable(deal_ids), "deal_id")
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


def open_tasks(scan: ParquetScan, *, as_of, types: Sequence[str]) -> pd.DataFrame:
    """Per deal, its tasks open at ``as_of``: activities of one of ``types`` with a due date,
    created before ``as_of`` and not completed before it. Returns deal_id, open_tasks (int64),
    next_due_at (the earliest due at or after ``as_of``) and overdue_since (the earliest due
    before it), the due dates as the file's ``due_at`` reads; ordered by deal_id."""
    as_of_us = to_micros(ensure_instant(as_of))

    def build(t):
        a = t.select("deal_id", "type", created=micros(t.created_at, _DIALECT), due=micros(t.due_at, _DIALECT),
                     completed=micros(t.completed_at, _DIALECT))
        a = a.filter([a.type.isin(list(types)), a.due.notnull(), a.deal_id.notnull(), a.created < as_of_us,
                      a.completed.isnull() | (a.completed >= as_of_us)])
        return a.group_by("deal_id").agg(open_tasks=a.count(), next_us=a.due.min(where=a.due >= as_of_us),
                                         overdue_us=a.due.min(where=a.due < as_of_us)).order_by("deal_id")

    def compute():
        out = scan.run(build)
        out["open_tasks"] = out["open_tasks"].astype("int64")
        out["next_due_at"] = scan.timestamps(out.pop("next_us"), "due_at")
        out["overdue_since"] = scan.timestamps(out.pop("overdue_us"), "due_at")
        return out

    return scan.cached(("open_tasks", as_of_us, tuple(types)), compute)
