"""Report 04 recovers what the sample planted (truth.json "stages" and "sources"), and survival
estimates recover known durations on generated frames where the closed-only figures do not.

Tolerances:
* realised figures (the generator's own medians of the same deals and visits): truth.json
  rounds them to 3 decimals (half a thousandth of a day) and the export writes timestamps
  to the second, so they agree within 0.001 days;
* planted distribution parameters: the sample is one draw, so a sample quantile differs
  from the planted one by sampling error; we allow 3 standard errors of the quantile of
  n lognormal draws (asymptotic SE = sqrt(q(1-q)/n) / density at the quantile);
* survival estimates on generated frames: 3 standard errors, the SE read from the
  estimate's own 95% interval (half-width / 1.96).
"""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from crmlib.metrics.cycle import cycle_distribution, cycle_survival, deal_cycles, stage_time_table
from crmlib.periods import as_of_instant
from crmlib.stats.survival import kaplan_meier

Z95 = norm.ppf(0.975)
REALISED_DAYS = 1e-3
REPORT_WINDOW_DAYS = 365  # the notebook's default window_days


@pytest.fixture(scope="module")
def sample(sample_data, truth):
    as_of = as_of_instant(truth["as_of"], truth["timezone"])
    return sample_data.tables["deals"], sample_data.tables["stage_history"], sample_data.tables["stages"], as_of


# ----------------------------------------------------------------------------- time in stage
def test_stage_medians_and_p90_equal_the_generators_realised_values(sample, truth):
    _, history, stages, as_of = sample
    table = stage_time_table(history, as_of=as_of, stages=stages).set_index("stage")
    assert table.index.tolist() == list(truth["stages"])  # pipeline order, closed stages left out
    for stage, want in truth["stages"].items():
        got = table.loc[stage]
        assert got["completed"] == want["completed_visits"], stage
        assert got["median_days"] == pytest.approx(want["realised_median_days"], abs=REALISED_DAYS), stage
        assert got["p90_days"] == pytest.approx(want["realised_p90_days"], abs=REALISED_DAYS), stage


def _quantile_se(median: float, sigma: float, q: float, n: int) -> float:
    """Asymptotic SE of the q-quantile of n lognormal(median, sigma) draws."""
    z = norm.ppf(q)
    x = median * math.exp(sigma * z)
    density = norm.pdf(z) / (x * sigma)
    return math.sqrt(q * (1 - q) / n) / density


def test_stage_durations_recover_the_planted_lognormal_median_and_p90(sample, truth):
    """Non-referral deals' completed visits are draws from the planted lognormal of each stage
    (referral deals run 0.7x faster by design, so they are left out here)."""
    deals, history, stages, as_of = sample
    plain = set(deals.loc[deals["source"] != "referral", "deal_id"])
    table = stage_time_table(history.loc[history["deal_id"].isin(plain)], as_of=as_of,
                             stages=stages).set_index("stage")
    for stage, want in truth["stages"].items():
        n = int(table.loc[stage, "completed"])
        assert n > 1000, stage  # enough visits for the asymptotic SE
        for col, q, planted in (("median_days", 0.5, want["median_days"]), ("p90_days", 0.9, want["p90_days"])):
            se = _quantile_se(want["median_days"], want["sigma"], q, n)
            assert abs(table.loc[stage, col] - planted) <= 3 * se, (stage, col, table.loc[stage, col], planted, se)


# ----------------------------------------------------------------------------- cycle by source
def test_won_cycle_median_by_source_equals_the_truth(sample, truth):
    deals, _, _, as_of = sample
    table = cycle_distribution(deals, as_of=as_of, by="source").set_index("source")
    for source, want in truth["sources"].items():
        if isinstance(want, dict) and "won_deals" in want:  # skip "planted", "realised", "definitions"
            assert table.loc[source, "deals"] == want["won_deals"], source
            assert table.loc[source, "median_days"] == pytest.approx(want["median_cycle_days"],
                                                                     abs=REALISED_DAYS), source


def test_referral_deals_are_won_30_percent_faster_than_the_rest(sample, truth):
    deals, _, _, as_of = sample
    table = cycle_distribution(deals, as_of=as_of, by="source").set_index("source")
    # truth: the median over referral won deals / the median over every other won deal,
    # rounded to 4 decimals
    want = truth["sources"]["realised"]["referral_vs_other_median_cycle_ratio"]
    assert table.loc["referral", "vs_others"] == pytest.approx(want, abs=1e-4)
    assert table.loc["referral", "p_value"] < 0.001
    # the report's window (deals won in the last year): about 30 referral wins, so the ratio
    # carries the referral median's sampling error; its 95% interval must contain 0.7 x the rest
    recent = cycle_distribution(deals, as_of=as_of, by="source",
                                start=as_of - pd.Timedelta(days=REPORT_WINDOW_DAYS)).set_index("source")
    ref = recent.loc["referral"]
    planted = truth["sources"]["planted"]["referral_cycle_factor"]
    assert ref["median_low"] <= planted * ref["others_median_days"] <= ref["median_high"]
    assert ref["median_high"] < ref["others_median_days"]  # faster, beyond sampling error


def test_survival_median_time_to_win_shows_referral_30_percent_faster(sample, truth):
    deals, _, _, as_of = sample
    s = cycle_survival(deals, as_of=as_of, by="source", n_boot=300, seed=0)
    ref = s.row("referral")
    planted = truth["sources"]["planted"]["referral_cycle_factor"]
    # the sampling error is in the bootstrap interval of the referral median (75 wins; the
    # other sources' median rests on 1,592 wins and is far more precise)
    assert ref["median_win_low"] <= planted * ref["others_median_win_days"] <= ref["median_win_high"]
    assert ref["median_win_high"] < ref["others_median_win_days"]
    assert ref["vs_others"] == pytest.approx(planted, abs=0.05)  # about the realised 0.70


# ----------------------------------------------------------------------------- censoring, generated frames
AS_OF = pd.Timestamp("2026-09-28", tz="UTC")


def generated_deals(n, *, window_days, won_share, won=(45.0, 0.5), lost=(25.0, 0.6), seed):
    """Deals created uniformly over the last ``window_days``; each is won with probability
    ``won_share`` after a lognormal(median, sigma) cycle ``won``, else lost after ``lost``.
    Deals whose close would fall after as_of are open (censored), as in a real export."""
    rng = np.random.default_rng(seed)
    created = AS_OF - pd.to_timedelta(rng.uniform(0, window_days, n), unit="D")
    is_won = rng.random(n) < won_share
    z = rng.standard_normal(n)
    cycle = np.where(is_won, won[0] * np.exp(won[1] * z), lost[0] * np.exp(lost[1] * z))
    closed = created + pd.to_timedelta(cycle, unit="D")
    done = closed < AS_OF
    return pd.DataFrame({
        "deal_id": pd.Series([f"D{i}" for i in range(n)], dtype="str"),
        "status": pd.Series(np.where(done, np.where(is_won, "won", "lost"), "open"), dtype="str"),
        "created_at": pd.Series(created, dtype="datetime64[us, UTC]"),
        "closed_at": pd.Series(closed, dtype="datetime64[us, UTC]").where(done),
        "source": pd.Series("x", index=range(n), dtype="str"),
    })


def test_closed_only_mean_is_biased_low_while_kaplan_meier_median_matches_the_truth():
    median, sigma = 45.0, 0.5
    deals = generated_deals(4000, window_days=120, won_share=1.0, won=(median, sigma), seed=1)
    cycles = deal_cycles(deals, as_of=AS_OF)
    closed = cycles.loc[~cycles["censored"], "cycle_days"]
    assert 0.3 < cycles["censored"].mean() < 0.6  # heavy censoring, as in a young pipeline
    true_mean = median * math.exp(sigma ** 2 / 2)  # 51.0 days
    se_mean = closed.std() / math.sqrt(len(closed))
    # the deals that closed are the fast ones: their mean is far below the truth (~26 SE here)
    assert closed.mean() < true_mean - 10 * se_mean
    assert closed.median() < median - 3 * se_mean
    km = cycle_survival(deals, as_of=AS_OF, n_boot=0).median_close()
    se = (km.high - km.low) / (2 * Z95)
    assert abs(km.estimate - median) <= 3 * se, (km.estimate, se)


def test_median_time_to_win_with_lost_deals_competing_matches_the_truth():
    deals = generated_deals(4000, window_days=180, won_share=0.6, won=(45.0, 0.5), lost=(25.0, 0.6), seed=2)
    s = cycle_survival(deals, as_of=AS_OF, n_boot=200, seed=0)
    r = s.row()
    win = s.median_win()
    se = (win.high - win.low) / (2 * Z95)
    assert abs(win.estimate - 45.0) <= 3 * se, (win.estimate, se)
    # the eventual win share: the cumulative incidence's own SE at the last time
    share_se = s.fits["all deals"][1].table["won_se"].iloc[-1]
    assert abs(r["won_share"] - 0.6) <= 3 * share_se
    # the shortcuts miss: won deals alone are too fast; Kaplan-Meier with lost deals censored
    # (a world without losses) is too slow
    assert r["closed_only_median_win_days"] < 45.0 - 3 * se
    c = deal_cycles(deals, as_of=AS_OF)
    lost_censored = kaplan_meier(c["cycle_days"], c["status_at"] == "won")
    assert lost_censored.median > 45.0 + 3 * se
