"""Time-series forecast of bookings: ETS and SARIMAX chosen by AICc, prediction intervals, rolling-origin backtest.

The method, in the order a report uses it:

1. :func:`select_model` fits every candidate on the training window and keeps the one
   with the smallest AICc (small-sample corrected AIC). Once two full years exist every
   candidate carries the yearly cycle (see :func:`candidate_specs` for why AICc is not
   left to decide that): statsmodels ``ETSModel`` (additive or multiplicative error; no,
   additive or, without a season, damped trend; a seasonal state when the year has at
   most 24 periods) and ``SARIMAX`` regressions on a constant or a constant + linear
   trend with white-noise or AR(1) errors (dynamic regression), on the bookings or on
   their logarithm, whose yearly cycle is one effect per month (seasonal dummies) or,
   for weeks, K = 2..10 Fourier pairs. No candidate differences the series, and a
   log-scale candidate's likelihood is turned into one of the bookings by the Jacobian
   of the logarithm, so every likelihood is a density of the same observations and the
   AICc values can be compared across families and scales (Hyndman & Athanasopoulos,
   FPP3 §7.5 and §9.8). The SARIMAX candidates' exact maximum likelihood is found in
   closed form and checked against statsmodels' own fit in the tests; only the chosen
   model becomes a statsmodels results object.
2. :func:`forecast` predicts 1..h periods ahead with prediction intervals (80% and 95%
   by default) from simulated future paths of the chosen model that also draw its
   estimates from their sampling distribution (seeded, so a re-run agrees); the paths
   also give intervals for sums such as "the rest of the quarter". Bookings cannot be
   negative, so simulated values are cut at zero.
3. :func:`backtest` repeats the whole procedure -- selection included -- at rolling
   origins (at least 8) and compares its errors with the naive forecast (the last value)
   and the seasonal naive forecast (the value a year earlier). Errors per horizon:
   MAE, MASE (absolute error divided by the in-sample mean absolute error of the seasonal
   naive forecast at that origin, or of the naive one when there is less than a year) and
   MAPE. A model that does not beat the best baseline should not be trusted over it.
4. :func:`seasonality_trend` describes the history: a linear trend (growth per year as a
   share of the level at the start) times a factor per calendar month, fitted by robust
   least squares on the log scale (scipy), with standard errors.

Everything here takes a plain series of numbers in time order (one per complete period)
and returns frozen dataclasses with ``to_frame()`` and ``summary()``; nothing reads files,
prints or plots.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "SEASON", "ModelSpec", "ModelSelection", "Forecast", "Backtest", "SeasonalityTrend",
    "season_length", "candidate_specs", "select_model", "forecast", "baseline_forecast",
    "backtest", "seasonality_trend", "mase_scale", "BookingsForecast", "forecast_bookings",
    "choose_lead", "one_blas_thread",
]

#: periods per year and the exact length of the yearly cycle in periods, per frequency
SEASON = {"month": (12, 12.0), "week": (52, 365.25 / 7)}
LEVELS = (0.8, 0.95)
BASELINES = ("naive", "seasonal naive")
_MAX_ETS_SEASON = 24  # an ETS seasonal state per week of the year is too many to estimate


@contextmanager
def one_blas_thread():
    """Run the enclosed code with OpenBLAS limited to one thread, then restore the previous count.

    The models here are small (a few dozen numbers): extra BLAS threads only spin, and
    on a busy machine (a pack running reports in parallel) they made the backtest five
    to ten times slower. This finds the OpenBLAS libraries bundled with numpy and scipy
    wheels and sets their thread count through their own ``*_set_num_threads``
    functions (what ``threadpoolctl`` does); where none is found it does nothing.
    Setting ``OPENBLAS_NUM_THREADS=1`` in the environment has the same effect for a
    whole process.
    """
    handles = _openblas_handles()
    before = []
    for lib, get, put in handles:
        try:
            before.append((put, int(get())))
            put(1)
        except (OSError, ValueError, TypeError):  # pragma: no cover - exotic builds
            continue
    try:
        yield
    finally:
        for put, n in before:
            put(n)


_BLAS_CACHE: list | None = None


def _openblas_handles() -> list:
    global _BLAS_CACHE
    if _BLAS_CACHE is not None:
        return _BLAS_CACHE
    import ctypes
    import glob
    import os

    import scipy

    found = []
    for pkg in (np, scipy):
        folder = os.path.join(os.path.dirname(os.path.dirname(pkg.__file__)), f"{pkg.__name__}.libs")
        for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:  # pragma: no cover - unreadable library
                continue
            for get_name, set_name in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                                       ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                                       ("openblas_get_num_threads", "openblas_set_num_threads")):
                get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    found.append((lib, get, put))
                    break
    _BLAS_CACHE = found
    return found


def season_length(freq: str) -> int:
    """Periods per year: 12 for months, 52 for weeks."""
    if freq not in SEASON:
        raise ValueError(f"freq must be one of {', '.join(SEASON)}, not {freq!r}")
    return SEASON[freq][0]


# ----------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class ModelSpec:
    """One candidate model: an ETS or a SARIMAX specification (or a naive baseline)."""

    family: str  # "ETS", "SARIMAX", "naive", "seasonal naive"
    error: str | None = None  # ETS: "add" | "mul"
    trend: str | None = None  # ETS: None | "add"; SARIMAX: "c" | "ct"
    damped: bool = False
    seasonal: str | None = None  # ETS: None | "add" | "mul"
    order: tuple[int, int, int] = (0, 0, 0)  # SARIMAX (p, d, q)
    fourier: int = 0  # SARIMAX: number of Fourier pairs of the yearly cycle
    dummies: bool = False  # SARIMAX: one effect per period of the year (seasonal dummies)
    transform: str | None = None  # SARIMAX: None (bookings as they are) | "log" (log bookings)

    @property
    def label(self) -> str:
        """A short name: ``ETS(M,Ad,M)``, ``ARIMA(1,0,0) + trend + seasonal dummies, log scale``, ``seasonal naive``."""
        if self.family == "ETS":
            e = {"add": "A", "mul": "M"}[self.error]
            t = "N" if self.trend is None else ("Ad" if self.damped else "A")
            s = {None: "N", "add": "A", "mul": "M"}[self.seasonal]
            return f"ETS({e},{t},{s})"
        if self.family == "SARIMAX":
            p, d, q = self.order
            text = f"ARIMA({p},{d},{q})"
            text += " + trend" if self.trend == "ct" else " + constant"
            if self.dummies:
                text += " + seasonal dummies"
            elif self.fourier:
                text += f" + {self.fourier} Fourier pair{'s' if self.fourier > 1 else ''}"
            if self.transform == "log":
                text += ", log scale"
            return text
        return self.family

    @property
    def is_seasonal(self) -> bool:
        return (self.seasonal is not None or self.fourier > 0 or self.dummies
                or self.family == "seasonal naive")


def candidate_specs(n: int, *, freq: str = "month", positive: bool = True,
                    seasonal: bool | None = None) -> list[ModelSpec]:
    """The candidate models for a series of ``n`` periods.

    With at least two full years of history (``seasonal=None``), or when forced
    (``seasonal=True``), **every** candidate carries the yearly cycle; otherwise none does
    (``seasonal=False`` forbids it). The seasonal candidates are:

    * ETS with additive or multiplicative error, no or additive trend and a seasonal
      state of the same kind as the error, when the year has at most 24 periods;
    * SARIMAX regressions on a constant or a linear trend with white-noise or AR(1)
      errors, on the bookings or on their logarithm (a multiplicative pattern), whose
      yearly cycle is one effect per period of the year (seasonal dummies) for months and
      K = 2, 4, .., 10 Fourier pairs for weeks (FPP3 §7.4: Fourier terms pay off for long
      seasonal periods; with 12 months they only smooth a pattern that need not be smooth).

    Why not let AICc decide between seasonal and non-seasonal models: with two or three
    years, the 11 monthly effects cost so much in AICc's small-sample penalty that it
    prefers a flat model even for strongly seasonal bookings, whose forecasts then miss
    every December (measured on the sample: a flat mean chosen at the 24-26 month
    origins of the backtest). The rule "a yearly cycle once two years are seen" is also
    Prophet's default for yearly seasonality; the backtest against the seasonal naive
    forecast remains the check that the choice pays off.

    The damped trend is offered without a seasonal state only (as R's ``ets`` allows, but
    not worth its cost here): a seasonal ETS model already spends 16-18 parameters on two
    or three years, and on the sample's 35 months the damped seasonal models scored 10
    AICc points above the undamped ones while being the slowest fits of the backtest.
    ``positive=False`` (a period with zero bookings) drops the multiplicative ETS models
    and the log-scale regressions, which need y > 0.
    """
    m, _ = SEASON[freq]
    use_season = (n >= 2 * m) if seasonal is None else (bool(seasonal) and n >= m + 2)
    errors = ("add", "mul") if positive else ("add",)
    transforms = (None, "log") if positive else (None,)
    specs: list[ModelSpec] = []
    if use_season and m <= _MAX_ETS_SEASON:
        cycles = [dict(dummies=True)]
    elif use_season:
        cycles = [dict(fourier=k) for k in (2, 4, 6, 8, 10) if 2 * k < m]
    else:
        cycles = [{}]
    if not use_season or m <= _MAX_ETS_SEASON:
        for err in errors:
            for trend, damped in ((None, False), ("add", False), ("add", True)):
                if use_season and damped:
                    continue  # see below
                season = ("add" if err == "add" else "mul") if use_season else None
                specs.append(ModelSpec("ETS", error=err, trend=trend, damped=damped, seasonal=season))
    for transform in transforms:
        for trend in ("c", "ct"):
            for order in ((0, 0, 0), (1, 0, 0)):
                for cycle in cycles:
                    specs.append(ModelSpec("SARIMAX", trend=trend, order=order, transform=transform, **cycle))
    return specs


def _fourier(pos: np.ndarray, k: int, period: float) -> np.ndarray | None:
    """Fourier regressors sin/cos(2 pi j t / period), j = 1..k (a sine that is always 0 is dropped)."""
    if k == 0:
        return None
    cols = []
    for j in range(1, k + 1):
        if not (abs(2 * j - period) < 1e-9):  # at j = period / 2 the sine is zero at every t
            cols.append(np.sin(2 * np.pi * j * pos / period))
        cols.append(np.cos(2 * np.pi * j * pos / period))
    return np.column_stack(cols)


@dataclass(frozen=True, eq=False)
class _Fit:
    """One fitted candidate: maximum-likelihood parameters, log-likelihood and AICc; results on demand."""

    spec: ModelSpec
    model: object = field(repr=False)  # the statsmodels model (ETSModel or SARIMAX)
    params: np.ndarray = field(repr=False)
    llf: float  # log-likelihood of the (scaled) bookings themselves, Jacobian included for log models
    k: int  # estimated parameters, as statsmodels counts them for the AICc
    aicc: float

    def results(self):
        """The statsmodels results at the estimates (forecasts, simulation, summary); a log model's are on the log scale."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.model.smooth(self.params)


def _fit(spec: ModelSpec, y: np.ndarray, freq: str, start_params=None) -> _Fit:
    """Fit one candidate on the scaled series by maximum likelihood.

    ETS models are fitted by statsmodels (``ETSModel.fit``; ``start_params`` may carry
    the estimates of a neighbouring window to save iterations); their AICc counts the
    smoothing parameters, the initial states and the error variance, as statsmodels
    does. The SARIMAX candidates are regressions with white-noise or AR(1) errors, whose
    exact maximum likelihood is found in closed form (least squares; for AR(1) a
    one-dimensional search over the AR coefficient with the exact Prais-Winsten
    likelihood, the same likelihood SARIMAX's Kalman filter computes); statsmodels
    ``SARIMAX.smooth`` turns the estimates into results for the chosen model.

    A log-scale candidate is fitted to log(y); its log-likelihood is turned into one of y
    itself by the Jacobian of the transform, -sum(log y), so that its AICc can be compared
    with the other candidates' (the change-of-variables rule for densities).
    """
    from statsmodels.tools.eval_measures import aicc

    m, period = SEASON[freq]
    n = len(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failures are caught by the caller, not warned about
        if spec.family == "ETS":
            from statsmodels.tsa.exponential_smoothing.ets import ETSModel

            model = ETSModel(y, error=spec.error, trend=spec.trend, damped_trend=spec.damped,
                             seasonal=spec.seasonal, seasonal_periods=m if spec.seasonal else None,
                             initialization_method="estimated")
            start = start_params if start_params is not None and len(start_params) == model.k_params else None
            params = np.asarray(model.fit(start_params=start, disp=False, maxiter=1000, return_params=True))
            llf = float(model.loglike(params))
            k = int(model.k_params) + 1  # + the error variance (concentrated out)
        else:
            from statsmodels.tsa.statespace.sarimax import SARIMAX

            z = _transform(spec, y)
            exog = _regressors(spec, np.arange(n), freq)
            model = SARIMAX(z, exog=exog, order=spec.order, trend="n")
            params, llf = _regression_mle(spec, z, exog)
            if spec.transform == "log":
                llf -= float(np.sum(z))  # density of y = density of log y / y
            k = len(params)
    value = float(aicc(llf, n, k)) if n - k - 1 > 0 else math.inf
    return _Fit(spec, model, params, llf, k, value)


def _transform(spec: ModelSpec, y: np.ndarray) -> np.ndarray:
    """The series a SARIMAX candidate models: y itself or log(y)."""
    if spec.transform == "log":
        if (y <= 0).any():
            raise ValueError("a log-scale model needs positive bookings in every period")
        return np.log(y)
    return y


def _regressors(spec: ModelSpec, pos: np.ndarray, freq: str) -> np.ndarray:
    """The regression part of a SARIMAX candidate: constant, linear trend (per year) and the yearly cycle (dummies or Fourier terms)."""
    m, period = SEASON[freq]
    cols = [np.ones(len(pos))]
    if spec.trend == "ct":
        cols.append(pos / period)  # slope per year, in scaled units
    if spec.dummies:
        season = np.asarray(pos) % m
        cols += [(season == j).astype("float64") for j in range(1, m)]  # position 0 is the reference
    four = _fourier(pos, spec.fourier, period)
    return np.column_stack(cols if four is None else cols + [four])


def _prais_winsten(y: np.ndarray, exog: np.ndarray, phi: float) -> tuple[np.ndarray, np.ndarray]:
    """The regression with stationary AR(1) errors turned into one with white-noise errors (first row scaled by sqrt(1 - phi^2))."""
    r = math.sqrt(1 - phi * phi)
    ys = np.concatenate([[y[0] * r], y[1:] - phi * y[:-1]])
    xs = np.vstack([exog[:1] * r, exog[1:] - phi * exog[:-1]])
    return ys, xs


def _regression_mle(spec: ModelSpec, y: np.ndarray, exog: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact maximum-likelihood parameters [beta..., (phi), sigma2] of y = X beta + u (u white noise or stationary AR(1)) and the log-likelihood."""
    n = len(y)
    if spec.order == (0, 0, 0):
        beta, *_ = np.linalg.lstsq(exog, y, rcond=None)
        resid = y - exog @ beta
        sigma2 = float(resid @ resid) / n
        return np.concatenate([beta, [sigma2]]), -0.5 * n * (math.log(2 * math.pi * sigma2) + 1)
    if spec.order != (1, 0, 0):
        raise ValueError(f"unsupported SARIMAX candidate order {spec.order}")

    def profile(phi):
        ys, xs = _prais_winsten(y, exog, phi)
        beta, *_ = np.linalg.lstsq(xs, ys, rcond=None)
        resid = ys - xs @ beta
        sigma2 = float(resid @ resid) / n
        llf = -0.5 * n * (math.log(2 * math.pi * sigma2) + 1) + 0.5 * math.log(1 - phi * phi)
        return llf, beta, sigma2

    # the search runs on the normal equations, whose cross-products are quadratics in phi
    # (computed once); the optimum is then evaluated exactly by least squares
    a = np.column_stack([exog, y])
    x1 = np.outer(a[0], a[0])
    s00, s01, s11 = a[1:].T @ a[1:], a[1:].T @ a[:-1], a[:-1].T @ a[:-1]
    s01 = s01 + s01.T

    def fast(phi):
        m = (1 - phi * phi) * x1 + s00 - phi * s01 + phi * phi * s11
        xx, xy, yy = m[:-1, :-1], m[:-1, -1], m[-1, -1]
        beta = np.linalg.lstsq(xx, xy, rcond=None)[0]
        rss = max(float(yy - beta @ xy), 1e-300)
        return -0.5 * n * (math.log(2 * math.pi * rss / n) + 1) + 0.5 * math.log(1 - phi * phi)

    from scipy.optimize import minimize_scalar

    grid = np.linspace(-0.95, 0.95, 39)
    best = grid[int(np.argmax([fast(g) for g in grid]))]
    opt = minimize_scalar(lambda ph: -fast(ph), bounds=(max(best - 0.05, -0.999), min(best + 0.05, 0.999)),
                          method="bounded", options={"xatol": 1e-7})
    phi = float(opt.x)
    llf, beta, sigma2 = profile(phi)
    return np.concatenate([beta, [phi, sigma2]]), llf


# ----------------------------------------------------------------------------- selection
@dataclass(frozen=True, eq=False)
class ModelSelection:
    """The candidates fitted on one training window and the one with the smallest AICc."""

    spec: ModelSpec
    result: object = field(repr=False)  # statsmodels results of the chosen model (scaled data)
    table: pd.DataFrame = field(repr=False)  # model, family, aicc, loglik, params, converged, note
    n: int
    scale: float
    freq: str
    seconds: float

    def to_frame(self) -> pd.DataFrame:
        """The candidates, best (smallest AICc) first, with ``delta_aicc`` to the best."""
        return self.table.copy()

    def summary(self) -> str:
        ok = self.table["aicc"].notna().sum()
        return (f"{self.spec.label} chosen by AICc among {ok} fitted candidates on {self.n} periods")


def select_model(y, *, freq: str = "month", candidates: list[ModelSpec] | None = None,
                 seasonal: bool | None = None, warm: dict | None = None) -> ModelSelection:
    """Fit every candidate on ``y`` and keep the one with the smallest AICc.

    Parameters
    ----------
    y : bookings per complete period, oldest first (a sequence or Series of numbers).
    freq : ``"month"`` or ``"week"`` (sets the yearly cycle).
    candidates : the specifications to try (default :func:`candidate_specs`).
    seasonal : force (True) or forbid (False) seasonal candidates; None decides by history
        length (two full years).
    warm : a dict kept between calls on overlapping windows (the backtest): ETS start
        values are taken from it and the new estimates stored in it.

    Candidates that fail or do not converge are kept in the table with a note and are
    never chosen. The series is divided by its mean before fitting (numerical stability;
    AICc differences are unaffected because every candidate sees the same data).
    """
    with one_blas_thread():
        return _select_model(y, freq=freq, candidates=candidates, seasonal=seasonal, warm=warm)


def _select_model(y, *, freq, candidates, seasonal, warm) -> ModelSelection:
    t0 = time.perf_counter()
    values = _values(y)
    if len(values) < 6:
        raise ValueError(f"a forecast needs at least 6 complete periods of bookings, not {len(values)}")
    scale = float(np.mean(np.abs(values))) or 1.0
    ys = values / scale
    specs = candidates if candidates is not None else candidate_specs(
        len(values), freq=freq, positive=bool((values > 0).all()), seasonal=seasonal)
    rows, fitted = [], {}
    for i, spec in enumerate(specs):
        try:
            fit = _fit(spec, ys, freq, start_params=None if warm is None else warm.get(spec))
        except (ValueError, np.linalg.LinAlgError, RuntimeError, ZeroDivisionError) as exc:
            rows.append(dict(model=spec.label, family=spec.family, aicc=math.nan, loglik=math.nan,
                             params=0, note=f"failed: {' '.join(str(exc).split())[:80]}"))
            continue
        note = ""
        if not np.isfinite(fit.aicc) or not np.isfinite(fit.llf):
            note = "too many parameters for the history" if np.isfinite(fit.llf) else "likelihood not finite"
        else:
            fitted[i] = fit
            if warm is not None and spec.family == "ETS":
                warm[spec] = fit.params
        rows.append(dict(model=spec.label, family=spec.family,
                         aicc=fit.aicc if not note else math.nan, loglik=fit.llf, params=fit.k,
                         note=note))
    table = pd.DataFrame(rows)
    if not fitted:
        raise ValueError("no candidate model could be fitted to the bookings series")
    best = min(fitted, key=lambda i: table.loc[i, "aicc"])
    table["delta_aicc"] = table["aicc"] - table.loc[best, "aicc"]
    table["chosen"] = table.index == best
    table = table.sort_values(["aicc", "model"], na_position="last", kind="stable").reset_index(drop=True)
    return ModelSelection(specs[best], fitted[best].results(), table, len(values), scale, freq,
                          time.perf_counter() - t0)


# ----------------------------------------------------------------------------- forecasts
@dataclass(frozen=True, eq=False)
class Forecast:
    """Point forecasts and prediction intervals for 1..h periods ahead, with simulated paths."""

    method: str  # model label, e.g. "ETS(M,N,N)" or "seasonal naive"
    mean: np.ndarray  # h point forecasts (model mean), reporting currency
    lower: dict  # level -> h lower bounds
    upper: dict  # level -> h upper bounds
    paths: np.ndarray = field(repr=False)  # (n_sims, h) simulated futures, cut at zero
    levels: tuple = LEVELS
    labels: tuple = ()  # period labels of the h forecast periods (when known)

    @property
    def horizon(self) -> int:
        return len(self.mean)

    def to_frame(self) -> pd.DataFrame:
        """One row per horizon: horizon, period, forecast, lo_80, hi_80, lo_95, hi_95 (per level)."""
        out = pd.DataFrame({"horizon": np.arange(1, self.horizon + 1),
                            "period": list(self.labels) if self.labels else [""] * self.horizon,
                            "forecast": self.mean})
        for lv in self.levels:
            out[f"lo_{lv * 100:.0f}"] = self.lower[lv]
            out[f"hi_{lv * 100:.0f}"] = self.upper[lv]
        out["method"] = self.method
        return out

    def total(self, weights=None, *, offset: float = 0.0) -> dict:
        """A weighted sum of the forecast periods (plus ``offset``, e.g. bookings so far) with intervals.

        ``weights`` (one per horizon, default all 1) is the share of each period that
        counts, e.g. the weekdays left in the running period. Returns a dict with
        ``forecast`` (from the point forecasts), ``lo_80``, ``hi_80``, ... (from the paths).
        """
        w = np.ones(self.horizon) if weights is None else np.asarray(weights, dtype="float64")
        if w.shape != (self.horizon,):
            raise ValueError(f"weights need one value per horizon ({self.horizon})")
        sums = offset + self.paths @ w
        out = {"forecast": float(offset + self.mean @ w)}
        for lv in self.levels:
            lo, hi = np.quantile(sums, [(1 - lv) / 2, (1 + lv) / 2])
            out[f"lo_{lv * 100:.0f}"], out[f"hi_{lv * 100:.0f}"] = float(lo), float(hi)
        out["paths"] = sums
        return out

    def summary(self) -> str:
        lv = max(self.levels)
        return (f"{self.method}: next period {self.mean[0]:,.0f} ({lv:.0%} interval "
                f"{self.lower[lv][0]:,.0f} to {self.upper[lv][0]:,.0f})")


def forecast(y, *, freq: str = "month", horizon: int = 3, levels=LEVELS, n_sims: int = 10_000,
             seed: int = 0, selection: ModelSelection | None = None, labels=()) -> Forecast:
    """Forecast ``horizon`` periods after ``y`` with the model chosen by AICc, with prediction intervals.

    The intervals are quantiles of ``n_sims`` simulated futures (seeded by ``seed``), cut
    at zero. The futures carry the uncertainty of the estimates, not only the luck of
    future periods: with two or three years of history a model with a dozen seasonal
    parameters leaves few degrees of freedom, and futures drawn from the fitted values
    alone (the maximum-likelihood error variance, which divides by n, and fixed
    coefficients) came out far too narrow in the backtests.

    * SARIMAX regressions: each future draws the error variance from its scaled
      inverse chi-square distribution (n - k degrees of freedom) and the coefficients
      from their normal distribution given it, then the errors (AR(1) ones carried on from
      the last residual, the AR coefficient held at its estimate). This is the posterior
      predictive of the regression under the usual flat prior, whose intervals are the
      classical ``t`` prediction intervals ``x'b +- t s sqrt(1 + x'(X'X)^-1 x)``.
      A log-scale model's futures are exponentiated; its point forecast is the mean of
      the log-normal, ``exp(mu + v / 2)`` with ``v`` the predictive variance (FPP3 §5.6,
      bias-adjusted back-transformation).
    * ETS: statsmodels simulates the state-space model from the estimates; each future's
      error variance is drawn as above from the residuals with n - k degrees of freedom
      (the smoothing parameters and initial states stay at their estimates:
      statsmodels gives no sampling distribution for them).

    The point forecast is the model's mean forecast. Pass a ``selection`` from
    :func:`select_model` to avoid fitting twice.
    """
    with one_blas_thread():
        return _forecast(y, freq=freq, horizon=horizon, levels=levels, n_sims=n_sims, seed=seed,
                         selection=selection, labels=labels)


def _forecast(y, *, freq, horizon, levels, n_sims, seed, selection, labels) -> Forecast:
    values = _values(y)
    sel = selection or select_model(values, freq=freq)
    h = int(horizon)
    rng = np.random.default_rng(seed)
    if sel.spec.family == "ETS":
        mean, paths = _ets_paths(sel.result, h, n_sims, rng)
    else:
        mean, paths = _regression_paths(sel.spec, np.asarray(sel.result.params), values / sel.scale, freq, h,
                                        n_sims, rng)
    s = sel.scale
    return _from_paths(sel.spec.label, mean * s, np.clip(paths * s, 0.0, None), levels, labels)


def _variance_draws(rss: float, df: int, n_sims: int, rng) -> np.ndarray:
    """Error variances drawn from their scaled inverse chi-square distribution: rss / chi2(df)."""
    if df < 1:
        raise ValueError("too few periods left after estimating the model to draw its error variance")
    return rss / rng.chisquare(df, n_sims)


def _ets_paths(res, h: int, n_sims: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Mean forecast and simulated futures (n_sims x h) of a fitted statsmodels ETS model, error variance drawn per future."""
    e = np.asarray(res.resid, dtype="float64")  # additive: y - fitted; multiplicative: relative errors
    df = len(e) - int(res.model.k_params)
    sigma = np.sqrt(_variance_draws(float(e @ e), df, n_sims, rng))
    errors = rng.standard_normal((h, n_sims)) * sigma[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean = np.asarray(res.forecast(h), dtype="float64")
        sims = np.asarray(res.simulate(h, repetitions=n_sims, anchor="end", random_errors=errors))
    return mean, sims.reshape(h, n_sims).T


def _regression_paths(spec: ModelSpec, params: np.ndarray, y: np.ndarray, freq: str, h: int, n_sims: int,
                      rng) -> tuple[np.ndarray, np.ndarray]:
    """Mean forecast and simulated futures (n_sims x h) of a SARIMAX regression candidate, with its parameter uncertainty.

    ``params`` are the maximum-likelihood estimates [beta..., (phi), sigma2] on the
    model's scale (log for a log model); ``y`` the scaled bookings. See :func:`forecast`.
    """
    z = _transform(spec, y)
    n = len(z)
    x = _regressors(spec, np.arange(n), freq)
    xf = _regressors(spec, np.arange(n, n + h), freq)
    ar = spec.order == (1, 0, 0)
    phi = float(params[-2]) if ar else 0.0
    zt, xt = _prais_winsten(z, x, phi)
    beta, *_ = np.linalg.lstsq(xt, zt, rcond=None)
    resid = zt - xt @ beta
    k = x.shape[1] + int(ar)
    df = n - k
    cov = np.linalg.pinv(xt.T @ xt)  # (X'X)^-1 of the whitened regression
    sigma2 = _variance_draws(float(resid @ resid), df, n_sims, rng)
    w, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.clip(w, 0.0, None))  # root @ root.T == cov
    betas = beta + (rng.standard_normal((n_sims, len(beta))) @ root.T) * np.sqrt(sigma2)[:, None]
    u = z[-1] - betas @ x[-1]  # the last error under each draw
    shocks = rng.standard_normal((n_sims, h)) * np.sqrt(sigma2)[:, None]
    paths = np.empty((n_sims, h))
    for j in range(h):
        u = phi * u + shocks[:, j]
        paths[:, j] = betas @ xf[j] + u
    steps = np.arange(1, h + 1)
    mu = xf @ beta + phi ** steps * (z[-1] - x[-1] @ beta)
    if spec.transform != "log":
        return mu, paths
    s2 = float(resid @ resid) / df
    a = xf - (phi ** steps)[:, None] * x[-1]  # the mean's dependence on beta
    var = s2 * (np.cumsum(phi ** (2 * (steps - 1))) + np.einsum("ij,jk,ik->i", a, cov, a))
    return np.exp(mu + var / 2), np.exp(paths)


def baseline_forecast(y, *, method: str = "seasonal naive", freq: str = "month", horizon: int = 3,
                      levels=LEVELS, n_sims: int = 10_000, seed: int = 0, labels=()) -> Forecast:
    """The naive (last value) or seasonal naive (same period a year earlier) forecast with prediction intervals.

    Intervals follow Hyndman & Athanasopoulos (FPP3 §5.5): the in-sample one-step
    residuals of the method give sigma; the naive forecast's error grows like a random
    walk, the seasonal naive one's by whole years. Futures are simulated (seeded) so sums
    over several periods get intervals too.
    """
    values = _values(y)
    m, _ = SEASON[freq]
    h = int(horizon)
    rng = np.random.default_rng(seed)
    if method == "naive":
        resid = np.diff(values)
        sigma = float(np.sqrt(np.mean(resid ** 2))) if len(resid) else math.nan
        mean = np.repeat(values[-1], h)
        steps = rng.standard_normal((n_sims, h)) * sigma
        sims = values[-1] + np.cumsum(steps, axis=1)
    elif method == "seasonal naive":
        if len(values) <= m:
            raise ValueError(f"the seasonal naive forecast needs more than a year ({m} periods) of history")
        resid = values[m:] - values[:-m]
        sigma = float(np.sqrt(np.mean(resid ** 2)))
        idx = np.array([len(values) + j - m * (j // m + 1) for j in range(h)])  # y[T+h-m(k+1)]
        mean = values[idx]
        years = np.array([j // m for j in range(h)])
        shocks = rng.standard_normal((n_sims, int(years.max()) + 1, h)) * sigma
        sims = mean + np.cumsum(shocks, axis=1)[:, years, np.arange(h)] if h else np.zeros((n_sims, 0))
    else:
        raise ValueError(f"method must be 'naive' or 'seasonal naive', not {method!r}")
    paths = np.clip(sims, 0.0, None)
    return _from_paths(method, mean.astype("float64"), paths, levels, labels)


def _from_paths(method, mean, paths, levels, labels) -> Forecast:
    lower, upper = {}, {}
    for lv in levels:
        lo, hi = np.quantile(paths, [(1 - lv) / 2, (1 + lv) / 2], axis=0)
        lower[lv], upper[lv] = lo, hi
    return Forecast(method, np.asarray(mean, dtype="float64"), lower, upper, paths, tuple(levels),
                    tuple(labels))


# ----------------------------------------------------------------------------- backtest
def mase_scale(y, *, freq: str = "month") -> float:
    """In-sample mean absolute error of the seasonal naive forecast (the naive one with less than a year plus one period)."""
    values = _values(y)
    m, _ = SEASON[freq]
    lag = m if len(values) > m else 1
    if len(values) <= lag:
        return math.nan
    return float(np.mean(np.abs(values[lag:] - values[:-lag])))


@dataclass(frozen=True, eq=False)
class Backtest:
    """Forecast errors of the model procedure and the baselines at rolling origins."""

    errors: pd.DataFrame = field(repr=False)  # origin, train_n, horizon, method, forecast, actual, ...
    horizon: int
    origins: int
    min_origins: int
    freq: str
    seconds: float
    chosen: pd.Series = field(repr=False)  # model chosen at each origin

    @property
    def enough_origins(self) -> bool:
        return self.origins >= self.min_origins

    def scores(self) -> pd.DataFrame:
        """Per method and horizon: forecasts scored (n), MAE, MASE, MAPE (a fraction), and the interval coverage of the model."""
        e = self.errors
        if e.empty:
            return pd.DataFrame(columns=["method", "horizon", "n", "mae", "mase", "mape"])
        g = e.groupby(["method", "horizon"], sort=False)
        out = pd.DataFrame({
            "n": g.size(),
            "mae": g["abs_error"].mean(),
            "mase": g["scaled_error"].mean(),
            "mape": g["ape"].mean(),
        })
        for col in [c for c in e.columns if c.startswith("covered_")]:
            out[col.replace("covered_", "coverage_")] = g[col].mean()
        out = out.reset_index()
        order = {m: i for i, m in enumerate(["model", *BASELINES])}
        out["_o"] = out["method"].map(order)
        return out.sort_values(["horizon", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)

    def table(self) -> pd.DataFrame:
        """MASE and MAPE per horizon side by side: one row per horizon, a column pair per method."""
        s = self.scores()
        wide = s.pivot(index="horizon", columns="method", values=["mase", "mape"])
        wide.columns = [f"{a}_{b.replace(' ', '_')}" for a, b in wide.columns]
        cols = [f"{a}_{b}" for a in ("mase", "mape") for b in ("model", "naive", "seasonal_naive")
                if f"{a}_{b}" in wide.columns]
        return wide[cols].reset_index()

    def comparison(self, horizon: int = 1) -> dict:
        """Does the model beat the best baseline at ``horizon``? MASE of each, the best baseline and a paired test.

        Returns a dict: ``horizon``, ``n``, ``model_mase``, ``baseline`` (the baseline with
        the smaller MASE), ``baseline_mase``, ``beats`` (model MASE below it) and ``p_value``
        of a paired t-test of the scaled absolute errors (two-sided; NaN with < 3 pairs).
        """
        empty = {"horizon": horizon, "n": 0, "model_mase": math.nan, "baseline": None,
                 "baseline_mase": math.nan, "beats": False, "p_value": math.nan,
                 "naive_mase": math.nan, "seasonal_naive_mase": math.nan}
        if self.errors.empty:
            return empty
        e = self.errors[self.errors["horizon"] == horizon]
        if e.empty:
            return empty
        piv = e.pivot(index="origin", columns="method", values="scaled_error")
        mase = piv.mean()
        bases = [b for b in BASELINES if b in piv.columns and piv[b].notna().any()]
        base = min(bases, key=lambda b: mase[b]) if bases else None
        pair = piv[["model", base]].dropna() if base else pd.DataFrame()
        p = math.nan
        if base and len(pair) >= 3 and (pair["model"] - pair[base]).std() > 0:
            p = float(sps.ttest_rel(pair["model"], pair[base]).pvalue)
        return {"horizon": horizon, "n": int(len(pair)), "model_mase": float(mase.get("model", math.nan)),
                "baseline": base, "baseline_mase": float(mase[base]) if base else math.nan,
                "beats": bool(base is not None and mase.get("model", math.inf) < mase[base]),
                "p_value": p,
                "naive_mase": float(mase.get("naive", math.nan)),
                "seasonal_naive_mase": float(mase.get("seasonal naive", math.nan))}

    def summary(self) -> str:
        c = self.comparison(1)
        word = "beats" if c["beats"] else "does not beat"
        return (f"at 1 period ahead the model {word} the {c['baseline']} forecast: MASE "
                f"{c['model_mase']:.2f} vs {c['baseline_mase']:.2f} over {c['n']} origins")


def backtest(y, *, freq: str = "month", horizon: int = 3, min_origins: int = 8,
             min_train: int | None = None, levels=LEVELS, reselect: bool = True,
             n_sims: int = 1000, seed: int = 0) -> Backtest:
    """Rolling-origin evaluation: at each origin the model is selected and fitted on the data before it and scored on the next periods.

    Origins are the last ``min_origins + horizon - 1`` training lengths (so horizon h is
    scored ``min_origins + horizon - h`` times); fewer when the series is too short to
    leave ``min_train`` periods (default: two years plus one period when that leaves 8
    origins, otherwise 8 periods) before the first origin -- the result then says so
    (``enough_origins``). With ``reselect=False`` the model chosen on the first window
    is refitted at later origins (faster, slightly less honest).

    The errors table has one row per origin, horizon and method ("model", "naive",
    "seasonal naive"): forecast, actual, abs_error, scaled_error (abs error / the
    origin's :func:`mase_scale`), ape (abs error / actual; NaN when actual is 0) and,
    for the model, whether each prediction interval covered the actual.
    """
    with one_blas_thread():
        return _backtest(y, freq=freq, horizon=horizon, min_origins=min_origins, min_train=min_train,
                         levels=levels, reselect=reselect, n_sims=n_sims, seed=seed)


def _backtest(y, *, freq, horizon, min_origins, min_train, levels, reselect, n_sims, seed) -> Backtest:
    t0 = time.perf_counter()
    values = _values(y)
    n, h = len(values), int(horizon)
    m, _ = SEASON[freq]
    if min_train is None:
        min_train = 2 * m + 1 if n - (min_origins + h - 1) >= 2 * m + 1 else 8
    first = max(min_train, n - (min_origins + h - 1))
    origins = list(range(first, n))
    rows, chosen, warm = [], {}, {}
    spec = None
    for T in origins:
        train, steps = values[:T], min(h, n - T)
        if steps <= 0:
            continue
        actual = values[T:T + steps]
        scale = mase_scale(train, freq=freq)
        if reselect or spec is None:
            sel = select_model(train, freq=freq, warm=warm)
            spec = sel.spec
        else:
            sel = select_model(train, freq=freq, candidates=[spec], warm=warm)
        chosen[T] = sel.spec.label
        fc = forecast(train, freq=freq, horizon=steps, levels=levels, n_sims=n_sims, seed=seed,
                      selection=sel)
        methods = {"model": fc}
        methods["naive"] = baseline_forecast(train, method="naive", freq=freq, horizon=steps,
                                             levels=levels, n_sims=10, seed=seed)
        if T > m:
            methods["seasonal naive"] = baseline_forecast(train, method="seasonal naive", freq=freq,
                                                          horizon=steps, levels=levels, n_sims=10,
                                                          seed=seed)
        for name, f in methods.items():
            for j in range(steps):
                err = actual[j] - f.mean[j]
                row = dict(origin=T, train_n=T, horizon=j + 1, method=name, forecast=f.mean[j],
                           actual=actual[j], error=err, abs_error=abs(err),
                           scaled_error=abs(err) / scale if scale and np.isfinite(scale) else math.nan,
                           ape=abs(err) / abs(actual[j]) if actual[j] != 0 else math.nan)
                if name == "model":
                    for lv in levels:
                        row[f"covered_{lv * 100:.0f}"] = bool(f.lower[lv][j] <= actual[j] <= f.upper[lv][j])
                rows.append(row)
    errors = pd.DataFrame(rows)
    return Backtest(errors, h, len(origins), int(min_origins), freq, time.perf_counter() - t0,
                    pd.Series(chosen, name="model"))


# ----------------------------------------------------------------------------- description
@dataclass(frozen=True, eq=False)
class SeasonalityTrend:
    """Trend and yearly pattern of a monthly series: y = level x (1 + trend_per_year x years) x factor[month]."""

    level: float  # expected bookings per period at the start, before the seasonal factor
    level_se: float  # standard error of log(level), i.e. roughly its relative error
    trend_per_year: float  # growth per year as a share of the starting level
    trend_se: float
    factors: pd.DataFrame  # season (1..12), factor (mean 1), se, low, high, n (periods seen)
    residual_sd: float  # sd of log(actual / fitted): the typical deviation from the curve
    n: int
    correlation: float  # correlation of actual and fitted values

    def to_frame(self) -> pd.DataFrame:
        return self.factors.copy()

    def summary(self) -> str:
        top = self.factors.loc[self.factors["factor"].idxmax()]
        low = self.factors.loc[self.factors["factor"].idxmin()]
        return (f"trend {self.trend_per_year:+.1%} a year (se {self.trend_se:.1%}); strongest month "
                f"{int(top['season'])} ({top['factor']:.2f}), weakest {int(low['season'])} "
                f"({low['factor']:.2f}); typical deviation {self.residual_sd:.0%}")


def seasonality_trend(y, season, years, *, season_length: int = 12, loss: str = "soft_l1",
                      level: float = 0.95) -> SeasonalityTrend:
    """Fit y = a x (1 + b x years) x s[season] with the factors s averaging 1, on the log scale.

    Parameters
    ----------
    y : bookings per complete period (positive).
    season : the position in the year of each period (1..12 for months).
    years : time of each period's middle in years since the start of the series.
    loss : scipy ``least_squares`` loss; the default ``soft_l1`` keeps one freak period
        (a month at half its usual level) from bending the whole curve.

    Standard errors come from the Jacobian at the optimum (Gauss-Newton), scaled by the
    residual variance; the factors' intervals are normal approximations.
    """
    from scipy.optimize import least_squares

    values = _values(y)
    season = np.asarray(season, dtype=int)
    t = np.asarray(years, dtype="float64")
    if (values <= 0).any():
        raise ValueError("seasonality_trend needs positive values (log scale)")
    m = int(season_length)
    present = np.unique(season)
    if len(values) < m + 3 or len(present) < m:
        raise ValueError(f"seasonality_trend needs every season at least once and {m + 3} periods")
    logy = np.log(values)
    idx = season - 1

    def model(theta):
        a, b, s = theta[0], theta[1], theta[2:]
        s_full = np.append(s, -s.sum())  # log factors sum to zero
        return a + np.log(np.clip(1 + b * t, 1e-6, None)) + s_full[idx]

    theta0 = np.concatenate([[logy.mean(), 0.0], np.zeros(m - 1)])
    fit = least_squares(lambda th: model(th) - logy, theta0, loss=loss, f_scale=0.15)
    resid = logy - model(fit.x)
    dof = max(len(values) - len(fit.x), 1)
    sigma2 = float(np.sum(resid ** 2) / dof)
    jac = fit.jac
    cov = np.linalg.pinv(jac.T @ jac) * sigma2
    a, b = fit.x[0], fit.x[1]
    # factors on the original scale, normalised to mean 1 (delta method for the se)
    logs = np.append(fit.x[2:], -fit.x[2:].sum())
    raw = np.exp(logs)
    norm = raw.mean()
    factors = raw / norm
    # gradient of factor_k wrt the free log factors s_1..s_{m-1}
    g = np.zeros((m, m - 1))
    dlog = np.vstack([np.eye(m - 1), -np.ones((1, m - 1))])  # d logs / d s
    draw = raw[:, None] * dlog
    dnorm = draw.mean(axis=0)
    for k in range(m):
        g[k] = (draw[k] * norm - raw[k] * dnorm) / norm ** 2
    cov_s = cov[2:, 2:]
    se = np.sqrt(np.maximum(np.einsum("ki,ij,kj->k", g, cov_s, g), 0))
    z = sps.norm.ppf(0.5 + level / 2)
    counts = np.bincount(idx, minlength=m)
    tab = pd.DataFrame({"season": np.arange(1, m + 1), "factor": factors, "se": se,
                        "low": factors - z * se, "high": factors + z * se, "n": counts})
    fitted = np.exp(model(fit.x))
    corr = float(np.corrcoef(values, fitted)[0, 1])
    g_level = np.concatenate([[1.0, 0.0], dnorm / norm])  # gradient of log(level) = a + log(norm)
    level_se = float(np.sqrt(max(g_level @ cov @ g_level, 0.0)))
    return SeasonalityTrend(float(np.exp(a) * norm), level_se, float(b), float(np.sqrt(cov[1, 1])), tab,
                            float(np.sqrt(sigma2)), len(values), corr)


# ----------------------------------------------------------------------------- helpers
def _values(y) -> np.ndarray:
    values = np.asarray(y, dtype="float64").ravel()
    if np.isnan(values).any():
        raise ValueError("the bookings series has missing values; a period without bookings is 0")
    return values


# ----------------------------------------------------------------------------- the whole procedure
@dataclass(frozen=True, eq=False)
class BookingsForecast:
    """Model selection, the model's forecast, the baselines, the backtest, and which forecast leads.

    ``lead`` is the model's forecast when it beats the best baseline at one period ahead
    in the backtest, otherwise that baseline's forecast (``lead_method`` names it).
    """

    selection: ModelSelection
    model: Forecast
    baselines: dict  # name -> Forecast
    backtest: Backtest
    comparison: dict  # Backtest.comparison(1)
    lead: Forecast
    seconds: dict  # selection, backtest, simulation

    @property
    def model_beats_baseline(self) -> bool:
        return bool(self.comparison["beats"])

    @property
    def lead_method(self) -> str:
        return self.lead.method

    def to_frame(self) -> pd.DataFrame:
        """One row per horizon and method (lead first): horizon, period, method, lead, forecast and interval bounds."""
        parts = [self.lead.to_frame().assign(lead=True)]
        for f in [self.model, *self.baselines.values()]:
            if f is not self.lead:
                parts.append(f.to_frame().assign(lead=False))
        out = pd.concat(parts, ignore_index=True)
        return out[["horizon", "period", "method", "lead", "forecast",
                    *[c for c in out.columns if c.startswith(("lo_", "hi_"))]]]

    def summary(self) -> str:
        return (f"{self.selection.summary()}; {self.backtest.summary()}; leading forecast: "
                f"{self.lead.summary()}")


def choose_lead(model: Forecast, baselines: dict, comparison: dict) -> Forecast:
    """The forecast to lead with: the model's when it beat the best baseline one period ahead (or nothing could be compared), else that baseline's."""
    base = comparison.get("baseline")
    if comparison.get("beats") or base is None or base not in baselines:
        return model
    return baselines[base]


def forecast_bookings(y, *, freq: str = "month", horizon: int = 3, levels=LEVELS,
                      n_sims: int = 10_000, seed: int = 0, min_origins: int = 8,
                      backtest_horizon: int | None = None, labels=()) -> BookingsForecast:
    """Select a model by AICc, forecast ``horizon`` periods with intervals, backtest it against the naive baselines, and pick the forecast to lead with.

    ``y`` holds the bookings of complete periods, oldest first; ``labels`` names the
    ``horizon`` forecast periods. The backtest scores horizons 1 to ``backtest_horizon``
    (default: ``horizon``). See the module notes for the method.
    """
    values = _values(y)
    if len(values) < 6:
        from ..errors import CrmDataError

        raise CrmDataError(f"only {len(values)} complete {freq}s of bookings: a forecast needs at least 6 "
                           f"(and two years for a yearly pattern); use a weekly series or a longer export",
                           table="deals", column="closed_at")
    with one_blas_thread():
        return _forecast_bookings(values, freq=freq, horizon=horizon, levels=levels, n_sims=n_sims,
                                  seed=seed, min_origins=min_origins, backtest_horizon=backtest_horizon,
                                  labels=labels)


def _forecast_bookings(values, *, freq, horizon, levels, n_sims, seed, min_origins, backtest_horizon,
                       labels) -> BookingsForecast:
    t0 = time.perf_counter()
    sel = select_model(values, freq=freq)
    t1 = time.perf_counter()
    model_fc = forecast(values, freq=freq, horizon=horizon, levels=levels, n_sims=n_sims, seed=seed,
                        selection=sel, labels=labels)
    m, _ = SEASON[freq]
    bases = {"naive": baseline_forecast(values, method="naive", freq=freq, horizon=horizon,
                                        levels=levels, n_sims=n_sims, seed=seed, labels=labels)}
    if len(values) > m:
        bases["seasonal naive"] = baseline_forecast(values, method="seasonal naive", freq=freq,
                                                    horizon=horizon, levels=levels, n_sims=n_sims,
                                                    seed=seed, labels=labels)
    t2 = time.perf_counter()
    bt = backtest(values, freq=freq, horizon=min(horizon, backtest_horizon or horizon),
                  min_origins=min_origins, levels=levels, seed=seed)
    t3 = time.perf_counter()
    comp = bt.comparison(1)
    lead = choose_lead(model_fc, bases, comp)
    return BookingsForecast(sel, model_fc, bases, bt, comp, lead,
                            {"selection": t1 - t0, "simulation": t2 - t1, "backtest": t3 - t2})

