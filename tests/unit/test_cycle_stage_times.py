import numpy as np
import pandas as pd
import pytest

from crmlib.errors import CrmDataError
from crmlib.metrics.cycle import stage_time_norms, stage_visits

TZ = "Europe/Berlin"
AS_OF = pd.Timestamp("2026-09-28", tz=TZ)


def _t(x):
    return x if isinstance(x, pd.Timestamp) else pd.Timestamp(x, tz=TZ)


def history(rows):
    return pd.DataFrame({
        "deal_id": pd.Series([r[0] for r in rows], dtype="str"),
        "stage": pd.Series([r[1] for r in rows], dtype="str"),
        "entered_at": pd.Series([_t(r[2]) for r in rows], dtype=f"datetime64[us, {TZ}]"),
    })


def test_a_visit_ends_when_the_next_stage_is_entered_and_the_last_one_is_open(history_as):
    h = history([
        ("A", "proposal", "2026-09-04"),   # given out of order on purpose
        ("A", "qualify", "2026-09-01"),
        ("A", "invoicing", "2026-09-14 12:00"),
    ])
    v = stage_visits(history_as(h), as_of=AS_OF)
    assert v["stage"].tolist() == ["qualify", "proposal", "invoicing"]
    assert v["visit"].tolist() == [1, 2, 3]
    assert v["left_at"].iloc[0] == pd.Timestamp("2026-09-04", tz=TZ)
    assert pd.isna(v["left_at"].iloc[2])
    # 3 days, 10.5 days, and the open visit runs 13.5 days up to as_of
    assert v["duration_days"].tolist() == pytest.approx([3.0, 10.5, 13.5])
    assert v["completed"].tolist() == [True, True, False]
    assert v["next_stage"].iloc[0] == "proposal"


def test_history_at_or_after_as_of_is_ignored(history_as):
    h = history([("A", "qualify", "2026-09-20"), ("A", "proposal", "2026-09-28")])
    v = stage_visits(history_as(h), as_of=AS_OF)
    assert len(v) == 1 and not v["completed"].iloc[0]
    assert v["duration_days"].iloc[0] == pytest.approx(8.0)


def test_consecutive_entries_into_the_same_stage_are_one_visit(history_as):
    h = history([("A", "qualify", "2026-09-01"), ("A", "qualify", "2026-09-05"),
                 ("A", "proposal", "2026-09-08"), ("A", "qualify", "2026-09-10")])
    v = stage_visits(history_as(h), as_of=AS_OF)
    assert v["stage"].tolist() == ["qualify", "proposal", "qualify"]
    assert v["duration_days"].tolist()[:2] == pytest.approx([7.0, 2.0])


def test_visits_of_different_deals_do_not_run_into_each_other(history_as):
    h = history([("A", "qualify", "2026-09-01"), ("B", "qualify", "2026-09-02")])
    v = stage_visits(history_as(h), as_of=AS_OF)
    assert v["completed"].tolist() == [False, False]


def test_norms_are_median_and_p90_of_completed_visits_only(history_as):
    # completed invoicing visits of 1, 2, 3, 4 and 10 days; one open visit of 50+ days
    rows = []
    for i, d in enumerate([1, 2, 3, 4, 10]):
        start = pd.Timestamp("2026-06-01", tz=TZ) + pd.Timedelta(days=10 * i)
        rows += [(f"D{i}", "invoicing", start), (f"D{i}", "won", start + pd.Timedelta(days=d))]
    rows += [("OPEN", "invoicing", pd.Timestamp("2026-08-01", tz=TZ))]
    n = stage_time_norms(history_as(history(rows)), as_of=AS_OF).set_index("stage")
    inv = n.loc["invoicing"]
    assert (inv["visits"], inv["completed"], inv["open"]) == (6, 5, 1)
    assert inv["median_days"] == pytest.approx(3.0)
    # linear interpolation: position 0.9 * 4 = 3.6 between 4 and 10 -> 4 + 0.6 * 6
    assert inv["p90_days"] == pytest.approx(7.6)
    assert inv["norm_days"] == pytest.approx(7.6)
    assert np.isnan(n.loc["won", "median_days"])  # no completed visit in the closed stage


def test_another_quantile_and_too_few_completed_visits(history_as):
    rows = [("A", "s1", "2026-09-01"), ("A", "s2", "2026-09-03"), ("B", "s1", "2026-09-01"),
            ("B", "s2", "2026-09-05")]
    n = stage_time_norms(history_as(history(rows)), as_of=AS_OF, quantile=0.5).set_index("stage")
    assert n.loc["s1", "norm_days"] == pytest.approx(3.0)
    n = stage_time_norms(history_as(history(rows)), as_of=AS_OF, min_completed=3).set_index("stage")
    assert np.isnan(n.loc["s1", "norm_days"]) and n.loc["s1", "median_days"] == pytest.approx(3.0)


def test_history_without_the_canonical_columns_is_a_data_error(history_as):
    with pytest.raises(CrmDataError, match="entered_at"):
        stage_visits(history_as(pd.DataFrame({"deal_id": ["A"], "stage": ["x"]})), as_of=AS_OF)


def test_visits_are_ordered_by_deal_id_as_text_and_ties_keep_the_export_order(history_as):
    # "B10" sorts before "B9" as text; two rows of B9 at one instant keep their order
    h = history([
        ("B9", "qualify", "2026-09-02"),
        ("B9", "proposal", "2026-09-02"),
        ("B10", "qualify", "2026-09-03"),
        ("A", "qualify", "2026-09-05"),
    ])
    v = stage_visits(history_as(h), as_of=AS_OF)
    assert v["deal_id"].tolist() == ["A", "B10", "B9", "B9"]
    assert v["stage"].tolist() == ["qualify", "qualify", "qualify", "proposal"]
    assert v["visit"].tolist() == [1, 1, 1, 2]


def test_last_visits_are_the_last_visit_of_each_deal_with_the_visit_s_first_entry(history_as):
    from crmlib.metrics.cycle import _last_visits

    h = history([
        ("A", "qualify", "2026-09-01"),
        ("A", "proposal", "2026-09-04"),
        ("A", "proposal", "2026-09-08"),   # a repeat: still the visit entered on 09-04
        ("A", "invoicing", "2026-10-01"),  # after as_of: not yet
        ("B", "qualify", "2026-09-03"),
        ("C", "qualify", "2026-10-02"),    # only after as_of: no visit
    ])
    last = _last_visits(history_as(h), as_of=AS_OF)
    assert last["deal_id"].tolist() == ["A", "B"]
    assert last["stage"].tolist() == ["proposal", "qualify"]
    assert last["entered_at"].tolist() == [_t("2026-09-04"), _t("2026-09-03")]
    full = stage_visits(history_as(h), as_of=AS_OF).drop_duplicates("deal_id", keep="last").reset_index(drop=True)
    pd.testing.assert_frame_equal(last, full[["deal_id", "stage", "entered_at"]])
