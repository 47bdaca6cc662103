"""crmlib.stats.clv on tiny inputs whose expected values are worked out by hand in each test."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from crmlib.errors import CrmDataError
from crmlib.stats.clv import (BetaGeoFitter, GammaGammaFitter, customer_summary, holdout_check,
                              lifetime_value, simulate_customers)

TZ = "Europe/Berlin"


def lines(rows, tz=TZ):
    """rows: (customer, day, value)."""
    return pd.DataFrame({"customer": pd.Series([r[0] for r in rows], dtype="str"),
                         "at": pd.Series([pd.Timestamp(r[1], tz=tz) for r in rows], dtype=f"datetime64[us, {tz}]"),
                         "value": [float(r[2]) for r in rows]})


def fitted_bg(r, alpha, a, b):
    m = BetaGeoFitter()
    m.params_ = pd.Series({"r": r, "alpha": alpha, "a": a, "b": b})
    return m


def fitted_gg(p, q, gamma):
    m = GammaGammaFitter()
    m.params_ = pd.Series({"p": p, "q": q, "gamma": gamma})
    return m


# ----------------------------------------------------------------------------- customer_summary
def test_summary_counts_repeat_days_recency_and_age_in_weeks():
    t = lines([
        ("A", "2026-01-05", 10), ("A", "2026-01-05 15:00", 5),  # one transaction (same day): 15
        ("A", "2026-01-19", 20), ("A", "2026-02-02", 40),
        ("B", "2026-01-26", 7),
        ("C", "2026-02-09", 3),  # at the calibration end: not counted, C does not exist yet
    ])
    s = customer_summary(t, customer_col="customer", date_col="at", value_col="value",
                         calibration_end=pd.Timestamp("2026-02-09", tz=TZ))
    assert s.index.tolist() == ["A", "B"]
    # A: first 01-05, repeats 01-19 and 02-02 -> x = 2, t_x = 4 weeks, T = 5 weeks; m = (20 + 40) / 2
    assert s.loc["A", "frequency"] == 2
    assert s.loc["A", "recency"] == pytest.approx(4.0)
    assert s.loc["A", "T"] == pytest.approx(5.0)
    assert s.loc["A", "monetary_value"] == pytest.approx(30.0)
    # B: one purchase 01-26 -> x = 0, t_x = 0, T = 2 weeks, no repeat value
    assert (s.loc["B", "frequency"], s.loc["B", "recency"], s.loc["B", "T"]) == (0, 0.0, 2.0)
    assert math.isnan(s.loc["B", "monetary_value"])


def test_summary_of_unsorted_lines_keeps_text_ids_and_sums_each_customers_day():
    """Lines in no order, ids with leading zeros (sorted as text: "010" before "09"), two
    lines on one repeat day summed, a line without a customer belonging to nobody."""
    t = lines([("010", "2026-01-19", 5), ("09", "2026-01-05", 1), ("010", "2026-01-05", 2),
               (None, "2026-01-06", 99), ("010", "2026-01-19 18:00", 7), ("09", "2026-01-12", 4)])
    s = customer_summary(t, customer_col="customer", date_col="at", value_col="value",
                         calibration_end=pd.Timestamp("2026-02-02", tz=TZ))
    assert s.index.tolist() == ["010", "09"] and s.index.name == "customer"
    # "010": 01-05 (2) then 01-19 (5 + 7) -> x = 1, t_x = 2 weeks, T = 4 weeks, m = 12
    assert s.loc["010", ["frequency", "recency", "T", "monetary_value"]].tolist() == [1, 2.0, 4.0, 12.0]
    # "09": 01-05 (1) then 01-12 (4) -> x = 1, t_x = 1 week, T = 4 weeks, m = 4
    assert s.loc["09", ["frequency", "recency", "T", "monetary_value"]].tolist() == [1, 1.0, 4.0, 4.0]
    assert s.loc["010", "first_purchase"] == pd.Timestamp("2026-01-05", tz=TZ)
    assert s.loc["010", "last_purchase"] == pd.Timestamp("2026-01-19", tz=TZ)


def test_customer_days_groups_rows_by_customer_then_day_with_a_missing_customer_last():
    from crmlib.stats.clv import customer_day_codes, customer_days

    day = pd.to_datetime(["2026-01-02", "2026-01-01", "2026-01-02", "2026-01-01", "2026-01-03", "2026-01-02"]) \
        .as_unit("us").to_numpy()
    who = pd.Series(["b", "b", None, "a", "b", "b"], dtype="str")
    group, customer, days = customer_days(who, day)
    # groups in order: (a, 01-01), (b, 01-01), (b, 01-02), (b, 01-03), (missing, 01-02)
    assert group.tolist() == [2, 1, 4, 0, 3, 2]
    assert customer[:4].tolist() == ["a", "b", "b", "b"] and pd.isna(customer[4])
    assert pd.DatetimeIndex(days).strftime("%m-%d").tolist() == ["01-01", "01-01", "01-02", "01-03", "01-02"]
    empty = customer_days(who[:0], day[:0])
    assert len(empty[0]) == len(empty[1]) == len(empty[2]) == 0
    # the same groups with each one's customer as a position in the sorted names (2: missing)
    group2, codes, names, days2 = customer_day_codes(who, day)
    assert group2.tolist() == group.tolist() and names.tolist() == ["a", "b"]
    assert codes.tolist() == [0, 1, 1, 1, 2] and np.array_equal(days2, days)


def test_summary_hold_out_counts_days_after_calibration_and_the_last_day_convention():
    t = lines([("A", "2026-01-05", 1), ("A", "2026-01-11", 1), ("A", "2026-01-12", 1),
               ("A", "2026-01-13", 1), ("A", "2026-01-13", 1), ("A", "2026-01-26", 1)])
    s = customer_summary(t, customer_col="customer", date_col="at",
                         calibration_end=pd.Timestamp("2026-01-12", tz=TZ),
                         holdout_end=pd.Timestamp("2026-01-26", tz=TZ), time_unit="day")
    # calibration: 01-05 and 01-11 -> x = 1, t_x = 6 days, T = 7 days
    assert (s.loc["A", "frequency"], s.loc["A", "recency"], s.loc["A", "T"]) == (1, 6.0, 7.0)
    # hold-out [01-12, 01-26): days 01-12 and 01-13 (two lines, one day) -> 2; 14 days long
    assert s.loc["A", "frequency_holdout"] == 2
    assert s.loc["A", "duration_holdout"] == 14.0
    hardie = customer_summary(t, customer_col="customer", date_col="at",
                              calibration_end=pd.Timestamp("2026-01-12", tz=TZ), time_unit="day",
                              T_from_last_day=True)
    assert hardie.loc["A", "T"] == 6.0  # to the start of the last day (01-11): t_x = T


def test_summary_rejects_a_naive_calibration_end_for_aware_dates():
    t = lines([("A", "2026-01-05", 1)])
    with pytest.raises(ValueError, match="timezone-aware"):
        customer_summary(t, customer_col="customer", date_col="at", calibration_end=pd.Timestamp("2026-02-01"))


# ----------------------------------------------------------------------------- BG/NBD likelihood
def test_bgnbd_log_likelihood_by_hand():
    # r = alpha = a = b = 1. x = 0, T = 1: L = B(1,1)/B(1,1) * G(1) 1^1 / (G(1) 2^1) = 1/2.
    # x = 1, t_x = 0.5, T = 1: L = B(1,2)/B(1,1) * G(2)/(G(1) 2^2) + B(2,1)/B(1,1) * G(2)/(G(1) 1.5^2)
    #                            = 1/2 * 1/4 + 1/2 * 1/2.25 = 0.125 + 0.2222...
    ll = BetaGeoFitter.log_likelihood([1, 1, 1, 1], [0, 1], [0, 0.5], [1, 1])
    assert ll[0] == pytest.approx(math.log(0.5))
    assert ll[1] == pytest.approx(math.log(0.125 + 1 / 4.5))


def test_bgnbd_gradient_equals_finite_differences():
    from crmlib.stats.clv import _bgnbd_nll_grad

    s = simulate_customers(300, r=0.5, alpha=3, a=1.2, b=2.0, T=40, seed=1)
    x, tx, T = (s[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    theta = np.array([0.6, 4.0, 0.9, 2.5])
    f, g = _bgnbd_nll_grad(theta, x, tx, T)
    for i in range(4):
        h = 1e-6 * theta[i]
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        numeric = (_bgnbd_nll_grad(up, x, tx, T)[0] - _bgnbd_nll_grad(down, x, tx, T)[0]) / (2 * h)
        assert g[i] == pytest.approx(numeric, rel=1e-5)


def test_gamma_gamma_objective_is_the_summed_likelihood_with_its_gradient():
    """The fit's objective regroups the per-buyer log-likelihood (gamma functions once per
    distinct frequency): its value is minus the sum of the per-buyer terms, and its gradient
    matches finite differences, at several parameter values."""
    from crmlib.stats.clv import _gg_ll, _gg_nll_grad

    rng = np.random.default_rng(4)
    x = rng.integers(1, 12, 400).astype(float)
    m = rng.gamma(2.0, 40.0, 400)
    for theta in (np.array([2.0, 3.0, 40.0]), np.array([0.7, 6.5, 250.0]), np.array([5.0, 1.2, 9.0])):
        f, g = _gg_nll_grad(theta, x, m)
        assert f == pytest.approx(-_gg_ll(theta, x, m).sum(), rel=1e-12)
        for i in range(3):
            h = 1e-6 * theta[i]
            up, down = theta.copy(), theta.copy()
            up[i] += h
            down[i] -= h
            numeric = (_gg_nll_grad(up, x, m)[0] - _gg_nll_grad(down, x, m)[0]) / (2 * h)
            assert g[i] == pytest.approx(numeric, rel=1e-5)
    assert _gg_nll_grad(np.array([-1.0, 2.0, 3.0]), x, m)[0] == np.inf


def test_probability_alive_by_hand():
    m = fitted_bg(1, 1, 1, 1)
    # x = 1, t_x = 0.5, T = 1: 1 / (1 + a/(b + x - 1) ((alpha + T)/(alpha + t_x))^(r + x)) = 1 / (1 + (2/1.5)^2)
    assert m.probability_alive([1], [0.5], [1])[0] == pytest.approx(1 / (1 + (2 / 1.5) ** 2))
    assert m.probability_alive([0], [0], [5])[0] == 1.0  # nobody drops out before a repeat purchase


def test_expected_purchases_of_a_new_customer_equals_the_mixture_integral():
    # individual level: E[X(t) | lambda, p] = (1 - exp(-lambda p t)) / p; mix over Gamma(r, alpha), Beta(a, b)
    r, alpha, a, b, t = 0.8, 3.0, 1.5, 2.5, 10.0
    m = fitted_bg(r, alpha, a, b)

    # averaging over lambda first (the Gamma Laplace transform): E[exp(-lambda s)] = (alpha / (alpha + s))^r
    def integrand(p):
        return (1 - (alpha / (alpha + p * t)) ** r) / p * stats.beta.pdf(p, a, b)

    value, _ = integrate.quad(integrand, 0, 1)
    assert m.expected_purchases_new(t) == pytest.approx(value, rel=1e-4)


def test_conditional_expectation_without_repeats_is_the_new_customer_formula_with_alpha_plus_T():
    # x = 0: the posterior is Gamma(r, alpha + T) x Beta(a, b), the customer alive for sure
    r, alpha, a, b, T, t = 0.4, 2.0, 0.9, 3.0, 12.0, 26.0
    got = fitted_bg(r, alpha, a, b).expected_purchases(t, [0], [0], [T])[0]
    assert got == pytest.approx(fitted_bg(r, alpha + T, a, b).expected_purchases_new(t), rel=1e-10)


# ----------------------------------------------------------------------------- fitting
def test_fit_returns_self_and_recovers_simulated_parameters():
    truth = dict(r=0.3, alpha=5.0, a=0.7, b=2.2)
    s = simulate_customers(20_000, **truth, T=np.linspace(20, 100, 20_000), seed=11)
    m = BetaGeoFitter()
    assert m.fit(s) is m
    assert m.converged_ and m.n_ == 20_000
    assert list(m.params_.index) == ["r", "alpha", "a", "b"]
    for k, v in truth.items():  # within 3 standard errors
        assert abs(m.params_[k] - v) <= 3 * m.standard_errors_[k], (k, m.params_[k], m.standard_errors_[k])
    ci = m.summary()
    assert list(ci.columns) == ["estimate", "se", "low", "high"]
    assert (ci["low"] < ci["estimate"]).all() and (ci["estimate"] < ci["high"]).all()
    assert m.log_likelihood_ == pytest.approx(BetaGeoFitter.log_likelihood(m.params_, s["frequency"],
                                                                           s["recency"], s["T"]).sum())


def test_gamma_gamma_fit_recovers_simulated_parameters():
    truth = dict(p=6.0, q=4.0, gamma=15.0)
    s = simulate_customers(20_000, r=2.0, alpha=5.0, a=0.5, b=4.0, T=52, **truth, seed=5)
    m = GammaGammaFitter().fit(s)
    assert m.n_ == int((s["frequency"] > 0).sum())
    for k, v in truth.items():
        assert abs(m.params_[k] - v) <= 3 * m.standard_errors_[k], (k, m.params_[k])
    assert abs(m.frequency_spend_correlation_) < 0.1  # simulated spend does not depend on frequency


def test_gamma_gamma_log_likelihood_by_hand():
    # p = 1, q = 2, gamma = 1, x = 1, m = 1: marginal density of m is
    # int nu e^(-nu m) * nu e^(-nu) dnu = 2 / (1 + m)^3 = 1/4
    ll = GammaGammaFitter.log_likelihood([1, 2, 1], [1], [1.0])
    assert ll[0] == pytest.approx(math.log(0.25))


def test_expected_spend_by_hand():
    m = fitted_gg(2, 3, 4)
    # population mean p gamma / (q - 1) = 4; x = 2, m = 10: p (gamma + x m) / (p x + q - 1) = 2 * 24 / 6 = 8
    got = m.expected_spend([0, 2], [np.nan, 10.0])
    assert got.tolist() == pytest.approx([4.0, 8.0])
    assert m.population_mean_spend_ == pytest.approx(4.0)


def test_gamma_gamma_needs_repeat_buyers_with_positive_values():
    with pytest.raises(CrmDataError, match="repeat"):
        GammaGammaFitter().fit([0, 0, 1], [np.nan, np.nan, 5.0])
    with pytest.raises(CrmDataError, match="positive"):
        GammaGammaFitter().fit([1, 2, 3, 1], [5.0, -1.0, 3.0, 2.0])


def test_impossible_summaries_are_refused():
    with pytest.raises(CrmDataError, match="impossible"):
        BetaGeoFitter().fit([1, 0], [5, 0], [4, 3])  # recency after T


# ----------------------------------------------------------------------------- value
def test_lifetime_value_undiscounted_is_spend_times_expected_purchases():
    bg, gg = fitted_bg(0.5, 4.0, 0.8, 2.5), fitted_gg(2, 3, 4)
    s = pd.DataFrame({"frequency": [0, 2], "recency": [0.0, 10.0], "T": [20.0, 30.0],
                      "monetary_value": [np.nan, 10.0]}, index=["A", "B"])
    v = lifetime_value(bg, gg, s, horizon=52, discount_rate=0.0)
    expected = bg.expected_purchases(52, s["frequency"], s["recency"], s["T"])
    assert v["clv"].tolist() == pytest.approx((np.array([4.0, 8.0]) * expected).tolist())
    assert v["expected_purchases"].tolist() == pytest.approx(expected.tolist())


def test_lifetime_value_discounts_each_step_at_its_time():
    bg, gg = fitted_bg(0.5, 4.0, 0.8, 2.5), fitted_gg(2, 3, 4)
    s = pd.DataFrame({"frequency": [0], "recency": [0.0], "T": [20.0], "monetary_value": [np.nan]})
    year = 365.25 / 7
    # one yearly step: everything bought in the year is discounted once by 1.10
    v = lifetime_value(bg, gg, s, horizon=year, discount_rate=0.10, steps_per_year=1)
    assert v["clv"].iloc[0] == pytest.approx(4.0 * bg.expected_purchases(year, [0], [0], [20])[0] / 1.10)
    # two half-year steps: the first half discounted by 1.1^0.5, the second by 1.1
    v2 = lifetime_value(bg, gg, s, horizon=year, discount_rate=0.10, steps_per_year=2)
    e1, e2 = (bg.expected_purchases(t, [0], [0], [20])[0] for t in (year / 2, year))
    assert v2["clv"].iloc[0] == pytest.approx(4.0 * (e1 / 1.1 ** 0.5 + (e2 - e1) / 1.1))


def test_holdout_check_counts_actual_purchases_after_the_calibration():
    rng = np.random.default_rng(3)
    rows = []
    for c in range(60):  # customers with their own purchase rate (gaps of 1 to 20 weeks on average)
        mean_gap = rng.uniform(7, 140)
        day = pd.Timestamp("2025-01-01") + pd.Timedelta(days=int(rng.integers(0, 20)))
        while day < pd.Timestamp("2025-12-31"):
            rows.append((f"C{c}", day.strftime("%Y-%m-%d"), 10))
            day += pd.Timedelta(days=1 + int(rng.exponential(mean_gap)))
    t = lines(rows, tz="UTC")
    end, hold = pd.Timestamp("2025-09-01", tz="UTC"), pd.Timestamp("2025-12-01", tz="UTC")
    check = holdout_check(t, customer_col="customer", date_col="at", calibration_end=end, holdout_end=hold)
    actual = int(((t["at"] >= end) & (t["at"] < hold)).sum())  # one line per customer-day here
    assert check.actual == actual and check.customers == 60
    assert check.by_frequency["customers"].sum() == 60
    assert check.error == pytest.approx((check.predicted - actual) / actual)


def test_simulation_is_reproducible_with_a_seed():
    a = simulate_customers(100, r=0.3, alpha=4, a=0.8, b=2.5, T=30, seed=9)
    b = simulate_customers(100, r=0.3, alpha=4, a=0.8, b=2.5, T=30, seed=9)
    pd.testing.assert_frame_equal(a, b)
    assert (a["recency"] <= a["T"]).all() and ((a["frequency"] == 0) == (a["recency"] == 0)).all()


def test_customer_day_key_orders_pairs_by_customer_then_day():
    from crmlib.stats.clv import customer_day_key

    codes = np.array([2, 0, 2, 1, 0])
    days = np.array([20_100, 20_105, 20_101, 20_100, 20_105])  # day numbers since 1970
    key, span = customer_day_key(codes, days)
    assert span == 6 and key.tolist() == [12, 5, 13, 6, 5]  # code x 6 + (day - 20,100)
    assert codes.tolist() == [2, 0, 2, 1, 0]  # not changed unless asked
