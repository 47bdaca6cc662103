"""The stage-history reductions of reports 02 and 04, run by DuckDB over a :class:`~crmlib.pushdown.scan.ParquetScan`.

Each function returns the frame its pandas twin in :mod:`crmlib.metrics.cycle` or
:mod:`crmlib.metrics.pipeline` computes from the table in memory (same columns, dtypes
and rows); the metrics call them when they are handed a scan instead of a frame:

* :func:`last_visits`: each deal's open visit at ``as_of`` (its stage then and since
  when), for :func:`crmlib.metrics.pipeline.stage_at`;
* :func:`stage_norms`: per stage, the visits and the quantiles of the completed ones,
  for :func:`crmlib.metrics.cycle.stage_time_norms` and ``stage_time_table``;
* :func:`visits`: every visit (:func:`crmlib.metrics.cycle.stage_visits`; as large as
  the table, for completeness);
* :func:`entries_around`: the history rows of the deals that entered a stage in a window,
  for the "advanced" count of :func:`crmlib.metrics.pipeline.pipeline_changes`;
* :func:`rows_before`: the rows of some deals before a date, in the table's order, for the
  funnel and the stage at loss of :mod:`crmlib.metrics.conversion` (report 03).

Durations are computed as pandas does (microseconds / 10^6 / 86,400); quantiles are
DuckDB's ``quantile_cont``, the linear interpolation pandas uses by default.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..periods import ensure_instant
from .deal_rows import deal_rows, ids_memtable
from .expressions import micros, stage_visits, to_micros
from .scan import ParquetScan

__all__ = ["last_visits", "stage_norms", "visits", "entries_around", "rows_before"]

_DIALECT = "duckdb"


def _visits(table, as_of: pd.Timestamp):
    return stage_visits(table, as_of_us=to_micros(as_of), dialect=_DIALECT)


def _days(us):
    """Microseconds as float days the way pandas' ``dt.total_seconds() / 86400`` computes them."""
    return (us.cast("float64") / 1e6) / 86_400.0


def last_visits(scan: ParquetScan, *, as_of, deal_ids=None) -> pd.DataFrame:
    """Each deal's last visit before as_of: deal_id, stage, entered_at (the visit's first entry), by
    deal_id; of the deals ``deal_ids`` only when given (their rows alone are read into visits:
    the deals open today are a small part of the history)."""
    as_of = ensure_instant(as_of)
    ids = None if deal_ids is None else pd.Series(deal_ids, dtype="str").dropna().drop_duplicates().sort_values()

    def build(table):
        if ids is not None:
            table = table.semi_join(ids_memtable(ids), "deal_id")
        v = _visits(table, as_of)
        return v.filter(v.left_us.isnull()).select("deal_id", "stage", "entered_us").order_by("deal_id")

    def compute():
        out = scan.run(build)
        out["entered_at"] = scan.timestamps(out.pop("entered_us"), "entered_at")
        return out

    key = None if ids is None else hashlib.blake2b("\x1f".join(ids).encode(), digest_size=16).digest()
    return scan.cached(("last_visits", as_of, key), compute)


def visits(scan: ParquetScan, *, as_of) -> pd.DataFrame:
    """Every visit before as_of: deal_id, visit, stage, entered_at, left_at, next_stage, ordered by
    deal_id and entered_at (the columns the pandas stage_visits builds its frame from)."""
    as_of = ensure_instant(as_of)
    out = scan.run(lambda table: _visits(table, as_of).order_by(["deal_id", "entered_us", "visit"]))
    out["entered_at"] = scan.timestamps(out.pop("entered_us"), "entered_at")
    out["left_at"] = scan.timestamps(out.pop("left_us"), "entered_at")
    return out


def stage_norms(scan: ParquetScan, *, as_of, quantile: float, min_completed: int,
                totals: bool = False) -> pd.DataFrame:
    """The frame of :func:`crmlib.metrics.cycle._norms` (stage, visits, completed, open, median_days,
    p90_days, norm_days[, mean_days, total_days]), plus ``position`` (the median visit number of
    the stage's visits: where deals meet it) when ``totals``."""
    as_of = ensure_instant(as_of)
    as_of_us = to_micros(as_of)

    def build(table):
        v = _visits(table, as_of)
        v = v.mutate(done=v.left_us.notnull(), days=_days(v.left_us - v.entered_us))
        # one list of quantiles keeps one copy of the days per stage (DuckDB holds every value of
        # a quantile in memory); the visit numbers as int32, half the memory of int64
        return v.group_by("stage").agg(
            visits=v.count(), completed=v.count(where=v.done),
            quantiles=v.days.quantile([0.5, 0.9, float(quantile)], where=v.done),
            mean_days=v.days.mean(where=v.done), total_days=v.days.sum(where=v.done),
            position=v.visit.cast("int32").quantile(0.5))

    from ..metrics.cycle import _norms_frame

    raw = scan.cached(("stage_norms", as_of_us, float(quantile)), lambda: scan.run(build))
    q = np.array([list(x) if x is not None else [np.nan] * 3 for x in raw["quantiles"]], dtype="float64")
    q = q.reshape(len(raw), 3)
    per_stage = pd.DataFrame({
        "visits": raw["visits"].astype("int64").to_numpy(), "completed": raw["completed"].astype("int64").to_numpy(),
        "median_days": q[:, 0], "p90_days": q[:, 1], "norm_days": q[:, 2],
        "mean_days": raw["mean_days"].astype("float64").to_numpy(),
        "total_days": raw["total_days"].astype("float64").to_numpy(),
    }, index=pd.Index(raw["stage"].astype("str"), name="stage"))
    out = _norms_frame(per_stage, min_completed, totals=totals)
    if totals:
        out["position"] = out["stage"].map(raw.set_index("stage")["position"]).astype("float64")
    return out


def entries_around(scan: ParquetScan, *, start, end) -> pd.DataFrame:
    """The history rows entered before ``end`` of the deals with an entry in ``[start, end)``:
    deal_id, stage, entered_at, ordered by deal, entry and row (the order a stable sort of the
    whole table gives). A deal can only have advanced in the window if it entered a stage in it,
    and whether it did depends on its earlier entries only."""
    start_us, end_us = to_micros(ensure_instant(start, name="start")), to_micros(ensure_instant(end, name="end"))

    def build(t):
        h = t.select("deal_id", "stage", "_pos", entered_us=micros(t.entered_at, _DIALECT))
        h = h.filter([h.deal_id.notnull(), h.entered_us < end_us])
        moved = h.filter(h.entered_us >= start_us).select("deal_id").distinct()
        rows = h.semi_join(moved, "deal_id").order_by(["deal_id", "entered_us", "_pos"])
        return rows.select("deal_id", "stage", "entered_us")

    out = scan.run(build)
    out["entered_at"] = scan.timestamps(out.pop("entered_us"), "entered_at")
    return out


def rows_before(scan: ParquetScan, *, before, deal_ids=None) -> pd.DataFrame:
    """The rows entered before ``before`` (of the deals ``deal_ids`` when given) in the table's
    order: deal_id, stage, entered_at, what ``history.loc[(history.entered_at < before) &
    history.deal_id.isin(deal_ids)]`` gives of the table in memory (with a fresh index)."""
    return deal_rows(scan, columns=["deal_id", "stage", "entered_at"], time_col="entered_at",
                     before=before, deal_ids=deal_ids)
