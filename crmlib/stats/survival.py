"""Durations with censoring: Kaplan–Meier curves and cumulative incidence of competing outcomes.

Why: a sales cycle is only known for deals that have closed. Deals still open at
``as_of`` have run *at least* their age so far (they are right-censored); leaving them
out keeps only the fast deals of the recent past and makes cycles look shorter than
they are, and so does counting them as closed today. Survival analysis uses what the
open deals tell (they have not closed yet) without guessing when they will.

Two estimators, both from ``statsmodels.duration.survfunc``:

* :func:`kaplan_meier` (``SurvfuncRight``): ``S(t)``, the share of subjects whose event
  has not happened t days in, with Greenwood standard errors, pointwise log-log
  intervals and the median with its Brookmeyer–Crowley interval (``quantile_ci``,
  the SAS method). For deals: time to *close*, any close (won or lost) is the event,
  open deals are censored at ``as_of``. ``S(t)`` is then "the share of deals still open
  t days after creation".
* :func:`cumulative_incidence` (``CumIncidenceRight``, the Aalen–Johansen estimator):
  with two competing outcomes (won, lost), ``CIF_won(t)`` is the probability that a deal
  is *won* within t days of creation, ``CIF_lost(t)`` that it is lost within t days, and
  ``CIF_won(t) + CIF_lost(t) = 1 - S(t)``. ``CIF_won`` levels off at the share of deals
  eventually won.

**Time to win.** The question "how long does it take to win a deal" is about deals that
are won, so the workbook's *median time to win* is the median of the time-to-win among
deals that win: the first t at which ``CIF_won(t)`` reaches half of its final level
(:meth:`CumulativeIncidence.conditional_quantile`), with a percentile bootstrap
interval over deals (:meth:`CumulativeIncidence.conditional_median`). Without any open
deal it equals the plain median cycle of won deals; with open deals it also counts the
slow deals still running. Two common shortcuts are avoided on purpose:

* Kaplan–Meier of time-to-win with lost deals *censored at their close* treats a lost
  deal as if it could still be won later. Its curve estimates a world without losses,
  not ours: 1 - S(t) overstates the chance of winning by day t, and its median is not
  the median time to win (a unit test shows the gap on a known example).
* The median over closed (won) deals only ignores the open deals, which are the slow
  ones; it is biased low whenever many deals are still open.

The estimate assumes censoring is independent of the outcome: deals open at ``as_of``
would, given their age, win or lose like the deals of the same age that did close.
The final level of ``CIF_won`` needs a follow-up longer than most cycles (true when
the history covers many cycle lengths); for the newest deals alone it is not known yet.

Results are frozen dataclasses with ``to_frame()`` and ``summary()``, like statsmodels
results; nothing here reads files, prints or plots.

Example::

    >>> km = kaplan_meier([6, 6, 6, 7, 10], [1, 1, 1, 1, 0])
    >>> round(km.survival_at(6), 3), km.median
    (0.4, 6.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm, quantile_test
from statsmodels.duration.survfunc import CumIncidenceRight, SurvfuncRight

__all__ = ["DurationEstimate", "KaplanMeier", "CumulativeIncidence", "kaplan_meier",
           "cumulative_incidence", "median_ci"]

_TOL = 1e-12
BOOT_GRID = 20_000  # distinct times above which the bootstrap resamples binned times


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class DurationEstimate:
    """A duration (e.g. a median in days) with its confidence interval and the data behind it."""

    estimate: float
    low: float
    high: float
    n: int
    events: int
    alpha: float = 0.05
    method: str = ""
    unit: str = "days"

    @property
    def level(self) -> float:
        """Confidence level, e.g. 0.95."""
        return 1 - self.alpha

    @property
    def interval(self) -> tuple[float, float]:
        """(low, high) bounds; NaN where the data cannot bound the estimate."""
        return (self.low, self.high)

    def to_frame(self) -> pd.DataFrame:
        """One-row frame: estimate, low, high, level, n, events, method, unit."""
        return pd.DataFrame([{"estimate": self.estimate, "low": self.low, "high": self.high,
                              "level": self.level, "n": self.n, "events": self.events,
                              "method": self.method, "unit": self.unit}])

    def summary(self) -> str:
        """One line, e.g. ``46.2 days (95% CI 44.0 to 48.1), 1,667 events of 3,250``."""
        if math.isnan(self.estimate):
            return f"not reached ({self.events:,} events of {self.n:,})"
        return (f"{self.estimate:.1f} {self.unit} ({self.level:.0%} CI {_num(self.low)} to "
                f"{_num(self.high)}), {self.events:,} events of {self.n:,}")

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True, eq=False)
class KaplanMeier:
    """A Kaplan–Meier survival curve ``S(t)`` (statsmodels ``SurvfuncRight``) and its median.

    ``table`` has one row per distinct event time: time, at_risk, events, survival
    (``S(t)`` just after t), se (Greenwood), low and high (pointwise log-log interval).
    ``median`` is statsmodels' (the first event time at which ``S`` drops below one
    half; NaN when it never does) and ``median_low``/``median_high`` its
    Brookmeyer–Crowley interval (``inf`` when the data cannot bound it above).
    """

    label: str
    n: int
    events: int
    censored: int
    median: float
    median_low: float
    median_high: float
    alpha: float
    table: pd.DataFrame = field(repr=False)

    @property
    def level(self) -> float:
        return 1 - self.alpha

    @property
    def median_estimate(self) -> DurationEstimate:
        """The median as a :class:`DurationEstimate`."""
        return DurationEstimate(self.median, self.median_low, self.median_high, self.n, self.events,
                                self.alpha, "Kaplan-Meier, Brookmeyer-Crowley interval")

    def survival_at(self, t) -> float | np.ndarray:
        """``S(t)``: the estimated share without the event after t (1 before the first event)."""
        times = self.table["time"].to_numpy()
        surv = np.r_[1.0, self.table["survival"].to_numpy()]
        idx = np.searchsorted(times, np.asarray(t, dtype="float64"), side="right")
        out = surv[idx]
        return float(out) if np.ndim(out) == 0 else out

    def quantile(self, p: float) -> float:
        """The time by which a share ``p`` has had the event (statsmodels' convention; NaN if not reached)."""
        ii = np.flatnonzero(self.table["survival"].to_numpy() < 1 - p)
        return float(self.table["time"].iloc[ii[0]]) if len(ii) else math.nan

    def to_frame(self) -> pd.DataFrame:
        """The survival table (a copy), with the label as a column."""
        return self.table.assign(label=self.label)[["label", *self.table.columns]]

    def summary(self) -> str:
        """One line: median with interval, counts."""
        return (f"{self.label + ': ' if self.label else ''}median {self.median_estimate.summary()}, "
                f"{self.censored:,} censored")


@dataclass(frozen=True, eq=False)
class CumulativeIncidence:
    """Aalen–Johansen cumulative incidence of competing outcomes (statsmodels ``CumIncidenceRight``).

    ``causes`` names the outcomes coded 1, 2, ... in ``codes`` (0 = censored).
    ``table`` has one row per distinct time: time, at_risk, ``<cause>_events`` for each
    cause, censored, ``none`` (``S(t)``, no outcome yet), and ``<cause>`` (the
    cumulative incidence) and ``<cause>_se`` for each cause. The data are kept
    (``durations``, ``codes``) so the bootstrap can resample them.
    """

    label: str
    causes: tuple[str, ...]
    n: int
    censored: int
    table: pd.DataFrame = field(repr=False)
    durations: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)

    def events(self, cause: str) -> int:
        """How many subjects had outcome ``cause``."""
        return int((self.codes == self._code(cause)).sum())

    def final(self, cause: str) -> float:
        """The cumulative incidence of ``cause`` at the last observed time (its plateau)."""
        col = self.table[cause]
        return float(col.iloc[-1]) if len(col) else math.nan

    def at(self, cause: str, t) -> float | np.ndarray:
        """The cumulative incidence of ``cause`` by time t (0 before the first time)."""
        times = self.table["time"].to_numpy()
        values = np.r_[0.0, self.table[cause].to_numpy()]
        out = values[np.searchsorted(times, np.asarray(t, dtype="float64"), side="right")]
        return float(out) if np.ndim(out) == 0 else out

    def conditional_quantile(self, cause: str, p: float = 0.5) -> float:
        """The time by which a share ``p`` of the subjects that end with ``cause`` have had it.

        The quantile of ``CIF(t) / CIF(t_last)``: the first time it reaches ``p``, or the
        midpoint to the next time when it sits exactly at ``p`` (so, without censoring,
        the median equals the ordinary sample median of those subjects' durations).
        NaN when no subject had ``cause``.
        """
        return _conditional_quantile(self.table["time"].to_numpy(), self.table[cause].to_numpy(), p)

    def conditional_median(self, cause: str, *, alpha: float = 0.05, n_boot: int = 500,
                           seed: int = 0) -> DurationEstimate:
        """The median time to ``cause`` among subjects that end with it, with a bootstrap interval.

        The interval is the percentile bootstrap over subjects (``n_boot`` resamples with
        a fixed ``seed``, so reruns give the same numbers); ``n_boot=0`` gives no interval.
        """
        est = self.conditional_quantile(cause, 0.5)
        low = high = math.nan
        code = self._code(cause)
        method = f"Aalen-Johansen conditional median, percentile bootstrap ({n_boot})"
        if n_boot and not math.isnan(est):
            stats = _bootstrap_conditional_quantiles(self.durations, self.codes, code, 0.5,
                                                     n_boot=int(n_boot), seed=seed)
            stats = stats[~np.isnan(stats)]
            if len(stats):
                low, high = (float(v) for v in np.quantile(stats, [alpha / 2, 1 - alpha / 2]))
            if len(self.table) > BOOT_GRID:  # a row per distinct time
                method += f", times grouped into {BOOT_GRID:,} equal bins to resample"
        return DurationEstimate(est, low, high, self.n, self.events(cause), alpha, method)

    def to_frame(self) -> pd.DataFrame:
        """The incidence table (a copy), with the label as a column."""
        return self.table.assign(label=self.label)[["label", *self.table.columns]]

    def summary(self) -> str:
        """One line per cause: final share and conditional median."""
        parts = [f"{c}: {self.final(c):.1%} by day {self.table['time'].iloc[-1]:.0f}, median "
                 f"{_num(self.conditional_quantile(c))} among them" for c in self.causes]
        return f"{self.label + ': ' if self.label else ''}{self.n:,} subjects, " \
               f"{self.censored:,} censored; " + "; ".join(parts)

    def _code(self, cause: str) -> int:
        try:
            return self.causes.index(cause) + 1
        except ValueError:
            raise KeyError(f"unknown outcome {cause!r}; known: {', '.join(self.causes)}") from None


# ----------------------------------------------------------------------------- estimators
def kaplan_meier(durations, events, *, alpha: float = 0.05, label: str = "") -> KaplanMeier:
    """The Kaplan–Meier estimate of the survival curve from durations and event flags.

    Parameters
    ----------
    durations : non-negative times (e.g. days from creation to close, or to as_of for
        deals still open).
    events : 1/True where the event happened at that time, 0/False where the subject was
        censored (still without the event when observation stopped).
    alpha : 1 - confidence level of the intervals.
    label : a name carried into the result (e.g. the group).

    Returns
    -------
    :class:`KaplanMeier`. With no subject, or no event, the curve is flat at 1 and the
    median NaN.
    """
    t, e = _check(durations, events, "events")
    e = e.astype(bool)
    n, k = len(t), int(e.sum())
    if n == 0 or k == 0:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in
                              ("time", "at_risk", "events", "survival", "se", "low", "high")})
        return KaplanMeier(label, n, k, n - k, math.nan, math.nan, math.nan, alpha, empty)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        sf = SurvfuncRight(t, e.astype(float))
        median = float(sf.quantile(0.5))
        lo, hi = sf.quantile_ci(0.5, alpha=alpha, method="cloglog")
    s = np.asarray(sf.surv_prob, dtype="float64")
    se = np.asarray(sf.surv_prob_se, dtype="float64")
    low, high = _loglog_band(s, se, alpha)
    table = pd.DataFrame({"time": np.asarray(sf.surv_times, dtype="float64"),
                          "at_risk": np.asarray(sf.n_risk, dtype="int64"),
                          "events": np.asarray(sf.n_events, dtype="int64"),
                          "survival": s, "se": se, "low": low, "high": high})
    return KaplanMeier(label, n, k, n - k, median, float(lo), float(hi), alpha, table)


def cumulative_incidence(durations, outcomes, *, causes: Sequence[str] = ("won", "lost"),
                         label: str = "") -> CumulativeIncidence:
    """The Aalen–Johansen cumulative incidence of competing outcomes, censored subjects included.

    Parameters
    ----------
    durations : non-negative times (to the outcome, or to censoring).
    outcomes : per subject the outcome's name (one of ``causes``) or a missing value /
        ``"open"``/``"censored"`` when no outcome has happened yet (censored).
    causes : the competing outcomes in a fixed order (coded 1, 2, ...).
    label : a name carried into the result.

    Returns
    -------
    :class:`CumulativeIncidence`.

    Raises ValueError for an outcome that is neither a cause nor censored.
    """
    causes = tuple(str(c) for c in causes)
    if not causes:
        raise ValueError("cumulative_incidence needs at least one outcome in causes")
    out = pd.Series(np.asarray(outcomes, dtype=object))
    codes = np.zeros(len(out), dtype="int64")
    censored = out.isna() | out.isin(["open", "censored"])
    for i, c in enumerate(causes):
        codes[(out == c).to_numpy()] = i + 1
    unknown = (~censored & (codes == 0)).to_numpy()
    if unknown.any():
        bad = sorted(set(map(str, out[unknown])))[:5]
        raise ValueError(f"outcomes {bad} are neither one of {list(causes)} nor open/censored")
    t, codes = _check(durations, codes, "outcomes")
    times, cif, se, at_risk, counts = _cif_curves(t, codes, len(causes), full=True)
    table = pd.DataFrame({"time": times, "at_risk": at_risk})
    for i, c in enumerate(causes):
        table[f"{c}_events"] = counts[i + 1]
    table["censored"] = counts[0]
    table["none"] = 1.0 - np.sum(cif, axis=0) if len(times) else np.array([], dtype="float64")
    for i, c in enumerate(causes):
        table[c] = cif[i]
        table[f"{c}_se"] = se[i]
    return CumulativeIncidence(label, causes, len(t), int((codes == 0).sum()), table, t, codes)


def median_ci(values, *, alpha: float = 0.05) -> DurationEstimate:
    """The sample median with its distribution-free confidence interval (order statistics, scipy ``quantile_test``).

    For complete (uncensored) data such as the cycles of deals won in a period. The
    interval is ``[x_(j), x_(n-j+1)]`` with j from the Binomial(n, 1/2) distribution
    (coverage at least ``1 - alpha``); with five values or fewer no such interval exists
    at 95% and the bounds are NaN.
    """
    x = np.asarray(values, dtype="float64")
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return DurationEstimate(math.nan, math.nan, math.nan, 0, 0, alpha, "order statistics")
    est = float(np.median(x))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = quantile_test(x, q=est, p=0.5).confidence_interval(1 - alpha)
    low, high = float(ci.low), float(ci.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        low = high = math.nan
    return DurationEstimate(est, low, high, n, n, alpha, "order statistics (distribution-free)")


# ----------------------------------------------------------------------------- helpers
def _check(durations, flags, what: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(durations, dtype="float64").ravel()
    f = np.asarray(flags).ravel()
    if len(t) != len(f):
        raise ValueError(f"durations ({len(t)}) and {what} ({len(f)}) differ in length")
    if np.isnan(t).any():
        raise ValueError(f"{int(np.isnan(t).sum())} durations are missing; drop or fix them first")
    if (t < 0).any():
        raise ValueError(f"{int((t < 0).sum())} durations are negative (an end before its start); "
                         "the data audit flags these rows")
    return t, f


def _cif_curves(t: np.ndarray, codes: np.ndarray, n_causes: int, *, full: bool = False):
    """statsmodels' Aalen–Johansen curves on the distinct times (all causes present or not)."""
    if full:  # each subject's time position comes with the sort (a search of 3M deals took 1 s)
        times, pos = np.unique(t, return_inverse=True)
    else:
        times = np.unique(t)
    if len(t) == 0:
        empty = [np.array([], dtype="float64") for _ in range(n_causes)]
        if full:
            return times, empty, empty, np.array([], dtype="int64"), [np.array([], "int64")] * (n_causes + 1)
        return times, empty
    if not (codes > 0).any():  # statsmodels needs at least one event
        cif = [np.zeros(len(times)) for _ in range(n_causes)]
        se = [np.zeros(len(times)) for _ in range(n_causes)]
    else:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = CumIncidenceRight(t, codes)
        got = len(fit.cinc)  # statsmodels returns max(code) curves
        if not np.array_equal(np.asarray(fit.times, dtype="float64"), times):
            raise RuntimeError("CumIncidenceRight returned unexpected time points")
        cif = [np.asarray(fit.cinc[i], dtype="float64") if i < got else np.zeros(len(times))
               for i in range(n_causes)]
        se = [np.nan_to_num(np.asarray(fit.cinc_se[i], dtype="float64")) if i < got else np.zeros(len(times))
              for i in range(n_causes)]
    if not full:
        return times, cif
    counts = [np.bincount(pos[codes == k], minlength=len(times)).astype("int64")
              for k in range(n_causes + 1)]
    leaving = np.bincount(pos, minlength=len(times))
    at_risk = (len(t) - np.r_[0, np.cumsum(leaving)[:-1]]).astype("int64")
    return times, cif, se, at_risk, counts


def _bootstrap_conditional_quantiles(t: np.ndarray, codes: np.ndarray, code: int, p: float, *,
                                     n_boot: int, seed: int, grid: int | None = None) -> np.ndarray:
    """The conditional ``p`` quantile of cause ``code`` in each of ``n_boot`` resamples of the subjects.

    A resample of n subjects drawn with replacement puts a Multinomial(n, size / n) count
    in each cell of subjects alike (same time, same kind: censored, another cause, this
    cause), so resample b draws those counts (``rng.multinomial``, ``rng =
    default_rng(seed)``): the resample's law exactly, at a cost that grows with the cells
    rather than the subjects (3M deals: 7 ms a resample instead of 70 for the draws).
    The curve is statsmodels' Aalen–Johansen arithmetic (see :func:`_quantile_of_counts`),
    and the quantile is the one of statsmodels' own fit on the resample, bit for bit (a
    test rebuilds each resample from its counts and fits it).

    With more distinct times than ``grid`` (default :data:`BOOT_GRID`; deals timed to the
    second have as many as deals), the span of the times is cut into ``grid`` equal bins
    and every subject of a bin takes the bin's last time (:func:`_bootstrap_cells`): on the
    same resample that moves the quantile by about a bin (a test holds it within two),
    1/20,000 of the span, far inside the interval at such sizes.
    """
    times, cell = _bootstrap_cells(t, codes, code, BOOT_GRID if grid is None else int(grid))
    occupied, size = np.unique(cell, return_counts=True)
    share = size / len(t)
    rng = np.random.default_rng(seed)
    counts = np.zeros(3 * len(times), dtype=np.int64)
    out = np.empty(n_boot)
    for b in range(n_boot):
        counts[occupied] = rng.multinomial(len(t), share)
        out[b] = _quantile_of_counts(times, counts.reshape(-1, 3), p)
    return out


def _bootstrap_cells(t: np.ndarray, codes: np.ndarray, code: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct times (binned when more than ``grid > 0``) and each subject's cell
    ``3 * time position + kind`` (kind 0 censored, 1 another cause, 2 cause ``code``)."""
    times, rank = np.unique(t, return_inverse=True)
    if len(times) > grid > 0:
        times, rank = _binned(times, rank, grid)
    kind = np.where(codes == code, 2, np.where(codes > 0, 1, 0))
    return times, rank.astype(np.int64) * 3 + kind


def _quantile_of_counts(times: np.ndarray, counts: np.ndarray, p: float) -> float:
    """The conditional ``p`` quantile from per-time counts (columns: censored, another cause,
    this cause), with statsmodels' ``CumIncidenceRight`` arithmetic: all-cause survival as
    exp(cumsum(log(1 - d/n))), then cumsum(S(t-)/n * d_cause). A time without subjects adds
    exactly 0 to the sums, so the curve on all the data's times is the resample's own."""
    leaving = counts.sum(axis=1)
    d_cause = counts[:, 2].astype("float64")
    d_all = d_cause + counts[:, 1]
    at_risk = np.cumsum(leaving[::-1])[::-1]
    keep = int(np.count_nonzero(at_risk))  # the times up to the resample's last one
    at_risk = at_risk[:keep].astype("float64")
    sp = 1 - d_all[:keep] / at_risk
    gone = sp < 1e-16
    sp[gone] = 1e-16
    sp = np.exp(np.cumsum(np.log(sp)))
    sp[gone] = 0
    cif = np.cumsum(np.r_[1, sp[:-1]] / at_risk * d_cause[:keep])
    return _conditional_quantile(times[:keep], cif, p)


def _binned(times: np.ndarray, rank: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``times`` cut into ``grid`` equal bins over their span: each occupied
    bin's last time, and each subject's bin among those (``rank`` indexes ``times``)."""
    span = times[-1] - times[0]
    bins = np.minimum(((times - times[0]) / span * grid).astype(np.int64), grid - 1)
    last = np.flatnonzero(np.r_[bins[1:] != bins[:-1], True])  # the last time of each bin
    which = np.cumsum(np.r_[0, bins[1:] != bins[:-1]])  # each distinct time's bin, 0, 1, ...
    return times[last], which[rank]


def _conditional_quantile(times: np.ndarray, cif: np.ndarray, p: float) -> float:
    if len(cif) == 0 or not cif[-1] > 0:
        return math.nan
    f = cif / cif[-1]
    first = np.flatnonzero(f >= p - _TOL)
    if not len(first):
        return math.nan
    lo = float(times[first[0]])
    if abs(f[first[0]] - p) <= _TOL and first[0] + 1 < len(times):
        above = np.flatnonzero(f > p + _TOL)
        if len(above):
            return (lo + float(times[above[0]])) / 2
    return lo


def _loglog_band(s: np.ndarray, se: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise log(-log) interval of S(t) (Kalbfleisch and Prentice); exact 0/1 at the edges."""
    z = norm.ppf(1 - alpha / 2)
    with np.errstate(all="ignore"):
        log_s = np.log(s)
        width = z * se / (s * np.abs(log_s))
        low = np.exp(-np.exp(np.log(-log_s) + width))
        high = np.exp(-np.exp(np.log(-log_s) - width))
    edge = (s <= 0) | (s >= 1) | ~np.isfinite(width)
    low = np.where(edge, s, low)
    high = np.where(edge, s, high)
    return low, high


def _num(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == math.inf:
        return "not bounded"
    return f"{x:.1f}"
