"""Report 06 metrics (speed to lead, missed calls, callbacks, spike alerts, phone load) on tiny
frames whose expected values are worked out by hand in each test; plus the report's narrative
(escaping hostile names) and pictures (artists, not pixels)."""

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from crmlib import narrative, plots
from crmlib.errors import CrmConfigError, CrmDataError
from crmlib.metrics.response import (call_handling, call_heatmap, callback_summary, first_touches,
                                     inbound_calls, missed_call_alerts, missed_call_rate, missed_call_share,
                                     response_curve, response_within, share_difference, speed_to_lead)

matplotlib.use("Agg")

TZ = "Europe/Berlin"
AS_OF = pd.Timestamp("2026-09-28", tz=TZ)  # as_of parameter "2026-09-27", the last day included
Z = 1.959963984540054


def t(x):
    return pd.Timestamp(x, tz=TZ)


def ts(values):
    return pd.Series([t(v) if v else pd.NaT for v in values], dtype=f"datetime64[us, {TZ}]")


def s(values):
    return pd.Series(values, dtype="str")


def make_leads(rows):
    """rows: (lead_id, created_at, owner_id, source)."""
    return pd.DataFrame({"lead_id": s([r[0] for r in rows]), "created_at": ts([r[1] for r in rows]),
                         "owner_id": s([r[2] for r in rows]), "source": s([r[3] for r in rows])})


def make_acts(rows):
    """rows: dicts with type, created_at and whatever else is set."""
    cols = ("owner_id", "deal_id", "lead_id", "account_id", "direction", "outcome")
    return pd.DataFrame({
        "activity_id": s([f"A{i}" for i in range(len(rows))]),
        "type": s([r["type"] for r in rows]),
        **{c: s([r.get(c) for r in rows]) for c in cols},
        "created_at": ts([r["created_at"] for r in rows]),
        "duration_s": pd.Series([r.get("duration_s", np.nan) for r in rows], dtype="float64"),
    })


def wilson_by_hand(k, n):
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


# ----------------------------------------------------------------------------- speed to lead
LEADS = make_leads([
    ("L1", "2026-09-26 10:00", "u1", "email"),     # called after 3 min
    ("L2", "2026-09-26 10:00", "u2", "paid_ads"),  # emailed after 90 min
    ("L3", "2026-09-27 22:00", "u1", "email"),     # nobody yet: 120 min old at as_of
    ("L4", "2026-09-20 08:00", "u2", "email"),     # came in before any touch was logged
    ("L5", "2026-09-28 09:00", "u1", "email"),     # after as_of: does not exist yet
])
ACTS = make_acts([
    dict(type="call", lead_id="L1", direction="outbound", created_at="2026-09-26 09:50"),  # before L1: no touch
    dict(type="email", lead_id="L1", direction="inbound", created_at="2026-09-26 10:01"),  # inbound: no touch
    dict(type="call", lead_id="L1", direction="outbound", created_at="2026-09-26 10:03"),
    dict(type="meeting", lead_id="L2", created_at="2026-09-26 10:05"),                    # not a call/email
    dict(type="email", lead_id="L2", direction="outbound", created_at="2026-09-26 11:30"),
    dict(type="call", lead_id="L2", direction="outbound", created_at="2026-09-26 12:00"),  # later than first
    dict(type="call", lead_id="L3", direction="outbound", created_at="2026-09-28 00:30"),  # after as_of
])


def test_first_touch_is_the_first_outbound_call_or_email_after_the_lead(table_as):
    ft = first_touches(LEADS, table_as(ACTS, "activities"), AS_OF).set_index("lead_id")
    assert list(ft.index) == ["L4", "L1", "L2", "L3"]  # L5 came in after as_of; ordered by created_at
    assert ft.loc["L1", "minutes"] == pytest.approx(3.0)
    assert ft.loc["L1", "first_touch_type"] == "call"
    assert ft.loc["L2", "minutes"] == pytest.approx(90.0)
    assert ft.loc["L2", "first_touch_type"] == "email"
    assert not ft.loc["L3", "touched"] and np.isnan(ft.loc["L3", "minutes"])
    assert ft.loc["L3", "observed_minutes"] == pytest.approx(120.0)  # censored at as_of
    assert ft.loc["L3", "age_minutes"] == pytest.approx(120.0)


def test_leads_from_before_the_first_logged_touch_are_kept_but_not_judged(table_as):
    ft = first_touches(LEADS, table_as(ACTS, "activities"), AS_OF).set_index("lead_id")
    # the first logged touch of any lead is 2026-09-26 09:50, so L4 (09-20) cannot be judged
    assert ft["judged"].to_dict() == {"L4": False, "L1": True, "L2": True, "L3": True}


def test_first_touches_window_keeps_leads_created_in_it_but_finds_touches_up_to_as_of(table_as):
    ft = first_touches(LEADS, table_as(ACTS, "activities"), AS_OF, start=t("2026-09-26"), end=t("2026-09-27"))
    assert list(ft["lead_id"]) == ["L1", "L2"]
    assert ft["judged"].all()


def test_first_touches_rejects_duplicated_lead_ids():
    dup = pd.concat([LEADS, LEADS.iloc[[0]]], ignore_index=True)
    with pytest.raises(CrmDataError, match="duplicated lead_id"):
        first_touches(dup, ACTS, AS_OF)


def test_speed_to_lead_counts_untouched_leads_as_not_answered_and_censors_them():
    out = speed_to_lead(first_touches(LEADS, ACTS, AS_OF)).iloc[0]
    assert (out["leads"], out["judged"], out["touched"], out["not_answered"]) == (4, 3, 2, 1)
    # Kaplan-Meier on 3 (event), 90 (event), 120 (censored): S(3) = 2/3, S(90) = 1/3
    assert out["q1_minutes"] == pytest.approx(3.0)      # first time S <= 0.75
    assert out["median_minutes"] == pytest.approx(90.0)  # first time S <= 0.5
    assert np.isnan(out["q3_minutes"])                   # S never reaches 0.25
    # within 5 min and 1 h: L1, L2, L3 are old enough; only L1 made it
    assert out["within_5_min"] == pytest.approx(1 / 3)
    assert out["within_1_h"] == pytest.approx(1 / 3)
    # within 1 day: only L1 and L2 are a day old; both were contacted within the day
    assert out["within_1_day"] == pytest.approx(1.0)


def test_response_within_gives_counts_and_wilson_intervals_per_group():
    got = response_within(first_touches(LEADS, ACTS, AS_OF), by="owner_id").set_index(["owner_id", "limit"])
    # u1: L1 (3 min) and L3 (untouched, 120 min old); u2: L2 (90 min) -- L4 is not judged
    assert got.loc[("u1", "5 min"), ["leads", "answered"]].tolist() == [2, 1]
    assert got.loc[("u1", "1 day"), ["leads", "answered"]].tolist() == [1, 1]  # L3 is not a day old
    assert got.loc[("u2", "1 h"), ["leads", "answered"]].tolist() == [1, 0]
    assert got.loc[("u2", "1 day"), ["leads", "answered"]].tolist() == [1, 1]
    lo, hi = wilson_by_hand(1, 2)
    assert got.loc[("u1", "5 min"), "share_low"] == pytest.approx(lo)
    assert got.loc[("u1", "5 min"), "share_high"] == pytest.approx(hi)


def test_speed_to_lead_by_owner_adds_names_and_orders_by_judged_leads():
    users = pd.DataFrame({"user_id": s(["u1", "u2"]), "name": s(["Ann", "Bob"])})
    got = speed_to_lead(first_touches(LEADS, ACTS, AS_OF), by="owner_id", users=users)
    assert got["owner_id"].tolist() == ["u1", "u2"]
    assert got["name"].tolist() == ["Ann", "Bob"]
    assert got["judged"].tolist() == [2, 1]  # u2's L4 is not judged
    assert got.loc[0, "median_minutes"] == pytest.approx(3.0)  # u1: 3 (event), 120 (censored): S(3) = 1/2
    assert got.loc[1, "median_minutes"] == pytest.approx(90.0)
    assert got.loc[1, "within_1_h"] == 0.0


def test_speed_to_lead_without_any_logged_touch_is_not_measured_rather_than_zero():
    acts = ACTS.loc[ACTS["type"] == "meeting"]
    out = speed_to_lead(first_touches(LEADS, acts, AS_OF)).iloc[0]
    assert out["judged"] == 0
    assert np.isnan(out["median_minutes"]) and np.isnan(out["within_1_h"])


def test_response_curve_is_one_minus_kaplan_meier():
    got = response_curve(first_touches(LEADS, ACTS, AS_OF))
    assert got["minutes"].tolist() == pytest.approx([0.0, 3.0, 90.0])
    assert got["share_contacted"].tolist() == pytest.approx([0.0, 1 / 3, 2 / 3])


# ----------------------------------------------------------------------------- calls
CALLS = make_acts([
    # A1: missed Monday 09:00, an outbound call at the same second does not count, 09:30 does
    dict(type="call", direction="inbound", outcome="missed", account_id="A1", owner_id="u1",
         created_at="2026-09-21 09:00"),
    dict(type="call", direction="outbound", outcome="answered", account_id="A1", owner_id="u1",
         created_at="2026-09-21 09:00", duration_s=60),
    dict(type="call", direction="outbound", outcome="answered", account_id="A1", owner_id="u1",
         created_at="2026-09-21 09:30", duration_s=120),
    # answered inbound call
    dict(type="call", direction="inbound", outcome="answered", account_id="A1", owner_id="u1",
         created_at="2026-09-21 11:00", duration_s=300),
    # a lead calls, nobody answers ("No_Answer " counts as missed); called back via its lead after 2 h
    dict(type="call", direction="inbound", outcome="No_Answer ", lead_id="L9", owner_id="u2",
         created_at="2026-09-22 10:00"),
    dict(type="call", direction="outbound", outcome="voicemail", lead_id="L9", owner_id="u2",
         created_at="2026-09-22 12:00", duration_s=30),
    # A2: missed 09-10, called back only after 8 days: no callback within the 7-day window
    dict(type="call", direction="inbound", outcome="missed", account_id="A2", owner_id="u2",
         created_at="2026-09-10 10:00"),
    dict(type="call", direction="outbound", outcome="answered", account_id="A2", owner_id="u2",
         created_at="2026-09-18 11:00", duration_s=90),
    # A3: missed two days ago, only an email since: pending
    dict(type="call", direction="inbound", outcome="missed", account_id="A3", owner_id="u1",
         created_at="2026-09-26 10:00"),
    dict(type="email", direction="outbound", account_id="A3", owner_id="u1", created_at="2026-09-26 11:00"),
    # an inbound call without an outcome: neither answered nor missed
    dict(type="call", direction="inbound", account_id="A4", owner_id="u1", created_at="2026-09-23 15:00"),
    # after as_of: does not exist yet
    dict(type="call", direction="inbound", outcome="missed", account_id="A4", owner_id="u1",
         created_at="2026-09-28 09:00"),
])


def test_inbound_calls_mark_missed_calls_and_find_callbacks_on_lead_or_account(table_as):
    got = inbound_calls(table_as(CALLS, "activities"), AS_OF).set_index("created_at")
    assert len(got) == 6
    missed = got["missed"]
    assert missed.loc[t("2026-09-21 09:00")] == True  # noqa: E712 (nullable boolean)
    assert missed.loc[t("2026-09-21 11:00")] == False  # noqa: E712
    assert missed.loc[t("2026-09-22 10:00")] == True  # noqa: E712  "No_Answer " is a missed outcome
    assert pd.isna(missed.loc[t("2026-09-23 15:00")])
    status = got["callback_status"]
    assert status.loc[t("2026-09-21 09:00")] == "called back"
    assert got.loc[t("2026-09-21 09:00"), "callback_minutes"] == pytest.approx(30.0)  # not the 09:00 call
    assert status.loc[t("2026-09-22 10:00")] == "called back"
    assert got.loc[t("2026-09-22 10:00"), "callback_minutes"] == pytest.approx(120.0)
    assert status.loc[t("2026-09-10 10:00")] == "no callback"
    assert got.loc[t("2026-09-10 10:00"), "callback_minutes"] == pytest.approx(8 * 1440 + 60)
    assert status.loc[t("2026-09-26 10:00")] == "pending"
    assert pd.isna(status.loc[t("2026-09-21 11:00")])


def test_inbound_calls_carry_local_calendar_fields(table_as):
    got = inbound_calls(table_as(CALLS, "activities"), AS_OF).set_index("created_at")
    row = got.loc[t("2026-09-22 10:00")]
    assert (row["weekday"], row["hour"]) == ("Tue", 10)
    assert row["week"] == pd.Timestamp("2026-09-21") and row["day"] == pd.Timestamp("2026-09-22")


def test_missed_call_rate_leaves_unknown_outcomes_out():
    calls = inbound_calls(CALLS, AS_OF)
    rate = missed_call_rate(calls)
    assert (rate.successes, rate.n) == (4, 5)  # 6 inbound calls, one without an outcome
    week = missed_call_rate(calls, start=t("2026-09-21"), end=t("2026-09-28"))
    assert (week.successes, week.n) == (3, 4)
    assert np.isnan(missed_call_rate(calls, start=t("2025-09-21"), end=t("2025-09-28")).estimate)


def test_missed_call_share_by_weekday_in_calendar_order():
    got = missed_call_share(inbound_calls(CALLS, AS_OF), by="weekday")
    # Mon 21 (missed, answered), Tue 22 (missed), Wed 23 (unknown), Thu 10 (missed), Sat 26 (missed)
    assert got["weekday"].astype(str).tolist() == ["Mon", "Tue", "Wed", "Thu", "Sat"]
    assert got["calls"].tolist() == [2, 1, 0, 1, 1]
    assert got["missed"].tolist() == [1, 1, 0, 1, 1]
    assert got["unknown_outcome"].tolist() == [0, 0, 1, 0, 0]
    assert got.loc[0, "share"] == 0.5 and np.isnan(got.loc[2, "share"])


def test_callback_summary_leaves_pending_calls_out_of_the_share():
    got = callback_summary(inbound_calls(CALLS, AS_OF)).iloc[0]
    assert (got["missed"], got["called_back"], got["no_callback"], got["pending"]) == (4, 2, 1, 1)
    assert got["callback_share"] == pytest.approx(2 / 3)
    lo, hi = wilson_by_hand(2, 3)
    assert (got["callback_share_low"], got["callback_share_high"]) == pytest.approx((lo, hi))
    assert got["median_callback_minutes"] == pytest.approx((30 + 120) / 2)


def test_callback_window_is_a_parameter():
    calls = inbound_calls(CALLS, AS_OF, callback_within_days=9)
    got = callback_summary(calls).iloc[0]
    assert (got["called_back"], got["no_callback"], got["pending"]) == (3, 0, 1)
    with pytest.raises(CrmConfigError):
        inbound_calls(CALLS, AS_OF, callback_within_days=0)


# ----------------------------------------------------------------------------- spike alerts
def weekly_calls(plan):
    """plan: list of (calls, missed) for consecutive weeks ending with the week of as_of."""
    rows = []
    first = pd.Timestamp("2026-09-21") - pd.Timedelta(weeks=len(plan) - 1)
    for w, (n, k) in enumerate(plan):
        monday = first + pd.Timedelta(weeks=w)
        for i in range(n):
            rows.append(dict(type="call", direction="inbound", outcome="missed" if i < k else "answered",
                             account_id="A", created_at=str(monday + pd.Timedelta(hours=9, minutes=i))))
    return inbound_calls(make_acts(rows), AS_OF)


def binom_tail(k, n, p):
    return sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))


def test_a_spike_week_is_alerted_against_its_trailing_baseline_with_holm_correction():
    calls = weekly_calls([(20, 2)] * 9 + [(20, 10)])
    got = missed_call_alerts(calls, AS_OF, weeks=10, baseline_weeks=8, min_baseline_weeks=4)
    assert len(got) == 10 and got["week"].iloc[-1] == pd.Timestamp("2026-09-21")
    # the first four weeks have fewer than four baseline weeks: not tested
    assert got["tested"].tolist() == [False] * 4 + [True] * 6
    last = got.iloc[-1]
    assert (last["baseline_calls"], last["baseline_missed"]) == (160, 16)
    p_spike = binom_tail(10, 20, 0.1)
    assert last["p_value"] == pytest.approx(p_spike)
    # Holm: the smallest of six p-values is multiplied by 6
    assert last["p_adjusted"] == pytest.approx(min(1.0, 6 * p_spike))
    assert got.iloc[5]["p_value"] == pytest.approx(binom_tail(2, 20, 0.1))
    assert got["alert"].tolist() == [False] * 9 + [True]


def test_a_significant_but_small_rise_is_not_alerted():
    # 20% of 400 against 10% is overwhelming evidence, but below the 25% material size
    calls = weekly_calls([(20, 2)] * 9 + [(400, 80)])
    got = missed_call_alerts(calls, AS_OF, weeks=10)
    assert got.iloc[-1]["p_adjusted"] < 1e-6
    assert not got["alert"].any()
    assert missed_call_alerts(calls, AS_OF, weeks=10, min_share=0.15)["alert"].iloc[-1]


def test_weeks_without_calls_are_shown_but_not_tested():
    calls = weekly_calls([(20, 2)] * 5 + [(0, 0)] + [(20, 2)] * 4)
    got = missed_call_alerts(calls, AS_OF, weeks=10)
    assert got.loc[5, "calls"] == 0 and not got.loc[5, "tested"] and np.isnan(got.loc[5, "share"])
    assert got.loc[6, "baseline_weeks"] == 5  # the empty week is no baseline week


def test_alert_parameters_are_checked():
    calls = weekly_calls([(20, 2)] * 3)
    with pytest.raises(CrmConfigError):
        missed_call_alerts(calls, AS_OF, method="fdr")
    with pytest.raises(CrmConfigError):
        missed_call_alerts(calls, AS_OF, alpha=1.5)


# ----------------------------------------------------------------------------- load and handling
def test_call_heatmap_counts_calls_per_week_by_local_weekday_and_hour(table_as):
    acts = make_acts([
        dict(type="call", direction="inbound", created_at="2026-09-21 09:15"),   # Mon 9
        dict(type="call", direction="outbound", created_at="2026-09-14 09:45"),  # Mon 9
        dict(type="call", direction="outbound", created_at="2026-09-22 14:00"),  # Tue 14
        dict(type="email", direction="outbound", created_at="2026-09-22 14:00"),
        dict(type="call", direction="inbound", created_at="2026-09-28 10:00"),   # after as_of
        dict(type="call", direction="inbound", created_at="2026-09-01 10:00"),   # before the window
    ])
    heat = call_heatmap(table_as(acts, "activities"), AS_OF, start=AS_OF - pd.Timedelta(weeks=2))
    assert heat.shape == (7, 24)
    assert heat.loc["Mon", 9] == pytest.approx(1.0)  # 2 calls in 2 weeks
    assert heat.loc["Tue", 14] == pytest.approx(0.5)
    assert heat.to_numpy().sum() == pytest.approx(1.5)
    inbound = call_heatmap(table_as(acts, "activities"), AS_OF, start=AS_OF - pd.Timedelta(weeks=2),
                           direction="inbound", per_week=False)
    assert inbound.to_numpy().sum() == 1 and inbound.loc["Mon", 9] == 1
    # a UTC timestamp of 07:15 is 09:15 in Berlin (summer time): hours are read in the data's timezone
    utc = acts.assign(created_at=acts["created_at"].dt.tz_convert("UTC"))
    assert call_heatmap(table_as(utc, "activities"), AS_OF, start=AS_OF - pd.Timedelta(weeks=2)).loc["Mon", 7] \
        == pytest.approx(1.0)


def test_phone_load_is_averaged_over_the_weeks_since_calls_were_logged(table_as):
    # a 10-week window, but the first call in the export is on Monday 2026-09-14: two weeks of calls
    acts = make_acts([
        dict(type="call", owner_id="u1", direction="outbound", duration_s=600, created_at="2026-09-14 10:30"),
        dict(type="call", owner_id="u1", direction="outbound", duration_s=600, created_at="2026-09-21 10:30"),
        dict(type="meeting", owner_id="u1", created_at="2026-08-03 10:00"),
    ])
    start = AS_OF - pd.Timedelta(weeks=10)
    acts = table_as(acts, "activities")
    assert call_heatmap(acts, AS_OF, start=start).loc["Mon", 10] == pytest.approx(2 / 2)
    got = call_handling(acts, AS_OF, start=start).iloc[0]
    assert got["weeks"] == pytest.approx(2.0)
    assert got["handling_hours_per_week"] == pytest.approx(1200 / 3600 / 2)


def test_call_handling_sums_logged_call_time_per_rep(table_as):
    acts = make_acts([
        dict(type="call", owner_id="u1", direction="inbound", duration_s=120, created_at="2026-09-21 09:00"),
        dict(type="call", owner_id="u1", direction="outbound", duration_s=60, created_at="2026-09-22 09:00"),
        dict(type="call", owner_id="u1", direction="inbound", outcome="missed", created_at="2026-09-23 09:00"),
        dict(type="call", owner_id="u2", direction="outbound", duration_s=30, created_at="2026-09-23 09:00"),
        dict(type="meeting", owner_id="u2", duration_s=3600, created_at="2026-09-23 10:00"),
    ])
    users = pd.DataFrame({"user_id": s(["u1", "u2"]), "name": s(["Ann", "Bob"])})
    got = call_handling(table_as(acts, "activities"), AS_OF, start=AS_OF - pd.Timedelta(weeks=2),
                        users=users).set_index("owner_id")
    assert got.loc["u1", ["calls", "inbound", "outbound", "connected"]].tolist() == [3, 2, 1, 2]
    assert got.loc["u1", "avg_talk_minutes"] == pytest.approx(1.5)
    assert got.loc["u1", "handling_hours"] == pytest.approx(180 / 3600)
    # the 2-week window starts at the first logged call (Monday 2026-09-21): one week of calls
    assert got.loc["u1", "weeks"] == pytest.approx(1.0)
    assert got.loc["u1", "handling_hours_per_week"] == pytest.approx(180 / 3600)
    assert got.loc["u2", "calls"] == 1 and got.loc["u2", "avg_talk_minutes"] == pytest.approx(0.5)
    assert got.loc["u1", "name"] == "Ann"
    assert list(got.index) == ["u1", "u2"]  # most handling first


def test_share_difference_is_a_chi_square_test_on_groups_large_enough():
    table = pd.DataFrame({"g": s(["a", "b", "c"]), "x": [5, 20, 1], "n": [50, 50, 5]})
    got = share_difference(table, successes="x", n="n", min_n=10)
    # 2 x 2 table [[5, 45], [20, 30]]: expected 12.5 / 37.5 in each row
    chi2 = 2 * (7.5 ** 2 / 12.5) + 2 * (7.5 ** 2 / 37.5)
    assert got.statistic == pytest.approx(chi2) == pytest.approx(12.0)
    assert got.p_value == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))  # chi-square, 1 dof
    assert (got.dof, got.groups, got.left_out) == (1, 2, 1)
    assert np.isnan(share_difference(table.iloc[:1], successes="x", n="n").p_value)


# ----------------------------------------------------------------------------- narrative
HOSTILE = "<script>alert(1)</script> [x](javascript:alert(1))"


def _safe(text):
    assert "<script" not in text and "](" not in text, text


def test_elapsed_minutes_reads_naturally():
    assert narrative.elapsed_minutes(0.4) == "under 1 min"
    assert narrative.elapsed_minutes(5) == "5 min"
    assert narrative.elapsed_minutes(45.2) == "45 min"
    assert narrative.elapsed_minutes(150) == "2.5 h"
    assert narrative.elapsed_minutes(3 * 1440) == "3 days"
    assert narrative.elapsed_minutes(np.nan) == "n/a"


def test_speed_to_lead_sentence_states_median_shares_and_waiting_leads():
    ft = first_touches(LEADS, ACTS, AS_OF)
    text = narrative.describe_speed_to_lead(speed_to_lead(ft), window="this week")
    assert "1\\.5 h" in text  # the median, 90 minutes
    assert "33%" in text and "100%" in text
    assert "1 lead has not been contacted" in text
    assert "1 lead that came in before" in text
    assert "few leads" in text


def test_group_sentences_escape_hostile_names():
    users = pd.DataFrame({"user_id": s(["u1", "u2"]), "name": s([HOSTILE, "Bob"])})
    ft = first_touches(LEADS, ACTS, AS_OF)
    by = speed_to_lead(ft, by="owner_id", users=users)
    _safe(narrative.describe_response_by(by, min_n=1))
    calls = inbound_calls(CALLS, AS_OF)
    _safe(narrative.describe_missed_by(missed_call_share(calls, by="owner_id", users=users), min_n=1))
    handling = call_handling(CALLS, AS_OF, start=AS_OF - pd.Timedelta(weeks=3), users=users)
    _safe(narrative.describe_call_handling(handling))


def test_alert_sentences_name_the_week_and_the_rule():
    calls = weekly_calls([(20, 2)] * 9 + [(20, 10)])
    alerts = missed_call_alerts(calls, AS_OF, weeks=10)
    text = narrative.describe_missed_alerts(alerts)
    assert "2026\\-09\\-21" in text and "50%" in text and "Holm" in text
    assert narrative.missed_alert_text(alerts).startswith("Missed-call spike: week of 2026-09-21: 50% missed")
    quiet = missed_call_alerts(weekly_calls([(20, 2)] * 10), AS_OF, weeks=10)
    assert narrative.missed_alert_text(quiet) == ""
    assert narrative.describe_missed_alerts(quiet).startswith("No week stands out")


def test_missed_call_and_callback_sentences():
    calls = inbound_calls(CALLS, AS_OF)
    text = narrative.describe_missed_calls(missed_call_rate(calls), previous=missed_call_rate(calls.iloc[:0]))
    assert "80%" in text and "4 of 5" in text and "no inbound calls were logged" in text
    cb = narrative.describe_callbacks(callback_summary(calls))
    assert "67%" in cb and "1 recent missed call still waits" in cb


def test_peak_sentence_names_the_busiest_hour():
    heat = pd.DataFrame(0.0, index=pd.Index(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], name="weekday"),
                        columns=pd.RangeIndex(24, name="hour"))
    heat.loc["Tue", 14] = 3.0
    heat.loc["Mon", 9] = 1.0
    text = narrative.describe_call_peak(heat)
    assert "Tue 14:00-15:00" in text and "**4 calls a week**" in text and "100%" in text


# ----------------------------------------------------------------------------- pictures
def test_plots_draw_the_report_pictures():
    try:
        ax = plots.plot_speed_to_lead(response_curve(first_touches(LEADS, ACTS, AS_OF)))
        assert {ln.get_gid() for ln in ax.get_lines()} >= {"limit-5", "limit-60", "limit-1440"}
        assert ax.get_xscale() == "log"
        alerts = missed_call_alerts(weekly_calls([(20, 2)] * 9 + [(20, 10)]), AS_OF, weeks=10)
        ax = plots.plot_missed_weeks(alerts, min_share=0.25)
        colours = [p.get_facecolor() for p in ax.patches]
        assert len(colours) == 10 and colours[-1] != colours[0]  # the alerted week stands out
        assert ax.get_title(loc="left") == "1 week with a missed-call spike"
        heat = call_heatmap(CALLS, AS_OF, start=AS_OF - pd.Timedelta(weeks=3))
        ax = plots.plot_call_heatmap(heat)
        assert ax.collections and ax.get_title(loc="left").startswith("Peak load: ")
    finally:
        plt.close("all")


def test_calls_are_found_whatever_the_spelling_of_type_and_direction(table_as):
    messy = CALLS.copy()
    messy["type"] = messy["type"].replace({"call": " Call"})
    messy["direction"] = messy["direction"].replace({"inbound": "INBOUND ", "outbound": "Outbound"})
    pd.testing.assert_frame_equal(inbound_calls(table_as(messy, "activities"), AS_OF), inbound_calls(CALLS, AS_OF))
    start = AS_OF - pd.Timedelta(weeks=3)
    pd.testing.assert_frame_equal(call_heatmap(table_as(messy, "activities"), AS_OF, start=start),
                                  call_heatmap(CALLS, AS_OF, start=start))


def test_calls_and_touches_are_taken_by_position_not_by_index_label():
    """A user's filtered activities frame may carry a repeated index; rows are picked by position.

    The calls are found by their spellings (" Call", "INBOUND ") and only the columns each
    metric uses are taken, so the answers must equal those on the same rows with a fresh index.
    """
    messy = CALLS.copy()
    messy.index = [0] * len(messy)
    messy["type"] = messy["type"].map({"call": " Call", "email": "EMAIL"})
    messy["direction"] = messy["direction"].map({"inbound": "INBOUND ", "outbound": "Outbound"})
    want = inbound_calls(CALLS, AS_OF)
    pd.testing.assert_frame_equal(inbound_calls(messy, AS_OF), want)
    assert want["callback_status"].notna().sum() == 4  # four missed calls, each with a status
    start = AS_OF - pd.Timedelta(weeks=2)
    pd.testing.assert_frame_equal(call_handling(messy, AS_OF, start=start), call_handling(CALLS, AS_OF, start=start))
    acts = ACTS.copy()
    acts.index = [7] * len(acts)
    got = first_touches(LEADS, acts, AS_OF)
    pd.testing.assert_frame_equal(got, first_touches(LEADS, ACTS, AS_OF))
    assert got["touched"].sum() >= 1
