"""Report 05 metrics on tiny frames whose expected values are worked out by hand in each test."""

import math

import numpy as np
import pandas as pd
import pytest

from crmlib.errors import CrmConfigError, CurrencyError
from crmlib.metrics.activity import (ActivityOutcome, PeriodResults, activities_done, activities_scheduled,
                                     activity_mix, activity_outcome, call_band_win_rates, close_ratio, cohort_win_rate,
                                     deals_with_week_activity, meetings_in_band, owner_performance,
                                     owner_results,
                                     period_results, quota_attainment, rep_week_activity, rep_week_outcomes,
                                     results_by_period)
from crmlib.periods import period_bounds

TZ = "Europe/Berlin"
AS_OF = pd.Timestamp("2026-09-28", tz=TZ)  # as_of parameter "2026-09-27": week 2026-W39 is complete
WEEK = period_bounds(AS_OF, "week").current  # 2026-09-21 .. 2026-09-28
Z = 1.959963984540054


def t(x):
    return pd.Timestamp(x, tz=TZ)


def ts(values):
    return pd.Series([t(v) if v else pd.NaT for v in values], dtype=f"datetime64[us, {TZ}]")


def wilson_by_hand(k, n, z=Z):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def make_activities(rows):
    """rows: (id, type, owner, created_at, due_at, completed_at)."""
    return pd.DataFrame({
        "activity_id": pd.Series([r[0] for r in rows], dtype="str"),
        "type": pd.Series([r[1] for r in rows], dtype="str"),
        "owner_id": pd.Series([r[2] for r in rows], dtype="str"),
        "deal_id": pd.Series([None] * len(rows), dtype="str"),
        "created_at": ts([r[3] for r in rows]),
        "due_at": ts([r[4] for r in rows]),
        "completed_at": ts([r[5] for r in rows]),
    })


def make_deals(rows):
    """rows: (deal_id, owner, status, created_at, closed_at, amount)."""
    f = pd.DataFrame({
        "deal_id": pd.Series([r[0] for r in rows], dtype="str"),
        "owner_id": pd.Series([r[1] for r in rows], dtype="str"),
        "status": pd.Series([r[2] for r in rows], dtype="str"),
        "amount": pd.Series([r[5] for r in rows], dtype="float64"),
        "currency": pd.Series(["EUR"] * len(rows), dtype="str"),
        "created_at": ts([r[3] for r in rows]),
        "closed_at": ts([r[4] for r in rows]),
    })
    f["amount_rep"] = f["amount"]  # all EUR: what money.to_reporting would add
    return f


ACTS = make_activities([
    ("a1", "call", "u1", "2026-09-21 09:00", None, None),              # done in W39
    ("a2", "call", "u1", "2026-09-20 23:30", None, None),              # the week before
    ("a3", "email", "u1", "2026-09-27 23:59", None, None),             # done, last minute of W39
    ("a4", "meeting", "u1", "2026-09-10", "2026-09-22", "2026-09-22 10:00"),  # done: completed in W39
    ("a5", "meeting", "u2", "2026-09-21", "2026-09-23", None),         # never completed: not done
    ("a6", "task", "u2", "2026-09-15", "2026-09-20", "2026-09-24"),    # done late, in W39
    ("a7", "task", "u2", "2026-09-22", "2026-09-26", "2026-09-29"),    # completed after as_of: not yet
    ("a8", "note", "u2", "2026-09-22", None, None),                    # notes are not in OWNER_TYPES
    # planned for W40 (2026-09-28 .. 2026-10-05)
    ("s1", "meeting", "u1", "2026-09-25", "2026-09-29 10:00", None),   # scheduled
    ("s2", "task", "u1", "2026-09-25", "2026-10-05 00:00", None),      # due just after W40
    ("s3", "task", "u2", "2026-09-29", "2026-09-30", None),            # created after as_of
    ("s4", "task", "u2", "2026-09-20", "2026-09-30", "2026-09-26"),    # already done
    ("s5", "task", "u2", "2026-09-20", "2026-10-01", "2026-09-30"),    # done only after as_of: scheduled
])


# ----------------------------------------------------------------------------- activities
def test_done_counts_logged_calls_and_emails_and_completed_meetings_and_tasks_before_as_of(table_as):
    acts = table_as(ACTS, "activities")
    got = activities_done(acts, start=WEEK.start, end=WEEK.end, as_of=AS_OF).set_index("owner_id")
    assert got.loc["u1", ["call", "email", "meeting", "task", "done"]].tolist() == [1, 1, 1, 0, 3]
    # u2: a6 and s4 (both tasks completed in W39); a7 is completed after as_of, a5 never
    assert got.loc["u2", ["call", "email", "meeting", "task", "done"]].tolist() == [0, 0, 0, 2, 2]
    assert got.index.tolist() == ["u1", "u2"]  # most done first


def test_done_window_is_cut_at_as_of(table_as):
    early = t("2026-09-24")  # Thursday 00:00: a4 (Tue) counted; a6 completed at that instant is not yet
    acts = table_as(ACTS, "activities")
    got = activities_done(acts, start=WEEK.start, end=WEEK.end, as_of=early).set_index("owner_id")
    assert got.loc["u1", "done"] == 2  # a1, a4 (a3 is logged on Sunday)
    assert "u2" not in got.index


def test_scheduled_means_due_in_the_window_and_not_completed_at_as_of(table_as):
    nxt = WEEK.next()
    acts = table_as(ACTS, "activities")
    got = activities_scheduled(acts, start=nxt.start, end=nxt.end, as_of=AS_OF).set_index("owner_id")
    assert got.loc["u1", ["meeting", "task", "scheduled"]].tolist() == [1, 0, 1]
    assert got.loc["u2", ["meeting", "task", "scheduled"]].tolist() == [0, 1, 1]  # s5 only


def test_activity_mix_counts_each_type_per_period_with_shares(table_as):
    prev, cur = WEEK.previous(), WEEK
    mix = activity_mix(table_as(ACTS, "activities"), periods=[prev, cur], as_of=AS_OF)
    assert len(mix) == 2 * 5  # every type listed in every period
    w38 = mix[mix["period"] == prev.label].set_index("type")
    # W38 (09-14 .. 09-21): a2 (call, logged 09-20) and s4 (task completed 09-26 is W39) -> a2 only
    assert w38.loc["call", "activities"] == 1 and w38["activities"].sum() == 1
    w39 = mix[mix["period"] == cur.label].set_index("type")
    # W39: a1 call, a3 email, a4 meeting, a6 task, s4 task (completed 09-26), a8 note -> 6
    assert w39["activities"].to_dict() == {"call": 1, "email": 1, "meeting": 1, "task": 2, "note": 1}
    assert w39.loc["task", "share"] == pytest.approx(2 / 6)
    assert w39["complete"].all()


def test_activity_mix_marks_a_running_period_and_a_period_without_activity(table_as):
    mix = activity_mix(table_as(ACTS, "activities"), periods=[WEEK.next()], as_of=AS_OF)
    assert mix["activities"].sum() == 0 and mix["share"].isna().all() and not mix["complete"].any()


# ----------------------------------------------------------------------------- deal results
DEALS = make_deals([
    ("d1", "u1", "won", "2026-09-01 12:00", "2026-09-22", 1000.0),
    ("d2", "u1", "lost", "2026-09-21", "2026-09-23", 700.0),
    ("d3", "u2", "open", "2026-09-22", None, 400.0),
    ("d4", "u2", "won", "2026-08-01", "2026-09-28 00:00", 9000.0),  # closed at as_of: still open
    ("d5", "u2", "won", "2026-09-02", "2026-09-25", 3000.0),
    ("d6", "u1", "won", "2026-09-23", "2026-09-24", 500.0),
    ("d7", "u3", "won", "2026-08-03", "2026-08-20", 800.0),          # won in August
])


def test_period_results_of_the_week_by_hand():
    res = period_results(DEALS, start=WEEK.start, end=WEEK.end, as_of=AS_OF)
    assert isinstance(res, PeriodResults)
    assert (res.created, res.won, res.lost) == (3, 3, 1)  # created d2, d3, d6; won d1, d5, d6; lost d2
    assert res.revenue_won == pytest.approx(4500.0)
    assert res.avg_deal_size == pytest.approx(1500.0)
    low, high = wilson_by_hand(3, 4)
    assert res.win_rate.estimate == pytest.approx(0.75)
    assert (res.win_rate.low, res.win_rate.high) == (pytest.approx(low), pytest.approx(high))
    assert res.to_frame().loc[0, "revenue_won"] == pytest.approx(4500.0)


def test_results_by_period_one_row_per_period_in_order():
    prev = WEEK.previous()
    got = results_by_period(DEALS, periods=[prev, WEEK, WEEK.next()], as_of=AS_OF)
    assert got["period"].tolist() == [prev.label, WEEK.label, WEEK.next().label]
    # W38 (09-14 .. 09-21): nothing closed or created; W39 as above; W40 has not started
    assert got["won"].tolist() == [0, 3, 0] and got["revenue_won"].tolist() == [0.0, 4500.0, 0.0]
    assert np.isnan(got.loc[0, "win_rate"]) and got["complete"].tolist() == [True, True, False]


def test_period_results_refuse_mixed_currencies_without_conversion():
    d = DEALS.drop(columns="amount_rep")
    d.loc[0, "currency"] = "USD"
    with pytest.raises(CurrencyError):
        period_results(d, start=WEEK.start, end=WEEK.end, as_of=AS_OF, amount_col="amount")


def test_owner_results_per_owner_by_hand():
    got = owner_results(DEALS, start=WEEK.start, end=WEEK.end, as_of=AS_OF)
    assert got["owner_id"].tolist() == ["u2", "u1"]  # most revenue first; u3 did nothing in W39
    u1 = got.set_index("owner_id").loc["u1"]
    assert (u1["created"], u1["won"], u1["lost"], u1["closed"]) == (2, 2, 1, 3)
    assert u1["revenue_won"] == pytest.approx(1500.0) and u1["avg_deal_size"] == pytest.approx(750.0)
    assert u1["win_rate"] == pytest.approx(2 / 3)
    assert u1["win_rate_low"] == pytest.approx(wilson_by_hand(2, 3)[0])
    u2 = got.set_index("owner_id").loc["u2"]
    assert (u2["created"], u2["won"], u2["lost"], u2["revenue_won"]) == (1, 1, 0, 3000.0)


def test_close_ratio_counts_open_deals_as_not_won():
    start = t("2026-09-01")
    # created from 09-01: d1, d2, d3, d5, d6 (d4 and d7 earlier); won by as_of: d1, d5, d6
    r = close_ratio(DEALS, start=start, as_of=AS_OF)
    assert (r.successes, r.n) == (3, 5)
    by = close_ratio(DEALS, start=start, as_of=AS_OF, by="owner_id").set_index("owner_id")
    assert by.loc["u1", ["created", "won", "lost", "open"]].tolist() == [3, 2, 1, 0]
    assert by.loc["u2", ["created", "won", "lost", "open"]].tolist() == [2, 1, 0, 1]
    assert by.loc["u2", "close_ratio"] == pytest.approx(0.5)
    assert by.loc["u2", "close_ratio_high"] == pytest.approx(wilson_by_hand(1, 2)[1])


def test_cohort_win_rate_leaves_out_the_deals_still_open():
    # created from 09-01: d1 won, d2 lost, d3 open, d5 won, d6 won -> 3 won of 4 closed
    r = cohort_win_rate(DEALS, start=t("2026-09-01"), as_of=AS_OF)
    assert (r.successes, r.n) == (3, 4)
    assert r.low == pytest.approx(wilson_by_hand(3, 4)[0])


# ----------------------------------------------------------------------------- quota
def make_targets(rows):
    """rows: (owner, team, metric, period_start, period_end, target)."""
    return pd.DataFrame({
        "owner_id": pd.Series([r[0] for r in rows], dtype="str"),
        "team": pd.Series([r[1] for r in rows], dtype="str"),
        "metric": pd.Series([r[2] for r in rows], dtype="str"),
        "period_start": ts([r[3] for r in rows]),
        "period_end": ts([r[4] for r in rows]),
        "target": [float(r[5]) for r in rows],
    })


TARGETS = make_targets([
    ("u1", None, "revenue", "2026-09-01", "2026-09-30", 3000),
    ("u1", None, "revenue", "2026-07-01", "2026-09-30", 10000),  # the quarter: longer, not used
    ("u1", None, "won_deals", "2026-09-01", "2026-09-30", 4),
    ("u2", None, "revenue", "2026-09-01", "2026-09-30", 2000),
    ("u3", None, "revenue", "2026-08-01", "2026-08-31", 500),    # over before as_of
    (None, "A", "revenue", "2026-09-01", "2026-09-30", 99999),  # a team target
])


def test_quota_attainment_of_the_running_month_by_hand():
    got = quota_attainment(DEALS, TARGETS, as_of=AS_OF).set_index("owner_id")
    assert got.index.tolist() == ["u2", "u1"]  # highest attainment first; u3 and the team left out
    # u1: September wins before as_of d1 1000 + d6 500 = 1500 of 3000
    assert got.loc["u1", "actual"] == pytest.approx(1500.0)
    assert got.loc["u1", "attainment"] == pytest.approx(0.5)
    # u2: d5 3000 (d4 closes at as_of, so not yet) of 2000
    assert got.loc["u2", "attainment"] == pytest.approx(1.5)
    # working days of September 2026 before the 28th: 1-4, 7-11, 14-18, 21-25 = 19 of 22
    assert got.loc["u1", "elapsed_share"] == pytest.approx(19 / 22)


def test_quota_attainment_for_won_deals_and_names():
    users = pd.DataFrame({"user_id": pd.Series(["u1", "u2"], dtype="str"),
                          "name": pd.Series(["Ann <b>", "Bob"], dtype="str")})
    got = quota_attainment(DEALS, TARGETS, as_of=AS_OF, target_metric="won_deals", users=users)
    assert got["owner_id"].tolist() == ["u1"] and got.loc[0, "name"] == "Ann <b>"
    assert got.loc[0, "actual"] == 2 and got.loc[0, "attainment"] == pytest.approx(0.5)
    with pytest.raises(CrmConfigError, match="revenue or won_deals"):
        quota_attainment(DEALS, TARGETS, as_of=AS_OF, target_metric="calls")


def test_quota_attainment_reads_target_dates_as_the_days_written_after_a_timezone_change():
    # the export wrote 2026-09-01 and 2026-09-30 in UTC; loaded for New York they read
    # 2026-08-31 20:00 and 2026-09-29 20:00; the month is still 1 to 30 September, New York time
    ny = "America/New_York"
    targets = TARGETS.copy()
    for col in ("period_start", "period_end"):
        targets[col] = targets[col].dt.tz_localize(None).dt.tz_localize("UTC").dt.tz_convert(ny)
    deals = DEALS.copy()
    for col in ("created_at", "closed_at"):
        deals[col] = deals[col].dt.tz_convert(ny)
    as_of = pd.Timestamp("2026-09-28", tz=ny)
    got = quota_attainment(deals, targets, as_of=as_of).set_index("owner_id")
    assert got.loc["u1", "period_start"] == pd.Timestamp("2026-09-01", tz=ny)
    assert got.loc["u1", "period_end"] == pd.Timestamp("2026-09-30", tz=ny)
    assert got.loc["u1", "elapsed_share"] == pytest.approx(19 / 22)
    assert got.loc["u1", "attainment"] == pytest.approx(0.5)


def test_quota_attainment_without_a_running_target_is_empty():
    got = quota_attainment(DEALS, TARGETS, as_of=t("2027-01-05"))
    assert got.empty and "attainment" in got.columns


# ----------------------------------------------------------------------------- per owner
def test_owner_performance_joins_results_quota_and_activities_with_zeros(table_as):
    users = pd.DataFrame({"user_id": pd.Series(["u1", "u2", "u3"], dtype="str"),
                          "name": pd.Series(["Ann", "Bob", "Cy"], dtype="str"),
                          "team": pd.Series(["A", "A", "B"], dtype="str")})
    got = owner_performance(DEALS, period=WEEK, as_of=AS_OF, activities=table_as(ACTS, "activities"),
                            targets=TARGETS, users=users)
    assert got.columns[:3].tolist() == ["owner_id", "name", "team"]
    g = got.set_index("owner_id")
    assert g.loc["u1", ["won", "calls_done", "emails_done", "meetings_done", "meetings_scheduled"]].tolist() \
        == [2, 1, 1, 1, 1]
    assert g.loc["u1", "quota_attainment"] == pytest.approx(0.5)
    assert g.loc["u2", ["won", "tasks_done", "tasks_scheduled", "calls_done"]].tolist() == [1, 2, 1, 0]
    assert "u3" not in g.index  # nothing in W39, no running target


def test_owner_performance_with_deals_only():
    got = owner_performance(DEALS, period=WEEK, as_of=AS_OF)
    assert "calls_done" not in got.columns and "quota_attainment" not in got.columns
    assert got["owner_id"].tolist() == ["u2", "u1"]


# ----------------------------------------------------------------------------- rep-weeks
PANEL_AS_OF = pd.Timestamp("2026-03-02", tz=TZ)  # Monday: weeks up to 2026-W09 (Feb 23 - Mar 1) are complete
MONDAYS = ["2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23"]  # 2026-W06 .. W09
CALLS = {"r1": [30, 110, 30, 110], "r2": [110, 30, 110, 30]}


def panel_activities():
    rows = []
    for owner, per_week in CALLS.items():
        for monday, n in zip(MONDAYS, per_week):
            day = pd.Timestamp(monday)
            for i in range(n):  # spread over Monday to Friday
                when = day + pd.Timedelta(days=i % 5, hours=9, minutes=i % 50)
                rows.append((f"{owner}-{monday}-{i}", "call", owner, str(when), None, None))
    for i in range(5):  # r1 completes 5 meetings in 2026-W07
        rows.append((f"m{i}", "meeting", "r1", "2026-02-05", "2026-02-10 10:00", "2026-02-10 11:00"))
    rows.append(("m9", "meeting", "r1", "2026-02-05", "2026-02-12", None))  # not completed: not counted
    rows += [("f1", "call", "r3", "2026-02-03 10:00", None, None),  # a field rep with 2 calls a month
             ("f2", "call", "r3", "2026-02-04 10:00", None, None),
             ("late", "call", "r1", "2026-03-02 10:00", None, None)]  # after as_of, in an incomplete week
    return make_activities(rows)


# outcomes per rep-week (W = won, L = lost); <50-call weeks: 3 won of 12; 100-125: 6 won of 10
OUTCOMES = {("r1", "2026-02-02"): "WLL", ("r1", "2026-02-16"): "LLL", ("r2", "2026-02-09"): "WLL",
            ("r2", "2026-02-23"): "WLL", ("r1", "2026-02-09"): "WWL", ("r1", "2026-02-23"): "WL",
            ("r2", "2026-02-02"): "WWL", ("r2", "2026-02-16"): "WL"}


def panel_deals():
    rows = []
    for (owner, monday), results in OUTCOMES.items():
        for i, r in enumerate(results):
            closed = pd.Timestamp(monday) + pd.Timedelta(days=i, hours=15)
            rows.append((f"{owner}-{monday}-{i}", owner, "won" if r == "W" else "lost", "2026-01-05",
                         str(closed), 100.0))
    rows += [("x1", "r3", "won", "2026-01-05", "2026-02-10", 100.0),   # owner not in the panel
             ("x2", "r1", "won", "2026-01-05", "2026-03-02 09:00", 100.0),  # closes after as_of: open
             ("x3", "r1", "lost", "2026-01-05", "2026-01-30", 100.0)]   # before calls were logged
    return make_deals(rows)


def test_rep_week_panel_keeps_reps_who_work_the_phone_and_complete_weeks_since_the_first_call(table_as):
    panel = rep_week_activity(table_as(panel_activities(), "activities"), as_of=PANEL_AS_OF)
    assert sorted(panel["owner_id"].unique()) == ["r1", "r2"]  # r3 averages 0.5 calls a week
    assert panel["week"].unique().tolist() == ["2026-W06", "2026-W07", "2026-W08", "2026-W09"]
    r1 = panel[panel["owner_id"] == "r1"]
    assert r1["calls"].tolist() == CALLS["r1"]  # the call on Monday 2 March is after as_of
    assert r1["meetings"].tolist() == [0, 5, 0, 0]
    assert r1["week_start"].iloc[0] == t("2026-02-02")


def test_rep_week_panel_with_named_owners_and_a_zero_week(table_as):
    panel = rep_week_activity(table_as(panel_activities(), "activities"), as_of=PANEL_AS_OF, owners=["r3"], weeks=2)
    assert panel["week"].tolist() == ["2026-W08", "2026-W09"] and panel["calls"].tolist() == [0, 0]


def test_deals_are_matched_to_the_week_they_closed_in():
    panel = rep_week_activity(panel_activities(), as_of=PANEL_AS_OF)
    d = deals_with_week_activity(panel_deals(), panel, as_of=PANEL_AS_OF)
    assert len(d) == 22  # x1 (owner not in the panel), x2 (open at as_of), x3 (before the panel) out
    first = d[d["deal_id"] == "r1-2026-02-09-0"].iloc[0]
    assert (first["calls"], first["meetings"], bool(first["won"])) == (110, 5, True)
    out = rep_week_outcomes(panel_deals(), panel, as_of=PANEL_AS_OF).set_index(["owner_id", "week"])
    assert out.loc[("r1", "2026-W07"), ["closed", "won", "lost"]].tolist() == [3, 2, 1]
    assert out.loc[("r1", "2026-W07"), "revenue_won"] == pytest.approx(200.0)


def test_call_band_win_rates_split_by_meetings():
    panel = rep_week_activity(panel_activities(), as_of=PANEL_AS_OF)
    d = deals_with_week_activity(panel_deals(), panel, as_of=PANEL_AS_OF)
    bands = call_band_win_rates(d, min_meetings=5).set_index(["band", "meetings"])
    assert bands.loc[("<50", "all"), ["deals", "won"]].tolist() == [12, 3]
    assert bands.loc[("100-125", "all"), ["deals", "won"]].tolist() == [10, 6]
    # r1's 2026-W07 (5 meetings): W, W, L; the other 100-125 weeks: 4 won of 7
    assert bands.loc[("100-125", "at least 5"), ["deals", "won"]].tolist() == [3, 2]
    assert bands.loc[("100-125", "fewer 5"), ["deals", "won"]].tolist() == [7, 4]
    assert bands.loc[("50-74", "all"), "deals"] == 0 and np.isnan(bands.loc[("50-74", "all"), "win_rate"])
    assert bands.loc[("100-125", "all"), "win_rate_low"] == pytest.approx(wilson_by_hand(6, 10)[0])


def test_meetings_in_band_compares_two_win_rates_with_fishers_exact_test():
    panel = rep_week_activity(panel_activities(), as_of=PANEL_AS_OF)
    d = deals_with_week_activity(panel_deals(), panel, as_of=PANEL_AS_OF)
    c = meetings_in_band(d, calls_from=100, calls_to=126, min_meetings=5)
    # 100-125 band: r1's 2026-W07 (5 meetings) W, W, L; the other weeks 4 won, 3 lost
    assert c.band == "100-125"
    assert (c.many.successes, c.many.n, c.fewer.successes, c.fewer.n) == (2, 3, 4, 7)
    assert c.odds_ratio == pytest.approx((2 / 1) / (4 / 3))
    # Fisher: 6 wins among 10 deals, 3 of them in the many-meetings group; P(X = k) hypergeometric
    pk = {k: math.comb(3, k) * math.comb(7, 6 - k) / math.comb(10, 6) for k in range(0, 4)}
    p_two_sided = sum(v for v in pk.values() if v <= pk[2] * (1 + 1e-7))
    assert c.p_value == pytest.approx(p_two_sided)
    assert c.to_frame()["deals"].tolist() == [3, 7]
    empty = meetings_in_band(d, calls_from=150, calls_to=math.inf)
    assert empty.many.n == 0 and math.isnan(empty.p_value) and empty.band == "150+"


def test_activity_outcome_band_effect_is_the_hand_computed_log_odds_ratio():
    res = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF, min_meetings=6)
    assert isinstance(res, ActivityOutcome) and res.fitted
    assert res.bands["band"].tolist() == ["<50", "100-125"]  # bands without deals dropped
    assert res.reference_band == "<50" and res.best_band == "100-125"  # 12 deals vs 10
    assert res.owners == ("r1", "r2") and res.weeks == 4 and res.n_deals == 22
    # no week has 6 meetings: that term is left out, so the two-band logit is saturated and its
    # slope is the log odds ratio (6/4) / (3/9) = 4.5; intercept log(3/9)
    e = res.win_model.effect("calls 100-125")
    assert e["estimate"] == pytest.approx(math.log(4.5), abs=1e-6)
    assert res.win_model.effect("intercept")["estimate"] == pytest.approx(math.log(1 / 3), abs=1e-6)
    assert res.bands.set_index("band").loc["100-125", "model_win_rate"] == pytest.approx(0.6, abs=1e-6)
    assert res.win_model.n_groups == 2 and res.win_model.df_inference == 1
    assert any("meetings" in n for n in res.notes)
    # revenue per rep-week: 100 per win; <50 weeks 1, 0, 1, 1 wins (mean 75), 100-125 weeks 2, 1, 2, 1 (150)
    assert res.revenue_model.effect("calls 100-125")["estimate"] == pytest.approx(75.0)
    assert res.bands.set_index("band").loc["<50", "revenue_per_rep_week"] == pytest.approx(75.0)
    eff = res.effects()
    assert set(eff["model"]) == {"win rate", "win rate within reps", "revenue per rep-week"}
    assert not eff["term"].str.startswith("owner").any()
    assert res.best_band_meetings.band == "100-125" and res.best_band_meetings.fewer.n == 10


def test_activity_outcome_merges_a_sparse_band_and_keeps_the_meetings_term():
    res = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF, min_band_deals=11)
    # 100-125 has only 10 deals: merged with its one neighbour into a single band -> no comparison
    assert not res.fitted and res.bands["band"].tolist() == ["<126"]
    assert any("merged" in n for n in res.notes) and any("one call band" in n for n in res.notes)
    res = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF)
    assert "meetings >= 5" in set(res.win_model.terms["term"])


def test_activity_outcome_without_reps_who_call_says_why():
    acts = panel_activities()
    res = activity_outcome(panel_deals(), acts[acts["owner_id"] == "r3"], as_of=PANEL_AS_OF)
    assert not res.fitted and res.win_model is None and "too little data" in res.notes[0]
    assert res.effects().empty


# ----------------------------------------------------------------------------- narrative and plots of report 05
HOSTILE = "<script>alert(1)</script>[x](javascript:alert(1))"


def _inert(text):
    assert "<script>" not in text and "](javascript" not in text
    return text


def test_narratives_escape_owner_names_and_say_the_numbers():
    from crmlib import narrative

    users = pd.DataFrame({"user_id": pd.Series(["u1", "u2"], dtype="str"),
                          "name": pd.Series([HOSTILE, "Bob"], dtype="str")})
    perf = owner_performance(DEALS, period=WEEK, as_of=AS_OF, activities=ACTS, users=users)
    text = _inert(narrative.describe_owner_performance(perf, currency="EUR", label=WEEK.label,
                                                      next_label=WEEK.next().label))
    assert "Bob" in text and "€3,000" in text  # u2 won most: d5, 3,000
    assert "1 meeting" in text  # s1 is scheduled for W40
    q = quota_attainment(DEALS, TARGETS, as_of=AS_OF, users=users)
    text = _inert(narrative.describe_quota_attainment(q, currency="EUR"))
    assert "1 of 2 owners" in text and "**50%**" in text and "&lt;script&gt;" in text
    assert narrative.title_quota_attainment(q).endswith(f"{HOSTILE} at 50%")  # plain text for a plot
    cur = period_results(DEALS, start=WEEK.start, end=WEEK.end, as_of=AS_OF)
    text = narrative.describe_period_results(cur, cur, None, currency="EUR", label=WEEK.label)
    assert "**€4,500** from 3 deals" in text and "unchanged on the previous week" in text
    assert "75%" in text and "3 of 4" in text


def test_activity_outcome_narrative_states_significance_and_no_causation():
    from crmlib import narrative

    res = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF, min_meetings=6)
    text = narrative.describe_activity_outcome(res, currency="EUR")
    assert "100\\-125 calls were won 60%" in text and "4\\.5×" in text  # odds ratio 4.5
    assert "not proof of cause" in text and "twice the calls" in text
    assert "statistically significant" in text  # either way, said in words
    assert "With only 2 reps" in text
    failed = activity_outcome(panel_deals(), panel_activities()[lambda a: a["owner_id"] == "r3"],
                              as_of=PANEL_AS_OF)
    assert narrative.describe_activity_outcome(failed).startswith("Calls and meetings cannot be related")
    assert "Clearly different" in narrative.title_effects(res) or "No effect" in narrative.title_effects(res)


def test_plots_of_report_05_draw_the_data_with_a_title():
    import matplotlib.pyplot as plt

    from crmlib import plots

    res = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF, min_meetings=6)
    ax = plots.plot_call_band_win_rates(res.bands, best=res.best_band, reference=res.reference_band)
    assert len(ax.patches) == 2 and "100-125" in ax.get_title(loc="left")
    ax = plots.plot_effects(res.effects().query("model == 'win rate'"), title="t")
    assert ax.get_title(loc="left") == "t" and ax.get_xscale() == "log"
    mix = activity_mix(ACTS, periods=[WEEK.previous(), WEEK], as_of=AS_OF)
    ax = plots.plot_activity_mix(mix)
    # W39 holds 6 activities (see test_activity_mix_counts_each_type_per_period_with_shares)
    assert len(ax.patches) == 2 * 5 and "6 activities" in ax.get_title(loc="left")
    users = pd.DataFrame({"user_id": pd.Series(["u1", "u2"], dtype="str"),
                          "name": pd.Series(["$x$", "Bob"], dtype="str")})
    ax = plots.plot_quota_attainment(quota_attainment(DEALS, TARGETS, as_of=AS_OF, users=users))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Bob", "$x$"]  # no mathtext
    plt.close("all")


def test_activity_outcome_fits_the_within_rep_model_on_a_sample_of_reps_beyond_max_within_reps():
    """Thousands of reps would need a rows x reps design: beyond ``max_within_reps`` the
    within-rep model takes the deals of a seeded random sample of whole reps."""
    full = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF, min_meetings=6)
    assert not any("random sample" in n for n in full.notes)
    assert full.within_rep_model.n_obs == 22
    one = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF, min_meetings=6,
                           max_within_reps=1, seed=3)
    note = next(n for n in one.notes if "random sample" in n)
    assert "a random sample of 1 of the 2 reps" in note
    kept = int(note.split("(")[1].split(" deals")[0])
    per_rep = one.deals.groupby("owner_id").size()
    assert kept in set(per_rep)  # all the deals of one whole rep
    # the other models still use every rep
    assert one.win_model.n_obs == full.win_model.n_obs == 22
    assert one.win_model.effect("calls 100-125")["estimate"] == full.win_model.effect("calls 100-125")["estimate"]
    again = activity_outcome(panel_deals(), panel_activities(), as_of=PANEL_AS_OF, min_meetings=6,
                             max_within_reps=1, seed=3)
    assert [n for n in again.notes if "random sample" in n] == [note]
