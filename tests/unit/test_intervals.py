import math

import numpy as np
import pandas as pd
import pytest

from crmlib.stats.intervals import Proportion, wilson, wilson_frame

Z = 1.959963984540054  # standard normal 97.5% quantile


# Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion:
# comparison of seven methods. Statistics in Medicine 17, 857-872. Table II, method 3
# (Wilson score interval without continuity correction), to four decimals.
NEWCOMBE_TABLE_II = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize("successes, n, low, high", NEWCOMBE_TABLE_II)
def test_wilson_is_close_to_Newcombe_1998_table_II(successes, n, low, high):
    p = wilson(successes, n)
    assert p.low == pytest.approx(low, abs=5e-5)
    assert p.high == pytest.approx(high, abs=5e-5)
    assert p.estimate == pytest.approx(successes / n)


def test_zero_of_n_starts_at_zero_and_ends_at_the_closed_form():
    n = 10
    p = wilson(0, n)
    assert p.low == 0.0
    assert p.high == pytest.approx(Z**2 / (n + Z**2))  # Wilson with p_hat = 0


def test_n_of_n_ends_at_one_and_starts_at_the_closed_form():
    n = 10
    p = wilson(n, n)
    assert p.high == 1.0
    assert p.low == pytest.approx(n / (n + Z**2))


def test_half_by_hand():
    n, phat = 4, 0.5
    centre = (phat + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(phat * (1 - phat) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    p = wilson(2, 4)
    assert (p.low, p.high) == pytest.approx((centre - half, centre + half))


def test_no_observations_give_nan_not_zero():
    p = wilson(0, 0)
    assert p.n == 0 and math.isnan(p.estimate) and math.isnan(p.low) and math.isnan(p.high)
    assert "n = 0" in p.summary()


@pytest.mark.parametrize("s, n", [(5, 4), (-1, 4), (1.5, 4)])
def test_impossible_counts_raise(s, n):
    with pytest.raises(ValueError):
        wilson(s, n)


def test_result_has_estimate_interval_n_frame_and_summary():
    p = wilson(81, 263)
    assert isinstance(p, Proportion)
    assert p.interval == (p.low, p.high) and p.level == pytest.approx(0.95)
    f = p.to_frame()
    assert f.columns.tolist() == ["successes", "n", "estimate", "low", "high", "level", "method"]
    assert f.loc[0, "n"] == 263
    assert p.summary() == "30.8% (95% CI 25.5% to 36.6%), 81 of 263"


def test_wider_interval_at_99_percent():
    assert wilson(81, 263, alpha=0.01).low < wilson(81, 263).low


def test_wilson_frame_adds_rate_and_bounds_row_by_row():
    df = pd.DataFrame({"source": ["email", "ads", "none"], "won": [81, 0, 0], "closed": [263, 20, 0]})
    out = wilson_frame(df, "won", "closed", name="win_rate")
    assert out.columns.tolist() == ["source", "won", "closed", "win_rate", "win_rate_low", "win_rate_high"]
    assert out.loc[0, "win_rate_low"] == pytest.approx(0.2553, abs=5e-5)
    assert out.loc[1, "win_rate_high"] == pytest.approx(0.1611, abs=5e-5)
    assert np.isnan(out.loc[2, ["win_rate", "win_rate_low", "win_rate_high"]].astype(float)).all()
    assert "win_rate" not in df.columns


def test_wilson_frame_refuses_more_successes_than_trials():
    with pytest.raises(ValueError):
        wilson_frame(pd.DataFrame({"s": [3], "n": [2]}), "s", "n")


def test_bounds_never_fall_on_the_wrong_side_of_the_estimate():
    import pandas as pd

    from crmlib.stats.intervals import wilson, wilson_frame

    out = wilson_frame(pd.DataFrame({"s": [0, 7, 3], "n": [7, 7, 7]}), "s", "n")
    assert (out["rate_low"] <= out["rate"]).all() and (out["rate_high"] >= out["rate"]).all()
    assert out.loc[0, "rate_low"] == 0.0 and out.loc[1, "rate_high"] == 1.0
    p = wilson(0, 7)
    assert p.low == 0.0 and p.high > 0
