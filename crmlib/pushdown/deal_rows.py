"""Per-deal rows and reductions before a date, from a table left in its file (a :class:`ParquetScan`).

A model that learns from a sample of deals, or scores the deals open today, needs the
stage history and the activities of those deals only, and only before a date; the
next-task check needs each deal's open tasks. These functions let DuckDB pick them out
where the table lies:

* :func:`picked_rows` (and :func:`deal_rows`, with a fresh index): the rows themselves (a
  few columns, optionally only each deal's last one), in the table's order: what filtering
  the table in memory gives;
* :func:`deal_counts`: per deal, how many rows of each group of values come before the
  date: what counting those rows in memory gives;
* :func:`open_tasks`: per deal, its tasks open at a date and their earliest due dates
  (:func:`crmlib.metrics.pipeline.task_coverage`).

Times are compared as integer microseconds since 1970 (UTC), strictly before ``before``.
The activity metrics' own reductions are in :mod:`crmlib.pushdown.activity`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ..periods import ensure_instant
from .expressions import micros, to_micros
from .scan import ParquetScan

__all__ = ["picked_rows", "deal_rows", "deal_counts", "open_tasks", "ids_memtable", "values_memtable"]

_DIALECT = "duckdb"


# Above this many allowed values a filter semi-joins a table of them: Ibis builds one
# expression node per literal of an IN list, and compiling 400,000 of them (the keys of
# the missed calls at 100M activities) took minutes where the join takes seconds.
INLINE_VALUES = 1000


def values_memtable(column: str, values, dtype=None):
    """The distinct non-missing ``values`` as a one-column Ibis table named ``column``, to
    semi-join with; ``dtype`` (an Ibis type) is the column's type in the table joined, strings
    by default."""
    import ibis
    import pyarrow as pa

    vals = pd.Series(values).dropna().drop_duplicates()
    if dtype is None or dtype.is_string():
        arr = pa.array(vals.astype("str").to_numpy(dtype=object), type=pa.string())
    else:
        arr = pa.array(vals.to_numpy(dtype=object)).cast(dtype.to_pyarrow())
    return ibis.memtable(pa.table({column: arr}))


def ids_memtable(deal_ids):
    """Deal ids (missing and repeated ones dropped) as a one-column Ibis table, to semi-join with."""
    return values_memtable("deal_id", deal_ids)


def _bounds(before, since=None, until=None) -> list[tuple[str, int]]:
    """The time bounds given, as (operator, microseconds): before and until exclusive, since inclusive."""
    out = [] if before is None else [("<", to_micros(ensure_instant(before, name="before")))]
    if since is not None:
        out.append((">=", to_micros(ensure_instant(since, name="since"))))
    if until is not None:
        out.append(("<", to_micros(ensure_instant(until, name="until"))))
    return out


def _where(t, time_col: str, bounds, deal_ids=None, values: Mapping[str, Sequence] | None = None,
           present: Sequence[str] = ()):
    """``t`` with ``_us`` (``time_col`` in microseconds), filtered by the bounds, the allowed
    values, the non-missing ``present`` columns and the deals ``deal_ids``."""
    h = t.mutate(_us=micros(t[time_col], _DIALECT))
    conds = [h._us < v if op == "<" else h._us >= v for op, v in bounds]
    values = {col: allowed if hasattr(allowed, "__len__") else list(allowed)
              for col, allowed in (values or {}).items()}
    joins = [(col, allowed) for col, allowed in values.items() if len(allowed) > INLINE_VALUES]
    conds += [h[col].isin(list(allowed)) for col, allowed in values.items() if len(allowed) <= INLINE_VALUES]
    conds += [h[col].notnull() for col in present]
    if conds:
        h = h.filter(conds)
    if deal_ids is not None:  # the deals asked for: always a join, however few
        joins.append(("deal_id", deal_ids))
    for col, allowed in joins:  # a join, not a literal list (see INLINE_VALUES); the table is
        h = h.semi_join(values_memtable(col, allowed, h[col].type()), col)  # built inside the query
    return h


def picked_rows(scan: ParquetScan, *, columns: Sequence[str], time_col: str = "created_at", before=None,
                since=None, until=None, where: Mapping[str, Sequence] | None = None, present: Sequence[str] = (),
                deal_ids=None, last: bool = False) -> pd.DataFrame:
    """The rows with ``time_col`` before ``before`` and in ``[since, until)`` (each bound when
    given), whose columns hold one of the values of ``where``, whose ``present`` columns are
    not missing and (with ``deal_ids``) of those deals: the ``columns`` asked for, in the
    table's order, indexed by their position in the table (the labels the loaded table gives
    them), timestamps as the file's columns read, with the scan's attrs.

    ``last``: only each deal's last such row, the one a stable sort by ``time_col`` puts last
    (the latest time; among equal times, the later row of the table).
    """
    columns = list(columns)
    stamps = [c for c in columns if str(scan.schema.field(c).type).startswith("timestamp")]
    bounds = _bounds(before, since, until)

    def build(t):
        h = _where(t, time_col, bounds, deal_ids, where, present)
        if last:
            import ibis

            w = ibis.window(group_by="deal_id", order_by=[ibis.desc("_us"), ibis.desc("_pos")])
            h = h.mutate(_rank=ibis.row_number().over(w))
            h = h.filter(h._rank == 0)
        picked = {c: micros(h[c], _DIALECT) if c in stamps else h[c] for c in columns}
        return h.order_by("_pos").select(_row=h._pos, **picked)

    out = scan.run(build)
    for col in stamps:
        out[col] = scan.timestamps(out[col], col)
    out.index = pd.Index(out.pop("_row").astype("int64").to_numpy())
    out.attrs.update(scan.attrs)
    return out


def deal_rows(scan: ParquetScan, *, columns: Sequence[str], time_col: str, before, deal_ids=None,
              values: Mapping[str, Sequence] | None = None, last: bool = False) -> pd.DataFrame:
    """The rows with ``time_col`` before ``before`` (of the deals ``deal_ids`` when given; with
    ``values``, only rows whose column holds one of the allowed values), the ``columns``
    asked for, in the table's order and with a fresh index (:func:`picked_rows`; ``last``:
    each deal's last such row alone)."""
    columns = list(columns)
    if time_col not in columns:
        raise ValueError(f"columns must include the time column {time_col!r}")
    if "deal_id" not in columns:
        raise ValueError("columns must include deal_id")
    return picked_rows(scan, columns=columns, time_col=time_col, before=before, where=values,
                       deal_ids=deal_ids, last=last).reset_index(drop=True)


def deal_counts(scan: ParquetScan, *, time_col: str, before, groups: Mapping[str, tuple[str, Sequence]],
                deal_ids=None) -> pd.DataFrame:
    """Per deal with a row before ``before``: one count per group, the rows whose column holds
    one of the group's values. ``groups`` maps an output column to ``(column, values)``.

    Returns deal_id plus the count columns (int64), ordered by deal_id; a deal of
    ``deal_ids`` without such a row is absent (count 0).
    """
    bounds = _bounds(before)
    groups = {name: (col, list(vals)) for name, (col, vals) in groups.items()}
    wanted = {col: sorted({v for c, vals in groups.values() if c == col for v in vals})
              for col, _ in groups.values()}

    def build(t):
        h = _where(t, time_col, bounds, deal_ids, wanted, present=["deal_id"])
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
