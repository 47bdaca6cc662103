"""Profitability and customer value (report 09): who brings the money, and who will keep buying.

Conventions shared by every function here:

* ``as_of`` is the instant "now" (timezone-aware); an order counts only if its
  ``ordered_at`` is strictly before it.
* A **customer** is an account (``account_id``). A **transaction** is everything one
  customer ordered on one calendar day (all its order lines that day); several lines
  on the same day are one purchase, their revenue and cost summed. Order lines without
  an account cannot be attributed to a customer: the per-customer tables leave them
  out, and :func:`customer_profitability` lists them in a row of their own.
* Money is read from ``revenue_col`` / ``cost_col``, by default ``"revenue_rep"`` and
  ``"cost_rep"``: the columns :func:`crmlib.money.to_reporting` adds
  (``money.to_reporting(orders, ("revenue", "cost"), currency=..., date_col="ordered_at")``).
  The raw ``revenue`` is accepted only when every order has the same currency.
* Shares are fractions between 0 and 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CrmDataError
from ..money import require_single_currency
from ..periods import ensure_instant
from ..stats import clv as _clv
from ..stats.intervals import Proportion, wilson
from .catalogue import metric
from .cycle import _require

__all__ = [
    "Concentration", "CustomerValue", "RFM_SEGMENTS", "customer_profitability", "revenue_concentration",
    "abc_summary", "financial_rating", "rfm_scores", "rfm_segments", "repeat_purchase_share",
    "product_pairs", "next_products", "customer_lifetime_value", "purchase_model_check",
]

REVENUE_COL = "revenue_rep"
_CLV_COLUMNS = {"frequency": "repeat_purchases", "recency": "weeks_first_to_last", "T": "weeks_as_customer",
                "monetary_value": "mean_repeat_value"}
COST_COL = "cost_rep"

#: RFM segments, checked in this order (the first rule that matches names the segment).
#: R, F are scores from 1 (worst) to 5 (best); see :func:`rfm_scores`.
RFM_SEGMENTS: tuple[tuple[str, str], ...] = (
    ("Champions", "R >= 4 and F >= 4: bought recently and often"),
    ("Loyal", "R >= 3 and F >= 3: buy regularly"),
    ("New", "R >= 4 and F = 1: first purchase was recent"),
    ("Promising", "R >= 3: recent buyers with few purchases so far"),
    ("At risk", "R <= 2 and F >= 3: used to buy often, not lately"),
    ("Hibernating", "R = 2 and F <= 2: few purchases, none lately"),
    ("Lost", "R = 1 and F <= 2: few purchases, the last one long ago"),
)


# ----------------------------------------------------------------------------- profitability
@metric(report="09", unit="money")
def customer_profitability(orders: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                           revenue_col: str = REVENUE_COL, cost_col: str | None = COST_COL,
                           accounts: pd.DataFrame | None = None, users: pd.DataFrame | None = None,
                           abc_limits: tuple[float, float] = (0.80, 0.95)) -> pd.DataFrame:
    """Revenue, cost and margin (revenue minus cost) of each customer's orders placed before as_of, largest revenue first, with its cumulative revenue share and ABC class.

    ABC classes: customers sorted by revenue; class A are the customers that together
    make the first 80% of revenue (the customer who crosses 80% included), B the next
    ones up to 95%, C the rest (``abc_limits``).

    Parameters
    ----------
    orders : the canonical ``orders`` table (with ``revenue_rep``/``cost_rep`` from
        :func:`crmlib.money.to_reporting`).
    as_of, start : orders with ``start <= ordered_at < as_of`` count (``start`` None:
        all history).
    cost_col : the cost column; None, or missing costs, leave margin unknown (NaN) for
        the lines without a cost, which are counted in ``lines_without_cost``.
    accounts, users : the ``accounts`` table, to add each customer's ``name``, and the
        ``users`` table, to add its account ``owner``.

    Returns
    -------
    One row per customer: account_id, (name, owner), lines, transactions, first_order,
    last_order, revenue, cost, margin, margin_pct, lines_without_cost, revenue_share,
    cumulative_share, rank (1 = largest), abc_class. Order lines without an account
    form a last row with account_id missing, no rank and no class.
    """
    o = _orders_before(orders, as_of, start, revenue_col, cost_col)
    o["_day"] = _day(o["ordered_at"])
    o["_cost"] = o[cost_col] if cost_col is not None else np.nan
    o["_no_cost"] = o["_cost"].isna()
    o["_margin"] = o[revenue_col] - o["_cost"]
    g = o.groupby("account_id", dropna=False, sort=False)
    out = pd.DataFrame({
        "lines": g.size(),
        "transactions": g["_day"].nunique(),
        "first_order": g["ordered_at"].min(),
        "last_order": g["ordered_at"].max(),
        "revenue": g[revenue_col].sum(),
        "cost": g["_cost"].sum(min_count=1),
        "margin": g["_margin"].sum(min_count=1),
        "lines_without_cost": g["_no_cost"].sum().astype("int64"),
    }).reset_index()
    out["margin"] = out["margin"].where(out["lines_without_cost"] == 0)
    out["margin_pct"] = out["margin"] / out["revenue"].where(out["revenue"] != 0)
    known = out["account_id"].notna()
    ranked = out[known].sort_values(["revenue", "account_id"], ascending=[False, True], kind="stable")
    total = ranked["revenue"].sum()
    ranked["revenue_share"] = ranked["revenue"] / total if total else np.nan
    ranked["cumulative_share"] = ranked["revenue_share"].cumsum()
    ranked["rank"] = np.arange(1, len(ranked) + 1)
    before = ranked["cumulative_share"] - ranked["revenue_share"]  # share of the customers ranked above
    a, b = abc_limits
    ranked["abc_class"] = np.where(before < a - 1e-12, "A", np.where(before < b - 1e-12, "B", "C"))
    rest = out[~known].assign(revenue_share=np.nan, cumulative_share=np.nan, rank=np.nan, abc_class=None)
    out = pd.concat([ranked, rest], ignore_index=True) if len(rest) else ranked.reset_index(drop=True)
    out["rank"] = out["rank"].astype("Int64")
    out["abc_class"] = out["abc_class"].astype("str")
    return _with_names(out, accounts, users)


@dataclass(frozen=True)
class Concentration:
    """How much of the revenue the top customers bring (the Pareto share)."""

    customers: int
    top_customers: int
    top_fraction: float
    top_revenue: float
    total_revenue: float

    @property
    def share(self) -> float:
        """Revenue of the top customers / all revenue."""
        return self.top_revenue / self.total_revenue if self.total_revenue else math.nan

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"customers": self.customers, "top_customers": self.top_customers,
                              "top_fraction": self.top_fraction, "top_revenue": self.top_revenue,
                              "total_revenue": self.total_revenue, "share": self.share}])


@metric(report="09", unit="pct")
def revenue_concentration(profitability: pd.DataFrame, *, top: float = 0.20) -> Concentration:
    """Share of revenue brought by the top 20% of customers (the ceil(20%) customers with the most revenue).

    ``profitability`` is a :func:`customer_profitability` table; ``top`` the fraction
    of customers (0.2). Order lines without an account count in the total revenue but
    belong to no customer.
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be a fraction in (0, 1], not {top}")
    _require(profitability, ("account_id", "revenue"), "the customer profitability table")
    known = profitability[profitability["account_id"].notna()]
    n = len(known)
    k = int(math.ceil(top * n - 1e-9))
    top_rev = float(known["revenue"].nlargest(k).sum()) if k else 0.0
    return Concentration(n, k, top, top_rev, float(profitability["revenue"].sum()))


@metric(report="09", unit="table")
def abc_summary(profitability: pd.DataFrame) -> pd.DataFrame:
    """Customers, revenue and margin per ABC class, with each class's share of customers and of revenue.

    ``profitability`` is a :func:`customer_profitability` table; returns one row per
    class (A, B, C) that has customers: customers, customer_share, revenue,
    revenue_share, margin, margin_pct. Customers whose margin is unknown (order lines
    without a cost) are left out of margin and of the revenue margin_pct divides by.
    """
    _require(profitability, ("abc_class", "revenue", "margin", "account_id"), "the customer profitability table")
    p = profitability[profitability["account_id"].notna()]
    p = p.assign(_known_revenue=p["revenue"].where(p["margin"].notna()))
    g = p.groupby("abc_class", sort=True)
    out = pd.DataFrame({"customers": g.size(), "revenue": g["revenue"].sum(),
                        "margin": g["margin"].sum(min_count=1), "_known": g["_known_revenue"].sum()})
    out = out.reindex(["A", "B", "C"]).dropna(how="all")
    out["customers"] = out["customers"].astype("int64")
    out["customer_share"] = out["customers"] / out["customers"].sum()
    out["revenue_share"] = out["revenue"] / out["revenue"].sum()
    out["margin_pct"] = out["margin"] / out["_known"].where(out["_known"] != 0)
    out = out[["customers", "customer_share", "revenue", "revenue_share", "margin", "margin_pct"]]
    return out.rename_axis("abc_class").reset_index()


# ----------------------------------------------------------------------------- financial rating
@metric(report="09", unit="money")
def financial_rating(deals: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp,
                     amount_col: str = "amount_rep", accounts: pd.DataFrame | None = None,
                     users: pd.DataFrame | None = None) -> pd.DataFrame:
    """Customers ranked by the value of the deals they won in the window from start to as_of, with their deals created, won and lost in it and the won/created ratio.

    A deal counts as won in the window when its status at ``as_of`` is won and it closed
    at or after ``start`` (see :func:`crmlib.metrics.pipeline.deal_status_at`); created
    deals are those created in the window. ``won_created_ratio`` = won / created in the
    window (it can exceed 1 when deals created earlier were won now; missing when none
    was created). Customers with no deal created or won in the window are not listed;
    deals without an account are left out.

    Returns one row per account: account_id, (name, owner), revenue, won, lost, created,
    won_created_ratio, rank (1 = most revenue), sorted by rank.
    """
    from .pipeline import deal_status_at

    as_of = ensure_instant(as_of)
    start = ensure_instant(start, name="start")
    _require(deals, ("deal_id", "account_id", "status", "created_at", "closed_at", amount_col), "deals")
    require_single_currency(deals, amount_col, table="deals")
    d = deal_status_at(deals, as_of)
    d = d[d["account_id"].notna()]
    closed_in = d["closed_at"].ge(start) & d["status_at"].isin(("won", "lost"))
    won = closed_in & (d["status_at"] == "won")
    lost = closed_in & (d["status_at"] == "lost")
    created = d["created_at"] >= start
    frame = pd.DataFrame({"account_id": d["account_id"], "revenue": d[amount_col].where(won, 0.0).fillna(0.0),
                          "won": won, "lost": lost, "created": created})
    frame = frame[won | lost | created]
    g = frame.groupby("account_id", sort=False)
    out = pd.DataFrame({"revenue": g["revenue"].sum(), "won": g["won"].sum(), "lost": g["lost"].sum(),
                        "created": g["created"].sum()}).reset_index()
    for col in ("won", "lost", "created"):
        out[col] = out[col].astype("int64")
    out["won_created_ratio"] = out["won"] / out["created"].where(out["created"] > 0)
    out = out.sort_values(["revenue", "won", "account_id"], ascending=[False, False, True], kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    return _with_names(out.reset_index(drop=True), accounts, users)


# ----------------------------------------------------------------------------- RFM
@metric(report="09", unit="score")
def rfm_scores(orders: pd.DataFrame, *, as_of: pd.Timestamp, revenue_col: str = REVENUE_COL,
               accounts: pd.DataFrame | None = None, users: pd.DataFrame | None = None) -> pd.DataFrame:
    """Recency, frequency and monetary scores from 1 (worst) to 5 (best) of each customer, with the named RFM segment.

    Measures, from the orders before ``as_of``: recency_days = days from the last
    transaction's day to as_of; frequency = number of transactions (purchase days);
    monetary = revenue. Each score is 1 + floor(5 x the share of customers with a
    strictly worse value): quintiles in which equal values always share a score (so
    the many customers with one purchase all get F = 1, never an arbitrary split).

    Segments (:data:`RFM_SEGMENTS`, the first rule that matches wins; M ranks customers
    within a segment but does not define it):

    - Champions: R >= 4 and F >= 4 (bought recently and often);
    - Loyal: R >= 3 and F >= 3 (buy regularly);
    - New: R >= 4 and F = 1 (first purchase was recent);
    - Promising: R >= 3 (recent buyers with few purchases so far);
    - At risk: R <= 2 and F >= 3 (used to buy often, not lately);
    - Hibernating: R = 2 and F <= 2;
    - Lost: R = 1 and F <= 2.

    Returns one row per customer: account_id, (name, owner), recency_days, frequency,
    monetary, R, F, M, rfm ("545"), segment; best customers first.
    """
    tx = _transactions(orders, as_of, None, revenue_col, None)
    tx = tx[tx["account_id"].notna()]
    as_of = ensure_instant(as_of)
    g = tx.groupby("account_id", sort=True)
    last_day = g["day"].max()
    as_of_local = as_of.tz_convert(orders["ordered_at"].dt.tz).tz_localize(None) \
        if isinstance(orders["ordered_at"].dtype, pd.DatetimeTZDtype) else as_of.tz_localize(None)
    out = pd.DataFrame({"recency_days": (as_of_local - last_day) / pd.Timedelta(days=1),
                        "frequency": g.size().astype("int64"),
                        "monetary": g["revenue"].sum()}).reset_index()
    out["R"] = _score(-out["recency_days"].to_numpy(float))
    out["F"] = _score(out["frequency"].to_numpy(float))
    out["M"] = _score(out["monetary"].to_numpy(float))
    out["rfm"] = out["R"].astype(str) + out["F"].astype(str) + out["M"].astype(str)
    out["segment"] = _segment(out["R"].to_numpy(), out["F"].to_numpy())
    order = {name: i for i, (name, _) in enumerate(RFM_SEGMENTS)}
    out = out.sort_values(["segment", "M", "monetary", "account_id"], key=lambda s: s.map(order)
                          if s.name == "segment" else s, ascending=[True, False, False, True], kind="stable")
    return _with_names(out.reset_index(drop=True), accounts, users)


@metric(report="09", unit="table")
def rfm_segments(rfm: pd.DataFrame) -> pd.DataFrame:
    """Customers, revenue and typical recency and frequency of each RFM segment, with the segment's rule.

    ``rfm`` is an :func:`rfm_scores` table. Returns one row per segment of
    :data:`RFM_SEGMENTS` (in that order, empty segments included with 0 customers):
    segment, rule, customers, customer_share, revenue, revenue_share,
    median_recency_days, mean_frequency.
    """
    _require(rfm, ("segment", "monetary", "recency_days", "frequency"), "the RFM table")
    g = rfm.groupby("segment", sort=False)
    names = [n for n, _ in RFM_SEGMENTS]
    out = pd.DataFrame({"customers": g.size(), "revenue": g["monetary"].sum(),
                        "median_recency_days": g["recency_days"].median(),
                        "mean_frequency": g["frequency"].mean()}).reindex(names)
    out["customers"] = out["customers"].fillna(0).astype("int64")  # an empty segment has 0 customers
    out["revenue"] = out["revenue"].fillna(0.0)
    n, total = out["customers"].sum(), out["revenue"].sum()
    out["customer_share"] = out["customers"] / n if n else np.nan
    out["revenue_share"] = out["revenue"] / total if total else np.nan
    out.insert(0, "rule", [rule.split(": ")[0] for _, rule in RFM_SEGMENTS])
    out = out[["rule", "customers", "customer_share", "revenue", "revenue_share", "median_recency_days",
               "mean_frequency"]]
    return out.rename_axis("segment").reset_index()


# ----------------------------------------------------------------------------- repeat and cross-sell
@metric(report="09", unit="pct")
def repeat_purchase_share(orders: pd.DataFrame, *, as_of: pd.Timestamp, alpha: float = 0.05) -> Proportion:
    """Share of customers who bought on at least two different days before as_of (repeat buyers / all buyers), with its Wilson interval."""
    tx = _transactions(orders, as_of, None, None, None)
    per = tx[tx["account_id"].notna()].groupby("account_id").size()
    return wilson(int((per >= 2).sum()), len(per), alpha=alpha)


@metric(report="09", unit="ratio")
def product_pairs(orders: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                  min_count: int = 5) -> pd.DataFrame:
    """Product pairs bought in the same transaction, with their support, confidence and lift (how many times more often than if the products were bought independently).

    Over the transactions (one customer, one day) before ``as_of``: support =
    transactions with both / all transactions; confidence_a_b = transactions with both /
    transactions with A; lift = support / (share with A x share with B). ``p_value`` is
    the one-sided Fisher exact test of "bought together more often than chance" (small:
    the pair is real, not luck). Pairs seen in fewer than ``min_count`` transactions
    are left out. Highest lift first.
    """
    _, baskets, items = _baskets(orders, as_of, start)
    return _pairs(baskets, baskets, items, same=True, min_count=min_count, names=("product_a", "product_b"))


@metric(report="09", unit="ratio")
def next_products(orders: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
                  min_count: int = 5) -> pd.DataFrame:
    """What customers buy next: how often a product is in a customer's next transaction after one with another product, with support, confidence and lift.

    Over consecutive transactions of the same customer before ``as_of`` (pairs of
    transaction k and k+1): support = pairs with A in the first and B in the next / all
    pairs; confidence = those pairs / pairs with A in the first; lift = confidence /
    share of pairs with B in the next. ``p_value``: one-sided Fisher exact test.
    Pairs seen fewer than ``min_count`` times are left out; highest lift first.
    """
    who, baskets, items = _baskets(orders, as_of, start)
    # transactions are in (customer, day) order: k and k + 1 of the same known customer
    has_next = np.flatnonzero((who[:-1] == who[1:]) & (who[:-1] >= 0))
    return _pairs(baskets[has_next], baskets[has_next + 1], items, same=False, min_count=min_count,
                  names=("product", "next_product"))


# ----------------------------------------------------------------------------- lifetime value
@dataclass(frozen=True)
class CustomerValue:
    """Customer lifetime value: the fitted BG/NBD and Gamma-Gamma models and the per-customer values."""

    table: pd.DataFrame
    purchases: _clv.BetaGeoFitter
    spend: _clv.GammaGammaFitter
    as_of: pd.Timestamp
    horizon_weeks: float
    discount_rate: float
    active_threshold: float

    @property
    def customers(self) -> int:
        return len(self.table)

    @property
    def active(self) -> pd.DataFrame:
        """The customers whose probability of being alive is at least ``active_threshold``."""
        return self.table[self.table["probability_alive"] >= self.active_threshold]

    @property
    def active_customers(self) -> int:
        return len(self.active)

    @property
    def total_active_clv(self) -> float:
        """Sum of the expected discounted value of the active customers."""
        return float(self.active["clv"].sum())

    @property
    def total_clv(self) -> float:
        return float(self.table["clv"].sum())

    @property
    def lapsed(self) -> pd.DataFrame:
        """Customers who bought again before but have probably stopped (P(alive) below ``active_threshold``)."""
        return self.table[self.table["probability_alive"] < self.active_threshold]

    def lapsed_valuable(self, top: float = 0.20) -> pd.DataFrame:
        """Lapsed customers among the top ``top`` fraction of customers by revenue to date, largest first."""
        k = int(math.ceil(top * len(self.table) - 1e-9))
        best = self.table.nlargest(k, "revenue_to_date").index if k else []
        out = self.lapsed.loc[self.lapsed.index.intersection(best)]
        return out.sort_values("revenue_to_date", ascending=False, kind="stable")

    def parameters(self) -> pd.DataFrame:
        """Both models' parameters with standard errors and 95% intervals, with a note of what each means."""
        meaning = {"r": "shape of the purchase rate across customers",
                   "alpha": "scale of the purchase rate (weeks); r / alpha = mean purchases per week",
                   "a": "dropout: Beta shape a", "b": "dropout: Beta shape b; a / (a + b) = mean dropout chance "
                   "after a purchase", "p": "spend: shape of one transaction's value",
                   "q": "spend: shape of the customers' mean values", "gamma": "spend: scale (money)"}
        frames = []
        for model, fitted in (("BG/NBD (purchases)", self.purchases), ("Gamma-Gamma (spend)", self.spend)):
            s = fitted.summary().reset_index()
            s.insert(0, "model", model)
            s["meaning"] = s["parameter"].map(meaning)
            frames.append(s)
        return pd.concat(frames, ignore_index=True)


@metric(report="09", unit="money")
def customer_lifetime_value(orders: pd.DataFrame, *, as_of: pd.Timestamp, horizon_weeks: float = 52,
                            discount_rate: float = 0.10, active_threshold: float = 0.5,
                            revenue_col: str = REVENUE_COL, accounts: pd.DataFrame | None = None,
                            users: pd.DataFrame | None = None) -> CustomerValue:
    """Expected discounted revenue of each customer over the next horizon_weeks: BG/NBD expected purchases times Gamma-Gamma expected spend per purchase.

    The models are fitted by maximum likelihood on the transactions before ``as_of``
    (weeks; see :mod:`crmlib.stats.clv`): BG/NBD on each customer's repeat purchases
    (frequency), the time of the last one (recency) and the time since the first
    (T); Gamma-Gamma on the mean value of the repeat purchases. Value is discounted at
    ``discount_rate`` a year, month by month. A customer is **active** when the
    probability that the customer is still buying (P(alive)) is at least ``active_threshold``;
    customers with a single purchase have P(alive) = 1 in BG/NBD (nobody can drop out
    before a repeat purchase), so they count as active.

    Returns a :class:`CustomerValue`: ``table`` (one row per customer: account_id,
    (name, owner), repeat_purchases (the models' frequency x), weeks_first_to_last (recency
    t_x), weeks_as_customer (T), last_purchase, revenue_to_date, mean_repeat_value (m), probability_alive,
    expected_purchases and expected_spend (per purchase) over the horizon, clv; largest
    clv first), the two fitted models, and ``total_active_clv``.
    """
    as_of = ensure_instant(as_of)
    o = _orders_before(orders, as_of, None, revenue_col, None)
    o = o[o["account_id"].notna()]
    summary = _clv.customer_summary(o, customer_col="account_id", date_col="ordered_at",
                                    value_col=revenue_col, calibration_end=as_of, time_unit="week")
    if (summary["frequency"] > 0).sum() < 10:
        raise CrmDataError(f"customer lifetime value needs customers who bought more than once; only "
                           f"{int((summary['frequency'] > 0).sum())} of {len(summary)} did before as_of",
                           table="orders")
    bg = _clv.BetaGeoFitter(time_unit="week").fit(summary)
    gg = _clv.GammaGammaFitter(time_unit="week").fit(summary)
    table = _clv.lifetime_value(bg, gg, summary, horizon=horizon_weeks, discount_rate=discount_rate)
    table = table.drop(columns=["first_purchase"]).rename(columns=_CLV_COLUMNS).reset_index()
    revenue = o.groupby("account_id")[revenue_col].sum()
    table.insert(table.columns.get_loc("last_purchase") + 1, "revenue_to_date",
                 table["account_id"].map(revenue).to_numpy())
    table = table.sort_values(["clv", "account_id"], ascending=[False, True], kind="stable")
    table = _with_names(table.reset_index(drop=True), accounts, users)
    return CustomerValue(table, bg, gg, as_of, float(horizon_weeks), float(discount_rate), float(active_threshold))


@metric(report="09", unit="ratio")
def purchase_model_check(orders: pd.DataFrame, *, as_of: pd.Timestamp, holdout_weeks: float = 26) -> _clv.ModelCheck:
    """Hold-out check of the purchase model: BG/NBD fitted on the orders before as_of minus holdout_weeks, its expected repeat purchases in the held-out weeks against the actual count.

    Returns a :class:`crmlib.stats.clv.ModelCheck` (predicted, actual, error =
    (predicted - actual) / actual) over the customers acquired before the hold-out.
    """
    as_of = ensure_instant(as_of)
    _require(orders, ["account_id", "ordered_at"], "orders")
    o = orders.loc[(orders["ordered_at"] < as_of) & orders["account_id"].notna(), ["account_id", "ordered_at"]]
    cut = as_of - pd.Timedelta(weeks=holdout_weeks)
    return _clv.holdout_check(o, customer_col="account_id", date_col="ordered_at", calibration_end=cut,
                              holdout_end=as_of, time_unit="week")


# ----------------------------------------------------------------------------- helpers
def _orders_before(orders, as_of, start, revenue_col, cost_col, extra=()) -> pd.DataFrame:
    """The order lines placed in [start, as_of): account_id, ordered_at, the money columns and ``extra`` only."""
    as_of = ensure_instant(as_of)
    _require(orders, ["account_id", "ordered_at"], "orders")
    if revenue_col:  # a missing revenue_rep gets a hint to convert with money.to_reporting
        require_single_currency(orders, revenue_col, table="orders")
    if cost_col:  # cost_col=None when the orders have no costs at all
        require_single_currency(orders, cost_col, table="orders")
    keep = orders["ordered_at"] < as_of
    if start is not None:
        keep &= orders["ordered_at"] >= ensure_instant(start, name="start")
    cols = list(dict.fromkeys(c for c in ("account_id", "ordered_at", revenue_col, cost_col, *extra) if c))
    o = orders.loc[keep, cols]  # a large export's lines: the columns used, not a copy of all
    if revenue_col and o[revenue_col].isna().any():
        raise CrmDataError(f"orders: {int(o[revenue_col].isna().sum())} lines have no {revenue_col}; the "
                           "audit should have quarantined them", table="orders", column=revenue_col)
    return o


def _day(ts: pd.Series) -> pd.Series:
    """Local calendar day (naive midnight) of each timestamp."""
    s = ts.dt.tz_localize(None) if isinstance(ts.dtype, pd.DatetimeTZDtype) else ts
    return s.dt.normalize()


def _transactions(orders, as_of, start, revenue_col, cost_col) -> pd.DataFrame:
    """One row per customer and day: revenue (when revenue_col), else the number of lines."""
    o = _orders_before(orders, as_of, start, revenue_col, cost_col)
    group, customer, day = _clv.customer_days(o["account_id"], _day(o["ordered_at"]))
    tx = pd.DataFrame({"account_id": customer, "day": day})
    if revenue_col:
        tx["revenue"] = np.bincount(group, weights=o[revenue_col].to_numpy(dtype="float64"), minlength=len(tx))
    else:
        tx["lines"] = np.bincount(group, minlength=len(tx)).astype("int64")
    return tx


def _baskets(orders, as_of, start):
    """The transactions (one customer, one day; in that order, unknown customers last) and
    what each holds: ``(customer, baskets, items)``, each transaction's customer as an
    integer (equal for the same customer; unknown customers -1) and ``baskets`` a sparse 0/1
    matrix of transactions x products (``items``, sorted). A transaction whose lines name
    no product is a row of zeros: it still counts among the baskets."""
    from scipy import sparse

    _require(orders, ("product",), "orders")
    o = _orders_before(orders, as_of, start, None, None, extra=("product",))
    row, who, names, _ = _clv.customer_day_codes(o["account_id"], _day(o["ordered_at"]))
    who[who == len(names)] = -1
    named = o["product"].notna().to_numpy()
    codes, items = _text_codes(o["product"], named)
    baskets = sparse.csr_matrix((np.ones(len(codes), dtype="int32"), (row[named], codes)),
                                shape=(len(who), len(items)))
    baskets.data[:] = 1  # a product on two lines of one basket is in it once
    return who, baskets, items


def _text_codes(values: pd.Series, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``pd.factorize(values[keep].astype(str), sort=True)``: each kept value's position
    among the distinct kept values in text order. A categorical column (a large snapshot's
    product) is ranked by its categories, not turned into millions of strings."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, items = pd.factorize(values[keep].astype(str), sort=True)
        return codes, [str(i) for i in items]
    raw = values.cat.codes.to_numpy()[keep]
    used = np.unique(raw)  # the categories present, by code
    text = np.array([str(c) for c in values.cat.categories.take(used)], dtype=object)
    order = np.argsort(text, kind="stable")
    rank = np.full(len(values.cat.categories), -1, dtype="int64")
    rank[used[order]] = np.arange(len(used))
    return rank[raw], [str(t) for t in text[order]]


def _pairs(A, B, items, *, same: bool, min_count: int, names: tuple[str, str]) -> pd.DataFrame:
    """Co-occurrence of the products of ``A``'s rows with those of ``B``'s rows (sparse 0/1,
    transactions x ``items``; the same rows when ``same``)."""
    from scipy.stats import hypergeom

    a_col, b_col = names
    columns = [a_col, b_col, "count", "support", "confidence", "lift", "p_value", f"{a_col}_count",
               f"{b_col}_count", "baskets"]
    n = A.shape[0]
    if n == 0:
        return pd.DataFrame(columns=columns)
    both = np.asarray((A.T @ B).todense())  # co-occurrence counts
    na, nb = np.asarray(A.sum(axis=0)).ravel(), np.asarray(B.sum(axis=0)).ravel()
    rows = []
    for i, pa in enumerate(items):
        for j, pb in enumerate(items):
            if same and j <= i:
                continue
            k = int(both[i, j])
            if k < max(min_count, 1):
                continue
            # P(at least k baskets with both | na with A, nb with B, n baskets), hypergeometric
            p_value = float(hypergeom.sf(k - 1, n, int(na[i]), int(nb[j])))
            rows.append({a_col: pa, b_col: pb, "count": k, "support": k / n, "confidence": k / na[i],
                         "lift": (k / n) / ((na[i] / n) * (nb[j] / n)), "p_value": p_value,
                         f"{a_col}_count": int(na[i]), f"{b_col}_count": int(nb[j]), "baskets": n})
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["lift", "count"], ascending=[False, False], kind="stable").reset_index(drop=True)


def _score(values: np.ndarray) -> np.ndarray:
    """1 + floor(5 x share of values strictly below each value): quintile scores, ties equal."""
    n = len(values)
    if n == 0:
        return np.array([], dtype="int64")
    below = np.searchsorted(np.sort(values), values, side="left")
    return (1 + np.floor(5 * below / n)).astype("int64")


def _segment(R: np.ndarray, F: np.ndarray) -> np.ndarray:
    conditions = [(R >= 4) & (F >= 4), (R >= 3) & (F >= 3), (R >= 4) & (F == 1), R >= 3,
                  (R <= 2) & (F >= 3), R == 2, R == 1]
    return np.select(conditions, [n for n, _ in RFM_SEGMENTS], default="Lost")


def _with_names(table: pd.DataFrame, accounts: pd.DataFrame | None,
                users: pd.DataFrame | None = None) -> pd.DataFrame:
    """The account's ``name`` after account_id and, with users, its ``owner`` (the account
    owner's name, else the owner id), for the account managers reading the report."""
    if accounts is None or "name" not in accounts.columns:
        return table
    acc = accounts.drop_duplicates("account_id").set_index("account_id")
    out = table.copy()
    out.insert(1, "name", out["account_id"].map(acc["name"]).astype("str"))
    if users is not None and "owner_id" in acc.columns and {"user_id", "name"} <= set(users.columns):
        owner_id = out["account_id"].map(acc["owner_id"])
        names = users.drop_duplicates("user_id").set_index("user_id")["name"]
        out.insert(2, "owner", owner_id.map(names).fillna(owner_id).astype("str"))
    return out
