"""The heavy aggregations, written once as Ibis expressions.

Each function takes Ibis tables with the canonical columns (plus an optional ``_pos``,
the row's position in the export, which breaks ties the way pandas' stable sort does)
and returns an Ibis expression; :mod:`crmlib.pushdown.backends` runs it on DuckDB,
PostgreSQL or Spark and turns the result into the frame that
:mod:`crmlib.pushdown.frames` computes from pandas tables. Both give the same numbers
(``tests/unit/test_engine.py``).

Time is handled in integers so that every engine gives the same answer:

* an instant is its microseconds since 1970-01-01 UTC (``_us`` columns), comparisons
  with ``as_of`` are integer comparisons, and durations are differences of integers;
* the run's timezone enters as its UTC offsets (a CASE over the zone's transitions), so a
  local ISO week is ``floor((local_days - 4) / 7)`` (1970-01-05 was a Monday) on any
  engine, whatever its own timezone support.

Only the columns an aggregation needs are read (projection), and only rows before
``as_of`` (and at or after ``since`` when given) are aggregated (the window); the engine
does both before anything leaves it.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.datatypes as dt
import pandas as pd

ACTIVITY_TYPES = ("call", "email", "meeting", "task", "note")
DONE_WHEN_COMPLETED = ("meeting", "task")  # the rest are done when logged (crmlib.metrics.activity)
US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
MONDAY_DAY = 4  # day 4 after 1970-01-01 (a Thursday) is Monday 1970-01-05
#: the UTC-offset steps cover these years before and after as_of (each step is one CASE
#: branch); older or later instants take the offset of the first or last step
STEP_YEARS = (20, 5)

__all__ = [
    "ACTIVITY_TYPES", "micros", "to_micros", "offset_steps", "local_micros", "week_index",
    "activity_weeks", "deal_activity", "stage_visits", "stage_durations", "customer_orders", "activity_firsts",
    "aggregate_expressions",
]


# ----------------------------------------------------------------------------- time
def to_micros(ts) -> int:
    """An instant (timezone-aware Timestamp) as microseconds since 1970-01-01 UTC."""
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        raise ValueError(f"{ts!r} has no timezone; give the instant as a timezone-aware Timestamp")
    return int((stamp.tz_convert("UTC") - EPOCH) // pd.Timedelta(microseconds=1))


@ibis.udf.scalar.builtin(name="epoch_us")
def _epoch_us(ts) -> dt.int64:
    """DuckDB's microseconds since 1970-01-01 UTC of an instant (no timezone conversion)."""


def micros(ts: ibis.Value, dialect: str | None = None) -> ibis.Value:
    """A timestamp column as integer microseconds since 1970-01-01 UTC.

    Timezone-aware columns are instants; the backends run their sessions in UTC, so the
    portable form (a cast to a plain timestamp, then the difference from the epoch) keeps
    the UTC wall time. On DuckDB that cast goes through ICU for every value, ten times the
    cost of its own ``epoch_us``, which ``dialect="duckdb"`` uses instead.
    """
    if dialect == "duckdb":
        return _epoch_us(ts)
    return ts.cast("timestamp").delta(ibis.timestamp("1970-01-01 00:00:00"), unit="microsecond")


def offset_steps(tz: str, start, end) -> list[tuple[int | None, int]]:
    """The UTC offsets of ``tz`` between ``start`` and ``end`` as steps: ``[(from_us, offset_us), ...]``.

    The first step's offset also applies before ``start`` and the last one after ``end``
    (keep the range around the data: every step is one more CASE branch). Found by
    comparing the offset at every UTC midnight and searching each day where it changes to
    the minute, which catches every transition of the tz database (they fall on whole
    minutes).
    """
    days = pd.date_range(_utc_day(start), _utc_day(end), freq="D")
    offsets = _offsets_us(days, tz)
    steps = [(None, int(offsets[0]))]
    for i in (offsets[1:] != offsets[:-1]).nonzero()[0]:
        minutes = pd.date_range(days[i], days[i + 1], freq="min", inclusive="right")
        off = _offsets_us(minutes, tz)
        j = int((off != offsets[i]).argmax())
        steps.append((to_micros(minutes[j]), int(off[j])))
    return steps


def _utc_day(ts) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).normalize()


def _offsets_us(instants: pd.DatetimeIndex, tz: str):
    local = instants.tz_convert(tz)
    return ((local.tz_localize(None) - instants.tz_localize(None)) // pd.Timedelta(microseconds=1)).to_numpy()


def local_micros(us: ibis.Value, steps: Sequence[tuple[int | None, int]]) -> ibis.Value:
    """Microseconds of the local wall time of the instant ``us`` (see :func:`offset_steps`)."""
    base = int(steps[0][1])
    if len(steps) == 1:
        return us + base if base else us
    branches = [(us >= int(t), int(off)) for t, off in reversed(steps[1:])]
    return us + ibis.cases(*branches, else_=base)


def week_index(local_us: ibis.Value) -> ibis.Value:
    """The local ISO week of a local wall time: whole weeks since Monday 1970-01-05."""
    return (local_us // US_PER_DAY - MONDAY_DAY) // 7


def _since(value: ibis.Value, since_us: int | None):
    return [] if since_us is None else [value >= since_us]


# ----------------------------------------------------------------------------- (a) activities per owner x week x type
def activity_weeks(activities: ibis.Table, *, as_of_us: int, steps, since_us: int | None = None,
                   dialect: str | None = None) -> ibis.Table:
    """Activities per owner, local ISO week and type: done (by when they were done) and scheduled (by due week).

    Done: calls, emails and notes when logged (``created_at``), meetings and tasks when
    completed (``completed_at``), before ``as_of`` (and at or after ``since``). Scheduled:
    ``due_at`` set, created before ``as_of`` and not completed before it; grouped by the
    week of ``due_at`` (which may lie after ``as_of``: a plan).

    Columns: owner_id, week (int, see :func:`week_index`), type, done, scheduled.
    """
    a = activities
    created = micros(a.created_at, dialect)
    completed = micros(a.completed_at, dialect)
    m = a.select(
        owner_id=a.owner_id, type=a.type, created_us=created, completed_us=completed,
        due_us=micros(a.due_at, dialect),
        done_us=ibis.ifelse(a.type.isin(DONE_WHEN_COMPLETED), completed, created),
    )
    d = m.filter([m.done_us.notnull(), m.done_us < as_of_us, *_since(m.done_us, since_us)])
    d = d.mutate(week=week_index(local_micros(d.done_us, steps)))
    done = d.group_by(["owner_id", "week", "type"]).agg(done=d.count())
    s = m.filter([m.due_us.notnull(), m.created_us < as_of_us,
                  m.completed_us.isnull() | (m.completed_us >= as_of_us), *_since(m.due_us, since_us)])
    s = s.mutate(week=week_index(local_micros(s.due_us, steps)))
    sched = s.group_by(["owner_id", "week", "type"]).agg(scheduled=s.count())
    both = done.mutate(scheduled=ibis.literal(0, "int64")).union(
        sched.mutate(done=ibis.literal(0, "int64")).select("owner_id", "week", "type", "done", "scheduled"))
    return both.group_by(["owner_id", "week", "type"]).agg(done=both.done.sum(), scheduled=both.scheduled.sum())


# ----------------------------------------------------------------------------- (b) activity per deal
def deal_activity(activities: ibis.Table, *, as_of_us: int, since_us: int | None = None,
                  dialect: str | None = None) -> ibis.Table:
    """Per deal, the activities logged before ``as_of`` (by type) and the first and last of them.

    Columns: deal_id, activities, call, email, meeting, task, note, first_us, last_us.
    """
    a = activities
    m = a.select(deal_id=a.deal_id, type=a.type, created_us=micros(a.created_at, dialect))
    m = m.filter([m.deal_id.notnull(), m.created_us < as_of_us, *_since(m.created_us, since_us)])
    counts = {t: m.count(where=m.type == t) for t in ACTIVITY_TYPES}
    return m.group_by("deal_id").agg(activities=m.count(), **counts, first_us=m.created_us.min(),
                                     last_us=m.created_us.max())


def activity_firsts(activities: ibis.Table, *, as_of_us: int, dialect: str | None = None) -> ibis.Table:
    """The first activity logged before ``as_of`` per type, direction and whether it names a lead.

    Columns: type, direction, with_lead (bool), first_us. Small: it tells since when the
    CRM logs calls or touches, which a window of recent rows cannot.
    """
    a = activities
    m = a.select(type=a.type, direction=a.direction, with_lead=a.lead_id.notnull(),
                 created_us=micros(a.created_at, dialect))
    m = m.filter(m.created_us < as_of_us)
    return m.group_by(["type", "direction", "with_lead"]).agg(first_us=m.created_us.min())


# ----------------------------------------------------------------------------- (c) stage visits and durations
def stage_visits(history: ibis.Table, *, as_of_us: int, dialect: str | None = None) -> ibis.Table:
    """One row per stage visit before ``as_of``, as :func:`crmlib.metrics.cycle.stage_visits` defines it.

    A visit is a run of consecutive history rows of one deal in one stage (the first row
    counts); it ends when the deal's next visit begins, else it is still open at
    ``as_of``. Rows of one deal entered at the same instant keep their order in the
    export (``_pos``).

    Columns: deal_id, stage, visit (1, 2, ... per deal), entered_us, left_us (the next
    visit's entry; null while open), next_stage (null while open).
    """
    h = history
    order_cols = ["_pos"] if "_pos" in h.columns else ["stage"]
    h = h.select("deal_id", "stage", *order_cols, entered_us=micros(h.entered_at, dialect))
    h = h.filter([h.deal_id.notnull(), h.entered_us.notnull(), h.entered_us < as_of_us])
    w = ibis.window(group_by=h.deal_id, order_by=[h.entered_us, *[h[c] for c in order_cols]])
    h = h.mutate(first=ibis.row_number().over(w) == 0, same=h.stage.identical_to(h.stage.lag().over(w)))
    v = h.filter(h.first | ~h.same)
    w2 = ibis.window(group_by=v.deal_id, order_by=[v.entered_us, *[v[c] for c in order_cols]])
    return v.select("deal_id", "stage", visit=ibis.row_number().over(w2) + 1, entered_us=v.entered_us,
                    left_us=v.entered_us.lead().over(w2), next_stage=v.stage.lead().over(w2))


def stage_durations(history: ibis.Table, *, as_of_us: int, dialect: str | None = None) -> ibis.Table:
    """Per deal and stage: the visits before ``as_of`` (:func:`stage_visits`) and the time they took.

    Columns: deal_id, stage, visits, completed (visits that ended), days (all visits, an
    open one up to as_of), completed_days, first_entered_us, last_entered_us, current
    (the deal's open visit is in this stage).
    """
    v = stage_visits(history, as_of_us=as_of_us, dialect=dialect)
    v = v.mutate(duration_us=v.left_us.coalesce(as_of_us) - v.entered_us, ended=v.left_us.notnull())
    agg = v.group_by(["deal_id", "stage"]).agg(
        visits=v.count(),
        completed=v.count(where=v.ended),
        days_us=v.duration_us.sum(),
        completed_days_us=v.duration_us.sum(where=v.ended),
        first_entered_us=v.entered_us.min(),
        last_entered_us=v.entered_us.max(),
        open_visits=v.count(where=~v.ended),
    )
    return agg.select(
        "deal_id", "stage", "visits", "completed",
        days=agg.days_us.cast("float64") / US_PER_DAY,
        completed_days=agg.completed_days_us.coalesce(0).cast("float64") / US_PER_DAY,
        first_entered_us=agg.first_entered_us, last_entered_us=agg.last_entered_us,
        current=agg.open_visits > 0,
    )


# ----------------------------------------------------------------------------- (d) orders per customer
def customer_orders(orders: ibis.Table, *, as_of_us: int, since_us: int | None = None,
                    dialect: str | None = None) -> ibis.Table:
    """Per customer (account) and currency, the order lines before ``as_of``: count, revenue, cost, first and last order.

    Sums skip missing values (0 when all are missing), as pandas does. Columns:
    account_id, currency, orders, revenue, cost, first_us, last_us.
    """
    o = orders
    m = o.select(account_id=o.account_id, currency=o.currency, revenue=o.revenue.cast("float64"),
                 cost=o.cost.cast("float64"), ordered_us=micros(o.ordered_at, dialect))
    m = m.filter([m.account_id.notnull(), m.ordered_us < as_of_us, *_since(m.ordered_us, since_us)])
    return m.group_by(["account_id", "currency"]).agg(
        orders=m.count(), revenue=m.revenue.sum().coalesce(0.0), cost=m.cost.sum().coalesce(0.0),
        first_us=m.ordered_us.min(), last_us=m.ordered_us.max())


# ----------------------------------------------------------------------------- all of them
def aggregate_expressions(tables: dict[str, ibis.Table], *, as_of, timezone: str = "UTC",
                          since=None, dialect: str | None = None) -> dict[str, ibis.Table]:
    """Every aggregation whose input table is present: name -> Ibis expression.

    ``as_of`` and ``since`` are instants (timezone-aware); ``timezone`` is the run's one
    (it decides the local weeks). ``since`` bounds the event-dated aggregations (not the
    stage durations, whose visits start whenever the deal entered the stage). ``dialect``
    (the backend's name) only picks the fastest form of :func:`micros`.
    """
    as_of_us = to_micros(as_of)
    since_us = None if since is None else to_micros(since)
    out = {}
    if "activities" in tables:
        a = tables["activities"]
        as_of_ts = pd.Timestamp(as_of)
        steps = offset_steps(timezone, as_of_ts - pd.DateOffset(years=STEP_YEARS[0]),
                             as_of_ts + pd.DateOffset(years=STEP_YEARS[1]))
        out["activity_weeks"] = activity_weeks(a, as_of_us=as_of_us, steps=steps, since_us=since_us,
                                               dialect=dialect)
        out["deal_activity"] = deal_activity(a, as_of_us=as_of_us, since_us=since_us, dialect=dialect)
        out["activity_firsts"] = activity_firsts(a, as_of_us=as_of_us, dialect=dialect)
    if "stage_history" in tables:
        out["stage_durations"] = stage_durations(tables["stage_history"], as_of_us=as_of_us, dialect=dialect)
    if "orders" in tables:
        out["customer_orders"] = customer_orders(tables["orders"], as_of_us=as_of_us, since_us=since_us,
                                                 dialect=dialect)
    return out
