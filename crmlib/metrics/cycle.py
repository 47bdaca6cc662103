"""Sales cycle (report 04): time in each stage, which also gives the stalled-deal norms of 02.

A *stage visit* starts when a deal enters a stage (a ``stage_history`` row) and ends
when it enters the next one. Only history rows before ``as_of`` are used, so a visit
still running at ``as_of`` is *open* (right-censored): its duration is the time spent so
far, and it does not count towards the norms, which are quantiles of completed visits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CrmDataError
from ..periods import ensure_instant
from ..pushdown.scan import is_scan
from .catalogue import metric

__all__ = ["stage_visits", "stage_time_norms"]

_DAY_S = 86_400.0


def _visit_starts(history: pd.DataFrame, as_of: pd.Timestamp, *, last_only: bool = False
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """The first entry of each stage visit before ``as_of`` (deal_id, stage, entered_at), ordered
    by deal_id and entered_at, with each row's deal as an integer code in that order.
    ``last_only``: only each deal's last visit."""
    _require(history, ("deal_id", "stage", "entered_at"), "stage_history")
    h = history.loc[history["entered_at"] < as_of, ["deal_id", "stage", "entered_at"]]
    # sorted by deal_id then entered_at (stable) through integer codes: factorize(sort=True)
    # numbers the ids in their sorted order, so this is the order of sort_values on the
    # strings, without sorting millions of strings
    deal, _ = pd.factorize(h["deal_id"], sort=True, use_na_sentinel=False)
    stage, _ = pd.factorize(h["stage"], use_na_sentinel=False)
    order = np.lexsort((h["entered_at"].to_numpy("datetime64[us]").view("int64"), deal))
    deal, stage = deal[order], stage[order]
    start = ~(np.r_[False, deal[1:] == deal[:-1]] & np.r_[False, stage[1:] == stage[:-1]])
    order, deal = order[start], deal[start]
    if last_only:
        last = np.r_[deal[:-1] != deal[1:], True] if len(deal) else np.zeros(0, bool)
        order, deal = order[last], deal[last]
    return h.take(order).reset_index(drop=True), deal


def _last_visits(history: pd.DataFrame, *, as_of: pd.Timestamp, deal_ids=None) -> pd.DataFrame:
    """Each deal's last stage visit before as_of: deal_id, stage, entered_at (the visit's first entry).

    The same rows as the last visit per deal of :func:`stage_visits`, without building
    every visit (a large export's history has millions). A scan of the table
    (:class:`crmlib.pushdown.scan.ParquetScan`) asks DuckDB for them, of the deals
    ``deal_ids`` only when given (a frame gives every deal's).
    """
    if is_scan(history):
        return _engine(history).last_visits(history, as_of=as_of, deal_ids=deal_ids)
    return _visit_starts(history, ensure_instant(as_of), last_only=True)[0]


@metric(report="04", unit="days")
def stage_visits(history: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per stage visit before as_of: the stage a deal entered, when it left it, and the days spent there.

    Parameters
    ----------
    history : the canonical ``stage_history`` table (deal_id, stage, entered_at), or a
        scan of it (:meth:`crmlib.data.CrmData.scan`: DuckDB reads the snapshot's file).
    as_of : the instant "now"; history rows entered at or after it are ignored.

    Returns
    -------
    DataFrame with deal_id, visit (1, 2, ... per deal), stage, entered_at, left_at (the
    next entry's entered_at, NaT while the visit is still open at as_of), next_stage,
    duration_days (to left_at, or to as_of for an open visit) and completed (bool).
    Consecutive rows of one deal in the same stage are one visit (the first entry
    counts). Rows are ordered by deal_id and entered_at.
    """
    as_of = ensure_instant(as_of)
    if is_scan(history):
        engine = _engine(history)
        h = engine.visits(history, as_of=as_of)
        visit, left_at, next_stage = h["visit"].astype("int64"), h["left_at"], h["next_stage"]
    else:
        h, deal = _visit_starts(history, as_of)
        next_same_deal = pd.Series(np.r_[deal[:-1] == deal[1:], False] if len(deal) else np.zeros(0, bool),
                                   index=h.index)
        left_at = h["entered_at"].shift(-1).where(next_same_deal)
        next_stage = h["stage"].shift(-1).where(next_same_deal)
        visit = pd.Series(deal, index=h.index).groupby(deal, sort=False).cumcount() + 1
    completed = left_at.notna()
    until = left_at.where(completed, as_of)
    out = pd.DataFrame({
        "deal_id": h["deal_id"],
        "visit": visit,
        "stage": h["stage"],
        "entered_at": h["entered_at"],
        "left_at": left_at.astype(h["entered_at"].dtype),
        "next_stage": next_stage.astype("str"),
        "duration_days": (until - h["entered_at"]).dt.total_seconds() / _DAY_S,
        "completed": completed.astype(bool),
    })
    return out


@metric(report="04", unit="days")
def stage_time_norms(history: pd.DataFrame, *, as_of: pd.Timestamp, quantile: float = 0.9,
                     min_completed: int = 1) -> pd.DataFrame:
    """Per stage, the time a completed visit normally takes: median and 90th percentile of completed visits in days.

    Parameters
    ----------
    history : the canonical ``stage_history`` table, or a scan of it (see :func:`stage_visits`).
    as_of : the instant "now" (see :func:`stage_visits`).
    quantile : which quantile is the stalled-deal norm (``norm_days``); 0.9 by default.
    min_completed : stages with fewer completed visits get no norm (NaN), because a
        quantile of two or three visits says little.

    Returns
    -------
    DataFrame indexed by nothing, one row per stage seen in history: stage, visits,
    completed, open, median_days, p90_days, norm_days (the ``quantile`` of completed
    visits), ordered by stage name. Stages without completed visits have NaN times.
    """
    _check_quantile(quantile)
    if is_scan(history):  # DuckDB reduces the snapshot's file to the norms
        return _engine(history).stage_norms(history, as_of=as_of, quantile=quantile, min_completed=min_completed)
    return _norms(stage_visits(history, as_of=as_of), quantile, min_completed)


def _check_quantile(quantile: float) -> None:
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie between 0 and 1, not {quantile}")


def _norms(v: pd.DataFrame, quantile: float, min_completed: int, *, totals: bool = False) -> pd.DataFrame:
    """:func:`stage_time_norms` from the :func:`stage_visits` frame ``v``; with ``totals`` also
    mean_days and total_days of the completed visits (0 for a stage without one)."""
    done = v.loc[v["completed"], ["stage", "duration_days"]]
    by_stage = v[["stage", "completed"]].groupby("stage", sort=True)
    grouped = done.groupby("stage")["duration_days"]
    per_stage = pd.DataFrame({
        "visits": by_stage.size(),
        "completed": by_stage["completed"].sum().astype("int64"),
        "median_days": grouped.median(),
        "p90_days": grouped.quantile(0.9),
        "norm_days": grouped.quantile(quantile),
        "mean_days": grouped.mean(),
        "total_days": grouped.sum(),
    })
    return _norms_frame(per_stage, min_completed, totals=totals)


def _norms_frame(per_stage: pd.DataFrame, min_completed: int, *, totals: bool) -> pd.DataFrame:
    """The norms frame from the counts and times per stage (indexed by stage: visits, completed,
    median_days, p90_days, norm_days, mean_days, total_days), as pandas (:func:`_norms`) or DuckDB
    (:mod:`crmlib.pushdown.history`) compute them: ordered by stage, with the open visits, no norm
    below ``min_completed`` completed visits, and 0 days for a stage without a completed visit."""
    out = per_stage.sort_index(kind="stable")
    out = out.assign(open=out["visits"] - out["completed"])
    out.loc[out["completed"] < int(min_completed), "norm_days"] = np.nan
    out["total_days"] = out["total_days"].fillna(0.0)  # a stage with no completed visit took 0 days
    cols = ["visits", "completed", "open", "median_days", "p90_days", "norm_days"]
    out = out[cols + ["mean_days", "total_days"] if totals else cols]
    out.index.name = "stage"
    return out.reset_index()


def _engine(history):
    """The DuckDB twins of this module's history functions, for a scan with the canonical columns."""
    from ..pushdown import history as engine

    _require(history, ("deal_id", "stage", "entered_at"), "stage_history")
    return engine


def _require(frame: pd.DataFrame, cols, table: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise CrmDataError(f"{table} lacks column(s) {', '.join(missing)}; load it with crmlib.load "
                           "so it has the canonical columns", table=table, column=missing[0])


# =============================================================================================
# Sales cycle (report 04): how long deals take to win, by group and over time, open deals counted.
#
# The sales cycle of a closed deal is closed_at - created_at in days. A deal still open at
# as_of has a cycle of at least its age: it is right-censored, and the survival estimates
# (cycle_survival) use it as such. The plain distributions (cycle_summary, cycle_distribution,
# cycle_trend) describe deals that closed in a window, which is exact for "the deals we won
# this month took N days" but says nothing about the deals still running.
# =============================================================================================
import math  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from ..periods import periods_back  # noqa: E402
from ..stats.survival import (  # noqa: E402
    CumulativeIncidence, DurationEstimate, KaplanMeier, cumulative_incidence, kaplan_meier, median_ci)

__all__ += ["CycleSummary", "CycleGrowth", "CycleSurvival", "deal_cycles", "cycle_summary",
            "cycle_distribution", "cycle_trend", "cycle_growth", "cycle_survival", "stage_time_table"]

#: which closed deals an ``outcome`` argument selects
OUTCOMES = {"won": ("won",), "lost": ("lost",), "closed": ("won", "lost")}
ALL_LABEL = "all deals"


@metric(report="04", unit="days")
def deal_cycles(deals: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                end: pd.Timestamp | None = None) -> pd.DataFrame:
    """A deal's sales cycle: days from creation to close for a deal won or lost before as_of, and for a deal still open the days it has been open so far (right-censored at as_of).

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now"; deals created at or after it do not exist yet, and a deal
        closed at or after it is still open.
    start, end : keep only deals created in ``[start, end)`` (default: every deal created
        before ``as_of``).

    Returns
    -------
    :func:`crmlib.metrics.pipeline.deal_status_at` (``status_at`` is won, lost or open)
    plus ``cycle_days`` (float days to the close, or to ``as_of`` while open) and
    ``censored`` (True for deals open at ``as_of``).

    Raises
    ------
    CrmDataError : deals closed before they were created (the audit quarantines them).
    """
    from .pipeline import deal_status_at  # pipeline imports this module

    as_of = ensure_instant(as_of)
    d = deal_status_at(deals, as_of)
    if start is not None:
        d = d.loc[d["created_at"] >= ensure_instant(start, name="start")]
    if end is not None:
        d = d.loc[d["created_at"] < ensure_instant(end, name="end")]
    d = d.copy()
    closed = (d["status_at"] != "open").to_numpy()
    created = d["created_at"]
    until = d["closed_at"].copy()
    until.loc[~closed] = as_of.tz_convert(created.dt.tz) if created.dt.tz is not None else as_of
    d["cycle_days"] = (until - created).dt.total_seconds().to_numpy(dtype="float64") / _DAY_S
    d["censored"] = ~closed
    bad = d["cycle_days"] < 0
    if bad.any():
        ids = ", ".join(map(str, d.loc[bad, "deal_id"].head(5)))
        raise CrmDataError(f"{int(bad.sum())} deal(s) closed before they were created ({ids}); run the "
                           "data audit (crmlib.data.open_data), which quarantines them",
                           table="deals", column="closed_at")
    return d


# ----------------------------------------------------------------------------- closed deals in a window
@dataclass(frozen=True)
class CycleSummary:
    """The sales cycle of deals closed in a window: median with its interval, quartiles, p90 and mean (days)."""

    outcome: str
    n: int
    median: float
    low: float
    high: float
    q1: float
    q3: float
    p90: float
    mean: float
    start: pd.Timestamp | None
    end: pd.Timestamp
    alpha: float = 0.05

    @property
    def estimate(self) -> float:
        """The median (so ``narrative.interval`` can show it with its interval)."""
        return self.median

    @property
    def level(self) -> float:
        return 1 - self.alpha

    def to_frame(self) -> pd.DataFrame:
        """One row: outcome, deals, median_days, median_low, median_high, q1_days, q3_days, p90_days, mean_days."""
        return pd.DataFrame([{"outcome": self.outcome, "deals": self.n, "median_days": self.median,
                              "median_low": self.low, "median_high": self.high, "q1_days": self.q1,
                              "q3_days": self.q3, "p90_days": self.p90, "mean_days": self.mean}])

    def summary(self) -> str:
        """One line, e.g. ``median 46.0 days (95% CI 44.1 to 48.2; quartiles 35.0-58.9), 623 won deals``."""
        if self.n == 0:
            return f"no {self.outcome} deals in the window"
        return (f"median {self.median:.1f} days ({self.level:.0%} CI {_fmt_days(self.low)} to "
                f"{_fmt_days(self.high)}; quartiles {self.q1:.1f}-{self.q3:.1f}), {self.n:,} "
                f"{self.outcome} deals")


@metric(report="04", unit="days")
def cycle_summary(deals: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None, outcome: str = "won",
                  alpha: float = 0.05) -> CycleSummary:
    """The median sales cycle in days of the deals won (or lost, or closed) between start and end, with its 95% interval, quartiles, 90th percentile and mean.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now" (deals closing at or after it are open).
    start, end : the window of close dates ``[start, end)``; ``end`` defaults to and never
        passes ``as_of``; ``start`` None means every earlier close.
    outcome : ``"won"`` (the default: how long winning takes), ``"lost"`` or ``"closed"``.
    alpha : 1 - confidence level of the median's distribution-free interval (order
        statistics; NaN bounds with five deals or fewer).

    Returns
    -------
    :class:`CycleSummary`. Deals still open are not in it (see :func:`cycle_survival`).
    """
    sel, start_, end_ = _closed_in_window(deals, as_of, start, end, outcome)
    return _summary(sel["cycle_days"].to_numpy(dtype="float64"), outcome, start_, end_, alpha)


@metric(report="04", unit="days")
def cycle_distribution(deals: pd.DataFrame, *, as_of: pd.Timestamp, by: str | Sequence[str] = "source",
                       start: pd.Timestamp | None = None, outcome: str = "won",
                       accounts: pd.DataFrame | None = None, users: pd.DataFrame | None = None,
                       alpha: float = 0.05) -> pd.DataFrame:
    """Per group (source, segment, owner, ...), the sales cycle of the deals won between start and as_of: median with its interval, quartiles, 90th percentile and mean in days, and the median relative to all other deals.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now".
    by : grouping column(s) of deals, e.g. ``"source"`` or ``"owner_id"``; a column that
        deals lack but ``accounts`` has (``"segment"``, ``"industry"``, ``"region"``) is
        taken from the deal's account (``deals.account_id``).
    start : the first close instant of the window (None: every close before ``as_of``).
    outcome : ``"won"``, ``"lost"`` or ``"closed"``.
    accounts : the ``accounts`` table (needed for account columns such as segment).
    users : the ``users`` table; when grouping by ``owner_id`` it adds name and team.
    alpha : 1 - confidence level of each median's interval.

    Returns
    -------
    One row per group: the ``by`` columns ([name, team]), deals (closed in the window),
    median_days, median_low, median_high, q1_days, q3_days, p90_days, mean_days,
    others_median_days (the median of all the other groups' deals), vs_others (median /
    others_median_days: 0.7 = 30% shorter), p_value (Mann-Whitney U test of the group's
    cycles against the others', two-sided; NaN under 3 deals) and open_deals (the
    group's deals open at ``as_of``). Fastest median first; groups with no closed deal
    in the window (only open ones) come last. A missing key (no segment) is a group.
    """
    from ..stats.compare import one_vs_rest

    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise ValueError("by needs at least one column")
    sel, _, _ = _closed_in_window(deals, as_of, start, None, outcome)
    d_all = deal_cycles(deals, as_of=as_of)
    sel = _with_account_columns(sel, accounts, by)
    open_ = _with_account_columns(d_all.loc[d_all["censored"]], accounts, by)
    keys = sel[by].drop_duplicates()
    keys = pd.concat([keys, open_[by].drop_duplicates()]).drop_duplicates().reset_index(drop=True)
    x_all = sel["cycle_days"].to_numpy(dtype="float64")
    group_of = _group_index(sel, keys, by)
    open_group = _group_index(open_, keys, by)
    others_median, p_value = one_vs_rest(x_all, group_of, len(keys))  # one ranking for every group
    open_counts = np.bincount(open_group, minlength=len(keys))
    per_group = np.split(x_all[np.argsort(group_of, kind="stable")], np.cumsum(np.bincount(group_of,
                         minlength=len(keys)))[:-1])
    rows = []
    for i in range(len(keys)):
        x = per_group[i]
        s = _summary(x, outcome, None, as_of, alpha)
        others, p = float(others_median[i]), float(p_value[i])
        rows.append({"deals": s.n, "median_days": s.median, "median_low": s.low, "median_high": s.high,
                     "q1_days": s.q1, "q3_days": s.q3, "p90_days": s.p90, "mean_days": s.mean,
                     "others_median_days": others,
                     "vs_others": s.median / others if others and others > 0 else np.nan,
                     "p_value": p, "open_deals": int(open_counts[i])})
    out = pd.concat([keys, pd.DataFrame(rows, index=keys.index)], axis=1)
    out["deals"] = out["deals"].astype("int64")
    out["open_deals"] = out["open_deals"].astype("int64")
    out = _with_owner_names(out, users, by)
    out = out.sort_values(["median_days", "deals"], ascending=[True, False], na_position="last",
                          kind="stable")
    return out.reset_index(drop=True)


@metric(report="04", unit="days")
def cycle_trend(deals: pd.DataFrame, *, as_of: pd.Timestamp, period: str = "month", periods: int = 12,
                by_date: str = "closed_at", outcome: str = "won") -> pd.DataFrame:
    """Per period, the median and quartiles of the sales cycle of the deals won in it (by close date) or of the deals created in it (by creation date).

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now"; the last period is the one holding it (possibly partial).
    period : ``"week"``, ``"month"`` or ``"quarter"``.
    periods : how many periods, the current one included.
    by_date : ``"closed_at"`` (deals closed in the period: the cycles the team delivered
        then) or ``"created_at"`` (creation cohorts: recent cohorts are incomplete,
        because their slow deals are still open, so their closed-only medians are
        too short; ``share_open`` and the Kaplan-Meier ``km_median_close_days`` say how
        far each cohort has come).
    outcome : ``"won"``, ``"lost"`` or ``"closed"``.

    Returns
    -------
    One row per period, oldest first: period (label), start, end, deals (closed deals of
    the outcome), median_days, q1_days, q3_days, mean_days; with ``by_date="created_at"``
    also created, open_deals, share_open and km_median_close_days (median days to any
    close, open deals censored; NaN while less than half of the cohort has closed).
    """
    if by_date not in ("closed_at", "created_at"):
        raise ValueError(f"by_date must be 'closed_at' or 'created_at', not {by_date!r}")
    wanted = _outcome(outcome)
    as_of = ensure_instant(as_of)
    d = deal_cycles(deals, as_of=as_of)
    rows = []
    for p in periods_back(as_of, period, periods):
        end = min(p.end, as_of)
        if by_date == "closed_at":
            in_p = d["status_at"].isin(wanted) & (d["closed_at"] >= p.start) & (d["closed_at"] < end)
            cohort = None
        else:
            cohort = d.loc[(d["created_at"] >= p.start) & (d["created_at"] < end)]
            in_p = pd.Series(False, index=d.index)
            in_p.loc[cohort.index] = cohort["status_at"].isin(wanted)
        x = d.loc[in_p, "cycle_days"].to_numpy(dtype="float64")
        row = {"period": p.label, "start": p.start, "end": p.end, "deals": len(x),
               "median_days": _q(x, 0.5), "q1_days": _q(x, 0.25), "q3_days": _q(x, 0.75),
               "mean_days": float(x.mean()) if len(x) else np.nan}
        if cohort is not None:
            km = kaplan_meier(cohort["cycle_days"], ~cohort["censored"])
            n_open = int(cohort["censored"].sum())
            row.update({"created": len(cohort), "open_deals": n_open,
                        "share_open": n_open / len(cohort) if len(cohort) else np.nan,
                        "km_median_close_days": km.median})
        rows.append(row)
    out = pd.DataFrame(rows)
    out["deals"] = out["deals"].astype("int64")
    return out


# ----------------------------------------------------------------------------- growth over time
@dataclass(frozen=True)
class CycleGrowth:
    """The yearly relative change of the sales cycle, with its interval and p-value (log-linear OLS)."""

    per_year: float
    low: float
    high: float
    p_value: float
    n: int
    excluded: int
    start: pd.Timestamp
    end: pd.Timestamp
    alpha: float = 0.05

    @property
    def estimate(self) -> float:
        return self.per_year

    @property
    def level(self) -> float:
        return 1 - self.alpha

    @property
    def years(self) -> float:
        """Length of the window in years."""
        return (self.end - self.start).total_seconds() / (365.25 * _DAY_S)

    def over(self, years: float) -> float:
        """The compounded change over ``years`` years at this rate (0.22 = +22%)."""
        return (1 + self.per_year) ** years - 1

    def to_frame(self) -> pd.DataFrame:
        """One row: per_year, low, high, p_value, n, excluded."""
        return pd.DataFrame([{"per_year": self.per_year, "low": self.low, "high": self.high,
                              "p_value": self.p_value, "n": self.n, "excluded": self.excluded}])

    def summary(self) -> str:
        return (f"{self.per_year:+.1%} a year ({self.level:.0%} CI {self.low:+.1%} to {self.high:+.1%}, "
                f"p = {self.p_value:.3g}), {self.n:,} deals")


@metric(report="04", unit="pct")
def cycle_growth(deals: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                 outcome: str = "won", alpha: float = 0.05) -> CycleGrowth:
    """The yearly relative change of the sales cycle of won deals: the slope of the log cycle on the close date (statsmodels OLS, robust errors), as a percentage a year.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now".
    start : the first close instant of the window (None: every close before ``as_of``).
    outcome : ``"won"``, ``"lost"`` or ``"closed"``.
    alpha : 1 - confidence level.

    Returns
    -------
    :class:`CycleGrowth`: ``per_year`` = exp(slope) - 1 (+0.04: cycles of deals closed a
    year later are 4% longer, as a geometric mean), its interval (HC3 robust standard
    error), p-value and n. Deals with a zero-day cycle have no logarithm and are
    counted in ``excluded``. With fewer than 3 deals everything is NaN.
    """
    import statsmodels.api as sm

    sel, start_, end_ = _closed_in_window(deals, as_of, start, None, outcome)
    y = sel["cycle_days"].to_numpy(dtype="float64")
    ok = y > 0
    t0 = start_ if start_ is not None else (sel["closed_at"].min() if len(sel) else end_)
    nan = CycleGrowth(np.nan, np.nan, np.nan, np.nan, int(ok.sum()), int((~ok).sum()), t0, end_, alpha)
    if ok.sum() < 3:
        return nan
    years = ((sel["closed_at"] - t0).dt.total_seconds().to_numpy(dtype="float64") / (365.25 * _DAY_S))[ok]
    if np.ptp(years) == 0:
        return nan
    fit = sm.OLS(np.log(y[ok]), sm.add_constant(years)).fit(cov_type="HC3")
    b, se = float(fit.params[1]), float(fit.bse[1])
    from scipy.stats import norm

    z = norm.ppf(1 - alpha / 2)
    return CycleGrowth(math.expm1(b), math.expm1(b - z * se), math.expm1(b + z * se),
                       float(fit.pvalues[1]), int(ok.sum()), int((~ok).sum()), t0, end_, alpha)


# ----------------------------------------------------------------------------- survival
@dataclass(frozen=True, eq=False)
class CycleSurvival:
    """Median time to win and to close per group, counting open deals as censored at as_of.

    ``table``: one row per group (first the row of all deals when grouped): group (a
    label), the ``by`` columns, deals, won, lost, open, median_win_days with
    median_win_low/high (the median days to win among deals that win: Aalen-Johansen,
    lost deals a competing outcome, bootstrap interval), closed_only_median_win_days
    (the plain median of won deals, for contrast), won_share (the estimated share of
    deals eventually won), median_close_days with median_close_low/high (Kaplan-Meier
    median days to any close, Brookmeyer-Crowley interval), and with groups
    others_median_win_days and vs_others.
    ``curves``: long frame, per group and distinct day: group, days, still_open (the
    Kaplan-Meier share of deals not closed yet) with still_open_low/high, won and lost
    (cumulative incidence: share won / lost by that day), won_of_eventual (won /
    won_share: the share of eventually-won deals already won).
    ``fits``: per group label, the (KaplanMeier, CumulativeIncidence) pair.
    """

    table: pd.DataFrame
    curves: pd.DataFrame = field(repr=False)
    fits: dict = field(repr=False)
    by: tuple[str, ...]
    start: pd.Timestamp | None
    as_of: pd.Timestamp
    alpha: float = 0.05

    def row(self, group: str = ALL_LABEL) -> pd.Series:
        """The table row of one group label (``"all deals"`` by default)."""
        hit = self.table.loc[self.table["group"] == group]
        if hit.empty:
            raise KeyError(f"no group {group!r}; groups: {', '.join(map(str, self.table['group']))}")
        return hit.iloc[0]

    def median_win(self, group: str = ALL_LABEL) -> DurationEstimate:
        """The median days to win of one group as a DurationEstimate (estimate, low, high, n, events)."""
        r = self.row(group)
        return DurationEstimate(float(r["median_win_days"]), float(r["median_win_low"]),
                                float(r["median_win_high"]), int(r["deals"]), int(r["won"]), self.alpha,
                                "Aalen-Johansen conditional median, bootstrap interval")

    def median_close(self, group: str = ALL_LABEL) -> DurationEstimate:
        """The Kaplan-Meier median days to close of one group as a DurationEstimate."""
        return self.fits[group][0].median_estimate

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        lines = [f"{r.group}: median to win {_fmt_days(r.median_win_days)} "
                 f"({_fmt_days(r.median_win_low)}-{_fmt_days(r.median_win_high)}), to close "
                 f"{_fmt_days(r.median_close_days)}; {r.deals:,} deals, {r.open:,} open"
                 for r in self.table.itertuples()]
        return "\n".join(lines)


@metric(report="04", unit="days")
def cycle_survival(deals: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                   by: str | Sequence[str] | None = None, accounts: pd.DataFrame | None = None,
                   alpha: float = 0.05, n_boot: int = 500, seed: int = 0) -> CycleSurvival:
    """Median days to win among deals that win, counting deals still open at as_of as censored and lost deals as a competing outcome (Aalen-Johansen), with the Kaplan-Meier median days to close.

    What the numbers mean: for the deals created between ``start`` and ``as_of``, the
    Kaplan-Meier curve ``still_open(t)`` is the share of deals not yet closed (won or
    lost) t days after creation; ``won(t)`` is the share won within t days, which levels
    off at ``won_share``; ``median_win_days`` is the day by which half of the deals that
    will be won are won. Lost deals are *not* censored (that would pretend they could
    still be won and overstate the chance of winning); open deals are censored at
    ``as_of``, assuming they will close like the closed deals of the same age did.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now".
    start : the first creation instant of the deals followed (None: every deal). Give
        the window several typical cycle lengths, so the eventual outcomes are known
        for most deals.
    by : grouping column(s) (deals' columns, or account columns with ``accounts``); None
        gives the single row of all deals.
    accounts : the ``accounts`` table (for account columns such as segment).
    alpha : 1 - confidence level of the intervals.
    n_boot, seed : bootstrap resamples (0: no interval) and the seed that makes them
        repeatable.

    Returns
    -------
    :class:`CycleSurvival` (see its table and curves).
    """
    as_of = ensure_instant(as_of)
    by_cols = () if by is None else ((by,) if isinstance(by, str) else tuple(by))
    d = deal_cycles(deals, as_of=as_of, start=start)
    d = _with_account_columns(d, accounts, list(by_cols))
    dur = d["cycle_days"].to_numpy(dtype="float64")
    out = d["status_at"].to_numpy(dtype=object)
    groups: list[tuple[str, dict, np.ndarray]] = [(ALL_LABEL, {}, np.ones(len(d), dtype=bool))]
    if by_cols:
        keys = d[list(by_cols)].drop_duplicates().reset_index(drop=True)
        idx = _group_index(d, keys, list(by_cols))
        order = []
        for i in range(len(keys)):
            values = {c: keys.at[i, c] for c in by_cols}
            label = " / ".join("(none)" if _isna(v) else str(v) for v in values.values())
            order.append((label, values, idx == i))
        groups += sorted(order, key=lambda g: -int(g[2].sum()))
    rows, curves, fits = [], [], {}
    for label, values, mask in groups:
        km = kaplan_meier(dur[mask], out[mask] != "open", alpha=alpha, label=label)
        ci = cumulative_incidence(dur[mask], out[mask], causes=("won", "lost"), label=label)
        fits[label] = (km, ci)
        win = ci.conditional_median("won", alpha=alpha, n_boot=n_boot, seed=seed)
        won_x = dur[mask & (out == "won")]
        row = {"group": label, **values, "deals": int(mask.sum()), "won": int((out[mask] == "won").sum()),
               "lost": int((out[mask] == "lost").sum()), "open": int((out[mask] == "open").sum()),
               "median_win_days": win.estimate, "median_win_low": win.low, "median_win_high": win.high,
               "closed_only_median_win_days": float(np.median(won_x)) if len(won_x) else np.nan,
               "won_share": ci.final("won") if ci.n else np.nan,
               "median_close_days": km.median, "median_close_low": km.median_low,
               "median_close_high": km.median_high}
        if by_cols:
            if label == ALL_LABEL:
                row.update({"others_median_win_days": np.nan, "vs_others": np.nan})
            else:
                rest = cumulative_incidence(dur[~mask], out[~mask], causes=("won", "lost"))
                other = rest.conditional_quantile("won", 0.5)
                row.update({"others_median_win_days": other,
                            "vs_others": win.estimate / other if other and other > 0 else np.nan})
        rows.append(row)
        curves.append(_curve_frame(label, km, ci))
    table = pd.DataFrame(rows)
    table = table[["group", *by_cols, *[c for c in table.columns if c not in ("group", *by_cols)]]]
    for c in ("deals", "won", "lost", "open"):
        table[c] = table[c].astype("int64")
    return CycleSurvival(table, pd.concat(curves, ignore_index=True), fits, by_cols,
                         None if start is None else ensure_instant(start, name="start"), as_of, alpha)


# ----------------------------------------------------------------------------- time in stage
@metric(report="04", unit="days")
def stage_time_table(history: pd.DataFrame, *, as_of: pd.Timestamp, stages: pd.DataFrame | None = None,
                     quantile: float = 0.9) -> pd.DataFrame:
    """Per pipeline stage, the median and 90th-percentile days of a completed visit (the stalled-deal norms of report 02, from stage_time_norms) and the stage's share of all the days completed visits took.

    Parameters
    ----------
    history : the canonical ``stage_history`` table, or a scan of it (see :func:`stage_visits`).
    as_of : the instant "now".
    stages : the ``stages`` table; when given, rows follow the pipeline order and closed
        stages (won/lost, where deals do not wait) are left out. Without it, stages are
        ordered by where they usually come in a deal's path.
    quantile : the stalled-deal norm's quantile (``norm_days``), as in report 02.

    Returns
    -------
    :func:`stage_time_norms` (stage, visits, completed, open, median_days, p90_days,
    norm_days) plus mean_days, total_days (summed days of completed visits) and
    share_of_time (total_days / all stages' total_days: which stage eats the time).
    """
    _check_quantile(quantile)
    if is_scan(history):  # DuckDB reduces the snapshot's file to one row per stage
        engine = _engine(history)
        out = engine.stage_norms(history, as_of=as_of, quantile=quantile, min_completed=1,
                                 totals=True).set_index("stage")
        position = out.pop("position")
    else:
        v = stage_visits(history, as_of=as_of)  # built once for the norms and the totals
        out = _norms(v, quantile, 1, totals=True).set_index("stage")
        position = v.groupby("stage")["visit"].median().reindex(out.index)
    if stages is not None and len(stages):
        _require(stages, ("stage", "order"), "stages")
        info = stages.groupby("stage")
        order = info["order"].min()
        if "is_closed" in stages.columns:
            closed = info["is_closed"].agg(lambda s: bool(s.fillna(False).all()))
            out = out.loc[~out.index.isin(closed.index[closed])]
        out["_order"] = out.index.map(order).astype("float64")
    else:  # stages no deal ever left (won, lost) last, the others where deals usually meet them
        out["_order"] = position.where(out["completed"] > 0, np.inf)
    total = out["total_days"].sum()
    out["share_of_time"] = out["total_days"] / total if total > 0 else np.nan
    out = out.sort_values(["_order"], na_position="last", kind="stable").drop(columns="_order")
    return out.reset_index()


# ----------------------------------------------------------------------------- helpers
def _outcome(outcome: str) -> tuple[str, ...]:
    try:
        return OUTCOMES[outcome]
    except KeyError:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}") from None


def _closed_in_window(deals, as_of, start, end, outcome):
    """Deals of the outcome closed in [start, end) before as_of, with their cycle_days."""
    wanted = _outcome(outcome)
    as_of = ensure_instant(as_of)
    end_ = as_of if end is None else min(ensure_instant(end, name="end"), as_of)
    start_ = None if start is None else ensure_instant(start, name="start")
    d = deal_cycles(deals, as_of=as_of)
    keep = d["status_at"].isin(wanted) & (d["closed_at"] < end_)
    if start_ is not None:
        keep &= d["closed_at"] >= start_
    return d.loc[keep], start_, end_


def _summary(x: np.ndarray, outcome: str, start, end, alpha: float) -> CycleSummary:
    m = median_ci(x, alpha=alpha)
    return CycleSummary(outcome, len(x), m.estimate, m.low, m.high, _q(x, 0.25), _q(x, 0.75), _q(x, 0.9),
                        float(x.mean()) if len(x) else np.nan, start, end, alpha)


def _q(x: np.ndarray, q: float) -> float:
    """Quantile with linear interpolation (pandas' default); NaN for no data."""
    return float(np.quantile(x, q)) if len(x) else np.nan


def _with_account_columns(d: pd.DataFrame, accounts: pd.DataFrame | None, cols) -> pd.DataFrame:
    """Add the account columns among ``cols`` that deals lack, through deals.account_id."""
    need = [c for c in cols if c not in d.columns]
    if not need:
        return d
    if accounts is None:
        raise CrmDataError(f"deals has no column(s) {', '.join(need)}; pass the accounts table to take "
                           "them from the deal's account", table="deals", column=need[0])
    _require(accounts, ("account_id", *need), "accounts")
    _require(d, ("account_id",), "deals")
    info = accounts.drop_duplicates("account_id").set_index("account_id")[need]
    d = d.copy()
    for c in need:
        d[c] = d["account_id"].map(info[c])
    return d


def _group_index(d: pd.DataFrame, keys: pd.DataFrame, by) -> np.ndarray:
    """For each row of d, the position of its key in ``keys`` (missing values match missing)."""
    if not len(d):
        return np.zeros(0, dtype="int64")

    def index(frame: pd.DataFrame) -> pd.Index:
        cols = [frame[c].astype(object).where(frame[c].notna(), "\0na") for c in by]
        return pd.Index(cols[0]) if len(cols) == 1 else pd.MultiIndex.from_arrays(cols)

    return np.asarray(index(keys).get_indexer(index(d)), dtype="int64")


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _with_owner_names(out: pd.DataFrame, users: pd.DataFrame | None, by) -> pd.DataFrame:
    if users is None or "owner_id" not in by:
        return out
    _require(users, ("user_id",), "users")
    info = users.drop_duplicates("user_id").set_index("user_id")
    pos = list(out.columns).index("owner_id") + 1
    for c in ("team", "name"):
        if c in info.columns and c not in out.columns:
            out.insert(pos, c, out["owner_id"].map(info[c]))
    return out


def _curve_frame(label: str, km: KaplanMeier, ci: CumulativeIncidence) -> pd.DataFrame:
    t = ci.table
    if not len(t):
        return pd.DataFrame(columns=["group", "days", "still_open", "still_open_low", "still_open_high",
                                     "won", "lost", "won_of_eventual"])
    if len(km.table):
        pos = np.searchsorted(km.table["time"].to_numpy(), t["time"].to_numpy(), side="right") - 1
        low = np.where(pos >= 0, km.table["low"].to_numpy()[np.maximum(pos, 0)], 1.0)
        high = np.where(pos >= 0, km.table["high"].to_numpy()[np.maximum(pos, 0)], 1.0)
    else:
        low = high = np.ones(len(t))
    final = ci.final("won")
    return pd.DataFrame({"group": label, "days": t["time"].to_numpy(), "still_open": t["none"].to_numpy(),
                         "still_open_low": low, "still_open_high": high, "won": t["won"].to_numpy(),
                         "lost": t["lost"].to_numpy(),
                         "won_of_eventual": t["won"].to_numpy() / final if final > 0 else np.nan})


def _fmt_days(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == math.inf:
        return "not bounded"
    return f"{x:.1f}"
