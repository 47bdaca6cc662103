"""Report 05 recovers what the sample planted (truth.json "activity_outcome", "goals", "rep_effects").

How crmlib/sample.py plants the activity -> outcome link: each of the six Inside Sales reps
gets a weekly plan of calls (40-180) and meetings (0-9) for the 52 weeks since call logging
started; a deal the rep closes in a week is won with odds exp(rep skill + effect), where the
effect (truth "logit_effect") is +2.0 in the best zone (100-125 calls and at least 5
meetings), +0.2 at 100-125 calls with fewer meetings, -0.5 - 0.01 x (100 - calls) below 100
calls, -0.8 - 0.03 x (calls - 125) above 125, and +0.2 for at least 5 meetings outside the
best zone. The number of wins per group and month is fixed in advance (the generator picks
*which* deals win with those odds), which dampens the estimated effects a little.

Only 24 deals close in the best zone in the committed sample (truth "realised"; 9 to 31
across generator seeds), so effect sizes are uncertain. The tests below check what the data
can support; for each model-based check, the docstring says how often it held when the
generator was re-run with seeds 1 to 40 (same size and code; the committed sample is seed 7),
which is the honest measure of its tolerance:

* the reps selected (>= 20 calls in an average week) are the six Inside Sales reps (40 of 40);
* the best call band of the win-rate model is 100-125 (40 of 40), and so is the band with the
  highest raw win rate (39 of 40);
* the planted contrast between that band and the reference band lies inside the model's 95%
  interval (33 of 40, below the nominal 95%: the estimates run lower than the planted contrast,
  on average 0.79 of it, probably because the generator fixes the number of wins per group and
  month and because the contrast computed here mixes in each band's share of many-meeting weeks);
* the >= 5 meetings effect is positive (37 of 40): only a sign check, because outside the
  100-125 band the planted meetings effect is just +0.2 on the log-odds scale, which about 330
  deals cannot pin down (p = 0.27 in this sample, and the report says it is not significant);
* the 100-125 band effect is significant at 5% in the committed sample (p = 0.006 pooled,
  0.007 within reps); across seeds each held in 29 of 40, so this is a fact about this sample,
  not a guarantee of the method.

The panel counts (rep-weeks, deals and wins per zone) and the quota figures use exactly the
truth's definitions and are checked exactly (counts) or to rounding (money).
"""

import numpy as np
import pandas as pd
import pytest

from crmlib import money
from crmlib.metrics import activity
from crmlib.periods import as_of_instant

BEST = "100-125"


def planted_effect(calls, meetings):
    """truth["activity_outcome"]["logit_effect"], written out."""
    calls = np.asarray(calls, dtype=float)
    many = np.asarray(meetings) >= 5
    in_range = (calls >= 100) & (calls <= 125)
    below = -0.5 - 0.01 * (100 - calls)
    above = -0.8 - 0.03 * (calls - 125)
    base = np.where(in_range, 0.2, np.where(calls < 100, below, above))
    return base + np.where(many, np.where(in_range, 1.8, 0.2), 0.0)


@pytest.fixture(scope="module")
def deals(sample_data):
    return money.to_reporting(sample_data.tables["deals"], "amount", currency="EUR",
                              fx_rates=sample_data.tables["fx_rates"], date_col="created_at")


@pytest.fixture(scope="module")
def as_of(truth):
    return as_of_instant(truth["as_of"], "UTC")


@pytest.fixture(scope="module")
def outcome(deals, sample_data, as_of):
    return activity.activity_outcome(deals, sample_data.tables["activities"], as_of=as_of)


def test_the_reps_who_work_the_phone_are_the_planted_inside_sales_team(outcome, truth):
    t = truth["activity_outcome"]
    assert list(outcome.owners) == t["owners"]  # chosen by >= 20 calls in an average week
    weeks = outcome.panel["week_start"].drop_duplicates().sort_values()
    assert weeks.iloc[0].strftime("%Y-%m-%d") == t["weeks"]["first"]
    assert weeks.iloc[-1].strftime("%Y-%m-%d") == t["weeks"]["last"]
    assert outcome.weeks == 52
    p = outcome.panel
    assert [int(p["calls"].min()), int(p["calls"].max())] == t["calls_per_week_range"]
    assert [int(p["meetings"].min()), int(p["meetings"].max())] == t["meetings_per_week_range"]


def test_rep_week_zones_hold_exactly_the_planted_deals(outcome, truth):
    # The panel uses the truth's definitions (calls by created_at, completed meetings, deals by
    # the ISO week of closed_at; the truth counts meetings by due_at, which falls in the same week
    # as completed_at for every planned meeting), so the counts agree exactly.
    p, d = outcome.panel, outcome.deals
    in_range_p = p["calls"].between(100, 125)
    in_range_d = d["calls"].between(100, 125)
    zones = {
        "best": (in_range_p & (p["meetings"] >= 5), in_range_d & (d["meetings"] >= 5)),
        "calls_in_range_fewer_meetings": (in_range_p & (p["meetings"] < 5), in_range_d & (d["meetings"] < 5)),
        "calls_below_range": (p["calls"] < 100, d["calls"] < 100),
        "calls_above_range": (p["calls"] > 125, d["calls"] > 125),
    }
    for zone, (weeks, deals_in) in zones.items():
        want = truth["activity_outcome"]["realised"][zone]
        got = {"rep_weeks": int(weeks.sum()), "closed_deals": int(deals_in.sum()),
               "won": int(d.loc[deals_in, "won"].sum())}
        assert got == {k: want[k] for k in got}, zone


def test_the_best_call_band_is_the_planted_100_to_125(outcome, truth):
    assert truth["activity_outcome"]["best_calls_per_week"] == [100, 125]
    assert outcome.best_band == BEST
    bands = outcome.bands.set_index("band")
    assert bands["model_win_rate"].idxmax() == BEST
    assert bands["win_rate"].idxmax() == BEST  # the raw win rates agree with the model


def test_the_planted_band_contrast_lies_inside_the_models_95_percent_interval(outcome):
    # the planted contrast: mean planted logit shift of the deals in the best band minus that of
    # the reference band's deals (an approximation of the coefficient: it mixes in how many of
    # each band's deals had >= 5 meetings); tolerance: the model's own 95% interval
    d = outcome.deals
    eff = planted_effect(d["calls"], d["meetings"])
    ref = outcome.bands.set_index("band").loc[outcome.reference_band]
    in_best = d["calls"].between(100, 125).to_numpy()
    in_ref = ((d["calls"] >= ref["calls_from"]) & (d["calls"] < ref["calls_to"])).to_numpy()
    planted = eff[in_best].mean() - eff[in_ref].mean()
    e = outcome.win_model.effect(outcome.band_term(BEST))
    assert e["low"] <= planted <= e["high"]
    assert e["odds_ratio"] > 1


def test_the_meetings_effect_is_positive_but_only_its_sign_is_checked(outcome):
    e = outcome.win_model.effect("meetings >= 5")
    assert e["estimate"] > 0


def test_in_this_sample_the_best_band_effect_is_significant_also_within_reps(outcome):
    assert outcome.win_model.effect(outcome.band_term(BEST))["p_value"] < 0.05
    assert outcome.within_rep_model.effect(outcome.band_term(BEST))["p_value"] < 0.05
    assert outcome.win_model.n_groups == 6 and outcome.win_model.df_inference == 5


def test_quota_attainment_equals_the_planted_goals(deals, sample_data, as_of, truth):
    goals = truth["goals"]
    assert goals["metric"] == "revenue"
    q = activity.quota_attainment(deals, sample_data.tables["targets"], as_of=as_of).set_index("owner_id")
    want = goals["revenue_by_owner"]
    assert set(q.index) == set(want)
    assert (q["period_start"].dt.strftime("%Y-%m-%d") == goals["period_start"]).all()
    assert q["elapsed_share"].iloc[0] == pytest.approx(goals["share_elapsed"], abs=1e-6)
    for owner, row in want.items():
        # amounts are written with 2 decimals and converted at rates with 2-4 decimals: a cent a deal
        assert q.loc[owner, "actual"] == pytest.approx(row["actual"], abs=0.05), owner
        assert q.loc[owner, "target"] == pytest.approx(row["target"]), owner
        assert q.loc[owner, "attainment"] == pytest.approx(row["actual"] / row["target"], abs=1e-5), owner


def test_per_owner_win_counts_over_the_whole_history_equal_the_realised_ones(deals, as_of, truth):
    got = activity.owner_results(deals, start=pd.Timestamp("2000-01-01", tz="UTC"), end=as_of,
                                 as_of=as_of).set_index("owner_id")
    for owner, row in truth["rep_effects"]["realised_win_rate"].items():
        assert (int(got.loc[owner, "won"]), int(got.loc[owner, "lost"])) == (row["won"], row["lost"]), owner


def test_the_report_columns_of_activities_give_the_same_numbers_as_the_whole_table(deals, sample_data, as_of,
                                                                                    outcome):
    """Report 05 reads only ``activity.ACTIVITY_COLUMNS`` of a large snapshot's activities."""
    from crmlib.periods import period_bounds, periods_back

    whole = sample_data.tables["activities"]
    part = sample_data.table("activities", columns=activity.ACTIVITY_COLUMNS)
    assert len(part.columns) < len(whole.columns)
    again = activity.activity_outcome(deals, part, as_of=as_of)
    pd.testing.assert_frame_equal(again.panel, outcome.panel)
    pd.testing.assert_frame_equal(again.bands, outcome.bands)
    periods = periods_back(as_of, "week", 12)
    pd.testing.assert_frame_equal(activity.activity_mix(part, periods=periods, as_of=as_of),
                                  activity.activity_mix(whole, periods=periods, as_of=as_of))
    cur = period_bounds(as_of, "month").current
    kw = dict(period=cur, as_of=as_of, users=sample_data.tables["users"], targets=sample_data.tables["targets"])
    mine = activity.owner_performance(deals, activities=part, **kw)
    pd.testing.assert_frame_equal(mine, activity.owner_performance(deals, activities=whole, **kw))
    assert mine.filter(like="scheduled").to_numpy().sum() > 0  # the activities were used
