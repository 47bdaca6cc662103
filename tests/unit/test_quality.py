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
