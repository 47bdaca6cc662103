"""Lead response and calls (report 06): how fast new leads are contacted, which calls we miss.

Conventions shared by every function here:

* ``as_of`` is the instant "now" (a timezone-aware ``Timestamp``, see
  :func:`crmlib.periods.as_of_instant`); an activity or a lead counts only if it was
  created strictly before it. Time of day, weekday, day and week are read in the
  timezone of the timestamps (the run's timezone), weeks are ISO weeks (Monday start).
* **Speed to lead** of a lead is the time from its ``created_at`` to the first outbound
  call or email linked to it by ``lead_id`` and created at or after it (and before
  ``as_of``). A lead without such a touch is *not answered yet*: it is never dropped,
  it counts as not answered within every time limit it has already outlived, and it is
  right-censored at ``as_of`` in the Kaplan-Meier distribution (statsmodels
  ``SurvfuncRight``). A lead counts for a limit (say 1 hour) only once it is at least
  that old at ``as_of``, so recent leads neither flatter nor spoil a share.
* Leads that came in before the CRM logged any outbound call or email linked to a lead
  (the first such touch in the export) cannot be judged: they are kept, flagged
  ``judged = False`` and counted, but left out of the distribution and the shares.
* A **missed call** is an inbound call whose outcome is one of ``missed_outcomes``
  (case-insensitive); an inbound call without an outcome is neither answered nor
  missed and is counted apart (``unknown_outcome``). A **callback** is the first
  outbound call created after the missed call that shares its lead, deal or account,
  within ``callback_within_days``; a missed call younger than that window without a
  callback yet is *pending*, not failed.
* Shares are fractions 0-1 with Wilson intervals (``*_low``, ``*_high``); times are in
  minutes (``*_minutes``) or hours (``*_hours``).
* Group keys that are missing (a lead without owner) form their own group.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency
from statsmodels.duration.survfunc import SurvfuncRight

from ..errors import CrmConfigError, CrmDataError
from ..lookup import isin
from ..periods import ensure_instant
from ..pushdown.info import first_logged, require_rows
from ..pushdown.scan import is_scan
from ..stats.intervals import Proportion, wilson, wilson_frame
from ..stats.spikes import weekly_spikes
from .catalogue import metric
from .cycle import _require

__all__ = [
    "LIMITS_MIN", "MISSED_OUTCOMES", "WEEKDAYS", "first_touches", "speed_to_lead", "response_within",
    "response_curve", "inbound_calls", "missed_call_rate", "missed_call_share", "callback_summary",
    "missed_call_alerts", "call_heatmap", "call_handling", "ShareDifference", "share_difference",
    "LEAD_COLUMNS",
]

#: the lead columns first_touches reads (report 06 reads only these of a large leads table)
LEAD_COLUMNS = ("lead_id", "created_at", "owner_id", "source", "campaign_id", "status")

#: the time limits of speed to lead, in minutes: 5 minutes, 1 hour, 1 day
LIMITS_MIN = (5, 60, 1440)
#: outcomes of an inbound call that mean nobody answered it
MISSED_OUTCOMES = ("missed", "no_answer", "unanswered", "abandoned", "voicemail")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TOUCH_TYPES = ("call", "email")
_MIN = 60.0


# ----------------------------------------------------------------------------- speed to lead
@metric(report="06", unit="table")
def first_touches(leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp, *,
                  start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                  types: Sequence[str] = TOUCH_TYPES) -> pd.DataFrame:
    """Each lead's first outbound call or email linked by lead_id and created at or after the lead, before as_of.

    Parameters
    ----------
    leads : the canonical ``leads`` table.
    activities : the canonical ``activities`` table.
    as_of : the instant "now"; leads and activities created at or after it do not exist yet.
    start, end : keep leads created in ``[start, end)`` (None: no bound; ``end`` is
        capped at ``as_of``). Touches are looked for up to ``as_of`` whatever ``end`` is.
    types : activity types that count as a touch (default call and email).

    Returns
    -------
    One row per lead: ``lead_id``, ``created_at``, ``owner_id``, ``source`` (and
    ``campaign_id``, ``status`` when present), ``first_touch_at``, ``first_touch_type``,
    ``touched`` (a touch exists), ``minutes`` (time to the touch, NaN when untouched),
    ``age_minutes`` (time from creation to ``as_of``), ``observed_minutes`` (minutes
    when touched, else the age: the censored time) and ``judged`` (the lead came in
    after the first logged touch of any lead, so the CRM was logging touches). Ordered by
    ``created_at``.
    """
    as_of = ensure_instant(as_of)
    _require(leads, ("lead_id", "created_at"), "leads")
    _require(activities, ("lead_id", "type", "direction", "created_at"), "activities")
    keep = [c for c in LEAD_COLUMNS if c in leads.columns]
    require_rows(activities, start, what="speed to lead")
    lead = leads.loc[leads["created_at"] < as_of, keep]
    if start is not None:
        lead = lead.loc[lead["created_at"] >= ensure_instant(start, name="start")]
    if end is not None:
        lead = lead.loc[lead["created_at"] < ensure_instant(end, name="end")]
    if lead["lead_id"].duplicated().any():
        dup = lead.loc[lead["lead_id"].duplicated(), "lead_id"].head(3).tolist()
        raise CrmDataError(f"leads has duplicated lead_id values (e.g. {', '.join(map(str, dup))}); "
                           "load the export with crmlib so the audit quarantines them",
                           table="leads", column="lead_id")

    touches = _touches(activities, as_of, types)
    logging_start = first_logged(activities, touches["created_at"].min() if len(touches) else pd.NaT,
                                 as_of=as_of, types=types, direction="outbound", with_lead=True)
    # the first touch at or after the lead's own creation, for the leads of the window
    m = touches.merge(lead[["lead_id", "created_at"]].rename(columns={"created_at": "_lead_at"}), on="lead_id",
                      how="inner")
    m = m.loc[m["created_at"] >= m["_lead_at"]]
    m = m.sort_values(["lead_id", "created_at"], kind="stable").drop_duplicates("lead_id")
    first = m.set_index("lead_id")

    out = lead.copy()
    for col in ("owner_id", "source"):
        if col not in out.columns:
            out[col] = pd.Series(pd.NA, index=out.index, dtype="str")
    found = first.reindex(out["lead_id"].to_numpy())
    out["first_touch_at"] = pd.Series(found["created_at"].array,
                                      index=out.index).astype(out["created_at"].dtype)
    out["first_touch_type"] = pd.Series(found["type"].array, index=out.index).astype("str")
    out["touched"] = out["first_touch_at"].notna()
    out["minutes"] = (out["first_touch_at"] - out["created_at"]).dt.total_seconds() / _MIN
    out["age_minutes"] = (as_of - out["created_at"]).dt.total_seconds() / _MIN
    out["observed_minutes"] = out["minutes"].where(out["touched"], out["age_minutes"])
    if pd.isna(logging_start):
        out["judged"] = False
    else:
        out["judged"] = out["created_at"] >= logging_start
    return out.sort_values("created_at", kind="stable").reset_index(drop=True)


@metric(report="06", unit="pct")
def response_within(touches: pd.DataFrame, *, by: str | Sequence[str] | None = None,
                    limits_min: Sequence[float] = LIMITS_MIN, alpha: float = 0.05) -> pd.DataFrame:
    """Share of leads first contacted within each time limit, untouched leads counting as not answered, among judged leads at least that old at as_of.

    Parameters
    ----------
    touches : a :func:`first_touches` frame.
    by : grouping column(s) of ``touches`` (e.g. ``"owner_id"``, ``"source"``), or None.
    limits_min : the time limits in minutes (default 5 minutes, 1 hour, 1 day).
    alpha : 1 - confidence level of the Wilson intervals.

    Returns
    -------
    One row per group and limit: the ``by`` columns, ``limit`` (label, e.g. ``"1 h"``),
    ``limit_minutes``, ``leads`` (judged leads at least ``limit`` old), ``answered``
    (contacted within the limit), ``share``, ``share_low``, ``share_high``.
    """
    by = _by(by, touches)
    judged = touches.loc[touches["judged"].astype(bool)]
    parts = []
    for limit in _limits(limits_min):
        old = judged.loc[judged["age_minutes"] >= limit]
        hit = old["touched"] & (old["minutes"] <= limit)
        frame = old.assign(_n=1, _hit=hit.astype("int64"))
        if by:
            g = frame.groupby(by, dropna=False, sort=True)
            part = pd.DataFrame({"leads": g["_n"].sum(), "answered": g["_hit"].sum()}).reset_index()
        else:
            part = pd.DataFrame({"leads": [len(frame)], "answered": [int(frame["_hit"].sum())]})
        part.insert(len(by), "limit", _limit_label(limit))
        part.insert(len(by) + 1, "limit_minutes", float(limit))
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out[["leads", "answered"]] = out[["leads", "answered"]].astype("int64")
    out = wilson_frame(out, "answered", "leads", alpha=alpha, name="share")
    order = by + ["limit_minutes"] if by else ["limit_minutes"]
    return out.sort_values(order, kind="stable").reset_index(drop=True)


@metric(report="06", unit="hours")
def speed_to_lead(touches: pd.DataFrame, *, by: str | Sequence[str] | None = None,
                  limits_min: Sequence[float] = LIMITS_MIN, users: pd.DataFrame | None = None,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Time from a lead's creation to its first outbound call or email: Kaplan-Meier median and quartiles with untouched leads censored at as_of, and the shares contacted within each limit.

    Parameters
    ----------
    touches : a :func:`first_touches` frame.
    by : grouping column(s), e.g. ``"owner_id"`` or ``"source"``; None: one row for all.
    limits_min : the time limits of the shares, in minutes.
    users : the ``users`` table; with ``by="owner_id"`` adds the owner's ``name``.
    alpha : 1 - confidence level of the median's interval.

    Returns
    -------
    One row per group: the ``by`` columns, ``leads`` (all in the frame), ``judged``
    (leads the CRM could have logged a touch for), ``touched`` and ``not_answered``
    (judged leads with / without a touch by ``as_of``), ``median_minutes`` with
    ``median_low``/``median_high`` (its confidence interval; NaN when not reached),
    ``q1_minutes``, ``q3_minutes`` (NaN when more than that share of leads is still
    untouched), and one share column per limit (``within_5_min``, ``within_1_h``,
    ``within_1_day``) as in :func:`response_within`. Groups ordered by judged leads,
    most first.
    """
    by = _by(by, touches)
    limits = _limits(limits_min)
    cols = ["leads", "judged", "touched", "not_answered", "median_minutes", "median_low", "median_high",
            "q1_minutes", "q3_minutes"]
    if by:
        g = touches.groupby(by, dropna=False, sort=True)
        out = g.apply(_lead_summary, alpha=alpha, include_groups=False)
        out = out.reset_index()[by + cols] if len(out) else pd.DataFrame(columns=by + cols)
    else:
        out = pd.DataFrame([_lead_summary(touches, alpha=alpha)])[cols]
    within = response_within(touches, by=by or None, limits_min=limits)
    within["_col"] = "within_" + within["limit"].str.replace(" ", "_")
    if by:
        wide = within.pivot_table(index=by, columns="_col", values="share", dropna=False, sort=False,
                                  observed=True)
        wide = wide.reset_index()
        out = out.merge(wide, on=by, how="left")
    else:
        for col, share in zip(within["_col"], within["share"], strict=True):
            out[col] = share
    out[cols[:4]] = out[cols[:4]].astype("int64")
    order = ["within_" + _limit_label(x).replace(" ", "_") for x in limits]
    for col in order:
        if col not in out.columns:
            out[col] = np.nan
    out = out[by + cols + order]
    if by:
        out = _with_names(out, by, users)
        out = out.sort_values("judged", ascending=False, kind="stable")
    return out.reset_index(drop=True)


@metric(report="06", unit="pct")
def response_curve(touches: pd.DataFrame) -> pd.DataFrame:
    """Kaplan-Meier share of judged leads contacted by each time since their creation, untouched leads censored at as_of.

    Returns one row per distinct contact time: ``minutes`` and ``share_contacted``
    (1 - the Kaplan-Meier survival), starting with ``(0, 0)``.
    """
    j = touches.loc[touches["judged"].astype(bool)]
    if not len(j) or not j["touched"].any():
        return pd.DataFrame({"minutes": [0.0], "share_contacted": [0.0]})
    sf = SurvfuncRight(j["observed_minutes"].to_numpy(dtype="float64").clip(min=0),
                       j["touched"].to_numpy(dtype="int64"))
    times = np.concatenate([[0.0], sf.surv_times])
    share = np.concatenate([[0.0], 1 - sf.surv_prob])
    frame = pd.DataFrame({"minutes": times, "share_contacted": share})
    return frame.drop_duplicates("minutes", keep="last").reset_index(drop=True)


# ----------------------------------------------------------------------------- calls
@metric(report="06", unit="table")
def inbound_calls(activities: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None, missed_outcomes: Sequence[str] = MISSED_OUTCOMES,
                  callback_within_days: float = 7.0) -> pd.DataFrame:
    """Each inbound call before as_of: whether it was missed, and for a missed call whether and how fast an outbound call to the same lead, deal or account followed.

    Parameters
    ----------
    activities : the canonical ``activities`` table.
    as_of : the instant "now".
    start, end : keep inbound calls created in ``[start, end)`` (callbacks are looked
        for up to ``as_of`` whatever ``end`` is).
    missed_outcomes : outcomes (case-insensitive) that mean nobody answered.
    callback_within_days : a callback must come within this many days of the missed call.

    Returns
    -------
    One row per inbound call: ``activity_id``, ``created_at``, ``owner_id``,
    ``account_id``, ``lead_id``, ``deal_id``, ``outcome``, ``duration_s``, ``missed``
    (nullable boolean: NA when the outcome is empty), ``week`` (Monday of its ISO week,
    a naive date), ``day`` (naive date), ``weekday`` (Mon..Sun, ordered), ``hour`` (0-23),
    ``callback_at`` and ``callback_minutes`` (the first later outbound call sharing a
    lead, deal or account, any time before ``as_of``), ``callback_status``: ``"called
    back"`` (within the window), ``"no callback"`` (the window passed without one),
    ``"pending"`` (the window has not passed yet), NA for calls not missed.
    """
    as_of = ensure_instant(as_of)
    if callback_within_days <= 0:
        raise CrmConfigError(f"callback_within_days must be positive, not {callback_within_days}")
    if start is not None:
        require_rows(activities, start, what="inbound calls")
    cols = ["activity_id", "created_at", "owner_id", "account_id", "lead_id", "deal_id", "outcome",
            "duration_s"]
    inb = _calls(activities, as_of, columns=cols, direction="inbound",
                 since=None if start is None else ensure_instant(start, name="start"),
                 until=None if end is None else ensure_instant(end, name="end"))
    out = inb.drop(columns="_dir").reset_index(drop=True)  # callbacks are matched back by row label
    outcome = out["outcome"].astype("str").str.strip().str.lower()
    missed_set = {_norm(x) for x in missed_outcomes}
    known = out["outcome"].notna() & (outcome != "")
    out["missed"] = pd.array(np.where(known, outcome.isin(missed_set), False), dtype="boolean")
    out.loc[~known, "missed"] = pd.NA
    out = _add_calendar(out)

    # callbacks: the first outbound call after the missed call sharing any of its keys
    is_missed = out["missed"].fillna(False).astype(bool)
    hits = [pd.Series(pd.NaT, index=out.index, dtype=out["created_at"].dtype)]
    for key in ("lead_id", "deal_id", "account_id"):
        left = out.loc[is_missed & out[key].notna(), ["created_at", key]]
        if not len(left):
            continue
        right = _calls(activities, as_of, columns=["created_at", key], direction="outbound",
                       key=(key, left[key].unique()))[["created_at", key]]  # the outbound calls on those keys
        if not len(right):
            continue
        left = left.reset_index().sort_values("created_at", kind="stable")
        right = right.rename(columns={"created_at": "_cb"}).sort_values("_cb", kind="stable")
        hit = pd.merge_asof(left, right, left_on="created_at", right_on="_cb", by=key,
                            direction="forward", allow_exact_matches=False).set_index("index")["_cb"]
        hits.append(hit.reindex(out.index))
    first = pd.concat(hits, axis=1).min(axis=1)
    out["callback_at"] = first.astype(out["created_at"].dtype)
    out["callback_minutes"] = (out["callback_at"] - out["created_at"]).dt.total_seconds() / _MIN
    window = callback_within_days * 1440.0
    age = (as_of - out["created_at"]).dt.total_seconds() / _MIN
    status = np.where(out["callback_minutes"] <= window, "called back",
                      np.where(age >= window, "no callback", "pending"))
    out["callback_status"] = pd.Series(status, index=out.index, dtype="str").where(is_missed)
    return out.sort_values("created_at", kind="stable").reset_index(drop=True)


@metric(report="06", unit="pct")
def missed_call_rate(calls: pd.DataFrame, *, start: pd.Timestamp | None = None,
                     end: pd.Timestamp | None = None, alpha: float = 0.05) -> Proportion:
    """Missed inbound calls divided by inbound calls with a known outcome.

    ``calls`` is an :func:`inbound_calls` frame; ``start``/``end`` keep the calls created
    in ``[start, end)`` (e.g. a report period). Returns a
    :class:`~crmlib.stats.intervals.Proportion` (successes = missed calls); no calls
    gives NaN, never 0%.
    """
    require_rows(calls, start, what="the missed-call rate")
    if start is not None:
        calls = calls.loc[calls["created_at"] >= ensure_instant(start, name="start")]
    if end is not None:
        calls = calls.loc[calls["created_at"] < ensure_instant(end, name="end")]
    known = calls["missed"].dropna().astype(bool)
    return wilson(int(known.sum()), len(known), alpha=alpha)


@metric(report="06", unit="pct")
def missed_call_share(calls: pd.DataFrame, *, by: str | Sequence[str] | None = None,
                      users: pd.DataFrame | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Share of inbound calls with a known outcome that were missed, per group.

    Parameters
    ----------
    calls : an :func:`inbound_calls` frame.
    by : grouping column(s): ``"weekday"``, ``"hour"``, ``"day"``, ``"week"``,
        ``"owner_id"``, ... or None for one row.
    users : with ``by="owner_id"``, adds the owner's ``name``.

    Returns
    -------
    The ``by`` columns, ``calls`` (known outcome), ``missed``, ``share``, ``share_low``,
    ``share_high`` and ``unknown_outcome`` (inbound calls without an outcome, left out);
    calendar groups in calendar order, other groups by calls, most first.
    """
    by = _by(by, calls)
    frame = calls.assign(_known=calls["missed"].notna().astype("int64"),
                         _missed=calls["missed"].fillna(False).astype("int64"))
    if by:
        g = frame.groupby(by, dropna=False, sort=True, observed=True)
        out = pd.DataFrame({"calls": g["_known"].sum(), "missed": g["_missed"].sum(),
                            "unknown_outcome": g.size() - g["_known"].sum()}).reset_index()
    else:
        out = pd.DataFrame({"calls": [int(frame["_known"].sum())], "missed": [int(frame["_missed"].sum())],
                            "unknown_outcome": [int(len(frame) - frame["_known"].sum())]})
    out[["calls", "missed", "unknown_outcome"]] = out[["calls", "missed", "unknown_outcome"]].astype("int64")
    out = wilson_frame(out, "missed", "calls", alpha=alpha, name="share")
    out = out[by + ["calls", "missed", "share", "share_low", "share_high", "unknown_outcome"]]
    if by and not set(by) <= {"weekday", "hour", "day", "week"}:
        out = _with_names(out, by, users).sort_values("calls", ascending=False, kind="stable")
    return out.reset_index(drop=True)


@metric(report="06", unit="pct")
def callback_summary(calls: pd.DataFrame, *, by: str | Sequence[str] | None = None,
                     users: pd.DataFrame | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Share of missed inbound calls called back within the window, among those whose window has passed or that were called back, and how fast.

    Parameters
    ----------
    calls : an :func:`inbound_calls` frame.
    by : grouping column(s), e.g. ``"owner_id"``; None for one row.
    users : with ``by="owner_id"``, adds the owner's ``name``.

    Returns
    -------
    The ``by`` columns, ``missed``, ``called_back``, ``no_callback``, ``pending`` (window
    still open, left out of the share), ``callback_share`` = called_back / (called_back
    + no_callback) with ``callback_share_low``/``_high``, and ``median_callback_minutes``,
    ``q1_callback_minutes``, ``q3_callback_minutes`` among calls called back.
    """
    by = _by(by, calls)
    m = calls.loc[calls["missed"].fillna(False).astype(bool)].copy()
    m["_cb"] = (m["callback_status"] == "called back").astype("int64")
    m["_no"] = (m["callback_status"] == "no callback").astype("int64")
    m["_pend"] = (m["callback_status"] == "pending").astype("int64")
    m["_mins"] = m["callback_minutes"].where(m["_cb"] == 1)
    if by:
        g = m.groupby(by, dropna=False, sort=True, observed=True)
        out = pd.DataFrame({"missed": g.size(), "called_back": g["_cb"].sum(), "no_callback": g["_no"].sum(),
                            "pending": g["_pend"].sum(), "median_callback_minutes": g["_mins"].median(),
                            "q1_callback_minutes": g["_mins"].quantile(0.25),
                            "q3_callback_minutes": g["_mins"].quantile(0.75)}).reset_index()
    else:
        out = pd.DataFrame({"missed": [len(m)], "called_back": [int(m["_cb"].sum())],
                            "no_callback": [int(m["_no"].sum())], "pending": [int(m["_pend"].sum())],
                            "median_callback_minutes": [m["_mins"].median()],
                            "q1_callback_minutes": [m["_mins"].quantile(0.25)],
                            "q3_callback_minutes": [m["_mins"].quantile(0.75)]})
    counts = ["missed", "called_back", "no_callback", "pending"]
    out[counts] = out[counts].astype("int64")
    out["_decided"] = out["called_back"] + out["no_callback"]
    out = wilson_frame(out, "called_back", "_decided", alpha=alpha, name="callback_share")
    out = out[by + counts + ["callback_share", "callback_share_low", "callback_share_high",
                             "median_callback_minutes", "q1_callback_minutes", "q3_callback_minutes"]]
    if by:
        out = _with_names(out, by, users).sort_values("missed", ascending=False, kind="stable")
    return out.reset_index(drop=True)


@metric(report="06", unit="flag")
def missed_call_alerts(calls: pd.DataFrame, as_of: pd.Timestamp, *, weeks: int = 52,
                       baseline_weeks: int = 8, min_baseline_weeks: int = 4, alpha: float = 0.05,
                       min_share: float = 0.25, method: str = "holm") -> pd.DataFrame:
    """A week is alerted when its missed-call share is significantly above the trailing baseline (one-sided binomial test, corrected for the number of weeks tested) and at least min_share.

    The rule, for each of the last ``weeks`` ISO weeks up to ``as_of``:

    1. baseline: all inbound calls (known outcome) of the ``baseline_weeks`` calendar
       weeks just before it, pooled: p0 = missed / calls. A week whose baseline has
       fewer than ``min_baseline_weeks`` weeks with calls, or that has no calls itself,
       is not tested (it cannot alert).
    2. p-value: P(X >= missed) for X ~ Binomial(calls, p0) (scipy), one-sided: only
       too many missed calls matter.
    3. the p-values of the tested weeks are corrected for multiple testing (``method``:
       ``"holm"`` or ``"bonferroni"``, statsmodels ``multipletests``), so across a year
       of weeks chance alone raises an alert with probability below ``alpha``.
    4. alert = corrected p-value < ``alpha`` **and** share >= ``min_share`` (a material
       size: a significant rise from 10% to 13% is not worth a front-page alert).

    Parameters
    ----------
    calls : an :func:`inbound_calls` frame that reaches back at least ``baseline_weeks``
        before the first week tested (pass it without ``start``).
    as_of : the instant "now"; the week containing the last instant before it is the last.

    Returns
    -------
    One row per week tested or shown (oldest first): ``week`` (Monday, naive date),
    ``calls``, ``missed``, ``share``, ``baseline_weeks`` (weeks with calls in the
    baseline), ``baseline_calls``, ``baseline_missed``, ``baseline_share``, ``p_value``,
    ``p_adjusted``, ``tested``, ``alert``.
    """
    as_of = ensure_instant(as_of)
    if weeks < 1 or baseline_weeks < 1 or not 0 < alpha < 1:
        raise CrmConfigError("missed_call_alerts needs weeks >= 1, baseline_weeks >= 1 and 0 < alpha < 1")
    if method not in ("holm", "bonferroni"):
        raise CrmConfigError(f"method must be 'holm' or 'bonferroni', not {method!r}")
    last = _week_start(pd.Series([as_of - pd.Timedelta(microseconds=1)]))[0]
    first = last - pd.Timedelta(weeks=weeks - 1)
    require_rows(calls, (first - pd.Timedelta(weeks=baseline_weeks)).tz_localize(
        as_of.tz, ambiguous=True, nonexistent="shift_forward"), what="the missed-call alerts")
    known = calls.loc[calls["missed"].notna()]
    per_week = pd.DataFrame({"n": known.groupby("week").size(),
                             "events": known["missed"].astype(bool).groupby(known["week"]).sum()})
    out = weekly_spikes(per_week, first=first, last=last, baseline_weeks=baseline_weeks,
                        min_baseline_weeks=min_baseline_weeks, alpha=alpha, method=method)
    out = out.rename(columns={"n": "calls", "events": "missed", "baseline_n": "baseline_calls",
                              "baseline_events": "baseline_missed"})
    out["alert"] = out["tested"] & (out["p_adjusted"] < alpha) & (out["share"] >= min_share)
    cols = ["week", "calls", "missed", "share", "baseline_weeks", "baseline_calls", "baseline_missed",
            "baseline_share", "p_value", "p_adjusted", "tested", "alert"]
    return out[cols]


@metric(report="06", unit="number")
def call_heatmap(activities: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp,
                 end: pd.Timestamp | None = None, direction: str | None = None,
                 per_week: bool = True) -> pd.DataFrame:
    """Calls per weekday and hour of the day in the window, on average per week (the phone load).

    Parameters
    ----------
    activities : the canonical ``activities`` table.
    as_of : the instant "now" (also the default ``end``).
    start : the window's first instant (required: the average needs a known length).
    direction : ``"inbound"``, ``"outbound"`` or None for every call.
    per_week : divide the counts by the number of weeks in the window (else raw counts).
        The window starts at ``start`` or at local midnight of the day of the first call
        in the export, whichever is later: weeks before calls were logged are not
        averaged in as weeks without calls.

    Returns
    -------
    A 7 x 24 frame: index ``weekday`` (Mon..Sun), columns the hours 0-23 (in the
    timestamps' timezone), values calls per week (or counts).
    """
    as_of = ensure_instant(as_of)
    start = ensure_instant(start, name="start")
    end = as_of if end is None else min(ensure_instant(end, name="end"), as_of)
    if end <= start:
        raise CrmConfigError(f"call_heatmap needs start ({start}) before end ({end})")
    require_rows(activities, start, what="the calls of a window")
    start = _logged_from(activities, start, as_of)
    calls = _calls(activities, as_of, columns=["created_at"], since=start, until=end)
    if direction is not None:
        calls = calls.loc[calls["_dir"] == str(direction).lower()]
    cal = _add_calendar(calls[["created_at"]])
    grid = pd.crosstab(cal["weekday"], cal["hour"]) if len(cal) else pd.DataFrame()
    grid = grid.reindex(index=pd.CategoricalIndex(WEEKDAYS, categories=WEEKDAYS, ordered=True,
                                                  name="weekday"),
                        columns=pd.RangeIndex(24, name="hour"), fill_value=0).astype("float64")
    if per_week:
        grid = grid / ((end - start).total_seconds() / (7 * 86400.0))
    return grid


@metric(report="06", unit="hours")
def call_handling(activities: pd.DataFrame, as_of: pd.Timestamp, *, start: pd.Timestamp,
                  end: pd.Timestamp | None = None, by: str | Sequence[str] = "owner_id",
                  users: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per rep: calls, average talk time of connected calls, and handling time (the logged call time) per week.

    A call is *connected* when it has a positive ``duration_s``; voicemails left count as
    connected when the CRM logs their length. Handling time is the sum of logged call
    durations: the export holds no wrap-up (after-call work) time, so handling time here
    is talk time only.

    Parameters
    ----------
    activities : the canonical ``activities`` table.
    as_of : the instant "now" (also the default ``end``).
    start : the window's first instant (required: hours per week need its length); when
        the first call in the export is later, the window starts on that call's day (weeks
        before calls were logged do not count as weeks without calls).
    by : grouping column(s) of activities (default ``"owner_id"``).
    users : adds the owner's ``name`` when grouping by ``owner_id``.

    Returns
    -------
    The ``by`` columns, ``calls``, ``inbound``, ``outbound``, ``connected``,
    ``avg_talk_minutes`` and ``median_talk_minutes`` (connected calls),
    ``handling_hours`` (total), ``weeks`` (the window's length) and
    ``handling_hours_per_week``; most handling first.
    """
    as_of = ensure_instant(as_of)
    start = ensure_instant(start, name="start")
    end = as_of if end is None else min(ensure_instant(end, name="end"), as_of)
    if end <= start:
        raise CrmConfigError(f"call_handling needs start ({start}) before end ({end})")
    by = [by] if isinstance(by, str) else list(by)
    require_rows(activities, start, what="the calls of a window")
    start = _logged_from(activities, start, as_of)
    calls = _calls(activities, as_of, columns=[*by, "created_at", "duration_s"], since=start, until=end)
    missing = [c for c in by if c not in calls.columns]
    if missing:
        raise CrmDataError(f"activities has no column(s) {', '.join(missing)} to group calls by",
                           table="activities", column=missing[0])
    dur = calls["duration_s"].astype("float64")
    if (dur < 0).any():
        raise CrmDataError("activities has calls with a negative duration_s; the audit should quarantine "
                           "them", table="activities", column="duration_s")
    frame = calls[by].assign(_n=1, _in=(calls["_dir"] == "inbound").astype("int64"),
                             _out=(calls["_dir"] == "outbound").astype("int64"),
                             _talk=dur.where(dur > 0), _conn=(dur > 0).astype("int64"))
    g = frame.groupby(by, dropna=False, sort=True)
    out = pd.DataFrame({"calls": g["_n"].sum(), "inbound": g["_in"].sum(), "outbound": g["_out"].sum(),
                        "connected": g["_conn"].sum(), "avg_talk_minutes": g["_talk"].mean() / _MIN,
                        "median_talk_minutes": g["_talk"].median() / _MIN,
                        "handling_hours": g["_talk"].sum() / 3600.0}).reset_index()
    out[["calls", "inbound", "outbound", "connected"]] = out[
        ["calls", "inbound", "outbound", "connected"]].astype("int64")
    out["weeks"] = (end - start).total_seconds() / (7 * 86400.0)
    out["handling_hours_per_week"] = out["handling_hours"] / out["weeks"]
    out = _with_names(out, by, users)
    return out.sort_values("handling_hours", ascending=False, kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- group differences
@dataclass(frozen=True, eq=False)
class ShareDifference:
    """A chi-square test of whether a share differs between groups (the groups tested, in ``table``)."""

    table: pd.DataFrame  # the groups with at least min_n observations: their columns as given
    successes: str
    n: str
    statistic: float
    dof: int
    p_value: float
    min_n: int
    left_out: int  # groups with fewer than min_n observations (not tested)

    @property
    def groups(self) -> int:
        return len(self.table)

    def summary(self) -> str:
        """One line: the test, its statistic and p-value."""
        if np.isnan(self.p_value):
            return f"not testable: {self.groups} group(s) with at least {self.min_n} observations"
        return (f"chi-square test of equal shares across {self.groups} groups: chi2 = {self.statistic:.2f}, "
                f"dof = {self.dof}, p = {self.p_value:.3g}")


@metric(report="06", unit="number")
def share_difference(table: pd.DataFrame, *, successes: str, n: str, min_n: int = 10) -> ShareDifference:
    """Chi-square test (scipy chi2_contingency) of whether a share, such as leads contacted within 1 h or calls missed, is the same in every group with at least min_n observations.

    Parameters
    ----------
    table : one row per group with a successes column and a count column, e.g. a
        :func:`missed_call_share` table (``successes="missed", n="calls"``) or
        :func:`response_within` rows of one limit (``successes="answered", n="leads"``).
    min_n : groups with fewer observations are left out (counted in ``left_out``).

    Returns
    -------
    A :class:`ShareDifference`; ``p_value`` is NaN when fewer than two groups qualify or
    nothing (or everything) succeeded in all of them.
    """
    for col in (successes, n):
        if col not in table.columns:
            raise CrmDataError(f"share_difference: no column {col!r} "
                               f"(columns: {', '.join(map(str, table.columns))})")
    ok = table[n] >= min_n
    tested = table.loc[ok].reset_index(drop=True)
    s = tested[successes].to_numpy(dtype="float64")
    m = tested[n].to_numpy(dtype="float64")
    stat, dof, p = np.nan, 0, np.nan
    if len(tested) >= 2 and 0 < s.sum() < m.sum():
        stat, p, dof, _ = chi2_contingency(np.column_stack([s, m - s]), correction=False)
    return ShareDifference(tested, successes, n, float(stat), int(dof), float(p), int(min_n),
                           int((~ok).sum()))


# ----------------------------------------------------------------------------- helpers
def _by(by, frame: pd.DataFrame) -> list[str]:
    if by is None:
        return []
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise CrmDataError(f"no column(s) {', '.join(missing)} to group by (columns: "
                           f"{', '.join(map(str, frame.columns))})", column=missing[0])
    return by


def _limits(limits_min) -> list[float]:
    limits = sorted({float(x) for x in limits_min})
    if not limits or limits[0] <= 0:
        raise CrmConfigError(f"time limits must be positive minutes, not {list(limits_min)}")
    return limits


def _limit_label(minutes: float) -> str:
    """``5 min``, ``1 h``, ``1 day``, ``2 days``."""
    m = float(minutes)
    if m % 1440 == 0:
        d = int(m // 1440)
        return f"{d} day" if d == 1 else f"{d} days"
    if m % 60 == 0:
        return f"{int(m // 60)} h"
    return f"{m:g} min"


def _touches(activities: pd.DataFrame, as_of: pd.Timestamp, types) -> pd.DataFrame:
    """Outbound activities of ``types`` linked to a lead, before ``as_of``: lead_id, created_at, type (trimmed, lower case)."""
    a = activities
    wanted = {_norm(t) for t in types}
    type_norm = _normalised(_values(a, "type"))
    spellings = [v for v, norm in type_norm.items() if norm in wanted]
    outbound = _spelled(_values(a, "direction"), "outbound")
    if is_scan(a):  # a large snapshot's window: DuckDB picks the rows
        from ..pushdown.deal_rows import picked_rows

        got = picked_rows(a, columns=["lead_id", "created_at", "type"], before=as_of,
                          where={"type": spellings, "direction": outbound}, present=["lead_id"])
        return got.assign(type=got["type"].map(type_norm).astype("str"))
    keep = (a["type"].isin(spellings) & a["direction"].isin(outbound) & a["lead_id"].notna()
            & (a["created_at"] < as_of))
    rows = np.flatnonzero(keep.to_numpy(dtype=bool))
    return _pick(a, rows, ["lead_id", "created_at"]).assign(type=a["type"].iloc[rows].map(type_norm).astype("str"))


_NOT_FOR_CALLS = ("due_at", "completed_at")


def _calls(activities: pd.DataFrame, as_of: pd.Timestamp, *, columns: Sequence[str] | None = None,
           direction: str | None = None, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None,
           key: tuple[str, Sequence] | None = None) -> pd.DataFrame:
    """The calls created before ``as_of`` with ``columns`` (default: all but the planned times) and ``_dir``.

    ``direction`` keeps the calls of that direction only; ``since`` and ``until`` those
    created in ``[since, until)``; ``key`` = (column, values) those whose column holds one
    of the values. Rows and columns are taken in one step, so a large activities table is
    not copied whole first; a scan of a large snapshot's activities has DuckDB pick them.
    """
    _require(activities, ("activity_id", "type", "direction", "created_at", "outcome", "duration_s"),
             "activities")
    wanted = activities.columns if columns is None else columns
    cols = [c for c in wanted if c in activities.columns and c not in _NOT_FOR_CALLS]
    is_call = _spelled(_values(activities, "type"), "call")
    ways = None if direction is None else _spelled(_values(activities, "direction"), direction)
    if is_scan(activities):
        from ..pushdown.deal_rows import picked_rows

        where = {"type": is_call, **({} if ways is None else {"direction": ways}),
                 **({} if key is None else {key[0]: pd.Series(key[1]).dropna()})}
        got = picked_rows(activities, columns=list(dict.fromkeys([*cols, "direction"])), before=as_of,
                          where=where, since=since, until=until)
        raw = got["direction"]
        picked = got[cols]
    else:
        keep = activities["type"].isin(is_call) & (activities["created_at"] < as_of)
        if since is not None:
            keep &= activities["created_at"] >= since
        if until is not None:
            keep &= activities["created_at"] < until
        if ways is not None:  # by the distinct spellings: no per-row strings are made
            keep &= activities["direction"].isin(ways)
        if key is not None:
            keep &= isin(activities[key[0]], key[1])
        rows = np.flatnonzero(keep.to_numpy(dtype=bool))
        raw = activities["direction"].iloc[rows]
        picked = _pick(activities, rows, cols)
    codes, values = pd.factorize(raw)  # each distinct spelling once; NA: code -1
    norm = [_norm(v) for v in values]
    kinds = sorted(set(norm))
    to_kind = np.array([kinds.index(n) for n in norm] + [-1], dtype="int64")  # code -1 picks the last: NA
    direction_kind = pd.Categorical.from_codes(to_kind[codes], categories=kinds)
    return picked.assign(_dir=direction_kind)


def _values(activities, column: str) -> pd.Series:
    """A column's values, or for a scan its distinct values (all that spelling lookups need)."""
    if is_scan(activities):
        from ..pushdown.activity import distinct

        return pd.Series(distinct(activities, column), dtype="str")
    return activities[column]


def _first_call(activities, as_of: pd.Timestamp):
    """When the first call before ``as_of`` was logged (NaT without one)."""
    if is_scan(activities):  # DuckDB's minimum, not the calls themselves
        from ..pushdown.activity import first_time

        return first_time(activities, before=as_of, where={"type": _spelled(_values(activities, "type"), "call")})
    return _calls(activities, as_of, columns=["created_at"])["created_at"].min()


def _pick(frame: pd.DataFrame, rows: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """The rows at positions ``rows`` and the named columns, in one take (labels of a repeated
    index do not matter; the frame's attrs are kept)."""
    return frame.iloc[rows, [frame.columns.get_loc(c) for c in columns]]


def _normalised(values: pd.Series) -> dict:
    """Each distinct value trimmed and in lower case (worked out once per value, not per row)."""
    return {v: _norm(v) for v in values.unique() if not pd.isna(v)}


def _norm(value) -> str:
    """A CRM picklist value as compared: trimmed, in lower case (" Call" and "CALL" are "call")."""
    return str(value).strip().lower()


def _spelled(values: pd.Series, word: str) -> list:
    """The distinct values that read ``word`` once trimmed and in lower case ("Call ", "CALL")."""
    return [v for v, norm in _normalised(values).items() if norm == word]


def _logged_from(activities, start: pd.Timestamp, as_of=None) -> pd.Timestamp:
    """``start``, or local midnight of the first logged call's day when that is later."""
    first = _first_call(activities, as_of)
    if pd.isna(first):
        return start
    first = first_logged(activities, first, as_of=as_of, types=("call",)).normalize()
    return max(start, first)


def _week_start(created: pd.Series) -> pd.Series:
    """Monday of the ISO week of each timestamp, as a naive date in the timestamps' timezone."""
    local = created.dt.tz_localize(None) if created.dt.tz is not None else created
    day = local.dt.normalize()
    return (day - pd.to_timedelta(day.dt.day_of_week, unit="D")).astype("datetime64[us]")


def _add_calendar(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    created = out["created_at"]
    local = created.dt.tz_localize(None) if created.dt.tz is not None else created
    out["week"] = _week_start(created)
    out["day"] = local.dt.normalize().astype("datetime64[us]")
    out["weekday"] = pd.Categorical.from_codes(local.dt.day_of_week.to_numpy(), categories=list(WEEKDAYS),
                                               ordered=True) if len(out) else \
        pd.Categorical([], categories=list(WEEKDAYS), ordered=True)
    out["hour"] = local.dt.hour.astype("int64")
    return out


def _lead_summary(group: pd.DataFrame, *, alpha: float) -> pd.Series:
    j = group.loc[group["judged"].astype(bool)]
    row = dict(leads=len(group), judged=len(j), touched=int(j["touched"].sum()),
               not_answered=int((~j["touched"].astype(bool)).sum()))
    row.update(_km_quantiles(j, alpha=alpha))
    return pd.Series(row)


def _km_quantiles(judged: pd.DataFrame, *, alpha: float) -> dict:
    """Kaplan-Meier quartiles of the time to first touch (smallest time with survival <= 1 - p)."""
    empty = dict(median_minutes=np.nan, median_low=np.nan, median_high=np.nan, q1_minutes=np.nan,
                 q3_minutes=np.nan)
    if not len(judged) or not judged["touched"].any():
        return empty
    time = judged["observed_minutes"].to_numpy(dtype="float64").clip(min=0)
    status = judged["touched"].to_numpy(dtype="int64")
    sf = SurvfuncRight(time, status)
    out = dict(empty)
    for name, p in (("q1_minutes", 0.25), ("median_minutes", 0.5), ("q3_minutes", 0.75)):
        reached = np.flatnonzero(sf.surv_prob <= 1 - p + 1e-12)
        out[name] = float(sf.surv_times[reached[0]]) if len(reached) else np.nan
    if status.sum() >= 2:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = sf.quantile_ci(0.5, alpha=alpha)
        out["median_low"] = float(lo) if np.isfinite(lo) else np.nan
        out["median_high"] = float(hi) if np.isfinite(hi) else np.nan
    return out


def _with_names(out: pd.DataFrame, by: list[str], users: pd.DataFrame | None) -> pd.DataFrame:
    if users is None or "owner_id" not in by or "name" not in users.columns:
        return out
    _require(users, ("user_id", "name"), "users")
    names = users.drop_duplicates("user_id").set_index("user_id")["name"]
    pos = list(out.columns).index("owner_id") + 1
    out = out.copy()
    out.insert(pos, "name", out["owner_id"].map(names).astype("str"))
    return out
