"""Cohorts and retention (report 10): do the customers we win stay and buy again?

Conventions shared by every function here:

* ``as_of`` is the instant "now" (timezone-aware); orders and deals count only if
  they happened strictly before it.
* A customer's **cohort** is the calendar month (``freq="month"``, labelled
  ``2024-12``) or quarter (``freq="quarter"``, ``2024-Q4``) of the customer's first order, in the
  orders' timezone. **Age** k is the k-th period after the cohort's own period: age 0
  is the acquisition period, age 1 the next month (or quarter), and so on.
* **Censoring**: a cell (cohort, age k) is *observed* only when the period k after the
  cohort has ended by as_of. Cells not yet observed are left empty (NaN), never shown
  as zero, so a young cohort does not look worse than an old one for lack of time. A
  cohort whose acquisition period is still running is marked ``complete=False``
  (it can still grow).
* A customer **buys in a period** when they have at least one order line in it; the
  **acquisition source** is the ``source`` of the customer's first won deal (won before
  as_of, earliest close), ``"(unknown)"`` without a won deal or it has no source.
* Money is read from ``revenue_col`` (default ``"revenue_rep"``, added by
  :func:`crmlib.money.to_reporting`); shares are fractions between 0 and 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import CrmConfigError, CrmDataError
from ..money import require_single_currency
from ..periods import ensure_instant
from ..stats.intervals import Proportion, wilson, wilson_frame
from .catalogue import metric
from .cycle import _require

__all__ = [
    "FREQS", "LatestRetention", "Churn", "customer_cohorts", "cohort_activity", "retention_matrix",
    "cohort_retention", "weak_cohorts", "latest_cohort_retention", "customer_churn",
    "repeat_rate_by_cohort", "deal_cohort_win_rates",
]

FREQS = {"month": 1, "quarter": 3}
REVENUE_COL = "revenue_rep"
UNKNOWN_SOURCE = "(unknown)"


# ----------------------------------------------------------------------------- cohorts
@metric(report="10", unit="label")
def customer_cohorts(orders: pd.DataFrame, deals: pd.DataFrame | None = None, *, as_of: pd.Timestamp,
                     freq: str = "month") -> pd.DataFrame:
    """Each customer's acquisition cohort (the month or quarter of the customer's first order before as_of) and acquisition source (the source of the customer's first won deal).

    Returns one row per customer: account_id, first_order, cohort (label), cohort_index
    (periods since year 0, for arithmetic), and with ``deals`` the first won deal's
    ``first_deal_id`` and ``source`` (``"(unknown)"`` without one). Order lines without
    an account are left out.
    """
    return _Coded(orders, as_of, freq, None, deals).customers


@metric(report="10", unit="pct")
def cohort_activity(orders: pd.DataFrame, *, as_of: pd.Timestamp, freq: str = "month", max_age: int = 12,
                    revenue_col: str = REVENUE_COL) -> pd.DataFrame:
    """For each acquisition cohort and age k: the share of the cohort's customers who bought in the k-th period after acquisition (retention), the revenue, and the cumulative revenue per customer.

    Returns a tidy frame, one row per (cohort, age) for ages 0..``max_age``: cohort,
    age, customers (cohort size), buyers, retention (buyers / customers; 1 at age 0),
    revenue, revenue_per_customer, cumulative_revenue_per_customer, observed (False:
    the period has not ended by as_of, and buyers, retention and revenue are NaN),
    complete (the cohort's acquisition period has ended).
    """
    as_of = ensure_instant(as_of)
    c = _Coded(orders, as_of, freq, revenue_col)
    coh = c.customers
    young = c.age <= max_age
    cells = pd.DataFrame({"cohort_index": c.cohort_index[young], "age": c.age[young], "_who": c.who[young]})
    buyers = cells.drop_duplicates().groupby(["cohort_index", "age"]).size()
    if revenue_col:
        cells[revenue_col] = c.lines[revenue_col].to_numpy()[young]
        revenue = cells.groupby(["cohort_index", "age"])[revenue_col].sum()
    else:  # retention only: no money needed
        revenue = pd.Series(np.nan, index=buyers.index)
    sizes = coh.groupby("cohort_index").size()
    grid = pd.MultiIndex.from_product([sizes.index, range(max_age + 1)], names=["cohort_index", "age"])
    out = pd.DataFrame(index=grid).reset_index()
    out["customers"] = out["cohort_index"].map(sizes).astype("int64")
    out["buyers"] = buyers.reindex(grid, fill_value=0).to_numpy().astype("float64")
    out["revenue"] = revenue.reindex(grid, fill_value=0.0).to_numpy().astype("float64")
    ended = _period_ended(out["cohort_index"] + out["age"], freq, as_of, orders["ordered_at"])
    out["observed"] = ended
    out.loc[~ended, ["buyers", "revenue"]] = np.nan
    out["retention"] = out["buyers"] / out["customers"]
    out["revenue_per_customer"] = out["revenue"] / out["customers"]
    out["cumulative_revenue_per_customer"] = out.groupby("cohort_index")["revenue_per_customer"].cumsum()
    out.loc[~ended, "cumulative_revenue_per_customer"] = np.nan
    out["complete"] = out["cohort_index"].map(
        dict(zip(sizes.index, _period_ended(pd.Series(sizes.index), freq, as_of, orders["ordered_at"]),
                 strict=True)))
    out["cohort"] = _labels(out["cohort_index"].to_numpy(), freq)
    cols = ["cohort", "age", "customers", "buyers", "retention", "revenue", "revenue_per_customer",
            "cumulative_revenue_per_customer", "observed", "complete"]
    return out[cols]


@metric(report="10", unit="pct")
def retention_matrix(orders: pd.DataFrame, *, as_of: pd.Timestamp, freq: str = "month",
                     max_age: int = 12) -> pd.DataFrame:
    """The retention matrix: one row per acquisition cohort, one column per age k, each cell the share of the cohort's customers who bought in the k-th period after acquisition.

    Cells not yet observed at as_of are NaN. The first column, ``customers``, is the
    cohort size; the age columns are the integers 0..``max_age``.
    """
    act = cohort_activity(orders, as_of=as_of, freq=freq, max_age=max_age, revenue_col=None)
    wide = act.pivot(index="cohort", columns="age", values="retention")
    wide.insert(0, "customers", act.groupby("cohort")["customers"].first())
    wide.columns.name = "age"
    return wide


@metric(report="10", unit="pct")
def cohort_retention(orders: pd.DataFrame, deals: pd.DataFrame | None = None, *, as_of: pd.Timestamp,
                     freq: str = "month", ages: tuple[int, int] = (1, 3), by: str = "cohort",
                     alpha: float = 0.05) -> pd.DataFrame:
    """Share of customers who bought again in the periods first to last after their acquisition period (ages), per cohort or per acquisition source, with Wilson intervals and a test against all other customers.

    Parameters
    ----------
    ages : (first, last) age window, e.g. (1, 3) = the three months after the acquisition
        month; (7, 12) = the second half of the first year.
    by : ``"cohort"`` or a column of :func:`customer_cohorts` such as ``"source"``
        (needs ``deals``).

    Censoring: only customers whose whole window has ended by as_of are counted. Per
    cohort, a cohort whose window is not over has ``complete`` False and no rate (it
    is not shown as worse than it is); per source, the customers still inside their
    window are reported as ``too_recent`` and left out.

    Returns one row per group: the ``by`` column, customers (counted; per cohort the
    cohort size), retained, retention, retention_low, retention_high, purchases
    (purchase days in the window), purchases_per_customer, kept_buying (customers with
    at least two purchase days in the window), too_recent (per source) or complete
    (per cohort), p_value (two-sided two-proportion z-test of the group's retention
    against all other counted customers), purchases_p_value (Welch t-test of purchases
    per customer against the others).
    """
    from scipy import stats as st
    from statsmodels.stats.proportion import proportions_ztest

    as_of = ensure_instant(as_of)
    first, last = _check_ages(ages)
    per = _customer_window(orders, deals if by != "cohort" else None, as_of, freq, first, last)
    if by not in per.columns or by.startswith("_"):
        raise CrmConfigError(f"cohort_retention: cannot group by {by!r}; use 'cohort' or a column of "
                             f"customer_cohorts ({', '.join(c for c in per.columns if not c.startswith('_'))})"
                             + ("; the source needs the deals table" if by == "source" else ""))
    counted = per[per["_complete"]]
    groups = per.groupby(by, sort=True).size().index
    g = counted.groupby(by, sort=True)
    out = pd.DataFrame({"customers": g.size(), "retained": g["_retained"].sum(),
                        "purchases": g["_purchases"].sum(), "kept_buying": g["_kept"].sum()})
    out = out.reindex(groups).fillna(0).astype("int64")
    out = wilson_frame(out.rename_axis(by).reset_index(), "retained", "customers", alpha=alpha, name="retention")
    out["purchases_per_customer"] = out["purchases"] / out["customers"].where(out["customers"] > 0)
    total_k, total_n = int(out["retained"].sum()), int(out["customers"].sum())
    p_values, t_values = [], []
    for label, k, n in zip(out[by], out["retained"], out["customers"], strict=True):
        rest_k, rest_n = total_k - int(k), total_n - int(n)
        if n == 0 or rest_n == 0 or total_k in (0, total_n):
            p_values.append(np.nan)
        else:
            p_values.append(float(proportions_ztest([int(k), rest_k], [int(n), rest_n])[1]))
        mine = counted.loc[counted[by] == label, "_purchases"].to_numpy(float)
        rest = counted.loc[counted[by] != label, "_purchases"].to_numpy(float)
        if len(mine) >= 2 and len(rest) >= 2 and (mine.std() > 0 or rest.std() > 0):
            t_values.append(float(st.ttest_ind(mine, rest, equal_var=False).pvalue))
        else:
            t_values.append(np.nan)
    out["p_value"] = p_values
    out["purchases_p_value"] = t_values
    cols = [by, "customers", "retained", "retention", "retention_low", "retention_high", "purchases",
            "purchases_per_customer", "kept_buying"]
    if by == "cohort":
        sizes = per.groupby("cohort", sort=True).size()
        complete = out["customers"].to_numpy() == sizes.reindex(out["cohort"]).to_numpy()
        out["complete"] = complete & (out["customers"].to_numpy() > 0)
        out["customers"] = sizes.reindex(out["cohort"]).to_numpy()
        for col in ("retained", "purchases", "kept_buying"):
            out[col] = out[col].astype("Int64").where(out["complete"])
        cols.append("complete")
    else:
        too_recent = per[~per["_complete"]].groupby(by).size()
        out["too_recent"] = out[by].map(too_recent).fillna(0).astype("int64")
        cols.append("too_recent")
    return out[cols + ["p_value", "purchases_p_value"]]


@metric(report="10", unit="flag")
def weak_cohorts(orders: pd.DataFrame, *, as_of: pd.Timestamp, freq: str = "month",
                 ages: tuple[int, int] = (1, 12), min_customers: int = 30, alpha: float = 0.05,
                 min_drop: float = 0.30) -> pd.DataFrame:
    """Acquisition cohorts whose returning customers stopped buying: the share of the customers who came back in the ages window that bought at least twice in it (kept buying), far and significantly below that of the other cohorts.

    Among the cohorts whose window (ages ``first..last``, default months 1-12) has
    ended and that have at least ``min_customers`` customers, a cohort is **weak** when
    its kept-buying share (kept_buying / retained) is at least ``min_drop`` (30%)
    below the share of all other tested cohorts pooled, and the one-sided
    two-proportion z-test p-value is below ``alpha`` divided by the number of cohorts
    tested (Bonferroni: many months are compared, so chance lows are expected).
    Customers who drop out after coming back once show here, while the first return
    can look normal.

    Returns the tested cohorts (the :func:`cohort_retention` columns plus kept_share,
    rest_kept_share, drop, kept_p_value, weak), weakest first.
    """
    from statsmodels.stats.proportion import proportions_ztest

    table = cohort_retention(orders, as_of=as_of, freq=freq, ages=ages, by="cohort")
    tested = table[table["complete"] & (table["customers"] >= min_customers)].copy()
    retained = tested["retained"].astype("int64")
    kept = tested["kept_buying"].astype("int64")
    tested["kept_share"] = kept / retained.where(retained > 0)
    rest_kept, rest_ret = kept.sum() - kept, retained.sum() - retained
    tested["rest_kept_share"] = rest_kept / rest_ret.where(rest_ret > 0)
    tested["drop"] = 1 - tested["kept_share"] / tested["rest_kept_share"]
    p = []
    for k, n, rk, rn in zip(kept, retained, rest_kept, rest_ret, strict=True):
        if n == 0 or rn == 0 or (k + rk) in (0, n + rn):
            p.append(np.nan)
        else:
            p.append(float(proportions_ztest([int(k), int(rk)], [int(n), int(rn)], alternative="smaller")[1]))
    tested["kept_p_value"] = p
    limit = alpha / max(len(tested), 1)
    tested["weak"] = (tested["drop"] >= min_drop) & (tested["kept_p_value"] < limit)
    return tested.sort_values(["drop"], ascending=False, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class LatestRetention:
    """Retention of the latest cohort whose window is complete, with the cohort before it and the one a year earlier."""

    cohort: str | None
    rate: Proportion | None
    previous_cohort: str | None
    previous: Proportion | None
    year_ago_cohort: str | None
    year_ago: Proportion | None
    ages: tuple[int, int]
    freq: str

    @property
    def estimate(self) -> float:
        """The latest complete cohort's retention (NaN when no cohort is old enough)."""
        return self.rate.estimate if self.rate is not None else math.nan

    @property
    def previous_estimate(self) -> float:
        return self.previous.estimate if self.previous is not None else math.nan

    @property
    def year_ago_estimate(self) -> float:
        return self.year_ago.estimate if self.year_ago is not None else math.nan

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for which, label, p in (("latest", self.cohort, self.rate), ("previous", self.previous_cohort, self.previous),
                                ("year_ago", self.year_ago_cohort, self.year_ago)):
            rows.append({"which": which, "cohort": label,
                         **({k: getattr(p, k) for k in ("successes", "n", "estimate", "low", "high")}
                            if p is not None else {})})
        return pd.DataFrame(rows)


@metric(report="10", unit="pct")
def latest_cohort_retention(orders: pd.DataFrame, *, as_of: pd.Timestamp, months: int = 3,
                            freq: str = "month") -> LatestRetention:
    """Retention at 3 months of the latest complete cohort: the share of its customers who bought again in the 3 months after their acquisition period, with the previous cohort and the cohort a year earlier for comparison.

    ``months`` must be a whole number of ``freq`` periods (3 months = 1 quarter). The
    latest complete cohort is the most recent one whose window has ended by as_of.
    """
    step = FREQS[_check_freq(freq)]
    if months % step:
        raise CrmConfigError(f"months ({months}) must be a whole number of {freq}s")
    k = months // step
    table = cohort_retention(orders, as_of=as_of, freq=freq, ages=(1, k), by="cohort")
    done = table[table["complete"] & (table["customers"] > 0)]
    if done.empty:
        return LatestRetention(None, None, None, None, None, None, (1, k), freq)
    per_year = 12 // step

    def pick(label):
        row = table[table["cohort"] == label]
        if row.empty or not bool(row["complete"].iloc[0]) or int(row["customers"].iloc[0]) == 0:
            return None
        return wilson(int(row["retained"].iloc[0]), int(row["customers"].iloc[0]))

    latest = done["cohort"].iloc[-1]
    prev_label = _shift_label(latest, freq, -1)
    year_label = _shift_label(latest, freq, -per_year)
    return LatestRetention(latest, pick(latest), prev_label, pick(prev_label), year_label, pick(year_label),
                           (1, k), freq)


@dataclass(frozen=True)
class Churn:
    """Churned customers: no purchase in the last ``inactive_months`` months before as_of."""

    churned: int
    customers: int
    rate: Proportion
    inactive_months: int
    cutoff: pd.Timestamp
    as_of: pd.Timestamp

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"churned": self.churned, "customers": self.customers, "rate": self.rate.estimate,
                              "low": self.rate.low, "high": self.rate.high,
                              "inactive_months": self.inactive_months, "cutoff": self.cutoff}])


@metric(report="10", unit="pct")
def customer_churn(orders: pd.DataFrame, *, as_of: pd.Timestamp, inactive_months: int = 12) -> Churn:
    """Share of customers who have bought nothing in the last inactive_months months before as_of, among the customers acquired before that window began.

    A customer is churned when the last order is before ``as_of`` minus
    ``inactive_months`` calendar months (the cutoff); customers whose first order is at
    or after the cutoff are too new to tell and are not counted. With a Wilson
    interval.
    """
    as_of = ensure_instant(as_of)
    if int(inactive_months) < 1:
        raise CrmConfigError(f"inactive_months must be at least 1, not {inactive_months}")
    o = _orders(orders, as_of, None)
    cutoff = as_of - pd.DateOffset(months=int(inactive_months))
    who, _ = pd.factorize(o["account_id"])  # integers: one hash of the ids, not one per group-by
    g = o["ordered_at"].groupby(who)
    first, last = g.min(), g.max()
    eligible = first < cutoff
    churned = eligible & (last < cutoff)
    n, k = int(eligible.sum()), int(churned.sum())
    return Churn(k, n, wilson(k, n), int(inactive_months), cutoff, as_of)


@metric(report="10", unit="pct")
def repeat_rate_by_cohort(orders: pd.DataFrame, *, as_of: pd.Timestamp, freq: str = "month",
                          within: int = 12, alpha: float = 0.05) -> pd.DataFrame:
    """Share of each cohort's customers who made a second purchase (on another day) by the end of the within-th period after acquisition, with Wilson intervals; cohorts not yet that old are marked incomplete and get no rate.

    Returns one row per cohort: cohort, customers, repeaters, repeat_rate,
    repeat_rate_low, repeat_rate_high, repeaters_so_far (second purchase before as_of,
    whatever the age), complete.
    """
    as_of = ensure_instant(as_of)
    c = _Coded(orders, as_of, freq, None)
    coh = c.customers
    first = c.first_of_day()
    n_all = np.bincount(c.who[first], minlength=len(coh))
    n_in = np.bincount(c.who[first & (c.age <= within)], minlength=len(coh))
    coh["_repeat"] = n_in >= 2
    coh["_so_far"] = n_all >= 2
    g = coh.groupby("cohort_index", sort=True)
    out = pd.DataFrame({"customers": g.size(), "repeaters": g["_repeat"].sum(),
                        "repeaters_so_far": g["_so_far"].sum()}).astype("int64")
    complete = _period_ended(pd.Series(out.index + within, index=out.index), freq, as_of, orders["ordered_at"])
    out["complete"] = complete.to_numpy()
    out = wilson_frame(out.reset_index(), "repeaters", "customers", alpha=alpha, name="repeat_rate")
    for col in ("repeat_rate", "repeat_rate_low", "repeat_rate_high"):
        out.loc[~out["complete"], col] = np.nan
    out["repeaters"] = out["repeaters"].where(out["complete"]).astype("Int64")
    out.insert(0, "cohort", _labels(out["cohort_index"].to_numpy(), freq))
    return out[["cohort", "customers", "repeaters", "repeat_rate", "repeat_rate_low", "repeat_rate_high",
                "repeaters_so_far", "complete"]]


@metric(report="10", unit="pct")
def deal_cohort_win_rates(deals: pd.DataFrame, *, as_of: pd.Timestamp, freq: str = "month",
                          max_age: int = 12) -> pd.DataFrame:
    """Cumulative win rate by age of the deals created in each month: deals won by the end of the k-th period after the creation period, divided by all deals created in it; ages not yet reached at as_of are left empty.

    Returns a tidy frame, one row per (cohort, age) for ages 0..``max_age``: cohort,
    age, deals, won (cumulative), lost (cumulative), open (still open at the end of that
    period), win_rate (won / deals), observed (False: the period has not ended by
    as_of, and won, lost, open and win_rate are NaN). Young cohorts therefore show only
    the ages they have reached, and are compared with older ones at the same age.
    """
    as_of = ensure_instant(as_of)
    _require(deals, ("deal_id", "status", "created_at", "closed_at"), "deals")
    d = deals.loc[deals["created_at"] < as_of]
    closed = d["status"].isin(("won", "lost")) & d["closed_at"].notna() & (d["closed_at"] < as_of)
    if (d["status"].isin(("won", "lost")) & d["closed_at"].isna()).any():
        raise CrmDataError("deals: won/lost deals without closed_at; the audit should have quarantined them",
                           table="deals", column="closed_at")
    cohort = _period_index(_local(d["created_at"]), freq)
    close_age = pd.Series(np.nan, index=d.index)
    close_age[closed] = _period_index(_local(d.loc[closed, "closed_at"]), freq) - cohort[closed]
    frame = pd.DataFrame({"cohort_index": cohort, "close_age": close_age,
                          "won": closed & (d["status"] == "won"), "lost": closed & (d["status"] == "lost")})
    sizes = frame.groupby("cohort_index").size()
    rows = []
    for c, n in sizes.items():
        mine = frame[frame["cohort_index"] == c]
        for age in range(max_age + 1):
            won = int((mine["won"] & (mine["close_age"] <= age)).sum())
            lost = int((mine["lost"] & (mine["close_age"] <= age)).sum())
            rows.append((c, age, int(n), won, lost))
    out = pd.DataFrame(rows, columns=["cohort_index", "age", "deals", "won", "lost"])
    ended = _period_ended(out["cohort_index"] + out["age"], freq, as_of, deals["created_at"])
    out["won"] = out["won"].astype("float64").where(ended)
    out["lost"] = out["lost"].astype("float64").where(ended)
    out["open"] = out["deals"] - out["won"] - out["lost"]
    out["win_rate"] = out["won"] / out["deals"]
    out["observed"] = ended.to_numpy()
    out.insert(0, "cohort", _labels(out["cohort_index"].to_numpy(), freq))
    return out[["cohort", "age", "deals", "won", "lost", "open", "win_rate", "observed"]]


# ----------------------------------------------------------------------------- helpers
def _check_ages(ages) -> tuple[int, int]:
    first, last = (int(a) for a in ages)
    if not 0 <= first <= last:
        raise CrmConfigError(f"ages must be (first, last) with 0 <= first <= last, not {tuple(ages)}")
    return first, last


def _check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise CrmConfigError(f"cohort freq must be one of {', '.join(FREQS)}, not {freq!r}")
    return freq


def _orders(orders: pd.DataFrame, as_of, revenue_col) -> pd.DataFrame:
    as_of = ensure_instant(as_of)
    _require(orders, ["account_id", "ordered_at"], "orders")
    if revenue_col:  # a missing revenue_rep gets a hint to convert with money.to_reporting
        require_single_currency(orders, revenue_col, table="orders")
    cols = ["account_id", "ordered_at", *([revenue_col] if revenue_col else [])]
    o = orders.loc[(orders["ordered_at"] < as_of) & orders["account_id"].notna(), cols]  # not a copy of all
    if revenue_col and o[revenue_col].isna().any():
        raise CrmDataError(f"orders: {int(o[revenue_col].isna().sum())} lines have no {revenue_col}",
                           table="orders", column=revenue_col)
    return o


class _Coded:
    """The order lines before as_of with a known customer, and per line, as integers: its
    customer (``who``: the row of ``customers``, sorted by account), its customer's
    ``cohort_index``, its ``age`` and its local ``day`` number (each worked out when first
    asked for). The ids are hashed once for all of them; grouping and counting 20 million
    lines by text ids took most of the time of every cohort metric."""

    def __init__(self, orders: pd.DataFrame, as_of, freq: str, revenue_col, deals: pd.DataFrame | None = None):
        o = _orders(orders, ensure_instant(as_of), revenue_col)
        who, names = pd.factorize(o["account_id"], sort=True)
        first = o["ordered_at"].groupby(who, sort=True).min()
        out = pd.DataFrame({"account_id": pd.Series(names, dtype=o["account_id"].dtype),
                            "first_order": first.reset_index(drop=True)})  # not to_numpy: Timestamp objects
        idx = _period_index(_local(out["first_order"]), freq)
        out["cohort_index"] = idx
        out["cohort"] = _labels(idx, freq)
        if deals is not None:  # one won deal per account at most: the rows stay one per customer, in order
            src = _first_won_deal(deals, as_of)
            out = out.merge(src, on="account_id", how="left")
            if len(out) != len(names):
                raise ValueError("an account has two first won deals")  # a programming error
            out["source"] = out["source"].fillna(UNKNOWN_SOURCE).astype("str")
        self.lines, self.customers, self.who, self.freq = o, out, who, freq

    @cached_property
    def local_time(self) -> pd.Series:
        return _local(self.lines["ordered_at"])

    @cached_property
    def cohort_index(self) -> np.ndarray:
        return self.customers["cohort_index"].to_numpy(dtype="int64")[self.who]

    @cached_property
    def age(self) -> np.ndarray:
        return _period_index(self.local_time, self.freq).to_numpy(dtype="int64") - self.cohort_index

    @cached_property
    def day(self) -> np.ndarray:
        return self.local_time.to_numpy().astype("datetime64[D]").astype("int64")

    def first_of_day(self) -> np.ndarray:
        """True on one line of each customer and local day (purchases are counted in days)."""
        from ..stats.clv import customer_day_key

        key, _ = customer_day_key(self.who, self.day)
        return ~pd.Series(key).duplicated().to_numpy()  # a hash of integers, not a sort


def _local(ts: pd.Series) -> pd.Series:
    """Naive wall-clock time in the timestamps' own timezone."""
    ts = pd.Series(ts)
    return ts.dt.tz_localize(None) if isinstance(ts.dtype, pd.DatetimeTZDtype) else ts


def _period_index(local: pd.Series, freq: str) -> pd.Series:
    step = FREQS[_check_freq(freq)]
    # year x 12 + month - 1, from the months since 1970-01 (numpy's calendar months: one
    # pass, where the year and month accessors each take seconds on 20 million lines)
    local = pd.Series(local)  # naive, never missing: the callers keep instants before as_of
    months = local.to_numpy().astype("datetime64[M]").astype("int64") + 1970 * 12
    return pd.Series(months // step, index=local.index)


def _labels(index, freq: str) -> np.ndarray:
    step = FREQS[_check_freq(freq)]
    idx, back = np.unique(np.asarray(index, dtype="int64"), return_inverse=True)
    return _period_labels(idx, step, freq)[back] if len(idx) else np.array([], dtype=object)


def _period_labels(idx: np.ndarray, step: int, freq: str) -> np.ndarray:
    """The label of each distinct period (a few dozen), formatted once each."""
    months = idx * step
    years, month0 = months // 12, months % 12
    if freq == "month":
        return np.array([f"{y}-{m + 1:02d}" for y, m in zip(years, month0, strict=True)], dtype=object)
    return np.array([f"{y}-Q{m // 3 + 1}" for y, m in zip(years, month0, strict=True)], dtype=object)


def _shift_label(label: str, freq: str, k: int) -> str:
    if freq == "month":
        y, m = label.split("-")
        idx = int(y) * 12 + int(m) - 1 + k
    else:
        y, q = label.split("-Q")
        idx = int(y) * 4 + int(q) - 1 + k
    return str(_labels([idx], freq)[0])


def _period_ended(index: pd.Series, freq: str, as_of: pd.Timestamp, like: pd.Series) -> pd.Series:
    """True where the period ``index`` has ended by as_of (its end, the next period's start, <= as_of)."""
    step = FREQS[_check_freq(freq)]
    tz = like.dt.tz if isinstance(like.dtype, pd.DatetimeTZDtype) else None
    now = as_of.tz_convert(tz).tz_localize(None) if tz is not None else as_of.tz_localize(None)
    now_months = now.year * 12 + now.month - 1  # the month containing now
    # the period ends at the start of month (index + 1) * step; it has ended when that is <= now
    end_month = (np.asarray(index, dtype="int64") + 1) * step
    return pd.Series(end_month <= now_months, index=getattr(index, "index", None))


def _first_won_deal(deals: pd.DataFrame, as_of) -> pd.DataFrame:
    _require(deals, ("deal_id", "account_id", "status", "closed_at", "source"), "deals")
    won = deals[(deals["status"] == "won") & deals["closed_at"].notna() & (deals["closed_at"] < as_of)
                & deals["account_id"].notna()]
    won = won.sort_values(["closed_at", "created_at", "deal_id"], kind="stable")
    first = won.drop_duplicates("account_id")
    return pd.DataFrame({"account_id": first["account_id"].to_numpy(),
                         "first_deal_id": first["deal_id"].to_numpy(),
                         "source": first["source"].to_numpy()})


def _customer_window(orders, deals, as_of, freq, first, last) -> pd.DataFrame:
    """Per customer: retained (bought in ages first..last), purchases (days) in it, window complete."""
    c = _Coded(orders, as_of, freq, None, deals)
    coh = c.customers
    inside = c.first_of_day() & (c.age >= first) & (c.age <= last)
    coh["_purchases"] = np.bincount(c.who[inside], minlength=len(coh)).astype("int64")
    coh["_retained"] = coh["_purchases"] > 0
    coh["_kept"] = coh["_purchases"] >= 2
    coh["_complete"] = _period_ended(coh["cohort_index"] + last, freq, as_of, orders["ordered_at"]).to_numpy()
    return coh
