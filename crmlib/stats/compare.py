"""Each group against all the others at once: the others' median and the Mann-Whitney U test.

Comparing every owner's sales cycles with everybody else's deals means one test per
group against the rest. Done group by group (scipy ranks the group and the rest anew
each time) that costs groups x deals; here the values are sorted and ranked once and
every group's statistic comes from that single ranking, with scipy's own arithmetic, so
the p-values are the ones ``scipy.stats.mannwhitneyu(group, rest)`` gives (a test
compares them). Nothing here reads files, prints or plots.
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy.stats import mannwhitneyu, rankdata

__all__ = ["one_vs_rest"]


def one_vs_rest(values, group_of, n_groups: int, *, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """For each group, the median of the other groups' values and the two-sided Mann-Whitney U p-value.

    Parameters
    ----------
    values : the values (no missing value).
    group_of : per value, its group's position 0 .. n_groups-1.
    n_groups : how many groups (a group may have no value).
    min_n : the fewest values on either side for a test (fewer: NaN).

    Returns
    -------
    ``(others_median, p_value)``, one entry per group. The p-value is scipy's
    ``mannwhitneyu(group, rest, alternative="two-sided")`` with its defaults: the normal
    approximation with tie and continuity corrections, or the exact distribution when one
    side has at most 8 values and no value is tied (then scipy itself is asked).
    """
    x = np.asarray(values, dtype="float64").ravel()
    g = np.asarray(group_of, dtype="int64").ravel()
    if len(x) != len(g):
        raise ValueError(f"values ({len(x)}) and group_of ({len(g)}) differ in length")
    if np.isnan(x).any():
        raise ValueError("values has missing values; drop them first")
    if len(g) and (g.min() < 0 or g.max() >= n_groups):
        raise ValueError(f"group_of must lie in 0 .. {n_groups - 1}")
    n = len(x)
    n1 = np.bincount(g, minlength=n_groups).astype("int64")
    n2 = n - n1
    others = np.full(n_groups, np.nan)
    p = np.full(n_groups, np.nan)
    if n == 0:
        return others, p

    # the others' median: the k-th value of the rest is found from the group's own places
    # in the sorted values (every value of the rest before it is not the group's)
    order = np.argsort(x, kind="stable")
    s = x[order]
    place = np.empty(n, dtype="int64")
    place[order] = np.arange(n)
    by_group = np.lexsort((place, g))
    places = place[by_group]
    ends = np.cumsum(n1)
    for i in np.flatnonzero(n2 > 0):
        mine = places[ends[i] - n1[i]:ends[i]]
        shifted = mine - np.arange(len(mine))  # group values before the k-th of the rest, per k

        def kth(k: int) -> float:
            return float(s[k + np.searchsorted(shifted, k, side="right")])

        r = int(n2[i])
        others[i] = kth(r // 2) if r % 2 else (kth(r // 2 - 1) + kth(r // 2)) / 2

    # Mann-Whitney U from one ranking (the group and the rest together are all the values)
    ranks = rankdata(x)
    ties = np.unique(s, return_counts=True)[1].astype("float64")
    any_tie = bool((ties > 1).any())
    r1 = np.bincount(g, weights=ranks, minlength=n_groups)
    u1 = r1 - n1 * (n1 + 1) / 2
    u = np.maximum(u1, n1 * n2 - u1)
    tie_term = np.sum(ties**3 - ties)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        z = (u - n1 * n2 / 2 - 0.5) / sd
    p_asym = np.clip(special.ndtr(-z) * 2, 0.0, 1.0)
    testable = (n1 >= min_n) & (n2 >= min_n)
    p[testable] = p_asym[testable]
    exact = testable & ((n1 <= 8) | (n2 <= 8)) & (not any_tie)
    for i in np.flatnonzero(exact):
        p[i] = float(mannwhitneyu(x[g == i], x[g != i], alternative="two-sided").pvalue)
    return others, p
