"""Report 09 metrics (crmlib.metrics.customers), their narrative and pictures, on tiny frames
whose expected values are worked out by hand in each test."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from crmlib import narrative, plots
from crmlib.errors import CrmDataError, CurrencyError
from crmlib.metrics.customers import (RFM_SEGMENTS, abc_summary, customer_lifetime_value, customer_profitability,
                                      financial_rating, next_products, product_pairs, purchase_model_check,
                                      repeat_purchase_share, revenue_concentration, rfm_scores, rfm_segments)
from crmlib.stats.intervals import wilson

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TZ = "UTC"
AS_OF = pd.Timestamp("2026-03-01", tz=TZ)  # as_of parameter "2026-02-28", the last day included
HOSTILE = "<script>alert(1)</script>[x](javascript:alert(1))"


def t(x):
    return pd.Timestamp(x, tz=TZ)


def make_orders(rows):
    """rows: (account_id, day, product, revenue, cost); revenue_rep/cost_rep as money.to_reporting adds (EUR)."""
    f = pd.DataFrame({
        "order_id": pd.Series([f"O{i}" for i in range(len(rows))], dtype="str"),
        "account_id": pd.Series([r[0] for r in rows], dtype="str"),
        "ordered_at": pd.Series([t(r[1]) for r in rows], dtype=f"datetime64[us, {TZ}]"),
        "product": pd.Series([r[2] for r in rows], dtype="str"),
        "revenue": [float(r[3]) for r in rows],
        "cost": [np.nan if r[4] is None else float(r[4]) for r in rows],
        "currency": pd.Series(["EUR"] * len(rows), dtype="str"),
    })
    f["revenue_rep"] = f["revenue"]
    f["cost_rep"] = f["cost"]
    return f


ORDERS = make_orders([
    ("A", "2026-01-05", "Core", 100, 40), ("A", "2026-01-05 14:00", "Pro", 50, 20),  # one transaction
    ("A", "2026-02-10", "Core", 250, 100),
    ("B", "2026-01-20", "Pro", 300, None),  # no cost: margin unknown
    ("C", "2026-02-01", "Core", 200, 250),  # sold at a loss
    ("D", "2026-02-15", "Support", 100, 10),
    ("E", "2026-03-01", "Core", 999, 1),  # at as_of: not yet
    (None, "2026-02-20", "Core", 50, 5),  # no account
])


# ----------------------------------------------------------------------------- profitability
def test_profitability_per_customer_by_hand():
    accounts = pd.DataFrame({"account_id": pd.Series(["A", "B"], dtype="str"),
                             "name": pd.Series(["Alpha", "Beta"], dtype="str"),
                             "owner_id": pd.Series(["u1", "u9"], dtype="str")})
    users = pd.DataFrame({"user_id": pd.Series(["u1"], dtype="str"), "name": pd.Series(["Ann"], dtype="str")})
    p = customer_profitability(ORDERS, as_of=AS_OF, accounts=accounts, users=users)
    assert p.columns[:3].tolist() == ["account_id", "name", "owner"]
    assert p.set_index("account_id").loc["B", "owner"] == "u9"  # no user row: the owner id
    known = p[p["account_id"].notna()].set_index("account_id")
    assert known.index.tolist() == ["A", "B", "C", "D"]  # largest revenue first; E ordered at as_of
    a = known.loc["A"]
    assert (a["lines"], a["transactions"], a["revenue"], a["cost"], a["margin"]) == (3, 2, 400, 160, 240)
    assert a["margin_pct"] == pytest.approx(0.6)
    assert a["name"] == "Alpha" and a["owner"] == "Ann" and pd.isna(known.loc["C", "name"])  # C: no account row
    b = known.loc["B"]
    assert math.isnan(b["cost"]) and math.isnan(b["margin"]) and b["lines_without_cost"] == 1
    assert known.loc["C", "margin"] == -50
    # shares among the 1,000 of revenue of known customers: 0.4, 0.3, 0.2, 0.1
    assert known["revenue_share"].tolist() == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert known["cumulative_share"].tolist() == pytest.approx([0.4, 0.7, 0.9, 1.0])
    assert known["rank"].tolist() == [1, 2, 3, 4]
    # A: 0% before it; B: 40%; C: 70% (< 80%: still A); D: 90% (< 95%: B)
    assert known["abc_class"].tolist() == ["A", "A", "A", "B"]
    last = p.iloc[-1]  # the line without an account, kept in its own row
    assert pd.isna(last["account_id"]) and last["revenue"] == 50 and pd.isna(last["rank"])


def test_profitability_window_start_keeps_only_later_orders():
    p = customer_profitability(ORDERS, as_of=AS_OF, start=t("2026-02-01"))
    known = p[p["account_id"].notna()].set_index("account_id")
    assert known["revenue"].to_dict() == {"A": 250, "C": 200, "D": 100}


def test_revenue_concentration_counts_the_ceil_of_20_percent():
    p = customer_profitability(ORDERS, as_of=AS_OF)
    c = revenue_concentration(p, top=0.2)
    # 4 customers: ceil(0.8) = 1 customer (A, 400) of all 1,050 of order revenue (50 without account)
    assert (c.customers, c.top_customers) == (4, 1)
    assert c.share == pytest.approx(400 / 1050)
    assert revenue_concentration(p, top=0.5).share == pytest.approx(700 / 1050)


def test_abc_summary_by_hand():
    abc = abc_summary(customer_profitability(ORDERS, as_of=AS_OF)).set_index("abc_class")
    assert abc.index.tolist() == ["A", "B"]  # no class C customer here
    assert abc.loc["A", "customers"] == 3 and abc.loc["A", "revenue"] == 900
    # margin of A is known for A (240) and C (-50) only: 190 on their 600 of revenue
    assert abc.loc["A", "margin"] == 190
    assert abc.loc["A", "margin_pct"] == pytest.approx(190 / 600)
    assert abc["customer_share"].tolist() == pytest.approx([0.75, 0.25])
    assert abc["revenue_share"].tolist() == pytest.approx([0.9, 0.1])


def test_raw_revenue_in_several_currencies_is_refused():
    mixed = ORDERS.assign(currency=["EUR", "USD"] * 4)
    with pytest.raises(CurrencyError, match="mixes currencies"):
        customer_profitability(mixed, as_of=AS_OF, revenue_col="revenue", cost_col=None)
    with pytest.raises(CrmDataError, match="to_reporting"):
        customer_profitability(ORDERS.drop(columns=["revenue_rep"]), as_of=AS_OF)


# ----------------------------------------------------------------------------- financial rating
def make_deals(rows):
    """rows: (deal_id, account_id, status, created, closed, amount)."""
    return pd.DataFrame({
        "deal_id": pd.Series([r[0] for r in rows], dtype="str"),
        "account_id": pd.Series([r[1] for r in rows], dtype="str"),
        "status": pd.Series([r[2] for r in rows], dtype="str"),
        "created_at": pd.Series([t(r[3]) for r in rows], dtype=f"datetime64[us, {TZ}]"),
        "closed_at": pd.Series([t(r[4]) if r[4] else pd.NaT for r in rows], dtype=f"datetime64[us, {TZ}]"),
        "amount_rep": [float(r[5]) for r in rows],
        "source": pd.Series(["web"] * len(rows), dtype="str"),
    })


def test_financial_rating_ranks_won_value_in_the_window_with_deal_counts():
    d = make_deals([
        ("D1", "A", "won", "2026-01-10", "2026-02-05", 500),  # won in the window, created before it
        ("D2", "A", "lost", "2026-02-02", "2026-02-20", 80),
        ("D3", "A", "open", "2026-02-10", None, 70),
        ("D4", "B", "won", "2026-02-03", "2026-03-05", 900),  # closes after as_of: still open
        ("D5", "C", "won", "2026-02-01", "2026-02-25", 200),
        ("D6", "D", "won", "2025-12-01", "2026-01-15", 400),  # nothing in the window
        ("D7", None, "won", "2026-02-01", "2026-02-02", 50),  # no account
    ])
    r = financial_rating(d, as_of=AS_OF, start=t("2026-02-01")).set_index("account_id")
    assert r.index.tolist() == ["A", "C", "B"]
    assert r.loc["A", ["revenue", "won", "lost", "created"]].tolist() == [500, 1, 1, 2]
    assert r.loc["A", "won_created_ratio"] == pytest.approx(0.5)
    assert r.loc["C", "won_created_ratio"] == 1.0
    assert r.loc["B", ["revenue", "won", "created", "won_created_ratio"]].tolist() == [0, 0, 1, 0]
    assert r["rank"].tolist() == [1, 2, 3]


# ----------------------------------------------------------------------------- RFM
RFM_ORDERS = make_orders([
    ("P", "2026-01-10", "X", 250, 0), ("P", "2026-01-20", "X", 250, 0), ("P", "2026-02-10", "X", 250, 0),
    ("P", "2026-02-27", "X", 250, 0),
    ("Q", "2026-01-02", "X", 100, 0), ("Q", "2026-02-01", "X", 200, 0), ("Q", "2026-02-20", "X", 200, 0),
    ("R", "2026-02-25", "X", 100, 0),
    ("S", "2025-10-01", "X", 300, 0), ("S", "2025-11-01", "X", 300, 0), ("S", "2025-12-01", "X", 200, 0),
    ("T", "2025-09-01", "X", 50, 0),
])


def test_rfm_scores_and_segments_by_hand():
    r = rfm_scores(RFM_ORDERS, as_of=AS_OF).set_index("account_id")
    # recency in days to as_of 03-01: P 2, Q 9, R 4, S 90, T 181
    assert r["recency_days"].to_dict() == {"P": 2, "Q": 9, "R": 4, "S": 90, "T": 181}
    # score = 1 + floor(5 x share of customers strictly worse)
    assert r["R"].to_dict() == {"P": 5, "Q": 3, "R": 4, "S": 2, "T": 1}
    assert r["F"].to_dict() == {"P": 5, "Q": 3, "R": 1, "S": 3, "T": 1}  # 4, 3, 1, 3, 1 purchases
    assert r["M"].to_dict() == {"P": 5, "Q": 3, "R": 2, "S": 4, "T": 1}  # 1000, 500, 100, 800, 50
    assert r.loc["P", "rfm"] == "555"
    assert r["segment"].to_dict() == {"P": "Champions", "Q": "Loyal", "R": "New", "S": "At risk", "T": "Lost"}
    assert r.index.tolist() == ["P", "Q", "R", "S", "T"]  # in segment order


def test_rfm_segments_table_lists_every_segment_with_its_rule():
    seg = rfm_segments(rfm_scores(RFM_ORDERS, as_of=AS_OF)).set_index("segment")
    assert seg.index.tolist() == [name for name, _ in RFM_SEGMENTS]
    assert seg.loc["Promising", "customers"] == 0 and seg.loc["Hibernating", "customers"] == 0
    assert seg.loc["Champions", "customers"] == 1 and seg.loc["Champions", "revenue"] == 1000
    assert seg.loc["At risk", "rule"] == "R <= 2 and F >= 3"
    assert seg["customer_share"].sum() == pytest.approx(1.0)
    assert seg.loc["Champions", "revenue_share"] == pytest.approx(1000 / 2450)


def test_repeat_purchase_share_counts_buyers_on_two_days():
    share = repeat_purchase_share(RFM_ORDERS, as_of=AS_OF)
    assert (share.successes, share.n) == (3, 5)  # P, Q, S
    assert share.low == pytest.approx(wilson(3, 5).low)


# ----------------------------------------------------------------------------- cross-sell
def test_product_pairs_support_confidence_lift_and_fisher_p_value():
    o = make_orders([
        ("a", "2026-01-01", "X", 1, 0), ("a", "2026-01-01", "Y", 1, 0),
        ("b", "2026-01-01", "X", 1, 0), ("b", "2026-01-01", "Y", 1, 0), ("b", "2026-01-01", "Y", 1, 0),
        ("c", "2026-01-01", "X", 1, 0),
        ("d", "2026-01-01", "Z", 1, 0),
        ("e", "2026-01-01", "Y", 1, 0), ("e", "2026-01-01", "Z", 1, 0),
    ])
    pairs = product_pairs(o, as_of=AS_OF, min_count=1)
    assert list(zip(pairs["product_a"], pairs["product_b"], strict=True)) == [("X", "Y"), ("Y", "Z")]
    xy = pairs.iloc[0]
    # 5 baskets; X in 3, Y in 3, both in 2
    assert xy["count"] == 2 and xy["support"] == pytest.approx(0.4)
    assert xy["confidence"] == pytest.approx(2 / 3)
    assert xy["lift"] == pytest.approx(0.4 / (0.6 * 0.6))
    # P(at least 2 of the 3 Y-baskets among the 3 X-baskets of 5) = (C(3,2) C(2,1) + C(3,3)) / C(5,3)
    assert xy["p_value"] == pytest.approx((math.comb(3, 2) * math.comb(2, 1) + 1) / math.comb(5, 3))
    yz = pairs.iloc[1]
    assert yz["lift"] == pytest.approx(0.2 / (0.6 * 0.4))
    assert len(product_pairs(o, as_of=AS_OF, min_count=2)) == 1


def test_next_products_over_consecutive_transactions():
    o = make_orders([
        ("c1", "2026-01-01", "X", 1, 0), ("c1", "2026-01-10", "Y", 1, 0), ("c1", "2026-01-20", "Y", 1, 0),
        ("c2", "2026-01-01", "X", 1, 0), ("c2", "2026-01-05", "Y", 1, 0),
        ("c3", "2026-01-01", "Z", 1, 0), ("c3", "2026-01-02", "X", 1, 0),
    ])
    nxt = next_products(o, as_of=AS_OF, min_count=1)
    # pairs: X->Y, Y->Y, X->Y, Z->X (4); first side X 2, Y 1, Z 1; next side Y 3, X 1
    assert list(zip(nxt["product"], nxt["next_product"], strict=True)) == [("Z", "X"), ("X", "Y"), ("Y", "Y")]
    zx, xy = nxt.iloc[0], nxt.iloc[1]
    assert zx["lift"] == pytest.approx(1 / 0.25) and zx["p_value"] == pytest.approx(0.25)
    assert xy["count"] == 2 and xy["support"] == pytest.approx(0.5) and xy["confidence"] == 1.0
    assert xy["lift"] == pytest.approx(1 / 0.75)
    assert xy["p_value"] == pytest.approx(math.comb(2, 2) * math.comb(2, 1) / math.comb(4, 3))


def test_baskets_are_the_same_from_a_categorical_product_column_as_from_text():
    """A large snapshot reads the product as a category; its codes rank the products in
    text order, whatever the order of the categories, and unused categories, missing
    products and lines of no known customer change nothing."""
    o = make_orders([
        ("c1", "2026-01-01", "X", 1, 0), ("c1", "2026-01-01", "Y", 1, 0), ("c1", "2026-01-10", "Y", 1, 0),
        ("c2", "2026-01-01", "X", 1, 0), ("c2", "2026-01-05", "Y", 1, 0), ("c2", "2026-01-05", None, 1, 0),
        ("c3", "2026-01-01", "Z", 1, 0), ("c3", "2026-01-02", "X", 1, 0), ("c3", "2026-01-03", "b", 1, 0),
        (None, "2026-01-02", "Z", 1, 0), (None, "2026-01-04", "X", 1, 0),
        ("c4", "2026-01-02", "Y", 1, 0), ("c4", "2026-01-02", "Z", 1, 0), ("c4", "2026-01-09", "X", 1, 0),
    ])
    cat = o.assign(product=pd.Categorical(o["product"], categories=["Z", "unused", "b", "Y", "X"]))
    for f in (product_pairs, next_products):
        text = f(o, as_of=AS_OF, min_count=1)
        assert len(text) and text.iloc[:, 0].isin(["X", "Y", "Z", "b"]).all()
        pd.testing.assert_frame_equal(f(cat, as_of=AS_OF, min_count=1), text)
    # the unknown customer's two days are not consecutive purchases of one customer:
    # pairs c1 Y->Y (+X), c2 X->Y, c3 Z->X, X->b, c4 Y,Z -> X
    nxt = next_products(o, as_of=AS_OF, min_count=1)
    assert nxt["baskets"].iloc[0] == 5 and ("Z", "X") in set(zip(nxt["product"], nxt["next_product"]))


# ----------------------------------------------------------------------------- lifetime value
@pytest.fixture(scope="module")
def value_orders():
    rng = np.random.default_rng(7)
    rows = []
    for c in range(120):  # customers with their own rate, some stop
        gap, stop = rng.uniform(10, 150), rng.uniform(0, 900)
        day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        first = day
        while day < pd.Timestamp("2026-02-28") and (day - first).days <= stop:
            rows.append((f"C{c:03d}", day.strftime("%Y-%m-%d"), "X", float(rng.integers(50, 150)), 0))
            day += pd.Timedelta(days=1 + int(rng.exponential(gap)))
    return make_orders(rows)


def test_lifetime_value_table_totals_and_revenue_to_date(value_orders):
    v = customer_lifetime_value(value_orders, as_of=AS_OF, horizon_weeks=26, discount_rate=0.0)
    t_ = v.table
    assert len(t_) == 120 and t_["clv"].is_monotonic_decreasing
    assert t_.set_index("account_id")["revenue_to_date"].to_dict() == pytest.approx(
        value_orders.groupby("account_id")["revenue_rep"].sum().to_dict())
    active = t_["probability_alive"] >= 0.5
    assert v.active_customers == int(active.sum())
    assert v.total_active_clv == pytest.approx(t_.loc[active, "clv"].sum())
    assert (t_.loc[t_["repeat_purchases"] == 0, "probability_alive"] == 1).all()
    assert len(v.lapsed) == int((~active).sum())
    assert set(v.lapsed_valuable(0.2)["account_id"]) <= set(v.lapsed["account_id"])
    params = v.parameters()
    assert params["parameter"].tolist() == ["r", "alpha", "a", "b", "p", "q", "gamma"]


def test_lifetime_value_needs_repeat_buyers():
    with pytest.raises(CrmDataError, match="bought more than once"):
        customer_lifetime_value(RFM_ORDERS, as_of=AS_OF)


def test_purchase_model_check_holds_out_the_last_weeks(value_orders):
    check = purchase_model_check(value_orders, as_of=AS_OF, holdout_weeks=13)
    cut = AS_OF - pd.Timedelta(weeks=13)
    before = value_orders[value_orders["ordered_at"] < cut]
    after = value_orders[(value_orders["ordered_at"] >= cut) & (value_orders["ordered_at"] < AS_OF)]
    after = after[after["account_id"].isin(before["account_id"])]
    assert check.customers == before["account_id"].nunique()
    assert check.actual == len(after.drop_duplicates(["account_id", "ordered_at"]))


# ----------------------------------------------------------------------------- narrative
def test_narrative_escapes_customer_and_product_names():
    o = make_orders([(HOSTILE, "2026-01-05", HOSTILE, 500, 100), ("B", "2026-01-06", "Y", 10, 1),
                     (HOSTILE, "2026-02-05", "Y", 500, 100), ("B", "2026-01-06", HOSTILE, 10, 1)])
    p = customer_profitability(o, as_of=AS_OF)
    for text in (narrative.describe_profitability(p, currency="EUR"),
                 narrative.describe_product_pairs(product_pairs(o, as_of=AS_OF, min_count=1)),
                 narrative.describe_financial_rating(
                     financial_rating(make_deals([("D", HOSTILE, "won", "2026-02-01", "2026-02-02", 9)]),
                                      as_of=AS_OF, start=t("2026-01-01")), currency="EUR")):
        assert "<script" not in text and "](javascript" not in text
        assert "&lt;script&gt;" in text


def test_narrative_states_the_pareto_share_and_the_repeat_share():
    c = revenue_concentration(customer_profitability(ORDERS, as_of=AS_OF))
    text = narrative.describe_revenue_concentration(c, currency="EUR", previous=0.30)
    assert "**38%**" in text and "1 of 4" in text and "8\\.1 points more" in text
    rep = narrative.describe_repeat_share(repeat_purchase_share(RFM_ORDERS, as_of=AS_OF))
    assert "**60%**" in rep and "3 of 5" in rep


def test_rfm_narrative_names_champions_and_customers_at_risk():
    text = narrative.describe_rfm_segments(rfm_segments(rfm_scores(RFM_ORDERS, as_of=AS_OF)), currency="EUR")
    assert "**1 champion**" in text and "at risk" in text and "90 days" in text


# ----------------------------------------------------------------------------- pictures
def test_pareto_plot_marks_the_top_share_and_states_it_in_the_title():
    p = customer_profitability(ORDERS, as_of=AS_OF)
    ax = plots.plot_pareto(p, top=0.25)
    line = ax.get_lines()[0]
    assert line.get_ydata().tolist() == pytest.approx([0, 0.4, 0.7, 0.9, 1.0])
    assert ax.get_title(loc="left") == "The top 25% of customers bring 40% of revenue"
    plt.close("all")


def test_rfm_plot_draws_two_bars_per_segment():
    seg = rfm_segments(rfm_scores(RFM_ORDERS, as_of=AS_OF))
    ax = plots.plot_rfm_segments(seg)
    assert len(ax.patches) == 2 * len(RFM_SEGMENTS)
    assert ax.get_yticklabels()[0].get_text() == "Champions (1)"
    plt.close("all")
