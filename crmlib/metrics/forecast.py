"""Sales forecast (report 07): bookings per period, revenue targets per quarter, forecast categories.

Conventions shared by every function here (as in :mod:`crmlib.metrics.pipeline`):

* ``as_of`` is the instant "now" (timezone-aware); a deal is won at ``as_of`` when its
  status is won and it closed strictly before ``as_of``. Nothing at or after ``as_of``
  changes a number.
* Money is read from ``amount_col`` (default ``"amount_rep"``, the reporting-currency
  amount added by :func:`crmlib.money.to_reporting`). Missing amounts are skipped in
  sums and counted (``missing_amount``), never filled with zeros.
* Periods are calendar months or ISO weeks (Monday start) in the timezone of ``as_of``;
  a period is ``[start, end)``. The period running at ``as_of`` is marked
  ``complete=False`` with the share of its weekdays already elapsed.

The models (ETS/SARIMAX selection, backtest, win probability, Monte Carlo) live in
:mod:`crmlib.stats.forecast` and :mod:`crmlib.stats.winprob`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CrmConfigError, CrmDataError
from ..money import require_single_currency
from ..periods import Period, ensure_instant, period_containing, working_days
from .catalogue import metric

__all__ = ["FREQS", "CATEGORY_ORDER", "QuarterOutlook", "bookings_series", "elapsed_share",
           "quarter_revenue_target", "forecast_categories", "forecast_periods", "bookings_outlook",
           "quarter_outlook", "forecast_horizon", "bookings_seasonality",
           "bookings_forecast"]

FREQS = ("week", "month")
AMOUNT_COL = "amount_rep"
CATEGORY_ORDER = ("commit", "best case", "pipeline", "omitted")
_CATEGORY_WORDS = {
    "commit": "commit", "committed": "commit", "closed": "commit",
    "best case": "best case", "bestcase": "best case", "best_case": "best case", "upside": "best case",
    "pipeline": "pipeline", "open": "pipeline",
    "omitted": "omitted", "omit": "omitted",
}


def _period_grid(start: pd.Timestamp, end: pd.Timestamp, freq: str = "month") -> list[Period]:
    """The consecutive weeks or months from the one containing ``start`` to the one containing the last instant before ``end``."""
    _check_freq(freq)
    start, end = ensure_instant(start, name="start"), ensure_instant(end, name="end")
    if not start < end:
        raise CrmConfigError(f"period_grid: start ({start}) must be before end ({end})")
    out = [period_containing(start, freq)]
    while out[-1].end < end:
        out.append(out[-1].next())
    return out


@metric(report="07", unit="money")
def bookings_series(deals: pd.DataFrame, as_of: pd.Timestamp, *, freq: str = "month",
                    amount_col: str = AMOUNT_COL, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Bookings: the reporting-currency value of the deals won in each week or month, by close date, up to as_of.

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col``.
    as_of : the instant "now"; deals closed at or after it are not won yet.
    freq : ``"month"`` (calendar months) or ``"week"`` (ISO weeks).
    amount_col : the money column (reporting currency).
    start : the first period is the one containing ``start``; default: the period of the
        first won close (an export rarely holds the history before it, so earlier periods
        would read as zero bookings).

    Returns
    -------
    One row per period from the first to the one running at ``as_of``, with no gaps
    (a period without a won deal has bookings 0.0 and won_deals 0): ``period`` (label),
    ``start``, ``end`` (exclusive), ``won_deals``, ``bookings`` (sum of amounts),
    ``missing_amount`` (won deals without an amount, left out of the sum), ``complete``
    (the period ended by ``as_of``) and ``elapsed_share`` (share of the period's weekdays
    before ``as_of``: 1.0 for complete periods). Empty when nothing was won before ``as_of``.
    """
    _check_freq(freq)
    as_of = ensure_instant(as_of)
    for col in ("status", "closed_at", amount_col):
        if col not in deals.columns:
            raise CrmDataError(f"deals has no {col} column; bookings need status, closed_at and "
                               f"{amount_col} (call money.to_reporting first)", table="deals", column=col)
    require_single_currency(deals, amount_col)
    won = deals.loc[(deals["status"] == "won") & deals["closed_at"].notna() & (deals["closed_at"] < as_of)]
    cols = ["period", "start", "end", "won_deals", "bookings", "missing_amount", "complete",
            "elapsed_share"]
    if won.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
    closes = won["closed_at"].dt.tz_convert(as_of.tz)
    first = ensure_instant(start, name="start") if start is not None else closes.min()
    grid = _period_grid(first, as_of, freq)
    starts = np.array([p.start.value for p in grid], dtype="int64")
    pos = np.searchsorted(starts, _ns(closes), side="right") - 1
    keep = pos >= 0  # deals closed before an explicit start are outside the series
    amount = won[amount_col].to_numpy(dtype="float64")
    n = len(grid)
    value = np.bincount(pos[keep], weights=np.nan_to_num(amount[keep]), minlength=n)
    count = np.bincount(pos[keep], minlength=n)
    missing = np.bincount(pos[keep], weights=np.isnan(amount[keep]).astype(float), minlength=n)
    out = pd.DataFrame({
        "period": pd.Series([p.label for p in grid], dtype="str"),
        "start": pd.Series([p.start for p in grid]),
        "end": pd.Series([p.end for p in grid]),
        "won_deals": count.astype("int64"),
        "bookings": value.astype("float64"),
        "missing_amount": missing.astype("int64"),
        "complete": [bool(p.end <= as_of) for p in grid],
    })
    out["elapsed_share"] = [1.0 if p.end <= as_of else elapsed_share(p, as_of) for p in grid]
    return out[cols]


@metric(report="07", unit="pct")
def elapsed_share(period: Period, as_of: pd.Timestamp) -> float:
    """Share of a period's weekdays (Monday-Friday) that lie before ``as_of`` (0 to 1)."""
    total = working_days(period.start, period.end)
    if total == 0:
        return float(min(max((as_of - period.start) / (period.end - period.start), 0.0), 1.0))
    if as_of <= period.start:
        return 0.0
    if as_of >= period.end:
        return 1.0
    return working_days(period.start, as_of) / total


@metric(report="07", unit="money")
def quarter_revenue_target(targets: pd.DataFrame | None, quarter: Period, *,
                           metric_name: str = "revenue") -> float | None:
    """The revenue target of a quarter: the sum of the owners' revenue targets whose periods fall in it (team targets only when no owner has one).

    A target whose period straddles the quarter counts in proportion to the days of its
    period inside the quarter. Owner targets are preferred because team targets usually
    restate their members' sum; adding both would count the same plan twice.

    Returns None when there is no targets table or no revenue target touches the quarter.
    """
    if targets is None or targets.empty:
        return None
    for col in ("metric", "period_start", "period_end", "target"):
        if col not in targets.columns:
            raise CrmDataError(f"targets has no {col} column", table="targets", column=col)
    t = targets.loc[targets["metric"] == metric_name]
    if t.empty:
        return None
    # calendar days (local dates), so a daylight-saving change does not shave an hour off a period
    q_start = pd.Timestamp(quarter.start.date())
    q_end = pd.Timestamp(quarter.end.date())
    start = t["period_start"].dt.tz_convert(quarter.start.tz).dt.tz_localize(None).dt.normalize()
    end = t["period_end"].dt.tz_convert(quarter.start.tz).dt.tz_localize(None).dt.normalize() \
        + pd.Timedelta(days=1)  # the last day is included
    days = (end - start).dt.days.astype("float64")
    overlap = (end.clip(upper=q_end) - start.clip(lower=q_start)).dt.days.clip(lower=0).astype("float64")
    share = (overlap / days.where(days > 0)).fillna(0.0)
    t = t.assign(_share=share.to_numpy())
    t = t.loc[t["_share"] > 0]
    if t.empty:
        return None
    owner_rows = t["owner_id"].notna() if "owner_id" in t.columns else pd.Series(False, index=t.index)
    use = t.loc[owner_rows] if owner_rows.any() else t
    return float((use["target"].astype("float64") * use["_share"]).sum())


@metric(report="07", unit="money")
def forecast_categories(scored: pd.DataFrame, *, commit: float = 0.8, best_case: float = 0.5,
                        probability_col: str = "p_win", amount_col: str = AMOUNT_COL,
                        category_col: str | None = None) -> pd.DataFrame:
    """Open deals by forecast category (commit, best case, pipeline): count, value, probability-weighted value and the running totals.

    Parameters
    ----------
    scored : open deals with a win probability (``probability_col``) and ``amount_col``,
        e.g. from :func:`crmlib.stats.winprob.score_open_deals`.
    commit, best_case : probability thresholds: a deal is *commit* when its probability
        is at least ``commit``, *best case* when at least ``best_case``, else *pipeline*.
    category_col : a column holding the CRM's own forecast category; when given (and
        filled) it wins over the thresholds. Its values are read case-insensitively
        (commit, best case / upside, pipeline, omitted); other values raise.

    Returns
    -------
    One row per category in the order commit, best case, pipeline (omitted when the CRM
    uses it): ``category``, ``deals``, ``value``, ``expected_value`` (sum of probability
    x amount), ``cumulative_value`` (commit, then commit + best case, ...),
    ``cumulative_expected`` and ``source`` ("crm field" or "thresholds").
    """
    if not 0 <= best_case <= commit <= 1:
        raise CrmConfigError(f"forecast thresholds must satisfy 0 <= best_case ({best_case}) <= commit "
                             f"({commit}) <= 1")
    for col in (probability_col, amount_col):
        if col not in scored.columns:
            raise CrmDataError(f"the scored deals have no {col} column", column=col)
    p = scored[probability_col].astype("float64")
    by_threshold = np.where(p >= commit, "commit", np.where(p >= best_case, "best case", "pipeline"))
    cat = pd.Series(by_threshold, index=scored.index, dtype="str")
    source = "thresholds"
    if category_col is not None and category_col in scored.columns and scored[category_col].notna().any():
        raw = scored[category_col].astype("str").str.strip().str.lower()
        mapped = raw.map(_CATEGORY_WORDS)
        unknown = sorted(set(raw[raw.notna() & mapped.isna()]))
        if unknown:
            raise CrmDataError(f"{category_col} holds values that are no forecast category: "
                               f"{', '.join(unknown[:5])}; use commit, best case, pipeline or omitted",
                               column=category_col)
        cat = mapped.where(mapped.notna(), cat).astype("str")
        source = "crm field"
    amount = scored[amount_col].astype("float64")
    work = pd.DataFrame({"category": cat, "value": amount, "expected": amount * p})
    g = work.groupby("category", sort=False)
    out = pd.DataFrame({"deals": g.size(), "value": g["value"].sum(min_count=1),
                        "expected_value": g["expected"].sum(min_count=1)})
    order = [c for c in CATEGORY_ORDER if c != "omitted" or c in out.index]
    out = out.reindex(order)
    out["deals"] = out["deals"].fillna(0).astype("int64")
    out[["value", "expected_value"]] = out[["value", "expected_value"]].fillna(0.0)
    out["cumulative_value"] = out["value"].cumsum()
    out["cumulative_expected"] = out["expected_value"].cumsum()
    out["source"] = source
    return out.rename_axis("category").reset_index()


# ----------------------------------------------------------------------------- helpers
def _check_freq(freq: str) -> None:
    if freq not in FREQS:
        raise CrmConfigError(f"the bookings series is weekly or monthly: freq must be one of "
                             f"{', '.join(FREQS)}, not {freq!r}")


def _ns(stamps: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) of timezone-aware timestamps."""
    return pd.DatetimeIndex(stamps).as_unit("ns").asi8


# ----------------------------------------------------------------------------- outlook
@metric(report="07", unit="label")
def forecast_periods(series: pd.DataFrame, horizon: int, *, freq: str = "month") -> list[Period]:
    """The periods a bookings forecast covers: the one running at as_of (if any) and the full periods after it, ``horizon`` in all.

    ``series`` is a :func:`bookings_series` table; the first forecast period follows its
    last complete period.
    """
    _check_freq(freq)
    done = series.loc[series["complete"].astype(bool)]
    if done.empty:
        raise CrmDataError("the bookings series has no complete period to forecast from")
    last = period_containing(done["start"].iloc[-1], freq)
    out = [last.next()]
    while len(out) < int(horizon):
        out.append(out[-1].next())
    return out


@metric(report="07", unit="money")
def bookings_outlook(series: pd.DataFrame, forecast, as_of: pd.Timestamp, *, freq: str = "month") -> pd.DataFrame:
    """Forecast bookings per coming period: for the running period, what is booked so far plus the forecast share of its remaining weekdays; for later periods, the forecast.

    Parameters
    ----------
    series : a :func:`bookings_series` table (complete periods + the running one).
    forecast : a :class:`crmlib.stats.forecast.Forecast` made from the complete periods of
        ``series`` (its horizon 1 is the period after the last complete one).
    as_of : the instant "now".

    Returns
    -------
    One row per forecast period: ``horizon``, ``period``, ``start``, ``end``, ``status``
    ("running" or "ahead"), ``booked`` (won so far), ``remaining_share`` (weekdays still
    to come), ``forecast`` (the full-period forecast), ``outlook`` (booked + remaining
    share x forecast), ``year_ago`` (bookings of the same period a year earlier, NaN
    outside the history) and the outlook's interval bounds ``lo_80``, ``hi_80``, ...
    from the forecast's simulated paths. The remaining share assumes bookings arrive
    evenly over a period's weekdays.
    """
    as_of = ensure_instant(as_of)
    periods = forecast_periods(series, forecast.horizon, freq=freq)
    booked_by_label = series.set_index("period")["bookings"]
    done = series.loc[series["complete"].astype(bool)]
    by_start = pd.Series(done["bookings"].to_numpy(), index=[p.value for p in done["start"]])
    rows = []
    for h, per in enumerate(periods):
        running = per.start < as_of < per.end
        booked = float(booked_by_label.get(per.label, 0.0)) if running else 0.0
        share = 1.0 - elapsed_share(per, as_of) if running else 1.0
        path = booked + share * forecast.paths[:, h]
        row = dict(horizon=h + 1, period=per.label, start=per.start, end=per.end,
                   status="running" if running else "ahead", booked=booked, remaining_share=share,
                   forecast=float(forecast.mean[h]), outlook=float(booked + share * forecast.mean[h]),
                   year_ago=float(by_start.get(per.year_ago().start.value, np.nan)))
        for lv in forecast.levels:
            lo, hi = np.quantile(path, [(1 - lv) / 2, (1 + lv) / 2])
            row[f"lo_{lv * 100:.0f}"], row[f"hi_{lv * 100:.0f}"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True, eq=False)
class QuarterOutlook:
    """Bookings of the quarter running at as_of: booked so far, forecast for the rest, target."""

    quarter: str
    start: pd.Timestamp
    end: pd.Timestamp
    booked: float
    rest: float  # forecast for the rest of the quarter
    total: float  # booked + rest
    lower: dict  # level -> lower bound of the total
    upper: dict
    target: float | None
    p_reach_target: float | None  # share of simulated quarters reaching the target
    remaining_share: float  # share of the quarter's weekdays still to come
    method: str
    previous: float  # bookings of the previous quarter
    year_ago: float  # bookings of the same quarter a year earlier

    @property
    def below_target(self) -> bool:
        return self.target is not None and self.total < self.target

    def to_frame(self) -> pd.DataFrame:
        row = dict(quarter=self.quarter, booked=self.booked, rest_forecast=self.rest, total=self.total)
        row.update(previous_quarter=self.previous, year_ago=self.year_ago)
        for lv in sorted(self.lower):
            row[f"lo_{lv * 100:.0f}"], row[f"hi_{lv * 100:.0f}"] = self.lower[lv], self.upper[lv]
        row.update(target=self.target, p_reach_target=self.p_reach_target, method=self.method)
        return pd.DataFrame([row])


@metric(report="07", unit="money")
def quarter_outlook(deals: pd.DataFrame, series: pd.DataFrame, forecast, as_of: pd.Timestamp, *,
                    freq: str = "month", target: float | None = None, targets: pd.DataFrame | None = None,
                    amount_col: str = AMOUNT_COL) -> QuarterOutlook:
    """The quarter's expected bookings: won so far in the quarter plus the forecast for its remaining weekdays, against the quarter's target.

    Each forecast period counts with the share of its weekdays that lie between as_of and
    the quarter's end (bookings assumed to arrive evenly over weekdays); the interval
    comes from the forecast's simulated paths, and ``p_reach_target`` is the share of
    simulated quarters that reach ``target``. Without ``target``, the revenue target of
    the quarter is read from ``targets`` (:func:`quarter_revenue_target`), if given.
    Periods the forecast does not reach (a horizon shorter than the quarter) raise an
    error instead of counting as zero. ``previous`` and ``year_ago`` are the bookings of
    the previous quarter and of the same quarter a year earlier (for comparison).
    """
    as_of = ensure_instant(as_of)
    q = period_containing(as_of - pd.Timedelta(microseconds=1), "quarter")
    if target is None and targets is not None:
        target = quarter_revenue_target(targets, q)
    periods = forecast_periods(series, forecast.horizon, freq=freq)
    if q.end > periods[-1].end:
        raise CrmConfigError(f"the forecast ends at {periods[-1].label}, before the quarter {q.label} "
                             f"ends; raise the horizon")
    booked = _won_between(deals, q.start, as_of, amount_col)
    prev_q, ago_q = q.previous(), q.year_ago()
    previous = _won_between(deals, prev_q.start, min(prev_q.end, as_of), amount_col)
    year_ago = _won_between(deals, ago_q.start, min(ago_q.end, as_of), amount_col)
    weights = []
    for per in periods:
        lo, hi = max(per.start, as_of), min(per.end, q.end)
        total_days = working_days(per.start, per.end)
        weights.append(working_days(lo, hi) / total_days if hi > lo and total_days else 0.0)
    w = np.asarray(weights)
    t = forecast.total(w, offset=booked)
    lower = {lv: t[f"lo_{lv * 100:.0f}"] for lv in forecast.levels}
    upper = {lv: t[f"hi_{lv * 100:.0f}"] for lv in forecast.levels}
    p_reach = float((t["paths"] >= target).mean()) if target is not None else None
    remaining = 1.0 - elapsed_share(q, as_of)
    return QuarterOutlook(q.label, q.start, q.end, booked, t["forecast"] - booked, t["forecast"], lower,
                          upper, target, p_reach, remaining, forecast.method, previous, year_ago)


def _won_between(deals: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, amount_col: str) -> float:
    """Sum of ``amount_col`` of deals won in [start, end) (missing amounts skipped)."""
    won = deals.loc[(deals["status"] == "won") & (deals["closed_at"] >= start) & (deals["closed_at"] < end)]
    return float(won[amount_col].sum())


@metric(report="07", unit="count")
def forecast_horizon(series: pd.DataFrame, as_of: pd.Timestamp, *, periods_ahead: int = 3,
                     freq: str = "month") -> int:
    """How many periods a forecast must cover: the period running at as_of (if any), the next ``periods_ahead`` periods, and at least up to the end of the current quarter."""
    as_of = ensure_instant(as_of)
    q = period_containing(as_of - pd.Timedelta(microseconds=1), "quarter")
    done = series.loc[series["complete"].astype(bool)]
    if done.empty:
        raise CrmDataError("the bookings series has no complete period to forecast from")
    per = period_containing(done["start"].iloc[-1], freq).next()
    n, ahead = 1, 0 if per.start < as_of else 1
    while ahead < int(periods_ahead) or per.end < q.end:
        per = per.next()
        n += 1
        ahead += per.start >= as_of
    return n


@metric(report="07", unit="ratio")
def bookings_seasonality(series: pd.DataFrame, *, min_months: int = 24):
    """Trend and yearly pattern of monthly bookings: growth per year as a share of the starting level, and a factor per calendar month (1 = an average month).

    ``series`` is a monthly :func:`bookings_series` table; only complete months are used.
    Returns a :class:`crmlib.stats.forecast.SeasonalityTrend`, or None when fewer than
    ``min_months`` complete months exist (two years are needed to tell a yearly pattern
    from noise) or a month had no bookings at all.
    """
    from ..stats.forecast import seasonality_trend

    done = series.loc[series["complete"].astype(bool)]
    if len(done) and not done["period"].astype("str").str.fullmatch(r"\d{4}-\d{2}").all():
        raise CrmConfigError("bookings_seasonality needs a monthly bookings series (freq='month')")
    if len(done) < int(min_months) or (done["bookings"] <= 0).any():
        return None
    start = done["start"].iloc[0]
    middle = done["start"] + (done["end"] - done["start"]) / 2
    years = ((middle - start).dt.total_seconds() / (365.25 * 86_400)).to_numpy()
    return seasonality_trend(done["bookings"].to_numpy(dtype="float64"), done["start"].dt.month.to_numpy(),
                             years)


@metric(report="07", unit="money")
def bookings_forecast(series: pd.DataFrame, as_of: pd.Timestamp, *, freq: str = "month",
                      periods_ahead: int = 3, n_sims: int = 10_000, seed: int = 0,
                      min_origins: int = 8):
    """Forecast bookings for the running period, the next ``periods_ahead`` periods and the rest of the quarter, with 80% and 95% intervals, backtested against naive forecasts.

    Runs :func:`crmlib.stats.forecast.forecast_bookings` on the complete periods of
    ``series`` (a :func:`bookings_series` table): model selection by AICc, simulated
    prediction intervals, a rolling-origin backtest of horizons 1 to ``periods_ahead``
    (plus the running period) with at least ``min_origins`` origins, and the choice of
    the forecast to lead with. Returns a :class:`crmlib.stats.forecast.BookingsForecast`.
    """
    from ..stats.forecast import forecast_bookings

    horizon = forecast_horizon(series, as_of, periods_ahead=periods_ahead, freq=freq)
    periods = forecast_periods(series, horizon, freq=freq)
    running = int(periods[0].start < ensure_instant(as_of))
    done = series.loc[series["complete"].astype(bool), "bookings"].to_numpy(dtype="float64")
    return forecast_bookings(done, freq=freq, horizon=horizon, n_sims=n_sims, seed=seed,
                             min_origins=min_origins, backtest_horizon=int(periods_ahead) + running,
                             labels=[p.label for p in periods])
