"""Unit tests of crmlib.metrics.service (report 11) on tiny frames computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from crmlib import narrative
from crmlib.errors import CrmConfigError
from crmlib.metrics import service

AS_OF = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday midnight: week of 2026-02-23 is the last complete one
TS = "datetime64[us, UTC]"


def ts(*values):
    return pd.Series(pd.to_datetime(list(values), utc=True), dtype=TS)


def tickets(rows):
    """rows: (id, account, created, first_response, resolved, sla_due, priority, category, agent, reopened)."""
    cols = ["ticket_id", "account_id", "created_at", "first_response_at", "resolved_at", "sla_due_at", "priority",
            "category", "agent_id", "reopened"]
    f = pd.DataFrame(rows, columns=cols)
    for c in ("created_at", "first_response_at", "resolved_at", "sla_due_at"):
        f[c] = pd.to_datetime(f[c], utc=True).astype(TS)
    for c in ("ticket_id", "account_id", "priority", "category", "agent_id"):
        f[c] = f[c].astype("str")
    f["reopened"] = f["reopened"].astype("boolean")
    f["status"] = np.where(f["resolved_at"].notna(), "solved", "open")
    f["channel"] = "email"
    return f


@pytest.fixture
def small():
    return tickets([
        # met: resolved 2h after creation, due in 24h; same day
        ("T1", "A", "2026-02-23 09:00", "2026-02-23 10:00", "2026-02-23 11:00", "2026-02-24 09:00", "high", "bug", "U1", False),
        # breached: resolved after due
        ("T2", "A", "2026-02-24 09:00", "2026-02-24 13:00", "2026-02-26 09:00", "2026-02-25 09:00", "high", "bug", "U1", True),
        # open past due at as_of: breached, censored
        ("T3", "B", "2026-02-25 09:00", None, None, "2026-02-26 09:00", "normal", "login", "U2", None),
        # open, not yet due: pending
        ("T4", "B", "2026-03-01 12:00", "2026-03-01 14:00", None, "2026-03-04 12:00", "low", "login", "U2", None),
        # resolved after as_of: still open at as_of, due passed -> breached
        ("T5", "C", "2026-02-26 09:00", "2026-02-26 10:00", "2026-03-05 09:00", "2026-02-27 09:00", "normal", "bug", "U1", False),
        # created after as_of: ignored
        ("T6", "C", "2026-03-03 09:00", None, None, "2026-03-04 09:00", "normal", "bug", "U1", None),
    ])


def test_sla_compliance_counts_open_tickets_past_due_as_breaches_and_leaves_pending_out(small):
    out = service.sla_compliance(small, AS_OF).iloc[0]
    # T1 met; T2 late, T3 open past due, T5 resolved after as_of past due -> 3 breached; T4 pending
    assert (out["tickets"], out["judged"], out["met"], out["breached"], out["breached_open"], out["pending"]) \
        == (5, 4, 1, 3, 2, 1)
    assert out["compliance"] == pytest.approx(0.25)
    assert out["compliance_low"] < 0.25 < out["compliance_high"]


def test_sla_compliance_by_priority(small):
    out = service.sla_compliance(small, AS_OF, by="priority").set_index("priority")
    assert out.loc["high", "met"] == 1 and out.loc["high", "judged"] == 2
    assert out.loc["low", "judged"] == 0 and math.isnan(out.loc["low", "compliance"])


def test_service_times_censor_open_tickets_at_as_of():
    # three tickets created at midnight of 2026-03-01: resolved after 2h and 4h, one still open (24h at as_of)
    f = tickets([
        ("T1", "A", "2026-03-01 00:00", "2026-03-01 01:00", "2026-03-01 02:00", None, "high", "bug", "U1", False),
        ("T2", "A", "2026-03-01 00:00", "2026-03-01 01:00", "2026-03-01 04:00", None, "high", "bug", "U1", False),
        ("T3", "A", "2026-03-01 00:00", "2026-03-01 03:00", None, None, "high", "bug", "U1", None),
    ])
    out = service.service_times(f, AS_OF).iloc[0]
    assert out["tickets"] == 3 and out["resolved"] == 2 and out["open"] == 1 and out["responded"] == 3
    # KM: S(2h) = 2/3, S(4h) = 1/3 -> median 4h (a plain median of resolved tickets would say 3h)
    assert out["resolution_median_h"] == pytest.approx(4.0)
    # S never drops below 0.1 (the open ticket is censored at 24h): p90 not reached
    assert math.isnan(out["resolution_p90_h"])
    # first response 1h, 1h, 3h: S(1h) = 1/3 -> median 1h; p90: S(3h) = 0 -> 3h
    assert out["first_response_median_h"] == pytest.approx(1.0)
    assert out["first_response_p90_h"] == pytest.approx(3.0)


def test_same_day_share_counts_open_tickets_in_the_denominator(small):
    out = service.same_day_share(small, AS_OF).iloc[0]
    assert (out["tickets"], out["same_day"]) == (5, 1)  # only T1 closed the day it opened
    assert out["share"] == pytest.approx(0.2)


def test_reopened_share_over_resolved_tickets(small):
    out = service.reopened_share(small, AS_OF).iloc[0]
    # resolved before as_of: T1 (no), T2 (yes); T5 resolves after as_of
    assert (out["resolved"], out["reopened"], out["unknown"]) == (2, 1, 0)
    assert out["share"] == pytest.approx(0.5)


def test_ticket_flow_opened_closed_and_backlog_per_week(small):
    out = service.ticket_flow(small, AS_OF, start=pd.Timestamp("2026-02-16", tz="UTC"))
    assert out["period"].tolist() == ["2026-W08", "2026-W09"]
    w9 = out.iloc[1]
    # week of 02-23: T1..T5 opened, T1 and T2 closed, T3 T4 T5 open at the end (T5 resolves after as_of)
    assert (w9["opened"], w9["closed"], w9["backlog"]) == (5, 2, 3)
    assert tuple(out.iloc[0][["opened", "closed", "backlog"]]) == (0, 0, 0)


def test_agent_load_counts_tickets_and_open_now(small):
    users = pd.DataFrame({"user_id": ["U1", "U2"], "name": ["Ann <b>", "Bo"]})
    out = service.agent_load(small, AS_OF, users=users).set_index("agent_id")
    assert out.loc["U1", "tickets"] == 3 and out.loc["U1", "open_now"] == 1  # T5 open at as_of
    assert out.loc["U2", "tickets"] == 2 and out.loc["U2", "open_now"] == 2
    assert out.loc["U1", "met"] == 1 and out.loc["U1", "judged"] == 3
    assert out.loc["U1", "name"] == "Ann <b>"


def test_service_times_per_agent_take_each_agents_own_waits(small):
    """Each agent's curves come from that agent's tickets only (hours written out by hand,
    open tickets censored at as_of), a ticket without an agent is its own group, and a
    categorical agent column (as a large snapshot reads it) groups the same way."""
    from crmlib.stats.survival import kaplan_meier

    extra = tickets([("T7", "D", "2026-02-27 09:00", "2026-02-27 09:30", None, "2026-02-28 09:00", "low", "bug",
                      None, None)])
    t = pd.concat([small, extra], ignore_index=True)
    waits = {  # agent: (first-response hours, answered), (resolution hours, resolved)
        "U1": (([1, 4, 1], [1, 1, 1]), ([2, 48, 87], [1, 1, 0])),  # T5 resolved after as_of
        "U2": (([111, 2], [0, 1]), ([111, 12], [0, 0])),
        None: (([0.5], [1]), ([63], [0])),
    }
    cat = t.assign(agent_id=pd.Categorical(t["agent_id"], categories=["U9", "U2", "U1"]))
    for frame, order in ((t, ["U1", "U2", None]), (cat, ["U2", "U1", None])):
        out = service.service_times(frame, AS_OF, by="agent_id")
        agents = [None if pd.isna(a) else a for a in out["agent_id"]]
        assert agents == order
        for agent, row in zip(agents, out.itertuples(index=False), strict=True):
            (fh, fe), (rh, re) = waits[agent]
            fr, rs = kaplan_meier(fh, np.array(fe, bool)), kaplan_meier(rh, np.array(re, bool))
            assert row.tickets == len(fh) and row.responded == sum(fe) and row.resolved == sum(re)
            for got, want in ((row.first_response_median_h, fr.median), (row.first_response_high_h, fr.median_high),
                              (row.first_response_p90_h, fr.quantile(0.9)), (row.resolution_median_h, rs.median)):
                assert got == pytest.approx(want, nan_ok=True)


def _weekly_tickets(weeks_met):
    """One ticket per (week, k) with judged outcome; weeks_met: list of (monday, judged, met)."""
    rows = []
    n = 0
    for monday, judged, met in weeks_met:
        for k in range(judged):
            n += 1
            created = pd.Timestamp(monday) + pd.Timedelta(hours=9)
            due = created + pd.Timedelta(hours=24)
            resolved = created + pd.Timedelta(hours=2 if k < met else 30)
            rows.append((f"T{n}", "A", str(created), str(created), str(resolved), str(due), "high", "bug", "U1", False))
    return tickets(rows)


def test_sla_breach_alert_flags_only_the_collapsed_week():
    mondays = pd.date_range("2026-01-05", "2026-02-23", freq="7D")
    spec = [(m, 20, 18) for m in mondays]  # 90% every week ...
    spec[-2] = (mondays[-2], 20, 6)          # ... but the week of 02-16: 30%
    out = service.sla_breach_alerts(_weekly_tickets(spec), AS_OF, weeks=4, baseline_weeks=4, min_baseline_weeks=2)
    assert out["week"].dt.strftime("%Y-%m-%d").tolist() == ["2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23"]
    assert out["alert"].tolist() == [False, False, True, False]
    row = out.iloc[2]
    assert row["baseline_judged"] == 80 and row["baseline_met"] == 72
    # P(X <= 6) for X ~ Binomial(20, 0.9), times 4 weeks tested at most (Holm)
    from scipy.stats import binom
    assert row["p_value"] == pytest.approx(binom.cdf(6, 20, 0.9))
    assert row["gap"] == pytest.approx(0.9 - 0.3)


def test_sla_breach_alert_needs_a_material_gap():
    mondays = pd.date_range("2026-01-05", "2026-02-23", freq="7D")
    spec = [(m, 400, 380) for m in mondays]
    spec[-2] = (mondays[-2], 400, 340)  # 85% vs 95%: significant with 400 tickets but only 10 points
    out = service.sla_breach_alerts(_weekly_tickets(spec), AS_OF, weeks=4, baseline_weeks=4, min_baseline_weeks=2)
    assert out.loc[2, "p_adjusted"] < 0.05
    assert not out["alert"].any()


def test_sla_breach_alerts_rejects_a_bad_method(small):
    with pytest.raises(CrmConfigError):
        service.sla_breach_alerts(small, AS_OF, method="fdr")


def test_recurring_accounts_flags_the_account_that_keeps_opening_one_category():
    rows = []
    # account R: 6 "sync" tickets of 7; 20 other accounts: 3 tickets each of varied categories, one sync among them
    for k in range(6):
        rows.append((f"R{k}", "R", f"2025-0{k + 1}-05 10:00", None, "2025-12-01", None, "low", "sync", "U1", False))
    rows.append(("R9", "R", "2025-08-05 10:00", None, "2025-12-01", None, "low", "billing", "U1", False))
    cats = ["billing", "bug", "how-to"]
    for a in range(20):
        for k in range(3):
            cat = "sync" if (a == 0 and k == 0) else cats[(a + k) % 3]
            rows.append((f"O{a}-{k}", f"A{a}", f"2025-0{k + 1}-10 10:00", None, "2025-12-01", None, "low", cat, "U1", False))
    f = tickets(rows)
    pairs = service.recurring_accounts(f, AS_OF, min_tickets=3)
    rec = pairs.loc[pairs["recurring"]]
    assert rec[["account_id", "category"]].values.tolist() == [["R", "sync"]]
    p_sync = 7 / 67  # 6 + 1 sync tickets of 67
    from scipy.stats import binom
    top = pairs.iloc[0]
    assert top["category_share"] == pytest.approx(p_sync)
    assert top["p_value"] == pytest.approx(binom.sf(5, 7, p_sync))
    assert top["expected"] == pytest.approx(7 * p_sync)
    cats_out = service.recurring_categories(pairs, f, AS_OF)
    first = cats_out.iloc[0]
    assert (first["category"], first["tickets"], first["recurring_accounts"], first["recurring_tickets"]) == ("sync", 7, 1, 6)
    assert first["recurring_share"] == pytest.approx(6 / 7)


def surveys(rows):
    f = pd.DataFrame(rows, columns=["survey_id", "account_id", "kind", "score", "answered_at"])
    f["answered_at"] = pd.to_datetime(f["answered_at"], utc=True).astype(TS)
    f["score"] = f["score"].astype("float64")
    f["ticket_id"] = pd.Series([None] * len(f), dtype="str")
    return f


def test_net_promoter_score_and_its_interval_by_hand():
    scores = [10, 9, 9, 8, 7, 6, 0, 10, 9, 5]  # 5 promoters, 2 passives, 3 detractors
    f = surveys([(f"S{i}", "A", "nps", s, "2026-02-01") for i, s in enumerate(scores)]
                + [("S99", "A", "nps", 0, "2026-03-05")])  # after as_of: ignored
    r = service.net_promoter_score(f, AS_OF)
    assert (r.n, r.promoters, r.passives, r.detractors) == (10, 5, 2, 3)
    assert r.nps == pytest.approx(20.0)
    # Var(p+ - p-) = (0.5 + 0.3 - 0.2^2) / 10 = 0.076
    half = 1.959964 * math.sqrt(0.076) * 100
    assert (r.low, r.high) == (pytest.approx(20 - half, abs=1e-3), pytest.approx(20 + half, abs=1e-3))
    assert r.se == pytest.approx(100 * math.sqrt(0.076))
    assert r.promoter_share.successes == 5 and r.detractor_share.successes == 3
    assert r.to_frame().loc[0, "answers"] == 10


def test_net_promoter_score_without_answers_is_nan_not_zero():
    f = surveys([("S1", "A", "csat", 5, "2026-02-01")])
    r = service.net_promoter_score(f, AS_OF)
    assert r.n == 0 and math.isnan(r.nps)


def test_csat_share_counts_4_and_5():
    f = surveys([("S1", "A", "csat", 5, "2026-02-01"), ("S2", "A", "csat", 4, "2026-02-01"),
                 ("S3", "A", "csat", 3, "2026-02-01"), ("S4", "A", "csat", 1, "2026-02-01"),
                 ("S5", "A", "nps", 10, "2026-02-01")])
    p = service.csat_share(f, AS_OF)
    assert (p.successes, p.n) == (2, 4)


def test_satisfaction_trend_per_month():
    f = surveys([("S1", "A", "nps", 10, "2026-01-10"), ("S2", "A", "nps", 0, "2026-01-11"),
                 ("S3", "A", "nps", 9, "2026-02-10"), ("S4", "A", "csat", 5, "2026-02-10")])
    out = service.satisfaction_trend(f, AS_OF, start=pd.Timestamp("2026-01-01", tz="UTC"), period="month")
    assert out["period"].tolist() == ["2026-01", "2026-02", "2026-03"]
    assert out["nps"].iloc[0] == pytest.approx(0.0) and out["nps"].iloc[1] == pytest.approx(100.0)
    assert out["csat_answers"].tolist() == [0, 1, 0] and out["csat"].iloc[1] == 1.0


def orders(rows):
    f = pd.DataFrame(rows, columns=["order_id", "account_id", "ordered_at", "revenue"])
    f["ordered_at"] = pd.to_datetime(f["ordered_at"], utc=True).astype(TS)
    return f


def test_ticket_account_churn_and_churn_by_tickets(small):
    o = orders([("O1", "A", "2025-01-10", 100.0),   # A: customer, last order long ago -> churned, has tickets
                ("O2", "B", "2025-01-10", 100.0), ("O3", "B", "2026-02-01", 50.0),  # B: active, has tickets
                ("O4", "D", "2025-02-10", 10.0),    # D: churned, no tickets
                ("O5", "E", "2026-02-20", 10.0)])   # E: too new to judge
    c = service.ticket_account_churn(small, o, AS_OF, inactive_days=180)
    assert c["account_id"].tolist() == ["A", "B", "D"]
    assert c["churned"].tolist() == [True, False, True]
    assert c["tickets"].tolist() == [2, 2, 0]
    s = service.churn_by_tickets(c).set_index("group")
    assert (s.loc["with tickets", "customers"], s.loc["with tickets", "churned"]) == (2, 1)
    assert (s.loc["without tickets", "customers"], s.loc["without tickets", "churned"]) == (1, 1)


def test_tickets_by_customer_value_puts_the_most_valuable_customer_first(small):
    value = pd.DataFrame({"account_id": ["B", "C", "A"], "revenue": [900.0, 500.0, 100.0], "rank": [1, 2, 3],
                          "abc_class": ["A", "B", "C"]})
    q = service.tickets_by_customer_value(small, AS_OF, value=value)
    # open at as_of: T3 (B, overdue), T4 (B, pending), T5 (C, resolved after as_of, overdue)
    assert q["ticket_id"].tolist() == ["T3", "T4", "T5"]
    assert q["overdue"].tolist() == [True, False, True]
    assert q["sla"].tolist() == ["breached", "pending", "breached"]
    assert q["customer_rank"].tolist() == [1, 1, 2]
    everything = service.tickets_by_customer_value(small, AS_OF, value=value, open_only=False)
    assert everything["ticket_id"].tolist() == ["T3", "T4", "T5", "T1", "T2"]
    assert everything.set_index("ticket_id").loc["T1", "sla"] == "met"
    nothing = service.tickets_by_customer_value(small, AS_OF)
    assert nothing["ticket_id"].tolist() == ["T3", "T5", "T4"]  # by due date alone
    assert nothing["customer_value"].isna().all()


def test_narratives_escape_hostile_names(small):
    evil = small.assign(category="<script>x</script>", agent_id="[x](javascript:alert(1))")
    pairs = service.recurring_accounts(evil, AS_OF, min_tickets=1)
    text = narrative.describe_recurring(service.recurring_categories(pairs, evil, AS_OF), pairs, min_tickets=1)
    assert "<script>" not in text
    users = pd.DataFrame({"user_id": ["[x](javascript:alert(1))"], "name": ["<img src=x onerror=alert(1)>"]})
    text = narrative.describe_agent_load(service.agent_load(evil, AS_OF, users=users), min_tickets=1)
    assert "<img" not in text and "](javascript" not in text


def test_sla_narrative_and_alert_text():
    mondays = pd.date_range("2026-01-05", "2026-02-23", freq="7D")
    spec = [(m, 20, 18) for m in mondays]
    spec[-2] = (mondays[-2], 20, 6)
    alerts = service.sla_breach_alerts(_weekly_tickets(spec), AS_OF, weeks=4, baseline_weeks=4, min_baseline_weeks=2)
    assert narrative.sla_alert_text(alerts) == "SLA breach week: week of 2026-02-16: 30% on time (6 of 20, baseline 90%)"
    assert "2026\\-02\\-16" in narrative.describe_sla_alerts(alerts)
    assert narrative.sla_alert_text(alerts.assign(alert=False)) == ""


def test_plot_sla_weeks_highlights_the_alerted_week_and_states_the_finding():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crmlib import plots

    mondays = pd.date_range("2026-01-05", "2026-02-23", freq="7D")
    spec = [(m, 20, 18) for m in mondays]
    spec[-2] = (mondays[-2], 20, 6)
    alerts = service.sla_breach_alerts(_weekly_tickets(spec), AS_OF, weeks=4, baseline_weeks=4, min_baseline_weeks=2)
    ax = plots.plot_sla_weeks(alerts, min_gap=0.2)
    try:
        bars = ax.patches
        assert len(bars) == 4
        assert [b.get_height() for b in bars] == pytest.approx([0.9, 0.9, 0.3, 0.9])
        assert bars[2].get_facecolor() != bars[0].get_facecolor()
        assert ax.get_title(loc="left") == "1 week with an SLA breach"
        assert any(line.get_gid() == "min-gap" for line in ax.lines)
    finally:
        plt.close(ax.figure)
