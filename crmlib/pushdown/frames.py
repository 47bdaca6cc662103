"""The heavy aggregations computed from pandas tables: the in-memory twin of the engine's.

Every function here returns exactly the frame that :func:`crmlib.pushdown.backends.run`
returns for the Ibis expression of the same name (:mod:`crmlib.pushdown.expressions`):
the same rows, columns, dtypes and order. The definitions are those of the metrics that
use the tables (``_done_at`` and ``_monday`` of :mod:`crmlib.metrics.activity`,
:func:`crmlib.metrics.cycle.stage_visits`), reused rather than copied.
"""

from __future__ import annotations

import pandas as pd

from ..metrics.activity import _done_at, _monday
from ..metrics.cycle import stage_visits
from ..periods import ensure_instant
from .expressions import ACTIVITY_TYPES

#: the aggregates, their key columns (the sort order) and what each row is
AGGREGATES = {
    "activity_weeks": (("owner_id", "week", "type"),
                       "activities per owner, local ISO week (Monday) and type: done and scheduled"),
    "deal_activity": (("deal_id",), "activities logged per deal (by type), first and last"),
    "activity_firsts": (("type", "direction", "with_lead"),
                        "the first activity logged per type, direction and whether it names a lead"),
    "stage_durations": (("deal_id", "stage"), "visits per deal and stage and the days they took"),
    "customer_orders": (("account_id", "currency"),
                        "order lines per customer and currency: count, revenue, cost, first and last"),
}

__all__ = ["AGGREGATES", "activity_weeks", "deal_activity", "activity_firsts", "stage_durations",
           "customer_orders", "aggregate_frames", "finish"]


def finish(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """An aggregate in its canonical form: sorted by its keys (missing keys last), a fresh index."""
    keys = list(AGGREGATES[name][0])
    return frame.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)


def _in_window(when: pd.Series, as_of, since) -> pd.Series:
    keep = when.notna() & (when < as_of)
    if since is not None:
        keep &= when >= ensure_instant(since, name="since")
    return keep


def activity_weeks(activities: pd.DataFrame, *, as_of, since=None) -> pd.DataFrame:
    """Activities per owner, local ISO week and type: done (by when they were done) and scheduled (by due week).

    Done: calls, emails and notes when logged, meetings and tasks when completed, before
    ``as_of`` (the definition of :func:`crmlib.metrics.activity.activities_done`).
    Scheduled: due_at set, created before ``as_of``, not completed before it (that of
    :func:`~crmlib.metrics.activity.activities_scheduled`), by the week of due_at.

    Returns owner_id, week (the Monday, a naive local date), type, done, scheduled; one
    row per owner, week and type with something done or scheduled.
    """
    as_of = ensure_instant(as_of)
    a = activities
    when = _done_at(a)
    keep = _in_window(when, as_of, since)
    d = a.loc[keep, ["owner_id", "type"]].assign(week=_monday(when[keep]))
    done = d.groupby(["owner_id", "week", "type"], dropna=False).size().rename("done")
    due = a["due_at"]
    keep = due.notna() & (a["created_at"] < as_of) & (a["completed_at"].isna() | (a["completed_at"] >= as_of))
    if since is not None:
        keep &= due >= ensure_instant(since, name="since")
    s = a.loc[keep, ["owner_id", "type"]].assign(week=_monday(due[keep]))
    sched = s.groupby(["owner_id", "week", "type"], dropna=False).size().rename("scheduled")
    out = pd.concat([done, sched], axis=1).fillna(0).astype("int64").reset_index()
    out["week"] = out["week"].astype("datetime64[us]")
    for col in ("owner_id", "type"):
        out[col] = out[col].astype("str")
    return finish("activity_weeks", out[["owner_id", "week", "type", "done", "scheduled"]])


def deal_activity(activities: pd.DataFrame, *, as_of, since=None) -> pd.DataFrame:
    """Per deal, the activities logged before ``as_of`` by type, and the first and last of them.

    Returns deal_id, activities, call, email, meeting, task, note, first_at, last_at.
    """
    as_of = ensure_instant(as_of)
    a = activities
    a = a.loc[a["deal_id"].notna() & _in_window(a["created_at"], as_of, since), ["deal_id", "type", "created_at"]]
    g = a.groupby("deal_id")
    out = pd.DataFrame({"activities": g.size()})
    by_type = a.groupby(["deal_id", "type"]).size().unstack("type")
    for t in ACTIVITY_TYPES:
        out[t] = (by_type[t] if t in by_type.columns else pd.Series(dtype="float64")).reindex(out.index).fillna(0)
    out = out.astype("int64")
    out["first_at"] = g["created_at"].min()
    out["last_at"] = g["created_at"].max()
    out = out.reset_index()
    out["deal_id"] = out["deal_id"].astype("str")
    return finish("deal_activity", out)


def activity_firsts(activities: pd.DataFrame, *, as_of) -> pd.DataFrame:
    """The first activity logged before ``as_of`` per type, direction and whether it names a lead.

    Returns type, direction, with_lead, first_at.
    """
    as_of = ensure_instant(as_of)
    a = activities.loc[activities["created_at"] < as_of]
    f = a.assign(with_lead=a["lead_id"].notna()).groupby(["type", "direction", "with_lead"], dropna=False)
    out = f["created_at"].min().rename("first_at").reset_index()
    for col in ("type", "direction"):
        out[col] = out[col].astype("str")
    out["with_lead"] = out["with_lead"].astype(bool)
    return finish("activity_firsts", out)


def stage_durations(history: pd.DataFrame, *, as_of) -> pd.DataFrame:
    """Per deal and stage, the visits before ``as_of`` (:func:`crmlib.metrics.cycle.stage_visits`) and the days they took.

    Returns deal_id, stage, visits, completed, days (every visit, an open one up to
    as_of), completed_days, first_entered_at, last_entered_at, current (the deal's open
    visit is in this stage).
    """
    v = stage_visits(history, as_of=ensure_instant(as_of))
    v = v.assign(_done_days=v["duration_days"].where(v["completed"], 0.0), _open=~v["completed"])
    g = v.groupby(["deal_id", "stage"], sort=False)
    out = pd.DataFrame({
        "visits": g.size().astype("int64"),
        "completed": g["completed"].sum().astype("int64"),
        "days": g["duration_days"].sum().astype("float64"),
        "completed_days": g["_done_days"].sum().astype("float64"),
        "first_entered_at": g["entered_at"].min(),
        "last_entered_at": g["entered_at"].max(),
        "current": g["_open"].any().astype(bool),
    }).reset_index()
    for col in ("deal_id", "stage"):
        out[col] = out[col].astype("str")
    return finish("stage_durations", out)


def customer_orders(orders: pd.DataFrame, *, as_of, since=None) -> pd.DataFrame:
    """Per customer (account) and currency, the order lines before ``as_of``: count, revenue, cost, first and last order.

    Sums skip missing values (0 when all are missing). Returns account_id, currency,
    orders, revenue, cost, first_at, last_at.
    """
    as_of = ensure_instant(as_of)
    o = orders.loc[orders["account_id"].notna() & _in_window(orders["ordered_at"], as_of, since)]
    g = o.groupby(["account_id", "currency"], dropna=False)
    out = pd.DataFrame({
        "orders": g.size().astype("int64"),
        "revenue": g["revenue"].sum().astype("float64"),
        "cost": g["cost"].sum().astype("float64"),
        "first_at": g["ordered_at"].min(),
        "last_at": g["ordered_at"].max(),
    }).reset_index()
    for col in ("account_id", "currency"):
        out[col] = out[col].astype("str")
    return finish("customer_orders", out)


def aggregate_frames(tables: dict[str, pd.DataFrame], *, as_of, since=None) -> dict[str, pd.DataFrame]:
    """Every aggregation whose input table is present, from pandas tables: name -> frame."""
    out = {}
    if "activities" in tables:
        a = tables["activities"]
        out["activity_weeks"] = activity_weeks(a, as_of=as_of, since=since)
        out["deal_activity"] = deal_activity(a, as_of=as_of, since=since)
        out["activity_firsts"] = activity_firsts(a, as_of=as_of)
    if "stage_history" in tables:
        out["stage_durations"] = stage_durations(tables["stage_history"], as_of=as_of)
    if "orders" in tables:
        out["customer_orders"] = customer_orders(tables["orders"], as_of=as_of, since=since)
    return out
