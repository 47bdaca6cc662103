"""BG/NBD and Gamma-Gamma on the CDNOW sample reproduce Fader, Hardie & Lee (2005).

Published numbers (the data and their provenance: tests/data/cdnow/README.md):

* "Counting your customers the easy way" (Marketing Science 24(2)), section 7, CDNOW
  calibration weeks 1-39: BG/NBD r = 0.243, alpha = 4.414, a = 0.793, b = 2.426,
  log-likelihood -9582.4; over weeks 40-78 the model under-forecasts cumulative repeat
  sales by about 4%; the 1,411 customers without a repeat purchase in the calibration
  period made 334 repeat purchases in weeks 40-78 (0.24 each) against 0.23 expected; the
  conditional expectations correlate 0.626 with the actual hold-out purchases.
* Hardie's Excel implementation note of the same paper: customer 0001 (x = 2,
  t_x = 30.43, T = 38.86) is expected to make 1.226 purchases in the next 39 weeks.
* "RFM and CLV: using iso-value curves" (JMR 42(4)): Gamma-Gamma on the 946 customers with
  a repeat purchase, p = 6.25, q = 3.74, gamma = 15.44.

The tolerances are the precision the papers print (3 decimals for the BG/NBD parameters,
one for the log-likelihood, 2 for Gamma-Gamma).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT
from crmlib.stats.clv import BetaGeoFitter, GammaGammaFitter, customer_summary

DATA = ROOT / "tests" / "data" / "cdnow"
CALIBRATION_END = pd.Timestamp("1997-10-01")  # weeks 1-39: 1997-01-01 to 1997-09-30 included
HOLDOUT_END = pd.Timestamp("1998-07-01")  # weeks 40-78: to 1998-06-30 included


def load_cdnow_transactions() -> pd.DataFrame:
    """The CDNOW sample's transaction lines: customer, date, cds, value."""
    t = pd.read_csv(DATA / "CDNOW_sample.txt", sep=r"\s+", header=None,
                    names=["master_id", "customer", "date", "cds", "value"],
                    dtype={"master_id": str, "customer": str, "date": str})
    t["date"] = pd.to_datetime(t["date"], format="%Y%m%d")
    return t


@pytest.fixture(scope="module")
def summary():
    t = load_cdnow_transactions()
    assert len(t) == 6919 and t["customer"].nunique() == 2357
    # Hardie's convention: T runs to the start of the last calibration day (1997-09-30)
    return customer_summary(t, customer_col="customer", date_col="date", value_col="value",
                            calibration_end=CALIBRATION_END, holdout_end=HOLDOUT_END,
                            T_from_last_day=True)


@pytest.fixture(scope="module")
def bgnbd(summary):
    return BetaGeoFitter().fit(summary)


def test_customer_summary_equals_hardies_cdnow_summary(summary):
    hardie = pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv",
                         dtype={"ID": int}).set_index("ID")
    mine = summary.set_axis(summary.index.astype(int))
    assert len(mine) == len(hardie) == 2357
    assert (mine["frequency"] == hardie["x"]).all()
    # Hardie prints weeks and dollars with 2 decimals
    assert np.abs(mine["recency"] - hardie["t_x"]).max() <= 0.005 + 1e-9
    assert np.abs(mine["T"] - hardie["T"]).max() <= 0.005 + 1e-9
    repeat = hardie["x"] > 0
    assert np.abs(mine.loc[repeat, "monetary_value"] - hardie.loc[repeat, "zbar"]).max() <= 0.005 + 1e-9


def test_bgnbd_estimates_match_fader_hardie_lee_2005_section_7(bgnbd):
    p = bgnbd.params_
    assert p["r"] == pytest.approx(0.243, abs=0.001)
    assert p["alpha"] == pytest.approx(4.414, abs=0.001)
    assert p["a"] == pytest.approx(0.793, abs=0.001)
    assert p["b"] == pytest.approx(2.426, abs=0.001)
    assert bgnbd.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
    assert bgnbd.converged_ and bgnbd.n_ == 2357
    assert (bgnbd.standard_errors_ > 0).all()
    print("\n" + bgnbd.summary().to_string())


def test_gamma_gamma_estimates_match_fader_hardie_lee_2005_rfm_and_clv(summary):
    gg = GammaGammaFitter().fit(summary)
    assert gg.n_ == 946
    assert gg.params_["p"] == pytest.approx(6.25, abs=0.01)
    assert gg.params_["q"] == pytest.approx(3.74, abs=0.01)
    assert gg.params_["gamma"] == pytest.approx(15.44, abs=0.01)
    assert gg.converged_
    print("\n" + gg.summary().to_string())


def test_conditional_expectation_matches_hardies_note_for_customer_0001(bgnbd):
    expected = bgnbd.expected_purchases(39, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=0.001)


def test_weeks_40_to_78_repeat_purchases_expected_against_actual(summary, bgnbd):
    """The aggregate hold-out check: printed, and held to the paper's own findings."""
    conditional = bgnbd.expected_purchases(39.0)  # each customer's next 39 weeks, given their history
    actual = summary["frequency_holdout"].to_numpy()
    # the paper's tracking forecast: E[X(t)] of each customer from the first purchase on
    first_week = ((summary["first_purchase"] - pd.Timestamp("1997-01-01")).dt.days / 7).to_numpy()
    cumulative_78 = bgnbd.expected_purchases_new(78 - first_week).sum()
    cumulative_39 = bgnbd.expected_purchases_new(39 - first_week).sum()
    total_actual = int(summary["frequency"].sum() + actual.sum())
    zero = summary["frequency"].to_numpy() == 0
    print(f"\nCDNOW weeks 40-78 repeat purchases: actual {actual.sum():,}; expected "
          f"{conditional.sum():,.1f} given each customer's history ({conditional.sum() / actual.sum() - 1:+.1%}), "
          f"{cumulative_78 - cumulative_39:,.1f} by the unconditional tracking forecast; cumulative to week 78 "
          f"{cumulative_78:,.1f} against {total_actual:,} ({cumulative_78 / total_actual - 1:+.1%}); customers "
          f"without a calibration repeat purchase: {zero.sum():,} bought {actual[zero].sum():,} times "
          f"({actual[zero].mean():.3f} each) against {conditional[zero].mean():.3f} expected")
    assert actual.sum() == 1882
    # the paper: cumulative repeat sales to week 78 under-forecast by about 4%
    assert cumulative_78 / total_actual - 1 == pytest.approx(-0.04, abs=0.005)
    # the paper: 1,411 zero-class customers, 334 hold-out purchases (0.24), 0.23 expected
    assert zero.sum() == 1411 and actual[zero].sum() == 334
    assert conditional[zero].mean() == pytest.approx(0.23, abs=0.005)
    # the paper: correlation 0.626 between conditional expectations and actual purchases
    assert np.corrcoef(conditional, actual)[0, 1] == pytest.approx(0.626, abs=0.0005)
