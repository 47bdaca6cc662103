"""Large sources: the heavy aggregations pushed down to the engine that holds the data.

A CRM with tens of millions of activities does not fit into pandas whole, and need
not: the reports read a few aggregates of the heavy tables and a recent window of rows.
This package writes those aggregations once, as Ibis expressions
(:mod:`~crmlib.pushdown.expressions`), runs them where the data lies
(:mod:`~crmlib.pushdown.backends`: DuckDB over Parquet by default, PostgreSQL, Spark;
Ibis speaks Trino and others too), and computes the very same frames from pandas tables
(:mod:`~crmlib.pushdown.frames`) for the sources that do fit, so both paths can be checked
against each other.

The aggregates (:data:`AGGREGATES`):

* ``activity_weeks``: activities per owner x local ISO week x type, done and scheduled;
* ``deal_activity``: activities per deal up to as_of (by type), first and last activity;
* ``activity_firsts``: the first logged activity per type, direction and lead (since when
  the CRM logs calls, touches);
* ``stage_durations``: stage visits per deal x stage and the days they took;
* ``customer_orders``: order lines per customer x currency: count, revenue, cost, first
  and last order.

:mod:`~crmlib.pushdown.source` is the load step for a large source (the audit of the heavy
tables runs in the engine too: :mod:`~crmlib.pushdown.audit`); :mod:`~crmlib.pushdown.info`
is what the metrics see of it. In a report, :mod:`~crmlib.pushdown.scan` leaves a large
snapshot's stage history in its file and :mod:`~crmlib.pushdown.history` has DuckDB reduce it
to what the pipeline, conversion and cycle metrics need. Ibis is imported only when an
engine is used.
"""

from .info import PushdownInfo, aggregate, first_logged, pushdown_info, require_rows


def __getattr__(name: str):
    # the metrics import .info; the frames import the metrics: load them on first use
    if name in ("AGGREGATES", "aggregate_frames"):
        from . import frames

        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AGGREGATES", "aggregate_frames", "PushdownInfo", "pushdown_info", "require_rows", "aggregate",
           "first_logged"]
