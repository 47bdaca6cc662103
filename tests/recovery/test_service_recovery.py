"""Report 11 recovers what the sample planted (truth.json "service", "nps" and "csat").

The generator (crmlib.sample) plants
* SLA compliance of about 91% every week but one outage week whose tickets meet their
  SLA only 35% of the time (truth["service"]["sla_breach_week"]); its definition
  (truth["service"]["sla_definition"]): met = resolved_at <= sla_due_at, a ticket still
  unresolved at as_of counts as breached once its due date has passed and is left out
  before; week = ISO week of created_at. That is exactly service.sla_compliance's rule,
  so the weekly counts must agree exactly (up to the truth's 4-decimal rounding);
* one category ("integration") that five old customers open about ten times each,
  while every other account has at most one ticket of it;
* NPS answers drawn with a true promoter share of 45% and detractor share of 20%
  (true NPS +25), and CSAT after about 30% of resolved tickets.
"""

import pandas as pd
import pytest

from crmlib.metrics import service
from crmlib.periods import as_of_instant

ROUND4 = 0.5e-4  # the truth rounds shares to 4 decimals


@pytest.fixture(scope="module")
def as_of(truth):
    return as_of_instant(truth["as_of"], truth["timezone"])


@pytest.fixture(scope="module")
def tickets(sample_data):
    return sample_data.tables["tickets"]


@pytest.fixture(scope="module")
def surveys(sample_data):
    return sample_data.tables["surveys"]


def test_overall_sla_compliance_matches_the_planted_definition(tickets, as_of, truth):
    out = service.sla_compliance(tickets, as_of).iloc[0]
    # same definition as the generator, same rows (the audit quarantines only duplicate ticket ids)
    assert out["compliance"] == pytest.approx(truth["service"]["sla_compliance"], abs=ROUND4)
    # and the planted 91% lies inside the 95% Wilson interval
    assert out["compliance_low"] <= truth["service"]["sla_compliance_planted"] <= out["compliance_high"]


def test_breach_week_compliance_is_recovered_exactly(tickets, as_of, truth):
    weekly = service.sla_compliance(tickets, as_of, by="week").set_index("week")
    week = pd.Timestamp(truth["service"]["sla_breach_week"])
    assert weekly.loc[week, "compliance"] == pytest.approx(truth["service"]["sla_breach_week_compliance"], abs=ROUND4)
    others = weekly.drop(week)
    assert others.loc[others["judged"] > 0, "compliance"].min() == pytest.approx(
        truth["service"]["min_other_week_compliance"], abs=ROUND4)


def test_the_sla_alert_names_the_breach_week_and_only_it(tickets, as_of, truth):
    alerts = service.sla_breach_alerts(tickets, as_of)  # the notebook's defaults: 52 weeks, 8-week baseline
    flagged = alerts.loc[alerts["alert"], "week"].dt.strftime("%Y-%m-%d").tolist()
    assert flagged == [truth["service"]["sla_breach_week"]]
    # the rule had every ordinary week to choose from: a year of weeks was tested
    assert alerts["tested"].sum() >= 50


def test_the_recurring_category_and_its_accounts_are_recovered(tickets, as_of, truth):
    pairs = service.recurring_accounts(tickets, as_of)
    rec = pairs.loc[pairs["recurring"]]
    assert set(rec["category"]) == {truth["service"]["recurring_category"]}
    assert sorted(rec["account_id"]) == truth["service"]["recurring_accounts"]
    assert dict(zip(rec["account_id"], rec["tickets"])) == truth["service"]["recurring_tickets_per_account"]
    cats = service.recurring_categories(pairs, tickets, as_of)
    assert cats.iloc[0]["category"] == truth["service"]["recurring_category"]
    assert (cats["recurring_accounts"] > 0).sum() == 1


def test_nps_intervals_hold_the_planted_shares(surveys, as_of, truth):
    t = truth["nps"]
    r = service.net_promoter_score(surveys, as_of)
    assert r.n == t["answers"]
    # realised shares agree exactly (same answers), up to the truth's rounding
    assert r.promoter_share.estimate == pytest.approx(t["realised_promoter_share"], abs=ROUND4)
    assert r.detractor_share.estimate == pytest.approx(t["realised_detractor_share"], abs=ROUND4)
    # the planted (population) values lie inside the reported 95% intervals
    assert r.promoter_share.low <= t["promoter_share"] <= r.promoter_share.high
    assert r.detractor_share.low <= t["detractor_share"] <= r.detractor_share.high
    assert r.low <= t["true_nps"] <= r.high


def test_csat_uses_every_planted_answer(surveys, as_of, truth):
    p = service.csat_share(surveys, as_of)
    assert p.n == truth["csat"]["answers"]
    scores = surveys.loc[surveys["kind"] == "csat", "score"]
    assert scores.mean() == pytest.approx(truth["csat"]["mean_score"], abs=0.5e-3)


def test_breached_tickets_have_lower_csat(tickets, surveys, as_of):
    """The generator draws CSAT lower after an SLA breach: the share of 4-5 must be lower for breached tickets."""
    flags = service.sla_compliance(tickets.loc[tickets["ticket_id"].isin(surveys["ticket_id"])], as_of, by="ticket_id")
    met = set(flags.loc[flags["met"] == 1, "ticket_id"])
    cs = surveys.loc[surveys["kind"] == "csat"]
    good = service.csat_share(cs.loc[cs["ticket_id"].isin(met)], as_of)
    bad = service.csat_share(cs.loc[~cs["ticket_id"].isin(met)], as_of)
    assert bad.high < good.low
