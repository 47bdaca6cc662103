"""crmlib.stats.regression on tiny frames whose answers are worked out by hand in each test."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crmlib.stats.regression import INTERCEPT, NotEstimable, RegressionResult, fit_logit, fit_ols


def two_groups(a_won, a_lost, b_won, b_lost):
    """Deals in two groups: x = 0 (a) and x = 1 (b), won = 1/0."""
    x = [0] * (a_won + a_lost) + [1] * (b_won + b_lost)
    y = [1] * a_won + [0] * a_lost + [1] * b_won + [0] * b_lost
    return pd.Series(y, name="won"), pd.DataFrame({"x": x})


def test_logit_with_one_binary_term_gives_the_log_odds_ratio_and_woolf_standard_error():
    # group a: 3 won, 6 lost; group b: 8 won, 4 lost
    y, X = two_groups(3, 6, 8, 4)
    res = fit_logit(y, X)
    # by hand: intercept = log(3/6); slope = log((8/4) / (3/6)) = log(4)
    # model-based SE of a log odds ratio (Woolf): sqrt(1/3 + 1/6 + 1/8 + 1/4)
    se = math.sqrt(1 / 3 + 1 / 6 + 1 / 8 + 1 / 4)
    x = res.effect("x")
    assert res.effect(INTERCEPT)["estimate"] == pytest.approx(math.log(0.5), abs=1e-6)
    assert x["estimate"] == pytest.approx(math.log(4), abs=1e-6)
    assert x["odds_ratio"] == pytest.approx(4.0, rel=1e-6)
    assert x["std_err"] == pytest.approx(se, rel=1e-5)
    z = math.log(4) / se
    assert x["p_value"] == pytest.approx(2 * (1 - stats.norm.cdf(z)), rel=1e-4)
    assert x["low"] == pytest.approx(math.log(4) - 1.959963984540054 * se, rel=1e-5)
    assert x["odds_ratio_high"] == pytest.approx(math.exp(math.log(4) + 1.959963984540054 * se), rel=1e-5)
    assert res.n_obs == 21 and res.n_groups is None and res.df_inference is None
    assert res.kind == "logit" and res.outcome == "won"


def test_ols_with_one_binary_term_gives_the_difference_in_means():
    y = pd.Series([1.0, 2.0, 3.0, 5.0, 7.0, 9.0], name="revenue")
    X = pd.DataFrame({"x": [0, 0, 0, 1, 1, 1]})
    res = fit_ols(y, X)
    # means 2 and 7: slope 5; residuals -1,0,1,-2,0,2 -> RSS 10, s2 = 10 / (6 - 2) = 2.5
    # SE(slope) = sqrt(s2 * (1/3 + 1/3)) = sqrt(5/3); t with 4 df
    se = math.sqrt(2.5 * (2 / 3))
    x = res.effect("x")
    assert x["estimate"] == pytest.approx(5.0)
    assert res.effect(INTERCEPT)["estimate"] == pytest.approx(2.0)
    assert x["std_err"] == pytest.approx(se)
    assert res.df_inference == 4
    assert x["p_value"] == pytest.approx(2 * stats.t.sf(5 / se, 4))
    assert x["high"] == pytest.approx(5 + stats.t.ppf(0.975, 4) * se)
    assert "odds_ratio" not in res.terms.columns


def _ols_cluster_se(y, x, g):
    """The cluster-robust (sandwich) SE of the slope with statsmodels' small-sample factor, by hand."""
    X = np.column_stack([np.ones(len(x)), x])
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    u = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    meat = sum(np.outer(X[g == k].T @ u[g == k], X[g == k].T @ u[g == k]) for k in np.unique(g))
    n, k, G = len(y), X.shape[1], len(np.unique(g))
    V = bread @ meat @ bread * (G / (G - 1)) * ((n - 1) / (n - k))
    return math.sqrt(V[1, 1])


def test_clusters_use_t_with_g_minus_1_df_and_never_a_standard_error_below_the_model_based_one():
    # three clusters whose residuals all share a sign inside the cluster: the robust SE is large
    y = np.array([1.0, 1.5, 4.0, 4.5, 2.0, 2.5, 9.0, 9.5, 3.0, 3.0, 5.0, 6.0])
    x = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1], dtype=float)
    g = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    robust = _ols_cluster_se(y, x, g)
    plain = fit_ols(pd.Series(y), pd.DataFrame({"x": x})).effect("x")["std_err"]
    res = fit_ols(pd.Series(y), pd.DataFrame({"x": x}), groups=pd.Series(g))
    assert res.n_groups == 3 and res.df_inference == 2
    assert res.effect("x")["std_err"] == pytest.approx(max(robust, plain))
    loose = fit_ols(pd.Series(y), pd.DataFrame({"x": x}), groups=pd.Series(g), conservative=False)
    assert loose.effect("x")["std_err"] == pytest.approx(robust)
    est = res.effect("x")["estimate"]
    se = res.effect("x")["std_err"]
    assert res.effect("x")["p_value"] == pytest.approx(2 * stats.t.sf(abs(est) / se, 2))
    assert "3 clusters" in res.covariance and "2 degrees of freedom" in res.covariance


def test_conservative_rule_keeps_the_model_based_error_when_clusters_look_too_good():
    # clusters whose residuals cancel inside each cluster: the cluster-robust SE is tiny
    y = np.array([1.0, 3.0, 6.0, 8.0, 1.0, 3.0, 6.0, 8.0, 1.0, 3.0, 6.0, 8.0])
    x = np.array([0, 0, 1, 1] * 3, dtype=float)
    g = np.repeat(["a", "b", "c"], 4)
    robust = _ols_cluster_se(y, x, g)
    plain = fit_ols(pd.Series(y), pd.DataFrame({"x": x})).effect("x")["std_err"]
    assert robust < plain
    res = fit_ols(pd.Series(y), pd.DataFrame({"x": x}), groups=pd.Series(g))
    assert res.effect("x")["std_err"] == pytest.approx(plain)
    assert "raised" in res.covariance


def test_perfect_separation_is_refused_with_a_reason():
    y, X = two_groups(0, 5, 4, 0)  # x predicts the outcome exactly
    with pytest.raises(NotEstimable, match="separation"):
        fit_logit(y, X)


def test_constant_term_outcome_and_too_few_rows_are_refused():
    y, X = two_groups(3, 6, 8, 4)
    with pytest.raises(NotEstimable, match="without variation"):
        fit_logit(y, X.assign(z=1.0))
    with pytest.raises(NotEstimable, match="same"):
        fit_logit(pd.Series([1] * 21), X)
    with pytest.raises(NotEstimable, match="cannot estimate"):
        fit_ols(pd.Series([1.0, 2.0]), pd.DataFrame({"x": [0.0, 1.0]}))
    with pytest.raises(NotEstimable, match="collinear"):
        fit_logit(y, X.assign(z=X["x"] * 2))
    with pytest.raises(NotEstimable, match="two clusters"):
        fit_logit(y, X, groups=pd.Series(["a"] * 21))


def test_result_summary_and_frame():
    y, X = two_groups(3, 6, 8, 4)
    res = fit_logit(y, X)
    assert isinstance(res, RegressionResult)
    frame = res.to_frame()
    assert frame["term"].tolist() == [INTERCEPT, "x"]
    frame.loc[0, "estimate"] = 99  # a copy
    assert res.effect(INTERCEPT)["estimate"] != 99
    text = res.summary()
    assert "Logistic regression of won on 21 observations" in text and "odds_ratio" in text
    with pytest.raises(KeyError, match="no term"):
        res.effect("calls")
    assert res.level == pytest.approx(0.95)
