"""Report 07 win probability: features, leakage, Logit, evaluation and Monte Carlo on tiny hand-made frames."""

import math

import numpy as np
import pandas as pd
import pytest

from crmlib import narrative
from crmlib.errors import CrmDataError
from crmlib.stats import winprob
from crmlib.stats.winprob import (auc, calibration_table, deal_features, fit_win_model, simulate_pipeline,
                                  snapshot_frame)

TZ = "UTC"


def t(x):
    return pd.Timestamp(x, tz=TZ)


def ts(values):
    return pd.Series([t(v) if v else pd.NaT for v in values], dtype=f"datetime64[us, {TZ}]")


def make_deals(rows):
    f = pd.DataFrame({
        "deal_id": pd.Series([r[0] for r in rows], dtype="str"),
        "owner_id": pd.Series([r[1] for r in rows], dtype="str"),
        "source": pd.Series([r[2] for r in rows], dtype="str"),
        "status": pd.Series([r[3] for r in rows], dtype="str"),
        "amount_rep": pd.Series([r[4] for r in rows], dtype="float64"),
        "created_at": ts([r[5] for r in rows]),
        "closed_at": ts([r[6] for r in rows]),
    })
    f["expected_close_at"] = ts([r[7] if len(r) > 7 else None for r in rows])
    return f


DEALS = make_deals([
    # id, owner, source, status, amount, created, closed
    ("A", "u1", "email", "won", 1000.0, "2026-01-01", "2026-03-01"),
    ("B", "u1", "web", "lost", 100.0, "2026-01-05", "2026-01-20"),
    ("C", "u1", "email", "won", 500.0, "2026-01-10", "2026-01-25"),
    ("F", "u1", "web", "won", 300.0, "2026-01-02", "2026-01-15"),
    ("D", "u2", "web", "open", 200.0, "2026-02-01", None),
])
HISTORY = pd.DataFrame({
    "deal_id": pd.Series(["A", "A", "D"], dtype="str"),
    "stage": pd.Series(["Qualification", "Proposal", "Qualification"], dtype="str"),
    "entered_at": ts(["2026-01-01", "2026-02-02", "2026-02-01"]),  # A enters Proposal exactly at T
})
ACTIVITIES = pd.DataFrame({
    "activity_id": pd.Series([f"a{i}" for i in range(6)], dtype="str"),
    "type": pd.Series(["call", "email", "meeting", "task", "note", "call"], dtype="str"),
    "deal_id": pd.Series(["A", "A", "A", "A", "A", "D"], dtype="str"),
    "created_at": ts(["2026-01-10", "2026-01-20", "2026-01-25", "2026-02-02", "2026-01-11",
                      "2026-02-01 12:00"]),
})
T = t("2026-02-02")


def features(deals=DEALS, history=HISTORY, activities=ACTIVITIES, at=T, as_=None):
    """The features; ``as_`` (the ``table_as`` fixture) hands over history and activities as
    frames or as scans of Parquet files (a large snapshot: DuckDB picks the rows)."""
    if as_ is not None:
        history, activities = as_(history), as_(activities, "activities")
    return deal_features(deals, at, history=history, activities=activities).set_index("deal_id")


# ----------------------------------------------------------------------------- features
def test_features_of_the_deals_open_at_t_from_data_strictly_before_t(table_as):
    f = features(as_=table_as)
    assert f.index.tolist() == ["A", "D"]  # B, C and F closed before T
    assert f.loc["A", "stage"] == "Qualification"  # Proposal is entered at T itself: not yet
    assert f.loc["D", "stage"] == "Qualification"
    assert f.loc["A", "log_age"] == pytest.approx(math.log(1 + 32))  # created 32 days before T
    assert f.loc["D", "log_age"] == pytest.approx(math.log(1 + 1))
    assert f.loc["A", "log_amount"] == pytest.approx(math.log(1000))
    # activities before T: A has a call and an email (the note is no touch, the task is at T) and a
    # meeting; D one call. Counts are log(1 + n) minus their mean over the deals open at T.
    calls = {"A": math.log(3), "D": math.log(2)}
    meetings = {"A": math.log(2), "D": 0.0}
    for deal in ("A", "D"):
        assert f.loc[deal, "log_calls_emails"] == pytest.approx(calls[deal] - (calls["A"] + calls["D"]) / 2)
        assert f.loc[deal, "log_meetings_tasks"] == pytest.approx(meetings[deal] - math.log(2) / 2)


def test_owner_win_rate_uses_only_deals_closed_before_t_shrunk_to_the_overall_rate():
    f = features()
    # closed before T: F won, B lost, C won -> overall 2 of 3; prior = (2 + 1) / (3 + 2) = 0.6
    # u1: 2 won of 3 -> (2 + 10 x 0.6) / (3 + 10) = 8 / 13
    assert f.loc["A", "owner_closed"] == 3 and f.loc["A", "owner_won"] == 2
    assert f.loc["A", "owner_logit"] == pytest.approx(math.log((8 / 13) / (5 / 13)))
    # u2 has no closed deal: the overall rate
    assert f.loc["D", "owner_closed"] == 0
    assert f.loc["D", "owner_logit"] == pytest.approx(math.log(0.6 / 0.4))
    # a day before C closed, u1 had only F (won) and B (lost)
    early = features(at=t("2026-01-24"))
    assert early.loc["A", "owner_closed"] == 2 and early.loc["A", "owner_won"] == 1


def test_features_at_t_do_not_change_when_the_future_is_appended_or_altered(table_as):
    before = features()
    future_deals = DEALS.copy()
    future_deals.loc[future_deals["deal_id"] == "A", ["status", "closed_at"]] = ["lost", t("2026-02-05")]
    future_deals.loc[future_deals["deal_id"] == "D", ["status", "closed_at"]] = ["won", t("2026-02-02")]
    future_deals = pd.concat([future_deals, make_deals([
        ("G", "u1", "web", "won", 50.0, "2026-02-03", "2026-02-04"),  # created and won after T
    ])], ignore_index=True)
    future_history = pd.concat([HISTORY, pd.DataFrame({
        "deal_id": pd.Series(["D", "A", "G"], dtype="str"), "stage": pd.Series(["Invoicing"] * 3, dtype="str"),
        "entered_at": ts(["2026-02-03", "2026-02-02", "2026-02-03"])})], ignore_index=True)
    future_acts = pd.concat([ACTIVITIES, pd.DataFrame({
        "activity_id": pd.Series(["f1", "f2"], dtype="str"), "type": pd.Series(["call", "meeting"], dtype="str"),
        "deal_id": pd.Series(["A", "D"], dtype="str"), "created_at": ts(["2026-02-02", "2026-03-01"])})],
        ignore_index=True)
    after = features(future_deals, future_history, future_acts, as_=table_as)
    pd.testing.assert_frame_equal(after, before)


def test_the_last_stage_entry_before_t_wins_and_ties_go_to_the_later_row(table_as):
    """A deal's stage at t is its last entry before t; two entries at the same instant resolve
    to the later row of the table (a stable sort), at one snapshot and at several."""
    history = pd.concat([HISTORY, pd.DataFrame({
        "deal_id": pd.Series(["D", "D", "A"], dtype="str"),
        "stage": pd.Series(["Proposal", "Negotiation", "Negotiation"], dtype="str"),
        "entered_at": ts(["2026-02-01 08:00", "2026-02-01 08:00", "2026-01-20"])})], ignore_index=True)
    f = features(history=history, as_=table_as)
    assert f.loc["D", "stage"] == "Negotiation" and f.loc["A", "stage"] == "Negotiation"
    two = deal_features(DEALS, [t("2026-01-15"), T], history=table_as(history), activities=None)
    got = dict(zip(zip(two["snapshot"].dt.day, two["deal_id"]), two["stage"]))
    assert got[(15, "A")] == "Qualification" and got[(2, "A")] == "Negotiation"
    assert got[(2, "D")] == "Negotiation"


def test_activity_counts_at_several_snapshots_count_only_earlier_touches(table_as):
    """At 12 January A has one call (10 Jan) and no email yet; at 2 February the call, the
    email and the meeting. F is open on 12 January with no activity (a zero count)."""
    f = deal_features(DEALS, [t("2026-01-12"), T], history=None, activities=table_as(ACTIVITIES, "activities"))
    f = f.set_index(["snapshot", "deal_id"])
    jan = f.xs(t("2026-01-12"), level="snapshot")
    open_jan = jan.index.tolist()
    logged = pd.Series(0.0, index=open_jan)
    logged["A"] = math.log(2)
    assert jan["log_calls_emails"].to_dict() == pytest.approx((logged - logged.mean()).to_dict())
    feb = f.xs(T, level="snapshot")
    assert feb.loc["A", "log_calls_emails"] == pytest.approx(math.log(3) - (math.log(3) + math.log(2)) / 2)


def test_a_deal_closing_exactly_at_t_is_still_open_at_t():
    closes_at_t = DEALS.assign(closed_at=DEALS["closed_at"].where(DEALS["deal_id"] != "A", T))
    assert "A" in features(closes_at_t).index


def test_without_history_or_activities_those_features_are_missing_not_invented():
    f = features(history=None, activities=None)
    assert f["stage"].isna().all()
    assert f["log_calls_emails"].isna().all() and f["log_meetings_tasks"].isna().all()


def test_snapshot_rows_keep_only_deals_with_an_outcome_by_the_label_time(table_as):
    early = snapshot_frame(DEALS, [T], label_at=t("2026-02-25"), history=table_as(HISTORY))
    assert early.empty and early.attrs["unlabelled"] == 2  # A closes on 1 March, D is open
    late = snapshot_frame(DEALS, [T, t("2026-01-12")], label_at=t("2026-03-05"), history=table_as(HISTORY))
    assert sorted(zip(late["snapshot"].dt.day, late["deal_id"], late["won"])) == [
        (2, "A", 1), (12, "A", 1), (12, "B", 0), (12, "C", 1), (12, "F", 1)]
    assert late.attrs["unlabelled"] == 1  # D at T


# ----------------------------------------------------------------------------- the Logit
def _training(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    src = np.where(rng.random(n) < 0.5, "email", "web")
    src[:5] = "rare"
    p = 1 / (1 + np.exp(-(0.3 + 1.5 * x - 1.0 * (src == "web"))))
    return pd.DataFrame({
        "deal_id": [f"d{i // 2}" for i in range(n)], "log_age": x, "log_amount": np.full(n, 7.0),
        "source": src, "stage": pd.Series([None] * n, dtype="str"), "owner_logit": x * 0,
        "log_calls_emails": rng.random(n), "log_meetings_tasks": np.nan,
        "won": (rng.random(n) < p).astype(int)})


def test_logit_drops_constant_or_missing_features_and_pools_rare_levels():
    m = fit_win_model(_training())
    assert set(m.dropped) == {"stage (not available)", "log_amount (no variation)",
                              "owner_logit (no variation)", "log_meetings_tasks (not available)"}
    assert m.columns[:3] == ("const", "log_age", "log_calls_emails")
    ref, *kept = m.levels["source"]
    assert "rare" not in (ref, *kept)  # 5 rows < 30: pooled, and too few to form "other"
    coef = m.to_frame().set_index("term")["coef"]
    assert coef["log_age"] == pytest.approx(1.5, abs=0.5)  # the planted slope, within sampling error
    unseen = _training(6).assign(source=["martian"] * 6)
    assert np.isfinite(m.predict(winprob._pooled(unseen, m.levels))).all()  # unseen level -> reference


def test_a_literal_other_level_takes_the_rare_levels_instead_of_appearing_twice():
    """A CRM source really called "other" (>= 30 rows) plus rare sources pooling to >= 30 rows:
    one "other" level, so the design matrix keeps full rank (it used to hold two)."""
    train = _training(400)
    train.loc[:59, "source"] = "other"
    train.loc[60:64, "source"] = [f"rare{i}" for i in range(5)] * 1
    train.loc[65:94, "source"] = [f"rarer{i % 6}" for i in range(30)]
    m = fit_win_model(train)
    assert list(m.levels["source"]).count("other") == 1
    assert np.isfinite(m.to_frame()["coef"]).all()


def test_logit_refuses_training_rows_that_all_share_one_outcome():
    with pytest.raises(CrmDataError, match="same outcome"):
        fit_win_model(_training().assign(won=1))


# ----------------------------------------------------------------------------- evaluation
def test_auc_counts_correctly_ranked_won_lost_pairs():
    # pairs (won, lost): (.9, .1) yes, (.9, .5) yes, (.4, .1) yes, (.4, .5) no -> 3 of 4
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.5]) == pytest.approx(0.75)
    assert auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_calibration_table_by_equal_sized_bins_with_clustered_standard_errors():
    c = calibration_table([0, 1, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "b", "c", "d"], bins=2)
    assert c["rows"].tolist() == [2, 2]
    assert c["predicted"].tolist() == pytest.approx([0.15, 0.85])
    assert c["observed"].tolist() == pytest.approx([0.5, 1.0])
    assert c["difference"].tolist() == pytest.approx([0.35, 0.15])
    # bin 1: deviations -0.5 and 0.5 -> sqrt(0.5 x 2 / 1) / 2 = 0.5
    assert c.loc[0, "se"] == pytest.approx(0.5)
    # one deal in both rows of a bin: a single cluster, no information on spread
    same = calibration_table([0, 1], [0.1, 0.2], ["a", "a"], bins=1)
    assert same.loc[0, "deals"] == 1 and same.loc[0, "se"] == pytest.approx(0.0)


def test_calibration_slope_of_a_saturated_two_group_example():
    # 20 rows at p = 0.2 with 6 won (0.3) and 20 at p = 0.8 with 14 won (0.7): two distinct
    # probabilities, so the fit is exact: slope = (logit .7 - logit .3) / (logit .8 - logit .2)
    p = np.repeat([0.2, 0.8], 20)
    y = np.r_[np.ones(6), np.zeros(14), np.ones(14), np.zeros(6)]
    c = winprob.calibration_slope(y, p)
    logit = lambda q: math.log(q / (1 - q))  # noqa: E731
    assert c["slope"] == pytest.approx((logit(0.7) - logit(0.3)) / (logit(0.8) - logit(0.2)), abs=1e-6)
    assert c["slope"] < 1  # the probabilities were too extreme
    # in the large: 20 of 40 won and, by symmetry, 20 expit(logit .2 + c) + 20 expit(logit .8 + c) = 20 at c = 0
    assert c["offset"] == pytest.approx(0.0, abs=1e-6)
    shifted = winprob.calibration_slope(np.r_[np.ones(8), np.zeros(12), np.ones(16), np.zeros(4)], p)
    assert shifted["offset"] > 0  # 24 of 40 won where 20 were expected: the probabilities are too low
    assert math.isnan(winprob.calibration_slope([1, 1, 1], [0.2, 0.5, 0.9])["slope"])


def test_calibration_slope_is_one_for_outcomes_drawn_from_the_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 20_000)
    c = winprob.calibration_slope(rng.random(20_000) < p, p)
    assert abs(c["slope"] - 1) < 4 * c["slope_se"] and abs(c["offset"]) < 4 * c["offset_se"]
    sharper = winprob.calibration_slope(rng.random(20_000) < 1 / (1 + ((1 - p) / p) ** 2), p)
    assert sharper["slope"] == pytest.approx(2.0, abs=4 * sharper["slope_se"])  # true logit = 2 x logit(p)


def test_calibration_narrative_states_the_worst_gap_and_the_noise():
    c = calibration_table([0, 1, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "b", "c", "d"], bins=2)
    text = narrative.describe_calibration_check(c, min_deals=1)
    assert "35\\.0 points" in text and "0 of the 2 groups" in text


# ----------------------------------------------------------------------------- Monte Carlo
def _scored():
    return pd.DataFrame({
        "deal_id": ["sure", "never", "half", "later"], "p_win": [1.0, 0.0, 0.5, 0.5],
        "amount_rep": [100.0, 200.0, 50.0, 10.0],
        "expected_close_at": ts(["2026-02-20", "2026-03-15", None, "2026-04-10"]),
    })


def test_monte_carlo_is_seeded_vectorised_and_puts_deals_in_their_close_period():
    as_of = t("2026-03-01")
    a = simulate_pipeline(_scored(), as_of, n_draws=10_000, seed=3)
    b = simulate_pipeline(_scored(), as_of, n_draws=10_000, seed=3)
    assert a.revenue.shape == (10_000, 4)
    assert np.array_equal(a.revenue, b.revenue)
    p = a.by_period().set_index("period")
    # "sure" is past its expected close (20 Feb): counted in the current period, February
    assert p.index.tolist() == ["2026-02", "2026-03", "2026-04", "no date", "all open deals"]
    assert p.loc["2026-02", "overdue"] == 1 and p.loc["2026-02", "lo_80"] == 100.0 == p.loc["2026-02", "hi_80"]
    assert p.loc["2026-03", "expected"] == 0.0 and p.loc["2026-03", "hi_95"] == 0.0
    assert p.loc["no date", "expected"] == 25.0
    assert p.loc["no date", "simulated_mean"] == pytest.approx(25.0, abs=1.0)  # 50 x Bernoulli(0.5)
    assert p.loc["all open deals", "expected"] == pytest.approx(100 + 25 + 5)
    upto = a.until(t("2026-04-01"))  # February (overdue) and March deals
    assert upto["deals"] == 2 and upto["expected"] == 100.0


def test_monte_carlo_with_the_model_draws_coefficients_too():
    m = fit_win_model(_training())
    scored = _training(20, seed=4).assign(amount_rep=100.0, expected_close_at=ts([None] * 20))
    scored["p_win"] = m.predict(winprob._pooled(scored, m.levels))
    fixed = simulate_pipeline(scored, t("2026-03-01"), n_draws=10_000, seed=1)
    vary = simulate_pipeline(scored, t("2026-03-01"), n_draws=10_000, seed=1, model=m)
    assert vary.parameter_uncertainty and not fixed.parameter_uncertainty
    f, v = fixed.by_period().iloc[-1], vary.by_period().iloc[-1]
    assert v["simulated_mean"] == pytest.approx(f["expected"], rel=0.03)
    assert (v["hi_95"] - v["lo_95"]) >= (f["hi_95"] - f["lo_95"])  # more uncertainty, never less


def test_a_level_whose_deals_all_won_gets_a_large_but_finite_effect():
    train = _training()
    train["stage"] = np.where(np.arange(len(train)) % 4 == 0, "Invoicing", "Proposal")
    train.loc[train["stage"] == "Invoicing", "won"] = 1  # perfect separation without the prior
    m = fit_win_model(train)
    row = m.to_frame().set_index("term").loc["stage[Invoicing]"]
    assert np.isfinite(row["coef"]) and 2 < row["coef"] < 10 and np.isfinite(row["se"])
    assert m.n_rows == len(train)  # the pseudo-deals are not counted as data
    assert m.base_rate == pytest.approx(train["won"].mean())


def test_win_test_narrative_says_plainly_when_the_model_is_no_better_than_the_base_rate():
    m = fit_win_model(_training())
    ev = winprob.Evaluation(0.52, 0.26, 0.25, float("nan"), float("nan"), pd.DataFrame(), 100, 40, 0.5)
    w = winprob.WinProbability(ev, m, m, t("2025-09-28"), t("2026-09-28"), 120, 7, 10, 10, 0.1)
    text = narrative.describe_win_test(w)
    assert "does no better than the average win rate" in text and "only weakly" in text
    assert "stage" in text  # the missing stage feature is named


def test_calibration_narrative_reads_the_slope_with_its_interval():
    c = calibration_table([0, 1, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "b", "c", "d"], bins=2)
    ev = winprob.Evaluation(0.7, 0.2, 0.25, float("nan"), float("nan"), c, 4, 4, 0.75, slope=0.6, slope_se=0.1)
    text = narrative.describe_calibration_check(c, min_deals=1, evaluation=ev)
    assert "slope is 0\\.60 (95% CI 0\\.40 to 0\\.80" in text and "too extreme" in text
    assert "50% was predicted and 75% won" in text  # (0.15 x 2 + 0.85 x 2) / 4 and 3 of 4
    fine = winprob.Evaluation(0.7, 0.2, 0.25, float("nan"), float("nan"), c, 4, 4, 0.75, slope=0.9, slope_se=0.1)
    assert "no sign" in narrative.describe_calibration_check(c, min_deals=1, evaluation=fine)


def test_calibration_check_says_when_no_decile_is_big_enough():
    c = calibration_table([0, 1, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "b", "c", "d"], bins=2)
    assert "cannot be made" in narrative.describe_calibration_check(c)


def test_small_models_run_with_one_blas_thread_and_restore_the_setting():
    from crmlib.stats.forecast import _openblas_handles, one_blas_thread

    handles = _openblas_handles()
    before = [get() for _, get, _ in handles]
    with one_blas_thread():
        assert all(get() == 1 for _, get, _ in handles)
    assert [get() for _, get, _ in handles] == before


def test_deals_without_owner_or_source_columns_get_the_overall_rate_and_unknown_source():
    f = features(DEALS.drop(columns=["owner_id", "source"]), history=None, activities=None)
    assert (f["source"] == "unknown").all()
    assert f["owner_closed"].eq(0).all()
    assert f["owner_logit"].tolist() == pytest.approx([math.log(0.6 / 0.4)] * 2)  # the overall rate


def test_calibration_and_pipeline_pictures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crmlib import plots

    c = calibration_table([0, 1, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "b", "c", "d"], bins=2)
    ax = plots.plot_calibration(c)
    assert ax.get_title(loc="left") == "Predicted and observed win rates within 35 points in every decile"
    assert len(ax.lines) >= 3  # the diagonal and the points with their error bars
    plt.close(ax.figure)
    sim = simulate_pipeline(_scored(), t("2026-03-01"), n_draws=1000, seed=3)
    ax = plots.plot_pipeline_forecast(sim.by_period(), currency="EUR")
    assert len(ax.patches) == 2 * 4  # open value and expected bars for Feb, Mar, Apr and "no date"
    assert ax.get_title(loc="left") == "€130 expected from 4 open deals"
    plt.close(ax.figure)


def test_until_counts_expected_close_dates_not_the_weeks_they_fall_in():
    scored = _scored()
    scored["expected_close_at"] = ts(["2026-03-30", "2026-04-02", None, "2026-03-31 23:00"])
    sim = simulate_pipeline(scored, t("2026-03-28"), freq="week", n_draws=100, seed=1)
    # the week of 30 March straddles the quarter end (1 April): only the deals due before it count
    assert sim.until(t("2026-04-01"))["deals"] == 2
    assert set(sim.deals.loc[sim.deals["period"] == "2026-W14", "deal_id"]) == {"sure", "never", "later"}


def test_monte_carlo_sums_block_by_block_the_same_as_over_the_whole_matrix(monkeypatch):
    """A million-deal pipeline cannot hold draws x deals in memory: the outcomes are drawn
    and summed in blocks. Any group's total must not depend on how it was asked for."""
    import crmlib.stats.winprob as wp

    monkeypatch.setattr(wp, "CHUNK_CELLS", 3 * 500)  # blocks of 3 deals at 500 draws
    scored = pd.concat([_scored()] * 3, ignore_index=True)
    scored["deal_id"] = [f"d{i}" for i in range(len(scored))]
    sim = simulate_pipeline(scored, t("2026-03-01"), n_draws=500, seed=11)
    whole = sim.revenue
    assert whole.shape == (500, 12)
    masks = np.column_stack([np.arange(12) % 2 == 0, np.ones(12, bool)])
    np.testing.assert_allclose(sim.totals(masks), whole @ masks)
    np.testing.assert_allclose(sim.totals(masks[:, 1]), whole.sum(axis=1))
    # the certain deals are won in every draw, the impossible ones never
    assert (whole[:, scored["p_win"].eq(1.0).to_numpy()] == 100.0).all()
    assert (whole[:, scored["p_win"].eq(0.0).to_numpy()] == 0.0).all()
    p = sim.by_period().set_index("period")
    assert p.loc["all open deals", "simulated_mean"] == pytest.approx(whole.sum(axis=1).mean())


def test_coefficient_draws_decide_each_outcome_as_a_uniform_below_the_logistic_probability(monkeypatch):
    """With the model's coefficients drawn, deal i is won in draw d when u < expit(x_i b_d).
    The simulation decides it in place as u (1 + exp(-x_i b_d)) < 1; with the same seeded
    streams, every outcome must be the one of the plain formula, also where exp overflows
    (a linear predictor of -800: never won) or vanishes (+800: always won), and silently."""
    import warnings

    from scipy.special import expit

    import crmlib.stats.winprob as wp

    monkeypatch.setattr(wp, "CHUNK_CELLS", 2 * 300)  # blocks of 2 deals at 300 draws
    rng = np.random.default_rng(5)
    x = np.column_stack([np.ones(7), rng.normal(size=(7, 2))])
    x[0], x[1] = [800.0, 0, 0], [-800.0, 0, 0]
    betas = np.column_stack([rng.uniform(0.5, 1.5, 300), rng.normal(size=(300, 2))])
    value = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0])
    sim = wp.PipelineSimulation(pd.DataFrame({"amount": value}), 300, 9, True, _value=value,
                                _p=np.zeros(7), _x=x, _betas=betas)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = sim.revenue
    expected = np.hstack([
        (np.random.default_rng([9, i]).random((300, len(value[lo:lo + 2])))
         < expit(betas @ x[lo:lo + 2].T)) * value[lo:lo + 2]
        for i, lo in enumerate(range(0, 7, 2))])
    assert np.array_equal(got, expected)
    assert (got[:, 0] == 10.0).all() and (got[:, 1] == 0.0).all()
    assert 0 < (got[:, 2:] > 0).mean() < 1


def test_features_of_a_sample_of_deals_keep_every_deals_owner_history(table_as):
    """``only`` restricts the rows, not the owners' past: A's owner still has F, B and C
    (deals outside the sample) as closes before T."""
    f = deal_features(DEALS, T, history=table_as(HISTORY), activities=table_as(ACTIVITIES, "activities"),
                      only=["A"]).set_index("deal_id")
    whole = deal_features(DEALS, T, history=HISTORY, activities=None).set_index("deal_id")
    assert f.index.tolist() == ["A"]
    counts = ["log_calls_emails", "log_meetings_tasks"]
    pd.testing.assert_series_equal(f.loc["A"].drop(counts), whole.loc["A"].drop(counts))
    # alone at T, A's counts are their own mean: 0 relative to the deals open with it
    assert f.loc["A", counts].tolist() == [0.0, 0.0]
    assert f.loc["A", "owner_closed"] == 3 and f.loc["A", "stage"] == "Qualification"


def test_a_model_on_more_deals_than_max_deals_learns_from_a_seeded_sample_and_says_so():
    rng = np.random.default_rng(5)
    rows = []
    for i in range(400):
        created = t("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 600)))
        won = rng.random() < 0.4
        rows.append((f"D{i:03d}", f"u{i % 4}", ["web", "email"][i % 2], "won" if won else "lost",
                     float(rng.integers(100, 5000)), str(created.date()),
                     str((created + pd.Timedelta(days=int(rng.integers(5, 60)))).date())))
    deals = make_deals(rows)
    kw = dict(holdout_days=180, label_wait_days=60, every_days=14)
    a = winprob.win_probability_model(deals, t("2025-09-01"), max_deals=150, seed=2, **kw)
    b = winprob.win_probability_model(deals, t("2025-09-01"), max_deals=150, seed=2, **kw)
    whole = winprob.win_probability_model(deals, t("2025-09-01"), max_deals=None, **kw)
    assert (a.deals_sampled, a.deals_total) == (150, 400) and whole.deals_sampled is None
    assert a.model.n_deals + a.evaluation.n_deals <= 150 * 2 and a.model.n_deals <= 150
    assert whole.model.n_deals > 150
    np.testing.assert_array_equal(np.asarray(a.model.result.params), np.asarray(b.model.result.params))
    assert "a random sample of 150 deals" in narrative.describe_win_test(a)
    assert "random sample" not in narrative.describe_win_test(whole)


def test_the_deals_due_by_a_period_boundary_come_from_the_by_period_pass(monkeypatch):
    """by_period() also sums the deals due before each period's start in its one pass over the
    draws: until() at such a boundary (the quarter's end) draws nothing again, and gives what
    a fresh simulation's until() gives; a date between boundaries still draws its own pass."""
    scored = pd.concat([_scored()] * 3, ignore_index=True)
    scored["deal_id"] = [f"d{i}" for i in range(len(scored))]
    sim = simulate_pipeline(scored, t("2026-03-01"), n_draws=500, seed=11)
    fresh = simulate_pipeline(scored, t("2026-03-01"), n_draws=500, seed=11)
    passes = []
    blocks = type(sim)._blocks
    monkeypatch.setattr(type(sim), "_blocks", lambda self: passes.append(1) or blocks(self))
    sim.by_period()
    assert len(passes) == 1
    got = sim.until(t("2026-04-01"))  # the start of April: a boundary
    assert len(passes) == 1
    want = fresh.until(t("2026-04-01"))
    assert got == pytest.approx(want, rel=1e-12)  # the same draws, summed with more columns at once
    sim.until(t("2026-03-15"))
    assert len(passes) == 2
