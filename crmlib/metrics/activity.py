"""Sales performance and activity (report 05): who is doing what, and does the activity pay off?

Conventions shared by every function here (those of :mod:`crmlib.metrics.pipeline` too):

* ``as_of`` is the instant "now"; an event counts only if it happened strictly before
  it. A window ``[start, end)`` is cut at ``as_of``, so a running period counts what
  has happened so far.
* **Done** activities: calls, emails and notes are done when they are logged
  (``created_at``); meetings and tasks when they are completed (``completed_at``), so a
  meeting that is only planned is not done. **Scheduled** activities: ``due_at`` in the
  window, created before ``as_of`` and not completed before ``as_of``.
* Money is read from ``amount_col``, by default ``"amount_rep"`` (the reporting-currency
  twin added by :func:`crmlib.money.to_reporting`); sums skip missing amounts and say
  how many were missing.
* Rates come with their counts and a Wilson interval (``*_low``, ``*_high``).
* A **rep-week** is one owner in one ISO week (Monday to Sunday in the run's timezone).
  Its calls are the call activities the owner logged in that week and its meetings the
  meetings the owner completed in that week; its deals are the owner's deals that were
  won or lost in that week.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import CrmConfigError
from ..lookup import isin
from ..money import require_single_currency
from ..periods import Period, ensure_instant, period_bounds, working_days
from ..pushdown.info import aggregate, first_logged, require_rows
from ..pushdown.scan import is_scan
from ..stats.intervals import Proportion, wilson, wilson_frame
from ..stats.regression import INTERCEPT, NotEstimable, RegressionResult, fit_logit, fit_ols
from .catalogue import metric
from .cycle import _require
from .pipeline import deal_status_at

__all__ = [
    "ACTIVITY_TYPES", "ACTIVITY_COLUMNS", "OWNER_TYPES", "DEFAULT_CALL_BAND_EDGES", "PeriodResults", "ActivityOutcome",
    "RateComparison", "meetings_in_band",
    "activities_done", "activities_scheduled", "activity_mix", "period_results", "results_by_period",
    "owner_results", "quota_attainment", "close_ratio", "cohort_win_rate", "owner_performance",
    "rep_week_activity", "rep_week_outcomes",
    "deals_with_week_activity", "call_band_win_rates", "activity_outcome",
]

AMOUNT_COL = "amount_rep"
ACTIVITY_TYPES = ("call", "email", "meeting", "task", "note")
#: the activities columns this module's metrics read (report 05 loads only these)
ACTIVITY_COLUMNS = ("owner_id", "type", "deal_id", "created_at", "due_at", "completed_at")
#: the activity types shown per owner (notes are not work to plan)
OWNER_TYPES = ("call", "email", "meeting", "task")
#: done when completed; every other type is done when it is logged
DONE_WHEN_COMPLETED = ("meeting", "task")
#: lower bounds of the weekly-call bands: <50, 50-74, 75-99, 100-125, 126-149, 150+
DEFAULT_CALL_BAND_EDGES = (50, 75, 100, 126, 150)
MAX_WITHIN_REPS = 100  # reps whose deals fit the within-rep model (a random sample beyond)
_CLOSED = ("won", "lost")
_MEETINGS_TERM = "meetings >= {k}"


# ----------------------------------------------------------------------------- activities
def _done_at(activities: pd.DataFrame) -> pd.Series:
    """When each activity was done: completed_at for meetings and tasks, created_at otherwise."""
    by_completion = activities["type"].isin(DONE_WHEN_COMPLETED)
    return activities["created_at"].where(~by_completion, activities["completed_at"])


def _window(start, end, as_of) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    as_of = ensure_instant(as_of)
    start = ensure_instant(start, name="start")
    end = ensure_instant(end, name="end")
    if not start < end:
        raise ValueError(f"start ({start}) must be before end ({end})")
    return start, min(end, as_of), as_of


def _per_owner_type(frame: pd.DataFrame, by: str, types: Sequence[str], counted: bool = False) -> pd.DataFrame:
    """Per ``by`` (missing: its own row) one count column per type: of the rows of ``frame``, or
    (``counted``) the sums of its ``n`` column (the engine's counts of a scan)."""
    groups = frame.groupby([by, "type"], dropna=False, sort=True)
    counts = (groups["n"].sum() if counted else groups.size()).unstack("type")
    counts = counts.reindex(columns=list(types)).fillna(0).astype("int64")
    counts.columns.name = None
    return counts.reset_index()


@metric(report="05", unit="count")
def activities_done(activities: pd.DataFrame, *, start: pd.Timestamp, end: pd.Timestamp,
                    as_of: pd.Timestamp, by: str = "owner_id",
                    types: Sequence[str] = OWNER_TYPES) -> pd.DataFrame:
    """Activities done in a window per owner and type: calls, emails and notes count when logged (created_at), meetings and tasks when completed (completed_at), and only before as_of.

    Parameters
    ----------
    activities : the canonical ``activities`` table.
    start, end : the window ``[start, end)``; it is cut at ``as_of``.
    as_of : the instant "now".
    by : the grouping column (``"owner_id"``).
    types : the activity types, one column each (in this order).

    Returns
    -------
    One row per owner with at least one activity of ``types`` done in the window: ``by``,
    one count column per type, ``done`` (their sum); most activities first.
    """
    start, stop, _ = _window(start, end, as_of)
    _require(activities, ("type", by, "created_at", "completed_at"), "activities")
    require_rows(activities, start, what="activities done in a window")
    if is_scan(activities):  # a large snapshot's window: DuckDB counts
        from ..pushdown.activity import done_counts

        counts = done_counts(activities, windows=[(start, stop)], types=types,
                             completed_types=DONE_WHEN_COMPLETED, by=by)
        out = _per_owner_type(counts, by, types, counted=True)
    else:
        when = _done_at(activities)
        a = activities.loc[activities["type"].isin(types) & (when >= start) & (when < stop)]
        out = _per_owner_type(a, by, types)
    out["done"] = out[list(types)].sum(axis=1).astype("int64")
    return out.sort_values(["done", by], ascending=[False, True], kind="stable").reset_index(drop=True)


@metric(report="05", unit="count")
def activities_scheduled(activities: pd.DataFrame, *, start: pd.Timestamp, end: pd.Timestamp,
                         as_of: pd.Timestamp, by: str = "owner_id",
                         types: Sequence[str] = OWNER_TYPES) -> pd.DataFrame:
    """Activities scheduled for a window per owner and type: due_at in the window, created before as_of and not completed before as_of.

    The window is usually the period after the report's one (it may lie after
    ``as_of``: a plan, not an event). Returns one row per owner: ``by``, one count column
    per type, ``scheduled`` (their sum); most first.
    """
    as_of = ensure_instant(as_of)
    start, end = ensure_instant(start, name="start"), ensure_instant(end, name="end")
    if not start < end:
        raise ValueError(f"start ({start}) must be before end ({end})")
    _require(activities, ("type", by, "created_at", "due_at", "completed_at"), "activities")
    require_rows(activities, start, what="activities scheduled for a window")
    if is_scan(activities):  # a large snapshot's window: DuckDB counts
        from ..pushdown.activity import scheduled_counts

        out = _per_owner_type(scheduled_counts(activities, start=start, end=end, as_of=as_of, types=types, by=by),
                              by, types, counted=True)
    else:
        a = activities
        keep = (a["type"].isin(types) & (a["due_at"] >= start) & (a["due_at"] < end)
                & (a["created_at"] < as_of) & (a["completed_at"].isna() | (a["completed_at"] >= as_of)))
        out = _per_owner_type(a.loc[keep.fillna(False).astype(bool)], by, types)
    out["scheduled"] = out[list(types)].sum(axis=1).astype("int64")
    return out.sort_values(["scheduled", by], ascending=[False, True], kind="stable").reset_index(drop=True)


@metric(report="05", unit="count")
def activity_mix(activities: pd.DataFrame, *, periods: Sequence[Period], as_of: pd.Timestamp,
                 types: Sequence[str] = ACTIVITY_TYPES) -> pd.DataFrame:
    """Activities done per period and type (the definition of activities_done), with each type's share of the period's activities.

    Parameters
    ----------
    activities : the canonical ``activities`` table.
    periods : the periods, oldest first (e.g. :func:`crmlib.periods.periods_back`).
    as_of : the instant "now" (a running period counts what is done so far).
    types : the activity types shown.

    Returns
    -------
    One row per period and type (every type listed, zeros included): period (label),
    start, end, type, activities, share (of the period's total; NaN when the period has
    none), complete (whether the period had ended by ``as_of``).
    """
    as_of = ensure_instant(as_of)
    if not len(periods):
        raise ValueError("activity_mix needs at least one period")
    _require(activities, ("type", "created_at", "completed_at"), "activities")
    require_rows(activities, min(p.start for p in periods), what="the activity mix")
    if is_scan(activities):  # a large snapshot's window: DuckDB counts per period and type
        from ..pushdown.activity import done_counts

        engine = done_counts(activities, windows=[(p.start, min(p.end, as_of)) for p in periods],
                             types=types, completed_types=DONE_WHEN_COMPLETED)
        per_period = [engine.loc[engine["window"] == i].set_index("type")["n"] for i in range(len(periods))]
    else:
        when = _done_at(activities)
        keep = activities["type"].isin(types) & (when < as_of)
        kind, when = activities.loc[keep, "type"], when.loc[keep]  # one column, not a copy of the table
        per_period = [kind.loc[(when >= p.start) & (when < p.end)].value_counts() for p in periods]
    rows = []
    for p, counts in zip(periods, per_period):
        total = int(counts.sum())
        for t in types:
            n = int(counts.get(t, 0))
            rows.append({"period": p.label, "start": p.start, "end": p.end, "type": t, "activities": n,
                         "share": n / total if total else math.nan, "complete": bool(p.end <= as_of)})
    out = pd.DataFrame(rows)
    out["period"] = out["period"].astype("str")
    out["type"] = out["type"].astype("str")
    return out


# ----------------------------------------------------------------------------- deal results
@dataclass(frozen=True)
class PeriodResults:
    """What the team did in one window: deals created, won and lost, revenue won, win rate."""

    start: pd.Timestamp
    end: pd.Timestamp  # exclusive, cut at as_of
    created: int
    won: int
    lost: int
    revenue_won: float
    avg_deal_size: float
    win_rate: Proportion
    missing_amount: int

    def to_frame(self) -> pd.DataFrame:
        """One row: start, end, created, won, lost, revenue_won, avg_deal_size, win_rate, win_rate_low, win_rate_high, missing_amount."""
        return pd.DataFrame([{
            "start": self.start, "end": self.end, "created": self.created, "won": self.won,
            "lost": self.lost, "revenue_won": self.revenue_won, "avg_deal_size": self.avg_deal_size,
            "win_rate": self.win_rate.estimate, "win_rate_low": self.win_rate.low,
            "win_rate_high": self.win_rate.high, "missing_amount": self.missing_amount}])

    def summary(self) -> str:
        return (f"{self.created} created, {self.won} won, {self.lost} lost, revenue won "
                f"{self.revenue_won:,.0f}, win rate {self.win_rate.summary()}")


def _closed_in(deals, start, stop, as_of):
    d = deal_status_at(deals, as_of)
    closed = d.loc[d["status_at"].isin(_CLOSED) & (d["closed_at"] >= start) & (d["closed_at"] < stop)]
    created = d.loc[(d["created_at"] >= start) & (d["created_at"] < stop)]
    return closed, created


@metric(report="05", unit="money")
def period_results(deals: pd.DataFrame, *, start: pd.Timestamp, end: pd.Timestamp, as_of: pd.Timestamp,
                   amount_col: str = AMOUNT_COL, alpha: float = 0.05) -> PeriodResults:
    """Revenue won in a window: the sum of the amounts (reporting currency) of deals won in it, with the deals created, won and lost, the win rate won / (won + lost) of deals closed in it and the average won deal size.

    The window ``[start, end)`` is cut at ``as_of``. Returns a :class:`PeriodResults`;
    ``revenue_won`` is 0 when nothing was won, ``avg_deal_size`` NaN then.
    """
    start, stop, as_of = _window(start, end, as_of)
    require_single_currency(deals, amount_col)
    closed, created = _closed_in(deals, start, stop, as_of)
    won = closed.loc[closed["status_at"] == "won"]
    amounts = won[amount_col].astype("float64")
    revenue = float(amounts.sum())
    known = int(amounts.notna().sum())
    return PeriodResults(start, stop, len(created), len(won), len(closed) - len(won), revenue,
                         revenue / known if known else math.nan,
                         wilson(len(won), len(closed), alpha=alpha), int(amounts.isna().sum()))


@metric(report="05", unit="table")
def results_by_period(deals: pd.DataFrame, *, periods: Sequence[Period], as_of: pd.Timestamp,
                      amount_col: str = AMOUNT_COL, alpha: float = 0.05) -> pd.DataFrame:
    """Per period: deals created, won and lost, revenue won, average won deal size and win rate with its Wilson interval (the definitions of period_results).

    Returns one row per period in the order given: period (label), the columns of
    :meth:`PeriodResults.to_frame`, complete (whether the period had ended by ``as_of``).
    """
    as_of = ensure_instant(as_of)
    if not len(periods):
        raise ValueError("results_by_period needs at least one period")
    rows = []
    for p in periods:
        row = period_results(deals, start=p.start, end=p.end, as_of=as_of, amount_col=amount_col,
                             alpha=alpha).to_frame()
        row.insert(0, "period", p.label)
        row["complete"] = bool(p.end <= as_of)
        rows.append(row)
    out = pd.concat(rows, ignore_index=True)
    out["period"] = out["period"].astype("str")
    return out


@metric(report="05", unit="table")
def owner_results(deals: pd.DataFrame, *, start: pd.Timestamp, end: pd.Timestamp, as_of: pd.Timestamp,
                  amount_col: str = AMOUNT_COL, alpha: float = 0.05) -> pd.DataFrame:
    """Per owner in a window: deals created, won and lost, the win rate won / (won + lost) with its Wilson interval, the revenue won and the average won deal size.

    Returns one row per owner with a deal created or closed in the window (a missing
    owner is its own row): owner_id, created, won, lost, closed, win_rate,
    win_rate_low, win_rate_high, revenue_won, avg_deal_size, missing_amount; most
    revenue first.
    """
    start, stop, as_of = _window(start, end, as_of)
    require_single_currency(deals, amount_col)
    _require(deals, ("owner_id",), "deals")
    closed, created = _closed_in(deals, start, stop, as_of)
    won_mask = closed["status_at"] == "won"
    amount = closed[amount_col].astype("float64").where(won_mask)
    c = closed.assign(_won=won_mask, _lost=~won_mask, _amount=amount,
                      _missing=won_mask & closed[amount_col].isna())
    g = c.groupby("owner_id", dropna=False, sort=True)
    out = pd.DataFrame({"won": g["_won"].sum(), "lost": g["_lost"].sum(),
                        "revenue_won": g["_amount"].sum(), "missing_amount": g["_missing"].sum()})
    made = created.groupby("owner_id", dropna=False, sort=True).size().rename("created")
    out = out.join(made, how="outer")
    for col in ("won", "lost", "created", "missing_amount"):
        out[col] = out[col].fillna(0).astype("int64")
    out["revenue_won"] = out["revenue_won"].fillna(0.0).astype("float64")
    out["closed"] = out["won"] + out["lost"]
    out.index.name = "owner_id"
    out = wilson_frame(out.reset_index(), "won", "closed", alpha=alpha, name="win_rate")
    known = out["won"] - out["missing_amount"]
    out["avg_deal_size"] = out["revenue_won"] / known.where(known > 0)
    out = out[["owner_id", "created", "won", "lost", "closed", "win_rate", "win_rate_low", "win_rate_high",
               "revenue_won", "avg_deal_size", "missing_amount"]]
    return out.sort_values(["revenue_won", "won", "owner_id"], ascending=[False, False, True],
                           kind="stable").reset_index(drop=True)


@metric(report="05", unit="pct")
def close_ratio(deals: pd.DataFrame, *, start: pd.Timestamp, as_of: pd.Timestamp,
                by: str | Sequence[str] | None = None, alpha: float = 0.05) -> Proportion | pd.DataFrame:
    """Close ratio: the deals created in a window that were won by as_of, divided by all deals created in the window (still open and lost ones included).

    Unlike the win rate (won / (won + lost) of closed deals) it cannot be raised by
    leaving hopeless deals open; recent deals that are still open pull it down.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    start : first instant of the creation window (which ends at ``as_of``).
    as_of : the instant "now".
    by : grouping column(s), e.g. ``"owner_id"``; None: one number.

    Returns
    -------
    Without ``by``: a :class:`~crmlib.stats.intervals.Proportion` (won of created).
    With ``by``: the ``by`` columns, created, won, lost, open, close_ratio,
    close_ratio_low, close_ratio_high; most deals created first.
    """
    as_of = ensure_instant(as_of)
    start = ensure_instant(start, name="start")
    if not start < as_of:
        raise ValueError(f"start ({start}) must be before as_of ({as_of})")
    d = deal_status_at(deals, as_of)
    d = d.loc[d["created_at"] >= start]
    won = d["status_at"] == "won"
    if by is None:
        return wilson(int(won.sum()), len(d), alpha=alpha)
    by = [by] if isinstance(by, str) else list(by)
    _require(d, by, "deals")
    g = d.assign(_won=won, _lost=d["status_at"] == "lost", _open=d["status_at"] == "open") \
        .groupby(by, dropna=False, sort=True)
    out = pd.DataFrame({"created": g.size(), "won": g["_won"].sum(), "lost": g["_lost"].sum(),
                        "open": g["_open"].sum()}).astype("int64").reset_index()
    out = wilson_frame(out, "won", "created", alpha=alpha, name="close_ratio")
    return out.sort_values(["created"] + by, ascending=[False] + [True] * len(by),
                           kind="stable").reset_index(drop=True)


@metric(report="05", unit="pct")
def cohort_win_rate(deals: pd.DataFrame, *, start: pd.Timestamp, as_of: pd.Timestamp,
                    alpha: float = 0.05) -> Proportion:
    """Win rate of a creation cohort: among the deals created in a window (ending at as_of) that were won or lost by as_of, the share won.

    The companion of :func:`close_ratio` for the same deals: it leaves out the ones still
    open. Returns a :class:`~crmlib.stats.intervals.Proportion` (won of closed).
    """
    as_of = ensure_instant(as_of)
    start = ensure_instant(start, name="start")
    d = deal_status_at(deals, as_of)
    d = d.loc[d["created_at"] >= start]
    closed = d["status_at"].isin(_CLOSED)
    return wilson(int((d["status_at"] == "won").sum()), int(closed.sum()), alpha=alpha)


# ----------------------------------------------------------------------------- quota
def _target_days(stamps: pd.Series) -> pd.Series:
    """Calendar days (naive midnights) of a targets date column, rounded to the nearest midnight.

    Target periods are dates; after loading they are midnights of the export's timezone
    converted to the run's one (``2026-09-01 00:00 UTC`` reads ``2026-08-31 20:00`` in
    New York), so rounding to the nearest midnight gives back the day written in the
    export (for timezone differences under 12 hours), as report 08 does.
    """
    wall = stamps.dt.tz_localize(None) if isinstance(stamps.dtype, pd.DatetimeTZDtype) else stamps
    return (wall + pd.Timedelta(hours=12)).dt.floor("D")


def _local(days: pd.Series, tz) -> pd.Series:
    return days.dt.tz_localize(tz, ambiguous=np.ones(len(days), dtype=bool), nonexistent="shift_forward")


@metric(report="05", unit="pct")
def quota_attainment(deals: pd.DataFrame, targets: pd.DataFrame, *, as_of: pd.Timestamp,
                     target_metric: str = "revenue", amount_col: str = AMOUNT_COL,
                     holiday_country: str | None = None, users: pd.DataFrame | None = None) -> pd.DataFrame:
    """Quota attainment: what an owner achieved from the start of their target period running at as_of up to as_of (revenue won, or deals won), divided by the target.

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col``.
    targets : the canonical ``targets`` table; owner rows of ``target_metric`` whose
        period (period_start to period_end, the last day included, as calendar days in
        the timezone of ``as_of``) contains the last instant before ``as_of`` are used. When an owner has several (a month and a
        quarter), the shortest period is taken. Team rows are left out.
    as_of : the instant "now".
    target_metric : ``"revenue"`` (reporting currency) or ``"won_deals"``.
    holiday_country : for ``elapsed_share`` (working days Monday to Friday, minus this
        country's public holidays when given).
    users : the ``users`` table; adds name and team after owner_id.

    Returns
    -------
    One row per owner with a running target: owner_id, period_start, period_end (the
    last day, as in the targets table), target, actual, attainment (actual / target;
    NaN for a target of 0), elapsed_share (working days of the period before ``as_of``
    / all its working days); highest attainment first.
    """
    as_of = ensure_instant(as_of)
    if target_metric not in ("revenue", "won_deals"):
        raise CrmConfigError(f"quota attainment is measured for revenue or won_deals, not {target_metric!r}")
    _require(targets, ("owner_id", "metric", "period_start", "period_end", "target"), "targets")
    if target_metric == "revenue":
        require_single_currency(deals, amount_col)
    t = targets.loc[(targets["metric"] == target_metric) & targets["owner_id"].notna()
                    & targets["period_start"].notna() & targets["period_end"].notna()].copy()
    last_day = _target_days(t["period_end"])
    t["period_start"] = _local(_target_days(t["period_start"]), as_of.tz)
    t["period_end"] = _local(last_day, as_of.tz)
    t["end_excl"] = _local(last_day + pd.Timedelta(days=1), as_of.tz)
    now = as_of - pd.Timedelta(microseconds=1)
    t = t.loc[(t["period_start"] <= now) & (t["end_excl"] > now)]
    t = t.assign(_len=t["end_excl"] - t["period_start"]).sort_values(["owner_id", "_len", "period_start"],
                                                                   kind="stable")
    t = t.drop_duplicates("owner_id", keep="first")
    cols = ["owner_id", "period_start", "period_end", "target", "actual", "attainment", "elapsed_share"]
    if t.empty:
        out = pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
        out["owner_id"] = out["owner_id"].astype("str")
        return _with_names(out, users)
    d = deal_status_at(deals, as_of)
    won = d.loc[(d["status_at"] == "won") & isin(d["owner_id"], t["owner_id"])]
    # each owner's won deals inside their own period, summed per owner in one pass (one row
    # per owner in t, so the merge pairs each won deal with its owner's period alone)
    keep = ["owner_id", "closed_at"] + ([amount_col] if target_metric == "revenue" else [])
    m = won[keep].merge(t[["owner_id", "period_start", "end_excl"]], on="owner_id", how="inner")
    m = m.loc[(m["closed_at"] >= m["period_start"])
              & (m["closed_at"] < m["end_excl"].where(m["end_excl"] < as_of, as_of))]
    per_owner = m.groupby("owner_id")[amount_col].sum() if target_metric == "revenue" \
        else m.groupby("owner_id").size().astype("float64")
    elapsed, days = [], {}  # owners share a few periods: their working days are counted once each
    for start, end in zip(t["period_start"], t["end_excl"], strict=True):
        if (start, end) not in days:
            total = working_days(start, end, holiday_country)
            done = working_days(start, min(as_of, end), holiday_country)
            days[(start, end)] = done / total if total else math.nan
        elapsed.append(days[(start, end)])
    out = t[["owner_id", "period_start", "period_end", "target"]].copy()
    out["actual"] = out["owner_id"].map(per_owner).fillna(0.0).astype("float64").to_numpy()
    out["target"] = out["target"].astype("float64")
    out["attainment"] = out["actual"] / out["target"].where(out["target"] > 0)
    out["elapsed_share"] = elapsed
    out = out[cols].sort_values(["attainment", "owner_id"], ascending=[False, True],
                                na_position="last", kind="stable").reset_index(drop=True)
    return _with_names(out, users)


def _with_names(out: pd.DataFrame, users: pd.DataFrame | None) -> pd.DataFrame:
    """``out`` with the owner's name and team from ``users`` inserted after owner_id."""
    if users is None:
        return out
    _require(users, ("user_id",), "users")
    info = users.drop_duplicates("user_id").set_index("user_id")
    for pos, col in enumerate(c for c in ("name", "team") if c in info.columns):
        out.insert(1 + pos, col, out["owner_id"].map(info[col]).astype("str"))
    return out


# ----------------------------------------------------------------------------- per owner
@metric(report="05", unit="table")
def owner_performance(deals: pd.DataFrame, *, period: Period, as_of: pd.Timestamp,
                      activities: pd.DataFrame | None = None, targets: pd.DataFrame | None = None,
                      users: pd.DataFrame | None = None, amount_col: str = AMOUNT_COL,
                      alpha: float = 0.05) -> pd.DataFrame:
    """Per owner in the report period: deals created, won and lost, win rate with its interval, revenue won, average won deal size, quota attainment, and the calls, emails, meetings and tasks done in the period and scheduled for the next one.

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col``.
    period : the report period (e.g. ``r.periods.current``); activities are scheduled
        for ``period.next()``.
    as_of : the instant "now".
    activities, targets, users : optional tables; without them the activity columns,
        quota attainment, or name and team are left out.

    Returns
    -------
    One row per owner with a deal, an activity or a running revenue target: owner_id,
    [name, team], the columns of :func:`owner_results`, [quota_target,
    quota_attainment], [calls_done, emails_done, meetings_done, tasks_done,
    calls_scheduled, emails_scheduled, meetings_scheduled, tasks_scheduled]; most
    revenue first. Counts are 0 where an owner had nothing.
    """
    as_of = ensure_instant(as_of)
    out = owner_results(deals, start=period.start, end=period.end, as_of=as_of, amount_col=amount_col,
                        alpha=alpha)
    parts = []
    if targets is not None:
        q = quota_attainment(deals, targets, as_of=as_of, amount_col=amount_col)
        parts.append(q.set_index("owner_id")[["target", "attainment"]]
                     .rename(columns={"target": "quota_target", "attainment": "quota_attainment"}))
    if activities is not None:
        nxt = period.next()
        done = activities_done(activities, start=period.start, end=period.end, as_of=as_of)
        plan = activities_scheduled(activities, start=nxt.start, end=nxt.end, as_of=as_of)
        parts.append(done.set_index("owner_id")[list(OWNER_TYPES)].add_suffix("s_done"))
        parts.append(plan.set_index("owner_id")[list(OWNER_TYPES)].add_suffix("s_scheduled"))
    out = out.set_index("owner_id")
    for part in parts:
        out = out.join(part, how="outer")
    counts = [c for c in out.columns if c.endswith(("_done", "_scheduled"))] + [
        "created", "won", "lost", "closed", "missing_amount"]
    for col in counts:
        out[col] = out[col].fillna(0).astype("int64")
    out["revenue_won"] = out["revenue_won"].fillna(0.0)
    out.index.name = "owner_id"
    out = _with_names(out.reset_index(), users)
    return out.sort_values(["revenue_won", "won", "owner_id"], ascending=[False, False, True],
                           kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- rep-weeks
def _monday(stamps: pd.Series) -> pd.Series:
    """The local calendar date (naive midnight) of the Monday of each timestamp's ISO week."""
    day = stamps.dt.tz_localize(None).dt.normalize()
    return day - pd.to_timedelta(day.dt.day_of_week, unit="D")


def _complete_weeks(as_of: pd.Timestamp, n: int) -> list[Period]:
    """The ``n`` most recent ISO weeks that ended by ``as_of``, oldest first."""
    week = period_bounds(as_of, "week").current
    if week.end > as_of:
        week = week.previous()
    out = [week]
    for _ in range(int(n) - 1):
        out.append(out[-1].previous())
    return out[::-1]


@metric(report="05", unit="count")
def rep_week_activity(activities: pd.DataFrame, *, as_of: pd.Timestamp, weeks: int = 52,
                      start: pd.Timestamp | None = None, owners: Sequence[str] | None = None,
                      min_weekly_calls: float = 20.0) -> pd.DataFrame:
    """Calls and meetings per rep-week: the call activities an owner logged (created_at) and the meetings they completed (completed_at) in each complete ISO week since calls were first logged.

    Parameters
    ----------
    activities : the canonical ``activities`` table.
    as_of : the instant "now"; only weeks that ended by then are used.
    weeks : at most this many most recent complete weeks.
    start : no week before the one containing ``start``; None: the week of the first
        logged call in the export (before it calls were not logged, so a week without
        calls would be a gap in the data, not a quiet week).
    owners : the owners to include; None: every owner whose average week in the window
        has at least ``min_weekly_calls`` calls (the reps who work the phone; an owner
        with a call now and then would add weeks of zero calls that say nothing about
        calling).
    min_weekly_calls : see ``owners``.

    Returns
    -------
    One row per owner and week (weeks without activity included, with zeros):
    owner_id, week (label ``2026-W39``), week_start, week_end, calls, meetings; by owner
    and week.
    """
    as_of = ensure_instant(as_of)
    if int(weeks) < 1:
        raise ValueError(f"weeks must be at least 1, not {weeks}")
    _require(activities, ("type", "owner_id", "created_at", "completed_at"), "activities")
    weekly = aggregate(activities, "activity_weeks", as_of=as_of)
    if weekly is None and is_scan(activities):  # no weekly counts from the engine: the rows used
        from ..pushdown.activity import typed_rows

        activities = typed_rows(activities, columns=["type", "owner_id", "created_at", "completed_at"],
                                types=["call", "meeting"])
    if weekly is not None:  # a large source: the engine's weekly counts of every row
        weekly = weekly.loc[weekly["owner_id"].notna() & (weekly["done"] > 0)]
        calls_by_week = weekly.loc[weekly["type"] == "call"].set_index(["owner_id", "week"])["done"]
        meets_by_week = weekly.loc[weekly["type"] == "meeting"].set_index(["owner_id", "week"])["done"]
        first_call = calls_by_week.index.get_level_values("week").min() if len(calls_by_week) else None
        any_calls = first_call is not None
    else:
        calls_all = activities.loc[(activities["type"] == "call") & (activities["created_at"] < as_of)]
        first_call = first_logged(activities, calls_all["created_at"].min() if len(calls_all) else pd.NaT,
                                  as_of=as_of, types=("call",))
        any_calls = not calls_all.empty
    cols = ["owner_id", "week", "week_start", "week_end", "calls", "meetings"]
    week_list = _complete_weeks(as_of, weeks)
    if start is None and first_call is not None and not pd.isna(first_call):
        start = first_call if first_call.tzinfo is not None else \
            first_call.tz_localize(as_of.tz, ambiguous=True, nonexistent="shift_forward")
    if start is not None:
        first = period_bounds(ensure_instant(start, name="start") + pd.Timedelta(microseconds=1), "week").current
        week_list = [w for w in week_list if w.start >= first.start]
    if not week_list or not any_calls:
        return _empty_panel(cols, as_of.tz)
    monday = {pd.Timestamp(w.start.tz_localize(None)): w for w in week_list}
    lo, hi = week_list[0].start, week_list[-1].end
    if weekly is not None:
        in_panel = list(monday)
        calls = calls_by_week.loc[calls_by_week.index.get_level_values("week").isin(in_panel)]
        meets = meets_by_week.loc[meets_by_week.index.get_level_values("week").isin(in_panel)]
    else:
        require_rows(activities, lo, what="the calls and meetings per rep-week")
        c = calls_all.loc[(calls_all["created_at"] >= lo) & (calls_all["created_at"] < hi)]
        m = activities.loc[(activities["type"] == "meeting") & (activities["completed_at"] >= lo)
                           & (activities["completed_at"] < min(hi, as_of))]
        calls = c.groupby(["owner_id", _monday(c["created_at"])]).size()
        meets = m.groupby(["owner_id", _monday(m["completed_at"])]).size()
    if owners is None:
        per_owner = calls.groupby(level=0).sum() / len(week_list)
        chosen = sorted(per_owner.index[per_owner >= float(min_weekly_calls)])
    else:
        chosen = sorted(str(o) for o in owners)
    if not chosen:
        return _empty_panel(cols, as_of.tz)
    index = pd.MultiIndex.from_product([chosen, list(monday)], names=["owner_id", "monday"])
    panel = pd.DataFrame({"calls": calls.reindex(index, fill_value=0).astype("int64").to_numpy(),
                          "meetings": meets.reindex(index, fill_value=0).astype("int64").to_numpy()},
                         index=index).reset_index()
    week_of = panel["monday"].map(monday)
    panel["week"] = week_of.map(lambda w: w.label).astype("str")
    panel["week_start"] = pd.Series([w.start for w in week_of], index=panel.index)
    panel["week_end"] = pd.Series([w.end for w in week_of], index=panel.index)
    panel["owner_id"] = panel["owner_id"].astype("str")
    return panel[cols]


def _empty_panel(cols, tz) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="int64") for c in cols})
    for c in ("owner_id", "week"):
        out[c] = out[c].astype("str")
    for c in ("week_start", "week_end"):
        out[c] = pd.Series(dtype=pd.DatetimeTZDtype("us", tz))
    return out


def _deal_weeks(deals: pd.DataFrame, panel: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Closed deals of the panel's owners that closed in one of the panel's weeks, with that rep-week's row."""
    d = deal_status_at(deals, as_of)
    d = d.loc[d["status_at"].isin(_CLOSED) & d["owner_id"].isin(panel["owner_id"].unique())].copy()
    d["_monday"] = _monday(d["closed_at"])
    p = panel.assign(_monday=panel["week_start"].dt.tz_localize(None))
    return d.merge(p, on=["owner_id", "_monday"], how="inner", suffixes=("", "_week"))


@metric(report="05", unit="table")
def deals_with_week_activity(deals: pd.DataFrame, panel: pd.DataFrame, *, as_of: pd.Timestamp,
                             amount_col: str | None = AMOUNT_COL) -> pd.DataFrame:
    """Closed deals of the panel's owners, each with the calls and meetings its owner logged in the ISO week it was won or lost.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    panel : a :func:`rep_week_activity` frame.
    as_of : the instant "now".
    amount_col : the money column carried along (None: none).

    Returns
    -------
    One row per deal won or lost in a week of the panel by one of its owners:
    deal_id, owner_id, week, week_start, closed_at, status_at, won (bool), calls,
    meetings, [``amount_col``]; by week and owner.
    """
    as_of = ensure_instant(as_of)
    _require(panel, ("owner_id", "week", "week_start", "calls", "meetings"), "panel")
    _require(deals, ("deal_id", "owner_id"), "deals")
    d = _deal_weeks(deals, panel, as_of)
    d["won"] = d["status_at"] == "won"
    cols = ["deal_id", "owner_id", "week", "week_start", "closed_at", "status_at", "won", "calls",
            "meetings"] + ([amount_col] if amount_col else [])
    return d[cols].sort_values(["week_start", "owner_id", "deal_id"], kind="stable").reset_index(drop=True)


@metric(report="05", unit="money")
def rep_week_outcomes(deals: pd.DataFrame, panel: pd.DataFrame, *, as_of: pd.Timestamp,
                      amount_col: str = AMOUNT_COL) -> pd.DataFrame:
    """Per rep-week, the deals the rep won and lost in that ISO week and the revenue won, next to the week's calls and meetings.

    Returns the ``panel`` rows with closed, won, lost and revenue_won (reporting
    currency, 0 without a win) added.
    """
    as_of = ensure_instant(as_of)
    require_single_currency(deals, amount_col)
    d = deals_with_week_activity(deals, panel, as_of=as_of, amount_col=amount_col)
    g = d.assign(_rev=d[amount_col].where(d["won"], 0.0).fillna(0.0)).groupby(["owner_id", "week"])
    agg = pd.DataFrame({"closed": g.size(), "won": g["won"].sum(), "revenue_won": g["_rev"].sum()})
    out = panel.merge(agg.reset_index(), on=["owner_id", "week"], how="left")
    for col in ("closed", "won"):
        out[col] = out[col].fillna(0).astype("int64")
    out["lost"] = out["closed"] - out["won"]
    out["revenue_won"] = out["revenue_won"].fillna(0.0).astype("float64")
    return out


# ----------------------------------------------------------------------------- call bands
def _band_label(lo: float, hi: float) -> str:
    if lo <= 0:
        return f"<{int(hi)}"
    if math.isinf(hi):
        return f"{int(lo)}+"
    return f"{int(lo)}-{int(hi) - 1}"


def _bounds(edges: Sequence[float]) -> list[tuple[float, float]]:
    e = [float(x) for x in edges]
    if any(b <= a for a, b in zip(e, e[1:])) or (e and e[0] <= 0):
        raise CrmConfigError(f"call band edges must be positive and increasing, not {list(edges)}")
    cuts = [0.0] + e + [math.inf]
    return list(zip(cuts[:-1], cuts[1:]))


def _assign(calls: pd.Series, bounds) -> np.ndarray:
    values = calls.to_numpy(dtype="float64")
    out = np.full(len(values), -1)
    for i, (lo, hi) in enumerate(bounds):
        out[(values >= lo) & (values < hi)] = i
    return out


def _merge_bands(calls: pd.Series, won: pd.Series, bounds, min_deals: int):
    """Drop bands without deals, then merge sparse bands (fewer than ``min_deals`` deals) and
    bands whose deals were all won or all lost (which no logistic model can estimate) with
    their smaller neighbour; a merged band spans both ranges (and any empty range between)."""
    bounds = [b for b in bounds if (_assign(calls, [b]) == 0).any()]  # bands without deals go
    while len(bounds) > 1:
        idx = _assign(calls, bounds)
        n = np.array([(idx == i).sum() for i in range(len(bounds))])
        w = np.array([won.to_numpy()[idx == i].sum() for i in range(len(bounds))])
        bad = [i for i in range(len(bounds)) if n[i] < min_deals or w[i] in (0, n[i])]
        if not bad:
            break
        i = min(bad, key=lambda k: (n[k], k))
        if i == 0:
            j = 1
        elif i == len(bounds) - 1:
            j = i - 1
        else:
            j = i - 1 if n[i - 1] <= n[i + 1] else i + 1
        a, b = sorted((i, j))
        bounds[a:b + 1] = [(bounds[a][0], bounds[b][1])]
    return bounds


@metric(report="05", unit="pct")
def call_band_win_rates(deal_weeks: pd.DataFrame, *, edges: Sequence[float] = DEFAULT_CALL_BAND_EDGES,
                        min_meetings: int = 5, alpha: float = 0.05) -> pd.DataFrame:
    """Win rate of deals by the calls their owner made in the week the deal closed (call bands), split by whether the owner held at least min_meetings meetings that week, with Wilson intervals.

    Parameters
    ----------
    deal_weeks : a :func:`deals_with_week_activity` frame.
    edges : lower bounds of the bands after the first, e.g. ``(50, 75, 100, 126, 150)``
        gives <50, 50-74, 75-99, 100-125, 126-149 and 150+ calls a week.
    min_meetings : the meetings threshold of the split.

    Returns
    -------
    One row per band and meetings group (``fewer`` / ``at least``), bands in order:
    band, calls_from, calls_to (exclusive; inf for the last), meetings, deals, won,
    win_rate, win_rate_low, win_rate_high; then one row per band with meetings
    ``all``.
    """
    _require(deal_weeks, ("calls", "meetings", "won"), "deal_weeks")
    bounds = _bounds(edges)
    idx = _assign(deal_weeks["calls"], bounds)
    many = deal_weeks["meetings"].to_numpy() >= int(min_meetings)
    won = deal_weeks["won"].to_numpy().astype(bool)
    rows = []
    for group, mask in (("fewer", ~many), ("at least", many), ("all", np.ones(len(many), bool))):
        for i, (lo, hi) in enumerate(bounds):
            sel = (idx == i) & mask
            rows.append({"band": _band_label(lo, hi), "calls_from": lo, "calls_to": hi,
                         "meetings": f"{group} {int(min_meetings)}" if group != "all" else "all",
                         "deals": int(sel.sum()), "won": int(won[sel].sum())})
    out = wilson_frame(pd.DataFrame(rows), "won", "deals", alpha=alpha, name="win_rate")
    for col in ("band", "meetings"):
        out[col] = out[col].astype("str")
    return out


@dataclass(frozen=True)
class RateComparison:
    """Two win rates of one call band (weeks with many meetings against the rest), with Fisher's exact test."""

    band: str
    min_meetings: int
    many: Proportion  # deals closed in weeks with at least min_meetings meetings
    fewer: Proportion  # the other deals of the band
    odds_ratio: float  # sample odds ratio (inf or 0 when a cell is empty)
    p_value: float  # two-sided Fisher exact test; NaN when one group is empty

    def to_frame(self) -> pd.DataFrame:
        """Two rows (at least / fewer meetings): band, meetings, deals, won, win_rate, win_rate_low, win_rate_high."""
        rows = [(f"at least {self.min_meetings}", self.many), (f"fewer than {self.min_meetings}", self.fewer)]
        return pd.DataFrame([{"band": self.band, "meetings": m, "deals": p.n, "won": p.successes,
                              "win_rate": p.estimate, "win_rate_low": p.low, "win_rate_high": p.high}
                             for m, p in rows])


@metric(report="05", unit="pct")
def meetings_in_band(deal_weeks: pd.DataFrame, *, calls_from: float, calls_to: float, min_meetings: int = 5,
                     band: str | None = None, alpha: float = 0.05) -> RateComparison:
    """Within one band of weekly calls, the win rate of deals closed in weeks with at least min_meetings meetings against those closed in weeks with fewer, compared with Fisher's exact test.

    Parameters
    ----------
    deal_weeks : a :func:`deals_with_week_activity` frame.
    calls_from, calls_to : the band ``[calls_from, calls_to)`` of weekly calls.
    min_meetings : the meetings threshold.
    band : the band's label (default ``"<from>-<to - 1>"``).

    Returns a :class:`RateComparison`.
    """
    from scipy.stats import fisher_exact

    _require(deal_weeks, ("calls", "meetings", "won"), "deal_weeks")
    inside = (deal_weeks["calls"] >= calls_from) & (deal_weeks["calls"] < calls_to)
    d = deal_weeks.loc[inside]
    many = d["meetings"] >= int(min_meetings)
    won = d["won"].astype(bool)
    a = wilson(int(won[many].sum()), int(many.sum()), alpha=alpha)
    b = wilson(int(won[~many].sum()), int((~many).sum()), alpha=alpha)
    if a.n and b.n:
        table = [[a.successes, a.failures], [b.successes, b.failures]]
        odds, p = fisher_exact(table, alternative="two-sided")
        odds, p = float(odds), float(p)
    else:
        odds, p = math.nan, math.nan
    return RateComparison(band or _band_label(calls_from, calls_to), int(min_meetings), a, b, odds, p)


# ----------------------------------------------------------------------------- activity -> outcome
@dataclass(frozen=True, eq=False)
class ActivityOutcome:
    """How deal outcomes relate to the owner's calls and meetings in the week the deal closed.

    ``bands``: one row per call band used by the models (after merging sparse ones):
    band, calls_from, calls_to, deals, won, win_rate (+ Wilson bounds), rep_weeks,
    revenue_per_rep_week, model_win_rate (the logit's fitted win probability for the
    band with fewer meetings). ``win_model``: logit of won on the bands (reference:
    ``reference_band``) and ``meetings >= k``, clustered by owner. ``within_rep_model``:
    the same with one indicator per owner (each rep compared with their own other
    weeks). ``revenue_model``: least squares of the revenue won per rep-week on the same
    terms. A model that could not be fitted is None with the reason in ``notes``.
    ``best_band_meetings``: inside the best band, deals of weeks with at least
    ``min_meetings`` meetings against the rest (:func:`meetings_in_band`).
    """

    deals: pd.DataFrame = field(repr=False)
    panel: pd.DataFrame = field(repr=False)
    bands: pd.DataFrame
    reference_band: str | None
    best_band: str | None
    meetings_term: str
    min_meetings: int
    owners: tuple[str, ...]
    weeks: int
    win_model: RegressionResult | None
    within_rep_model: RegressionResult | None
    revenue_model: RegressionResult | None
    notes: tuple[str, ...] = ()
    alpha: float = 0.05
    best_band_meetings: RateComparison | None = None

    @property
    def n_deals(self) -> int:
        return int(len(self.deals))

    @property
    def fitted(self) -> bool:
        """Whether the main (win) model could be fitted."""
        return self.win_model is not None

    def band_term(self, band: str) -> str:
        """The model's term name of a band (``"calls 100-125"``)."""
        return f"calls {band}"

    def effects(self) -> pd.DataFrame:
        """The band and meetings effects of every fitted model, one row per model and term.

        Columns: model (``win rate``, ``win rate within reps``, ``revenue per rep-week``),
        term, estimate, low, high, p_value, odds_ratio, odds_ratio_low, odds_ratio_high
        (NaN for the revenue model), n_obs, n_groups.
        """
        rows = []
        for label, res in (("win rate", self.win_model), ("win rate within reps", self.within_rep_model),
                           ("revenue per rep-week", self.revenue_model)):
            if res is None:
                continue
            t = res.terms
            t = t.loc[t["term"].str.startswith("calls ") | (t["term"] == self.meetings_term)].copy()
            t.insert(0, "model", label)
            t["n_obs"] = res.n_obs
            t["n_groups"] = res.n_groups
            rows.append(t)
        cols = ["model", "term", "estimate", "low", "high", "p_value", "odds_ratio", "odds_ratio_low",
                "odds_ratio_high", "n_obs", "n_groups"]
        if not rows:
            return pd.DataFrame(columns=cols)
        out = pd.concat(rows, ignore_index=True)
        for c in cols:
            if c not in out.columns:
                out[c] = np.nan
        return out[cols]

    def to_frame(self) -> pd.DataFrame:
        """The effects table (see :meth:`effects`)."""
        return self.effects()

    def summary(self) -> str:
        parts = [f"{self.n_deals} deals of {len(self.owners)} reps over {self.weeks} weeks; "
                 f"best band {self.best_band}, reference {self.reference_band}"]
        for res in (self.win_model, self.within_rep_model, self.revenue_model):
            if res is not None:
                parts.append(res.summary())
        parts.extend(self.notes)
        return "\n\n".join(parts)


def _design(calls: pd.Series, meetings: pd.Series, bounds, reference: int, min_meetings: int,
            meetings_term: str) -> pd.DataFrame:
    idx = _assign(calls, bounds)
    cols = {}
    for i, (lo, hi) in enumerate(bounds):
        if i != reference:
            cols[f"calls {_band_label(lo, hi)}"] = (idx == i).astype("float64")
    cols[meetings_term] = (meetings.to_numpy() >= min_meetings).astype("float64")
    return pd.DataFrame(cols)


@metric(report="05", unit="ratio")
def activity_outcome(deals: pd.DataFrame, activities: pd.DataFrame, *, as_of: pd.Timestamp,
                     weeks: int = 52, start: pd.Timestamp | None = None, owners: Sequence[str] | None = None,
                     min_weekly_calls: float = 20.0,
                     call_band_edges: Sequence[float] = DEFAULT_CALL_BAND_EDGES, min_meetings: int = 5,
                     min_band_deals: int = 10, amount_col: str = AMOUNT_COL,
                     alpha: float = 0.05, max_within_reps: int | None = MAX_WITHIN_REPS,
                     seed: int = 0) -> ActivityOutcome:
    """Activity and outcome: the odds ratio of winning a deal that a rep closed in an ISO week in which the rep made a given band of calls (against the most common band) or held at least min_meetings meetings, from a logistic regression with intervals and p-values clustered by rep.

    Each won or lost deal of the panel's reps (see :func:`rep_week_activity`) that
    closed in a panel week is one observation; its outcome (won) is related to the
    owner's calls in that week, in bands (``call_band_edges``; bands with fewer than
    ``min_band_deals`` deals, or whose deals were all won or all lost, are merged with a
    neighbour), and to whether the owner completed at least ``min_meetings`` meetings
    that week. The reference band is the one with the most deals; the best band the one
    with the highest fitted win rate. Also fitted: the same model within reps (an
    indicator per rep), and the revenue won per rep-week on the same terms.

    With more reps than ``max_within_reps``, the within-rep model is fitted on the deals
    of a random sample of that many reps (seeded): an indicator per rep for thousands of
    reps would need a design of rows x reps numbers (gigabytes), and sampling whole reps
    keeps the within-rep comparison unbiased, only less precise (its interval says how
    much). None: every rep.

    This describes an association, not a cause: busy weeks can differ in other ways
    (quarter ends, easier deals), as the best rep making twice the calls does not prove
    that calls cause wins.

    Returns an :class:`ActivityOutcome` (models None, with notes, when the data cannot
    support them).
    """
    as_of = ensure_instant(as_of)
    if int(min_meetings) < 1:
        raise CrmConfigError(f"min_meetings must be at least 1, not {min_meetings}")
    require_single_currency(deals, amount_col)
    bounds0 = _bounds(call_band_edges)
    term_m = _MEETINGS_TERM.format(k=int(min_meetings))
    panel = rep_week_activity(activities, as_of=as_of, weeks=weeks, start=start, owners=owners,
                              min_weekly_calls=min_weekly_calls)
    panel = rep_week_outcomes(deals, panel, as_of=as_of, amount_col=amount_col)
    d = deals_with_week_activity(deals, panel, as_of=as_of, amount_col=amount_col)
    owners_used = tuple(sorted(panel["owner_id"].unique()))
    n_weeks = int(panel["week"].nunique())
    notes: list[str] = []
    empty_bands = pd.DataFrame(columns=["band", "calls_from", "calls_to", "deals", "won", "win_rate",
                                        "win_rate_low", "win_rate_high", "rep_weeks",
                                        "revenue_per_rep_week", "model_win_rate"])

    def result(bands, reference, best, win, within, revenue):
        inside = None
        if best is not None:
            row = bands.set_index("band").loc[best]
            inside = meetings_in_band(d, calls_from=row["calls_from"], calls_to=row["calls_to"],
                                      min_meetings=int(min_meetings), band=best, alpha=alpha)
        return ActivityOutcome(d, panel, bands, reference, best, term_m, int(min_meetings), owners_used,
                               n_weeks, win, within, revenue, tuple(notes), float(alpha), inside)

    if len(owners_used) < 2 or len(d) < 2 * min_band_deals:
        notes.append(f"too little data for a model: {len(d)} closed deals of {len(owners_used)} reps "
                     f"who log calls (at least {2 * min_band_deals} deals of 2 reps are needed)")
        return result(empty_bands, None, None, None, None, None)

    nonempty = sum(bool((_assign(d["calls"], [b]) == 0).any()) for b in bounds0)
    bounds = _merge_bands(d["calls"], d["won"], bounds0, int(min_band_deals))
    if len(bounds) < nonempty:
        notes.append(f"{nonempty - len(bounds)} sparse call band(s) merged with a neighbour "
                     f"(each band needs {min_band_deals} deals, some won and some lost)")
    idx = _assign(d["calls"], bounds)
    pidx = _assign(panel["calls"], bounds)
    bands = pd.DataFrame({
        "band": [_band_label(lo, hi) for lo, hi in bounds],
        "calls_from": [lo for lo, _ in bounds], "calls_to": [hi for _, hi in bounds],
        "deals": [int((idx == i).sum()) for i in range(len(bounds))],
        "won": [int(d["won"].to_numpy()[idx == i].sum()) for i in range(len(bounds))],
        "rep_weeks": [int((pidx == i).sum()) for i in range(len(bounds))],
        "revenue_per_rep_week": [float(panel["revenue_won"].to_numpy()[pidx == i].mean())
                                 if (pidx == i).any() else math.nan for i in range(len(bounds))],
    })
    bands = wilson_frame(bands, "won", "deals", alpha=alpha, name="win_rate")
    bands["band"] = bands["band"].astype("str")
    if len(bounds) < 2:
        notes.append("every deal falls in one call band after merging sparse bands: no comparison")
        bands["model_win_rate"] = math.nan
        return result(bands, None, None, None, None, None)
    reference = int(np.argmax(bands["deals"].to_numpy()))
    ref_label = bands.loc[reference, "band"]
    meetings_vary = (d["meetings"] >= min_meetings).nunique() == 2
    design = _design(d["calls"], d["meetings"], bounds, reference, int(min_meetings), term_m)
    if not meetings_vary:
        notes.append(f"no variation in weeks with at least {min_meetings} meetings: the meetings term is "
                     "left out")
        design = design.drop(columns=term_m)
    win = within = revenue = None
    try:
        win = fit_logit(d["won"].rename("won"), design, groups=d["owner_id"], alpha=alpha)
    except NotEstimable as exc:
        notes.append(f"the win-rate model could not be fitted: {exc}")
    try:
        rows = np.ones(len(d), dtype=bool)
        if max_within_reps is not None and len(owners_used) > int(max_within_reps):
            picked = np.random.default_rng(seed).choice(np.array(owners_used, dtype=object),
                                                        int(max_within_reps), replace=False)
            rows = d["owner_id"].isin(pd.Index(picked)).to_numpy()
            notes.append(f"the within-rep model uses the deals of a random sample of {int(max_within_reps):,} "
                         f"of the {len(owners_used):,} reps ({int(rows.sum()):,} deals; seeded)")
        dw = d.loc[rows].reset_index(drop=True)
        fe = pd.get_dummies(dw["owner_id"], prefix="owner", prefix_sep=" ", dtype="float64").iloc[:, 1:]
        within = fit_logit(dw["won"].rename("won"), pd.concat([design.loc[rows].reset_index(drop=True), fe],
                                                              axis=1),
                           groups=dw["owner_id"], alpha=alpha)
    except NotEstimable as exc:
        notes.append(f"the within-rep model could not be fitted: {exc}")
    inside = pidx >= 0
    if not inside.all():
        notes.append(f"{int((~inside).sum())} rep-weeks whose calls fall in a range without closed deals "
                     "are left out of the revenue model")
    weeks_in = panel.loc[inside].reset_index(drop=True)
    pdesign = _design(weeks_in["calls"], weeks_in["meetings"], bounds, reference, int(min_meetings), term_m)
    if term_m not in design.columns:
        pdesign = pdesign.drop(columns=term_m)
    try:
        revenue = fit_ols(weeks_in["revenue_won"].rename("revenue_won"), pdesign, groups=weeks_in["owner_id"],
                          alpha=alpha)
    except NotEstimable as exc:
        notes.append(f"the revenue model could not be fitted: {exc}")
    best = None
    if win is not None:
        coef = [0.0 if i == reference else float(win.effect(f"calls {bands.loc[i, 'band']}")["estimate"])
                for i in range(len(bounds))]
        intercept = float(win.effect(INTERCEPT)["estimate"])
        bands["model_win_rate"] = 1 / (1 + np.exp(-(intercept + np.array(coef))))
        best = str(bands.loc[int(np.argmax(coef)), "band"])
    else:
        bands["model_win_rate"] = math.nan
    return result(bands, ref_label, best, win, within, revenue)
