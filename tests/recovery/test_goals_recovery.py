"""Report 08's goal progress recovers what the sample planted (truth.json "goals").

The generator set the targets of the month of as_of from each rep's realised actuals so
that every run-rate projection (actual / share of the month's Mon-Fri working days gone)
is at least 95% of target, except the revenue of the planted off-pace reps (below 50%).
The truth's thresholds are passed explicitly: off pace below 60%, on pace from 90%.
"""

import pytest

from crmlib import money
from crmlib.metrics import goals
from crmlib.periods import as_of_instant

# Amounts are written to the CSV with 2 decimals and converted with the fx table's rates
# (2-4 decimals): a rep's monthly revenue (1-4 won deals) may differ from the generator's
# exact value by rounding alone, at most 0.01 EUR per deal; 0.05 EUR covers 5 deals.
CENTS = 0.05


@pytest.fixture(scope="module")
def progress(sample_data, truth):
    t = sample_data.tables
    deals = money.to_reporting(t["deals"], "amount", currency="EUR", fx_rates=t["fx_rates"],
                               date_col="created_at")
    g = truth["goals"]
    return goals.goal_progress(t["targets"], as_of=as_of_instant(truth["as_of"], "UTC"), deals=deals,
                               activities=t["activities"], leads=t["leads"], users=t["users"],
                               off_pace_below=g["off_pace_threshold"], on_pace_from=g["on_pace_threshold"])


def test_the_running_period_and_its_working_days_are_the_planted_ones(progress, truth):
    g = truth["goals"]
    assert set(progress["period_start"].dt.strftime("%Y-%m-%d")) == {g["period_start"]}
    assert set(progress["period_end"].dt.strftime("%Y-%m-%d")) == {g["period_end"]}
    assert set(progress["working_days_total"]) == {g["working_days_total"]}  # Mon-Fri, no holidays
    assert set(progress["working_days_elapsed"]) == {g["working_days_elapsed"]}
    assert progress["share_elapsed"].iloc[0] == pytest.approx(g["share_elapsed"], abs=1e-6)


def test_revenue_actual_target_and_projection_per_owner_equal_the_truth(progress, truth):
    rev = progress[(progress["metric"] == "revenue") & (progress["level"] == "owner")].set_index("owner_id")
    want = truth["goals"]["revenue_by_owner"]
    assert sorted(rev.index) == sorted(want)
    for owner, w in want.items():
        r = rev.loc[owner]
        assert r["target"] == w["target"], owner
        assert r["actual"] == pytest.approx(w["actual"], abs=CENTS), owner
        # projection = actual / share elapsed (0.86): rounding grows by at most 1 / 0.86
        assert r["projection"] == pytest.approx(w["projection"], abs=CENTS / 0.8), owner
        # the truth rounds the share to 4 decimals
        assert r["projected_attainment"] == pytest.approx(w["projection_share_of_target"], abs=5e-5), owner


def test_exactly_the_planted_owners_are_off_pace_for_revenue_and_the_rest_on_pace(progress, truth):
    g = truth["goals"]
    rev = progress[(progress["metric"] == "revenue") & (progress["level"] == "owner")]
    flagged = sorted(rev.loc[rev["off_pace"], "owner_id"])
    assert flagged == sorted(g["off_pace_owners"]) == sorted(g["planted_off_pace_owners"])
    others = rev[~rev["owner_id"].isin(g["off_pace_owners"])]
    assert others["on_pace"].all(), others.loc[~others["on_pace"], ["owner_id", "status"]]
    assert others["projected_attainment"].min() == pytest.approx(g["min_share_other_owners"], abs=5e-5)
    assert list(goals.off_pace(progress)["owner_id"]) == list(
        rev.loc[rev["off_pace"]].sort_values("projected_attainment")["owner_id"])


def test_goals_below_the_on_pace_threshold_per_metric_equal_the_truth(progress, truth):
    """Every owner goal of every metric (revenue, won deals, calls, meetings, new leads): the
    ones projected under 90% of target are exactly the truth's, so each actual definition
    lands on the right side of the threshold."""
    owners = progress[progress["level"] == "owner"]
    assert set(owners["metric"]) == set(goals.METRICS)
    assert owners["actual"].notna().all()
    below = owners[owners["projected_attainment"] < truth["goals"]["on_pace_threshold"]]
    got = {m: sorted(g["owner_id"]) for m, g in below.groupby("metric")}
    assert got == truth["goals"]["off_pace_by_metric"]


def test_every_team_has_targets_for_its_metrics_and_a_measured_actual(progress):
    teams = progress[progress["level"] == "team"]
    assert sorted(teams["team"].unique()) == ["Account Management", "Field Sales East", "Field Sales West",
                                              "Inside Sales"]
    assert teams["actual"].notna().all()
    assert set(teams.loc[teams["team"] == "Inside Sales", "metric"]) == set(goals.METRICS)
    # the generator set each team's target for the month at 95-125% of its projection
    assert (teams["projected_attainment"] >= 0.95 - 1e-9).all()
