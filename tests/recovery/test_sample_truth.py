"""The planted facts of the sample CRM are really in its CSV files.

One default sample is written once (module fixture) and read back as plain text; every
check below recomputes a fact with independent pandas code and compares it with the
*planted parameter* (never with a number copied from the generator's output). The truth
file is used only for what it defines: which rows are planted dirt (to drop the
quarantined ones), the as_of instant, and the names of planted entities (the bad week,
the off-pace owners...), which the data must then confirm.

Tolerances are stated per test; the sample is seeded, so a pass is reproducible.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.numdiff import approx_hess3

from crmlib.sample import load_truth, write_sample

TS = "%Y-%m-%d %H:%M:%S"
DAY = pd.Timedelta(days=1)
EMAIL_RE = r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
PHONE_RE = r"^\+?[0-9 ()./-]{7,20}$"
TABLES = ("users", "accounts", "contacts", "leads", "deals", "stage_history", "stages", "activities",
          "orders", "campaigns", "tickets", "surveys", "targets", "fx_rates")


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    write_sample(folder)
    truth = load_truth(folder)
    raw = {t: pd.read_csv(folder / f"{t}.csv", dtype=str, keep_default_na=False) for t in TABLES}
    return folder, truth, raw


@pytest.fixture(scope="module")
def truth(sample):
    return sample[1]


@pytest.fixture(scope="module")
def raw(sample):
    return sample[2]


@pytest.fixture(scope="module")
def clean(raw, truth):
    """The tables without the planted quarantine rows (flagged rows stay), with parsed types."""
    drop = {}
    for r in truth["dirty"]["rows"]:
        if r["outcome"] == "quarantine":
            drop.setdefault(r["table"], []).append(r["row_index"])
    out = {}
    for t, df in raw.items():
        df = df.drop(index=drop.get(t, [])).reset_index(drop=True)
        out[t] = _typed(df)
    return out


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in df.columns:
        if col.endswith("_at") or col in ("date", "period_start", "period_end"):
            v = df[col].replace("", None)
            fmt = "%Y-%m-%d" if v.dropna().str.len().max() == 10 else TS
            df[col] = pd.to_datetime(v, format=fmt)
        elif col in ("amount", "revenue", "cost", "spend", "impressions", "clicks", "sends", "opens",
                     "bounces", "score", "target", "rate_to_reporting", "duration_s", "probability",
                     "quantity"):
            df[col] = pd.to_numeric(df[col].replace("", None))
    return df


@pytest.fixture(scope="module")
def as_of_end(truth):
    return pd.Timestamp(truth["as_of"]) + DAY


@pytest.fixture(scope="module")
def deals(clean, as_of_end):
    """Deals with their EUR value (USD at the latest rate dated on or before created_at)."""
    d = clean["deals"].copy()
    fx = clean["fx_rates"].sort_values("date")
    d = d.sort_values("created_at")
    d = pd.merge_asof(d, fx[["currency", "date", "rate_to_reporting"]], left_on="created_at",
                      right_on="date", by="currency", direction="backward")
    d["eur"] = d["amount"] * d["rate_to_reporting"].where(d["currency"] != "EUR", 1.0)
    d["state"] = np.where(d["closed_at"].notna() & (d["closed_at"] < as_of_end), d["status"], "open")
    return d.set_index("deal_id", drop=False)


@pytest.fixture(scope="module")
def history(clean, as_of_end):
    """Stage visits: entered_at, the next entry (left_at) and the days spent, per deal."""
    h = clean["stage_history"]
    h = h[h["entered_at"] < as_of_end].sort_values(["deal_id", "entered_at"]).copy()
    nxt = h.groupby("deal_id")["entered_at"].shift(-1)
    h["days"] = (nxt - h["entered_at"]) / DAY
    return h


@pytest.fixture(scope="module")
def norms(history):
    done = history[history["days"].notna() & ~history["stage"].str.startswith("Closed")]
    return done.groupby("stage")["days"].quantile(0.9)


@pytest.fixture(scope="module")
def open_deals(deals, history, as_of_end):
    cur = history.groupby("deal_id").tail(1).set_index("deal_id")
    o = deals[deals["state"] == "open"].copy()
    o["stage_now"] = cur["stage"].reindex(o.index)
    o["days_in_stage"] = (as_of_end - cur["entered_at"].reindex(o.index)) / DAY
    return o


# ---------------------------------------------------------------- 1. lead sources
def _lead_won(clean, deals):
    leads = clean["leads"]
    won = leads["deal_id"].map(deals["state"]).eq("won")
    return leads, won


@pytest.mark.parametrize("source,rate,min_leads", [("email", 0.17, 600), ("paid_ads", 0.03, 1000)])
def test_lead_to_won_rate_contains_the_planted_rate_in_its_wilson_interval(clean, deals, source, rate, min_leads):
    leads, won = _lead_won(clean, deals)
    mine = leads["source"] == source
    n, k = int(mine.sum()), int((won & mine).sum())
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert n >= min_leads
    assert lo <= rate <= hi, (source, k, n, lo, hi)
    assert hi - lo < 0.07  # informative: narrower than 7 points


def test_email_leads_convert_far_better_than_paid_ads(clean, deals):
    leads, won = _lead_won(clean, deals)
    rate = won.groupby(leads["source"]).mean()
    assert rate["email"] > 3 * rate["paid_ads"]


def test_organic_is_sixty_percent_of_leads(clean):
    share = (clean["leads"]["source"] == "organic").mean()
    assert share == pytest.approx(0.60, abs=0.01)


def test_organic_deals_are_about_fifteen_percent_smaller(deals):
    org = deals["source"] == "organic"
    ratio = deals.loc[org, "eur"].mean() / deals.loc[~org, "eur"].mean()
    assert ratio == pytest.approx(0.85, abs=0.03)  # planted 0.85 (calibrated on the EUR mean)


def test_referral_deals_close_about_thirty_percent_faster(deals):
    won = deals[deals["state"] == "won"]
    cycle = (won["closed_at"] - won["created_at"]) / DAY
    ref = won["source"] == "referral"
    ratio = cycle[ref].median() / cycle[~ref].median()
    assert ratio == pytest.approx(0.70, abs=0.05)


def test_deals_without_a_lead_are_outbound(clean):
    d, leads = clean["deals"], clean["leads"]
    no_lead = ~d["deal_id"].isin(leads["deal_id"])
    assert set(d.loc[no_lead, "source"]) == {"outbound"}
    assert (d.loc[~no_lead, "source"] != "outbound").all()


# ---------------------------------------------------------------- 2. pipeline
def test_invoice_deal_of_200000_eur_stuck_ten_days_in_invoicing(open_deals, norms, truth):
    big = open_deals[(open_deals["amount"] == 200000) & (open_deals["currency"] == "EUR")]
    assert len(big) == 1
    deal = big.iloc[0]
    assert deal["stage_now"] == deal["stage"] == "Invoicing"
    assert deal["days_in_stage"] == pytest.approx(10.0, abs=1e-6)
    assert 3.0 <= norms["Invoicing"] <= 4.5  # invoicing normally takes 3-4 days
    assert deal["deal_id"] == truth["pipeline"]["invoice_deal"]["deal_id"]


def test_stalled_deals_are_exactly_the_named_ones_and_clearly_stalled(open_deals, norms, truth):
    norm = open_deals["stage_now"].map(norms)
    over = open_deals["days_in_stage"] / norm
    stalled = set(open_deals.index[over > 1])
    assert stalled == set(truth["pipeline"]["stalled_deal_ids"])
    assert len(stalled) >= 5
    assert over[list(stalled)].min() >= 1.8  # planted at 2-4 x the stage p90
    # the other open deals were planted below their stage's p75 (lognormal median, sigma)
    st = truth["stages"]
    p75 = open_deals["stage_now"].map(lambda s: st[s]["median_days"] * math.exp(0.6745 * st[s]["sigma"]))
    normal = open_deals.drop(list(stalled))
    assert (normal["days_in_stage"] < p75.drop(list(stalled))).all()


def test_stage_at_as_of_matches_the_deals_table(open_deals):
    assert (open_deals["stage_now"] == open_deals["stage"]).all()


def test_one_owner_carries_about_sixty_open_deals_and_everyone_else_at_most_forty(open_deals):
    load = open_deals.groupby("owner_id").size()
    over = load[load > 50]
    assert len(over) == 1
    assert 55 <= over.iloc[0] <= 65
    assert load.drop(over.index).max() <= 40


def test_task_coverage_of_open_deals(clean, open_deals, as_of_end, truth):
    a = clean["activities"]
    open_task = (a["type"].isin(["task", "meeting"]) & a["due_at"].notna() & (a["created_at"] < as_of_end)
                 & (a["completed_at"].isna() | (a["completed_at"] >= as_of_end)))
    t = a[open_task]
    nxt = set(t.loc[t["due_at"] >= as_of_end, "deal_id"])
    over = set(t.loc[t["due_at"] < as_of_end, "deal_id"])
    ids = set(open_deals.index)
    without = ids - nxt
    overdue = ids & over
    assert sorted(without) == truth["pipeline"]["deal_ids_without_next_task"]
    assert sorted(overdue) == truth["pipeline"]["deal_ids_with_overdue_task"]
    assert 0.2 <= len(without) / len(ids) <= 0.45  # planted: 28% of normal deals + all stalled ones
    assert 0.1 <= len(overdue) / len(ids) <= 0.35
    assert truth["pipeline"]["invoice_deal"]["deal_id"] in overdue


def test_weighted_pipeline_uses_the_stage_probabilities(clean, open_deals, truth):
    prob = clean["stages"].set_index("stage")["probability"]
    weighted = (open_deals["eur"] * open_deals["stage_now"].map(prob)).sum()
    assert weighted == pytest.approx(truth["pipeline"]["weighted_value_eur"], rel=1e-6)


# ---------------------------------------------------------------- 3. bookings
def test_bookings_follow_the_planted_trend_and_seasonality(deals, truth):
    won = deals[deals["state"] == "won"]
    monthly = won.groupby(won["closed_at"].dt.to_period("M"))["eur"].sum()
    monthly = monthly[monthly.index >= pd.Period("2023-11", "M")]  # full months only
    monthly = monthly[monthly.index <= pd.Period("2026-08", "M")]
    season = {int(k): v for k, v in truth["bookings"]["seasonal_factors_by_month"].items()}
    factor = np.array([season[p.month] for p in monthly.index])
    start = pd.Timestamp(truth["bookings"]["history_start"])
    years = np.array([((p.start_time + (p.end_time - p.start_time) / 2) - start) / pd.Timedelta(days=365.25)
                      for p in monthly.index])
    deseason = monthly.to_numpy() / factor
    slope, level = np.polyfit(years, deseason, 1)
    # monthly noise is about 15% (counts are stratified, amounts lognormal): the relative slope
    # has a standard error near 0.05 per year, so 0.15 +- 0.1 is a 2-sigma band
    assert slope / level == pytest.approx(0.15, abs=0.10)
    detrended = monthly.to_numpy() / (level + slope * years)
    by_month = pd.Series(detrended).groupby([p.month for p in monthly.index]).mean()
    planted = pd.Series(season).reindex(by_month.index)
    assert np.corrcoef(by_month, planted)[0, 1] > 0.8
    assert by_month[12] > by_month[8] * 1.4  # December strong, August weak


# ---------------------------------------------------------------- 4. activity and outcome
def test_inside_sales_reps_win_most_with_100_to_125_calls_and_5_meetings(clean, deals, truth):
    users = clean["users"]
    reps = set(users.loc[(users["team"] == "Inside Sales") & (users["role"] == "rep"), "user_id"])
    a = clean["activities"]
    a = a[a["owner_id"].isin(reps)]
    calls = a[a["type"] == "call"].assign(week=lambda f: f["created_at"].dt.to_period("W-SUN"))
    calls = calls.groupby(["owner_id", "week"]).size().rename("calls").reset_index()
    meet = a[(a["type"] == "meeting") & a["completed_at"].notna()]
    meet = meet.assign(week=meet["due_at"].dt.to_period("W-SUN"))
    meet = meet.groupby(["owner_id", "week"]).size().rename("meetings").reset_index()
    weeks = calls.merge(meet, on=["owner_id", "week"], how="left").fillna({"meetings": 0})
    assert weeks["calls"].min() >= 40 and weeks["calls"].max() <= 180
    assert weeks["calls"].max() - weeks["calls"].min() >= 100  # varies widely
    assert weeks["meetings"].max() <= 9
    closed = deals[deals["state"].isin(["won", "lost"]) & deals["owner_id"].isin(reps)].reset_index(drop=True)
    closed["week"] = closed["closed_at"].dt.to_period("W-SUN")
    closed = closed.merge(weeks, on=["owner_id", "week"], how="inner")
    best = closed["calls"].between(100, 125) & (closed["meetings"] >= 5)
    win = closed["state"] == "won"
    p1, n1, p0, n0 = win[best].mean(), best.sum(), win[~best].mean(), (~best).sum()
    pooled = win.mean()
    z = (p1 - p0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    assert n1 >= 15
    assert p1 - p0 >= 0.25 and z > 3.3  # one-sided p < 0.0005
    above = closed["calls"] > 125
    assert win[above].mean() < p1  # burnout: more calls than the range is worse


# ---------------------------------------------------------------- 5. lead response and calls
def test_speed_to_lead_is_lognormal_with_some_within_five_minutes(clean):
    a, leads = clean["activities"], clean["leads"]
    touch = a[(a["lead_id"] != "") & a["type"].isin(["call", "email"]) & (a["direction"] == "outbound")]
    first = touch.groupby("lead_id")["created_at"].min()
    delay = (first - leads.set_index("lead_id")["created_at"].reindex(first.index)) / pd.Timedelta(minutes=1)
    assert (delay >= 0).all()
    assert 0.05 <= (delay <= 5).mean() <= 0.2  # lognormal(median 45 min, sigma 1.8): 11%
    assert 30 <= delay.median() <= 70


def test_one_bad_week_with_forty_percent_missed_inbound_calls(clean, truth):
    a = clean["activities"]
    inbound = a[(a["type"] == "call") & (a["direction"] == "inbound")]
    week = inbound["created_at"].dt.to_period("W-SUN").dt.start_time
    missed = (inbound["outcome"] == "missed").groupby(week).mean()
    per_week = inbound.groupby(week).size()
    assert per_week.between(50, 70).all()
    bad = pd.Timestamp(truth["missed_calls"]["bad_week_start"])
    assert bad.day_of_week == 0
    assert missed[bad] == pytest.approx(0.40, abs=0.03)
    assert missed.drop(bad).max() <= 0.25
    assert missed.drop(bad).mean() == pytest.approx(0.12, abs=0.03)


def test_missed_calls_are_mostly_called_back(clean):
    a = clean["activities"]
    calls = a[(a["type"] == "call") & (a["account_id"] != "")].sort_values("created_at")
    missed = calls[calls["outcome"] == "missed"]
    back = calls[calls["direction"] == "outbound"]
    m = pd.merge_asof(missed[["created_at", "account_id"]],
                      back[["created_at", "account_id"]].rename(columns={"created_at": "back_at"}),
                      left_on="created_at", right_on="back_at", by="account_id", direction="forward")
    ok = (m["back_at"] - m["created_at"]) <= pd.Timedelta(days=7)
    assert 0.75 <= ok.mean() <= 0.95  # planted 85%


# ---------------------------------------------------------------- 6. customers
@pytest.fixture(scope="module")
def transactions(clean, as_of_end):
    o = clean["orders"]
    tx = o.groupby(["account_id", "ordered_at"]).agg(value=("revenue", "sum"),
                                                     products=("product", frozenset)).reset_index()
    tx = tx.sort_values(["account_id", "ordered_at"])
    first = tx.groupby("account_id")["ordered_at"].transform("min")
    tx["weeks"] = (tx["ordered_at"] - first) / pd.Timedelta(weeks=1)
    tx["T"] = (as_of_end - first) / pd.Timedelta(weeks=1)
    return tx


def _bgnbd_nll(params, x, tx, T):
    r, alpha, a, b = params
    if min(params) <= 0:
        return np.inf
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    a3 = np.where(x > 0, special.betaln(a + 1, np.maximum(b + x - 1, 1e-9)) - special.betaln(a, b)
                  - (r + x) * np.log(alpha + tx), -np.inf)
    return -np.sum(a1 + np.logaddexp(a2, a3))


def _fit(nll, start, data):
    res = optimize.minimize(lambda z: nll(np.exp(z), *data), np.log(start), method="Nelder-Mead",
                            options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-8})
    est = np.exp(res.x)
    cov = np.linalg.inv(approx_hess3(est, lambda p: nll(p, *data)))
    return est, np.sqrt(np.diag(cov))


def test_bgnbd_fit_has_the_planted_parameters_in_its_95_percent_intervals(transactions, truth):
    g = transactions.groupby("account_id")
    x = (g.size() - 1).to_numpy(float)
    tx = g["weeks"].max().to_numpy(float)
    T = g["T"].first().to_numpy(float)
    assert len(x) >= 1500
    est, se = _fit(_bgnbd_nll, [0.5, 5.0, 1.0, 2.0], (x, tx, T))
    planted = np.array([truth["clv"][k] for k in ("r", "alpha", "a", "b")])
    assert planted.tolist() == [0.25, 4.0, 0.8, 2.5]
    assert (np.abs(est - planted) <= 1.96 * se).all(), (est, se)


def _gg_nll(params, x, m):
    p, q, gamma = params
    if min(params) <= 0:
        return np.inf
    ll = (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(gamma)
          + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(gamma + m * x))
    return -np.sum(ll)


def test_gamma_gamma_fit_has_the_planted_spend_parameters_in_its_95_percent_intervals(transactions, truth):
    rep = transactions[transactions["weeks"] > 0]
    g = rep.groupby("account_id")["value"]
    x, m = g.size().to_numpy(float), g.mean().to_numpy(float)
    est, se = _fit(_gg_nll, [5.0, 3.0, 10000.0], (x, m))
    planted = np.array([truth["clv"][k] for k in ("p", "q", "gamma")])
    assert planted[:2].tolist() == [6.0, 4.0]
    assert (np.abs(est - planted) <= 1.96 * se).all(), (est, se)


def test_one_product_pair_is_bought_together_far_more_than_chance(transactions, truth):
    tx = transactions
    n = len(tx)
    prods = sorted(set().union(*tx["products"]))
    share = {p: tx["products"].map(lambda s, p=p: p in s).mean() for p in prods}
    lifts = {}
    for i, a in enumerate(prods):
        for b in prods[i + 1:]:
            both = tx["products"].map(lambda s, a=a, b=b: a in s and b in s).mean()
            if both * n >= 20:
                lifts[(a, b)] = both / (share[a] * share[b])
    best = max(lifts, key=lifts.get)
    assert set(best) == set(truth["cross_sell_pair"]["products"])
    assert lifts[best] >= 3
    assert sorted(lifts.values())[-2] < 2


def test_top_fifth_of_customers_bring_about_seventy_percent_of_revenue(clean):
    rev = clean["orders"].groupby("account_id")["revenue"].sum().sort_values(ascending=False)
    top = rev.iloc[: math.ceil(0.2 * len(rev))].sum() / rev.sum()
    assert top == pytest.approx(0.70, abs=0.05)


def test_referral_customers_retain_better_and_one_acquisition_month_is_weak(transactions, clean, deals, truth):
    """Dropout (p) was planted low for referral customers and high for one acquisition month; it
    acts after repeat purchases, so it shows in the second half-year and in the repeat count."""
    tx = transactions
    first = tx.groupby("account_id")["ordered_at"].min()
    old = first[(pd.Timestamp(truth["as_of"]) - first) >= pd.Timedelta(days=365)]
    rep = tx[tx["account_id"].isin(old.index) & (tx["weeks"] > 0) & (tx["weeks"] <= 52)]
    repeats = rep.groupby("account_id").size().reindex(old.index).fillna(0)
    late = rep[rep["weeks"] > 26].groupby("account_id").size().reindex(old.index).fillna(0) > 0
    orders = clean["orders"]
    first_deal = orders[orders["deal_id"] != ""].groupby("account_id")["deal_id"].first()
    source = first_deal.map(deals["source"]).reindex(old.index)
    ref = source == "referral"
    assert ref.sum() >= 30
    assert late[ref].mean() > late[~ref].mean() + 0.05
    assert repeats[ref].mean() > 1.5 * repeats[~ref].mean()
    month = old.dt.strftime("%Y-%m")
    weak = month == truth["retention"]["weak_month"]
    assert weak.sum() >= 30
    assert late[weak].mean() < late[~weak].mean() - 0.05
    assert repeats[weak].mean() < 0.6 * repeats[~weak].mean()
    per_month = repeats.groupby(month).agg(["mean", "size"])
    assert per_month.loc[per_month["size"] >= 30, "mean"].idxmin() == truth["retention"]["weak_month"]


# ---------------------------------------------------------------- 7. service
def test_sla_compliance_about_ninety_percent_except_one_week(clean, as_of_end, truth):
    t = clean["tickets"]
    counted = t["resolved_at"].notna() | (t["sla_due_at"] < as_of_end)
    met = t["resolved_at"].notna() & (t["resolved_at"] <= t["sla_due_at"])
    week = t["created_at"].dt.to_period("W-SUN").dt.start_time
    rate = met[counted].groupby(week[counted]).mean()
    size = counted.groupby(week).sum()
    bad = pd.Timestamp(truth["service"]["sla_breach_week"])
    assert rate[bad] < 0.5
    assert size[bad] >= 10
    others = rate.drop(bad)[size.drop(bad) >= 5]
    assert others.min() >= 0.7
    assert met[counted].mean() == pytest.approx(0.90, abs=0.03)


def test_one_category_recurs_for_the_same_few_customers(clean, truth):
    t = clean["tickets"]
    cat = truth["service"]["recurring_category"]
    per = t[t["category"] == cat].groupby("account_id").size().sort_values(ascending=False)
    assert sorted(per.index[:5]) == sorted(truth["service"]["recurring_accounts"])
    assert per.iloc[:5].min() >= 8
    assert per.iloc[5:].max() <= 2
    other = t[t["category"] != cat].groupby(["category", "account_id"]).size()
    assert other.max() < per.iloc[:5].min()


def test_nps_has_the_planted_promoter_and_detractor_shares(clean):
    s = clean["surveys"]
    nps = s.loc[s["kind"] == "nps", "score"]
    n = len(nps)
    for share, planted in (((nps >= 9).mean(), 0.45), ((nps <= 6).mean(), 0.20)):
        lo, hi = proportion_confint(round(share * n), n, alpha=0.01, method="wilson")
        assert lo <= planted <= hi
    assert s.loc[s["kind"] == "csat", "score"].between(1, 5).all()


# ---------------------------------------------------------------- 8. campaigns
def test_one_campaign_loses_money_and_one_channel_bounces_far_more(clean, deals, truth):
    leads = clean["leads"]
    won = leads["deal_id"].map(deals["state"]).eq("won")
    rev = leads["deal_id"].map(deals["eur"]).where(won, 0.0).groupby(leads["campaign_id"]).sum()
    c = clean["campaigns"].set_index("campaign_id")
    roi = (rev.reindex(c.index).fillna(0) - c["spend"]) / c["spend"]
    negative = roi[roi < 0]
    assert list(negative.index) == [truth["campaigns"]["negative_roi_campaign_id"]]
    assert negative.iloc[0] < -0.5
    assert 15 <= len(c) <= 25
    mail = c[c["sends"].notna()]
    bounce = mail.groupby("channel")["bounces"].sum() / mail.groupby("channel")["sends"].sum()
    top = bounce.idxmax()
    assert top == truth["campaigns"]["high_bounce_channel"]
    assert bounce[top] >= 3 * bounce.drop(top).max()


# ---------------------------------------------------------------- 9. targets
def test_named_owners_are_off_pace_and_everyone_else_on_pace(clean, deals, truth, as_of_end):
    g = truth["goals"]
    start, end = pd.Timestamp(g["period_start"]), pd.Timestamp(g["period_end"])
    days = pd.bdate_range(start, end)
    share = (days < as_of_end).sum() / len(days)
    won = deals[(deals["state"] == "won") & (deals["closed_at"] >= start) & (deals["closed_at"] < as_of_end)]
    actual = won.groupby("owner_id")["eur"].sum()
    t = clean["targets"]
    now = t[(t["metric"] == "revenue") & (t["period_start"] == start) & (t["owner_id"] != "")]
    pace = (actual.reindex(now["owner_id"]).fillna(0).to_numpy() / share) / now["target"].to_numpy()
    pace = pd.Series(pace, index=now["owner_id"].to_numpy())
    off = sorted(pace.index[pace < 0.6])
    assert off == g["off_pace_owners"]
    assert 2 <= len(off) <= 3
    assert pace.drop(off).min() >= 0.9


def test_every_sales_rep_and_team_has_monthly_revenue_targets(clean):
    t, users = clean["targets"], clean["users"]
    rev = t[t["metric"] == "revenue"]
    teams = {"Inside Sales", "Field Sales East", "Field Sales West", "Account Management"}
    reps = users.loc[(users["role"] == "rep") & users["team"].isin(teams), "user_id"]
    assert set(rev["owner_id"]) - {""} == set(reps)
    assert set(rev["team"]) - {""} == teams
    assert rev["period_start"].dt.to_period("M").nunique() >= 36
    assert set(t["metric"]) == {"revenue", "won_deals", "calls", "meetings", "new_leads"}


# ---------------------------------------------------------------- 10. dirty rows
def test_dirty_rows_are_what_their_kind_says(raw, truth):
    extracted = truth["extracted_at"]
    stages = set(raw["stages"]["stage"])
    ids = {"account_id": set(raw["accounts"]["account_id"]), "deal_id": set(raw["deals"]["deal_id"]),
           "owner_id": set(raw["users"]["user_id"])}
    orphan_col = {"contacts": "account_id", "accounts": "owner_id", "deals": "account_id",
                  "activities": "deal_id", "orders": "deal_id", "tickets": "account_id"}
    key = {"leads": "lead_id", "contacts": "contact_id", "accounts": "account_id", "deals": "deal_id",
           "activities": "activity_id", "orders": "order_id", "tickets": "ticket_id"}
    seen = set()
    for r in truth["dirty"]["rows"]:
        df, i, kind = raw[r["table"]], r["row_index"], r["kind"]
        row = df.iloc[i]
        k = key[r["table"]]
        assert row[k] == r["key"]
        assert (r["table"], i) not in seen
        seen.add((r["table"], i))
        earlier = df.iloc[:i]
        if kind == "duplicate_id":
            same = earlier[earlier[k] == row[k]]
            assert len(same) and (same.drop(columns=k) == row.drop(k)).all(axis=1).any()
        elif kind == "bulk_duplicate":
            assert (df[k] == row[k]).sum() == 1
            assert (earlier.drop(columns=k) == row.drop(k)).all(axis=1).any()
        elif kind == "double_submission":
            twin = earlier[(earlier["email"] == row["email"]) & (earlier["company"] == row["company"])]
            gap = (pd.Timestamp(row["created_at"]) - pd.to_datetime(twin["created_at"])) / pd.Timedelta(minutes=1)
            assert gap.between(1, 5).any()
        elif kind == "close_before_create":
            assert row["closed_at"] < row["created_at"]
        elif kind == "unknown_stage":
            assert row["stage"] not in stages
        elif kind == "future_date":
            times = [v for c, v in row.items() if (c.endswith("_at") and c not in ("due_at", "sla_due_at",
                                                                                   "expected_close_at")) and v]
            assert max(times) > extracted
        elif kind == "negative_amount":
            assert float(row["amount" if r["table"] == "deals" else "revenue"]) < 0
        elif kind == "zero_amount_won":
            assert row["status"] == "won" and float(row["amount"]) == 0
        elif kind == "invalid_email":
            assert not re.match(EMAIL_RE, row["email"].strip())
        elif kind == "invalid_phone":
            assert not re.match(PHONE_RE, row["phone"].strip())
        elif kind == "duplicate_contact":
            norm = df["email"].str.strip().str.lower()
            assert (norm == row["email"].strip().lower()).sum() >= 2
            assert (df["email"] == row["email"]).sum() == 1  # not an exact copy
        elif kind == "orphan":
            col = orphan_col[r["table"]]
            assert row[col] and row[col] not in ids[col]
        else:
            raise AssertionError(f"unknown kind {kind}")


def test_dirty_rows_are_two_percent_of_each_tables_clean_rows(raw, truth):
    rows = pd.DataFrame(truth["dirty"]["rows"])
    rate = truth["dirty"]["rate"]
    assert rate == 0.02
    for table in ("leads", "contacts", "accounts", "deals", "activities", "orders", "tickets"):
        mine = rows[rows["table"] == table]
        n_clean = len(raw[table]) - int((mine["outcome"] == "quarantine").sum())
        assert len(mine) == round(rate * n_clean), table
        extra = mine.loc[mine["outcome"] == "quarantine", "row_index"]
        assert extra.min() < 0.5 * len(raw[table]), table  # shuffled in, not appended
    for table in ("users", "stages", "targets", "fx_rates", "stage_history", "campaigns", "surveys"):
        assert table not in set(rows["table"])


def test_markup_names_and_a_none_lost_reason_are_ordinary_rows(raw):
    assert (raw["deals"]["name"] == "<script>alert(1)</script>").sum() == 1
    assert (raw["accounts"]["name"] == "Smith & Sons <b>bold</b>").sum() == 1
    lost = raw["deals"][raw["deals"]["status"] == "lost"]
    assert (lost["lost_reason"] == "None").any()


def test_no_clean_event_happens_after_as_of(clean, as_of_end):
    planned = {"due_at", "expected_close_at", "sla_due_at", "started_at", "ended_at", "period_start", "period_end"}
    for name, df in clean.items():
        for col in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[col]) and col not in planned:
                assert (df[col].dropna() < as_of_end).all(), (name, col)
