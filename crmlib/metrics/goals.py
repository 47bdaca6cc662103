"""Goal progress (report 08): actual against target per owner and team, pace and run-rate projection.

Conventions shared by every function here:

* ``targets`` is the canonical targets table: ``owner_id`` (an owner's target) or
  ``team`` (a team's target, owner_id empty), ``metric``, ``period_start``,
  ``period_end`` (the **last day included**) and ``target``. Periods are calendar days,
  taken in the timezone of ``as_of``. A loaded date column that was shifted by a
  timezone conversion (``2026-09-01 00:00 UTC`` shown as ``2026-08-31 20:00`` in New
  York) is rounded to the nearest midnight, so the day written in the export is used
  (for timezone differences under 12 hours).
* ``as_of`` is the instant "now": an event counts when it happened in the period and
  strictly before ``as_of``.
* **Actuals** (:data:`METRICS`), each summed over the target's owner, or for a team
  target over every user whose ``users.team`` is the team:

  - ``revenue``: ``amount_col`` (the reporting-currency amount, see
    :func:`crmlib.money.to_reporting`) of deals won (status won, dated by
    ``closed_at``) in the period, by deal owner;
  - ``won_deals``: the number of those deals;
  - ``calls``: call activities logged (``created_at``) in the period, whatever their
    outcome (a dialled call that reached voicemail was still made);
  - ``meetings``: meeting activities completed (``completed_at`` before as_of), dated
    by ``due_at`` (when the meeting was held; ``completed_at`` when it has no due_at);
  - ``new_leads``: leads created in the period, by lead owner.

  A metric whose source table is not given (or which is not one of these five) has
  no actual (missing, never 0), and its status says so.
* **Working days**: Monday to Friday minus the public holidays of ``country`` (the
  ``holidays`` package via :func:`crmlib.periods.working_days`); ``country=None``
  counts weekdays only. A working day counts as elapsed once it has ended (the part of
  the as_of day already gone counts as a fraction when as_of is not a midnight).
* ``share_elapsed`` = working days elapsed / working days in the period;
  **projection** (run rate) = actual / share_elapsed: where the period ends if the pace
  so far holds; ``projected_attainment`` = projection / target. The sources' example: a
  month of 22 working days plans 1/22 of the target a day (``plan_per_day``);
  ``required_per_day`` is what is still missing divided by the working days left.
* **Status** (thresholds are parameters): ``reached`` (actual >= target), ``missed``
  (period over, target not reached), ``too early`` (less than ``min_elapsed_share`` of
  the working days gone: a run rate over a few days says little), ``off pace``
  (projected_attainment < ``off_pace_below``, default 0.8: the run rate misses the
  target by more than a fifth), ``at risk`` (below ``on_pace_from``, default 0.95),
  else ``on pace``; ``no data`` when the actual is unknown, ``not started`` before
  the first working day.
* ``projection_low`` / ``projection_high``: a 95% interval for the projection that
  treats the events so far (deals won, calls, ...) as a Poisson process at a constant
  rate per working day (exact Garwood bounds on the rate); for revenue the event rate
  is scaled by the average won deal so far. It says how much a run rate built on a few
  events can move; it is not a forecast model (report 07 has those).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..errors import CrmConfigError, CrmDataError
from ..periods import _as_date, ensure_instant, working_days
from ..pushdown.info import pushdown_info
from ..pushdown.scan import is_scan
from .catalogue import metric

__all__ = ["METRICS", "STATUSES", "ACTIVITY_COLUMNS", "LEAD_COLUMNS", "GoalSummary", "goal_actuals",
           "goal_progress", "goal_summary", "attainment_history", "off_pace"]

#: the metrics a target can have, in the order reports show them
METRICS = ("revenue", "won_deals", "calls", "meetings", "new_leads")
#: every status goal_progress gives, best to worst
STATUSES = ("reached", "on pace", "at risk", "off pace", "missed", "too early", "not started",
            "no working days", "no data")
AMOUNT_COL = "amount_rep"
ACTIVITY_COLUMNS = ("type", "owner_id", "created_at", "due_at", "completed_at")  # what calls and meetings read
LEAD_COLUMNS = ("owner_id", "created_at")  # what new_leads reads
_LEVELS = ("team", "owner", "none")
_DAY = pd.Timedelta(days=1)
_PLACE_LIMIT = 2**62  # (keys x microseconds spanned) up to which _sum_windows places events without ranking times


# ----------------------------------------------------------------------------- actuals
@metric(report="08", unit="table")
def goal_actuals(targets: pd.DataFrame, *, as_of: pd.Timestamp, deals: pd.DataFrame | None = None,
                 activities: pd.DataFrame | None = None, leads: pd.DataFrame | None = None,
                 users: pd.DataFrame | None = None, amount_col: str = AMOUNT_COL) -> pd.DataFrame:
    """The actual achieved against each target: the target's metric summed over its owner (or team) from the period's first day until its last day or as_of, whichever comes first.

    Parameters
    ----------
    targets : the canonical ``targets`` table.
    as_of : the instant "now"; events at or after it do not count.
    deals : deals with ``amount_col`` (revenue, won_deals).
    activities : the activities table (calls, meetings).
    leads : the leads table (new_leads).
    users : the users table: maps owners to teams (team targets) and gives names.
    amount_col : the money column of deals, by default the reporting-currency ``amount_rep``.

    Returns
    -------
    One row per target row, in the targets' order: level (``owner``, ``team``, or
    ``none`` for a row with neither), owner_id, name, team (the owner's team from
    users when the row has none), metric, period_start and period_end (local midnights
    of the first and the last day included), target, actual (float; missing when it
    cannot be measured), events (the number of deals, calls, meetings or leads
    counted) and missing_amount (won deals without an amount: they add nothing to a
    revenue actual and are counted here so that nothing is left out unseen).

    Raises
    ------
    CrmDataError : targets lacks a needed column, or a row ends before it starts.
    """
    as_of = ensure_instant(as_of)
    frame = _normalise_targets(targets, as_of.tz, users)
    frame["actual"] = np.nan
    frame["events"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    frame["missing_amount"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    now = np.datetime64(as_of.tz_convert("UTC").tz_localize(None))
    counted_until = np.minimum(frame["_stop"].to_numpy(), now)
    owner_team = _owner_teams(users)
    for name in frame["metric"].dropna().unique():
        ev = _events(str(name), as_of=as_of, deals=deals, activities=activities, leads=leads,
                     amount_col=amount_col)
        if ev is None:
            continue
        rows = frame.index[frame["metric"] == name]
        owners = rows[frame.loc[rows, "level"] == "owner"]
        _sum_windows(frame, owners, ev, key=frame.loc[owners, "owner_id"], key_col="owner_id",
                     until=counted_until)
        teams = rows[frame.loc[rows, "level"] == "team"]
        if len(teams) and owner_team is not None:
            ev = ev.assign(team=ev["owner_id"].map(owner_team))
            known = teams[frame.loc[teams, "team"].isin(set(owner_team.dropna()))]
            _sum_windows(frame, known, ev, key=frame.loc[known, "team"], key_col="team",
                         until=counted_until)
        _unmeasured_before_window(frame, rows, name, activities)
    return frame.drop(columns=["_start_day", "_last_day", "_stop"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- progress
@metric(report="08", unit="pct")
def goal_progress(targets: pd.DataFrame, *, as_of: pd.Timestamp, deals: pd.DataFrame | None = None,
                  activities: pd.DataFrame | None = None, leads: pd.DataFrame | None = None,
                  users: pd.DataFrame | None = None, on=None, country: str | None = None,
                  subdiv: str | None = None, off_pace_below: float = 0.8, on_pace_from: float = 0.95,
                  min_elapsed_share: float = 0.2, amount_col: str = AMOUNT_COL,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Progress of each target whose period includes a day: actual, share of the target reached against share of the working days elapsed, run-rate projection to period end, and the daily pace still required.

    Parameters
    ----------
    targets, as_of, deals, activities, leads, users, amount_col : as for :func:`goal_actuals`.
    on : the day whose target periods are shown (a date or ``"YYYY-MM-DD"``); default
        the last day before as_of (the running periods). A period that ended before
        as_of is complete: its projection is its actual.
    country, subdiv : public holidays that are not working days (ISO country code known
        to the ``holidays`` package, optional subdivision); None: Monday to Friday.
    off_pace_below : projected_attainment under this is "off pace" (default 0.8).
    on_pace_from : projected_attainment from this on is "on pace" (default 0.95);
        between the two, "at risk".
    min_elapsed_share : before this share of the working days has gone, the status is
        "too early" instead of a pace verdict (default 0.2).
    alpha : 1 - the confidence level of projection_low / projection_high.

    Returns
    -------
    The :func:`goal_actuals` columns plus share_reached (actual / target),
    working_days_total, working_days_elapsed (float), working_days_left, share_elapsed,
    projection, projection_low, projection_high, projected_attainment, plan_per_day
    (target / working days), run_rate_per_day (actual / working days elapsed),
    required_per_day (what is missing / working days left; 0 once reached), status,
    on_pace (reached or on pace) and off_pace (bool). Ordered by metric (:data:`METRICS`
    first), level (teams first) and projected_attainment (lowest first).
    """
    as_of = ensure_instant(as_of)
    _check_thresholds(off_pace_below, on_pace_from, min_elapsed_share)
    day = _day_of(on, as_of)
    actuals = goal_actuals(targets, as_of=as_of, deals=deals, activities=activities, leads=leads,
                           users=users, amount_col=amount_col)
    start = actuals["period_start"].dt.tz_localize(None).dt.date
    last = actuals["period_end"].dt.tz_localize(None).dt.date
    rows = actuals.loc[(start <= day) & (day <= last)].reset_index(drop=True)
    return _pace(rows, as_of, country=country, subdiv=subdiv, off_pace_below=off_pace_below,
                 on_pace_from=on_pace_from, min_elapsed_share=min_elapsed_share, alpha=alpha)


@metric(report="08", unit="table")
def off_pace(progress: pd.DataFrame, *, metric: str | None = "revenue",
             level: str | None = "owner") -> pd.DataFrame:
    """The goals whose run-rate projection falls short of the off-pace threshold, worst first.

    ``progress`` is a :func:`goal_progress` table; ``metric=None`` keeps every metric,
    ``level`` is ``"owner"``, ``"team"`` or None for both.
    """
    _require(progress, ("metric", "level", "off_pace", "projected_attainment"), "goal progress")
    keep = progress["off_pace"].astype(bool)
    if metric is not None:
        keep &= progress["metric"] == metric
    if level is not None:
        keep &= progress["level"] == level
    return (progress.loc[keep].sort_values("projected_attainment", kind="stable")
            .reset_index(drop=True))


# ----------------------------------------------------------------------------- totals
@dataclass(frozen=True)
class GoalSummary:
    """The total of one metric's goals in one period, with the comparison periods' attainment."""

    metric: str
    level: str  # "team": the team goals' total (when measured), else "owner": the owners' total
    goals: int
    period_start: pd.Timestamp | None
    period_end: pd.Timestamp | None  # last day included
    target: float
    actual: float
    events: int | None
    share_reached: float
    working_days_total: int
    working_days_elapsed: float
    working_days_left: int
    share_elapsed: float
    projection: float
    projection_low: float
    projection_high: float
    projected_attainment: float
    plan_per_day: float
    required_per_day: float
    status: str
    owners: int = 0
    owners_off_pace: tuple = ()
    owners_at_risk: tuple = ()
    previous_attainment: float = math.nan
    previous_label: str = ""
    year_ago_attainment: float = math.nan
    year_ago_label: str = ""
    notes: tuple = field(default_factory=tuple)

    @property
    def measured(self) -> bool:
        """True when there are goals and their total actual is known."""
        return self.goals > 0 and not pd.isna(self.actual)

    @property
    def label(self) -> str:
        """The period as ``2026-09-01 to 2026-09-30``."""
        return _period_label(self.period_start, self.period_end)

    def to_frame(self) -> pd.DataFrame:
        """One row with every field."""
        row = asdict(self)
        row["owners_off_pace"] = ", ".join(self.owners_off_pace)
        row["owners_at_risk"] = ", ".join(self.owners_at_risk)
        row["notes"] = " ".join(self.notes)
        return pd.DataFrame([row])


@metric(report="08", unit="pct")
def goal_summary(progress: pd.DataFrame, *, metric: str = "revenue", history: pd.DataFrame | None = None,
                 off_pace_below: float = 0.8, on_pace_from: float = 0.95,
                 min_elapsed_share: float = 0.2) -> GoalSummary:
    """The combined progress of one metric's goals: the team targets' total when the period has any (with known actuals), else the owners' total, with the same pace and projection as a single goal.

    Parameters
    ----------
    progress : a :func:`goal_progress` table (one period's goals).
    metric : which metric to total.
    history : an :func:`attainment_history` table of the same metric; gives the
        attainment of the previous period and of the period a year before.
    off_pace_below, on_pace_from, min_elapsed_share : as for :func:`goal_progress`.

    Returns
    -------
    A :class:`GoalSummary`. When the goals of the metric span several periods, the
    period that starts last is summarised.
    """
    _check_thresholds(off_pace_below, on_pace_from, min_elapsed_share)
    _require(progress, ("metric", "level", "target", "actual", "working_days_total"), "goal progress")
    rows = progress.loc[progress["metric"] == metric]
    notes = []
    if not len(rows):
        return _empty_summary(metric, f"there is no {metric} target for this period")
    rows = rows.loc[rows["period_start"] == rows["period_start"].max()]
    level = _total_level(rows)
    if level == "owner" and (rows["level"] == "team").any():
        notes.append("the team goals have no actual (team members unknown), so the owners' goals "
                     "are totalled")
    chosen = rows.loc[rows["level"] == level]
    total = _pace(_combine(chosen), None, off_pace_below=off_pace_below, on_pace_from=on_pace_from,
                  min_elapsed_share=min_elapsed_share, reuse_days=True).iloc[0]
    if chosen["actual"].isna().any():
        notes.append(f"{int(chosen['actual'].isna().sum())} of {len(chosen)} {level} goals have no actual")
    if total.get("missing_amount", 0) > 0:
        notes.append(f"{int(total['missing_amount'])} won deal(s) without an amount add nothing to the "
                     "revenue actual")
    owners = rows.loc[rows["level"] == "owner"]
    off = owners.loc[owners["off_pace"].astype(bool)].sort_values("projected_attainment", kind="stable")
    risk = owners.loc[owners["status"] == "at risk"].sort_values("projected_attainment", kind="stable")
    prev = year = (math.nan, "")
    if history is not None and len(history):
        prev, year = _comparisons(history, total["period_start"])
    return GoalSummary(
        metric=metric, level=level, goals=len(chosen), period_start=total["period_start"],
        period_end=total["period_end"], target=float(total["target"]), actual=float(total["actual"]),
        events=None if pd.isna(total["events"]) else int(total["events"]),
        share_reached=float(total["share_reached"]), working_days_total=int(total["working_days_total"]),
        working_days_elapsed=float(total["working_days_elapsed"]),
        working_days_left=int(total["working_days_left"]), share_elapsed=float(total["share_elapsed"]),
        projection=float(total["projection"]), projection_low=float(total["projection_low"]),
        projection_high=float(total["projection_high"]),
        projected_attainment=float(total["projected_attainment"]),
        plan_per_day=float(total["plan_per_day"]), required_per_day=float(total["required_per_day"]),
        status=str(total["status"]), owners=len(owners), owners_off_pace=tuple(_labels(off)),
        owners_at_risk=tuple(_labels(risk)), previous_attainment=prev[0], previous_label=prev[1],
        year_ago_attainment=year[0], year_ago_label=year[1], notes=tuple(notes))


@metric(report="08", unit="pct")
def attainment_history(targets: pd.DataFrame, *, as_of: pd.Timestamp, deals: pd.DataFrame | None = None,
                       activities: pd.DataFrame | None = None, leads: pd.DataFrame | None = None,
                       users: pd.DataFrame | None = None, metric: str = "revenue", country: str | None = None,
                       subdiv: str | None = None, amount_col: str = AMOUNT_COL) -> pd.DataFrame:
    """Share of the total target reached in every target period of a metric that started before as_of (attainment), with the run-rate projection for the period still running.

    The total is the team targets' when a period has any whose actuals are known, else
    the owners' (as in :func:`goal_summary`).

    Returns
    -------
    One row per period, oldest first: period_start, period_end (last day included),
    label, level, goals, target, actual, attainment (actual / target),
    projected_attainment (equal to attainment once the period is over), share_elapsed
    and complete (bool).
    """
    as_of = ensure_instant(as_of)
    actuals = goal_actuals(targets, as_of=as_of, deals=deals, activities=activities, leads=leads,
                           users=users, amount_col=amount_col)
    rows = actuals.loc[(actuals["metric"] == metric) & (actuals["period_start"] < as_of)]
    columns = ["period_start", "period_end", "label", "level", "goals", "target", "actual", "attainment",
               "projected_attainment", "share_elapsed", "complete"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    out = []
    for _, group in rows.groupby(["period_start", "period_end"], sort=True):
        out.append(_combine(group.loc[group["level"] == _total_level(group)]))
    combined = _pace(pd.concat(out, ignore_index=True), as_of, country=country, subdiv=subdiv)
    combined["label"] = [_period_label(s, e)
                         for s, e in zip(combined["period_start"], combined["period_end"])]
    combined["attainment"] = _ratio(combined["actual"], combined["target"])
    combined["complete"] = combined["working_days_left"] == 0
    combined["goals"] = combined["goals"].astype("int64")
    return combined[columns].sort_values("period_start", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- helpers: targets
def _normalise_targets(targets: pd.DataFrame, tz, users) -> pd.DataFrame:
    _require(targets, ("metric", "period_start", "period_end", "target"), "targets")
    if "owner_id" not in targets.columns and "team" not in targets.columns:
        raise CrmDataError("targets needs an owner_id or a team column (whose goal each row is)",
                           table="targets", column="owner_id")
    n = len(targets)
    empty = pd.Series([pd.NA] * n, dtype="str")
    owner = _text(targets["owner_id"]) if "owner_id" in targets.columns else empty.copy()
    team = _text(targets["team"]) if "team" in targets.columns else empty.copy()
    owner.index = team.index = range(n)
    level = np.where(owner.notna(), "owner", np.where(team.notna(), "team", "none"))
    start_day = _days(targets["period_start"], "period_start")
    last_day = _days(targets["period_end"], "period_end")
    bad = (last_day < start_day).to_numpy()
    if bad.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
        raise CrmDataError(f"targets has {int(bad.sum())} row(s) whose period_end is before period_start "
                           f"(rows {rows}); fix the dates (period_end is the last day included)",
                           table="targets", column="period_end")
    frame = pd.DataFrame({
        "level": pd.Series(level, dtype="str"),
        "owner_id": owner,
        "name": pd.Series([pd.NA] * n, dtype="str"),
        "team": team,
        "metric": _text(targets["metric"]).set_axis(range(n)),
        "period_start": _midnights(start_day, tz),
        "period_end": _midnights(last_day, tz),
        "target": pd.to_numeric(targets["target"].set_axis(range(n)), errors="raise").astype("float64"),
    })
    frame["_start_day"] = start_day.to_numpy()
    frame["_last_day"] = last_day.to_numpy()
    frame["_stop"] = (_midnights(last_day + _DAY, tz).dt.tz_convert("UTC").dt.tz_localize(None)
                      .to_numpy())
    if users is not None and len(users) and "user_id" in users.columns:
        ids = _text(users["user_id"])
        if "name" in users.columns:
            names = pd.Series(_text(users["name"]).to_numpy(), index=ids.to_numpy())
            names = names[~names.index.duplicated()]
            frame["name"] = frame["owner_id"].map(names).astype("str")
        teams = _owner_teams(users)
        if teams is not None:
            missing = frame["team"].isna() & (frame["level"] == "owner")
            frame.loc[missing, "team"] = frame.loc[missing, "owner_id"].map(teams)
    frame.loc[frame["level"] == "team", "name"] = frame.loc[frame["level"] == "team", "team"]
    return frame


def _days(values: pd.Series, what: str) -> pd.Series:
    """Calendar days (naive midnights) of a targets date column, rounded to the nearest midnight."""
    v = values.reset_index(drop=True)
    if isinstance(v.dtype, pd.DatetimeTZDtype):
        wall = v.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(v.dtype):
        wall = v
    else:
        try:
            wall = pd.to_datetime(v.astype("object"), format="mixed")
        except (ValueError, TypeError):
            raise CrmDataError(f"targets.{what} holds values that are not dates; write them as YYYY-MM-DD",
                               table="targets", column=what) from None
        if isinstance(wall.dtype, pd.DatetimeTZDtype):
            wall = wall.dt.tz_localize(None)
    if wall.isna().any():
        raise CrmDataError(f"targets.{what} is empty in {int(wall.isna().sum())} row(s); every target "
                           "needs its period", table="targets", column=what)
    return (wall + pd.Timedelta(hours=12)).dt.floor("D").astype("datetime64[us]")


def _midnights(days: pd.Series, tz) -> pd.Series:
    return days.dt.tz_localize(tz, ambiguous=np.ones(len(days), dtype=bool),
                               nonexistent="shift_forward").dt.as_unit("us")


def _text(values: pd.Series) -> pd.Series:
    out = values.astype("str").reset_index(drop=True)
    blank = out.isna() | (out.str.strip() == "")
    return out.where(~blank, pd.NA).astype("str")


def _owner_teams(users) -> pd.Series | None:
    if users is None or "user_id" not in users.columns or "team" not in users.columns:
        return None
    teams = pd.Series(_text(users["team"]).to_numpy(), index=_text(users["user_id"]).to_numpy())
    return teams[~teams.index.duplicated()]


# ----------------------------------------------------------------------------- helpers: events
def _unmeasured_before_window(frame: pd.DataFrame, rows, name: str, activities) -> None:
    """A large source's snapshot holds the activities of a recent window only: call and
    meeting targets whose period starts before it cannot be measured (actual missing)."""
    info = pushdown_info(activities) if name in ("calls", "meetings") else None
    if info is None or info.rows_from is None:
        return
    early = rows[(frame.loc[rows, "period_start"] < info.rows_from).to_numpy()]
    frame.loc[early, "actual"] = np.nan
    frame.loc[early, "events"] = pd.NA


def _events(name: str, *, as_of, deals, activities, leads, amount_col) -> pd.DataFrame | None:
    """owner_id, when (naive UTC), value of every event of a metric before as_of; None if unmeasurable."""
    if name in ("revenue", "won_deals"):
        if deals is None:
            return None
        _require(deals, ("owner_id", "status", "closed_at"), "deals")
        won = deals.loc[(deals["status"] == "won") & (deals["closed_at"] < as_of)]
        if name == "revenue":
            if amount_col not in deals.columns:
                raise CrmDataError(f"deals has no column {amount_col!r} for revenue goals; convert first: "
                                   "crmlib.money.to_reporting(deals, 'amount', currency=..., fx_rates=..., "
                                   "date_col='created_at')", table="deals", column=amount_col)
            # a won deal without an amount adds nothing and is counted in missing_amount
            return _event_frame(won["owner_id"], won["closed_at"], won[amount_col].astype("float64"))
        return _event_frame(won["owner_id"], won["closed_at"], 1.0)
    if name in ("calls", "meetings"):
        if activities is None:
            return None
        _require(activities, ("type", "owner_id", "created_at"), "activities")
        if is_scan(activities):  # a large snapshot's window: DuckDB picks the rows of that type
            from ..pushdown.activity import typed_rows

            wanted = ["type", "owner_id", "created_at"] if name == "calls" else \
                ["type", "owner_id", *(c for c in ("completed_at", "due_at") if c in activities.columns)]
            activities = typed_rows(activities, columns=wanted, types=["call" if name == "calls" else "meeting"])
        if name == "calls":
            calls = activities.loc[(activities["type"] == "call") & (activities["created_at"] < as_of)]
            return _event_frame(calls["owner_id"], calls["created_at"], 1.0)
        _require(activities, ("completed_at",), "activities")
        held = activities.loc[(activities["type"] == "meeting") & (activities["completed_at"] < as_of)]
        when = held["completed_at"]
        if "due_at" in held.columns:
            when = held["due_at"].fillna(when)
        return _event_frame(held["owner_id"], when, 1.0)
    if name == "new_leads":
        if leads is None:
            return None
        _require(leads, ("owner_id", "created_at"), "leads")
        new = leads.loc[leads["created_at"] < as_of]
        return _event_frame(new["owner_id"], new["created_at"], 1.0)
    return None


def _event_frame(owner, when, value) -> pd.DataFrame:
    """owner_id, when (naive UTC), value (0 when missing), n (1 when valued) and missing (1 when not)."""
    values = np.full(len(owner), float(value)) if np.isscalar(value) else np.asarray(value, dtype="float64")
    missing = np.isnan(values)
    f = pd.DataFrame({"owner_id": _text(owner),
                      "when": pd.Series(when.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(),
                                        dtype="datetime64[us]"),
                      "value": np.where(missing, 0.0, values), "n": (~missing).astype("float64"),
                      "missing": missing.astype("float64")})
    return f.loc[f["when"].notna()]


def _sum_windows(frame, rows, events, *, key, key_col, until) -> None:
    """Set actual, events and missing_amount of ``rows``: the events of each row's key in [start, until)."""
    if not len(rows):
        return
    starts = frame.loc[rows, "period_start"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    stops = until[np.asarray(frame.index.get_indexer(rows))]
    ev = events.loc[events[key_col].notna()]
    sums = np.zeros((len(rows), 3))
    codes, keys = pd.factorize(ev[key_col], sort=False)
    code_of_row = pd.Index(keys).get_indexer(pd.Index(key.to_numpy()))  # -1: a key without events
    if len(ev):
        # every event's place in one sort by (key, time): a row's events are the slice between
        # the places of (its key, start) and (its key, stop), summed at once for every row
        when = ev["when"].to_numpy().astype("datetime64[us]").view("int64")
        first = int(when.min())
        width = int(when.max()) - first + 2  # a time's offset from the first event, and one past the last
        if width * (len(keys) + 1) < _PLACE_LIMIT:
            def offset(t):
                t = np.asarray(t).astype("datetime64[us]").view("int64")
                return np.clip(t - first, 0, width - 1)
        else:  # too long a span for that many keys: rank the times instead
            times = np.unique(when)
            width = len(times) + 1

            def offset(t):
                return np.searchsorted(times, np.asarray(t).astype("datetime64[us]").view("int64"))
        place = codes.astype("int64") * width + offset(ev["when"].to_numpy())
        order = np.argsort(place, kind="stable")
        place = place[order]
        ok = (code_of_row >= 0) & (stops > starts)
        base = np.where(ok, code_of_row, 0).astype("int64") * width
        lo = np.searchsorted(place, base + offset(starts), side="left")
        hi = np.searchsorted(place, base + offset(stops), side="left")
        ok &= hi > lo
        # np.add.reduceat sums [lo, hi) directly (no running totals to subtract); with the rows in
        # the order of lo, the stretches between one row's hi and the next row's lo add up to
        # one pass over the events at most
        by_lo = np.argsort(lo, kind="stable")
        bounds = np.minimum(np.column_stack([lo[by_lo], hi[by_lo]]).ravel(), len(ev))
        for j, col in enumerate(("value", "n", "missing")):
            v = np.r_[ev[col].to_numpy(dtype="float64")[order], 0.0]
            sums[by_lo, j] = np.add.reduceat(v, bounds)[::2]
        sums[~ok] = 0.0
    frame.loc[rows, "actual"] = sums[:, 0]
    frame.loc[rows, "events"] = np.rint(sums[:, 1]).astype("int64")
    frame.loc[rows, "missing_amount"] = np.rint(sums[:, 2]).astype("int64")


# ----------------------------------------------------------------------------- helpers: pace
def _pace(rows: pd.DataFrame, as_of, *, country=None, subdiv=None, off_pace_below=0.8, on_pace_from=0.95,
          min_elapsed_share=0.2, alpha=0.05, reuse_days=False) -> pd.DataFrame:
    out = rows.copy()
    if not reuse_days:
        days = _working_day_counts(out["period_start"], out["period_end"], as_of, country, subdiv)
        out["working_days_total"] = days[0]
        out["working_days_elapsed"] = days[1]
    total = out["working_days_total"].astype("float64")
    elapsed = out["working_days_elapsed"].astype("float64")
    left = (total - np.ceil(elapsed - 1e-9)).clip(lower=0)
    out["working_days_total"] = total.astype("int64")
    out["working_days_left"] = left.astype("int64")
    target, actual = out["target"].astype("float64"), out["actual"].astype("float64")
    out["share_reached"] = _ratio(actual, target)
    share = _ratio(elapsed, total)
    out["share_elapsed"] = share
    projection = _ratio(actual, share)
    out["projection"] = projection
    low, high = _projection_interval(out, elapsed, total, alpha)
    out["projection_low"], out["projection_high"] = low, high
    out["projected_attainment"] = _ratio(projection, target)
    out["plan_per_day"] = _ratio(target, total)
    out["run_rate_per_day"] = _ratio(actual, elapsed)
    missing = (target - actual).clip(lower=0)
    out["required_per_day"] = np.where(left > 0, missing / left.where(left > 0, np.nan),
                                       np.where(missing == 0, 0.0, np.nan))
    att = out["projected_attainment"]
    conditions = [actual.isna(), total == 0, elapsed <= 0, actual >= target, left == 0,
                  share < min_elapsed_share, att < off_pace_below, att < on_pace_from]
    choices = ["no data", "no working days", "not started", "reached", "missed", "too early",
               "off pace", "at risk"]
    out["status"] = pd.Series(np.select(conditions, choices, default="on pace"), index=out.index,
                              dtype="str")
    out["on_pace"] = out["status"].isin(["reached", "on pace"])
    out["off_pace"] = out["status"] == "off pace"
    if "metric" in out.columns and "level" in out.columns and not reuse_days:
        order = {m: i for i, m in enumerate(METRICS)}
        out["_m"] = out["metric"].map(order).fillna(len(METRICS))
        out["_l"] = out["level"].map({lv: i for i, lv in enumerate(_LEVELS)})
        out = (out.sort_values(["_m", "metric", "_l", "projected_attainment"], kind="stable",
                               na_position="last").drop(columns=["_m", "_l"]).reset_index(drop=True))
    return out


def _working_day_counts(starts, ends, as_of, country, subdiv):
    """Working days in each period and elapsed by as_of (the as_of day in part when not a midnight)."""
    cache: dict = {}
    total, elapsed = [], []
    if as_of is not None:
        local = as_of.tz_convert(starts.dt.tz) if len(starts) else as_of
        as_of_day = local.date()
        fraction = (local - local.normalize()) / _DAY
    for s, e in zip(starts, ends):
        first, after = s.date(), e.date() + dt.timedelta(days=1)
        if (first, after) not in cache:
            cache[(first, after)] = working_days(first, after, country, subdiv=subdiv)
        total.append(cache[(first, after)])
        if as_of is None:
            elapsed.append(np.nan)
            continue
        stop = min(as_of_day, after)
        key = (first, stop)
        if key not in cache:
            cache[key] = working_days(first, stop, country, subdiv=subdiv) if stop > first else 0
        part = 0.0
        if fraction > 0 and first <= as_of_day < after:
            part = fraction * working_days(as_of_day, as_of_day + dt.timedelta(days=1), country,
                                           subdiv=subdiv)
        elapsed.append(cache[key] + part)
    return np.asarray(total, dtype="float64"), np.asarray(elapsed, dtype="float64")


def _projection_interval(out, elapsed, total, alpha):
    """Garwood bounds on the events so far, scaled to the whole period (and by the mean event value)."""
    k = out["events"].astype("float64") if "events" in out.columns else pd.Series(np.nan, index=out.index)
    actual = out["actual"].astype("float64")
    remaining = (total - elapsed).clip(lower=0)
    lo_k = np.where(k > 0, chi2.ppf(alpha / 2, 2 * k.fillna(0).clip(lower=1)) / 2, 0.0)
    hi_k = chi2.ppf(1 - alpha / 2, 2 * k.fillna(0) + 2) / 2
    per_event = np.where(k > 0, actual / k.where(k > 0, np.nan), np.nan)
    per_event = np.where((k == 0) & (out.get("metric", pd.Series("", index=out.index)) != "revenue"),
                         1.0, per_event)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(elapsed > 0, remaining / elapsed.where(elapsed > 0, np.nan), np.nan)
        low = actual + lo_k * scale * per_event
        high = actual + hi_k * scale * per_event
    done = remaining == 0
    low = np.where(done, actual, low)
    high = np.where(done, actual, high)
    low = np.where(k.isna(), np.nan, low)
    high = np.where(k.isna(), np.nan, high)
    return low, high


def _total_level(rows: pd.DataFrame) -> str:
    """Which goals make the total: the teams' when their actuals are known, else the owners'."""
    teams = rows.loc[rows["level"] == "team"]
    if len(teams) and (teams["actual"].notna().all() or not (rows["level"] == "owner").any()):
        return "team"
    return "owner" if (rows["level"] == "owner").any() else str(rows["level"].iloc[0])


def _combine(rows: pd.DataFrame) -> pd.DataFrame:
    """One row: the sum of the goals' targets, actuals and events, on the first row's calendar."""
    first = rows.iloc[0]
    actual = rows["actual"].sum(min_count=len(rows)) if len(rows) else np.nan
    events = rows["events"].astype("float64").sum(min_count=len(rows))
    unpriced = rows["missing_amount"].astype("float64").sum() if "missing_amount" in rows.columns else 0.0
    row = {"level": first["level"], "metric": first["metric"], "period_start": rows["period_start"].min(),
           "period_end": rows["period_end"].max(), "goals": len(rows),
           "target": float(rows["target"].sum()), "actual": actual, "events": events,
           "missing_amount": unpriced}
    for col in ("working_days_total", "working_days_elapsed"):
        if col in rows.columns:
            row[col] = float(first[col])
    return pd.DataFrame([row])


def _comparisons(history: pd.DataFrame, start) -> tuple[tuple, tuple]:
    h = history.loc[history["complete"].astype(bool)]
    before = h.loc[h["period_end"] < start]
    prev = (math.nan, "")
    if len(before):
        r = before.loc[before["period_end"].idxmax()]
        prev = (float(r["attainment"]), str(r["label"]))
    year = (math.nan, "")
    ago = start - pd.DateOffset(years=1)
    hit = h.loc[(h["period_start"] <= ago) & (ago <= h["period_end"])]
    if len(hit):
        r = hit.iloc[0]
        year = (float(r["attainment"]), str(r["label"]))
    return prev, year


def _empty_summary(metric: str, note: str) -> GoalSummary:
    nan = math.nan
    return GoalSummary(metric=metric, level="none", goals=0, period_start=None, period_end=None,
                       target=nan, actual=nan, events=None, share_reached=nan, working_days_total=0,
                       working_days_elapsed=nan, working_days_left=0, share_elapsed=nan, projection=nan,
                       projection_low=nan, projection_high=nan, projected_attainment=nan,
                       plan_per_day=nan, required_per_day=nan, status="no data", notes=(note,))


def _labels(rows: pd.DataFrame) -> list[str]:
    names = rows["name"] if "name" in rows.columns else pd.Series(pd.NA, index=rows.index)
    return [str(n) if isinstance(n, str) and n else str(o) for n, o in zip(names, rows["owner_id"])]


def _period_label(start, end) -> str:
    if start is None or pd.isna(start):
        return ""
    s, e = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    if s.day == 1 and (e + dt.timedelta(days=1)).day == 1 and s.month == e.month and s.year == e.year:
        return f"{s:%Y-%m}"
    return f"{s:%Y-%m-%d} to {e:%Y-%m-%d}"


def _ratio(num, den):
    num = pd.Series(num, dtype="float64") if not isinstance(num, pd.Series) else num.astype("float64")
    den = pd.Series(den, dtype="float64", index=num.index) if not isinstance(den, pd.Series) \
        else den.astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return (num / den.where(den > 0, np.nan)).astype("float64")


def _day_of(on, as_of) -> dt.date:
    if on is None:
        return (as_of - pd.Timedelta(microseconds=1)).date()
    return _as_date(on, name="on")


def _check_thresholds(off_pace_below, on_pace_from, min_elapsed_share) -> None:
    if not 0 <= float(off_pace_below) <= float(on_pace_from):
        raise CrmConfigError(f"off_pace_below ({off_pace_below}) must be between 0 and on_pace_from "
                             f"({on_pace_from}); e.g. 0.8 and 0.95")
    if not 0 <= float(min_elapsed_share) < 1:
        raise CrmConfigError(f"min_elapsed_share must be a share of the period in [0, 1), not "
                             f"{min_elapsed_share!r}")


def _require(frame: pd.DataFrame, cols, table: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise CrmDataError(f"{table} lacks column(s) {', '.join(missing)}; load it with crmlib.load "
                           "so it has the canonical columns", table=table, column=missing[0])
