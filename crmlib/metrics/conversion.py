"""Conversion, funnel and lead sources (report 03): where leads and deals fall out, which sources pay.

Conventions shared by every function here (see also :mod:`crmlib.metrics.pipeline`):

* ``as_of`` is the instant "now"; nothing at or after it counts. A lead exists at
  ``as_of`` when it was created before it; it has *converted* when it became a deal
  before ``as_of``; it is *won* when its deal is won at ``as_of``
  (:func:`~crmlib.metrics.pipeline.deal_status_at`), so a deal won after ``as_of`` is
  not a win yet.
* A **cohort** is every lead (or deal) *created* in a window ``[start, end)``, followed
  to ``as_of``; it is never a snapshot of what happens to sit in a stage today. The
  default window of the report (:func:`cohort_window`) ends some days before ``as_of``,
  so that the cohort's deals had time to close.
* Rates are fractions with their counts and 95% Wilson intervals
  (:mod:`crmlib.stats.intervals`); money is read from ``amount_rep`` (the reporting
  currency, see :func:`crmlib.money.to_reporting`); durations are in days.
* Missing group keys (a lead without source, a lost deal without reason) form their own
  group; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..errors import CrmDataError
from ..lookup import isin, positions
from ..money import require_single_currency
from ..periods import ensure_instant, periods_back
from ..stats.intervals import Proportion, wilson, wilson_frame
from .catalogue import metric
from ..pushdown.scan import is_scan
from .cycle import _engine, _require
from .pipeline import deal_status_at

__all__ = [
    "CohortWindow", "Funnel", "SourceComparison", "cohort_window", "lead_outcomes",
    "lead_conversion", "deals_by_source", "source_table", "rank_sources", "source_vs_others",
    "source_comparisons", "conversion_change", "leads_by_period", "stage_funnel", "lost_deals",
    "lost_summary", "lost_reason_changes", "LEAD_COLUMNS",
]

#: the lead columns report 03 uses: lead_conversion and leads_by_period by source
LEAD_COLUMNS = ("lead_id", "created_at", "converted_at", "deal_id", "source")

AMOUNT_COL = "amount_rep"
NOT_RECORDED = "(not recorded)"
_DAY_S = 86_400.0
_MEASURES = {
    "median_cycle_days": "median days from creation to close of won deals",
    "mean_deal_size": "mean amount of all deals (open, won and lost)",
}


# ----------------------------------------------------------------------------- cohort window
@dataclass(frozen=True)
class CohortWindow:
    """The creation window ``[start, end)`` of a cohort, followed up to ``as_of``.

    ``start`` None means "from the first record on".
    """

    start: pd.Timestamp | None
    end: pd.Timestamp
    as_of: pd.Timestamp
    days: int | None = None
    maturity_days: int = 0

    @property
    def label(self) -> str:
        """``2025-04-01 to 2026-03-31`` (the last day included), or ``up to ...`` without a start."""
        last = (self.end - pd.Timedelta(microseconds=1)).date()
        return f"{self.start.date()} to {last}" if self.start is not None else f"up to {last}"

    def shifted(self, as_of: pd.Timestamp) -> "CohortWindow":
        """The same construction seen from another instant (for previous-period and year-ago values)."""
        if self.start is None:
            return cohort_window(as_of, days=None, maturity_days=self.maturity_days)
        return cohort_window(as_of, days=self.days, maturity_days=self.maturity_days)


@metric(report="03", unit="label")
def cohort_window(as_of: pd.Timestamp, *, days: int | None = 365, maturity_days: int = 90) -> CohortWindow:
    """The creation window of a conversion cohort: the ``days`` days that end ``maturity_days`` days before as_of.

    Leads and deals created in the window are followed up to ``as_of``. Ending the
    window ``maturity_days`` before ``as_of`` gives the youngest of them time to close,
    so their conversion is not understated by deals that are simply still open.
    ``days=None`` starts the window at the first record.
    """
    as_of = ensure_instant(as_of)
    if maturity_days is None or maturity_days < 0 or float(maturity_days) != int(maturity_days):
        raise ValueError(f"maturity_days must be a whole number of days, 0 or more, not {maturity_days}")
    if days is not None and (not days > 0 or float(days) != int(days)):
        raise ValueError(f"days must be a positive whole number (or None for all history), not {days}")
    # calendar days: a window ends at the same wall-clock time as as_of, across DST changes
    end = as_of - pd.DateOffset(days=int(maturity_days))
    start = None if days is None else end - pd.DateOffset(days=int(days))
    return CohortWindow(start, end, as_of, None if days is None else int(days), int(maturity_days))


def _window(start, end, as_of):
    """(start or None, min(end, as_of)) as instants."""
    as_of = ensure_instant(as_of)
    end = as_of if end is None else min(ensure_instant(end, name="end"), as_of)
    start = None if start is None else ensure_instant(start, name="start")
    if start is not None and not start < end:
        raise ValueError(f"the window start ({start}) must lie before its end ({end})")
    return start, end, as_of


def _wilson(frame: pd.DataFrame, successes_col: str, n_col: str, *, alpha: float, name: str) -> pd.DataFrame:
    """:func:`wilson_frame`, with the bounds made to hold the estimate exactly.

    At 0 (or n) successes the Wilson bound is mathematically the estimate itself, but
    floating point leaves it off by ~1e-17 (a "negative" error bar); clamp that away.
    """
    out = wilson_frame(frame, successes_col, n_col, alpha=alpha, name=name)
    out[f"{name}_low"] = np.fmin(out[f"{name}_low"], out[name])
    out[f"{name}_high"] = np.fmax(out[f"{name}_high"], out[name])
    return out


def _in_window(times: pd.Series, start, end) -> pd.Series:
    keep = times < end
    if start is not None:
        keep &= times >= start
    return keep


# ----------------------------------------------------------------------------- leads
@metric(report="03", unit="flag")
def lead_outcomes(leads: pd.DataFrame, deals: pd.DataFrame | None, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """Each lead created before as_of, whether it had become a deal before as_of, and whether that deal is won at as_of.

    Parameters
    ----------
    leads : the canonical ``leads`` table.
    deals : the canonical ``deals`` table (None: nothing can be judged won).
    as_of : the instant "now".

    Returns
    -------
    The leads created before ``as_of`` with added columns: ``converted_when`` (the
    lead's ``converted_at``, or, when it is missing, the created_at of the deal its
    ``deal_id`` names), ``deal_status`` (open / won / lost at ``as_of``, missing when the
    lead has no deal that exists at ``as_of``), ``won`` (its deal is won at ``as_of``),
    ``converted`` (converted before ``as_of``, or won) and ``days_to_convert`` (created to
    converted, for converted leads).
    """
    as_of = ensure_instant(as_of)
    _require(leads, ("lead_id", "created_at"), "leads")
    out = leads.loc[leads["created_at"] < as_of].copy()
    when = out["converted_at"] if "converted_at" in out.columns else pd.Series(
        pd.NaT, index=out.index, dtype=out["created_at"].dtype)
    has_deal = out["deal_id"].notna() if "deal_id" in out.columns else pd.Series(False, index=out.index)
    status = pd.Series(pd.NA, index=out.index, dtype="str")
    if deals is not None and "deal_id" in out.columns:
        # each lead's deal looked up among the deals (its first row, as a map would)
        d = deal_status_at(deals, as_of, columns=())
        status = pd.Series(d["status_at"].array.take(positions(out["deal_id"], d["deal_id"]), allow_fill=True),
                           index=out.index).astype("str")
        deal_created = pd.Series(deals["created_at"].array.take(positions(out["deal_id"], deals["deal_id"]),
                                                                allow_fill=True), index=out.index)
        when = when.where(when.notna() | ~has_deal, deal_created)
    when = when.astype(out["created_at"].dtype)
    out["converted_when"] = when.where(when < as_of)
    out["deal_status"] = status
    out["won"] = (status == "won").fillna(False).astype(bool)
    out["converted"] = (out["converted_when"].notna() | out["won"]).astype(bool)
    gap = (out["converted_when"] - out["created_at"]).dt.total_seconds() / _DAY_S
    out["days_to_convert"] = gap.where(out["converted"])
    return out


@metric(report="03", unit="pct")
def lead_conversion(leads: pd.DataFrame, deals: pd.DataFrame | None, *, as_of: pd.Timestamp,
                    start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                    by: str | Sequence[str] | None = "source", alpha: float = 0.05) -> pd.DataFrame:
    """Of the leads created in the window, the share that became a deal and the share whose deal is won, both at as_of.

    Parameters
    ----------
    leads, deals : the canonical tables.
    as_of : the instant "now" (outcomes are judged then).
    start, end : the creation window ``[start, end)`` of the cohort (None: from the first
        lead / up to ``as_of``); see :func:`cohort_window`.
    by : grouping column(s) of leads, usually ``"source"``; None for one overall row.
    alpha : 1 - confidence level of the Wilson intervals.

    Returns
    -------
    One row per group (most leads first; a missing source is its own group): ``leads``,
    ``lead_share`` (of all leads in the window, with ``_low``/``_high``), ``converted``,
    ``won``, ``lead_to_deal`` and ``lead_to_won`` (with Wilson ``_low``/``_high``),
    ``deal_to_won`` (won / converted, with its interval: open deals count as not won
    yet), ``median_days_to_convert`` and ``mean_days_to_convert`` (lead created to
    converted). Without ``by`` a single row labelled ``all``.
    """
    start, end, as_of = _window(start, end, as_of)
    _require(leads, ("lead_id", "created_at"), "leads")
    used = ["lead_id", "created_at", "converted_at", "deal_id",
            *([] if by is None else [by] if isinstance(by, str) else list(by))]
    cohort = leads.loc[_in_window(leads["created_at"], start, end), list(dict.fromkeys(
        c for c in used if c in leads.columns))]  # the window's leads, the columns used
    lo = lead_outcomes(cohort, deals, as_of=as_of)
    keys = _keys(lo, by, "leads")
    g = lo.groupby(keys, dropna=False, sort=True)
    out = pd.DataFrame({"leads": g.size(), "converted": g["converted"].sum(),
                        "won": g["won"].sum()}).astype("int64")
    out["median_days_to_convert"] = g["days_to_convert"].median()
    out["mean_days_to_convert"] = g["days_to_convert"].mean()
    out = out.reset_index()
    if by is None:
        out = out.drop(columns="_all").assign(group="all")[["group"] + [c for c in out.columns if c != "_all"]]
    out["total_leads"] = int(len(lo))
    out = _wilson(out, "leads", "total_leads", alpha=alpha, name="lead_share")
    out = _wilson(out, "converted", "leads", alpha=alpha, name="lead_to_deal")
    out = _wilson(out, "won", "leads", alpha=alpha, name="lead_to_won")
    out = _wilson(out, "won", "converted", alpha=alpha, name="deal_to_won")
    cols = ([c for c in out.columns if c in (keys if by is not None else ["group"])]
            + ["leads", "lead_share", "lead_share_low", "lead_share_high", "converted", "won",
               "lead_to_deal", "lead_to_deal_low", "lead_to_deal_high",
               "lead_to_won", "lead_to_won_low", "lead_to_won_high",
               "deal_to_won", "deal_to_won_low", "deal_to_won_high",
               "median_days_to_convert", "mean_days_to_convert"])
    out = out[cols].sort_values("leads", ascending=False, kind="stable").reset_index(drop=True)
    return out


def _keys(frame: pd.DataFrame, by, table: str) -> list[str]:
    if by is None:
        frame["_all"] = "all"
        return ["_all"]
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise CrmDataError(f"{table} has no column(s) {', '.join(missing)} to group by", table=table,
                           column=missing[0])
    return keys


# ----------------------------------------------------------------------------- deals by source
@metric(report="03", unit="money")
def deals_by_source(deals: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                    end: pd.Timestamp | None = None, by: str | Sequence[str] = "source",
                    amount_col: str = AMOUNT_COL, alpha: float = 0.05) -> pd.DataFrame:
    """Per source, the deals created in the window with their outcome at as_of, won revenue, average deal size and median won cycle.

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col``.
    as_of : the instant "now".
    start, end : the creation window ``[start, end)`` (None: all deals / up to ``as_of``).
    by : grouping column(s) of deals, usually the deal's ``"source"``.
    amount_col : the money column (reporting currency).

    Returns
    -------
    One row per group (most deals first): ``deals``, ``open``, ``won``, ``lost``,
    ``win_rate`` (won / closed with Wilson ``_low``/``_high``), ``won_revenue`` (sum of
    won amounts), ``avg_deal_size`` (mean amount of all the group's deals: open, won and
    lost), ``avg_won_size``, ``median_cycle_days`` and ``mean_cycle_days`` (created to
    closed, won deals only), ``missing_amount``.
    """
    start, end, as_of = _window(start, end, as_of)
    require_single_currency(deals, amount_col)
    d = deal_status_at(deals, as_of)
    d = d.loc[_in_window(d["created_at"], start, end)].copy()
    keys = _keys(d, by, "deals")
    amount = d[amount_col].astype("float64")
    won = d["status_at"] == "won"
    d["_open"] = d["status_at"] == "open"
    d["_won"] = won
    d["_lost"] = d["status_at"] == "lost"
    d["_amount"] = amount
    d["_won_amount"] = amount.where(won)
    d["_cycle"] = ((d["closed_at"] - d["created_at"]).dt.total_seconds() / _DAY_S).where(won)
    d["_no_amount"] = amount.isna()
    g = d.groupby(keys, dropna=False, sort=True)
    out = pd.DataFrame({"deals": g.size(), "open": g["_open"].sum(), "won": g["_won"].sum(),
                        "lost": g["_lost"].sum()}).astype("int64")
    out["closed"] = out["won"] + out["lost"]
    out["won_revenue"] = g["_won_amount"].sum(min_count=1)
    out.loc[out["won"] == 0, "won_revenue"] = 0.0  # no won deal: nothing won (not unknown)
    out["avg_deal_size"] = g["_amount"].mean()
    out["avg_won_size"] = g["_won_amount"].mean()
    out["median_cycle_days"] = g["_cycle"].median()
    out["mean_cycle_days"] = g["_cycle"].mean()
    out["missing_amount"] = g["_no_amount"].sum().astype("int64")
    out = _wilson(out.reset_index(), "won", "closed", alpha=alpha, name="win_rate")
    cols = keys + ["deals", "open", "won", "lost", "closed", "win_rate", "win_rate_low", "win_rate_high",
                   "won_revenue", "avg_deal_size", "avg_won_size", "median_cycle_days",
                   "mean_cycle_days", "missing_amount"]
    return out[cols].sort_values("deals", ascending=False, kind="stable").reset_index(drop=True)


@metric(report="03", unit="table")
def source_table(deals: pd.DataFrame, leads: pd.DataFrame | None = None, *, as_of: pd.Timestamp,
                 start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                 amount_col: str = AMOUNT_COL, alpha: float = 0.05, detail: bool = False) -> pd.DataFrame:
    """One row per source: leads and their lead-to-deal and lead-to-won conversion, then the source's deals, won revenue, average deal size and cycle.

    The lead columns come from :func:`lead_conversion` (by the lead's source), the deal
    columns from :func:`deals_by_source` (by the deal's source), both for the same
    creation window and judged at ``as_of``. A source with deals but no leads (e.g.
    outbound) has missing lead columns; without a leads table only deal columns are
    given. Rows are ordered by won revenue, largest first.

    Columns (``detail=False``): source, [leads, lead_share, converted, won_from_leads,
    lead_to_deal, lead_to_won, lead_to_won_low, lead_to_won_high, median_days_to_convert],
    deals, won, closed, win_rate, win_rate_low, win_rate_high, won_revenue,
    avg_deal_size, median_cycle_days; ``detail=True`` adds every column of
    :func:`deals_by_source`.
    """
    deal_part = deals_by_source(deals, as_of=as_of, start=start, end=end, amount_col=amount_col,
                                alpha=alpha)
    if leads is None:
        out = deal_part
    else:
        lead_part = lead_conversion(leads, deals, as_of=as_of, start=start, end=end, by="source",
                                    alpha=alpha)
        lead_cols = ["source", "leads", "lead_share", "converted", "won", "lead_to_deal",
                     "lead_to_won", "lead_to_won_low", "lead_to_won_high", "median_days_to_convert"]
        lead_part = lead_part[lead_cols].rename(columns={"won": "won_from_leads"})
        out = lead_part.merge(deal_part, on="source", how="outer")
        for col in ("leads", "converted", "won_from_leads", "deals", "open", "won", "lost", "closed"):
            out[col] = out[col].astype("Int64")
    if not detail:
        keep = ["source", "leads", "lead_share", "converted", "won_from_leads", "lead_to_deal", "lead_to_won",
                "lead_to_won_low", "lead_to_won_high", "median_days_to_convert", "deals", "won", "closed",
                "win_rate", "win_rate_low", "win_rate_high", "won_revenue", "avg_deal_size",
                "median_cycle_days"]
        out = out[[c for c in keep if c in out.columns]]
    return out.sort_values(["won_revenue", "deals"], ascending=False, na_position="last",
                           kind="stable").reset_index(drop=True)


@metric(report="03", unit="label")
def rank_sources(table: pd.DataFrame, *, rate: str | None = None, min_n: int = 30,
                 n_col: str | None = None) -> pd.DataFrame:
    """Sources ranked by the lower end of the 95% interval of their conversion rate, among sources with at least min_n observations.

    Ranking by the lower bound (not the point estimate) keeps a source with 2 wins out
    of 3 leads from being called the best. ``table`` is a :func:`lead_conversion` or
    :func:`source_table` frame (rate ``"lead_to_won"``, counted over ``leads``) or a
    :func:`deals_by_source` frame (``"win_rate"``, counted over ``closed`` deals).
    ``rate=None`` takes ``lead_to_won`` when the table has lead conversion figures,
    else ``win_rate``. Rows without a source are not ranked.

    Returns
    -------
    The rows with enough observations, best first, with ``rank`` (1 = best),
    ``ranked_by`` (the name of the rate used) and ``ranked_value`` (its value) in front.
    """
    if rate is None:
        rate = ("lead_to_won" if "lead_to_won" in table.columns and table["lead_to_won"].notna().any()
                else "win_rate")
    low = f"{rate}_low"
    for col in (rate, low):
        if col not in table.columns:
            raise KeyError(f"rank_sources: no column {col!r} in the table")
    if n_col is None:
        n_col = "leads" if rate.startswith("lead_") else "closed"
    if n_col not in table.columns:
        raise KeyError(f"rank_sources: no column {n_col!r} with the number of observations")
    keep = table.loc[table[n_col].astype("float64") >= min_n].copy()
    keep = keep.loc[keep[rate].notna()]
    if "source" in keep.columns:
        keep = keep.loc[keep["source"].notna()]  # "no source recorded" is not a source to pick
    keep = keep.sort_values([low, rate], ascending=False, kind="stable").reset_index(drop=True)
    keep.insert(0, "ranked_value", keep[rate].astype("float64"))
    keep.insert(0, "ranked_by", pd.Series([rate] * len(keep), dtype="str"))
    keep.insert(0, "rank", np.arange(1, len(keep) + 1))
    return keep


# ----------------------------------------------------------------------------- source vs others
@dataclass(frozen=True)
class SourceComparison:
    """One source against all other deals on a measure: the ratio with a bootstrap interval and a test.

    ``ratio`` = the source's value / the other deals' value; ``low``/``high`` its interval
    (``level``): the percentile bootstrap, or, when both groups hold at least
    ``LARGE_SAMPLE`` deals, normal on the log ratio from the groups' standard errors
    (``interval`` says which); ``p_value`` from ``test`` (Mann-Whitney U for cycle times,
    Welch's t-test for deal sizes).
    """

    source: str
    measure: str
    value: float
    others_value: float
    ratio: float
    low: float
    high: float
    n: int
    n_others: int
    p_value: float
    test: str
    level: float = 0.95
    interval: str = "percentile bootstrap"

    @property
    def significant(self) -> bool:
        """Whether the difference is significant at 1 - level."""
        return bool(np.isfinite(self.p_value) and self.p_value < 1 - self.level)

    def to_frame(self) -> pd.DataFrame:
        """One row with every field."""
        return pd.DataFrame([{k: getattr(self, k) for k in self.__dataclass_fields__}])

    def summary(self) -> str:
        return (f"{self.source} / others on {self.measure}: {self.ratio:.2f} "
                f"({self.level:.0%} CI {self.low:.2f} to {self.high:.2f}; n = {self.n} vs {self.n_others}; "
                f"{self.test} p = {self.p_value:.3g})")


def _measure_values(deals, as_of, start, end, measure, amount_col):
    if measure not in _MEASURES:
        raise ValueError(f"measure must be one of {', '.join(_MEASURES)}, not {measure!r}")
    start, end, as_of = _window(start, end, as_of)
    d = deal_status_at(deals, as_of)
    d = d.loc[_in_window(d["created_at"], start, end)]
    _require(d, ("source",), "deals")
    if measure == "median_cycle_days":
        d = d.loc[d["status_at"] == "won"]
        values = (d["closed_at"] - d["created_at"]).dt.total_seconds() / _DAY_S
    else:
        require_single_currency(deals, amount_col)
        values = d[amount_col].astype("float64")
    ok = values.notna()
    return d.loc[ok, "source"], values[ok].to_numpy(dtype="float64")


BOOTSTRAP_CELLS = 20_000_000  # resampled values held at once (160 MB)
LARGE_SAMPLE = 2_000  # deals in each group from which the interval is normal on the log ratio (a median
# of 2,000 values is as good as normal; resampling 100,000s of deals 2,000 times costs minutes)


def _log_se(values: np.ndarray, measure: str, stat: float) -> float:
    """The standard error of log(median) or log(mean) of ``values`` (``stat``: that median or mean)."""
    if measure == "median_cycle_days":
        from scipy.stats.mstats import mjci

        return float(np.asarray(mjci(values, prob=[0.5]))[0]) / stat
    return float(np.std(values, ddof=1)) / math.sqrt(len(values)) / stat


def _compare(src_values, other_values, source, measure, *, n_resamples, seed, level):
    stat = np.median if measure == "median_cycle_days" else np.mean
    n, m = len(src_values), len(other_values)
    value = float(stat(src_values)) if n else np.nan
    others = float(stat(other_values)) if m else np.nan
    ratio = value / others if n and m and others != 0 else np.nan
    low = high = p = np.nan
    interval = "percentile bootstrap"
    test = "Mann-Whitney U" if measure == "median_cycle_days" else "Welch t-test"
    if n >= 2 and m >= 2 and np.isfinite(ratio):
        # Large samples: each statistic is close to normal (the central limit theorem, and the
        # median's asymptotic normality), so the interval is normal on the log ratio with the
        # two groups' standard errors added in quadrature (the groups are independent): for a
        # mean s / sqrt(n), for a median the Maritz-Jarrett estimate (scipy.stats.mstats.mjci),
        # each divided by its statistic (the delta method for the log). No resampling: a
        # bootstrap of a million deals costs minutes and only estimates the same standard error.
        if min(n, m) >= LARGE_SAMPLE and value > 0 and others > 0:
            se = math.hypot(_log_se(src_values, measure, value), _log_se(other_values, measure, others))
            z = float(sps.norm.ppf(0.5 + level / 2))
            low, high = ratio * math.exp(-z * se), ratio * math.exp(z * se)
            interval = ("normal on the log ratio, Maritz-Jarrett standard errors of the medians"
                        if measure == "median_cycle_days" else
                        "normal on the log ratio, standard errors of the means")
        else:
            def statistic(x, y, axis=-1):
                return stat(x, axis=axis) / stat(y, axis=axis)

            # scipy resamples batch x n values at once: bounded, so many deals need not hold
            # n_resamples x n floats (whole, the same numbers as before for small samples)
            cells = int(n_resamples) * (n + m)
            batch = None if cells <= BOOTSTRAP_CELLS else max(1, BOOTSTRAP_CELLS // (n + m))
            boot = sps.bootstrap((src_values, other_values), statistic, n_resamples=int(n_resamples),
                                 confidence_level=level, method="percentile", vectorized=True,
                                 batch=batch, rng=np.random.default_rng(seed))
            low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        if measure == "median_cycle_days":
            p = float(sps.mannwhitneyu(src_values, other_values, alternative="two-sided").pvalue)
        else:
            p = float(sps.ttest_ind(src_values, other_values, equal_var=False).pvalue)
    return SourceComparison(str(source), measure, value, others, ratio, low, high, n, m, p, test, level,
                            interval)


@metric(report="03", unit="ratio")
def source_vs_others(deals: pd.DataFrame, *, source: str, measure: str, as_of: pd.Timestamp,
                     start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     amount_col: str = AMOUNT_COL, n_resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> SourceComparison:
    """A source's deals against all other deals: the ratio of their median won cycle or of their mean deal size, with a bootstrap interval.

    Parameters
    ----------
    deals : the canonical ``deals`` table (with ``amount_col`` for deal sizes).
    source : the deal source to compare (e.g. ``"referral"``); "others" are the deals of
        every other source, outbound and deals without a source included.
    measure : ``"median_cycle_days"`` (created to closed, won deals at ``as_of``; 0.7
        means 30% faster) or ``"mean_deal_size"`` (all deals existing at ``as_of``; 0.85
        means 15% smaller).
    as_of, start, end : outcomes at ``as_of`` of deals created in ``[start, end)``.
    n_resamples, seed : the percentile bootstrap (seeded, so a re-run gives the same
        interval); not used when both groups hold ``LARGE_SAMPLE`` deals or more (the
        interval is then normal on the log ratio: Maritz-Jarrett standard errors of the
        medians, or the means' standard errors).
    level : confidence level.

    Returns
    -------
    :class:`SourceComparison` (ratio, interval, both values, counts, p-value).
    """
    src, values = _measure_values(deals, as_of, start, end, measure, amount_col)
    mine = (src == source).to_numpy()
    return _compare(values[mine], values[~mine], source, measure, n_resamples=n_resamples, seed=seed,
                    level=level)


@metric(report="03", unit="ratio")
def source_comparisons(deals: pd.DataFrame, *, measure: str, as_of: pd.Timestamp,
                       start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                       amount_col: str = AMOUNT_COL, min_n: int = 10, n_resamples: int = 2000,
                       seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Every source against all other deals on one measure (see source_vs_others): one row per source with the ratio, its interval and a p-value.

    Sources with fewer than ``min_n`` values are left out (a median of five cycles says
    little). Because every source is tested, the p-values are also adjusted with Holm's
    method (``p_adjusted``, statsmodels ``multipletests``); ``significant`` means
    ``p_adjusted`` < 1 - ``level``. Rows: significant ones first, then by how far the
    ratio lies from 1.
    """
    from statsmodels.stats.multitest import multipletests

    src, values = _measure_values(deals, as_of, start, end, measure, amount_col)
    rows = []
    names = src.astype("object").where(src.notna(), None)
    for name in sorted({s for s in names if s is not None}):
        mine = (names == name).to_numpy()
        if mine.sum() < min_n:
            continue
        res = _compare(values[mine], values[~mine], name, measure, n_resamples=n_resamples, seed=seed,
                       level=level)
        rows.append(dict(res.to_frame().iloc[0]))
    cols = list(SourceComparison.__dataclass_fields__) + ["p_adjusted", "significant"]
    out = pd.DataFrame(rows, columns=cols)
    if not len(out):
        return out
    out["p_adjusted"] = np.nan
    tested = out["p_value"].notna().to_numpy()
    if tested.any():
        out.loc[tested, "p_adjusted"] = multipletests(out.loc[tested, "p_value"].to_numpy(dtype="float64"),
                                                      method="holm")[1]
    out["significant"] = (out["p_adjusted"] < 1 - level).fillna(False).astype(bool)
    out["_gap"] = np.log(out["ratio"].astype("float64")).abs()
    out = out.sort_values(["significant", "_gap"], ascending=False, kind="stable").drop(columns="_gap")
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------- conversion change
@metric(report="03", unit="flag")
def conversion_change(current: pd.DataFrame, baseline: pd.DataFrame, *, by: str = "source",
                      rate: str = "lead_to_won", n_col: str = "leads", success_col: str = "won",
                      min_ratio: float = 0.5, alpha: float = 0.01) -> pd.DataFrame:
    """Per source, the conversion rate now against a baseline, and whether it collapsed: fell below min_ratio of the baseline, significantly after a Holm correction across sources.

    ``current`` and ``baseline`` are two :func:`lead_conversion` tables built the same
    way at two instants (e.g. the cohort seen at ``as_of`` and the same construction a
    year earlier), so both cohorts had the same time to convert. Each source is tested
    with a two-sided Fisher exact test of its 2x2 counts; the p-values are adjusted with
    Holm's method (statsmodels ``multipletests``) because several sources are tested at
    once, which keeps the chance of a false alarm on any source below ``alpha``.

    Returns
    -------
    One row per group present in either table: ``leads_now``, ``won_now``,
    ``rate_now``, ``leads_before``, ``won_before``, ``rate_before``, ``ratio`` (now /
    before), ``p_value`` (Fisher), ``p_adjusted`` (Holm) and ``collapsed`` (ratio <
    ``min_ratio`` and ``p_adjusted`` < ``alpha``); biggest falls first.
    """
    from statsmodels.stats.multitest import multipletests

    def part(frame, tag):
        f = frame[[by, n_col, success_col, rate]].copy()
        return f.rename(columns={n_col: f"leads_{tag}", success_col: f"won_{tag}", rate: f"rate_{tag}"})

    out = part(current, "now").merge(part(baseline, "before"), on=by, how="outer")
    for col in ("leads_now", "won_now", "leads_before", "won_before"):
        out[col] = out[col].astype("Int64")
    out["ratio"] = out["rate_now"] / out["rate_before"].where(out["rate_before"] > 0)
    pvals = []
    for n1, k1, n0, k0 in zip(out["leads_now"], out["won_now"], out["leads_before"], out["won_before"],
                              strict=True):
        if any(pd.isna(x) for x in (n1, k1, n0, k0)) or n1 == 0 or n0 == 0:
            pvals.append(np.nan)
            continue
        table = [[int(k1), int(n1 - k1)], [int(k0), int(n0 - k0)]]
        pvals.append(float(sps.fisher_exact(table).pvalue))
    out["p_value"] = np.array(pvals, dtype="float64")
    out["p_adjusted"] = np.nan
    tested = out["p_value"].notna().to_numpy()
    if tested.any():
        out.loc[tested, "p_adjusted"] = multipletests(out.loc[tested, "p_value"].to_numpy(), method="holm")[1]
    out["collapsed"] = ((out["ratio"] < min_ratio) & (out["p_adjusted"] < alpha)).fillna(False).astype(bool)
    return out.sort_values("ratio", na_position="last", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- leads over time
@metric(report="03", unit="count")
def leads_by_period(leads: pd.DataFrame, *, as_of: pd.Timestamp, period: str = "week", periods: int = 12,
                    by: str = "source") -> pd.DataFrame:
    """Incoming leads per period and source: leads created in each of the last periods up to as_of.

    Returns
    -------
    A long frame, oldest period first: ``period`` (label such as ``2026-W39``),
    ``start``, ``<by>`` and ``leads`` (0 where a source had no lead that period), and
    ``share`` (of the period's leads). Every source seen in the window appears in every
    period; a missing source is its own group.
    """
    as_of = ensure_instant(as_of)
    _require(leads, ("created_at", by), "leads")
    bounds = periods_back(as_of, period, periods)
    key = leads[by].astype("object").where(leads[by].notna(), NOT_RECORDED)
    seen = (leads["created_at"] >= bounds[0].start) & (leads["created_at"] < min(bounds[-1].end, as_of))
    sources = sorted(set(key[seen]), key=str)
    rows = []
    for p in bounds:
        inside = (leads["created_at"] >= p.start) & (leads["created_at"] < min(p.end, as_of))
        counts = key[inside].value_counts()
        total = int(inside.sum())
        for s in sources:
            n = int(counts.get(s, 0))
            rows.append({"period": p.label, "start": p.start, by: s, "leads": n,
                         "share": n / total if total else np.nan})
    out = pd.DataFrame(rows, columns=["period", "start", by, "leads", "share"])
    out["leads"] = out["leads"].astype("int64")
    out["share"] = out["share"].astype("float64")
    out[by] = out[by].astype("str")
    return out


# ----------------------------------------------------------------------------- funnel
@dataclass(frozen=True, eq=False)
class Funnel:
    """The stage funnel of a deal cohort: how many deals reached each stage and how many went on.

    ``table`` has one row per funnel stage (the won stage last): ``step``, ``stage``,
    ``reached`` (deals that entered the stage or a later one), ``reached_share`` (of the
    cohort), ``step_conversion`` (reached / reached at the previous stage, with Wilson
    ``_low``/``_high``), ``drop_off`` (deals that reached the previous stage but not
    this one) and ``drop_off_share``, ``lost_here`` and ``open_here`` (deals whose
    furthest stage is this one and which are lost / still open at ``as_of``).
    """

    table: pd.DataFrame
    cohort: int
    whole: Proportion
    start: pd.Timestamp | None
    end: pd.Timestamp
    as_of: pd.Timestamp
    pipeline: str | None = None
    stage_order_source: str = "stages"
    no_history: int = 0
    open_deals: int = 0
    deals: pd.DataFrame = field(default=None, repr=False)

    @property
    def biggest_drop(self) -> pd.Series | None:
        """The row of the step that loses the largest share of the deals that reached the stage before it."""
        steps = self.table.iloc[1:]
        steps = steps.loc[steps["drop_off_share"].notna()]
        if not len(steps):
            return None
        return steps.loc[steps["drop_off_share"].idxmax()]

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        drop = self.biggest_drop
        text = f"{self.cohort} deals; {self.whole.summary()} reached {self.table['stage'].iloc[-1]}"
        if drop is not None:
            text += f"; biggest drop-off into {drop['stage']} ({drop['drop_off_share']:.0%})"
        return text


def _rows_before(history, before, deal_ids=None) -> pd.DataFrame:
    """deal_id, stage, entered_at of the history rows entered before ``before`` (of the deals
    ``deal_ids`` when given), in the table's order; from a scan, DuckDB picks them."""
    if is_scan(history):
        return _engine(history).rows_before(history, before=before, deal_ids=deal_ids)
    keep = history["entered_at"] < before
    if deal_ids is not None:
        keep &= isin(history["deal_id"], deal_ids)
    return history.loc[keep, ["deal_id", "stage", "entered_at"]]


def _closed_stage_names(history, stages, deals_status) -> tuple[set, set]:
    """(won stages, lost stages): from the stages table, else inferred from the history.

    Inferred: a stage is a won (lost) stage when at least 95% of the deals whose last
    history entry it is are won (lost) at as_of.
    """
    if stages is not None and {"stage", "is_closed"} <= set(stages.columns):
        closed = stages["is_closed"].astype("boolean").fillna(False).astype(bool)
        won_flag = (stages["is_won"].astype("boolean").fillna(False).astype(bool)
                    if "is_won" in stages.columns else pd.Series(False, index=stages.index))
        return set(stages.loc[closed & won_flag, "stage"]), set(stages.loc[closed & ~won_flag, "stage"])
    last = history.sort_values(["deal_id", "entered_at"], kind="stable").drop_duplicates("deal_id", keep="last")
    status = last["deal_id"].map(deals_status)
    share = pd.crosstab(last["stage"], status, normalize="index") if len(last) else pd.DataFrame()
    won = set(share.index[share["won"] >= 0.95]) if "won" in share.columns else set()
    lost = set(share.index[share["lost"] >= 0.95]) if "lost" in share.columns else set()
    return won, lost


def _funnel_order(history, stages, won_st, lost_st, pipeline) -> tuple[list, str]:
    """Funnel stages in order (closed lost stages left out, won stages last) and where the order came from."""
    if stages is not None and {"stage", "order"} <= set(stages.columns):
        st = stages
        if pipeline is not None and "pipeline" in st.columns:
            st = st.loc[st["pipeline"] == pipeline]
        st = st.loc[~st["stage"].isin(lost_st)].dropna(subset=["stage"])
        st = st.assign(_won=st["stage"].isin(won_st), _o=st["order"].astype("float64"))
        st = st.sort_values(["_won", "_o"], kind="stable").drop_duplicates("stage")
        return st["stage"].tolist(), "stages"
    h = history.sort_values(["deal_id", "entered_at"], kind="stable")
    h = h.loc[~h["stage"].isin(lost_st)]
    pos = h.groupby("deal_id").cumcount()
    med = pos.groupby(h["stage"]).median()
    order = pd.DataFrame({"stage": med.index, "_m": med.to_numpy()})
    order["_won"] = order["stage"].isin(won_st)
    order = order.sort_values(["_won", "_m", "stage"], kind="stable")
    return order["stage"].tolist(), "history"


@metric(report="03", unit="pct")
def stage_funnel(deals: pd.DataFrame, history: pd.DataFrame, stages: pd.DataFrame | None = None, *,
                 as_of: pd.Timestamp, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                 pipeline: str | None = None, alpha: float = 0.05) -> Funnel:
    """For the deals created in the window, the share that reached each stage (entered it or a later one before as_of) and the stage-to-stage conversion.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    history : the canonical ``stage_history`` table (only rows before ``as_of`` count), or
        a scan of it (:meth:`crmlib.data.CrmData.scan`: DuckDB picks the cohort's rows).
    stages : the pipeline definition (stage order, which stages close and win). Without
        it the order is inferred from the history (the median position of each stage in
        the deals' paths) and the closing stages from where won and lost deals end.
    as_of : the instant "now".
    start, end : the creation window of the cohort (a cohort, not a snapshot).
    pipeline : the pipeline whose funnel to draw when ``stages`` defines several (default:
        the one most cohort deals run in).

    Returns
    -------
    :class:`Funnel`. A deal reached a stage if it entered that stage or any later funnel
    stage (so a deal that skipped a stage still counts as having passed it); closed-lost
    stages are not funnel steps; the won stage is the last step, and a deal won at
    ``as_of`` reached it even if its history misses the entry. Every deal of the cohort
    reached the first stage; a deal without history rows counts there only (``no_history``).
    """
    start, end, as_of = _window(start, end, as_of)
    _require(history, ("deal_id", "stage", "entered_at"), "stage_history")
    at = deal_status_at(deals, as_of, columns=("pipeline",))  # the columns used, not a copy of all
    d = at.loc[_in_window(at["created_at"], start, end)]
    several = (stages is not None and "pipeline" in stages.columns and stages["pipeline"].nunique() > 1)
    if pipeline is None and several and "pipeline" in d.columns:
        counts = d["pipeline"].value_counts()
        pipeline = str(counts.index[0]) if len(counts) else str(stages["pipeline"].dropna().iloc[0])
    elif pipeline is None and stages is not None and "pipeline" in stages.columns \
            and stages["pipeline"].notna().any():
        pipeline = str(stages["pipeline"].dropna().iloc[0])
    if pipeline is not None and "pipeline" in d.columns and (several or d["pipeline"].nunique() > 1):
        d = d.loc[d["pipeline"] == pipeline]
    h = _rows_before(history, as_of, d["deal_id"])
    status_map = at.drop_duplicates("deal_id").set_index("deal_id")["status_at"]
    st = stages
    if several and st is not None:
        st = st.loc[st["pipeline"] == pipeline]
    # the whole history is only read when the stages table cannot say which stages close a
    # deal or their order (a large export's history has millions of rows)
    known = set(st.columns) if st is not None else set()
    all_h = h.iloc[:0] if {"stage", "is_closed", "order"} <= known else _rows_before(history, as_of)
    won_st, lost_st = _closed_stage_names(all_h, st, status_map)
    order, source = _funnel_order(all_h, st, won_st, lost_st, pipeline)
    if not order:
        raise CrmDataError("no funnel stages: the stages table and the stage history name no open or won "
                           "stage", table="stages")
    rank = {s: i + 1 for i, s in enumerate(order)}
    k = len(order)
    furthest = h.assign(_r=h["stage"].map(rank)).groupby("deal_id")["_r"].max()
    per = d[["deal_id", "status_at"]].copy()
    per["furthest"] = per["deal_id"].map(furthest)
    per["has_history"] = isin(per["deal_id"], h["deal_id"])
    per["furthest"] = per["furthest"].fillna(1)
    won_rank = min((rank[s] for s in won_st if s in rank), default=None)
    if won_rank is not None:
        per.loc[per["status_at"] == "won", "furthest"] = won_rank
        # a deal not won at as_of never counts as having reached the won stage
        not_won = per["status_at"] != "won"
        per.loc[not_won, "furthest"] = per.loc[not_won, "furthest"].clip(upper=won_rank - 1)
    per["furthest"] = per["furthest"].astype("int64")
    f = per["furthest"].to_numpy()
    reached = np.array([(f >= i).sum() for i in range(1, k + 1)], dtype="int64")
    prev = np.concatenate([[len(per)], reached[:-1]])
    table = pd.DataFrame({"step": np.arange(1, k + 1), "stage": pd.Series(order, dtype="str"),
                          "reached": reached, "previous": prev})
    table["reached_share"] = table["reached"] / len(per) if len(per) else np.nan
    table = _wilson(table, "reached", "previous", alpha=alpha, name="step_conversion")
    table["drop_off"] = table["previous"] - table["reached"]
    table["drop_off_share"] = 1 - table["step_conversion"]
    lost = per["status_at"] == "lost"
    opened = per["status_at"] == "open"
    table["lost_here"] = [int((lost & (per["furthest"] == i)).sum()) for i in table["step"]]
    table["open_here"] = [int((opened & (per["furthest"] == i)).sum()) for i in table["step"]]
    table.loc[0, ["step_conversion", "step_conversion_low", "step_conversion_high", "drop_off_share"]] = np.nan
    table.loc[0, "drop_off"] = 0
    table = table.drop(columns="previous")
    whole = wilson(int(reached[-1]), len(per), alpha=alpha)
    return Funnel(table, len(per), whole, start, end, as_of, pipeline, source,
                  int((~per["has_history"]).sum()), int(opened.sum()), per.reset_index(drop=True))


# ----------------------------------------------------------------------------- lost deals
@metric(report="03", unit="label")
def lost_deals(deals: pd.DataFrame, history: pd.DataFrame | None = None, stages: pd.DataFrame | None = None,
               *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
               end: pd.Timestamp | None = None) -> pd.DataFrame:
    """The deals lost in the window (closed as lost at or after start and before end and as_of), each with the stage it was lost at.

    The stage at loss is the last open stage the deal entered before its (last)
    closed-lost entry in ``history`` (rows before ``as_of`` only); it is missing (shown as
    "(not recorded)") when there is no history for the deal. Closed stages come from
    ``stages`` (``is_closed``), else from where lost deals end in the history.
    ``history`` may be a scan of the table (:meth:`crmlib.data.CrmData.scan`): DuckDB then
    picks the lost deals' rows.

    Returns
    -------
    One row per lost deal, newest loss first: deal_id, name, owner_id, source,
    pipeline, deal_type, amount, currency, amount_rep, lost_reason, stage_at_loss,
    created_at, closed_at (those the export has; lost_reason, owner_id and
    stage_at_loss always).
    """
    start, end, as_of = _window(start, end, as_of)
    at = deal_status_at(deals, as_of)
    d = at.loc[(at["status_at"] == "lost") & _in_window(at["closed_at"], start, end)].copy()
    stage = pd.Series(pd.NA, index=d.index, dtype="str")
    if history is not None and len(history):
        _require(history, ("deal_id", "stage", "entered_at"), "stage_history")
        status_map = at.drop_duplicates("deal_id").set_index("deal_id")["status_at"]
        if stages is not None and {"stage", "is_closed"} <= set(stages.columns):  # the lost deals' rows do
            h = hd = _rows_before(history, as_of, d["deal_id"])
        else:  # which stages close a deal is read from where every deal ends
            h = _rows_before(history, as_of)
            hd = h.loc[isin(h["deal_id"], d["deal_id"])]
        won_st, lost_st = _closed_stage_names(h, stages, status_map)
        closed = won_st | lost_st
        hd = hd.sort_values(["deal_id", "entered_at"], kind="stable")
        last_loss = hd.loc[hd["stage"].isin(lost_st)].groupby("deal_id")["entered_at"].max()
        cut = hd["deal_id"].map(last_loss)
        before = hd.loc[~hd["stage"].isin(closed) & (cut.isna() | (hd["entered_at"] <= cut))]
        last_open = before.drop_duplicates("deal_id", keep="last").set_index("deal_id")["stage"]
        stage = d["deal_id"].map(last_open).astype("str")
    d["stage_at_loss"] = stage
    for col in ("lost_reason", "owner_id"):
        if col not in d.columns:
            d[col] = pd.Series(pd.NA, index=d.index, dtype="str")
    keep = [c for c in ("deal_id", "name", "owner_id", "source", "pipeline", "deal_type", "amount", "currency",
                        AMOUNT_COL, "lost_reason", "stage_at_loss", "created_at", "closed_at") if c in d.columns]
    return d.sort_values("closed_at", ascending=False, kind="stable")[keep].reset_index(drop=True)


@metric(report="03", unit="count")
def lost_summary(lost: pd.DataFrame, *, by: str = "lost_reason", amount_col: str = AMOUNT_COL,
                 order: Sequence[str] | None = None, users: pd.DataFrame | None = None) -> pd.DataFrame:
    """Lost deals per group (reason, stage at loss or owner): how many, their value, and their share of all lost deals.

    ``lost`` is a :func:`lost_deals` frame. A missing key is the group "(not recorded)".
    ``order`` (e.g. the funnel's stage order) fixes the row order; otherwise most lost
    deals first. With ``by="owner_id"`` and the ``users`` table, the owner's name and
    team are added.

    Returns
    -------
    ``<by>``, [``name``, ``team``], ``lost``, ``share`` (of lost deals), ``value`` (sum
    of amounts), ``value_share``, ``avg_value``, ``missing_amount``.
    """
    if by not in lost.columns:
        raise CrmDataError(f"lost deals have no column {by!r} to group by", table="deals", column=by)
    key = lost[by].astype("object").where(lost[by].notna(), NOT_RECORDED)
    if amount_col in lost.columns:
        require_single_currency(lost, amount_col)
        amount = lost[amount_col].astype("float64")
    else:
        amount = pd.Series(np.nan, index=lost.index)
    work = pd.DataFrame({by: key.to_numpy(), "_amount": amount.to_numpy(), "_na": amount.isna().to_numpy()})
    g = work.groupby(by, sort=True)
    out = pd.DataFrame({"lost": g.size().astype("int64"), "value": g["_amount"].sum(min_count=1),
                        "missing_amount": g["_na"].sum().astype("int64")})
    out["share"] = out["lost"] / len(lost) if len(lost) else np.nan
    total = amount.sum(min_count=1)
    out["value_share"] = out["value"] / total if pd.notna(total) and total > 0 else np.nan
    known = out["lost"] - out["missing_amount"]
    out["avg_value"] = out["value"] / known.where(known > 0)
    out = out.reset_index()
    if order is not None:
        rank = {s: i for i, s in enumerate(order)}
        out["_o"] = out[by].map(rank).astype("float64")
        out = out.sort_values(["_o", "lost"], ascending=[True, False], na_position="last",
                              kind="stable").drop(columns="_o")
    else:
        out = out.sort_values(["lost", "value"], ascending=False, kind="stable")
    out[by] = out[by].astype("str")
    extra = []
    if users is not None and by == "owner_id":
        _require(users, ("user_id",), "users")
        info = users.drop_duplicates("user_id").set_index("user_id")
        for col in ("name", "team"):
            if col in info.columns:
                out[col] = out[by].map(info[col]).astype("str")
                extra.append(col)
    cols = [by] + extra + ["lost", "share", "value", "value_share", "avg_value", "missing_amount"]
    return out[cols].reset_index(drop=True)


@metric(report="03", unit="count")
def lost_reason_changes(deals: pd.DataFrame, *, as_of: pd.Timestamp, current, previous,
                        by: str = "lost_reason", history: pd.DataFrame | None = None,
                        stages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Deals lost per reason in the current period against the previous one: the change in count and an exact test of whether the rise is more than chance.

    ``current`` and ``previous`` are periods (anything with ``start`` and ``end``, e.g.
    ``r.periods.current``); a period still running at ``as_of`` is cut there, and the
    test allows for the two periods' different lengths: given the reason's losses in
    both periods together, the number in the current one is binomial with the current
    period's share of the time under "no change" (two-sided exact binomial test).

    Returns
    -------
    ``<by>``, ``current``, ``previous``, ``change`` (current - previous), ``change_pct``
    (relative to previous; missing when previous is 0), ``p_value``; largest rise first.
    """
    as_of = ensure_instant(as_of)
    cur_end = min(ensure_instant(current.end, name="current.end"), as_of)
    prev_end = min(ensure_instant(previous.end, name="previous.end"), as_of)
    cur = lost_deals(deals, history, stages, as_of=as_of, start=current.start, end=cur_end)
    prev = lost_deals(deals, history, stages, as_of=as_of, start=previous.start, end=prev_end)
    a = cur[by].astype("object").where(cur[by].notna(), NOT_RECORDED).value_counts()
    b = prev[by].astype("object").where(prev[by].notna(), NOT_RECORDED).value_counts()
    keys = sorted(set(a.index) | set(b.index), key=str)
    out = pd.DataFrame({by: pd.Series(keys, dtype="str"),
                        "current": [int(a.get(k, 0)) for k in keys],
                        "previous": [int(b.get(k, 0)) for k in keys]})
    out["change"] = out["current"] - out["previous"]
    out["change_pct"] = out["change"] / out["previous"].where(out["previous"] > 0)
    len_cur = (cur_end - ensure_instant(current.start, name="current.start")).total_seconds()
    len_prev = (prev_end - ensure_instant(previous.start, name="previous.start")).total_seconds()
    share = len_cur / (len_cur + len_prev) if len_cur + len_prev > 0 else 0.5
    out["p_value"] = [float(sps.binomtest(int(c), int(c + p), share).pvalue) if c + p > 0 else np.nan
                      for c, p in zip(out["current"], out["previous"], strict=True)]
    return out.sort_values(["change", "current"], ascending=False, kind="stable").reset_index(drop=True)
