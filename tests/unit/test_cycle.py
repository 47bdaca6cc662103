"""Report 04 metrics (crmlib.metrics.cycle: sales cycle) on tiny frames worked out by hand in each test.

stage_visits/stage_time_norms have their own tests (test_cycle_stage_times.py); here
stage_time_table is checked against them, so reports 02 and 04 share one definition.
"""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from crmlib import narrative, plots  # noqa: E402
from crmlib.errors import CrmDataError  # noqa: E402
from crmlib.metrics.cycle import (CycleGrowth, CycleSummary, CycleSurvival, cycle_distribution,  # noqa: E402
                                  cycle_growth, cycle_summary, cycle_survival, cycle_trend, deal_cycles,
                                  stage_time_norms, stage_time_table)

TZ = "Europe/Berlin"
AS_OF = pd.Timestamp("2026-09-28", tz=TZ)  # as_of parameter "2026-09-27", the last day included
HOSTILE = "<script>alert(1)</script>"
LINK = "[click](javascript:alert(1))"


def t(x):
    return x if isinstance(x, pd.Timestamp) else pd.Timestamp(x, tz=TZ)


def make_deals(rows):
    """rows: (deal_id, status, created_at, closed_at or None, source[, account_id[, owner_id]])."""
    rows = [tuple(r) + (None,) * (7 - len(r)) for r in rows]
    return pd.DataFrame({
        "deal_id": pd.Series([r[0] for r in rows], dtype="str"),
        "status": pd.Series([r[1] for r in rows], dtype="str"),
        "created_at": pd.Series([t(r[2]) for r in rows], dtype=f"datetime64[us, {TZ}]"),
        "closed_at": pd.Series([t(r[3]) if r[3] is not None else pd.NaT for r in rows],
                               dtype=f"datetime64[us, {TZ}]"),
        "source": pd.Series([r[4] for r in rows], dtype="str"),
        "account_id": pd.Series([r[5] or "a1" for r in rows], dtype="str"),
        "owner_id": pd.Series([r[6] or "u1" for r in rows], dtype="str"),
    })


def cycle_deal(deal_id, status, cycle_days, closed, source="x"):
    """A deal closed at ``closed`` after ``cycle_days`` days (open: created cycle_days before as_of)."""
    if status == "open":
        return (deal_id, status, AS_OF - pd.Timedelta(days=cycle_days), None, source)
    end = t(closed)
    return (deal_id, status, end - pd.Timedelta(days=cycle_days), end, source)


# ----------------------------------------------------------------------------- deal_cycles
def test_cycles_of_closed_deals_and_censored_ages_of_open_ones():
    d = make_deals([
        ("A", "won", "2026-09-01", "2026-09-11", "x"),         # 10 days
        ("B", "open", "2026-09-05", None, "x"),                # open: 23 days so far
        ("C", "won", "2026-09-10", "2026-09-30", "x"),         # won after as_of: open, 18 days so far
        ("D", "open", "2026-09-29", None, "x"),                # created after as_of: not there yet
        ("E", "lost", "2026-08-22", "2026-09-01 12:00", "x"),  # 10.5 days
    ])
    c = deal_cycles(d, as_of=AS_OF).set_index("deal_id")
    assert c.index.tolist() == ["A", "B", "C", "E"]
    assert c["status_at"].tolist() == ["won", "open", "open", "lost"]
    assert c["cycle_days"].tolist() == pytest.approx([10.0, 23.0, 18.0, 10.5])
    assert c["censored"].tolist() == [False, True, True, False]
    later = deal_cycles(d, as_of=AS_OF, start=t("2026-09-05"), end=t("2026-09-10"))
    assert later["deal_id"].tolist() == ["B"]


def test_a_deal_closed_before_it_was_created_is_a_data_error():
    d = make_deals([("A", "won", "2026-09-11", "2026-09-01", "x")])
    with pytest.raises(CrmDataError, match="closed before they were created"):
        deal_cycles(d, as_of=AS_OF)


# ----------------------------------------------------------------------------- cycle_summary
WINDOW = [
    cycle_deal("W1", "won", 10, "2026-08-30"),
    cycle_deal("W2", "won", 20, "2026-09-09"),
    cycle_deal("W3", "won", 30, "2026-09-19"),
    cycle_deal("W4", "won", 40, "2026-09-19"),
    cycle_deal("L1", "lost", 5, "2026-09-15"),
    cycle_deal("O1", "open", 8, None),
]


def test_summary_of_won_deals_median_quartiles_p90_and_mean():
    s = cycle_summary(make_deals(WINDOW), as_of=AS_OF)
    assert isinstance(s, CycleSummary)
    # won cycles 10, 20, 30, 40: median 25; linear quartiles at positions 0.75 and 2.25
    assert (s.n, s.median, s.q1, s.q3, s.mean) == (4, 25.0, 17.5, 32.5, 25.0)
    assert s.p90 == pytest.approx(37.0)  # position 2.7: 30 + 0.7 x 10
    assert math.isnan(s.low) and math.isnan(s.high)  # four deals cannot bound a median at 95%
    assert s.estimate == s.median and "4 won deals" in s.summary()


def test_summary_window_and_outcome():
    d = make_deals(WINDOW)
    late = cycle_summary(d, as_of=AS_OF, start=t("2026-09-10"))
    assert (late.n, late.median) == (2, 35.0)  # W3 and W4
    closed = cycle_summary(d, as_of=AS_OF, start=t("2026-09-10"), outcome="closed")
    assert (closed.n, closed.median) == (3, 30.0)  # L1 (5), W3 (30), W4 (40)
    early = cycle_summary(d, as_of=AS_OF, start=t("2026-08-01"), end=t("2026-09-10"))
    assert (early.n, early.median) == (2, 15.0)  # W1 and W2
    assert cycle_summary(d, as_of=t("2026-08-01")).n == 0
    with pytest.raises(ValueError, match="outcome"):
        cycle_summary(d, as_of=AS_OF, outcome="abandoned")


# ----------------------------------------------------------------------------- cycle_distribution
def by_source_deals():
    rows = [cycle_deal(f"R{i}", "won", c, "2026-09-20", "referral") for i, c in enumerate([10, 20, 30])]
    rows += [cycle_deal(f"B{i}", "won", c, "2026-09-20", "outbound") for i, c in enumerate([40, 50, 60, 70])]
    rows += [cycle_deal("G1", "open", 12, None, "organic")]
    return make_deals(rows)


def test_distribution_by_source_with_median_relative_to_the_other_deals():
    out = cycle_distribution(by_source_deals(), as_of=AS_OF, by="source")
    assert out["source"].tolist() == ["referral", "outbound", "organic"]  # fastest first, no closes last
    ref = out.set_index("source").loc["referral"]
    assert (ref["deals"], ref["median_days"], ref["q1_days"], ref["q3_days"]) == (3, 20.0, 15.0, 25.0)
    assert ref["p90_days"] == pytest.approx(28.0) and ref["mean_days"] == 20.0
    assert ref["others_median_days"] == 55.0  # median of 40, 50, 60, 70
    assert ref["vs_others"] == pytest.approx(20 / 55)
    # Mann-Whitney, exact: 3 vs 4 fully separated is 1 of C(7, 3) = 35 orderings, two-sided 2/35
    assert ref["p_value"] == pytest.approx(2 / 35)
    org = out.set_index("source").loc["organic"]
    assert (org["deals"], org["open_deals"]) == (0, 1) and math.isnan(org["median_days"])


def test_distribution_by_segment_comes_from_the_account_and_no_segment_is_a_group():
    d = make_deals([cycle_deal("A", "won", 10, "2026-09-20") + ("a1",),
                    cycle_deal("B", "won", 30, "2026-09-20") + ("a2",),
                    cycle_deal("C", "won", 50, "2026-09-20") + ("a9",)])  # a9 is no known account
    accounts = pd.DataFrame({"account_id": pd.Series(["a1", "a2"], dtype="str"),
                             "segment": pd.Series(["SMB", "Enterprise"], dtype="str")})
    out = cycle_distribution(d, as_of=AS_OF, by="segment", accounts=accounts)
    assert out["segment"].tolist()[:2] == ["SMB", "Enterprise"] and pd.isna(out["segment"].iloc[2])
    assert out["median_days"].tolist() == [10.0, 30.0, 50.0]
    with pytest.raises(CrmDataError, match="accounts"):
        cycle_distribution(d, as_of=AS_OF, by="segment")


def test_distribution_by_owner_adds_names_and_teams():
    d = make_deals([cycle_deal("A", "won", 10, "2026-09-20") + ("a1", "u1"),
                    cycle_deal("B", "won", 30, "2026-09-20") + ("a1", "u2")])
    users = pd.DataFrame({"user_id": pd.Series(["u1", "u2"], dtype="str"),
                          "name": pd.Series(["Ann", "Bo"], dtype="str"),
                          "team": pd.Series(["East", "West"], dtype="str")})
    out = cycle_distribution(d, as_of=AS_OF, by="owner_id", users=users)
    assert out.columns.tolist()[:3] == ["owner_id", "name", "team"]
    assert out["name"].tolist() == ["Ann", "Bo"]


# ----------------------------------------------------------------------------- cycle_trend
TREND = [
    cycle_deal("T1", "won", 10, "2026-07-11"),   # created 07-01
    cycle_deal("T2", "won", 30, "2026-07-21"),   # created 06-21
    cycle_deal("T3", "won", 15, "2026-08-04"),   # created 07-20
    cycle_deal("T4", "open", 49, None),          # created 08-10
    cycle_deal("T5", "lost", 10, "2026-08-22"),  # created 08-12
]


def test_trend_by_close_month():
    out = cycle_trend(make_deals(TREND), as_of=AS_OF, period="month", periods=3)
    assert out["period"].tolist() == ["2026-07", "2026-08", "2026-09"]
    assert out["deals"].tolist() == [2, 1, 0]
    assert out["median_days"].iloc[:2].tolist() == [20.0, 15.0] and math.isnan(out["median_days"].iloc[2])
    assert (out["q1_days"].iloc[0], out["q3_days"].iloc[0]) == (15.0, 25.0)


def test_trend_by_creation_month_says_how_complete_each_cohort_is():
    out = cycle_trend(make_deals(TREND), as_of=AS_OF, period="month", periods=3, by_date="created_at")
    jul, aug, sep = (out.iloc[i] for i in range(3))
    # July cohort: T1 (10 days) and T3 (15), both won; Kaplan-Meier of any close: S = 1/2 at 10,
    # not below one half, then 0 at 15 -> median 15
    assert (jul["created"], jul["deals"], jul["median_days"], jul["open_deals"]) == (2, 2, 12.5, 0)
    assert jul["km_median_close_days"] == 15.0
    # August cohort: T4 open, T5 lost at 10 days: half closed, no won deal, median close not reached
    assert (aug["created"], aug["deals"], aug["open_deals"], aug["share_open"]) == (2, 0, 1, 0.5)
    assert math.isnan(aug["km_median_close_days"])
    assert sep["created"] == 0 and math.isnan(sep["share_open"])
    with pytest.raises(ValueError, match="by_date"):
        cycle_trend(make_deals(TREND), as_of=AS_OF, by_date="expected_close_at")


# ----------------------------------------------------------------------------- cycle_growth
def test_growth_is_the_yearly_change_of_the_log_cycle():
    # cycles of 20 x 1.1^years (+-1% wobble) closed every half year: 10% longer a year
    base = t("2024-01-01")
    rows = []
    for k in range(9):
        closed = base + pd.Timedelta(days=182.625 * k / 2)
        years = (closed - base).total_seconds() / (365.25 * 86400)
        cyc = 20 * 1.1 ** years * (1.01 if k % 2 else 0.99)
        rows.append(cycle_deal(f"D{k}", "won", cyc, closed))
    rows.append(cycle_deal("Z", "won", 0, base + pd.Timedelta(days=10)))  # zero days: no log
    g = cycle_growth(make_deals(rows), as_of=AS_OF)
    assert isinstance(g, CycleGrowth)
    assert g.per_year == pytest.approx(0.10, abs=0.01)
    assert g.low < g.per_year < g.high and g.p_value < 0.001
    assert (g.n, g.excluded) == (9, 1)
    assert g.over(5) == pytest.approx((1 + g.per_year) ** 5 - 1)


def test_growth_needs_three_deals():
    g = cycle_growth(make_deals(WINDOW[:2]), as_of=AS_OF)
    assert math.isnan(g.per_year) and g.n == 2


# ----------------------------------------------------------------------------- cycle_survival
# group a: lost at 5, won at 10, 20, 30 days and one deal open for 25 days; group b: won at 40, 50
SURV = [cycle_deal("a1", "lost", 5, "2026-09-20", "a"), cycle_deal("a2", "won", 10, "2026-09-20", "a"),
        cycle_deal("a3", "won", 20, "2026-09-20", "a"), cycle_deal("a4", "open", 25, None, "a"),
        cycle_deal("a5", "won", 30, "2026-09-20", "a"), cycle_deal("b1", "won", 40, "2026-09-20", "b"),
        cycle_deal("b2", "won", 50, "2026-09-20", "b")]


def test_survival_median_time_to_win_counts_the_open_deal():
    s = cycle_survival(make_deals(SURV[:5]), as_of=AS_OF, n_boot=50)
    assert isinstance(s, CycleSurvival)
    r = s.row()
    assert (r["deals"], r["won"], r["lost"], r["open"]) == (5, 3, 1, 1)
    # by hand: S(t-) = 1, 4/5, 3/5, 2/5 (25 censored), then 1 at risk at 30
    # won by day t: 10: 4/5 x 1/4 = 1/5; 20: + 3/5 x 1/3 = 2/5; 30: + 2/5 x 1/1 = 4/5 (final)
    # of the eventually won: 1/4, 1/2 exactly at 20, 1 -> median midway from 20 to 30 = 25
    assert r["median_win_days"] == pytest.approx(25.0)
    assert r["closed_only_median_win_days"] == 20.0  # the won deals alone: 10, 20, 30
    assert r["won_share"] == pytest.approx(0.8)
    # Kaplan-Meier of any close: 0.8, 0.6, 0.4 at 5, 10, 20 -> first below one half at 20
    assert r["median_close_days"] == 20.0
    assert r["median_win_low"] <= r["median_win_days"] <= r["median_win_high"]
    curve = s.curves
    assert curve["still_open"].tolist() == pytest.approx([0.8, 0.6, 0.4, 0.4, 0.0])
    assert curve["won_of_eventual"].tolist() == pytest.approx([0, 0.25, 0.5, 0.5, 1.0])
    assert s.median_close().estimate == 20.0 and s.median_win().estimate == pytest.approx(25.0)


def test_survival_by_group_compares_each_group_with_the_rest():
    s = cycle_survival(make_deals(SURV), as_of=AS_OF, by="source", n_boot=0)
    assert s.table["group"].tolist() == ["all deals", "a", "b"]
    assert s.table.columns.tolist()[:2] == ["group", "source"]
    tab = s.table.set_index("group")
    # all seven: won by day 10, 20, 30, 40, 50 = 3, 6, 10, 14, 18 (/21): of 18/21 won, 10/18 by 30
    assert tab.loc["all deals", "median_win_days"] == 30.0
    assert tab.loc["all deals", "won_share"] == pytest.approx(18 / 21)
    assert tab.loc["b", "median_win_days"] == 45.0  # 40 and 50, nothing censored
    assert tab.loc["a", "vs_others"] == pytest.approx(25 / 45)
    assert tab.loc["b", "vs_others"] == pytest.approx(45 / 25)
    assert math.isnan(tab.loc["b", "median_win_low"])  # n_boot=0: no interval


def test_survival_window_and_a_group_without_wins():
    s = cycle_survival(make_deals(SURV[:2]), as_of=AS_OF, by="source", n_boot=20)
    assert s.row("a")["won"] == 1
    only_lost = cycle_survival(make_deals(SURV[:1]), as_of=AS_OF, n_boot=20)
    assert math.isnan(only_lost.row()["median_win_days"])
    later = cycle_survival(make_deals(SURV), as_of=AS_OF, start=AS_OF - pd.Timedelta(days=26), n_boot=0)
    # created since 09-02: a1 (09-15), a2 (09-10) and the open a4 (09-03); a3 was created 08-31
    assert (later.row()["deals"], later.row()["open"]) == (3, 1)


# ----------------------------------------------------------------------------- stage_time_table
def test_stage_time_table_is_the_stage_norms_plus_the_share_of_time(history_as):
    rows = [("A", "qualify", "2026-09-01"), ("A", "proposal", "2026-09-04"), ("A", "won", "2026-09-14"),
            ("B", "qualify", "2026-09-01"), ("B", "proposal", "2026-09-02"), ("B", "lost", "2026-09-12"),
            ("C", "qualify", "2026-09-10")]
    history = pd.DataFrame({"deal_id": pd.Series([r[0] for r in rows], dtype="str"),
                            "stage": pd.Series([r[1] for r in rows], dtype="str"),
                            "entered_at": pd.Series([t(r[2]) for r in rows], dtype=f"datetime64[us, {TZ}]")})
    history = history_as(history)
    stages = pd.DataFrame({"pipeline": "main", "stage": ["qualify", "proposal", "won", "lost"],
                           "order": [1, 2, 3, 4], "is_closed": [False, False, True, True]})
    out = stage_time_table(history, as_of=AS_OF, stages=stages)
    assert out["stage"].tolist() == ["qualify", "proposal"]  # closed stages left out, pipeline order
    q, p = out.iloc[0], out.iloc[1]
    # qualify: completed visits of 3 (A) and 1 (B) days, C still open; proposal: 10 and 10 days
    assert (q["completed"], q["open"], q["median_days"]) == (2, 1, 2.0)
    assert q["p90_days"] == pytest.approx(2.8)  # 1 + 0.9 x (3 - 1)
    assert (q["total_days"], p["total_days"]) == (4.0, 20.0)
    assert (q["share_of_time"], p["share_of_time"]) == pytest.approx((4 / 24, 20 / 24))
    norms = stage_time_norms(history, as_of=AS_OF).set_index("stage")  # report 02's norms, unchanged
    assert out.set_index("stage")["norm_days"].to_dict() == pytest.approx(norms["norm_days"].dropna().to_dict())
    bare = stage_time_table(history, as_of=AS_OF)  # no stages table: path order, never-left stages last
    assert bare["stage"].tolist()[:2] == ["qualify", "proposal"]
    assert set(bare["stage"].tolist()[2:]) == {"won", "lost"}


# ----------------------------------------------------------------------------- narrative
def test_cycle_sentences_escape_hostile_names():
    d = by_source_deals()
    d["source"] = d["source"].replace({"referral": HOSTILE, "outbound": LINK})
    table = cycle_distribution(d, as_of=AS_OF, by="source")
    text = narrative.describe_cycle_by_group(table, by="source", min_deals=3)
    assert "<script" not in text and "](javascript" not in text
    assert "&lt;script&gt;" in text and "20 days" in text and "shorter" in text
    s = cycle_survival(d, as_of=AS_OF, by="source", n_boot=0)
    text = narrative.describe_cycle_survival(s, min_deals=3)
    assert "<script" not in text and "](javascript" not in text
    text = narrative.describe_cycle_survival(s, group=HOSTILE)
    assert "<script" not in text and "3 were won" in text


def test_cycle_summary_sentence_with_comparisons():
    d = make_deals(WINDOW)
    cur = cycle_summary(d, as_of=AS_OF, start=t("2026-09-10"))
    prev = cycle_summary(d, as_of=AS_OF, start=t("2026-08-01"), end=t("2026-09-10"))
    text = narrative.describe_cycle_summary(cur, previous=prev, period="month")
    assert "**35 days**" in text and "up 133% on the previous month" in text  # 35 vs 15
    assert "jumpy" in text  # two deals only
    none = narrative.describe_cycle_summary(cycle_summary(d, as_of=t("2026-08-01")), period="month")
    assert none.startswith("No deal was won in this month")


def test_trend_and_stage_sentences():
    trend = cycle_trend(make_deals(TREND), as_of=AS_OF, period="month", periods=3)
    text = narrative.describe_cycle_trend(trend, period="month")
    assert "from 15 days (2026\\-08) to 20 days (2026\\-07)" in text and "no such deal yet" in text
    g = CycleGrowth(0.01, -0.02, 0.04, 0.5, 100, 0, t("2024-01-01"), AS_OF)
    text = narrative.describe_cycle_trend(trend, g, period="month")
    assert "22% over 5 years" in text and "not statistically significant" in text
    table = pd.DataFrame({"stage": [HOSTILE, "b"], "completed": [3, 2], "median_days": [5.0, 2.0],
                          "p90_days": [9.0, 3.0], "share_of_time": [0.7, 0.3]})
    text = narrative.describe_stage_times(table)
    assert "<script" not in text and "70%" in text


# ----------------------------------------------------------------------------- plots
def test_plots_draw_one_artist_per_group_and_keep_names_literal():
    d = by_source_deals()
    d["source"] = d["source"].replace({"referral": "$x^2$ deals"})
    table = cycle_distribution(d, as_of=AS_OF, by="source")
    ax = plots.plot_cycle_distribution(table, by="source", title="Referral is fastest")
    labels = [tl.get_text() for tl in ax.get_yticklabels()]
    assert labels == ["$x^2$ deals (3)", "outbound (4)"]  # groups without a closed deal left out
    assert ax.get_title(loc="left") == "Referral is fastest"
    plt.close(ax.figure)

    s = cycle_survival(d, as_of=AS_OF, by="source", n_boot=0)
    ax = plots.plot_survival(s, min_deals=4)  # all deals (8) and outbound (4)
    assert len(ax.get_lines()) == 2 + 1  # two step curves and the one-half line
    plt.close(ax.figure)
    ax = plots.plot_survival(s, groups=["all deals"])
    assert len(ax.collections) == 1  # the confidence band of a single curve
    plt.close(ax.figure)
    ax = plots.plot_cumulative_incidence(s)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["won", "lost", "still open"]
    plt.close(ax.figure)
    ax = plots.plot_cycle_trend(cycle_trend(make_deals(TREND), as_of=AS_OF, period="month", periods=3))
    assert len(ax.get_lines()) == 1
    plt.close(ax.figure)


def test_stage_plot_has_one_bar_per_stage_with_completed_visits():
    table = pd.DataFrame({"stage": ["q", "p", "won"], "completed": [3, 2, 0], "median_days": [5.0, 2.0, np.nan],
                          "p90_days": [9.0, 3.0, np.nan], "share_of_time": [0.7, 0.3, 0.0]})
    ax = plots.plot_stage_times(table)
    assert len(ax.patches) == 2
    assert ax.get_title(loc="left") == "q takes 70% of the time deals spend in stages"
    plt.close(ax.figure)
