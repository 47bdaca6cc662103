"""The one weekly spike rule behind the missed-call and SLA-breach alerts."""

import pandas as pd
import pytest
from scipy.stats import binom

from crmlib.errors import CrmConfigError
from crmlib.stats.spikes import weekly_spikes

MON = pd.Timestamp("2026-01-05")


def weeks(rows):
    idx = [MON + pd.Timedelta(weeks=i) for i in range(len(rows))]
    return pd.DataFrame(rows, columns=["n", "events"], index=idx)


def test_baseline_pools_the_weeks_just_before_and_the_p_value_is_one_sided_binomial():
    per = weeks([(10, 1), (10, 1), (10, 2), (10, 6)])
    out = weekly_spikes(per, first=MON + pd.Timedelta(weeks=3), last=MON + pd.Timedelta(weeks=3),
                        baseline_weeks=3, min_baseline_weeks=3)
    row = out.iloc[0]
    assert (row["baseline_n"], row["baseline_events"]) == (30, 4)
    assert row["baseline_share"] == pytest.approx(4 / 30)
    assert row["p_value"] == pytest.approx(binom.sf(5, 10, 4 / 30))  # P(X >= 6)
    assert row["p_adjusted"] == pytest.approx(row["p_value"])  # one week tested: no correction
    assert bool(row["tested"])


def test_holm_corrects_over_the_weeks_tested_and_thin_baselines_are_not_tested():
    per = weeks([(10, 1)] * 4 + [(10, 5), (10, 1)])
    out = weekly_spikes(per, first=MON + pd.Timedelta(weeks=2), last=MON + pd.Timedelta(weeks=5),
                        baseline_weeks=4, min_baseline_weeks=3)
    assert out["tested"].tolist() == [False, True, True, True]  # week 2 has only 2 baseline weeks
    tested = out[out["tested"]]
    smallest = tested["p_value"].min()
    assert tested["p_adjusted"].min() == pytest.approx(min(1.0, 3 * smallest))  # Holm: first step x m


def test_weeks_without_trials_are_filled_and_never_tested():
    per = weeks([(10, 1), (10, 1), (10, 1)]).drop(index=MON + pd.Timedelta(weeks=1))
    out = weekly_spikes(per, first=MON + pd.Timedelta(weeks=1), last=MON + pd.Timedelta(weeks=2),
                        baseline_weeks=2, min_baseline_weeks=1)
    assert out["n"].tolist() == [0, 10] and out["tested"].tolist() == [False, True]


def test_bad_arguments_are_config_errors():
    with pytest.raises(CrmConfigError):
        weekly_spikes(weeks([(1, 0)]), first=MON, last=MON, method="sidak")
