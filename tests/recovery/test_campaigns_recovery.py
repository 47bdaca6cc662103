"""Report 12's figures recover what the sample planted (truth.json "campaigns").

The generator computes each campaign's won revenue from its own deals in EUR (first touch: the
campaign of the deal's lead, deals won at as_of) and sets spend from it; the export writes amounts
with 2 decimals and converts USD deals with the fx table's rates, so revenue may differ from the
generator's by rounding alone: at most 0.01 EUR per won deal. truth.json rounds ROI to 4 decimals
and bounce rates to 3 (webinar 4), hence those tolerances.
"""

import pandas as pd
import pytest

from crmlib import money
from crmlib.metrics import campaigns as cm
from crmlib.periods import as_of_instant

CENTS_PER_DEAL = 0.01
ROI_ROUNDING = 0.5e-4
BOUNCE_ROUNDING = 0.5e-3


@pytest.fixture(scope="module")
def perf(sample_data):
    deals = money.to_reporting(sample_data.tables["deals"], "amount", currency="EUR",
                               fx_rates=sample_data.tables["fx_rates"], date_col="created_at")
    as_of = as_of_instant(sample_data.meta["as_of"], "UTC")
    return cm.campaign_performance(sample_data.tables["campaigns"], sample_data.tables["leads"], deals,
                                   as_of=as_of).set_index("campaign_id")


def test_won_revenue_and_roi_per_campaign_equal_the_planted_ones(perf, truth):
    want = truth["campaigns"]
    assert set(perf.index) == set(want["roi_by_campaign"])
    for cid, rev in want["won_revenue_eur_by_campaign"].items():
        assert perf.loc[cid, "won_revenue"] == pytest.approx(rev, abs=CENTS_PER_DEAL * perf.loc[cid, "won_deals"] + 0.005), cid
        assert perf.loc[cid, "roi"] == pytest.approx(want["roi_by_campaign"][cid], abs=ROI_ROUNDING + 1e-6), cid


def test_only_the_planted_campaign_raises_the_negative_roi_alert(perf, truth):
    flagged = cm.negative_roi_campaigns(perf.reset_index())
    assert flagged["campaign_id"].tolist() == [truth["campaigns"]["negative_roi_campaign_id"]]


def test_every_campaign_with_positive_planted_roi_stays_positive(perf, truth):
    pos = [c for c, r in truth["campaigns"]["roi_by_campaign"].items() if r > 0]
    assert (perf.loc[pos, "roi"] > 0).all()


def test_bounce_rates_by_channel_and_the_alert_for_the_planted_channel_only(perf, truth):
    want = truth["campaigns"]
    bounce = cm.high_bounce_channels(cm.channel_performance(perf.reset_index())).set_index("channel")
    for ch, rate in want["bounce_rate_by_channel"].items():
        assert bounce.loc[ch, "bounce_rate"] == pytest.approx(rate, abs=BOUNCE_ROUNDING), ch
    assert bounce.index[bounce["alert"]].tolist() == [want["high_bounce_channel"]]
