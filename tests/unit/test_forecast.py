"""Report 07 bookings forecast: metrics and models on tiny frames whose expected values are worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from crmlib import narrative
from crmlib.errors import CrmConfigError, CrmDataError
from crmlib.metrics.forecast import (bookings_outlook, bookings_seasonality, bookings_series,
                                     elapsed_share, forecast_categories, forecast_horizon,
                                     forecast_periods, quarter_outlook, quarter_revenue_target)
from crmlib.periods import as_of_instant, period_containing
from crmlib.stats import forecast as fcs
from crmlib.stats.forecast import (Forecast, ModelSpec, baseline_forecast, candidate_specs, choose_lead,
                                   mase_scale, seasonality_trend, select_model)

TZ = "Europe/Berlin"
AS_OF = as_of_instant("2026-03-10", TZ)  # 2026-03-11 00:00 Berlin: March is running


def t(x):
    return pd.Timestamp(x, tz=TZ)


def ts(values):
    return pd.Series([t(v) if v else pd.NaT for v in values], dtype=f"datetime64[us, {TZ}]")


def make_deals(rows):
    base = dict(status="open", amount=100.0, closed_at=None, created_at="2025-12-01")
    rows = [{**base, **r} for r in rows]
    f = pd.DataFrame({
        "deal_id": pd.Series([r["deal_id"] for r in rows], dtype="str"),
        "status": pd.Series([r["status"] for r in rows], dtype="str"),
        "amount": pd.Series([r["amount"] for r in rows], dtype="float64"),
        "currency": pd.Series(["EUR"] * len(rows), dtype="str"),
        "created_at": ts([r["created_at"] for r in rows]),
        "closed_at": ts([r["closed_at"] for r in rows]),
    })
    f["amount_rep"] = f["amount"]
    return f


DEALS = make_deals([
    dict(deal_id="W1", status="won", closed_at="2026-01-05 10:00", amount=100.0),
    dict(deal_id="W2", status="won", closed_at="2026-02-01 00:30", amount=50.0),  # Feb in Berlin, Jan in UTC
    dict(deal_id="W3", status="won", closed_at="2026-03-02 09:00", amount=30.0),
    dict(deal_id="W4", status="won", closed_at="2026-03-03 09:00", amount=float("nan")),
    dict(deal_id="L1", status="lost", closed_at="2026-01-10 09:00", amount=999.0),
    dict(deal_id="LATE", status="won", closed_at="2026-03-11 00:00", amount=777.0),  # at as_of: not yet
    dict(deal_id="O", status="open", amount=555.0),
])


# ----------------------------------------------------------------------------- bookings per period
def test_monthly_bookings_count_won_deals_by_local_close_month_before_as_of():
    s = bookings_series(DEALS, AS_OF, freq="month").set_index("period")
    assert s.index.tolist() == ["2026-01", "2026-02", "2026-03"]
    assert s["bookings"].tolist() == [100.0, 50.0, 30.0]  # lost, open and LATE are not bookings
    assert s["won_deals"].tolist() == [1, 1, 2]
    assert s["missing_amount"].tolist() == [0, 0, 1]  # W4 counted, its amount skipped (not zero-filled)
    assert s["complete"].tolist() == [True, True, False]
    # March 2026 has 22 weekdays; before Wednesday 11 March: 2-6, 9 and 10 March = 7
    assert s.loc["2026-03", "elapsed_share"] == pytest.approx(7 / 22)
    assert s.loc["2026-01", "elapsed_share"] == 1.0


def test_weekly_bookings_fill_weeks_without_wins_with_zero():
    s = bookings_series(DEALS, AS_OF, freq="week").set_index("period")
    assert s.index[0] == "2026-W02" and s.index[-1] == "2026-W11"  # 5 Jan to the week of 10 March
    assert len(s) == 10
    assert s.loc["2026-W03", "bookings"] == 0.0 and s.loc["2026-W03", "won_deals"] == 0
    assert s.loc["2026-W05", "bookings"] == 50.0  # Sunday 1 Feb 00:30 belongs to the week of 26 Jan
    assert s.loc["2026-W10", "bookings"] == 30.0 and s.loc["2026-W10", "complete"]
    assert s.loc["2026-W11", "elapsed_share"] == pytest.approx(2 / 5)  # Monday and Tuesday are over


def test_bookings_series_without_wins_is_empty_and_needs_the_reporting_amount():
    none = make_deals([dict(deal_id="X", status="lost", closed_at="2026-01-05")])
    assert bookings_series(none, AS_OF).empty
    with pytest.raises(CrmDataError, match="amount_rep"):
        bookings_series(DEALS.drop(columns="amount_rep"), AS_OF)
    with pytest.raises(CrmConfigError, match="week, month"):
        bookings_series(DEALS, AS_OF, freq="quarter")


def test_elapsed_share_is_zero_before_and_one_after_a_period():
    march = period_containing(t("2026-03-05"), "month")
    assert elapsed_share(march, t("2026-02-01")) == 0.0
    assert elapsed_share(march, t("2026-04-02")) == 1.0
    assert elapsed_share(march, t("2026-03-16")) == pytest.approx(10 / 22)


# ----------------------------------------------------------------------------- targets and categories
def _targets(rows):
    return pd.DataFrame({
        "owner_id": pd.Series([r[0] for r in rows], dtype="str"),
        "team": pd.Series([r[1] for r in rows], dtype="str"),
        "metric": pd.Series([r[2] for r in rows], dtype="str"),
        "period_start": ts([r[3] for r in rows]),
        "period_end": ts([r[4] for r in rows]),
        "target": pd.Series([r[5] for r in rows], dtype="float64"),
    })


def test_quarter_target_sums_owner_revenue_targets_and_prorates_straddling_ones():
    q1 = period_containing(t("2026-02-15"), "quarter")
    targets = _targets([
        ("u1", None, "revenue", "2026-01-01", "2026-01-31", 100.0),
        ("u1", None, "revenue", "2026-02-01", "2026-02-28", 200.0),
        ("u2", None, "revenue", "2026-03-01", "2026-03-31", 300.0),
        ("u1", None, "won_deals", "2026-01-01", "2026-01-31", 5.0),  # another metric
        (None, "East", "revenue", "2026-01-01", "2026-01-31", 999.0),  # team restates owners: ignored
        ("u3", None, "revenue", "2025-12-01", "2025-12-31", 50.0),  # before the quarter
        ("u3", None, "revenue", "2026-03-01", "2026-04-30", 610.0),  # 31 of its 61 days in Q1
    ])
    assert quarter_revenue_target(targets, q1) == pytest.approx(100 + 200 + 300 + 610 * 31 / 61)


def test_quarter_target_uses_team_rows_when_no_owner_has_one_and_none_without_targets():
    q1 = period_containing(t("2026-02-15"), "quarter")
    teams = _targets([(None, "East", "revenue", "2026-01-01", "2026-03-31", 900.0),
                      (None, "West", "revenue", "2026-01-01", "2026-03-31", 100.0)])
    assert quarter_revenue_target(teams, q1) == pytest.approx(1000.0)
    assert quarter_revenue_target(None, q1) is None
    assert quarter_revenue_target(teams.assign(metric="calls"), q1) is None


SCORED = pd.DataFrame({"deal_id": list("abcde"), "p_win": [0.9, 0.8, 0.79, 0.5, 0.2],
                       "amount_rep": [100.0, 200.0, 300.0, 400.0, 500.0]})


def test_forecast_categories_by_probability_thresholds():
    c = forecast_categories(SCORED, commit=0.8, best_case=0.5).set_index("category")
    assert c.index.tolist() == ["commit", "best case", "pipeline"]
    assert c["deals"].tolist() == [2, 2, 1]
    assert c["value"].tolist() == [300.0, 700.0, 500.0]
    # commit 0.9 x 100 + 0.8 x 200; best case 0.79 x 300 + 0.5 x 400; pipeline 0.2 x 500
    assert c["expected_value"].tolist() == pytest.approx([250.0, 437.0, 100.0])
    assert c["cumulative_value"].tolist() == [300.0, 1000.0, 1500.0]
    assert c["cumulative_expected"].tolist() == pytest.approx([250.0, 687.0, 787.0])
    assert set(c["source"]) == {"thresholds"}


def test_the_crms_own_category_wins_over_thresholds_where_filled():
    scored = SCORED.assign(fc=pd.Series(["Commit", "BEST CASE", "pipeline", "Omitted", None], dtype="str"))
    c = forecast_categories(scored, category_col="fc").set_index("category")
    assert c.index.tolist() == ["commit", "best case", "pipeline", "omitted"]
    assert c["value"].tolist() == [100.0, 200.0, 300.0 + 500.0, 400.0]  # e has no category: 0.2 -> pipeline
    assert c.loc["pipeline", "expected_value"] == pytest.approx(0.79 * 300 + 0.2 * 500)
    assert set(c["source"]) == {"crm field"}
    with pytest.raises(CrmDataError, match="maybe"):
        forecast_categories(SCORED.assign(fc=["maybe", None, None, None, None]), category_col="fc")
    with pytest.raises(CrmConfigError):
        forecast_categories(SCORED, commit=0.4, best_case=0.6)


# ----------------------------------------------------------------------------- horizon and outlook
def test_forecast_horizon_covers_running_period_next_periods_and_quarter_end():
    s = bookings_series(DEALS, AS_OF, freq="month")
    assert forecast_horizon(s, AS_OF, periods_ahead=3) == 4  # March (running), April, May, June
    month_end = as_of_instant("2026-02-28", TZ)  # February complete: March, April, May
    assert forecast_horizon(bookings_series(DEALS, month_end), month_end, periods_ahead=3) == 3
    jan = as_of_instant("2026-01-11", TZ)  # a Sunday: weeks 3 to 14 reach the end of Q1 (1 April)
    weekly = bookings_series(DEALS, jan, freq="week")
    assert forecast_horizon(weekly, jan, periods_ahead=3, freq="week") == 12
    assert [p.label for p in forecast_periods(s, 2)] == ["2026-03", "2026-04"]


def _fake_forecast(mean, paths, labels=()):
    paths = np.asarray(paths, dtype="float64")
    lo = {0.8: np.quantile(paths, 0.1, axis=0)}
    hi = {0.8: np.quantile(paths, 0.9, axis=0)}
    return Forecast("m", np.asarray(mean, dtype="float64"), lo, hi, paths, (0.8,), tuple(labels))


FAKE = _fake_forecast([100.0, 200.0, 300.0, 400.0], [[90, 190, 290, 390], [110, 210, 310, 410]])


def test_outlook_of_the_running_period_adds_the_forecast_for_its_remaining_weekdays():
    s = bookings_series(DEALS, AS_OF, freq="month")
    o = bookings_outlook(s, FAKE, AS_OF).set_index("period")
    assert o.index.tolist() == ["2026-03", "2026-04", "2026-05", "2026-06"]
    assert o.loc["2026-03", "status"] == "running" and o.loc["2026-04", "status"] == "ahead"
    assert o.loc["2026-03", "remaining_share"] == pytest.approx(15 / 22)
    assert o.loc["2026-03", "outlook"] == pytest.approx(30 + 15 / 22 * 100)
    # 10% quantile of the two paths [90, 110] is 92
    assert o.loc["2026-03", "lo_80"] == pytest.approx(30 + 15 / 22 * 92)
    assert o.loc["2026-04", "outlook"] == 200.0 and o.loc["2026-04", "booked"] == 0.0
    assert math.isnan(o.loc["2026-04", "year_ago"])  # April 2025 is before the history


def test_quarter_outlook_adds_booked_and_the_rest_and_compares_with_the_target():
    s = bookings_series(DEALS, AS_OF, freq="month")
    q = quarter_outlook(DEALS, s, FAKE, AS_OF, target=300.0)
    assert q.quarter == "2026-Q1"
    assert q.booked == 180.0  # W1 + W2 + W3; W4 has no amount
    assert q.total == pytest.approx(180 + 15 / 22 * 100)  # only March's 15 remaining weekdays count
    assert q.below_target and q.p_reach_target == 0.0
    assert q.remaining_share == pytest.approx(15 / 64)  # Q1 2026: 22 + 20 + 22 weekdays
    assert q.previous == 0.0 and q.year_ago == 0.0
    q250 = quarter_outlook(DEALS, s, FAKE, AS_OF, target=250.0)
    assert q250.p_reach_target == 0.5  # path totals 180 + 15/22 x (90, 110) = 241.4 and 255
    targets = _targets([("u1", None, "revenue", "2026-01-01", "2026-03-31", 240.0)])
    assert quarter_outlook(DEALS, s, FAKE, AS_OF, targets=targets).target == 240.0


def test_quarter_outlook_refuses_a_forecast_that_stops_before_the_quarter_ends():
    feb = as_of_instant("2026-02-10", TZ)
    s = bookings_series(DEALS, feb)
    with pytest.raises(CrmConfigError, match="horizon"):
        quarter_outlook(DEALS, s, _fake_forecast([1.0], [[1.0]]), feb)


# ----------------------------------------------------------------------------- baselines and scores
def test_mase_scale_is_the_in_sample_error_of_the_seasonal_naive_or_naive_forecast():
    assert mase_scale([1.0, 3.0, 2.0, 5.0]) == pytest.approx(2.0)  # less than a year: |2|, |-1|, |3|
    assert mase_scale(np.arange(14.0)) == pytest.approx(12.0)  # y[12] - y[0] = y[13] - y[1] = 12


def test_naive_forecast_repeats_the_last_value_with_random_walk_intervals():
    f = baseline_forecast([10.0, 12.0, 11.0, 15.0], method="naive", horizon=2, n_sims=20_000, seed=1)
    assert f.mean.tolist() == [15.0, 15.0]
    sigma = math.sqrt((2 ** 2 + 1 ** 2 + 4 ** 2) / 3)  # one-step residuals 2, -1, 4
    assert f.upper[0.95][0] == pytest.approx(15 + 1.959964 * sigma, abs=0.15)
    assert f.upper[0.95][1] == pytest.approx(15 + 1.959964 * sigma * math.sqrt(2), abs=0.2)


def test_seasonal_naive_repeats_the_same_period_a_year_earlier_even_beyond_a_year():
    y = np.arange(1.0, 15.0)  # 14 months: 1 .. 14
    f = baseline_forecast(y, method="seasonal naive", horizon=13, n_sims=10, seed=1)
    assert f.mean[:3].tolist() == [3.0, 4.0, 5.0]  # y[T+h-12]
    assert f.mean[12] == 3.0  # 13 months ahead: the latest observed same month
    with pytest.raises(ValueError, match="more than a year"):
        baseline_forecast(y[:12], method="seasonal naive")


def test_forecast_total_weights_periods_and_adds_the_offset():
    out = FAKE.total([0.5, 1.0, 0.0, 0.0], offset=10.0)
    assert out["forecast"] == pytest.approx(10 + 50 + 200)
    assert sorted(out["paths"].tolist()) == pytest.approx([10 + 45 + 190, 10 + 55 + 210])


def test_the_lead_is_the_model_only_when_it_beat_the_best_baseline():
    model, snaive = _fake_forecast([1.0], [[1.0]]), _fake_forecast([2.0], [[2.0]])
    bases = {"seasonal naive": snaive}
    assert choose_lead(model, bases, {"beats": False, "baseline": "seasonal naive"}) is snaive
    assert choose_lead(model, bases, {"beats": True, "baseline": "seasonal naive"}) is model
    assert choose_lead(model, bases, {"beats": False, "baseline": None}) is model


# ----------------------------------------------------------------------------- models
def test_with_two_years_every_candidate_carries_the_yearly_cycle():
    assert not any(s.is_seasonal for s in candidate_specs(23))
    two = candidate_specs(24)
    assert two and all(s.is_seasonal for s in two)
    assert {s.family for s in two} == {"ETS", "SARIMAX"}
    assert all(s.dummies and not s.fourier for s in two if s.family == "SARIMAX")  # months: one effect each
    assert {s.transform for s in two if s.family == "SARIMAX"} == {None, "log"}
    assert not any(s.is_seasonal for s in candidate_specs(30, seasonal=False))
    assert not any(s.error == "mul" or s.transform == "log" for s in candidate_specs(30, positive=False))
    weekly = candidate_specs(120, freq="week")
    assert not any(s.family == "ETS" for s in weekly)  # 52 seasonal states: too many
    assert sorted({s.fourier for s in weekly}) == [2, 4, 6, 8, 10]


def test_seasonal_dummies_mark_the_position_in_the_year():
    spec = ModelSpec("SARIMAX", trend="ct", dummies=True)
    x = fcs._regressors(spec, np.arange(12, 16), "month")  # positions 12..15: seasons 0 (reference), 1, 2, 3
    assert x.shape == (4, 2 + 11)
    assert x[:, 0].tolist() == [1, 1, 1, 1]
    assert x[:, 1].tolist() == pytest.approx([12 / 12, 13 / 12, 14 / 12, 15 / 12])  # trend in years
    assert x[0, 2:].sum() == 0
    assert x[1, 2:].tolist() == [1] + [0] * 10
    assert x[3, 4] == 1 and x[3, 2:].sum() == 1


def _synthetic(n=48, noise=0.02, seed=3):
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    return 100 * (1 + 0.1 * k / 12) * (1 + 0.3 * np.sin(2 * np.pi * k / 12)) * np.exp(noise * rng.standard_normal(n))


FACTORS = np.array([0.8, 0.9, 1.2, 0.9, 0.95, 1.15, 0.85, 0.7, 1.1, 1.0, 1.05, 1.4])  # the sample's, mean 1


def test_regression_candidates_reach_the_same_likelihood_as_statsmodels_sarimax():
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = _synthetic()
    y = y / y.mean()
    for spec in (ModelSpec("SARIMAX", trend="ct", order=(1, 0, 0), fourier=2),
                 ModelSpec("SARIMAX", trend="c", order=(0, 0, 0), fourier=0),
                 ModelSpec("SARIMAX", trend="ct", order=(1, 0, 0), dummies=True)):
        mine = fcs._fit(spec, y, "month")
        exog = fcs._regressors(spec, np.arange(len(y)), "month")
        ref = SARIMAX(y, exog=exog, order=spec.order, trend="n").fit(disp=False, maxiter=1000)
        assert mine.llf >= ref.llf - 1e-4  # ours is the exact optimum: never worse
        assert mine.llf == pytest.approx(ref.llf, abs=1e-3)
        assert mine.results().llf == pytest.approx(mine.llf, abs=1e-6)  # the Kalman filter agrees
        assert mine.aicc == pytest.approx(ref.aicc, abs=1e-2)


def test_a_log_scale_candidate_is_scored_as_a_density_of_the_bookings_themselves():
    # y = exp(z): the density of y is the density of z divided by y, so llf(y) = llf(log y) - sum(log y)
    y = _synthetic(36) / 100
    spec = ModelSpec("SARIMAX", trend="ct", dummies=True, transform="log")
    mine = fcs._fit(spec, y, "month")
    x = fcs._regressors(spec, np.arange(36), "month")
    z = np.log(y)
    resid = z - x @ np.linalg.lstsq(x, z, rcond=None)[0]
    sigma2 = resid @ resid / 36
    by_hand = -18 * (math.log(2 * math.pi * sigma2) + 1) - z.sum()
    assert mine.llf == pytest.approx(by_hand, abs=1e-9)
    assert mine.k == 2 + 11 + 1  # constant, trend, 11 dummies, variance


def test_the_aicc_prefers_the_log_scale_for_multiplicative_swings_and_the_levels_for_additive_ones():
    rng = np.random.default_rng(4)
    k = np.arange(48)
    # growth by 80% a year with seasonal swings and noise in proportion, against a straight line
    # with swings and noise of a fixed size
    mult = 100 * np.exp(0.6 * k / 12) * FACTORS[k % 12] * np.exp(0.03 * rng.standard_normal(48))
    add = 100 + 80 * k / 12 + 40 * (FACTORS[k % 12] - 1) + 3 * rng.standard_normal(48)
    for y, better, worse in ((mult, "log", None), (add, None, "log")):
        table = select_model(y).to_frame()
        reg = table[table["family"] == "SARIMAX"]
        on_log = reg["model"].str.endswith("log scale")
        best = {"log": reg.loc[on_log, "aicc"].min(), None: reg.loc[~on_log, "aicc"].min()}
        assert best[better] < best[worse] - 10


def test_two_years_of_seasonal_bookings_give_a_seasonal_forecast_with_the_december_peak():
    """The sample's failure: with 24-26 months AICc preferred a flat mean and missed December by 40%."""
    rng = np.random.default_rng(5)
    k = np.arange(24)  # January 2024 .. December 2025
    y = 1000 * (1 + 0.15 * k / 12) * FACTORS[k % 12] * np.exp(0.12 * rng.standard_normal(24))
    sel = select_model(y)
    assert sel.spec.is_seasonal
    f = fcs.forecast(y, horizon=12, n_sims=2000, seed=1, selection=sel)
    assert f.mean[11] / f.mean.mean() > 1.25  # December, planted 1.4 x an average month
    assert f.mean[7] / f.mean.mean() < 0.85  # August, planted 0.7


def test_regression_futures_give_the_classical_t_prediction_intervals():
    import statsmodels.api as sm

    y = _synthetic(30, noise=0.05)
    spec = ModelSpec("SARIMAX", trend="ct", dummies=True)
    sel = select_model(y, candidates=[spec])
    f = fcs.forecast(y, horizon=2, n_sims=200_000, seed=3, selection=sel)
    x = fcs._regressors(spec, np.arange(30), "month")
    xf = fcs._regressors(spec, np.arange(30, 32), "month")
    pred = sm.OLS(y, x).fit().get_prediction(xf)  # x'b +- t(16) s sqrt(1 + x'(X'X)^-1 x)
    assert f.mean == pytest.approx(pred.predicted_mean, rel=1e-9)
    for lv in (0.8, 0.95):
        frame = pred.summary_frame(alpha=1 - lv)
        half = (frame["obs_ci_upper"] - frame["obs_ci_lower"]).to_numpy() / 2
        assert f.lower[lv] == pytest.approx(frame["obs_ci_lower"].to_numpy(), abs=0.01 * half.max())
        assert f.upper[lv] == pytest.approx(frame["obs_ci_upper"].to_numpy(), abs=0.01 * half.max())


def test_ar1_regression_mean_forecast_is_statsmodels_one():
    y = _synthetic(36, noise=0.05)
    spec = ModelSpec("SARIMAX", trend="ct", order=(1, 0, 0), dummies=True)
    sel = select_model(y, candidates=[spec])
    f = fcs.forecast(y, horizon=3, n_sims=500, seed=3, selection=sel)
    xf = fcs._regressors(spec, np.arange(36, 39), "month")
    assert f.mean == pytest.approx(np.asarray(sel.result.forecast(3, exog=xf)) * sel.scale, rel=1e-9)


def test_a_log_model_forecasts_the_log_normal_mean():
    import statsmodels.api as sm

    y = _synthetic(30, noise=0.1)
    spec = ModelSpec("SARIMAX", trend="ct", dummies=True, transform="log")
    sel = select_model(y, candidates=[spec])
    f = fcs.forecast(y, horizon=2, n_sims=1000, seed=3, selection=sel)
    z = np.log(y / sel.scale)
    x = fcs._regressors(spec, np.arange(30), "month")
    xf = fcs._regressors(spec, np.arange(30, 32), "month")
    pred = sm.OLS(z, x).fit().get_prediction(xf)
    var = pred.se_obs ** 2  # s^2 (1 + x'(X'X)^-1 x)
    assert f.mean == pytest.approx(np.exp(pred.predicted_mean + var / 2) * sel.scale, rel=1e-9)


def test_ets_futures_draw_the_error_variance_with_n_minus_k_degrees_of_freedom():
    from scipy import stats

    # ETS(A,N,N) one step ahead: the future is the forecast plus one error, so with the error
    # variance drawn as SSE / chi2(n - k) the futures are forecast + t(n - k) x sqrt(SSE / (n - k))
    y = _synthetic(30, noise=0.05)
    sel = select_model(y, candidates=[ModelSpec("ETS", error="add")])
    f = fcs.forecast(y, horizon=1, n_sims=200_000, seed=2, selection=sel)
    e = np.asarray(sel.result.resid)
    df = 30 - sel.result.model.k_params  # alpha and the initial level
    assert df == 28
    scale = math.sqrt(e @ e / df) * sel.scale
    for lv in (0.8, 0.95):
        q = stats.t.ppf((1 + lv) / 2, df) * scale
        assert f.upper[lv][0] == pytest.approx(f.mean[0] + q, abs=0.01 * q)
        assert f.lower[lv][0] == pytest.approx(f.mean[0] - q, abs=0.01 * q)


def test_ets_candidates_report_statsmodels_own_aicc():
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _synthetic(30) / 100
    spec = ModelSpec("ETS", error="mul", trend="add")
    mine = fcs._fit(spec, y, "month")
    ref = ETSModel(y, error="mul", trend="add", initialization_method="estimated").fit(disp=False)
    assert mine.aicc == pytest.approx(ref.aicc, rel=1e-3)


def test_the_selection_table_lists_the_chosen_model_first():
    table = select_model(_synthetic()).to_frame()
    assert table["chosen"].iloc[0] and table["delta_aicc"].iloc[0] == 0.0
    assert (table["delta_aicc"].dropna() >= 0).all()


def test_backtest_rolls_the_origin_and_scores_every_method_per_horizon():
    y = _synthetic(40)
    bt = fcs.backtest(y, freq="month", horizon=3, min_origins=8)
    assert bt.origins == 10 and bt.enough_origins  # training lengths 30 .. 39
    per_method = bt.errors.groupby("method").size()
    assert per_method.to_dict() == {"model": 27, "naive": 27, "seasonal naive": 27}  # 8 x 3 + 2 + 1
    row = bt.errors[(bt.errors["method"] == "naive") & (bt.errors["origin"] == 30)
                    & (bt.errors["horizon"] == 2)].iloc[0]
    assert row["forecast"] == y[29] and row["actual"] == y[31]
    assert row["scaled_error"] == pytest.approx(abs(y[31] - y[29]) / np.mean(np.abs(y[12:30] - y[:18])))
    scores = bt.scores()
    assert set(scores["horizon"]) == {1, 2, 3}
    assert scores.loc[scores["method"] == "model", "n"].tolist() == [10, 9, 8]
    c = bt.comparison(1)
    assert c["beats"]  # a clean seasonal series: the model is far better than naive ones
    assert c["model_mase"] < c["seasonal_naive_mase"] < c["naive_mase"]


def test_too_short_a_history_is_a_clear_data_error():
    with pytest.raises(CrmDataError, match="at least 6"):
        fcs.forecast_bookings([1.0, 2.0, 3.0])


def test_forecast_intervals_are_seeded_and_never_negative():
    y = _synthetic(30)
    a = fcs.forecast(y, horizon=3, n_sims=2000, seed=5)
    b = fcs.forecast(y, horizon=3, n_sims=2000, seed=5)
    assert np.array_equal(a.paths, b.paths)
    assert (a.paths >= 0).all()
    assert (a.lower[0.95] <= a.lower[0.8]).all() and (a.upper[0.8] <= a.upper[0.95]).all()


def test_seasonality_and_trend_are_recovered_exactly_from_a_noise_free_series():
    factors = np.array([0.8, 0.9, 1.2, 0.9, 0.95, 1.15, 0.85, 0.7, 1.1, 1.0, 1.05, 1.4])  # mean 1
    months = np.arange(36)
    years = (months + 0.5) / 12
    y = 1000 * (1 + 0.2 * years) * factors[months % 12]
    st = seasonality_trend(y, months % 12 + 1, years, loss="linear")
    assert st.trend_per_year == pytest.approx(0.2, abs=1e-6)
    assert st.level == pytest.approx(1000, rel=1e-6)
    assert st.factors["factor"].to_numpy() == pytest.approx(factors, abs=1e-6)
    assert st.residual_sd == pytest.approx(0, abs=1e-6)


def test_bookings_seasonality_needs_two_years_of_complete_months():
    short = pd.DataFrame({"period": ["2026-01"], "start": ts(["2026-01-01"]), "end": ts(["2026-02-01"]),
                          "bookings": [5.0], "complete": [True]})
    assert bookings_seasonality(short) is None
    weekly = short.assign(period="2026-W01")
    with pytest.raises(CrmConfigError, match="monthly"):
        bookings_seasonality(weekly)


# ----------------------------------------------------------------------------- narrative
def test_backtest_narrative_says_when_the_model_does_not_beat_the_baseline():
    y = _synthetic(40)
    bt = fcs.backtest(y, horizon=2, min_origins=8)
    comp = dict(bt.comparison(1), beats=False, baseline="seasonal naive")
    text = narrative.describe_backtest(bt, comp)
    assert "does **not** beat" in text and "seasonal naive" in text
    assert "<" not in text.replace("&lt;", "")
    # origins 31..39 forecast months 31..39 one ahead and 32..39 two ahead: 9 distinct months,
    # so an 80% coverage share is known to 1.96 sqrt(0.8 x 0.2 / 9) = 26 points
    assert "only 9 distinct months" in text and "±26 points" in text


def test_quarter_narrative_and_alert_name_the_shortfall():
    s = bookings_series(DEALS, AS_OF, freq="month")
    q = quarter_outlook(DEALS, s, FAKE, AS_OF, target=300.0)
    text = narrative.describe_quarter_outlook(q, currency="EUR")
    assert "**below**" in text and "€300" in text
    assert "below the revenue target of €300" in narrative.quarter_alert_text(q, currency="EUR")


# ----------------------------------------------------------------------------- pictures
def test_forecast_pictures_draw_history_bands_and_bars():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crmlib import plots

    s = bookings_series(DEALS, AS_OF, freq="month")
    o = bookings_outlook(s, FAKE, AS_OF)
    ax = plots.plot_bookings_forecast(s, o, model=FAKE, currency="EUR", title="March: €98 expected")
    assert ax.get_title(loc="left") == "March: €98 expected"
    assert len(ax.collections) >= 2  # the 80% band and the running period's booked-so-far marker
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "booked" in labels and "model: m" in labels
    plt.close(ax.figure)
    y = _synthetic(40)
    scores = fcs.backtest(y, horizon=2, min_origins=8).scores()
    ax = plots.plot_backtest(scores)
    assert len(ax.patches) == 3 * 2 and ax.get_title(loc="left").startswith("Smallest error")
    plt.close(ax.figure)
    factors = pd.DataFrame({"season": range(1, 13), "factor": [1.0] * 11 + [1.4], "low": [0.9] * 12,
                            "high": [1.5] * 12})
    ax = plots.plot_seasonal_factors(factors)
    assert len(ax.patches) == 12 and "December" in ax.get_title(loc="left")
    plt.close(ax.figure)
