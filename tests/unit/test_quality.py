import pandas as pd
import pytest

from crmlib.metrics.quality import (completeness_by_table, issues_by_check, quality_verdict,
                                    stale_contacts, worst_offenders)

COUNTS = pd.DataFrame([
    {"table": "deals", "source": "d", "input": 10, "kept": 8, "quarantined": 2, "flagged": 2, "score": 70.0},
    {"table": "leads", "source": "l", "input": 10, "kept": 10, "quarantined": 0, "flagged": 0, "score": 100.0},
    {"table": "all", "source": "", "input": 20, "kept": 18, "quarantined": 2, "flagged": 2, "score": 85.0},
])


def test_verdict_takes_the_overall_row_and_names_the_worst_table():
    v = quality_verdict(COUNTS)
    assert (v.score, v.input_rows, v.quarantined_rows, v.worst_table) == (85.0, 20, 2, "deals")
    assert v.conserved


def test_issues_by_check_counts_quarantined_and_flagged_separately():
    cols = ["table", "check", "source", "row", "reason"]
    q = pd.DataFrame([["deals", "future_date", "d.csv", 9, "late"], ["deals", "future_date", "d.csv", 4, "early"],
                      ["leads", "missing_key", "l.csv", 2, "no id"]], columns=cols)
    f = pd.DataFrame([["contacts", "invalid_email", "c.csv", 3, "bad"]], columns=cols)
    out = issues_by_check(q, f).set_index(["table", "check"])
    assert out.loc[("deals", "future_date"), "rows"] == 2
    assert out.loc[("contacts", "invalid_email"), "outcome"] == "flagged (kept)"
    assert "after the export" in out.loc[("deals", "future_date"), "meaning"]
    assert out.loc[("deals", "future_date"), "example"] == "d.csv row 4: early"  # the first row


def test_worst_offenders_show_one_row_of_each_problem_first():
    cols = ["table", "source", "row", "key", "check", "reason"]
    q = pd.DataFrame([["accounts", "a.csv", r, f"A{r}", "future_date", "x"] for r in range(2, 6)]
                     + [["deals", "d.csv", 9, "D9", "not_allowed", "status"]], columns=cols)
    f = pd.DataFrame([["contacts", "c.csv", 2, "C1", "invalid_email", "y"]], columns=cols)
    out = worst_offenders(q, f, n=3)
    assert out["key"].tolist() == ["A2", "D9", "C1"]  # one of each kind, quarantined first


def test_completeness_lists_columns_above_threshold():
    c = pd.DataFrame({"table": ["deals"] * 3, "column": ["a", "b", "c"], "present": [True, True, False],
                      "missing_share": [0.5, 0.1, 1.0]})
    assert completeness_by_table(c)["column"].tolist() == ["a"]


def test_stale_contacts_by_hand():
    as_of = pd.Timestamp("2024-07-01", tz="UTC")
    c = pd.DataFrame({"created_at": pd.to_datetime(["2022-01-01", "2024-01-01", "2020-01-01"], utc=True),
                      "updated_at": pd.to_datetime(["2023-01-01", None, "2024-06-01"], utc=True)})
    s = stale_contacts(c, as_of=as_of, months=12)
    assert (s.stale, s.total) == (1, 3) and s.share == pytest.approx(1 / 3)


# ---------------------------------------------------------------- quality as it stood, weekly drops
from crmlib.metrics.quality import quality_as_it_stood, quality_drops, weekly_problem_share  # noqa: E402

UTC = "UTC"


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz=UTC)


def test_quality_as_it_stood_leaves_out_the_rows_dated_in_the_window():
    # deals: 8 kept (6 dated before Sep 21, 2 in the week of Sep 21); 2 quarantined (one in that
    # week, one undated); 2 flagged (one in that week). Totals: 10 rows in, 2 q, 2 f.
    deals = pd.DataFrame({"created_at": [_ts("2026-09-01")] * 6 + [_ts("2026-09-22")] * 2})
    q = pd.DataFrame({"table": ["deals", "deals"], "row": [10, 11],
                      "dated_at": [_ts("2026-09-23"), pd.NaT]})
    f = pd.DataFrame({"table": ["deals", "deals"], "row": [2, 8], "dated_at": [_ts("2026-09-01"), _ts("2026-09-22")]})
    counts = pd.DataFrame([{"table": "deals", "input": 10, "kept": 8, "quarantined": 2, "flagged": 2},
                           {"table": "all", "input": 10, "kept": 8, "quarantined": 2, "flagged": 2}])
    as_of = _ts("2026-09-28")
    # whole export: 100 x (1 - (2 + 0.5 x 2) / 10) = 70
    assert quality_as_it_stood(counts, {"deals": deals}, q, f, before=as_of, as_of=as_of) == pytest.approx(70.0)
    # without the week of Sep 21 (2 kept, 1 quarantined, 1 flagged of them): rows 10 - 2 - 1 = 7,
    # quarantined 1, flagged 1: 100 x (1 - 1.5 / 7)
    before = _ts("2026-09-21")
    assert quality_as_it_stood(counts, {"deals": deals}, q, f, before=before, as_of=as_of) == \
        pytest.approx(100 * (1 - 1.5 / 7))


def _weekly_frames(bad_last_week: int):
    """12 weeks of 100 deal rows each (Mondays from 2026-07-06); 1 problem row a week, and
    ``bad_last_week`` problem rows in the last week (week of 2026-09-21)."""
    mondays = pd.date_range("2026-07-06", periods=12, freq="7D", tz=UTC)
    kept, q_dates = [], []
    for i, monday in enumerate(mondays):
        bad = bad_last_week if i == len(mondays) - 1 else 1
        kept += [monday + pd.Timedelta(hours=10)] * (100 - bad)
        q_dates += [monday + pd.Timedelta(hours=11)] * bad
    deals = pd.DataFrame({"created_at": kept})
    q = pd.DataFrame({"table": "deals", "row": range(len(q_dates)), "dated_at": q_dates})
    f = pd.DataFrame({"table": pd.Series(dtype=str), "row": pd.Series(dtype="int64"),
                      "dated_at": pd.Series(dtype="datetime64[us, UTC]")})
    return {"deals": deals}, q, f


def test_weekly_problem_share_counts_each_week_and_tests_it_against_the_weeks_before():
    tables, q, f = _weekly_frames(bad_last_week=12)
    weekly = weekly_problem_share(tables, q, f, as_of=_ts("2026-09-28"), weeks=4)
    last = weekly.iloc[-1]
    assert (str(last["week"].date()), last["n"], last["events"]) == ("2026-09-21", 100, 12)
    assert last["baseline_share"] == pytest.approx(8 / 800)  # the eight weeks before: 1 in 100 each
    from scipy.stats import binom
    p = binom.sf(11, 100, 0.01)  # P(X >= 12), X ~ Bin(100, 1%)
    assert last["p_value"] == pytest.approx(p)
    drops = quality_drops(weekly, alpha=0.05, min_points=2.0)
    assert drops["week"].dt.date.astype(str).tolist() == ["2026-09-21"]


def test_an_ordinary_week_is_not_a_drop_and_a_small_rise_is_not_material():
    tables, q, f = _weekly_frames(bad_last_week=1)
    assert quality_drops(weekly_problem_share(tables, q, f, as_of=_ts("2026-09-28"), weeks=4)).empty
    tables, q, f = _weekly_frames(bad_last_week=12)
    weekly = weekly_problem_share(tables, q, f, as_of=_ts("2026-09-28"), weeks=4)
    assert quality_drops(weekly, min_points=15.0).empty  # 12% vs 1%: significant, but under 15 points
