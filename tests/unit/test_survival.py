"""crmlib.stats.survival: Kaplan-Meier, cumulative incidence, medians with intervals (hand-computed)."""

import math
from fractions import Fraction as F

import numpy as np
import pytest

from crmlib.stats.survival import (CumulativeIncidence, DurationEstimate, KaplanMeier, cumulative_incidence,
                                   kaplan_meier, median_ci)

# Freireich et al. (1963), remission times in weeks of the 21 leukaemia patients on 6-MP
# ("+" = censored). The Kaplan-Meier table of this group is the worked example of
# Kleinbaum & Klein, Survival Analysis: A Self-Learning Text (3rd ed., ch. 2), and of
# Collett, Modelling Survival Data in Medical Research:
#   t(j)  n(j)  d(j)  S(t)
#    6     21    3   .8571
#    7     17    1   .8067
#   10     15    1   .7529
#   13     12    1   .6902
#   16     11    1   .6275
#   22      7    1   .5378
#   23      6    1   .4482      median remission time 23 weeks
SIX_MP = [6, 6, 6, "6+", 7, "9+", 10, "10+", "11+", 13, 16, "17+", "19+", "20+", 22, 23, "25+", "32+",
          "32+", "34+", "35+"]
PUBLISHED = [(6, 21, 3, 0.8571), (7, 17, 1, 0.8067), (10, 15, 1, 0.7529), (13, 12, 1, 0.6902),
             (16, 11, 1, 0.6275), (22, 7, 1, 0.5378), (23, 6, 1, 0.4482)]


def six_mp():
    times = [float(str(x).rstrip("+")) for x in SIX_MP]
    events = [0 if str(x).endswith("+") else 1 for x in SIX_MP]
    return times, events


def test_kaplan_meier_reproduces_the_6mp_leukaemia_table_of_freireich_1963():
    km = kaplan_meier(*six_mp())
    table = km.table
    assert table["time"].tolist() == [row[0] for row in PUBLISHED]
    assert table["at_risk"].tolist() == [row[1] for row in PUBLISHED]
    assert table["events"].tolist() == [row[2] for row in PUBLISHED]
    assert table["survival"].to_numpy() == pytest.approx([row[3] for row in PUBLISHED], abs=5e-5)
    # the product-limit estimate by hand, exactly: prod (1 - d/n)
    s, greenwood, want_s, want_se = F(1), F(0), [], []
    for _, n, d, _ in PUBLISHED:
        s *= 1 - F(d, n)
        greenwood += F(d, n * (n - d))
        want_s.append(float(s))
        want_se.append(float(s) * math.sqrt(greenwood))  # Greenwood: S^2 sum d / (n (n - d))
    assert table["survival"].to_numpy() == pytest.approx(want_s, rel=1e-12)
    assert table["se"].to_numpy() == pytest.approx(want_se, rel=1e-9)
    assert (km.n, km.events, km.censored) == (21, 9, 12)
    assert km.median == 23.0  # the published median remission time


def test_the_median_interval_is_brookmeyer_crowley_on_the_log_log_scale():
    km = kaplan_meier(*six_mp())
    z = 1.959963984540054

    def statistic(s, se):  # (g(S) - g(1/2)) / (g'(S) se) with g(x) = log(-log x)
        return (math.log(-math.log(s)) - math.log(math.log(2))) / (se / (s * math.log(s)))

    # t = 10: S = .7529, se = .0964 -> |statistic| = 1.98 > z, so 10 is outside the interval;
    # t = 13: S = .6902, se = .1068 -> 1.50 < z, the first time inside: the lower limit
    t = km.table.set_index("time")
    assert abs(statistic(t.at[10.0, "survival"], t.at[10.0, "se"])) > z
    assert abs(statistic(t.at[13.0, "survival"], t.at[13.0, "se"])) < z
    assert km.median_low == 13.0
    # S never falls far enough below 1/2 (the last time, 23, is still inside): no upper limit
    assert km.median_high == math.inf
    assert "not bounded" in km.median_estimate.summary()


def test_pointwise_band_is_log_log_and_contains_the_estimate():
    km = kaplan_meier(*six_mp())
    t = km.table
    s, se = t["survival"].iloc[0], t["se"].iloc[0]
    width = 1.959963984540054 * se / (s * abs(math.log(s)))
    assert t["low"].iloc[0] == pytest.approx(s ** math.exp(width))
    assert t["high"].iloc[0] == pytest.approx(s ** math.exp(-width))
    assert ((t["low"] <= t["survival"]) & (t["survival"] <= t["high"])).all()


def test_survival_at_is_a_right_continuous_step_function():
    km = kaplan_meier(*six_mp())
    assert km.survival_at(5.9) == 1.0
    assert km.survival_at(6.0) == pytest.approx(18 / 21)
    assert km.survival_at([6.5, 22.9]).tolist() == pytest.approx([18 / 21, km.table["survival"].iloc[5]])
    assert km.quantile(0.5) == 23.0 and math.isnan(km.quantile(0.9))


def test_no_event_gives_a_flat_curve_and_no_median():
    km = kaplan_meier([3.0, 5.0], [0, 0])
    assert isinstance(km, KaplanMeier)
    assert (km.n, km.events, km.censored) == (2, 0, 2)
    assert math.isnan(km.median) and km.survival_at(10) == 1.0
    assert "not reached" in km.median_estimate.summary()


# ----------------------------------------------------------------------------- competing outcomes
# six deals: won at day 1, lost at 2, open (censored) at 3, won at 4, lost at 5, won at 6
SIX = ([1, 2, 3, 4, 5, 6], ["won", "lost", "open", "won", "lost", "won"])


def test_cumulative_incidence_by_hand():
    ci = cumulative_incidence(*SIX)
    assert isinstance(ci, CumulativeIncidence)
    t = ci.table
    assert t["at_risk"].tolist() == [6, 5, 4, 3, 2, 1]
    assert t["won_events"].tolist() == [1, 0, 0, 1, 0, 1]
    assert t["lost_events"].tolist() == [0, 1, 0, 0, 1, 0]
    assert t["censored"].tolist() == [0, 0, 1, 0, 0, 0]
    # S(t-) x d/n at each time: S = 1, 5/6, 4/6, 4/6, 4/9, 2/9 before times 1..6
    # won:  1/6 (t=1), + 4/6 x 1/3 = 2/9 (t=4), + 2/9 x 1/1 (t=6)  -> 1/6, 7/18, 11/18
    # lost: 5/6 x 1/5 = 1/6 (t=2), + 4/9 x 1/2 = 2/9 (t=5)         -> 1/6, 7/18
    assert t["won"].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 7 / 18, 7 / 18, 11 / 18])
    assert t["lost"].tolist() == pytest.approx([0, 1 / 6, 1 / 6, 1 / 6, 7 / 18, 7 / 18])
    assert t["none"].tolist() == pytest.approx([5 / 6, 4 / 6, 4 / 6, 4 / 9, 2 / 9, 0])
    assert ci.final("won") == pytest.approx(11 / 18)
    assert ci.at("won", 0.5) == 0 and ci.at("won", 4.5) == pytest.approx(7 / 18)
    assert (ci.n, ci.censored, ci.events("won"), ci.events("lost")) == (6, 1, 3, 2)
    # conditional on winning: 1/6 / (11/18) = 27% by day 1, 7/18 / (11/18) = 64% by day 4
    assert ci.conditional_quantile("won", 0.5) == 4.0


def test_the_survival_column_equals_kaplan_meier_of_any_outcome():
    ci = cumulative_incidence(*SIX)
    km = kaplan_meier(SIX[0], [o != "open" for o in SIX[1]])
    assert ci.table.set_index("time").loc[km.table["time"], "none"].to_numpy() == pytest.approx(
        km.table["survival"].to_numpy())


def test_censoring_lost_deals_at_their_close_overstates_winning():
    """The biased shortcut: Kaplan-Meier of time-to-win with lost deals censored."""
    durations, outcomes = SIX
    km = kaplan_meier(durations, [o == "won" for o in outcomes])
    # by hand: 1 - 1/6 at t=1 (6 at risk), x (1 - 1/3) at t=4 (3 at risk), x 0 at t=6 -> "everyone wins"
    assert km.survival_at(6) == 0.0
    assert 1 - km.survival_at(6) == 1.0 > cumulative_incidence(durations, outcomes).final("won")  # 11/18


def test_without_censoring_the_conditional_median_is_the_plain_median():
    rng = np.random.default_rng(3)
    t = np.round(rng.lognormal(3.5, 0.5, 40), 3)
    outcome = np.where(rng.random(40) < 0.5, "won", "lost")
    ci = cumulative_incidence(t, outcome)
    won = t[outcome == "won"]
    assert ci.conditional_quantile("won") == pytest.approx(np.median(won))  # midpoint rule for even counts
    assert ci.final("won") == pytest.approx(len(won) / 40)


def test_conditional_median_bootstrap_is_repeatable_and_brackets_the_estimate():
    rng = np.random.default_rng(5)
    t = rng.lognormal(3.5, 0.4, 200)
    outcome = np.where(rng.random(200) < 0.6, "won", np.where(rng.random(200) < 0.7, "lost", "open"))
    ci = cumulative_incidence(t, outcome)
    a = ci.conditional_median("won", n_boot=200, seed=1)
    b = ci.conditional_median("won", n_boot=200, seed=1)
    assert isinstance(a, DurationEstimate)
    assert (a.low, a.high) == (b.low, b.high)
    assert a.low < a.estimate < a.high
    none = ci.conditional_median("won", n_boot=0)
    assert none.estimate == a.estimate and math.isnan(none.low)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bootstrap_equals_refitting_statsmodels_on_every_resample(seed):
    """The bootstrap draws each resample as counts per cell (time x kind) on the full data's
    distinct times instead of sorting each resample; each resample's median must be exactly
    the one of statsmodels' own fit on the resample those counts describe (ties, censoring,
    both causes and a resample that lacks the last times included)."""
    from statsmodels.duration.survfunc import CumIncidenceRight

    from crmlib.stats.survival import _bootstrap_cells, _bootstrap_conditional_quantiles, _conditional_quantile

    rng = np.random.default_rng(seed)
    n = 60
    t = np.round(rng.lognormal(2.0, 0.6, n))  # rounded: many ties
    codes = rng.choice([0, 1, 2], size=n, p=[0.3, 0.4, 0.3])
    fast = _bootstrap_conditional_quantiles(t, codes, 1, 0.5, n_boot=300, seed=seed)
    times, cell = _bootstrap_cells(t, codes, 1, 0)
    occupied, size = np.unique(cell, return_counts=True)
    draw = np.random.default_rng(seed)
    lacks_the_last = 0
    for b in range(300):
        drawn = draw.multinomial(n, size / n)
        t_b = np.repeat(times[occupied // 3], drawn)
        codes_b = np.repeat(np.array([0, 2, 1])[occupied % 3], drawn)  # kind 1: the other cause (2)
        lacks_the_last += t_b.max() < t.max()
        fit = CumIncidenceRight(t_b, codes_b)
        slow = _conditional_quantile(np.asarray(fit.times, dtype="float64"), np.asarray(fit.cinc[0]), 0.5) \
            if (codes_b == 1).any() else math.nan
        assert fast[b] == slow or (math.isnan(fast[b]) and math.isnan(slow)), b
    assert lacks_the_last > 0


def test_the_bootstraps_counts_have_the_law_of_subjects_drawn_with_replacement():
    """Multinomial(n, size/n) per cell is what drawing n subjects with replacement gives: the
    counts' means and variances match n*q and n*q*(1-q) within 5 standard errors of 4,000 draws."""
    from crmlib.stats.survival import _bootstrap_cells

    t = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 5.0, 8.0])
    codes = np.array([1, 0, 2, 1, 1, 0, 2, 1])
    times, cell = _bootstrap_cells(t, codes, 1, 0)
    assert times.tolist() == [1, 2, 3, 5, 8]
    assert cell.tolist() == [2, 0, 4, 8, 8, 6, 10, 14]
    occupied, size = np.unique(cell, return_counts=True)
    rng = np.random.default_rng(0)
    drawn = np.array([rng.multinomial(8, size / 8) for _ in range(4000)])
    idx = rng.integers(0, 8, (4000, 8))
    direct = np.stack([(cell[idx] == c).sum(axis=1) for c in occupied], axis=1)
    q = size / 8
    for counts in (drawn, direct):
        se = np.sqrt(8 * q * (1 - q) / 4000)
        assert np.all(np.abs(counts.mean(axis=0) - 8 * q) < 5 * se)
        assert np.allclose(counts.var(axis=0), 8 * q * (1 - q), rtol=0.1)
    assert (drawn.sum(axis=1) == 8).all()


def test_binning_gives_each_subject_its_bins_last_time():
    from crmlib.stats.survival import _binned

    times = np.array([0.0, 0.5, 1.0, 2.6, 9.9, 10.0])  # span 10, four bins of 2.5
    rank = np.array([5, 0, 1, 2, 3, 4, 0])
    t, r = _binned(times, rank, 4)
    # bins: [0, 2.5): 0, 0.5, 1.0; [2.5, 5): 2.6; [7.5, 10]: 9.9, 10.0 (the last edge joins the top bin)
    assert t.tolist() == [1.0, 2.6, 10.0]
    assert r.tolist() == [2, 0, 0, 0, 1, 2, 0]


def test_binned_times_move_each_resamples_median_by_at_most_two_bins(monkeypatch):
    """On the same resamples (subjects drawn with replacement, counted in exact and in binned
    cells), binning moves a subject's time up by less than one bin and merged ties shift the
    product-limit steps a little, so each resample's median may move by a bin and a
    fraction; two bins is the stated bound."""
    from crmlib.stats import survival

    rng = np.random.default_rng(11)
    n, grid = 4000, 200
    t = rng.gamma(2.0, 30.0, n)
    codes = rng.choice([0, 1, 2], size=n, p=[0.3, 0.4, 0.3])
    t_exact, cell_exact = survival._bootstrap_cells(t, codes, 1, 0)
    t_binned, cell_binned = survival._bootstrap_cells(t, codes, 1, grid)
    assert len(t_exact) == n and len(t_binned) <= grid
    width = (t.max() - t.min()) / grid
    moved = []
    for _ in range(200):
        idx = rng.integers(0, n, n)
        exact = survival._quantile_of_counts(
            t_exact, np.bincount(cell_exact[idx], minlength=3 * len(t_exact)).reshape(-1, 3), 0.5)
        binned = survival._quantile_of_counts(
            t_binned, np.bincount(cell_binned[idx], minlength=3 * len(t_binned)).reshape(-1, 3), 0.5)
        moved.append(abs(binned - exact))
    assert max(moved) <= 2 * width
    assert np.mean(np.array(moved) > 0) > 0.5  # the bins did change the medians
    monkeypatch.setattr(survival, "BOOT_GRID", grid)
    ci = cumulative_incidence(t, np.array(["open", "won", "lost"])[codes])
    est = ci.conditional_median("won", n_boot=200, seed=3)
    assert "200 equal bins" in est.method
    boot = survival._bootstrap_conditional_quantiles(t, codes, 1, 0.5, n_boot=200, seed=3, grid=grid)
    assert (est.low, est.high) == tuple(np.quantile(boot, [0.025, 0.975]))
    assert "bins" not in cumulative_incidence(t[:100], np.array(["open", "won", "lost"])[codes[:100]]) \
        .conditional_median("won", n_boot=10).method


def test_an_outcome_that_nobody_had_gives_zero_incidence_and_no_median():
    ci = cumulative_incidence([1, 2, 3], ["lost", "open", "lost"])
    assert ci.table["won"].tolist() == [0, 0, 0]
    assert math.isnan(ci.conditional_quantile("won"))
    assert math.isnan(ci.conditional_median("won", n_boot=10).estimate)


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="negative"):
        kaplan_meier([1, -2], [1, 1])
    with pytest.raises(ValueError, match="length"):
        kaplan_meier([1, 2], [1])
    with pytest.raises(ValueError, match="missing"):
        cumulative_incidence([1, np.nan], ["won", "lost"])
    with pytest.raises(ValueError, match="neither"):
        cumulative_incidence([1, 2], ["won", "abandoned"])
    with pytest.raises(KeyError, match="unknown outcome"):
        cumulative_incidence([1, 2], ["won", "lost"]).events("abandoned")


# ----------------------------------------------------------------------------- median of complete data
def test_median_interval_of_ten_values_is_the_2nd_to_9th_order_statistic():
    # Binomial(10, 1/2): P(B <= 1) = 11/1024 < 0.025 < P(B <= 2) = 56/1024, so the
    # distribution-free 95% interval is [x(2), x(9)] with coverage 1 - 2 x 11/1024 = 97.9%
    values = [12.0, 3.0, 7.0, 1.0, 9.0, 15.0, 4.0, 8.0, 20.0, 5.0]  # sorted: 1 3 4 5 7 8 9 12 15 20
    m = median_ci(values)
    assert m.estimate == 7.5
    assert (m.low, m.high) == (3.0, 15.0)
    assert (m.n, m.events) == (10, 10)


def test_median_interval_needs_six_values_at_95_percent():
    m = median_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # P(B = 0) = 1/32 > 0.025: no interval exists
    assert m.estimate == 3.0 and math.isnan(m.low) and math.isnan(m.high)
    assert math.isnan(median_ci([]).estimate)
    assert median_ci([1.0, np.nan, 3.0]).n == 2
