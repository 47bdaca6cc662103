"""crmlib.stats.compare: each group against the rest, checked by hand and against scipy / numpy group by group."""

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from crmlib.stats.compare import one_vs_rest


def test_by_hand_two_groups_of_three():
    # group 0 = {1, 2, 3}, group 1 = {4, 5, 6}: every value of group 0 is below group 1, so
    # U = 0 and the exact two-sided p is 2 x 1 / C(6, 3) = 2 / 20 = 0.1
    others, p = one_vs_rest([4, 1, 5, 2, 6, 3], [1, 0, 1, 0, 1, 0], 2)
    assert others.tolist() == [5.0, 2.0]
    assert p == pytest.approx([0.1, 0.1], abs=1e-12)


def test_small_groups_and_empty_ones_give_nan():
    others, p = one_vs_rest([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1], 3, min_n=3)
    assert others[:2].tolist() == [3.5, 1.5]
    assert others[2] == 2.5  # a group without values: every value is another group's
    assert np.isnan(p).all()  # two values a side: below min_n
    others, p = one_vs_rest([1.0, 2.0], [0, 0], 1)
    assert math.isnan(others[0]) and math.isnan(p[0])  # nobody else


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_scipy_and_numpy_group_by_group(ties, seed):
    rng = np.random.default_rng(seed)
    n, k = 900, 40
    x = rng.lognormal(3.5, 0.6, n)
    if ties:
        x = np.round(x)
    g = rng.integers(0, k, n)
    g[:5] = k - 1  # a group of a few values (exact test without ties)
    g[g == k - 1] = k - 2
    g[:5] = k - 1
    others, p = one_vs_rest(x, g, k)
    for i in range(k):
        mine, rest = x[g == i], x[g != i]
        assert others[i] == np.median(rest)
        want = mannwhitneyu(mine, rest, alternative="two-sided").pvalue if len(mine) >= 3 else math.nan
        assert p[i] == pytest.approx(want, rel=1e-12, abs=1e-300, nan_ok=True), i


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        one_vs_rest([1.0, 2.0], [0], 1)
    with pytest.raises(ValueError, match="missing"):
        one_vs_rest([1.0, np.nan], [0, 0], 1)
    with pytest.raises(ValueError, match="0 .. 1"):
        one_vs_rest([1.0, 2.0], [0, 2], 2)
