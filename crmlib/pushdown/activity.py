"""Report 05's activity counts, run by DuckDB over a large snapshot's activity window (a :class:`ParquetScan`).

Each function returns counts the pandas code of :mod:`crmlib.metrics.activity` would get
by filtering and grouping the rows in memory; the metrics build their frames from these
counts the same way, so the two paths give the same frames (the tests check both):

* :func:`done_counts`: activities *done* in windows (calls, emails and notes when logged,
  meetings and tasks when completed), per window, type and optionally owner;
* :func:`scheduled_counts`: activities scheduled for a window (due in it, created before
  as_of, not completed before as_of), per owner and type;
* :func:`typed_rows`: the rows of some types, a few columns, for a metric that still wants
  rows (the per-week panel of a scan without the engine's weekly aggregate, the goals);
* :func:`distinct` and :func:`first_time`: a column's spellings and the first logged row of
  some kinds, which report 06 asks before it picks its calls and touches
  (:func:`crmlib.pushdown.deal_rows.picked_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..periods import ensure_instant
from .deal_rows import _bounds, _where, picked_rows
from .expressions import micros, to_micros
from .scan import ParquetScan

__all__ = ["done_counts", "scheduled_counts", "typed_rows", "distinct", "first_time"]

_DIALECT = "duckdb"


def done_counts(scan: ParquetScan, *, windows: Sequence[tuple], types: Sequence[str],
                completed_types: Sequence[str], by: str | None = None) -> pd.DataFrame:
    """Per window (its position in ``windows``, a list of ``(start, stop)`` instants), type and
    ``by`` (when given; a missing value is its own group): the activities of ``types`` done
    in ``[start, stop)``. ``completed_types`` are done when completed, the rest when created.

    Returns window (int64), [by], type, n (int64); groups without activities are absent.
    """
    import ibis

    bounds = [(to_micros(ensure_instant(a, name="start")), to_micros(ensure_instant(b, name="stop")))
              for a, b in windows]
    types, done_late = list(types), list(completed_types)

    def build(t):
        a = t.filter(t.type.isin(types))
        when = ibis.cases((a.type.isin(done_late), micros(a.completed_at, _DIALECT)),
                          else_=micros(a.created_at, _DIALECT)) if done_late else micros(a.created_at, _DIALECT)
        a = a.mutate(_when=when)
        parts = []
        for i, (lo, hi) in enumerate(bounds):
            w = a.filter([a._when >= lo, a._when < hi])
            keys = [by, "type"] if by else ["type"]
            parts.append(w.group_by(keys).agg(n=w.count()).mutate(window=ibis.literal(i, "int64")))
        return ibis.union(*parts) if len(parts) > 1 else parts[0]

    out = scan.run(build)
    out["window"] = out["window"].astype("int64")
    out["n"] = out["n"].astype("int64")
    keys = ["window", by, "type"] if by else ["window", "type"]
    return out[keys + ["n"]].sort_values(keys, kind="stable").reset_index(drop=True)


def scheduled_counts(scan: ParquetScan, *, start, end, as_of, types: Sequence[str], by: str) -> pd.DataFrame:
    """Per ``by`` and type: the activities of ``types`` due in ``[start, end)``, created before
    ``as_of`` and not completed before it. Returns by, type, n (int64)."""
    lo, hi = to_micros(ensure_instant(start, name="start")), to_micros(ensure_instant(end, name="end"))
    now = to_micros(ensure_instant(as_of))
    types = list(types)

    def build(t):
        due, created, done = (micros(t[c], _DIALECT) for c in ("due_at", "created_at", "completed_at"))
        a = t.filter([t.type.isin(types), due >= lo, due < hi, created < now, done.isnull() | (done >= now)])
        return a.group_by([by, "type"]).agg(n=a.count())

    out = scan.run(build)
    out["n"] = out["n"].astype("int64")
    return out[[by, "type", "n"]]


def typed_rows(scan: ParquetScan, *, columns: Sequence[str], types: Sequence[str]) -> pd.DataFrame:
    """The rows whose type is one of ``types``, the ``columns`` asked for, in the table's order
    (a fresh index), carrying the scan's attrs (a large source's window info) as the loaded
    table would."""
    return picked_rows(scan, columns=columns, where={"type": types}).reset_index(drop=True)


def distinct(scan: ParquetScan, column: str) -> list:
    """The distinct non-missing values of a text column (remembered: a report asks several times)."""
    def compute():
        out = scan.run(lambda t: t.select(column).filter(t[column].notnull()).distinct().order_by(column))
        return out[column].tolist()

    return scan.cached(("distinct", column), compute)


def first_time(scan: ParquetScan, *, before, where: dict[str, Sequence]):
    """The earliest ``created_at`` before ``before`` among the rows whose columns hold one of the
    values of ``where``, as the file's column reads (its timezone); NaT when there is none."""
    bounds = _bounds(before)

    def compute():
        def build(t):
            h = _where(t, "created_at", bounds, values=where)
            return h.agg(first=h._us.min())

        return scan.timestamps(scan.run(build)["first"], "created_at").iloc[0]

    if any(not vals for vals in where.values()):
        return pd.NaT
    key = ("first_time", bounds[0][1], tuple((c, tuple(v)) for c, v in sorted(where.items())))
    return scan.cached(key, compute)
