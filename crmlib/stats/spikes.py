"""Weeks that stand out from the weeks just before them: one rule for every weekly alert.

Used by report 06 (weeks with too many missed calls) and report 11 (weeks with too many
SLA breaches). For each week of the window the share of "events" (missed calls,
breached tickets) is tested against the pooled share of the ``baseline_weeks`` weeks
just before it with a one-sided binomial test, and the p-values of all weeks tested are
corrected for multiple testing (Holm or Bonferroni, statsmodels ``multipletests``), so
over a year of weeks chance alone raises an alert with probability below ``alpha``.
Whether a significant week is also *material* (big enough to alert) is the caller's rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binom
from statsmodels.stats.multitest import multipletests

from ..errors import CrmConfigError

__all__ = ["weekly_spikes"]


def weekly_spikes(per_week: pd.DataFrame, *, first: pd.Timestamp, last: pd.Timestamp,
                  baseline_weeks: int = 8, min_baseline_weeks: int = 4, alpha: float = 0.05,
                  method: str = "holm") -> pd.DataFrame:
    """Per week from ``first`` to ``last``: its event share, the trailing baseline share and the corrected p-value of a one-sided binomial test that the week's share is higher.

    Parameters
    ----------
    per_week : indexed by the Monday of each week (naive dates, 7 days apart), columns
        ``n`` (trials: calls, judged tickets) and ``events`` (missed, breached); weeks
        missing from the index have no trials. Pass weeks from at least
        ``baseline_weeks`` before ``first`` so the first weeks have a baseline.
    first, last : the Mondays of the first and last week tested.
    baseline_weeks : how many weeks just before a week are pooled into its baseline.
    min_baseline_weeks : a week whose baseline has fewer weeks with trials is not tested.
    alpha, method : level and correction (``"holm"`` or ``"bonferroni"``).

    Returns
    -------
    One row per week (oldest first): ``week``, ``n``, ``events``, ``share``,
    ``baseline_weeks``, ``baseline_n``, ``baseline_events``, ``baseline_share``,
    ``p_value`` (P(X >= events) for X ~ Binomial(n, baseline_share)), ``p_adjusted``,
    ``tested``.
    """
    if baseline_weeks < 1 or not 0 < alpha < 1:
        raise CrmConfigError("weekly_spikes needs baseline_weeks >= 1 and 0 < alpha < 1")
    if method not in ("holm", "bonferroni"):
        raise CrmConfigError(f"method must be 'holm' or 'bonferroni', not {method!r}")
    lo = min(first - pd.Timedelta(weeks=baseline_weeks), per_week.index.min() if len(per_week) else first)
    per = per_week[["n", "events"]].reindex(pd.date_range(lo, last, freq="7D"), fill_value=0).astype("int64")

    def trailing(col: pd.Series) -> pd.Series:
        return col.shift(1).rolling(baseline_weeks, min_periods=1).sum().fillna(0).astype("int64")

    out = per.assign(baseline_weeks=trailing((per["n"] > 0).astype("int64")),
                     baseline_n=trailing(per["n"]), baseline_events=trailing(per["events"]))
    out = out.loc[out.index >= first].copy()
    out.index.name = "week"
    out["share"] = out["events"] / out["n"].where(out["n"] > 0)
    out["baseline_share"] = out["baseline_events"] / out["baseline_n"].where(out["baseline_n"] > 0)
    out["tested"] = (out["n"] > 0) & (out["baseline_weeks"] >= min_baseline_weeks) & (out["baseline_n"] > 0)
    t = out["tested"].to_numpy(bool)
    p = np.full(len(out), np.nan)
    p[t] = binom.sf(out["events"].to_numpy()[t] - 1, out["n"].to_numpy()[t], out["baseline_share"].to_numpy()[t])
    adj = np.full(len(out), np.nan)
    if t.any():
        adj[t] = multipletests(p[t], alpha=alpha, method=method)[1]
    out["p_value"] = p
    out["p_adjusted"] = adj
    return out.reset_index()
