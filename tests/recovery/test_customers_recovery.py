"""Reports 09 and 10 recover what the sample planted (truth.json "clv", "cross_sell_pair",
"revenue_top20_share", "retention").

The sample is read and audited as a user would (planted dirty orders quarantined, flagged
ones kept), converted with crmlib.money, and measured with the report's own functions at
the truth's calibration end (as_of 2026-09-27, the instant 2026-09-28 00:00 UTC). The
generator's definitions are used where it states them: a transaction is all order lines
of one account on one day; BG/NBD counts repeat transactions after the first in weeks; T
runs from the first purchase day to the calibration end.
"""

from __future__ import annotations

import pandas as pd
import pytest

from crmlib import money
from crmlib.metrics import cohorts, customers
from crmlib.periods import as_of_instant


@pytest.fixture(scope="module")
def as_of(truth):
    end = pd.Timestamp(truth["clv"]["calibration_end"], tz="UTC")
    at = as_of_instant(truth["as_of"], "UTC")
    assert at == end  # the report's as_of instant is the generator's calibration end
    return at


@pytest.fixture(scope="module")
def orders(sample_data):
    return money.to_reporting(sample_data.tables["orders"], ("revenue", "cost"), currency="EUR",
                              fx_rates=sample_data.tables["fx_rates"], date_col="ordered_at")


@pytest.fixture(scope="module")
def deals(sample_data):
    return money.to_reporting(sample_data.tables["deals"], "amount", currency="EUR",
                              fx_rates=sample_data.tables["fx_rates"], date_col="created_at")


@pytest.fixture(scope="module")
def value(orders, as_of):
    return customers.customer_lifetime_value(orders, as_of=as_of)


# ----------------------------------------------------------------------------- 09: lifetime value
def test_customer_summary_follows_the_generators_definitions(value, truth):
    """Same customers, transactions, repeat counts and T as the generator's realised figures
    (these are exact counts and means, rounded to 4 and 2 decimals in the truth)."""
    t = value.table
    realised = truth["clv"]["realised"]
    assert len(t) == truth["clv"]["customers"]
    assert int(t["repeat_purchases"].sum()) + len(t) == truth["clv"]["transactions"]
    assert t["repeat_purchases"].mean() == pytest.approx(realised["mean_repeat_transactions"], abs=5e-5)
    assert (t["repeat_purchases"] > 0).mean() == pytest.approx(realised["share_with_repeat"], abs=5e-5)
    assert t["weeks_as_customer"].mean() == pytest.approx(realised["mean_T_weeks"], abs=0.005)
    assert truth["clv"]["time_unit"] == "week"


def test_bgnbd_planted_parameters_are_inside_the_fitted_95_percent_intervals(value, truth):
    ci = value.purchases.summary()
    print("\n" + ci.to_string())
    for name in ("r", "alpha", "a", "b"):
        planted = truth["clv"][name]
        assert ci.loc[name, "low"] <= planted <= ci.loc[name, "high"], (name, planted, ci.loc[name].to_dict())
    assert value.purchases.converged_


def test_gamma_gamma_planted_parameters_are_inside_the_fitted_95_percent_intervals(value, truth):
    ci = value.spend.summary()
    print("\n" + ci.to_string())
    for name in ("p", "q", "gamma"):  # gamma in EUR (15 x the generator's spend scale of 1000)
        planted = truth["clv"][name]
        assert ci.loc[name, "low"] <= planted <= ci.loc[name, "high"], (name, planted, ci.loc[name].to_dict())
    assert value.spend.converged_


def test_holdout_check_predicts_the_last_26_weeks_within_ten_percent(orders, as_of):
    """The data are BG/NBD, so the model fitted on all but the last 26 weeks must forecast them.
    Tolerance 10%: about 600 purchases have a Poisson noise of 4% (1 sd), plus the parameter
    uncertainty of a fit on ~1,300 customers."""
    check = customers.purchase_model_check(orders, as_of=as_of, holdout_weeks=26)
    print(f"\nhold-out: predicted {check.predicted:.1f}, actual {check.actual}, error {check.error:+.1%}")
    assert abs(check.error) <= 0.10


# ----------------------------------------------------------------------------- 09: revenue and cross-sell
def test_top_fifth_of_customers_bring_the_planted_revenue_share(orders, as_of, truth):
    """Same definition as the truth (ceil(20%) customers, all order revenue to as_of); the
    truth is rounded to 4 decimals. The sources' claim: about 70%."""
    share = customers.revenue_concentration(customers.customer_profitability(orders, as_of=as_of)).share
    assert share == pytest.approx(truth["revenue_top20_share"], abs=5e-5)
    assert share == pytest.approx(0.70, abs=0.05)


def test_the_planted_pair_is_the_top_cross_sell_pair_with_its_lift(orders, as_of, truth):
    pairs = customers.product_pairs(orders, as_of=as_of)
    top = pairs.iloc[0]
    planted = truth["cross_sell_pair"]
    assert {top["product_a"], top["product_b"]} == set(planted["products"])
    assert top["lift"] >= 3
    assert top["lift"] == pytest.approx(planted["lift"], abs=5e-4)  # same definition, truth rounded to 3 decimals
    assert top["support"] == pytest.approx(planted["support"], abs=5e-5)
    assert top["p_value"] < 1e-6
    assert (pairs["lift"].iloc[1:] < 2).all()  # no other pair comes close


# ----------------------------------------------------------------------------- 10: retention
def test_referral_customers_retain_better_than_the_other_sources(orders, deals, as_of, truth):
    """Dropout was planted lowest for referral customers; it acts after repeat purchases, so it
    shows in months 7-12 after acquisition (the truth: 37.8% of referral customers buying in
    weeks 27-52 against 22.9%, 3.0 against 1.5 repeat purchases in 52 weeks).

    Tolerances: referral's months 7-12 retention at least 5 points above all other sources
    pooled (realised gap on the generator's weeks: 15 points; 43 referral customers give a
    standard error of about 7 points, so 5 points is a gap that noise alone rarely makes),
    significant at 5%, the best of the sources with at least 30 customers, and at least 1.5x
    the purchases per customer in months 1-12 (realised: 2.05x)."""
    assert truth["retention"]["better_source"] == "referral"
    late = cohorts.cohort_retention(orders, deals, as_of=as_of, ages=(7, 12), by="source").set_index("source")
    print("\n" + late.to_string())
    ref = late.loc["referral"]
    rest = late.drop(index="referral")
    rest_rate = rest["retained"].sum() / rest["customers"].sum()
    assert ref["customers"] >= 30
    assert ref["retention"] >= rest_rate + 0.05
    assert ref["p_value"] < 0.05
    big = late[late["customers"] >= 30]
    assert big["retention"].idxmax() == "referral"
    year = cohorts.cohort_retention(orders, deals, as_of=as_of, ages=(1, 12), by="source").set_index("source")
    others = year.drop(index="referral")
    assert year.loc["referral", "purchases_per_customer"] >= 1.5 * others["purchases"].sum() / others["customers"].sum()


def test_exactly_the_planted_weak_acquisition_month_is_flagged(orders, as_of, truth):
    """The weak month's customers got the highest dropout draws (mean 0.78 against 0.25): they
    come back once as often as the others, then stop. weak_cohorts tests each complete cohort
    of at least 30 customers at a Bonferroni-corrected 5% level, so a chance low among ~20
    months is not flagged."""
    weak = cohorts.weak_cohorts(orders, as_of=as_of, ages=(1, 12), min_customers=30)
    print("\n" + weak.head(5).to_string())
    assert weak.loc[weak["weak"], "cohort"].tolist() == [truth["retention"]["weak_month"]]
    row = weak.set_index("cohort").loc[truth["retention"]["weak_month"]]
    assert row["kept_share"] < 0.5 * row["rest_kept_share"]


def test_weak_month_shows_as_the_lowest_repeat_purchases_among_large_complete_cohorts(orders, as_of, truth):
    """The generator's own view: fewest repeat purchases per customer in the first year
    (realised 0.59 against 1.60). With calendar months the weak month must still be among
    the lowest: below 60% of the other cohorts' rate."""
    table = cohorts.cohort_retention(orders, as_of=as_of, ages=(1, 12), by="cohort")
    done = table[table["complete"] & (table["customers"] >= 30)].set_index("cohort")
    weak = truth["retention"]["weak_month"]
    others = done.drop(index=weak)
    rest = others["purchases"].sum() / others["customers"].sum()
    assert done.loc[weak, "purchases_per_customer"] < 0.6 * rest
    assert done["purchases_per_customer"].idxmin() == weak
