"""Customer service (report 11): are customers served well?

Conventions shared by every function here:

* ``as_of`` is the instant "now" (timezone-aware); a ticket exists if its ``created_at``
  is strictly before it, and a response, resolution or survey answer counts only if its
  timestamp is strictly before it (a ticket resolved after as_of is still open).
* **Open tickets are censored, never dropped**: a ticket without a first response (or
  resolution) at as_of has waited *at least* ``as_of - created_at``; first-response and
  resolution times are Kaplan–Meier estimates (statsmodels) that use that lower bound,
  so the median and 90th percentile are not flattered by leaving the slowest tickets out.
* **SLA** (service-level agreement): a ticket *meets* its SLA when it was resolved by
  ``sla_due_at``; it *breaches* when it was resolved later, or when it is still open and
  its due date has passed; a ticket still open and not yet due is *pending* and left out
  of the rate (its outcome is unknown). Tickets without ``sla_due_at`` are left out and
  counted. Tickets are assigned to the week (period) they were created in.
* Shares are fractions between 0 and 1 with Wilson intervals (:mod:`crmlib.stats.intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binom, norm
from statsmodels.stats.multitest import multipletests

from ..errors import CrmConfigError
from ..periods import ensure_instant, period_containing
from ..stats.intervals import Proportion, wilson, wilson_frame
from ..stats.spikes import weekly_spikes
from ..stats.survival import kaplan_meier
from .catalogue import metric
from .cycle import _require

__all__ = [
    "NetPromoter", "ticket_flow", "service_times", "same_day_share", "sla_compliance", "sla_breach_alerts",
    "reopened_share", "agent_load", "recurring_categories", "recurring_accounts", "net_promoter_score",
    "csat_share", "satisfaction_trend", "ticket_account_churn", "churn_by_tickets", "tickets_by_customer_value",
]

_TICKET_COLS = ("ticket_id", "created_at")
_HOUR = pd.Timedelta(hours=1)


# ----------------------------------------------------------------------------- helpers
def _tickets_before(tickets: pd.DataFrame, as_of: pd.Timestamp, start=None, end=None) -> pd.DataFrame:
    """Tickets created in [start, end) and before as_of, with response/resolution after as_of blanked."""
    _require(tickets, _TICKET_COLS, "tickets")
    as_of = ensure_instant(as_of)
    t = tickets.loc[tickets["created_at"] < as_of].copy()
    if start is not None:
        t = t.loc[t["created_at"] >= ensure_instant(start, name="start")]
    if end is not None:
        t = t.loc[t["created_at"] < ensure_instant(end, name="end")]
    for col in ("first_response_at", "resolved_at"):
        if col not in t.columns:
            t[col] = pd.Series(pd.NaT, index=t.index, dtype=tickets["created_at"].dtype)
        t[col] = t[col].where(t[col] < as_of)
    return t


def _by(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _week_start(ts: pd.Series) -> pd.Series:
    """Monday (naive date at midnight) of the local ISO week of each timestamp."""
    local = ts.dt.tz_localize(None) if ts.dt.tz is not None else ts
    day = local.dt.normalize()
    return day - pd.to_timedelta(day.dt.day_of_week, unit="D")


def _sla_flags(t: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Adds has_sla, met, breached, pending (booleans) to tickets already cut at as_of."""
    _require(t, ("sla_due_at",), "tickets")
    due = t["sla_due_at"]
    res = t["resolved_at"]
    has = due.notna()
    met = has & res.notna() & (res <= due)
    breached = has & ((res.notna() & (res > due)) | (res.isna() & (due < as_of)))
    out = t.copy()
    out["has_sla"] = has.to_numpy(bool)
    out["met"] = met.to_numpy(bool)
    out["breached"] = breached.to_numpy(bool)
    out["pending"] = (has & ~met & ~breached).to_numpy(bool)
    return out


def _waits(t: pd.DataFrame, done_col: str, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Hours from created_at to ``done_col`` of every ticket (to as_of while still waiting:
    censored) and whether it is done."""
    done = t[done_col].notna().to_numpy()
    stop = t[done_col].where(t[done_col].notna(), as_of)
    return ((stop - t["created_at"]) / _HOUR).to_numpy(dtype="float64").clip(min=0), done


def _km_hours(hours: np.ndarray, done: np.ndarray, alpha: float) -> dict:
    """Kaplan–Meier median (with interval) and 90th percentile of the waits, in hours."""
    if not len(hours):
        return dict(n=0, events=0, censored=0, median=math.nan, median_low=math.nan, median_high=math.nan,
                    p90=math.nan)
    km = kaplan_meier(hours, done, alpha=alpha)
    return dict(n=km.n, events=km.events, censored=km.censored, median=km.median, median_low=km.median_low,
                median_high=km.median_high, p90=km.quantile(0.9))


def _group_positions(frame: pd.DataFrame, by: list[str]):
    """(key, row positions) of each group of ``frame`` by ``by``, in sorted key order (a
    missing key is a group too): thousands of agents' rows picked from arrays computed
    once, not a frame built per agent."""
    if not by:
        yield (), np.arange(len(frame))
        return
    gb = frame.groupby(by, sort=True, dropna=False)
    ids = gb.ngroup().to_numpy()
    keys = gb.size().index
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(len(keys) + 1))
    for i, key in enumerate(keys):
        yield (key if isinstance(key, tuple) else (key,)), order[bounds[i]:bounds[i + 1]]


# ----------------------------------------------------------------------------- volume
@metric(report="11", unit="count")
def ticket_flow(tickets: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp,
                period: str = "week") -> pd.DataFrame:
    """Tickets opened and closed (resolved) in each period from start up to as_of, and the backlog (tickets open) at each period's end.

    A period's end after ``as_of`` is cut at ``as_of`` (the running period shows the
    backlog now). Returns one row per period (oldest first): ``period`` (label),
    ``start``, ``end`` (exclusive), ``opened``, ``closed``, ``backlog``.
    """
    as_of = ensure_instant(as_of)
    t = _tickets_before(tickets, as_of)
    rows = []
    p = period_containing(ensure_instant(start, name="start"), period)
    while p.start < as_of:
        end = min(p.end, as_of)
        opened = int(((t["created_at"] >= p.start) & (t["created_at"] < end)).sum())
        closed = int(((t["resolved_at"] >= p.start) & (t["resolved_at"] < end)).sum())
        backlog = int(((t["created_at"] < end) & (t["resolved_at"].isna() | (t["resolved_at"] >= end))).sum())
        rows.append(dict(period=p.label, start=p.start, end=p.end, opened=opened, closed=closed, backlog=backlog))
        p = p.next()
    return pd.DataFrame(rows, columns=["period", "start", "end", "opened", "closed", "backlog"])


# ----------------------------------------------------------------------------- times
@metric(report="11", unit="hours")
def service_times(tickets: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None, by: str | Sequence[str] | None = None,
                  alpha: float = 0.05) -> pd.DataFrame:
    """First-response time and resolution time (hours from created_at) of tickets created in the window: Kaplan–Meier median with its interval and 90th percentile, tickets still waiting at as_of censored.

    A ticket not yet answered (resolved) at as_of counts as waiting at least
    ``as_of - created_at`` hours (right-censored), so slow open tickets raise the
    estimates instead of vanishing. A percentile the data do not reach (too many
    tickets still open) is NaN.

    Returns one row per group (``by`` columns first): ``tickets``, ``responded``,
    ``first_response_median_h``, ``first_response_low_h``, ``first_response_high_h``,
    ``first_response_p90_h``, ``resolved``, ``open``, ``resolution_median_h``,
    ``resolution_low_h``, ``resolution_high_h``, ``resolution_p90_h``.
    """
    as_of = ensure_instant(as_of)
    cols = _by(by)
    t = _tickets_before(tickets, as_of, start, end)
    _require(t, cols, "tickets")
    rows = []
    fr_hours, fr_done = _waits(t, "first_response_at", as_of)
    rs_hours, rs_done = _waits(t, "resolved_at", as_of)
    for key, at in _group_positions(t, cols):
        fr = _km_hours(fr_hours[at], fr_done[at], alpha)
        rs = _km_hours(rs_hours[at], rs_done[at], alpha)
        rows.append({**dict(zip(cols, key)), "tickets": len(at), "responded": fr["events"],
                     "first_response_median_h": fr["median"], "first_response_low_h": fr["median_low"],
                     "first_response_high_h": fr["median_high"], "first_response_p90_h": fr["p90"],
                     "resolved": rs["events"], "open": rs["censored"], "resolution_median_h": rs["median"],
                     "resolution_low_h": rs["median_low"], "resolution_high_h": rs["median_high"],
                     "resolution_p90_h": rs["p90"]})
    names = ["tickets", "responded", "first_response_median_h", "first_response_low_h", "first_response_high_h",
             "first_response_p90_h", "resolved", "open", "resolution_median_h", "resolution_low_h",
             "resolution_high_h", "resolution_p90_h"]
    return pd.DataFrame(rows, columns=cols + names)


@metric(report="11", unit="pct")
def same_day_share(tickets: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None, by: str | Sequence[str] | None = None,
                   alpha: float = 0.05) -> pd.DataFrame:
    """Share of the tickets created in the window that were resolved on the calendar day they were created (local time), with a Wilson interval.

    Every ticket created before as_of is in the denominator (a ticket still open was not
    closed the same day). Returns one row per group: ``tickets``, ``same_day``,
    ``share``, ``share_low``, ``share_high``.
    """
    as_of = ensure_instant(as_of)
    cols = _by(by)
    t = _tickets_before(tickets, as_of, start, end)
    _require(t, cols, "tickets")
    same = t["resolved_at"].notna() & (t["resolved_at"].dt.normalize() == t["created_at"].dt.normalize())
    t = t.assign(_same=same.to_numpy(bool), _one=1)
    if cols:
        g = t.groupby(cols, sort=True, dropna=False)
        out = pd.DataFrame({"tickets": g["_one"].sum(), "same_day": g["_same"].sum()}).reset_index()
    else:
        out = pd.DataFrame({"tickets": [len(t)], "same_day": [int(t["_same"].sum())]})
    out[["tickets", "same_day"]] = out[["tickets", "same_day"]].astype("int64")
    return wilson_frame(out, "same_day", "tickets", alpha=alpha, name="share")


@metric(report="11", unit="pct")
def sla_compliance(tickets: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None, by: str | Sequence[str] | None = None,
                   alpha: float = 0.05) -> pd.DataFrame:
    """SLA compliance = tickets resolved by sla_due_at / (those + tickets resolved late + tickets still open past sla_due_at), of tickets created in the window, with a Wilson interval.

    Tickets still open and not yet due are ``pending`` (outcome unknown) and tickets
    without ``sla_due_at`` are ``no_sla``; both are counted but left out of the rate.
    ``by="week"`` groups by the Monday of the creation week.

    Returns one row per group: ``tickets``, ``judged`` (met + breached), ``met``,
    ``breached``, ``breached_open`` (open past due), ``pending``, ``no_sla``,
    ``compliance``, ``compliance_low``, ``compliance_high``.
    """
    as_of = ensure_instant(as_of)
    cols = _by(by)
    t = _sla_flags(_tickets_before(tickets, as_of, start, end), as_of)
    if "week" in cols:
        t["week"] = _week_start(t["created_at"])
    _require(t, cols, "tickets")
    t["_one"] = 1
    t["_open_late"] = t["breached"] & t["resolved_at"].isna()
    t["_no_sla"] = ~t["has_sla"]
    agg = dict(tickets=("_one", "sum"), met=("met", "sum"), breached=("breached", "sum"),
               breached_open=("_open_late", "sum"), pending=("pending", "sum"), no_sla=("_no_sla", "sum"))
    if cols:
        out = t.groupby(cols, sort=True, dropna=False).agg(**agg).reset_index()
    else:
        out = pd.DataFrame({k: [int(t[c].sum())] for k, (c, _) in agg.items()})
    num = ["tickets", "met", "breached", "breached_open", "pending", "no_sla"]
    out[num] = out[num].astype("int64")
    out.insert(len(cols) + 1, "judged", out["met"] + out["breached"])
    return wilson_frame(out, "met", "judged", alpha=alpha, name="compliance")


@metric(report="11", unit="flag")
def sla_breach_alerts(tickets: pd.DataFrame, as_of: pd.Timestamp, *, weeks: int = 52, baseline_weeks: int = 8,
                      min_baseline_weeks: int = 4, alpha: float = 0.05, min_gap: float = 0.20,
                      method: str = "holm") -> pd.DataFrame:
    """A week is alerted when its SLA compliance is significantly below the trailing baseline (one-sided binomial test, Holm-corrected over the weeks tested) and at least min_gap below it.

    The rule, for each of the last ``weeks`` ISO weeks (by creation week) up to ``as_of``:

    1. baseline: the judged tickets (met or breached, see :func:`sla_compliance`) of the
       ``baseline_weeks`` weeks just before it, pooled: p0 = met / judged. A week with
       no judged ticket, or whose baseline has fewer than ``min_baseline_weeks`` weeks
       with judged tickets, is not tested.
    2. p-value: P(X <= met) for X ~ Binomial(judged, p0) (scipy), one-sided: only too
       few tickets on time matter.
    3. p-values corrected for the number of weeks tested (``method`` ``"holm"`` or
       ``"bonferroni"``, statsmodels ``multipletests``): across a year of ordinary
       weeks, chance alone alerts with probability below ``alpha``.
    4. alert = corrected p-value < ``alpha`` **and** baseline − compliance >= ``min_gap``
       (a material drop, not a significant slip from 92% to 88%).

    Returns one row per week shown (oldest first): ``week`` (Monday, naive),
    ``judged``, ``met``, ``compliance``, ``baseline_weeks``, ``baseline_judged``,
    ``baseline_met``, ``baseline_compliance``, ``gap`` (baseline − compliance),
    ``p_value``, ``p_adjusted``, ``tested``, ``alert``.
    """
    as_of = ensure_instant(as_of)
    if weeks < 1 or baseline_weeks < 1 or not 0 < alpha < 1:
        raise CrmConfigError("sla_breach_alerts needs weeks >= 1, baseline_weeks >= 1 and 0 < alpha < 1")
    if method not in ("holm", "bonferroni"):
        raise CrmConfigError(f"method must be 'holm' or 'bonferroni', not {method!r}")
    weekly = sla_compliance(tickets, as_of, by="week")
    last = _week_start(pd.Series([as_of - pd.Timedelta(microseconds=1)]))[0]
    first = last - pd.Timedelta(weeks=weeks - 1)
    per = weekly.set_index("week")[["judged", "met"]]
    per_week = pd.DataFrame({"n": per["judged"], "events": per["judged"] - per["met"]})  # breaches
    out = weekly_spikes(per_week, first=first, last=last, baseline_weeks=baseline_weeks,
                        min_baseline_weeks=min_baseline_weeks, alpha=alpha, method=method)
    out = out.assign(judged=out["n"], met=out["n"] - out["events"], compliance=1 - out["share"],
                     baseline_judged=out["baseline_n"], baseline_met=out["baseline_n"] - out["baseline_events"],
                     baseline_compliance=1 - out["baseline_share"], gap=out["share"] - out["baseline_share"])
    out["alert"] = out["tested"] & (out["p_adjusted"] < alpha) & (out["gap"] >= min_gap)
    cols = ["week", "judged", "met", "compliance", "baseline_weeks", "baseline_judged", "baseline_met",
            "baseline_compliance", "gap", "p_value", "p_adjusted", "tested", "alert"]
    return out[cols]


@metric(report="11", unit="pct")
def reopened_share(tickets: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None, by: str | Sequence[str] | None = None,
                   alpha: float = 0.05) -> pd.DataFrame:
    """Share of the resolved tickets created in the window that were reopened after being solved, with a Wilson interval.

    Tickets with an unknown ``reopened`` flag are left out and counted in ``unknown``.
    Returns one row per group: ``resolved``, ``unknown``, ``reopened``, ``share``,
    ``share_low``, ``share_high``.
    """
    as_of = ensure_instant(as_of)
    cols = _by(by)
    t = _tickets_before(tickets, as_of, start, end)
    _require(t, ["reopened", *cols], "tickets")
    t = t.loc[t["resolved_at"].notna()]
    flag = t["reopened"].astype("boolean")
    t = t.assign(_known=flag.notna().to_numpy(bool), _re=flag.fillna(False).to_numpy(bool))
    t["_unknown"] = ~t["_known"]
    agg = dict(resolved=("_known", "sum"), unknown=("_unknown", "sum"), reopened=("_re", "sum"))
    if cols:
        out = t.groupby(cols, sort=True, dropna=False).agg(**agg).reset_index()
    else:
        out = pd.DataFrame({k: [int(t[c].sum())] for k, (c, _) in agg.items()})
    out[["resolved", "unknown", "reopened"]] = out[["resolved", "unknown", "reopened"]].astype("int64")
    return wilson_frame(out, "reopened", "resolved", alpha=alpha, name="share")


@metric(report="11", unit="table")
def agent_load(tickets: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
               end: pd.Timestamp | None = None, users: pd.DataFrame | None = None,
               alpha: float = 0.05) -> pd.DataFrame:
    """Per agent: tickets created in the window assigned to them, tickets they have open at as_of (any age), censored median first-response and resolution hours, and SLA compliance.

    Returns one row per agent (most tickets first): ``agent_id`` (``name`` when
    ``users`` is given), ``tickets``, ``open_now``, ``first_response_median_h``,
    ``resolution_median_h``, ``resolution_p90_h``, ``judged``, ``met``, ``compliance``,
    ``compliance_low``, ``compliance_high``.
    """
    as_of = ensure_instant(as_of)
    _require(tickets, ("agent_id",), "tickets")
    times = service_times(tickets, as_of, start=start, end=end, by="agent_id", alpha=alpha)
    sla = sla_compliance(tickets, as_of, start=start, end=end, by="agent_id", alpha=alpha)
    everything = _tickets_before(tickets, as_of)
    open_now = everything.loc[everything["resolved_at"].isna()].groupby("agent_id").size()
    out = times[["agent_id", "tickets", "first_response_median_h", "resolution_median_h", "resolution_p90_h"]]
    out = out.merge(sla[["agent_id", "judged", "met", "compliance", "compliance_low", "compliance_high"]],
                    on="agent_id", how="left")
    out.insert(2, "open_now", out["agent_id"].map(open_now).fillna(0).astype("int64"))
    out = out.sort_values(["tickets", "agent_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    if users is not None and "name" in users.columns:
        names = users.drop_duplicates("user_id").set_index("user_id")["name"]
        out.insert(1, "name", out["agent_id"].map(names).astype("str"))
    return out


# ----------------------------------------------------------------------------- recurring issues
@metric(report="11", unit="flag")
def recurring_accounts(tickets: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
                       min_tickets: int = 3, alpha: float = 0.05, method: str = "holm") -> pd.DataFrame:
    """Account-category pairs where one account opened the same category of ticket at least min_tickets times, far more than its ticket count and the category's overall share explain (one-sided binomial test, Holm-corrected over the pairs tested).

    For an account with n tickets in the window, k of them in category c whose share of
    all tickets is p_c: p-value = P(X >= k) for X ~ Binomial(n, p_c). Pairs with
    ``k >= min_tickets`` are tested; ``recurring`` = corrected p-value < ``alpha``.

    Returns one row per tested pair (most significant first): ``account_id``,
    ``category``, ``tickets`` (k), ``account_tickets`` (n), ``category_share`` (p_c),
    ``expected`` (n·p_c), ``first_ticket``, ``last_ticket``, ``p_value``,
    ``p_adjusted``, ``recurring``.
    """
    as_of = ensure_instant(as_of)
    if method not in ("holm", "bonferroni"):
        raise CrmConfigError(f"method must be 'holm' or 'bonferroni', not {method!r}")
    t = _tickets_before(tickets, as_of, start)
    _require(t, ("account_id", "category"), "tickets")
    t = t.loc[t["account_id"].notna() & t["category"].notna()]
    cols = ["account_id", "category", "tickets", "account_tickets", "category_share", "expected", "first_ticket",
            "last_ticket", "p_value", "p_adjusted", "recurring"]
    if not len(t):
        return pd.DataFrame(columns=cols)
    share = t["category"].value_counts(normalize=True)
    per_acc = t.groupby("account_id").size()
    g = t.groupby(["account_id", "category"], sort=True)
    out = pd.DataFrame({"tickets": g.size(), "first_ticket": g["created_at"].min(),
                        "last_ticket": g["created_at"].max()}).reset_index()
    out = out.loc[out["tickets"] >= int(min_tickets)].copy()
    out["account_tickets"] = out["account_id"].map(per_acc).astype("int64")
    out["category_share"] = out["category"].map(share).astype("float64")
    out["expected"] = out["account_tickets"] * out["category_share"]
    out["p_value"] = binom.sf(out["tickets"] - 1, out["account_tickets"], out["category_share"])
    out["p_adjusted"] = multipletests(out["p_value"], method=method)[1] if len(out) else []
    out["recurring"] = out["p_adjusted"] < alpha
    out = out.sort_values(["p_value", "account_id"], kind="stable").reset_index(drop=True)
    return out[cols]


@metric(report="11", unit="count")
def recurring_categories(pairs: pd.DataFrame, tickets: pd.DataFrame, as_of: pd.Timestamp, *,
                         start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per ticket category: tickets, accounts, and how many accounts keep reopening it (recurring pairs from recurring_accounts) with the share of the category's tickets they make up.

    ``pairs`` is the result of :func:`recurring_accounts` on the same window. Returns one
    row per category (most recurring accounts first): ``category``, ``tickets``,
    ``accounts``, ``recurring_accounts``, ``recurring_tickets``, ``recurring_share``.
    """
    as_of = ensure_instant(as_of)
    t = _tickets_before(tickets, as_of, start)
    _require(t, ("account_id", "category"), "tickets")
    t = t.loc[t["category"].notna()]
    g = t.groupby("category")
    out = pd.DataFrame({"tickets": g.size(), "accounts": g["account_id"].nunique()})
    rec = pairs.loc[pairs["recurring"].astype(bool)] if len(pairs) else pairs
    out["recurring_accounts"] = rec.groupby("category").size().reindex(out.index).fillna(0).astype("int64") \
        if len(rec) else 0
    out["recurring_tickets"] = rec.groupby("category")["tickets"].sum().reindex(out.index).fillna(0).astype("int64") \
        if len(rec) else 0
    out["recurring_share"] = out["recurring_tickets"] / out["tickets"]
    out = out.reset_index()
    return out.sort_values(["recurring_accounts", "recurring_tickets", "category"], ascending=[False, False, True],
                           kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- satisfaction
@dataclass(frozen=True)
class NetPromoter:
    """Net Promoter Score: promoters (9-10) minus detractors (0-6), as shares and in points.

    The interval of the difference of two multinomial shares uses the standard variance
    ``Var(p+ - p-) = (p+ + p- - (p+ - p-)^2) / n`` (normal approximation); the shares
    themselves carry Wilson intervals.
    """

    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float  # in points, -100 to 100
    low: float
    high: float
    promoter_share: Proportion
    detractor_share: Proportion
    alpha: float = 0.05

    @property
    def level(self) -> float:
        return 1 - self.alpha

    @property
    def se(self) -> float:
        """Standard error of the NPS in points."""
        if self.n == 0:
            return math.nan
        p, d = self.promoters / self.n, self.detractors / self.n
        return 100 * math.sqrt(max(p + d - (p - d) ** 2, 0.0) / self.n)

    def to_frame(self) -> pd.DataFrame:
        """One row: answers, promoters, passives, detractors, shares with bounds, nps with bounds."""
        p, d = self.promoter_share, self.detractor_share
        return pd.DataFrame([{"answers": self.n, "promoters": self.promoters, "passives": self.passives,
                              "detractors": self.detractors, "promoter_share": p.estimate,
                              "promoter_low": p.low, "promoter_high": p.high, "detractor_share": d.estimate,
                              "detractor_low": d.low, "detractor_high": d.high, "nps": self.nps,
                              "nps_low": self.low, "nps_high": self.high}])

    def summary(self) -> str:
        if self.n == 0:
            return "no NPS answers (n = 0)"
        return (f"NPS {self.nps:+.0f} ({self.level:.0%} CI {self.low:+.0f} to {self.high:+.0f}), "
                f"{self.n:,} answers")

    def __str__(self) -> str:
        return self.summary()


def _answers(surveys: pd.DataFrame, kind: str, as_of, start, end) -> pd.Series:
    _require(surveys, ("kind", "score", "answered_at"), "surveys")
    as_of = ensure_instant(as_of)
    s = surveys.loc[(surveys["kind"].astype("str").str.lower() == kind) & (surveys["answered_at"] < as_of)]
    if start is not None:
        s = s.loc[s["answered_at"] >= ensure_instant(start, name="start")]
    if end is not None:
        s = s.loc[s["answered_at"] < ensure_instant(end, name="end")]
    return s["score"].dropna().astype("float64")


def _nps_from_scores(scores: pd.Series, alpha: float) -> NetPromoter:
    n = int(len(scores))
    pro, det = int((scores >= 9).sum()), int((scores <= 6).sum())
    if n == 0:
        return NetPromoter(0, 0, 0, 0, math.nan, math.nan, math.nan, wilson(0, 0, alpha=alpha),
                           wilson(0, 0, alpha=alpha), alpha)
    p, d = pro / n, det / n
    est = p - d
    se = math.sqrt(max(p + d - est ** 2, 0.0) / n)
    z = norm.ppf(1 - alpha / 2)
    low, high = max(est - z * se, -1.0), min(est + z * se, 1.0)
    return NetPromoter(n, pro, n - pro - det, det, 100 * est, 100 * low, 100 * high,
                       wilson(pro, n, alpha=alpha), wilson(det, n, alpha=alpha), alpha)


@metric(report="11", unit="score")
def net_promoter_score(surveys: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
                       end: pd.Timestamp | None = None, alpha: float = 0.05) -> NetPromoter:
    """NPS = share of promoters (score 9-10) minus share of detractors (0-6) among NPS answers given in the window, in points (-100 to 100), with a confidence interval for a difference of multinomial shares.

    Returns a :class:`NetPromoter` (``nps``, ``low``, ``high`` in points; Wilson
    intervals for the promoter and detractor shares).
    """
    return _nps_from_scores(_answers(surveys, "nps", as_of, start, end), alpha)


@metric(report="11", unit="pct")
def csat_share(surveys: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
               end: pd.Timestamp | None = None, alpha: float = 0.05) -> Proportion:
    """CSAT = share of customer-satisfaction answers (1-5 scale) given in the window that scored 4 or 5, with a Wilson interval."""
    scores = _answers(surveys, "csat", as_of, start, end)
    return wilson(int((scores >= 4).sum()), int(len(scores)), alpha=alpha)


@metric(report="11", unit="score")
def satisfaction_trend(surveys: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp,
                       period: str = "month", alpha: float = 0.05) -> pd.DataFrame:
    """NPS (points, with interval) and CSAT share of 4-5 (with Wilson interval) per period from start up to as_of.

    Returns one row per period (oldest first): ``period``, ``start``, ``nps_answers``,
    ``nps``, ``nps_low``, ``nps_high``, ``csat_answers``, ``csat``, ``csat_low``, ``csat_high``.
    """
    as_of = ensure_instant(as_of)
    rows = []
    p = period_containing(ensure_instant(start, name="start"), period)
    while p.start < as_of:
        n = net_promoter_score(surveys, as_of, start=p.start, end=p.end, alpha=alpha)
        c = csat_share(surveys, as_of, start=p.start, end=p.end, alpha=alpha)
        rows.append(dict(period=p.label, start=p.start, nps_answers=n.n, nps=n.nps, nps_low=n.low, nps_high=n.high,
                         csat_answers=c.n, csat=c.estimate, csat_low=c.low, csat_high=c.high))
        p = p.next()
    return pd.DataFrame(rows, columns=["period", "start", "nps_answers", "nps", "nps_low", "nps_high",
                                       "csat_answers", "csat", "csat_low", "csat_high"])


# ----------------------------------------------------------------------------- churn and value
@metric(report="11", unit="flag")
def ticket_account_churn(tickets: pd.DataFrame, orders: pd.DataFrame, as_of: pd.Timestamp, *,
                         inactive_days: int = 180) -> pd.DataFrame:
    """Per customer (an account with an order before as_of − inactive_days): whether it churned (no order in the last inactive_days before as_of) and how many tickets it opened.

    Returns one row per such customer: ``account_id``, ``last_order``, ``tickets``
    (created before as_of), ``last_ticket``, ``has_tickets``, ``churned``.
    """
    as_of = ensure_instant(as_of)
    _require(orders, ("account_id", "ordered_at"), "orders")
    cut = as_of - pd.Timedelta(days=int(inactive_days))
    o = orders.loc[orders["account_id"].notna() & (orders["ordered_at"] < as_of)]
    first = o.groupby("account_id")["ordered_at"].min()
    last = o.groupby("account_id")["ordered_at"].max()
    cust = first.index[first < cut]
    t = _tickets_before(tickets, as_of)
    t = t.loc[t["account_id"].notna()] if "account_id" in t.columns else t.iloc[:0]
    n_t = t.groupby("account_id").size()
    last_t = t.groupby("account_id")["created_at"].max()
    out = pd.DataFrame({"account_id": pd.Series(cust, dtype="str")})
    out["last_order"] = out["account_id"].map(last)
    out["tickets"] = out["account_id"].map(n_t).fillna(0).astype("int64")
    out["last_ticket"] = out["account_id"].map(last_t)
    out["has_tickets"] = out["tickets"] > 0
    out["churned"] = out["last_order"] < cut
    return out.sort_values("account_id", kind="stable").reset_index(drop=True)


@metric(report="11", unit="pct")
def churn_by_tickets(customers: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Churn share of customers with and without tickets (from ticket_account_churn), each with a Wilson interval.

    Returns two rows, ``with tickets`` and ``without tickets``: ``group``,
    ``customers``, ``churned``, ``share``, ``share_low``, ``share_high``.
    """
    rows = []
    for label, mask in (("with tickets", customers["has_tickets"].astype(bool)),
                        ("without tickets", ~customers["has_tickets"].astype(bool))):
        rows.append(dict(group=label, customers=int(mask.sum()),
                         churned=int(customers.loc[mask, "churned"].astype(bool).sum())))
    return wilson_frame(pd.DataFrame(rows), "churned", "customers", alpha=alpha, name="share")


@metric(report="11", unit="table")
def tickets_by_customer_value(tickets: pd.DataFrame, as_of: pd.Timestamp, *,
                              value: pd.DataFrame | None = None, value_col: str = "revenue",
                              open_only: bool = True, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Tickets (open at as_of by default) ordered by their customer's value, most valuable customers first, then by SLA due date.

    ``value`` is report 09's per-customer table
    (:func:`crmlib.metrics.customers.customer_profitability`: ``account_id``,
    ``value_col``, ``rank``, ``abc_class``); without it the tickets are ordered by due
    date alone and the value columns are missing. ``open_only=False`` lists every
    ticket created since ``start`` (None: all history) instead of the open ones.

    Returns one row per ticket: ``ticket_id``, ``account_id``, ``customer_rank``,
    ``abc_class``, ``customer_value``, ``created_at``, ``priority``, ``category``,
    ``status``, ``sla_due_at``, ``sla`` (met, breached, pending or no SLA), ``overdue``
    (still open past its due date), ``age_days`` (since created).
    """
    as_of = ensure_instant(as_of)
    t = _tickets_before(tickets, as_of, None if open_only else start)
    if open_only:
        t = t.loc[t["resolved_at"].isna()]
    t = t.copy()
    for col in ("account_id", "priority", "category", "status"):
        if col not in t.columns:
            t[col] = pd.Series(pd.NA, index=t.index, dtype="str")
    if "sla_due_at" not in t.columns:
        t["sla_due_at"] = pd.Series(pd.NaT, index=t.index, dtype=t["created_at"].dtype)
    if value is not None and len(value):
        _require(value, ("account_id", value_col), "customer value")
        v = value.loc[value["account_id"].notna()].drop_duplicates("account_id").set_index("account_id")
        t["customer_value"] = t["account_id"].map(v[value_col]).astype("float64")
        t["customer_rank"] = t["account_id"].map(v["rank"]).astype("Int64") if "rank" in v.columns else pd.NA
        t["abc_class"] = t["account_id"].map(v["abc_class"]).astype("str") if "abc_class" in v.columns else None
    else:
        t["customer_value"] = np.nan
        t["customer_rank"] = pd.array([pd.NA] * len(t), dtype="Int64")
        t["abc_class"] = pd.Series(pd.NA, index=t.index, dtype="str")
    flags = _sla_flags(t, as_of)
    t["sla"] = np.select([flags["met"], flags["breached"], flags["pending"]], ["met", "breached", "pending"],
                         default="no SLA")
    t["overdue"] = (t["resolved_at"].isna() & (t["sla_due_at"] < as_of)).fillna(False).astype(bool)
    t["age_days"] = (as_of - t["created_at"]) / pd.Timedelta(days=1)
    t = t.sort_values(["customer_value", "sla_due_at", "ticket_id"], ascending=[False, True, True],
                      na_position="last", kind="stable")
    cols = ["ticket_id", "account_id", "customer_rank", "abc_class", "customer_value", "created_at", "priority",
            "category", "status", "sla_due_at", "sla", "overdue", "age_days"]
    return t[cols].reset_index(drop=True)
