"""Confidence intervals for rates (Wilson score interval).

The Wilson (1927) score interval is the workbook's interval for every share and rate
(win rate, conversion, answered calls): it stays inside [0, 1], behaves at 0 of n and
n of n, and has close to nominal coverage for small n (Newcombe 1998). Computed by
``statsmodels.stats.proportion.proportion_confint(method="wilson")``.

Example::

    >>> p = wilson(81, 263)
    >>> round(p.low, 4), round(p.high, 4)
    (0.2553, 0.3662)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

__all__ = ["Proportion", "wilson", "wilson_frame"]


@dataclass(frozen=True)
class Proportion:
    """A share ``successes / n`` with its Wilson confidence interval."""

    successes: int
    n: int
    estimate: float
    low: float
    high: float
    alpha: float = 0.05
    method: str = "wilson"

    @property
    def interval(self) -> tuple[float, float]:
        """(low, high) bounds of the confidence interval."""
        return (self.low, self.high)

    @property
    def level(self) -> float:
        """Confidence level, e.g. 0.95."""
        return 1 - self.alpha

    @property
    def failures(self) -> int:
        return self.n - self.successes

    def to_frame(self) -> pd.DataFrame:
        """One-row frame: successes, n, estimate, low, high, level, method."""
        row = asdict(self)
        row["level"] = self.level
        del row["alpha"]
        return pd.DataFrame([row], columns=["successes", "n", "estimate", "low", "high", "level",
                                            "method"])

    def summary(self) -> str:
        """One line of text, e.g. ``31.0% (95% CI 25.5% to 36.6%), 81 of 263``."""
        if self.n == 0:
            return "no observations (n = 0)"
        return (f"{self.estimate:.1%} ({self.level:.0%} CI {self.low:.1%} to {self.high:.1%}), "
                f"{self.successes:,} of {self.n:,}")

    def __str__(self) -> str:
        return self.summary()


def wilson(successes: int, n: int, *, alpha: float = 0.05) -> Proportion:
    """The Wilson score confidence interval of the share ``successes / n``.

    ``n = 0`` gives a Proportion whose estimate and bounds are NaN (nothing observed),
    never a made-up 0%.

    Raises ValueError for negative counts, non-integers or ``successes > n``.
    """
    s, m = _count(successes, "successes"), _count(n, "n")
    if s > m:
        raise ValueError(f"successes ({s}) cannot exceed n ({m})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if m == 0:
        return Proportion(0, 0, math.nan, math.nan, math.nan, alpha)
    low, high = proportion_confint(s, m, alpha=alpha, method="wilson")
    est = s / m
    return Proportion(s, m, est, float(min(max(low, 0.0), est)), float(max(min(high, 1.0), est)), alpha)


def wilson_frame(df: pd.DataFrame, successes_col: str, n_col: str, *, alpha: float = 0.05,
                 name: str = "rate") -> pd.DataFrame:
    """A copy of ``df`` with the share ``successes_col / n_col`` and its Wilson bounds added.

    Adds ``<name>``, ``<name>_low`` and ``<name>_high`` (fractions 0-1); rows with
    ``n = 0`` get NaN in all three.
    """
    for col in (successes_col, n_col):
        if col not in df.columns:
            raise KeyError(f"wilson_frame: no column {col!r} (columns: {', '.join(map(str, df.columns))})")
    s = df[successes_col].to_numpy(dtype="float64")
    m = df[n_col].to_numpy(dtype="float64")
    if np.isnan(s).any() or np.isnan(m).any():
        raise ValueError(f"wilson_frame: {successes_col}/{n_col} contain missing counts")
    if (s < 0).any() or (s > m).any():
        raise ValueError(f"wilson_frame: {successes_col} must lie between 0 and {n_col}")
    out = df.copy()
    rate = np.full(len(df), np.nan)
    low = np.full(len(df), np.nan)
    high = np.full(len(df), np.nan)
    ok = m > 0
    if ok.any():
        lo, hi = proportion_confint(s[ok], m[ok], alpha=alpha, method="wilson")
        rate[ok] = s[ok] / m[ok]
        # clipped onto [0, estimate] and [estimate, 1]: floating-point noise (3e-17 for 0 of 7)
        # must not put the bound on the wrong side of the estimate
        low[ok] = np.clip(lo, 0, rate[ok])
        high[ok] = np.clip(hi, rate[ok], 1)
    out[name] = rate
    out[f"{name}_low"] = low
    out[f"{name}_high"] = high
    return out


def _count(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be a count, not a boolean")
    as_float = float(value)
    if not as_float.is_integer() or as_float < 0:
        raise ValueError(f"{what} must be a non-negative whole number, not {value!r}")
    return int(as_float)
