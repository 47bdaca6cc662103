"""Report 08 goal progress on tiny frames; every expected value is worked out by hand in the test.

The calendar used throughout (Europe/Berlin): September 2026 starts on a Tuesday and has
22 working days (1-4, 7-11, 14-18, 21-25, 28-30). With as_of = the end of Wednesday
16 September, 12 of them have gone (1-4, 7-11, 14-16) and 10 are left.
"""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from crmlib import narrative, plots  # noqa: E402
from crmlib.errors import CrmConfigError, CrmDataError  # noqa: E402
from crmlib.metrics.goals import (attainment_history, goal_actuals, goal_progress, goal_summary,  # noqa: E402
                                  off_pace)
from crmlib.periods import working_days  # noqa: E402

TZ = "Europe/Berlin"
AS_OF = pd.Timestamp("2026-09-17", tz=TZ)  # the last day included is Wednesday 16 September
SHARE = 12 / 22  # working days gone / working days in September
# Garwood exact 95% bounds on a Poisson mean with 2 events observed (published tables: 0.242, 7.225)
GARWOOD_2 = (0.2422, 7.2247)


def t(x):
    return pd.Timestamp(x, tz=TZ)


def ts(values):
    return pd.Series([t(v) if v else pd.NaT for v in values], dtype=f"datetime64[us, {TZ}]")


def s(values):
    return pd.Series(values, dtype="str")


def make_targets(rows):
    """rows: (owner_id, team, metric, first day, last day, target)."""
    return pd.DataFrame({
        "owner_id": s([r[0] for r in rows]), "team": s([r[1] for r in rows]),
        "metric": s([r[2] for r in rows]), "period_start": ts([r[3] for r in rows]),
        "period_end": ts([r[4] for r in rows]), "target": [float(r[5]) for r in rows]})


USERS = pd.DataFrame({"user_id": s(["u1", "u2", "m1"]), "name": s(["Ana Ruiz", "Bo Chen", "Mo Diaz"]),
                      "team": s(["East", "East", "West"]), "role": s(["rep", "rep", "manager"])})

DEALS = pd.DataFrame({
    "deal_id": s(["D1", "D2", "D3", "D4", "D5", "D6", "D7"]),
    "owner_id": s(["u1", "u1", "u1", "u1", "u1", "u2", "u1"]),
    "status": s(["won", "won", "won", "won", "lost", "won", "won"]),
    "created_at": ts(["2026-08-01"] * 6 + ["2025-08-01"]),
    # D3 closes 30 minutes before September starts in Berlin (21:30 UTC): it is August's;
    # D4 closes after as_of: not yet won; D5 is lost; D7 is a year earlier
    "closed_at": ts(["2026-09-03 10:00", "2026-09-15 16:00", "2026-08-31 23:30", "2026-09-17 10:00",
                     "2026-09-08 10:00", "2026-09-10 09:00", "2025-09-10 12:00"]),
    "amount_rep": [3000.0, 2000.0, 5000.0, 7000.0, 9000.0, 4000.0, 6000.0],
})

ACTIVITIES = pd.DataFrame({
    "activity_id": s([f"A{i}" for i in range(1, 13)]),
    "type": s(["call"] * 7 + ["email"] + ["meeting"] * 4),
    "owner_id": s(["u1"] * 12),
    # calls 1-5 in September before as_of (the missed one counts: it was a call), 6 after
    # as_of, 7 in August; the email is no call
    "created_at": ts(["2026-09-01 09:00", "2026-09-02 09:00", "2026-09-09 09:00", "2026-09-14 09:00",
                      "2026-09-16 17:00", "2026-09-17 09:00", "2026-08-28 09:00", "2026-09-04 09:00",
                      "2026-09-01 08:00", "2026-09-01 08:00", "2026-09-01 08:00", "2026-09-01 08:00"]),
    "outcome": s(["answered", "missed", "voicemail", "answered", "no_answer", "answered", "answered", None,
                  "held", None, "held", "held"]),
    # meetings: held on 10 Sept (counts), never completed (no), held early for a 18 Sept date
    # (dated by due_at, after as_of: no), completed without a due date on 5 Sept (counts)
    "due_at": ts([None] * 8 + ["2026-09-10 10:00", "2026-09-12 10:00", "2026-09-18 10:00", None]),
    "completed_at": ts([None] * 8 + ["2026-09-10 11:00", None, "2026-09-16 10:00", "2026-09-05 10:00"]),
})

LEADS = pd.DataFrame({"lead_id": s(["L1", "L2", "L3", "L4", "L5"]),
                      "owner_id": s(["u2", "u2", "u2", "u2", "u1"]),
                      "created_at": ts(["2026-09-01 10:00", "2026-09-08 10:00", "2026-09-16 23:59",
                                        "2026-08-20 10:00", "2026-09-02 10:00"])})

TARGETS = make_targets([
    ("u1", None, "revenue", "2026-09-01", "2026-09-30", 10_000),
    ("u2", None, "revenue", "2026-09-01", "2026-09-30", 20_000),
    (None, "East", "revenue", "2026-09-01", "2026-09-30", 25_000),
    ("u1", None, "won_deals", "2026-09-01", "2026-09-30", 3),
    ("u1", None, "calls", "2026-09-01", "2026-09-30", 10),
    ("u1", None, "meetings", "2026-09-01", "2026-09-30", 2),
    ("u2", None, "new_leads", "2026-09-01", "2026-09-30", 4),
    ("u1", None, "emails", "2026-09-01", "2026-09-30", 50),
    (None, "East", "revenue", "2026-08-01", "2026-08-31", 10_000),
    (None, "East", "revenue", "2026-10-01", "2026-10-31", 30_000),
    (None, "East", "revenue", "2025-09-01", "2025-09-30", 5_000),
])

KW = dict(as_of=AS_OF, deals=DEALS, activities=ACTIVITIES, leads=LEADS, users=USERS)


@pytest.fixture(scope="module")
def progress():
    return goal_progress(TARGETS, **KW)


def row(frame, metric, who):
    key = "team" if who[0].isupper() else "owner_id"
    hit = frame[(frame["metric"] == metric) & (frame[key] == who) & (frame["level"] == key.split("_")[0])]
    assert len(hit) == 1, (metric, who)
    return hit.iloc[0]


# ----------------------------------------------------------------------------- actuals
def test_actuals_follow_the_definitions_for_each_metric(progress):
    # revenue u1: D1 3,000 + D2 2,000 (D3 is August's in Berlin, D4 after as_of, D5 lost)
    assert row(progress, "revenue", "u1")["actual"] == 5000.0
    assert row(progress, "revenue", "u1")["events"] == 2
    assert row(progress, "revenue", "u2")["actual"] == 4000.0
    assert row(progress, "won_deals", "u1")["actual"] == 2.0
    assert row(progress, "calls", "u1")["actual"] == 5.0  # calls 1-5
    assert row(progress, "meetings", "u1")["actual"] == 2.0  # the 10 Sept one and the undated one
    assert row(progress, "new_leads", "u2")["actual"] == 3.0  # L1-L3 (L3 at 23:59 on the last day)


def test_call_and_meeting_actuals_from_a_scanned_activity_table(table_as, progress):
    """A large snapshot hands the goals a scan of the activity window: DuckDB picks the calls and
    the meetings, and the actuals are the hand-computed ones above, every row the same."""
    scanned = goal_progress(TARGETS, **dict(KW, activities=table_as(ACTIVITIES, "activities")))
    assert row(scanned, "calls", "u1")["actual"] == 5.0
    assert row(scanned, "meetings", "u1")["actual"] == 2.0
    pd.testing.assert_frame_equal(scanned, progress)


def test_actuals_are_the_same_when_the_span_is_too_long_to_place_events_by_microsecond(monkeypatch, progress):
    """Events are placed by (key, microsecond); a span too long for that falls back to ranking
    the times. Both give the hand-computed actuals above."""
    import crmlib.metrics.goals as g

    monkeypatch.setattr(g, "_PLACE_LIMIT", 0)
    ranked = goal_progress(TARGETS, **KW)
    assert row(ranked, "revenue", "u1")["actual"] == 5000.0
    assert row(ranked, "calls", "u1")["actual"] == 5.0
    assert row(ranked, "new_leads", "u2")["actual"] == 3.0
    cols = ["metric", "level", "owner_id", "team", "actual", "events", "missing_amount"]
    pd.testing.assert_frame_equal(ranked[cols], progress[cols])


def test_a_won_deal_without_amount_adds_nothing_but_is_counted_as_missing():
    extra = pd.DataFrame({"deal_id": s(["D8"]), "owner_id": s(["u1"]), "status": s(["won"]),
                          "created_at": ts(["2026-08-01"]), "closed_at": ts(["2026-09-09 10:00"]),
                          "amount_rep": [np.nan]})
    p = goal_progress(TARGETS, **dict(KW, deals=pd.concat([DEALS, extra], ignore_index=True)))
    r = row(p, "revenue", "u1")
    assert (r["actual"], r["events"], r["missing_amount"]) == (5000.0, 2, 1)
    assert row(p, "won_deals", "u1")["actual"] == 3.0  # it was won all the same
    sm = goal_summary(p)
    assert sm.actual == 9000.0 and "1 won deal(s) without an amount" in sm.notes[0]
    assert "Note: 1 won deal" in narrative.plain(narrative.describe_goal_summary(sm))


def test_team_actual_is_the_sum_over_the_teams_users(progress):
    east = row(progress, "revenue", "East")
    assert east["actual"] == 5000.0 + 4000.0
    assert east["name"] == "East"


def test_owner_rows_get_their_name_and_team_from_users(progress):
    r = row(progress, "revenue", "u2")
    assert r["name"] == "Bo Chen" and r["team"] == "East"


def test_an_unknown_metric_has_no_actual_rather_than_zero(progress):
    r = row(progress, "emails", "u1")
    assert math.isnan(r["actual"]) and r["status"] == "no data" and not r["on_pace"] and not r["off_pace"]


def test_missing_tables_leave_their_metrics_without_actual():
    p = goal_progress(TARGETS, as_of=AS_OF, deals=DEALS)
    assert math.isnan(row(p, "calls", "u1")["actual"])
    assert math.isnan(row(p, "new_leads", "u2")["actual"])
    assert math.isnan(row(p, "revenue", "East")["actual"])  # no users: team members unknown
    assert row(p, "revenue", "u1")["actual"] == 5000.0
    assert row(p, "calls", "u1")["status"] == "no data"


def test_goal_actuals_covers_every_target_row_counting_until_period_end_or_as_of():
    a = goal_actuals(TARGETS, **KW)
    assert len(a) == len(TARGETS)
    east = a[(a["level"] == "team") & (a["metric"] == "revenue")].set_index(
        a.loc[(a["level"] == "team") & (a["metric"] == "revenue"), "period_start"].dt.strftime("%Y-%m"))
    assert east.loc["2026-08", "actual"] == 5000.0  # D3, 23:30 on 31 August in Berlin
    assert east.loc["2025-09", "actual"] == 6000.0  # D7
    assert east.loc["2026-10", "actual"] == 0.0  # not started: nothing counted yet
    assert east.loc["2026-09", "period_end"] == t("2026-09-30")  # last day included, local midnight


def test_period_days_shifted_by_a_timezone_conversion_are_read_as_the_days_written():
    # a date-only export in UTC shown in New York: 2026-09-01 00:00 UTC is 31 Aug 20:00 there
    utc = make_targets([("u1", None, "revenue", "2026-09-01", "2026-09-30", 10_000)])
    for col in ("period_start", "period_end"):
        utc[col] = utc[col].dt.tz_localize(None).dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    p = goal_progress(utc, **KW)
    assert p["period_start"].iloc[0] == t("2026-09-01") and p["period_end"].iloc[0] == t("2026-09-30")
    assert p["actual"].iloc[0] == 5000.0


def test_targets_given_as_text_dates_work_too():
    text = TARGETS.head(1).assign(period_start=s(["2026-09-01"]), period_end=s(["2026-09-30"]))
    assert goal_progress(text, **KW)["actual"].iloc[0] == 5000.0


# ----------------------------------------------------------------------------- pace
def test_working_days_share_elapsed_projection_and_required_pace_by_hand(progress):
    r = row(progress, "revenue", "u1")
    assert r["working_days_total"] == 22 and r["working_days_elapsed"] == 12 and r["working_days_left"] == 10
    assert r["share_elapsed"] == pytest.approx(SHARE)
    assert r["share_reached"] == pytest.approx(0.5)
    assert r["projection"] == pytest.approx(5000 / SHARE)  # 9,166.67
    assert r["projected_attainment"] == pytest.approx(5000 / SHARE / 10_000)  # 0.9167
    assert r["plan_per_day"] == pytest.approx(10_000 / 22)  # the sources' 1/22 of the plan a day
    assert r["run_rate_per_day"] == pytest.approx(5000 / 12)
    assert r["required_per_day"] == pytest.approx(5000 / 10)


def test_status_uses_the_thresholds(progress):
    # u1 revenue 0.917: between 0.8 and 0.95; u2 4,000 x 22/12 / 20,000 = 0.367; team 9,000 x 22/12 /
    # 25,000 = 0.66; won deals 2 x 22/12 / 3 = 1.22; calls 5 x 22/12 / 10 = 0.917; leads 3 x 22/12 / 4
    assert row(progress, "revenue", "u1")["status"] == "at risk"
    assert row(progress, "revenue", "u2")["status"] == "off pace"
    assert row(progress, "revenue", "East")["projected_attainment"] == pytest.approx(0.66)
    assert row(progress, "revenue", "East")["status"] == "off pace"
    assert row(progress, "won_deals", "u1")["status"] == "on pace"
    assert row(progress, "calls", "u1")["status"] == "at risk"
    assert row(progress, "new_leads", "u2")["projected_attainment"] == pytest.approx(3 * 22 / 12 / 4)
    assert row(progress, "meetings", "u1")["status"] == "reached"
    assert row(progress, "meetings", "u1")["required_per_day"] == 0.0
    loose = goal_progress(TARGETS, off_pace_below=0.6, on_pace_from=0.9, **KW)
    assert row(loose, "revenue", "u1")["status"] == "on pace" and row(loose, "revenue", "u1")["on_pace"]
    assert row(loose, "revenue", "East")["status"] == "at risk"
    assert row(loose, "revenue", "u2")["off_pace"]


def test_only_the_running_period_is_shown_and_a_past_one_on_request(progress):
    assert set(progress["period_start"]) == {t("2026-09-01")}
    aug = goal_progress(TARGETS, on="2026-08-15", **KW)
    r = aug.iloc[0]
    assert len(aug) == 1 and r["share_elapsed"] == 1.0 and r["working_days_left"] == 0
    assert r["projection"] == r["actual"] == 5000.0
    assert r["status"] == "missed" and math.isnan(r["required_per_day"])


def test_too_early_in_the_period_gives_no_verdict():
    p = goal_progress(TARGETS, **dict(KW, as_of=t("2026-09-03")))  # 2 of 22 working days gone
    assert row(p, "revenue", "u2")["share_elapsed"] == pytest.approx(2 / 22)
    assert row(p, "revenue", "u2")["status"] == "too early"
    assert not p["off_pace"].any()


def test_as_of_in_the_middle_of_a_working_day_counts_the_part_gone():
    p = goal_progress(TARGETS, **dict(KW, as_of=t("2026-09-16 12:00")))
    r = row(p, "revenue", "u1")
    assert r["working_days_elapsed"] == pytest.approx(11.5)  # 1-15 September and half of the 16th
    assert r["working_days_left"] == 10  # the full working days after the as_of day


def test_projection_interval_is_the_garwood_interval_scaled_to_the_period(progress):
    lo, hi = GARWOOD_2
    w = row(progress, "won_deals", "u1")  # 2 events in 12 working days, 10 to go
    assert w["projection_low"] == pytest.approx(2 + lo * 10 / 12, abs=1e-3)
    assert w["projection_high"] == pytest.approx(2 + hi * 10 / 12, abs=1e-3)
    r = row(progress, "revenue", "u1")  # the same deals at 2,500 on average
    assert r["projection_low"] == pytest.approx(5000 + lo * 10 / 12 * 2500, abs=1)
    assert r["projection_high"] == pytest.approx(5000 + hi * 10 / 12 * 2500, abs=1)
    assert r["projection_low"] <= r["projection"] <= r["projection_high"]


def test_public_holidays_of_a_country_are_not_working_days():
    # May 2026 has 21 weekdays; German public holidays on weekdays: 1 May (Fri), Ascension 14 May
    # (Thu), Whit Monday 25 May: 18 working days. By Friday 15 May: 11 weekdays, 9 working days.
    assert working_days("2026-05-01", "2026-06-01", "DE") == 18
    targets = make_targets([("u1", None, "revenue", "2026-05-01", "2026-05-31", 1800)])
    deals = DEALS.assign(closed_at=ts(["2026-05-04 10:00"] + ["2026-07-01"] * 6), amount_rep=900.0)
    kw = dict(KW, as_of=t("2026-05-16"), deals=deals)
    de = goal_progress(targets, country="DE", **kw).iloc[0]
    assert (de["working_days_total"], de["working_days_elapsed"], de["working_days_left"]) == (18, 9, 9)
    assert de["plan_per_day"] == pytest.approx(100.0)
    assert de["projection"] == pytest.approx(900 * 18 / 9)
    assert de["required_per_day"] == pytest.approx(900 / 9)
    plain = goal_progress(targets, **kw).iloc[0]
    assert (plain["working_days_total"], plain["working_days_elapsed"]) == (21, 11)
    assert plain["projection"] == pytest.approx(900 * 21 / 11)
    with pytest.raises(CrmConfigError, match="holiday country"):
        goal_progress(targets, country="XX", **kw)


def test_rows_are_ordered_by_metric_teams_first_then_lowest_projection(progress):
    rev = progress[progress["metric"] == "revenue"]
    assert list(rev["level"]) == ["team", "owner", "owner"]
    assert list(rev["owner_id"].iloc[1:]) == ["u2", "u1"]
    assert list(dict.fromkeys(progress["metric"])) == ["revenue", "won_deals", "calls", "meetings",
                                                        "new_leads", "emails"]


def test_off_pace_lists_the_goals_under_the_threshold(progress):
    assert list(off_pace(progress)["owner_id"]) == ["u2"]
    assert list(off_pace(progress, level="team")["team"]) == ["East"]
    assert len(off_pace(progress, metric=None, level=None)) == 2


# ----------------------------------------------------------------------------- totals and history
def test_history_gives_each_periods_attainment_and_the_running_projection():
    h = attainment_history(TARGETS, **KW)
    assert list(h["label"]) == ["2025-09", "2026-08", "2026-09"]  # October has not started
    assert list(h["attainment"].round(4)) == [1.2, 0.5, 0.36]  # 6,000/5,000; 5,000/10,000; 9,000/25,000
    assert list(h["complete"]) == [True, True, False]
    assert h["projected_attainment"].iloc[-1] == pytest.approx(0.66)
    assert (h["level"] == "team").all()


def test_summary_totals_the_team_targets_and_compares_with_previous_and_year_ago(progress):
    h = attainment_history(TARGETS, **KW)
    sm = goal_summary(progress, metric="revenue", history=h)
    assert (sm.level, sm.goals, sm.target, sm.actual) == ("team", 1, 25_000.0, 9000.0)
    assert sm.projected_attainment == pytest.approx(0.66) and sm.status == "off pace"
    assert sm.required_per_day == pytest.approx(16_000 / 10)
    assert sm.plan_per_day == pytest.approx(25_000 / 22)
    assert sm.owners == 2 and sm.owners_off_pace == ("Bo Chen",) and sm.owners_at_risk == ("Ana Ruiz",)
    assert (sm.previous_attainment, sm.previous_label) == (0.5, "2026-08")
    assert (sm.year_ago_attainment, sm.year_ago_label) == (1.2, "2025-09")
    assert sm.label == "2026-09" and sm.to_frame().shape[0] == 1


def test_summary_falls_back_to_the_owners_total_without_team_targets():
    owners_only = TARGETS[TARGETS["team"].isna()]
    sm = goal_summary(goal_progress(owners_only, **KW), metric="revenue")
    assert (sm.level, sm.goals, sm.target, sm.actual) == ("owner", 2, 30_000.0, 9000.0)
    assert sm.projected_attainment == pytest.approx(9000 / SHARE / 30_000)
    assert math.isnan(sm.previous_attainment)


def test_summary_uses_the_owners_total_when_team_actuals_are_unknown():
    no_users = goal_progress(TARGETS, **dict(KW, users=None))
    sm = goal_summary(no_users, metric="revenue", history=attainment_history(TARGETS, **dict(KW, users=None)))
    assert (sm.level, sm.goals, sm.target, sm.actual) == ("owner", 2, 30_000.0, 9000.0)
    assert sm.measured and "owners' goals are totalled" in sm.notes[0]
    assert math.isnan(sm.previous_attainment)  # August has a team goal only, not measurable


def test_summary_of_a_metric_without_targets_says_so(progress):
    sm = goal_summary(progress, metric="tickets")
    assert sm.goals == 0 and not sm.measured and sm.status == "no data" and "no tickets target" in sm.notes[0]
    assert "There is no tickets target" in narrative.describe_goal_summary(sm)


# ----------------------------------------------------------------------------- bad input
def test_a_period_ending_before_it_starts_is_an_error():
    bad = make_targets([("u1", None, "revenue", "2026-09-30", "2026-09-01", 1)])
    with pytest.raises(CrmDataError, match="period_end is before period_start"):
        goal_progress(bad, **KW)


def test_revenue_needs_the_reporting_currency_column():
    with pytest.raises(CrmDataError, match="to_reporting"):
        goal_progress(TARGETS, **dict(KW, deals=DEALS.drop(columns="amount_rep")))


def test_thresholds_must_be_ordered():
    with pytest.raises(CrmConfigError, match="off_pace_below"):
        goal_progress(TARGETS, off_pace_below=0.9, on_pace_from=0.8, **KW)


def test_naive_as_of_is_refused():
    with pytest.raises(CrmConfigError, match="timezone-aware"):
        goal_progress(TARGETS, as_of=pd.Timestamp("2026-09-17"), deals=DEALS)


# ----------------------------------------------------------------------------- narrative and plot
HOSTILE = "<script>alert(1)</script> [x](javascript:alert(1)) $x$"


def hostile_progress():
    users = USERS.assign(name=s([HOSTILE, "Bo Chen", "Mo Diaz"]))
    p = goal_progress(TARGETS, off_pace_below=0.95, on_pace_from=0.99, **dict(KW, users=users))
    return p


def test_describe_goal_summary_by_hand(progress):
    h = attainment_history(TARGETS, **KW)
    text = narrative.describe_goal_summary(goal_summary(progress, history=h), currency="EUR")
    plain = narrative.plain(text)
    assert plain.startswith("The team has reached 36% of the revenue target (€9,000 of €25,000) "
                            "with 55% of the working days of 2026-09 gone (12 of 22).")
    assert "the period ends at €16,500, 66% of target" in plain and ": off pace." in plain
    assert "takes €1,600 a working day for the last 10 working days, against a plan of €1,136" in plain
    assert "previous period (2026-08) ended at 50%" in plain and "a year ago (2025-09) at 120%" in plain


def test_describe_off_pace_names_owners_and_escapes_hostile_names():
    p = hostile_progress()
    text = narrative.describe_off_pace(p, currency="EUR", off_pace_below=0.95)
    assert "<script>" not in text and "](javascript" not in text
    assert "&lt;script&gt;" in text
    plain = narrative.plain(text)
    assert plain.startswith("2 of 2 owners are off pace for revenue")
    assert "Bo Chen (projected 37% of €20,000; needs €1,600 a working day against €333 so far)" in plain
    assert "fewer than 5 won deals" in plain


def test_off_pace_message_is_plain_text_for_the_front_page():
    msg = narrative.off_pace_message(hostile_progress())
    assert msg.startswith("2 of 2 owners off pace for their revenue target")
    assert "Bo Chen (37%)" in msg and HOSTILE in msg  # the index page escapes it
    assert narrative.off_pace_message(goal_progress(TARGETS, off_pace_below=0.1, **KW)) == ""


def test_describe_goals_by_metric_and_working_days_and_history(progress):
    lines = narrative.describe_goals_by_metric(progress).splitlines()
    assert lines[0] == r"- **Revenue**: 2 goals, 1 at risk, 1 off pace; lowest projection Bo Chen at 37% of target."
    assert any(x.startswith("- **Emails**: 1 goal, 1 no data") for x in lines)
    sm = goal_summary(progress)
    days = narrative.plain(narrative.describe_working_days(sm, country="DE"))
    assert days.startswith("Working days are Monday to Friday minus the public holidays of DE: 2026-09 has "
                           "22, 12 gone and 10 left.")
    hist = narrative.plain(narrative.describe_attainment_history(attainment_history(TARGETS, **KW)))
    assert hist.startswith("The revenue target was reached in 1 of the last 2 periods; attainment ranged "
                           "from 50% (2026-08) to 120% (2025-09)")


def test_plot_goal_pace_draws_a_bar_per_goal_and_names_the_off_pace_in_the_title():
    p = hostile_progress()
    ax = plots.plot_goal_pace(p)
    assert len(ax.patches) == 2
    assert ax.get_title(loc="left") == f"2 of 2 owners off pace for revenue: Bo Chen, {HOSTILE}"
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["Bo Chen", HOSTILE]
    assert any(line.get_gid() == "target" for line in ax.lines)
    plt.close("all")


def test_plot_attainment_history_marks_the_running_period():
    h = attainment_history(TARGETS, **KW)
    ax = plots.plot_attainment_history(h)
    heights = [round(b.get_height(), 4) for b in ax.patches]
    assert heights == [1.2, 0.5, 0.36]
    assert ax.get_title(loc="left") == "Revenue target reached in 1 of the last 2 periods"
    plt.close("all")


def test_plot_goal_pace_of_no_goals_says_so():
    ax = plots.plot_goal_pace(goal_progress(TARGETS.head(0), **KW))
    assert ax.get_title(loc="left") == "No owner has a revenue target in this period"
    plt.close("all")
