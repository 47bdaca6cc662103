"""Report 06 recovers what the sample planted (truth.json "lead_response" and "missed_calls").

The generator (crmlib.sample) plants
* a first outbound call or email to each lead, linked by lead_id, after a lognormal delay
  (median 45 min, sigma 1.8), logged since the phone and email integrations went live 52
  weeks before as_of; its truth gives the realised shares within 5 min / 1 h / 1 day over
  the leads that have such a touch;
* about 53 inbound calls a week, 12% of them missed, except one bad week with 40% missed
  (truth["missed_calls"]["bad_week_start"]), and callbacks: outbound calls to the same
  account after a missed call.
"""

import pandas as pd
import pytest

from crmlib.metrics import response
from crmlib.periods import as_of_instant

# the truth rounds shares to 4 decimals and minutes to 2 (callback) or 3 (median) decimals
ROUND4 = 0.5e-4


@pytest.fixture(scope="module")
def as_of(truth):
    return as_of_instant(truth["as_of"], truth["timezone"])


@pytest.fixture(scope="module")
def calls(sample_data, as_of):
    return response.inbound_calls(sample_data.tables["activities"], as_of)


@pytest.fixture(scope="module")
def touches(sample_data, as_of):
    return response.first_touches(sample_data.tables["leads"], sample_data.tables["activities"], as_of)


# ----------------------------------------------------------------------------- missed calls
def test_inbound_calls_and_weekly_missed_shares_equal_the_planted_ones(calls, truth, as_of):
    want = truth["missed_calls"]
    assert len(calls) == want["calls"]
    assert calls["missed"].notna().all()  # the sample logs an outcome for every inbound call
    weeks = response.missed_call_alerts(calls, as_of, weeks=52).set_index("week")
    got = {str(w.date()): v for w, v in weeks["share"].items() if pd.notna(v)}
    assert got.keys() == want["weekly_missed_rate"].keys()
    for week, rate in want["weekly_missed_rate"].items():
        assert got[week] == pytest.approx(rate, abs=ROUND4), week


def test_exactly_the_planted_bad_week_is_alerted(calls, truth, as_of):
    want = truth["missed_calls"]
    # the report's default rule: last 52 weeks, 8-week trailing baseline, Holm at 5%, >= 25% missed
    alerts = response.missed_call_alerts(calls, as_of, weeks=52)
    flagged = [str(w.date()) for w in alerts.loc[alerts["alert"], "week"]]
    assert flagged == [want["bad_week_start"]]
    bad = alerts.loc[alerts["alert"]].iloc[0]
    assert bad["share"] == pytest.approx(want["bad_week_rate"], abs=ROUND4)  # 40%
    # and by a clear margin: the next-worst week (22% in the truth) is far from significant
    others = alerts.loc[alerts["tested"] & ~alerts["alert"]]
    assert others["share"].max() == pytest.approx(want["max_other_week_rate"], abs=ROUND4)
    assert bad["p_adjusted"] < 1e-3 and others["p_adjusted"].min() > 0.2


def test_the_bad_week_alone_is_alerted_under_bonferroni_and_in_the_report_window(calls, truth, as_of):
    bonf = response.missed_call_alerts(calls, as_of, weeks=52, method="bonferroni")
    assert [str(w.date()) for w in bonf.loc[bonf["alert"], "week"]] == [truth["missed_calls"]["bad_week_start"]]
    # the bad week is 15 weeks before as_of: a 26-week scan (fewer tests) still finds only it
    half = response.missed_call_alerts(calls, as_of, weeks=26)
    assert [str(w.date()) for w in half.loc[half["alert"], "week"]] == [truth["missed_calls"]["bad_week_start"]]


def test_baseline_missed_share_is_recovered(calls, truth):
    bad = pd.Timestamp(truth["missed_calls"]["bad_week_start"])
    base = calls.loc[calls["week"] != bad]
    rate = response.missed_call_rate(base)
    assert rate.estimate == pytest.approx(truth["missed_calls"]["realised_baseline_rate"], abs=ROUND4)
    # the planted 12% lies inside the interval of the realised share
    assert rate.low <= truth["missed_calls"]["baseline_rate"] <= rate.high


def test_callbacks_recover_the_planted_share_and_delay(calls, truth):
    want = truth["missed_calls"]
    cb = response.callback_summary(calls).iloc[0]
    # the truth's definition: called back within 7 days, over every missed call
    assert cb["called_back"] / cb["missed"] == pytest.approx(want["callback_share"], abs=ROUND4)
    assert cb["median_callback_minutes"] == pytest.approx(want["callback_median_delay_minutes"], abs=0.005)
    # the report's share leaves out the missed calls whose 7-day window is still open (pending):
    # it can differ from the truth's only by those, a handful of calls in the last week
    assert cb["callback_share"] == pytest.approx(cb["called_back"] / (cb["missed"] - cb["pending"]))
    assert abs(cb["callback_share"] - want["callback_share"]) <= cb["pending"] / (cb["missed"] - cb["pending"])


# ----------------------------------------------------------------------------- speed to lead
def test_every_planted_first_touch_is_found_with_its_delay(touches, truth):
    want = truth["lead_response"]
    assert len(touches) == want["leads"]
    assert int(touches["touched"].sum()) == want["touched"]
    touched = touches.loc[touches["touched"], "minutes"]
    assert touched.median() == pytest.approx(want["realised_median_minutes"], abs=0.0005)


def test_shares_within_5_min_1_h_1_day_equal_the_truth_on_its_definition(touches, truth):
    """Truth definition: share of touched leads whose first touch came within the limit.

    Timestamps are whole seconds; the generator compares float days * 1440 with the
    limit, so a delay of exactly 300 s can land on either side of 5 min (one lead in the
    sample does). Tolerance: one lead of 1,893 (0.00053), plus the 4-decimal rounding.
    """
    want = truth["lead_response"]
    touched = touches.loc[touches["touched"], "minutes"]
    one_lead = 1 / len(touched)
    for key, limit in (("share_within_5_min", 5), ("share_within_1_h", 60), ("share_within_1_day", 1440)):
        assert (touched <= limit).mean() == pytest.approx(want[key], abs=one_lead + ROUND4), key


def test_report_shares_with_untouched_and_recent_leads_counted_honestly_stay_close_to_truth(touches, truth):
    """The report's shares (speed_to_lead) differ from the truth's by construction only in
    leads the truth counts and the report does not, or the other way round:
    * touched leads created before the first logged touch (not judged by the report: 2),
    * leads younger than the limit at as_of (not yet judged for that limit: 3 for 1 day),
    * untouched judged leads (counted as not answered by the report; none in the sample),
    * the exact-5-minute lead above.
    Each such lead moves a share by at most 1 / 1,888; tolerance: 6 leads (0.0032).
    """
    want = truth["lead_response"]
    got = response.speed_to_lead(touches).iloc[0]
    differing = (got["leads"] - got["judged"] - (want["leads"] - want["touched"])) + got["not_answered"]
    assert differing == 2 and got["not_answered"] == 0
    tol = 6 / got["judged"]
    assert got["within_5_min"] == pytest.approx(want["share_within_5_min"], abs=tol)
    assert got["within_1_h"] == pytest.approx(want["share_within_1_h"], abs=tol)
    assert got["within_1_day"] == pytest.approx(want["share_within_1_day"], abs=tol)
    # Kaplan-Meier median with no censoring is an order statistic next to the plain median
    assert got["median_minutes"] == pytest.approx(want["realised_median_minutes"], abs=0.5)


def test_speed_to_lead_in_the_year_before_logging_is_not_measured(sample_data, truth, as_of):
    """Leads of the same week a year ago came in before calls and emails were logged: the
    report must say "not measured", never "0% answered"."""
    start = pd.Timestamp(truth["call_logging_start"], tz=truth["timezone"]) - pd.Timedelta(weeks=1)
    ft = response.first_touches(sample_data.tables["leads"], sample_data.tables["activities"], as_of,
                                start=start, end=start + pd.Timedelta(weeks=1))
    got = response.speed_to_lead(ft).iloc[0]
    assert got["leads"] > 0 and got["judged"] == 0
    assert pd.isna(got["within_1_h"]) and pd.isna(got["median_minutes"])
