"""Regressions that report effect sizes with intervals and p-values, honest about few clusters.

Two fitters, :func:`fit_logit` (binomial GLM with a logit link, for won/lost outcomes)
and :func:`fit_ols` (least squares, for money per rep-week), take an outcome and a
design frame of named numeric columns (an intercept is added) and return a
:class:`RegressionResult`: one row per term with the estimate, its standard error,
confidence interval and p-value (plus odds ratios for the logit), the number of
observations and clusters, the log-likelihood and AIC, and the fitted statsmodels
results for anything else.

Clustered data (deals of the same rep are not independent: the rep's skill moves them
together) use ``groups=``: the covariance is cluster-robust (statsmodels
``cov_type="cluster"``, with its small-sample correction), and inference uses the
t distribution with G - 1 degrees of freedom (G = number of clusters). With few
clusters (a team of six reps) the cluster-robust standard error is itself biased
downwards, so by default (``conservative=True``) each term's standard error is the
larger of the cluster-robust and the model-based one (the rule of thumb of Angrist &
Pischke, *Mostly Harmless Econometrics*, 2009, section 8.2). The result says in
``covariance`` which rule was applied.

Example::

    res = fit_logit(deals["won"], design, groups=deals["owner_id"])
    res.to_frame()            # term, estimate, std_err, low, high, p_value, odds_ratio, ...
    res.effect("meetings >= 5")["p_value"]
    print(res.summary())
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from ..errors import CrmDataError

__all__ = ["RegressionResult", "NotEstimable", "fit_logit", "fit_ols", "INTERCEPT"]

INTERCEPT = "intercept"


class NotEstimable(CrmDataError):
    """The data cannot identify the model (too few rows, a constant or duplicated term,
    or an outcome perfectly predicted by a term)."""


@dataclass(frozen=True, eq=False)
class RegressionResult:
    """A fitted regression: one row per term in ``terms`` plus what is needed to judge it.

    ``terms`` columns: term, estimate, std_err, statistic, p_value, low, high; logit
    results add odds_ratio, odds_ratio_low, odds_ratio_high (exp of the estimate and
    its bounds). ``df_inference`` is the degrees of freedom of the t distribution used
    for p-values and intervals (None: the normal distribution).
    """

    kind: str  # "logit" or "ols"
    outcome: str
    terms: pd.DataFrame
    n_obs: int
    n_groups: int | None
    covariance: str
    df_inference: float | None
    log_likelihood: float
    aic: float
    alpha: float = 0.05
    fitted: Any = field(default=None, repr=False)

    @property
    def level(self) -> float:
        """Confidence level of the intervals, e.g. 0.95."""
        return 1 - self.alpha

    def effect(self, term: str) -> pd.Series:
        """The row of one term (estimate, interval, p-value, ...)."""
        rows = self.terms.loc[self.terms["term"] == term]
        if rows.empty:
            raise KeyError(f"no term {term!r} in the model; terms: {', '.join(self.terms['term'])}")
        return rows.iloc[0]

    def to_frame(self) -> pd.DataFrame:
        """The terms table (a copy)."""
        return self.terms.copy()

    def summary(self) -> str:
        """The model as plain text: what was fitted, on how much data, and the terms table."""
        head = (f"{'Logistic' if self.kind == 'logit' else 'Least-squares'} regression of "
                f"{self.outcome} on {self.n_obs:,} observations"
                + (f" in {self.n_groups:,} clusters" if self.n_groups else "")
                + f"; {self.covariance}; log-likelihood {self.log_likelihood:,.2f}, AIC {self.aic:,.1f}")
        cols = [c for c in ("term", "estimate", "std_err", "low", "high", "p_value", "odds_ratio")
                if c in self.terms.columns]
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            table = self.terms[cols].to_string(index=False, float_format=lambda x: f"{x:,.4g}")
        return head + "\n" + table


def fit_logit(outcome: pd.Series, design: pd.DataFrame, *, groups: pd.Series | None = None,
              alpha: float = 0.05, conservative: bool = True) -> RegressionResult:
    """Logistic regression (binomial GLM, logit link) of a 0/1 outcome on the design's columns plus an intercept.

    Parameters
    ----------
    outcome : 0/1 (or boolean) values, one per row of ``design``.
    design : numeric columns named as the terms should read (e.g. ``"calls 100-125"``).
    groups : cluster labels (e.g. the owner of each deal); None: independent rows.
    alpha : 1 - confidence level.
    conservative : with ``groups``, never use a standard error below the model-based one.

    Returns
    -------
    :class:`RegressionResult` with odds ratios.

    Raises
    ------
    NotEstimable : too few rows, a constant or collinear term, or perfect separation.
    """
    y, X, g = _prepare(outcome, design, groups)
    if not np.isin(y, (0.0, 1.0)).all():
        raise NotEstimable("fit_logit needs a 0/1 outcome")
    if y.min() == y.max():
        raise NotEstimable("every outcome is the same (all won or all lost): nothing to explain")
    model = sm.GLM(y, X, family=sm.families.Binomial())
    fitted = _fit_quietly(model)
    _check_separation(fitted)
    return _result("logit", outcome, model, fitted, X, g, alpha, conservative)


def fit_ols(outcome: pd.Series, design: pd.DataFrame, *, groups: pd.Series | None = None,
            alpha: float = 0.05, conservative: bool = True) -> RegressionResult:
    """Least-squares regression of a numeric outcome on the design's columns plus an intercept.

    Same parameters and result as :func:`fit_logit` (without odds ratios).
    """
    y, X, g = _prepare(outcome, design, groups)
    model = sm.OLS(y, X)
    fitted = _fit_quietly(model)
    return _result("ols", outcome, model, fitted, X, g, alpha, conservative)


# ----------------------------------------------------------------------------- helpers
def _prepare(outcome, design, groups):
    if not isinstance(design, pd.DataFrame):
        raise TypeError("design must be a DataFrame of named numeric columns")
    if len(outcome) != len(design):
        raise ValueError(f"outcome has {len(outcome)} rows but design has {len(design)}")
    if INTERCEPT in design.columns:
        raise ValueError(f"the design must not contain {INTERCEPT!r}: it is added")
    y = pd.to_numeric(pd.Series(np.asarray(outcome), dtype="float64"), errors="raise").to_numpy()
    X = design.astype("float64").reset_index(drop=True)
    X.insert(0, INTERCEPT, 1.0)
    if np.isnan(y).any() or X.isna().any().any():
        raise NotEstimable("the outcome or the design has missing values")
    n, k = X.shape
    if n <= k:
        raise NotEstimable(f"{n} observations cannot estimate {k} terms")
    constant = [c for c in X.columns[1:] if X[c].nunique() < 2]
    if constant:
        raise NotEstimable(f"term(s) without variation: {', '.join(constant)}")
    if np.linalg.matrix_rank(X.to_numpy()) < k:
        raise NotEstimable("the terms are collinear (one is a combination of the others)")
    g = None
    if groups is not None:
        if len(groups) != n:
            raise ValueError(f"groups has {len(groups)} rows but design has {n}")
        labels = pd.Series(np.asarray(groups, dtype=object))
        if labels.isna().any():
            raise NotEstimable("some rows have no cluster label")
        g = pd.factorize(labels)[0]
        if g.max() + 1 < 2:
            raise NotEstimable("cluster-robust errors need at least two clusters")
    return y, X, g


def _fit_quietly(model, **kws):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fitted = model.fit(**kws)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise NotEstimable(f"the model could not be fitted: {exc}") from None
    for w in caught:
        if "separation" in str(w.message).lower():
            raise NotEstimable("an outcome is perfectly predicted by a term (perfect separation); "
                               "merge sparse groups or drop the term")
    return fitted


def _check_separation(fitted) -> None:
    p = np.asarray(fitted.mu)
    if not np.isfinite(np.asarray(fitted.params)).all() or (np.abs(np.asarray(fitted.params)) > 30).any():
        raise NotEstimable("an outcome is perfectly predicted by a term (perfect separation); "
                           "merge sparse groups or drop the term")
    if ((p < 1e-10) | (p > 1 - 1e-10)).any():
        raise NotEstimable("some outcomes are perfectly predicted (perfect separation); merge sparse "
                           "groups or drop the term")


def _result(kind, outcome, model, fitted, X, g, alpha, conservative) -> RegressionResult:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    params = np.asarray(fitted.params, dtype="float64")
    se_model = np.asarray(fitted.bse, dtype="float64")
    if g is None:
        se = se_model
        df = float(fitted.df_resid) if kind == "ols" else None
        n_groups = None
        covariance = ("model-based standard errors, t distribution" if kind == "ols"
                      else "model-based standard errors, normal distribution")
    else:
        robust = _fit_quietly(model, cov_type="cluster", cov_kwds={"groups": g})
        se_cluster = np.asarray(robust.bse, dtype="float64")
        n_groups = int(g.max() + 1)
        df = float(n_groups - 1)
        if conservative:
            se = np.maximum(se_cluster, se_model)
            raised = int((se_model > se_cluster).sum())
            covariance = (f"cluster-robust standard errors ({n_groups} clusters), never below the "
                          f"model-based ones ({raised} of {len(se)} raised), t distribution with "
                          f"{n_groups - 1} degrees of freedom")
        else:
            se = se_cluster
            covariance = (f"cluster-robust standard errors ({n_groups} clusters), t distribution with "
                          f"{n_groups - 1} degrees of freedom")
    statistic = params / se
    if df is None:
        p = 2 * stats.norm.sf(np.abs(statistic))
        crit = stats.norm.ppf(1 - alpha / 2)
    else:
        p = 2 * stats.t.sf(np.abs(statistic), df)
        crit = stats.t.ppf(1 - alpha / 2, df)
    terms = pd.DataFrame({
        "term": pd.Series(list(X.columns), dtype="str"),
        "estimate": params, "std_err": se, "statistic": statistic, "p_value": p,
        "low": params - crit * se, "high": params + crit * se,
    })
    if kind == "logit":
        terms["odds_ratio"] = np.exp(terms["estimate"])
        terms["odds_ratio_low"] = np.exp(terms["low"])
        terms["odds_ratio_high"] = np.exp(terms["high"])
    name = getattr(outcome, "name", None) or "outcome"
    return RegressionResult(kind, str(name), terms, int(len(X)), n_groups, covariance, df,
                            float(fitted.llf), float(fitted.aic), float(alpha), fitted)

