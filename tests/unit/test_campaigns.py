"""Report 12 metrics on tiny frames whose expected values are worked out by hand in each test."""

import math

import numpy as np
import pandas as pd
import pytest

from crmlib import narrative
from crmlib.errors import CrmDataError
from crmlib.metrics.campaigns import (campaign_attribution, campaign_performance, channel_performance,
                                      crm_roi, crm_roi_sensitivity, high_bounce_channels, mailing_list_growth,
                                      marketing_roi, negative_roi_campaigns)

TZ = "UTC"
AS_OF = pd.Timestamp("2026-03-01", tz=TZ)
Z = 1.959963984540054


def t(x):
    return pd.Timestamp(x, tz=TZ) if x else pd.NaT


def ts(values):
    return pd.Series([t(v) for v in values], dtype=f"datetime64[us, {TZ}]")


def s(values):
    return pd.Series(values, dtype="str")


def camps():
    # A: email, 1000 sends, 20 bounces; B: paid ads, 10,000 impressions, 150 clicks; C starts after as_of
    return pd.DataFrame({
        "campaign_id": s(["A", "B", "C"]), "name": s(["News", "Ads", "Later"]),
        "channel": s(["email", "paid_ads", "email"]),
        "started_at": ts(["2026-01-01", "2026-01-01", "2026-04-01"]),
        "ended_at": ts(["2026-01-10", "2026-02-28", "2026-04-30"]),
        "spend": [1000.0, 4000.0, 50.0], "impressions": [np.nan, 10000.0, np.nan],
        "clicks": [30.0, 150.0, np.nan], "sends": [1000.0, np.nan, 10.0], "opens": [196.0, np.nan, 1.0],
        "bounces": [20.0, np.nan, 0.0]})


def leads():
    # L1, L2 -> A; L3 -> B; L4 has no campaign; L5 -> A but created after as_of
    return pd.DataFrame({
        "lead_id": s(["L1", "L2", "L3", "L4", "L5"]),
        "created_at": ts(["2026-01-02", "2026-01-05", "2026-01-20", "2026-01-21", "2026-03-05"]),
        "campaign_id": s(["A", "A", "B", None, "A"]),
        "deal_id": s(["D1", "D2", "D3", "D4", None]),
        "email": s([" Ann@x.io", "bob@x.io", "ann@x.io ", "cy@x.io", "dan@x.io"])})


def deals():
    # D1 won 3000 (closed before as_of); D2 lost; D3 won 1000 but closed after as_of (open at as_of); D4 won
    return pd.DataFrame({
        "deal_id": s(["D1", "D2", "D3", "D4"]), "account_id": s(["X", "Y", "X", "Z"]),
        "status": s(["won", "lost", "won", "won"]),
        "created_at": ts(["2026-01-03", "2026-01-06", "2026-01-21", "2026-01-22"]),
        "closed_at": ts(["2026-02-01", "2026-02-02", "2026-03-02", "2026-02-10"]),
        "amount_rep": [3000.0, 500.0, 1000.0, 700.0]})


def test_campaign_performance_counts_leads_deals_and_first_touch_revenue_before_as_of():
    p = campaign_performance(camps(), leads(), deals(), as_of=AS_OF).set_index("campaign_id")
    assert list(p.index) == ["A", "B"]  # C starts after as_of
    a, b = p.loc["A"], p.loc["B"]
    # A: L1, L2 (L5 is after as_of); deals D1 (won 3000), D2 (lost)
    assert (a["leads"], a["deals"], a["won_deals"], a["won_revenue"]) == (2, 2, 1, 3000.0)
    assert a["cost_per_lead"] == 500.0 and a["cost_per_acquisition"] == 1000.0
    assert a["roi"] == pytest.approx((3000 - 1000) / 1000)  # 2.0
    # B: D3 closes after as_of, so it is open: nothing won, ROI -100%, no cost per acquisition
    assert (b["leads"], b["deals"], b["won_deals"], b["won_revenue"]) == (1, 1, 0, 0.0)
    assert b["roi"] == -1.0 and math.isnan(b["cost_per_acquisition"])


def test_campaign_rates_have_wilson_intervals_and_stay_nan_without_a_denominator():
    p = campaign_performance(camps(), leads(), deals(), as_of=AS_OF).set_index("campaign_id")
    assert p.loc["A", "bounce_rate"] == pytest.approx(0.02)  # 20 / 1000
    assert p.loc["A", "open_rate"] == pytest.approx(0.2)  # 196 / (1000 - 20)
    assert p.loc["B", "ctr"] == pytest.approx(0.015)  # 150 / 10000
    # Wilson by hand for 20 of 1000
    n, ph = 1000, 0.02
    centre = (ph + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(ph * (1 - ph) / n + Z**2 / (4 * n**2))
    assert p.loc["A", "bounce_rate_low"] == pytest.approx(centre - half, abs=1e-9)
    assert p.loc["A", "bounce_rate_high"] == pytest.approx(centre + half, abs=1e-9)
    assert math.isnan(p.loc["A", "ctr"])  # no impressions recorded, not 0%
    assert math.isnan(p.loc["B", "bounce_rate"])


def test_campaign_performance_without_leads_keeps_reach_and_leaves_lead_columns_missing():
    p = campaign_performance(camps(), as_of=AS_OF)
    assert p["spend"].tolist() == [1000.0, 4000.0]
    assert p["leads"].isna().all() and p["roi"].isna().all()


def test_channel_performance_sums_campaigns_and_recomputes_rates():
    p = campaign_performance(camps(), leads(), deals(), as_of=AS_OF)
    p = pd.concat([p, p.assign(campaign_id="A2", channel="email", spend=3000.0)], ignore_index=True)
    ch = channel_performance(p).set_index("channel")
    email = ch.loc["email"]
    # the copies are all email with spend 3000: email = A (1000) + copy of A (3000) + copy of B (3000);
    # paid_ads = B (4000)
    assert email["campaigns"] == 3 and email["spend"] == 7000.0
    assert email["sends"] == 2000.0 and email["bounces"] == 40.0
    assert email["bounce_rate"] == pytest.approx(0.02)
    assert email["leads"] == 2 + 2 + 1 and email["won_revenue"] == 6000.0
    assert email["roi"] == pytest.approx((6000 - 7000) / 7000)
    assert email["cost_per_lead"] == pytest.approx(7000 / 5)
    assert list(ch.index) == ["email", "paid_ads"]  # by spend, largest first


def perf_frame():
    return pd.DataFrame({
        "campaign_id": s(["big_loser", "tiny_loser", "small_budget_loser", "winner"]),
        "name": s(["a", "b", "c", "d"]), "channel": s(["ads"] * 4),
        "spend": [50_000.0, 900.0, 500.0, 48_600.0], "leads": [300, 5, 100, 200],
        "won_revenue": [10_000.0, 0.0, 100.0, 200_000.0]}).assign(
        roi=lambda f: (f["won_revenue"] - f["spend"]) / f["spend"])


def test_negative_roi_alert_skips_campaigns_with_few_leads_or_a_token_budget():
    flagged = negative_roi_campaigns(perf_frame(), threshold=0.0, min_leads=20, min_spend_share=0.02)
    # total spend 100,000: tiny_loser has 5 leads; small_budget_loser has 0.5% of spend
    assert flagged["campaign_id"].tolist() == ["big_loser"]
    assert flagged.loc[0, "loss"] == 40_000.0 and flagged.loc[0, "spend_share"] == pytest.approx(0.5)


def test_negative_roi_alert_threshold_is_a_parameter():
    flagged = negative_roi_campaigns(perf_frame(), threshold=5.0, min_leads=20, min_spend_share=0.02)
    assert set(flagged["campaign_id"]) == {"big_loser", "winner"}  # winner ROI 3.1 < 5


def bounce_channels(events_bounces=200):
    return pd.DataFrame({"channel": s(["email", "events", "webinar", "ads"]),
                         "sends": [5000.0, 1000.0, 1000.0, np.nan],
                         "bounces": [100.0, float(events_bounces), 30.0, np.nan]})


def test_high_bounce_channel_needs_its_interval_above_the_others_pooled_rate_by_the_margin():
    b = high_bounce_channels(bounce_channels(), margin=0.05).set_index("channel")
    assert "ads" not in b.index  # no sends, no bounce rate
    # events: 200 of 1000; the others pooled: (100 + 30) / 6000
    assert b.loc["events", "others_rate"] == pytest.approx(130 / 6000)
    assert b.loc["events", "low"] > 130 / 6000 + 0.05
    assert b["alert"].tolist() == [True, False, False] and b.index[0] == "events"


def test_high_bounce_channel_is_not_flagged_for_a_modest_excess_or_too_few_sends():
    # events 60 of 1000 (6%): its Wilson low (~4.7%) is not 5 points above the others' 2.2%
    assert not high_bounce_channels(bounce_channels(60), margin=0.05)["alert"].any()
    assert not high_bounce_channels(bounce_channels(), margin=0.05, min_sends=2000)["alert"].any()


def test_marketing_roi_to_date_and_in_a_window_with_spend_spread_over_campaign_days():
    total = marketing_roi(camps(), leads(), deals(), end=AS_OF)
    # C has not started; revenue: D1 (3000) only, D4 has no campaign lead, D3 is open
    assert (total.spend, total.leads, total.won_deals, total.won_revenue) == (5000.0, 3, 1, 3000.0)
    assert total.roi == pytest.approx(-0.4) and total.cost_per_lead == pytest.approx(5000 / 3)
    # February: A ran 1-10 January (none of it); B ran 1 Jan - 28 Feb, 59 days, 28 of them in February
    feb = marketing_roi(camps(), leads(), deals(), start=t("2026-02-01"), end=t("2026-03-01"))
    assert feb.spend == pytest.approx(4000 * 28 / 59)
    assert feb.leads == 0 and feb.won_deals == 1 and feb.won_revenue == 3000.0  # D1 closed 1 Feb
    jan = marketing_roi(camps(), leads(), deals(), start=t("2026-01-01"), end=t("2026-02-01"))
    assert jan.spend == pytest.approx(1000 + 4000 * 31 / 59)
    assert jan.leads == 3 and jan.won_deals == 0 and jan.roi == -1.0


def test_mailing_list_growth_counts_distinct_normalised_addresses_once():
    contacts = pd.DataFrame({"contact_id": s(["C1", "C2"]), "email": s(["BOB@x.io", "eve@x.io"]),
                             "created_at": ts(["2025-12-20", "2026-02-03"])})
    g = mailing_list_growth(leads(), contacts, as_of=AS_OF, freq="M")
    # Dec: bob (contact); Jan: ann (L1; L3 is the same address), cy; Feb: eve; dan is after as_of
    assert g["new_emails"].tolist() == [1, 2, 1]
    assert g["total_emails"].tolist() == [1, 3, 4]
    assert math.isnan(g["growth"].iloc[0]) and g["growth"].iloc[1] == 2.0 and g["growth"].iloc[2] == pytest.approx(1 / 3)
    assert g["period_start"].iloc[0] == t("2025-12-01")


def test_mailing_list_growth_is_empty_without_emails():
    assert len(mailing_list_growth(None, None, as_of=AS_OF)) == 0


def test_last_touch_gives_a_won_deal_to_the_accounts_latest_campaign_lead_before_the_deal():
    ld = pd.DataFrame({
        "lead_id": s(["L1", "L2", "L3", "L4"]),
        "created_at": ts(["2026-01-01", "2026-01-10", "2026-01-20", "2026-02-20"]),
        "campaign_id": s(["A", "B", "C", "D"]),
        "deal_id": s(["D1", None, "D2", None]),
        "email": s(["a@x.io", "b@acme.io", "c@x.io", "d@acme.io"])})
    dl = pd.DataFrame({
        "deal_id": s(["D1", "D2"]), "account_id": s(["ACME", "OTHER"]), "status": s(["won", "won"]),
        "created_at": ts(["2026-02-01", "2026-02-01"]), "closed_at": ts(["2026-02-15", "2026-02-15"]),
        "amount_rep": [1000.0, 400.0]})
    contacts = pd.DataFrame({"email": s(["b@acme.io", "d@acme.io"]), "account_id": s(["ACME", "ACME"])})
    a = campaign_attribution(ld, dl, as_of=AS_OF, contacts=contacts).set_index("campaign_id")
    # D1: first touch A; ACME's campaign leads before 1 Feb: L1 (A, 1 Jan), L2 (B, 10 Jan) -> last touch B
    # (L4 comes after the deal). D2: first and last touch C.
    assert a["first_touch_revenue"].to_dict() == {"A": 1000.0, "B": 0.0, "C": 400.0, "D": 0.0}
    assert a["last_touch_revenue"].to_dict() == {"A": 0.0, "B": 1000.0, "C": 400.0, "D": 0.0}
    assert a["last_touch_deals"].sum() == a["first_touch_deals"].sum() == 2
    # without contacts the B lead has no account: last touch falls back to first touch
    b = campaign_attribution(ld, dl, as_of=AS_OF).set_index("campaign_id")
    assert b.loc["A", "last_touch_deals"] == 1


def crm_lines():
    return {"subscription": 10_000, "training": 2_000, "productivity_loss_hours": 100, "customisation": 3_000,
            "procurement_hours": 20, "storage": 500, "upgrades": 500, "revenue": 200_000,
            "attributable_share": 0.1, "hours_saved": 400, "hourly_rate": 50}


def test_crm_roi_by_hand():
    r = crm_roi(crm_lines())
    # cost: 10,000 + 2,000 + 100 h x 50 + 3,000 + 20 h x 50 + 500 + 500 = 22,000
    # gain: 200,000 x 0.1 + 400 h x 50 = 40,000; ROI = 18,000 / 22,000
    assert r.cost == 22_000 and r.gain == 40_000
    assert r.roi == pytest.approx(18 / 22)
    assert len(r.lines) == 9 and r.lines["amount"].sum() == 62_000


def test_crm_roi_refuses_missing_or_negative_lines():
    lines = crm_lines()
    del lines["storage"]
    with pytest.raises(CrmDataError, match="storage"):
        crm_roi(lines)
    with pytest.raises(CrmDataError, match="negative"):
        crm_roi({**crm_lines(), "training": -1})


def test_crm_roi_sensitivity_moves_one_line_at_a_time_then_all():
    sens = crm_roi_sensitivity(crm_lines(), {"hours_saved": (200, 600), "productivity_loss_hours": (50, 300)})
    h = sens.set_index("line")
    # hours saved 200: gain 30,000 -> 8/22; 600: gain 50,000 -> 28/22
    assert h.loc["hours_saved", "roi_low"] == pytest.approx(8 / 22)
    assert h.loc["hours_saved", "roi_high"] == pytest.approx(28 / 22)
    # productivity loss 50 h: cost 19,500 -> 20,500/19,500; 300 h: cost 32,000 -> 8,000/32,000
    assert h.loc["productivity_loss_hours", "roi_low"] == pytest.approx(20_500 / 19_500)
    assert h.loc["productivity_loss_hours", "roi_high"] == pytest.approx(8_000 / 32_000)
    # worst: 200 h saved and 300 h lost (gain 30,000, cost 32,000); best: 600 saved, 50 lost
    assert h.loc["all uncertain lines", "roi_low"] == pytest.approx(-2_000 / 32_000)
    assert h.loc["all uncertain lines", "roi_high"] == pytest.approx(30_500 / 19_500)
    # swing: hours 20/22 = 0.909 vs productivity 1.051 - 0.25 = 0.801: hours first
    assert sens["line"].tolist() == ["hours_saved", "productivity_loss_hours", "all uncertain lines"]


def test_campaign_narratives_escape_hostile_names():
    p = campaign_performance(camps().assign(name=s(["<script>x</script>", "[a](javascript:b)", "c"])),
                             leads(), deals(), as_of=AS_OF)
    text = narrative.describe_campaigns(p, currency="EUR")
    assert "<script>" not in text and "](javascript" not in text
    flagged = negative_roi_campaigns(p, min_leads=1, min_spend_share=0.0)
    text = narrative.describe_negative_roi(flagged, currency="EUR")
    assert "[a](javascript" not in text and "-100%" in text
    b = high_bounce_channels(bounce_channels().assign(channel=s(["<b>e</b>", "events", "w", "a"])))
    assert "<b>" not in narrative.describe_bounce(b, margin=0.05)


def test_campaign_plots_colour_the_flagged_bars_and_state_the_finding():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crmlib import plots

    ax = plots.plot_campaign_roi(perf_frame())
    assert len(ax.patches) == 4 and ax.get_title(loc="left") == "3 campaigns of 4 lose money"
    negative = [p for p in ax.patches if p.get_width() < 0]
    assert len(negative) == 3 and len({p.get_facecolor() for p in negative}) == 1
    assert negative[0].get_facecolor() != [p for p in ax.patches if p.get_width() > 0][0].get_facecolor()
    # more campaigns than bars: the largest spenders are drawn (ROI order kept), all are counted
    ax = plots.plot_campaign_roi(perf_frame(), top=2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a big_loser", "d winner"]
    assert ax.get_title(loc="left") == "3 campaigns of 4 lose money"
    assert ax.get_ylabel() == "the 2 campaigns with the largest spend, of 4 campaigns"
    b = high_bounce_channels(bounce_channels(), margin=0.05)
    ax = plots.plot_bounce_rates(b)
    assert len(ax.patches) == 3 and ax.get_title(loc="left").startswith("events bounces far more")
    g = mailing_list_growth(leads(), None, as_of=AS_OF)
    ax = plots.plot_mailing_list(g)
    assert ax.get_title(loc="left") == "The list grew to 3 addresses"
    plt.close("all")
