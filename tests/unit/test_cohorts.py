"""Report 10 metrics (crmlib.metrics.cohorts), their narrative and pictures, on tiny frames
whose expected values are worked out by hand in each test."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from crmlib import narrative, plots
from crmlib.errors import CrmConfigError
from crmlib.metrics.cohorts import (cohort_activity, cohort_retention, customer_churn, customer_cohorts,
                                    deal_cohort_win_rates, latest_cohort_retention, repeat_rate_by_cohort,
                                    retention_matrix, weak_cohorts)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TZ = "UTC"
AS_OF = pd.Timestamp("2026-04-01", tz=TZ)  # as_of parameter "2026-03-31": January to March are over
HOSTILE = "<img src=x onerror=alert(1)>[x](javascript:alert(1))"


def t(x):
    return pd.Timestamp(x, tz=TZ)


def make_orders(rows):
    """rows: (account_id, ordered_at, revenue)."""
    f = pd.DataFrame({
        "account_id": pd.Series([r[0] for r in rows], dtype="str"),
        "ordered_at": pd.Series([t(r[1]) for r in rows], dtype=f"datetime64[us, {TZ}]"),
        "revenue": [float(r[2]) for r in rows],
        "currency": pd.Series(["EUR"] * len(rows), dtype="str"),
    })
    f["revenue_rep"] = f["revenue"]
    return f


def make_deals(rows):
    """rows: (deal_id, account_id, status, created, closed, source)."""
    return pd.DataFrame({
        "deal_id": pd.Series([r[0] for r in rows], dtype="str"),
        "account_id": pd.Series([r[1] for r in rows], dtype="str"),
        "status": pd.Series([r[2] for r in rows], dtype="str"),
        "created_at": pd.Series([t(r[3]) for r in rows], dtype=f"datetime64[us, {TZ}]"),
        "closed_at": pd.Series([t(r[4]) if r[4] else pd.NaT for r in rows], dtype=f"datetime64[us, {TZ}]"),
        "source": pd.Series([r[5] for r in rows], dtype="str"),
    })


ORDERS = make_orders([
    ("A", "2026-01-05", 300), ("A", "2026-01-20", 100), ("A", "2026-02-10", 100), ("A", "2026-03-15", 100),
    ("B", "2026-01-25", 100), ("B", "2026-03-01", 100), ("B", "2026-03-02", 100),
    ("C", "2026-02-10", 100),
    ("D", "2026-02-28", 100), ("D", "2026-03-31 23:00", 100),
    ("E", "2026-03-10", 100),
    ("F", "2026-04-01", 100),  # at as_of: not yet
])
DEALS = make_deals([
    ("W1", "A", "won", "2025-12-01", "2025-12-20", "referral"),
    ("W2", "A", "won", "2026-01-01", "2026-02-01", "web"),  # later win: not the acquisition source
    ("W3", "B", "won", "2026-01-02", "2026-01-24", "web"),
    ("W4", "C", "won", "2026-01-02", "2026-04-03", "events"),  # won after as_of: unknown at as_of
    ("W5", "D", "won", "2026-01-02", "2026-02-27", "web"),
    ("L1", "E", "lost", "2026-01-02", "2026-03-01", "web"),
])


# ----------------------------------------------------------------------------- cohorts
def test_customer_cohorts_by_first_order_and_source_of_first_won_deal():
    c = customer_cohorts(ORDERS, DEALS, as_of=AS_OF).set_index("account_id")
    assert c.index.tolist() == ["A", "B", "C", "D", "E"]
    assert c["cohort"].to_dict() == {"A": "2026-01", "B": "2026-01", "C": "2026-02", "D": "2026-02", "E": "2026-03"}
    assert c["source"].to_dict() == {"A": "referral", "B": "web", "C": "(unknown)", "D": "web", "E": "(unknown)"}
    q = customer_cohorts(ORDERS, as_of=AS_OF, freq="quarter")
    assert set(q["cohort"]) == {"2026-Q1"}
    with pytest.raises(CrmConfigError, match="freq"):
        customer_cohorts(ORDERS, as_of=AS_OF, freq="week")


def test_cohort_activity_retention_revenue_and_censoring_by_hand():
    act = cohort_activity(ORDERS, as_of=AS_OF, max_age=2).set_index(["cohort", "age"])
    jan = act.loc["2026-01"]
    assert jan["customers"].tolist() == [2, 2, 2]
    assert jan["buyers"].tolist() == [2, 1, 2]  # Feb: A; Mar: A and B
    assert jan["retention"].tolist() == [1.0, 0.5, 1.0]
    assert jan["revenue"].tolist() == [500, 100, 300]
    assert jan["cumulative_revenue_per_customer"].tolist() == [250, 300, 450]
    feb = act.loc["2026-02"]
    assert feb["buyers"].iloc[:2].tolist() == [2, 1]  # March: D (31st, 23:00, before as_of)
    assert feb["observed"].tolist() == [True, True, False]  # April is not over
    assert math.isnan(feb["retention"].iloc[2]) and math.isnan(feb["cumulative_revenue_per_customer"].iloc[2])
    mar = act.loc["2026-03"]
    assert mar["observed"].tolist() == [True, False, False]
    assert act["complete"].all()
    young = cohort_activity(ORDERS, as_of=t("2026-03-20"), max_age=1).set_index(["cohort", "age"])
    assert not young.loc[("2026-03", 0), "complete"] and not young.loc[("2026-03", 0), "observed"]


def test_retention_matrix_is_the_wide_view():
    m = retention_matrix(ORDERS, as_of=AS_OF, max_age=2)
    assert m.index.tolist() == ["2026-01", "2026-02", "2026-03"]
    assert m["customers"].tolist() == [2, 2, 1]
    assert m.loc["2026-01", [0, 1, 2]].tolist() == [1.0, 0.5, 1.0]
    assert m.loc["2026-03", [1, 2]].isna().all()


def test_cohort_retention_per_cohort_marks_incomplete_windows():
    r = cohort_retention(ORDERS, as_of=AS_OF, ages=(1, 2)).set_index("cohort")
    jan = r.loc["2026-01"]
    # A bought in Feb and Mar (2 days), B on Mar 1 and Mar 2 (2 days)
    assert (jan["customers"], jan["retained"], jan["purchases"], jan["kept_buying"]) == (2, 2, 4, 2)
    assert jan["retention"] == 1.0 and jan["purchases_per_customer"] == 2.0 and jan["complete"]
    feb = r.loc["2026-02"]  # window Mar-Apr: April not over
    assert not feb["complete"] and feb["customers"] == 2 and pd.isna(feb["retained"]) and math.isnan(feb["retention"])


def test_cohort_retention_by_source_counts_only_finished_windows_and_tests_each_source():
    r = cohort_retention(ORDERS, DEALS, as_of=AS_OF, ages=(1, 1), by="source").set_index("source")
    assert r[["customers", "retained", "too_recent"]].to_dict("index") == {
        "(unknown)": {"customers": 1, "retained": 0, "too_recent": 1},  # C counted, E too recent
        "referral": {"customers": 1, "retained": 1, "too_recent": 0},
        "web": {"customers": 2, "retained": 1, "too_recent": 0},
    }
    # web 1 of 2 against the others' 1 of 2: the same rate, z = 0
    assert r.loc["web", "p_value"] == pytest.approx(1.0)
    # referral 1 of 1 against 1 of 3: pooled 2/4, se = sqrt(1/4 (1 + 1/3)), z = (1 - 1/3) / se
    z = (1 - 1 / 3) / math.sqrt(0.25 * (1 + 1 / 3))
    assert r.loc["referral", "p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    with pytest.raises(CrmConfigError, match="source"):
        cohort_retention(ORDERS, as_of=AS_OF, by="source")  # no deals: no source


def weak_orders():
    """Three monthly cohorts of 10: 6 come back in month 1; in 2025-02 only 1 of them buys again in
    month 2, in the other cohorts 5 of 6 do."""
    rows = []
    for month, kept in (("2025-01", 5), ("2025-02", 1), ("2025-03", 5)):
        start = pd.Timestamp(f"{month}-05")
        for i in range(10):
            acc = f"{month}-{i}"
            rows.append((acc, start.strftime("%Y-%m-%d"), 10))
            if i < 6:
                rows.append((acc, (start + pd.DateOffset(months=1)).strftime("%Y-%m-%d"), 10))
            if i < kept:
                rows.append((acc, (start + pd.DateOffset(months=2)).strftime("%Y-%m-%d"), 10))
    return make_orders(rows)


def test_weak_cohorts_flags_the_month_whose_returning_customers_stop():
    w = weak_cohorts(weak_orders(), as_of=AS_OF, ages=(1, 3), min_customers=5).set_index("cohort")
    feb = w.loc["2025-02"]
    assert feb["kept_share"] == pytest.approx(1 / 6) and feb["rest_kept_share"] == pytest.approx(10 / 12)
    assert feb["drop"] == pytest.approx(0.8)
    # one-sided two-proportion z-test: 1 of 6 against 10 of 12, pooled 11/18
    pooled = 11 / 18
    z = (1 / 6 - 10 / 12) / math.sqrt(pooled * (1 - pooled) * (1 / 6 + 1 / 12))
    assert feb["kept_p_value"] == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)))
    assert w.loc[w["weak"]].index.tolist() == ["2025-02"]  # p < 0.05 / 3 and a drop of 80%
    assert w.index[0] == "2025-02"  # weakest first
    assert weak_cohorts(weak_orders(), as_of=AS_OF, ages=(1, 3), min_customers=11).empty


def test_latest_cohort_retention_compares_with_the_cohort_before():
    latest = latest_cohort_retention(ORDERS, as_of=AS_OF, months=1)
    # 1-month windows over by as_of: 2026-01 (Feb) and 2026-02 (Mar); 2026-03 (Apr) is not
    assert latest.cohort == "2026-02" and (latest.rate.successes, latest.rate.n) == (1, 2)  # D
    assert latest.previous_cohort == "2026-01" and (latest.previous.successes, latest.previous.n) == (1, 2)  # A
    assert latest.year_ago_cohort == "2025-02" and latest.year_ago is None and math.isnan(latest.year_ago_estimate)
    assert latest.estimate == 0.5
    with pytest.raises(CrmConfigError, match="whole number"):
        latest_cohort_retention(ORDERS, as_of=AS_OF, months=2, freq="quarter")


def test_churn_counts_customers_silent_for_the_last_months():
    two = customer_churn(ORDERS, as_of=AS_OF, inactive_months=2)
    # cutoff 02-01: A and B acquired before; both bought in March
    assert (two.churned, two.customers) == (0, 2) and two.cutoff == t("2026-02-01")
    one = customer_churn(ORDERS, as_of=AS_OF, inactive_months=1)
    # cutoff 03-01: A, B, C, D acquired before; only C has bought nothing since
    assert (one.churned, one.customers) == (1, 4) and one.rate.estimate == 0.25


def test_repeat_rate_by_cohort_censors_young_cohorts():
    r = repeat_rate_by_cohort(ORDERS, as_of=AS_OF, within=1).set_index("cohort")
    assert r.loc["2026-01", ["customers", "repeaters", "repeaters_so_far"]].tolist() == [2, 1, 2]  # A by Feb; B in Mar
    assert r.loc["2026-01", "repeat_rate"] == 0.5
    assert r.loc["2026-02", ["repeaters", "repeat_rate"]].tolist() == [1, 0.5]  # D on Mar 31
    assert not r.loc["2026-03", "complete"] and math.isnan(r.loc["2026-03", "repeat_rate"])
    assert pd.isna(r.loc["2026-03", "repeaters"])


def test_purchases_are_local_days_and_lines_without_a_customer_count_nowhere():
    """Days and months are the orders' own (Berlin) calendar; two lines on one local day
    are one purchase, lines on two local days two, even when they fall on one UTC day."""
    tz = "Europe/Berlin"
    rows = [("X", "2026-01-10 10:00"), ("X", "2026-02-14 23:30"), ("X", "2026-02-15 00:10"),
            ("Y", "2026-02-01 00:30"),  # 2026-01-31 23:30 UTC: a February customer in Berlin
            ("Y", "2026-03-05 08:00"), ("Y", "2026-03-05 20:00"),
            ("Z", "2026-03-10 09:00"), ("Z", "2026-03-10 18:00"),
            (None, "2026-01-15 12:00"), (None, "2026-03-15 12:00")]
    o = pd.DataFrame({"account_id": pd.Series([r[0] for r in rows], dtype="str"),
                      "ordered_at": pd.Series([pd.Timestamp(r[1], tz=tz) for r in rows],
                                              dtype=f"datetime64[us, {tz}]")})
    as_of = pd.Timestamp("2026-04-01", tz=tz)
    c = customer_cohorts(o, as_of=as_of).set_index("account_id")
    assert c["cohort"].to_dict() == {"X": "2026-01", "Y": "2026-02", "Z": "2026-03"}
    assert c.loc["Y", "first_order"] == pd.Timestamp("2026-02-01 00:30", tz=tz)
    w = cohort_retention(o, as_of=as_of, ages=(1, 1)).set_index("cohort")
    # X's month 1 (February): two days, kept buying; Y's (March): one day of two lines
    assert w.loc["2026-01", ["customers", "retained", "purchases", "kept_buying"]].tolist() == [1, 1, 2, 1]
    assert w.loc["2026-02", ["customers", "retained", "purchases", "kept_buying"]].tolist() == [1, 1, 1, 0]
    r = repeat_rate_by_cohort(o, as_of=as_of, within=0).set_index("cohort")
    # within the acquisition month: X one day (Jan 10), Y one, Z one day of two lines
    assert r["repeaters_so_far"].to_dict() == {"2026-01": 1, "2026-02": 1, "2026-03": 0}
    assert r.loc["2026-01", "repeaters"] == 0 and r.loc["2026-03", "repeaters"] == 0
    a = cohort_activity(o, as_of=as_of, max_age=2, revenue_col=None).set_index(["cohort", "age"])
    assert a.loc[("2026-01", 1), "buyers"] == 1 and a.loc[("2026-01", 2), "buyers"] == 0
    assert a.loc[("2026-02", 1), "buyers"] == 1 and a["customers"].max() == 1
    churn = customer_churn(o, as_of=as_of, inactive_months=1)  # cutoff March 1st: X and Y counted
    assert (churn.churned, churn.customers) == (1, 2)


def test_deal_cohort_win_rates_are_cumulative_and_censored():
    d = make_deals([
        ("K1", "a", "won", "2026-01-10", "2026-01-20", "web"),
        ("K2", "a", "won", "2026-01-15", "2026-03-05", "web"),
        ("K3", "a", "lost", "2026-01-20", "2026-02-01", "web"),
        ("K4", "a", "open", "2026-01-25", None, "web"),
        ("K5", "a", "won", "2026-02-03", "2026-04-02", "web"),  # closes after as_of: open at as_of
        ("K6", "a", "won", "2026-03-10", "2026-03-11", "web"),
    ])
    w = deal_cohort_win_rates(d, as_of=AS_OF, max_age=2).set_index(["cohort", "age"])
    jan = w.loc["2026-01"]
    assert jan["deals"].tolist() == [4, 4, 4]
    assert jan["won"].tolist() == [1, 1, 2] and jan["lost"].tolist() == [0, 1, 1] and jan["open"].tolist() == [3, 2, 1]
    assert jan["win_rate"].tolist() == [0.25, 0.25, 0.5]
    feb = w.loc["2026-02"]
    assert feb["won"].iloc[:2].tolist() == [0, 0] and feb["observed"].tolist() == [True, True, False]
    assert math.isnan(feb["win_rate"].iloc[2])
    assert w.loc[("2026-03", 0), "win_rate"] == 1.0 and not w.loc[("2026-03", 1), "observed"]


# ----------------------------------------------------------------------------- narrative
def test_source_narrative_escapes_source_names_and_states_significance():
    table = pd.DataFrame({"source": [HOSTILE, "web"], "customers": [40, 60], "retained": [20, 12],
                          "retention": [0.5, 0.2], "retention_low": [0.35, 0.12], "retention_high": [0.65, 0.32],
                          "purchases": [40, 20], "purchases_per_customer": [1.0, 1 / 3], "p_value": [0.002, 0.002]})
    text = narrative.describe_source_retention(table, ages=(7, 12))
    assert "<img" not in text and "](javascript" not in text and "&lt;img" in text
    assert "**50%**" not in text and "50% of them" in text and "against 20%" in text
    assert "statistically significant" in text


def test_weak_month_narrative_names_the_month_or_says_none_stands_out():
    w = weak_cohorts(weak_orders(), as_of=AS_OF, ages=(1, 3), min_customers=5)
    text = narrative.describe_weak_months(w, ages=(1, 3))
    assert text.startswith("One acquisition month is weak") and "2025\\-02" in text
    assert "17% of those bought again, against 83%" in text
    calm = narrative.describe_weak_months(w.assign(weak=False))
    assert "No acquisition month stands out" in calm


def test_latest_retention_and_churn_narratives():
    latest = latest_cohort_retention(ORDERS, as_of=AS_OF, months=1)
    text = narrative.describe_latest_retention(latest, months=1)
    assert text.startswith("**50%** of the customers acquired in 2026\\-02 bought again within 1 month")
    assert "50% for 2026\\-01" in text
    churn = narrative.describe_customer_churn(customer_churn(ORDERS, as_of=AS_OF, inactive_months=1))
    assert "after 1 month without a purchase" in churn and "**25%**" in churn and "1 of 4" in churn


# ----------------------------------------------------------------------------- pictures
def test_cohort_heatmap_hatches_the_cells_not_yet_observed():
    act = cohort_activity(ORDERS, as_of=AS_OF, max_age=2)
    ax = plots.plot_cohort_heatmap(act, value="retention", highlight=["2026-02"], title="A finding")
    hatched = [p for p in ax.patches if p.get_hatch() == "///"]
    assert len(hatched) == 3  # 2026-02 age 2, 2026-03 ages 1 and 2
    assert [tk.get_text() for tk in ax.get_yticklabels()] == ["2026-01", "2026-02", "2026-03"]
    assert ax.get_yticklabels()[1].get_fontweight() == "bold"
    assert ax.get_title(loc="left") == "A finding"
    plt.close("all")


def test_retention_by_group_draws_intervals_and_the_overall_line():
    r = cohort_retention(ORDERS, DEALS, as_of=AS_OF, ages=(1, 1), by="source")
    ax = plots.plot_retention_by_group(r, by="source")
    assert len(ax.patches) == 3
    line = next(ln for ln in ax.get_lines() if ln.get_gid() == "overall")
    assert line.get_ydata()[0] == pytest.approx(2 / 4)
    plt.close("all")


def test_title_helpers_state_the_finding():
    act = cohort_activity(ORDERS, as_of=AS_OF, max_age=2)
    # complete cohorts, month 1: 1 of 2 (Jan) + 1 of 2 (Feb); month 2: 2 of 2 (Jan)
    assert narrative.retention_title(act) == "50% of a cohort buys again in month 1, 100% in month 2"
    assert narrative.cohort_revenue_title(act, currency="EUR", age=2) == "A customer brings €450 by month 2 on average"
    assert np.isfinite(act["cumulative_revenue_per_customer"].iloc[0])
    # only 2026-01 has all ages 0-2 observed: 500 of its 900 at age 0
    assert narrative.cohort_total_revenue_title(act) == "The first order brings 56% of what a cohort buys by month 2 (1 cohort old enough)"


def test_period_index_counts_calendar_months_and_quarters_from_year_zero():
    from crmlib.metrics.cohorts import _period_index

    when = pd.Series([pd.Timestamp(x) for x in ("1969-12-31 23:59:59.999999", "1970-01-01", "1899-02-15 12:00",
                                                "2026-03-31 23:59:59.999999", "2026-04-01", "2400-12-31")],
                     dtype="datetime64[us]", index=[5, 3, 9, 1, 7, 2])
    by_hand = [1969 * 12 + 11, 1970 * 12, 1899 * 12 + 1, 2026 * 12 + 2, 2026 * 12 + 3, 2400 * 12 + 11]
    assert _period_index(when, "month").tolist() == by_hand
    assert _period_index(when, "quarter").tolist() == [m // 3 for m in by_hand]
    assert _period_index(when, "month").index.tolist() == [5, 3, 9, 1, 7, 2]  # aligned with its input
