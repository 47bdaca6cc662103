"""Report 02 metrics on tiny frames whose expected values are worked out by hand in each test."""

import math

import numpy as np
import pandas as pd
import pytest

from crmlib.errors import CrmDataError, CurrencyError, MissingTableError
from crmlib.metrics.pipeline import (PipelineChanges, deal_status_at, deal_velocity, open_pipeline,
                                     owner_load, pipeline_changes, stage_at, stalled_deals,
                                     task_coverage, task_coverage_by_owner, win_rate)

TZ = "Europe/Berlin"
AS_OF = pd.Timestamp("2026-09-28", tz=TZ)  # as_of parameter "2026-09-27", the last day included
Z = 1.959963984540054


def t(x):
    return pd.Timestamp(x, tz=TZ)


def ts(values):
    return pd.Series([t(v) if v else pd.NaT for v in values], dtype=f"datetime64[us, {TZ}]")


def make_deals(rows):
    """rows: dicts with deal_id, created_at and whatever differs from the defaults."""
    base = dict(name=None, owner_id="u1", pipeline="main", stage="qualify", status="open",
                amount=100.0, currency="EUR", closed_at=None, expected_close_at=None)
    rows = [{**base, **r} for r in rows]
    f = pd.DataFrame({
        "deal_id": pd.Series([r["deal_id"] for r in rows], dtype="str"),
        "name": pd.Series([r["name"] or f"Deal {r['deal_id']}" for r in rows], dtype="str"),
        "owner_id": pd.Series([r["owner_id"] for r in rows], dtype="str"),
        "pipeline": pd.Series([r["pipeline"] for r in rows], dtype="str"),
        "stage": pd.Series([r["stage"] for r in rows], dtype="str"),
        "status": pd.Series([r["status"] for r in rows], dtype="str"),
        "amount": pd.Series([r["amount"] for r in rows], dtype="float64"),
        "currency": pd.Series([r["currency"] for r in rows], dtype="str"),
        "created_at": ts([r["created_at"] for r in rows]),
        "closed_at": ts([r["closed_at"] for r in rows]),
        "expected_close_at": ts([r["expected_close_at"] for r in rows]),
    })
    f["amount_rep"] = f["amount"]  # all EUR: what money.to_reporting would add
    return f


def make_history(rows):
    return pd.DataFrame({"deal_id": pd.Series([r[0] for r in rows], dtype="str"),
                         "stage": pd.Series([r[1] for r in rows], dtype="str"),
                         "entered_at": ts([r[2] for r in rows])})


STAGES = pd.DataFrame({
    "pipeline": pd.Series(["main"] * 5, dtype="str"),
    "stage": pd.Series(["qualify", "proposal", "invoicing", "won", "lost"], dtype="str"),
    "order": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
    "probability": [0.1, 0.4, 0.9, 1.0, 0.0],
    "is_closed": pd.array([False, False, False, True, True], dtype="boolean"),
    "is_won": pd.array([False, False, False, True, False], dtype="boolean"),
})


# ----------------------------------------------------------------------------- status at as_of
def test_open_deals_closed_after_as_of_count_as_open():
    d = make_deals([
        dict(deal_id="W", status="won", created_at="2026-09-01", closed_at="2026-09-20"),
        dict(deal_id="LATE", status="won", created_at="2026-09-01", closed_at="2026-09-28"),
        dict(deal_id="L", status="lost", created_at="2026-09-01", closed_at="2026-09-27 23:59"),
        dict(deal_id="O", created_at="2026-09-01"),
    ])
    out = deal_status_at(d, AS_OF).set_index("deal_id")["status_at"]
    assert out.to_dict() == {"W": "won", "LATE": "open", "L": "lost", "O": "open"}


def test_deals_created_at_or_after_as_of_do_not_exist_yet():
    d = make_deals([dict(deal_id="A", created_at="2026-09-27 23:59"),
                    dict(deal_id="B", created_at="2026-09-28")])
    assert deal_status_at(d, AS_OF)["deal_id"].tolist() == ["A"]


def test_status_at_as_of_is_a_copy_whether_or_not_every_deal_exists_yet():
    """The result may be changed by its caller without touching the export's table (both code paths)."""
    for created in ("2026-09-01", "2026-09-28"):  # all deals exist / the second does not exist yet
        d = make_deals([dict(deal_id="A", status="won", created_at="2026-09-01", closed_at="2026-09-20"),
                        dict(deal_id="B", created_at=created)])
        before = d.copy()
        out = deal_status_at(d, AS_OF)
        out.loc[out.index[0], "status"] = "lost"
        out["amount"] = -1.0
        pd.testing.assert_frame_equal(d, before)
        assert "status_at" not in d.columns


def test_status_at_as_of_can_keep_only_the_columns_asked_for():
    d = make_deals([dict(deal_id="W", status="won", created_at="2026-09-01", closed_at="2026-09-20"),
                    dict(deal_id="LATE", created_at="2026-09-28")])
    out = deal_status_at(d, AS_OF, columns=("owner_id", "no_such_column"))
    assert list(out.columns) == ["deal_id", "status", "created_at", "closed_at", "owner_id", "status_at"]
    assert out.set_index("deal_id")["status_at"].to_dict() == {"W": "won"}
    whole = deal_status_at(d, AS_OF)
    pd.testing.assert_frame_equal(out, whole[out.columns])


def test_won_deal_without_closed_at_is_a_data_error_naming_it():
    d = make_deals([dict(deal_id="X9", status="won", created_at="2026-09-01")])
    with pytest.raises(CrmDataError, match="X9"):
        deal_status_at(d, AS_OF)


def test_naive_as_of_is_refused():
    d = make_deals([dict(deal_id="A", created_at="2026-09-01")])
    with pytest.raises(Exception, match="as_of_instant"):
        deal_status_at(d, pd.Timestamp("2026-09-28"))


# ----------------------------------------------------------------------------- stage at as_of
def test_stage_at_comes_from_history_before_as_of_and_falls_back_to_the_deal(history_as):
    d = make_deals([
        dict(deal_id="H", stage="won", status="won", created_at="2026-09-01", closed_at="2026-10-02"),
        dict(deal_id="N", stage="proposal", created_at="2026-09-20 12:00"),
    ])
    h = make_history([("H", "qualify", "2026-09-01"), ("H", "invoicing", "2026-09-18"),
                      ("H", "won", "2026-10-02")])
    out = stage_at(d, history_as(h), AS_OF).set_index("deal_id")
    assert out.loc["H", "stage_at"] == "invoicing"          # 'won' was entered after as_of
    assert out.loc["H", "stage_entered_at"] == t("2026-09-18")
    assert out.loc["H", "days_in_stage"] == pytest.approx(10.0)
    assert out.loc["H", "stage_source"] == "history"
    assert out.loc["N", "stage_at"] == "proposal"           # no history: the export's stage
    assert out.loc["N", "days_in_stage"] == pytest.approx(7.5)
    assert out.loc["N", "stage_source"] == "deal"


def test_stage_at_of_the_open_deals_only(history_as):
    """open_only keeps the deals open at as_of, with the stages all deals would get: a deal
    closed before as_of is left out (and a scan reads the open deals' rows alone)."""
    d = make_deals([
        dict(deal_id="H", stage="won", status="won", created_at="2026-09-01", closed_at="2026-10-02"),
        dict(deal_id="L", stage="lost", status="lost", created_at="2026-09-01", closed_at="2026-09-10"),
        dict(deal_id="N", stage="proposal", created_at="2026-09-20 12:00"),
    ])
    h = make_history([("H", "qualify", "2026-09-01"), ("H", "invoicing", "2026-09-18"),
                      ("H", "invoicing", "2026-09-20"), ("L", "qualify", "2026-09-01"), ("H", "won", "2026-10-02")])
    out = stage_at(d, history_as(h), AS_OF, open_only=True).set_index("deal_id")
    assert out.index.tolist() == ["H", "N"]  # L was lost on 10 September
    assert out.loc["H", "stage_at"] == "invoicing"
    assert out.loc["H", "stage_entered_at"] == t("2026-09-18")  # the visit's first entry
    assert out.loc["N", "stage_source"] == "deal"
    every = stage_at(d, history_as(h), AS_OF).set_index("deal_id")
    pd.testing.assert_frame_equal(out, every.loc[["H", "N"]])


# ----------------------------------------------------------------------------- open pipeline
PIPE_DEALS = [
    dict(deal_id="D1", stage="qualify", amount=100.0, created_at="2026-09-01"),
    dict(deal_id="D2", stage="qualify", amount=300.0, created_at="2026-09-02", owner_id="u2"),
    dict(deal_id="D3", stage="proposal", amount=1000.0, created_at="2026-08-01"),
    dict(deal_id="D4", stage="won", status="won", amount=500.0, created_at="2026-08-01",
         closed_at="2026-09-30", owner_id="u2"),
    dict(deal_id="D5", stage="lost", status="lost", amount=50.0, created_at="2026-08-01",
         closed_at="2026-09-10"),
    dict(deal_id="D6", stage="qualify", amount=70.0, created_at="2026-09-29"),
    dict(deal_id="D7", stage="proposal", amount=np.nan, created_at="2026-09-03", owner_id="u2"),
]


def test_open_pipeline_by_stage_by_hand():
    out = open_pipeline(make_deals(PIPE_DEALS), STAGES, AS_OF).set_index("stage")
    # open at as_of: D1, D2 (qualify), D3, D7 (proposal), D4 (won after as_of; export stage 'won')
    assert out.index.tolist() == ["qualify", "proposal", "won"]  # stage order
    assert out["deals"].tolist() == [2, 2, 1]
    assert out["value"].tolist() == [400.0, 1000.0, 500.0]
    assert out["weighted_value"].tolist() == pytest.approx([40.0, 400.0, 500.0])
    assert out["missing_amount"].tolist() == [0, 1, 0]  # D7 has no amount: counted, not summed
    assert out["avg_deal_size"].tolist() == pytest.approx([200.0, 1000.0, 500.0])
    assert out["value_share"].tolist() == pytest.approx([400 / 1900, 1000 / 1900, 500 / 1900])


def test_open_pipeline_with_history_uses_the_stage_at_as_of(history_as):
    h = make_history([("D4", "invoicing", "2026-09-20"), ("D4", "won", "2026-09-30")])
    out = open_pipeline(make_deals(PIPE_DEALS), STAGES, AS_OF, history=history_as(h)).set_index("stage")
    assert out.index.tolist() == ["qualify", "proposal", "invoicing"]
    assert out.loc["invoicing", "weighted_value"] == pytest.approx(500 * 0.9)


def test_open_pipeline_by_owner_sorted_by_value():
    out = open_pipeline(make_deals(PIPE_DEALS), STAGES, AS_OF, by="owner_id")
    # u1: D1 100 + D3 1000; u2: D2 300 + D4 500 + D7 (no amount)
    assert out["owner_id"].tolist() == ["u1", "u2"]
    assert out["deals"].tolist() == [2, 3]
    assert out["value"].tolist() == [1100.0, 800.0]
    assert out["weighted_value"].tolist() == pytest.approx([10 + 400, 30 + 500])


def test_open_pipeline_keeps_deals_whose_stage_is_unknown_with_no_weight():
    d = make_deals([dict(deal_id="Z", stage="mystery", amount=10.0, created_at="2026-09-01")])
    out = open_pipeline(d, STAGES, AS_OF)
    assert out["deals"].tolist() == [1] and math.isnan(out["weighted_value"].iloc[0])
    assert out["missing_probability"].tolist() == [1]


def test_open_pipeline_needs_the_reporting_currency_column():
    d = make_deals(PIPE_DEALS).drop(columns="amount_rep")
    with pytest.raises(CrmDataError, match="to_reporting"):
        open_pipeline(d, STAGES, AS_OF)
    mixed = make_deals([dict(deal_id="A", created_at="2026-09-01"),
                        dict(deal_id="B", currency="USD", created_at="2026-09-01")])
    with pytest.raises(CurrencyError):
        open_pipeline(mixed, STAGES, AS_OF, amount_col="amount")


# ----------------------------------------------------------------------------- changes
START = t("2026-09-21")
CHANGE_DEALS = [
    dict(deal_id="A", amount=100.0, created_at="2026-09-01"),
    dict(deal_id="B", amount=200.0, created_at="2026-09-01", status="won", closed_at="2026-09-23"),
    dict(deal_id="C", amount=50.0, created_at="2026-09-22"),
    dict(deal_id="E", amount=30.0, created_at="2026-09-22", status="lost", closed_at="2026-09-25"),
    dict(deal_id="F", amount=999.0, created_at="2026-09-01", status="lost", closed_at="2026-09-10"),
    dict(deal_id="G", amount=70.0, created_at="2026-09-01", status="won", closed_at="2026-09-30"),
    dict(deal_id="H", amount=5.0, created_at="2026-09-29"),
    dict(deal_id="I", amount=10.0, created_at="2026-09-05", expected_close_at="2026-09-24"),
    dict(deal_id="J", amount=20.0, created_at="2026-09-05", expected_close_at="2026-09-24",
         status="won", closed_at="2026-09-23"),
    dict(deal_id="K", amount=40.0, created_at="2026-09-05", expected_close_at="2026-09-22",
         status="won", closed_at="2026-09-26"),
]
CHANGE_HISTORY = [
    ("A", "qualify", "2026-09-01"), ("A", "proposal", "2026-09-22"),          # advanced in window
    ("B", "proposal", "2026-09-01"), ("B", "won", "2026-09-23"),              # into a closed stage
    ("C", "qualify", "2026-09-22"),                                           # first stage only
    ("G", "proposal", "2026-09-10"), ("G", "qualify", "2026-09-24"),          # moved back
    ("K", "qualify", "2026-09-05"), ("K", "invoicing", "2026-09-25"), ("K", "won", "2026-09-26"),
]


def test_waterfall_start_plus_new_minus_won_minus_lost_is_end(history_as):
    ch = pipeline_changes(make_deals(CHANGE_DEALS), history_as(make_history(CHANGE_HISTORY)), start=START,
                          end=AS_OF, stages=STAGES)
    c = ch.components
    # open at start: A B G I J K; new: C E; won in window: B J K; lost: E; open at end: A C G I
    assert c["deals"].to_dict() == {"start": 6, "new": 2, "won": 3, "lost": 1, "end": 4}
    assert c["value"].to_dict() == pytest.approx(
        {"start": 440.0, "new": 80.0, "won": 260.0, "lost": 30.0, "end": 230.0})
    assert 6 + 2 - 3 - 1 == 4 and 440 + 80 - 260 - 30 == 230
    assert ch.balanced


def test_waterfall_side_counts_advanced_and_slipped(history_as):
    ch = pipeline_changes(make_deals(CHANGE_DEALS), history_as(make_history(CHANGE_HISTORY)), start=START,
                          end=AS_OF, stages=STAGES)
    # advanced: A (qualify -> proposal) and K (qualify -> invoicing) inside the window
    assert ch.advanced == {"deals": 2, "value": 140.0, "missing_amount": 0}
    # slipped: I (expected 24th, still open) and K (expected 22nd, won only on the 26th);
    # J closed on the 23rd, before its expected day ended
    assert ch.slipped["deals"] == 2 and ch.slipped["value"] == 50.0
    flags = ch.deals.set_index("deal_id")
    assert flags.loc[["I", "K"], "slipped"].all() and not flags.loc["J", "slipped"]
    frame = ch.to_frame()
    assert frame["component"].tolist() == ["start", "new", "advanced", "won", "lost", "slipped", "end"]
    assert frame["kind"].tolist() == ["level", "in", "memo", "out", "out", "memo", "level"]


def test_without_stages_advanced_is_unknown_not_zero():
    ch = pipeline_changes(make_deals(CHANGE_DEALS), None, start=START, end=AS_OF)
    assert isinstance(ch, PipelineChanges)
    assert ch.advanced is None and ch.value("advanced") is None
    assert pd.isna(ch.to_frame().set_index("component").loc["advanced", "deals"])


def test_a_close_recorded_before_creation_keeps_the_waterfall_balanced():
    d = make_deals([dict(deal_id="Q", created_at="2026-09-22", status="won", closed_at="2026-09-01")])
    ch = pipeline_changes(d, None, start=START, end=AS_OF)
    assert ch.components["deals"].to_dict() == {"start": 0, "new": 1, "won": 1, "lost": 0, "end": 0}
    assert ch.balanced


# ----------------------------------------------------------------------------- win rate
WIN_DEALS = [
    dict(deal_id="W1", status="won", created_at="2026-08-01", closed_at="2026-09-10", owner_id="u1"),
    dict(deal_id="W2", status="won", created_at="2026-08-01", closed_at="2026-09-20", owner_id="u2"),
    dict(deal_id="L1", status="lost", created_at="2026-08-01", closed_at="2026-09-15", owner_id="u1"),
    dict(deal_id="L2", status="lost", created_at="2026-07-01", closed_at="2026-08-01", owner_id="u2"),
    dict(deal_id="X", status="won", created_at="2026-08-01", closed_at="2026-09-30", owner_id="u1"),
    dict(deal_id="O", created_at="2026-08-01", owner_id="u1"),
]


def _wilson_by_hand(k, n):
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return centre - half, centre + half


def test_win_rate_counts_deals_closed_before_as_of_with_a_wilson_interval():
    r = win_rate(make_deals(WIN_DEALS), as_of=AS_OF)
    assert (r.successes, r.n, r.estimate) == (2, 4, 0.5)  # X closed after as_of: not counted
    assert (r.low, r.high) == pytest.approx(_wilson_by_hand(2, 4))


def test_win_rate_window_starts_at_start():
    r = win_rate(make_deals(WIN_DEALS), as_of=AS_OF, start=t("2026-09-01"))
    assert (r.successes, r.n) == (2, 3)


def test_win_rate_by_owner():
    out = win_rate(make_deals(WIN_DEALS), as_of=AS_OF, by="owner_id").set_index("owner_id")
    assert out.loc["u1", ["won", "lost", "closed"]].tolist() == [1, 1, 2]
    assert out.loc["u2", "win_rate"] == 0.5
    assert (out.loc["u2", "win_rate_low"], out.loc["u2", "win_rate_high"]) == pytest.approx(
        _wilson_by_hand(1, 2))


# ----------------------------------------------------------------------------- velocity
def test_deal_velocity_by_hand():
    d = make_deals([
        dict(deal_id="O1", created_at="2026-09-01"), dict(deal_id="O2", created_at="2026-09-01"),
        dict(deal_id="O3", created_at="2026-09-01"), dict(deal_id="O4", created_at="2026-09-01"),
        dict(deal_id="W1", status="won", amount=1000.0, created_at="2026-08-01", closed_at="2026-08-31"),
        dict(deal_id="W2", status="won", amount=3000.0, created_at="2026-07-01", closed_at="2026-08-20"),
        dict(deal_id="L1", status="lost", created_at="2026-07-01", closed_at="2026-09-01"),
        dict(deal_id="L2", status="lost", created_at="2026-07-01", closed_at="2026-09-01"),
        dict(deal_id="W0", status="won", amount=99999.0, created_at="2025-11-01", closed_at="2026-01-01"),
    ])
    v = deal_velocity(d, as_of=AS_OF, window_days=90)
    # 4 open x 2/4 won x 2000 average won / 40 days average cycle (30 and 50 days)
    assert v.open_deals == 4 and v.win_rate.estimate == 0.5
    assert v.avg_won_size == 2000.0 and v.avg_cycle_days == pytest.approx(40.0)
    assert v.value_per_day == pytest.approx(4 * 0.5 * 2000 / 40)
    assert v.per(7) == pytest.approx(700.0)
    assert v.to_frame()["part"].tolist() == ["open_deals", "win_rate", "avg_won_size", "avg_cycle_days",
                                             "value_per_day"]


def test_velocity_without_won_deals_is_nan():
    d = make_deals([dict(deal_id="O1", created_at="2026-09-01")])
    assert math.isnan(deal_velocity(d, as_of=AS_OF).value_per_day)


# ----------------------------------------------------------------------------- stalled deals
STALL_HISTORY = [
    # completed proposal visits: 10 and 20 days -> p90 = 10 + 0.9 * 10 = 19
    ("Q1", "proposal", "2026-07-01"), ("Q1", "invoicing", "2026-07-11"), ("Q1", "won", "2026-07-14"),
    ("Q2", "proposal", "2026-07-01"), ("Q2", "invoicing", "2026-07-21"), ("Q2", "won", "2026-07-24"),
    # completed invoicing visits: 3, 3, 3.5, 4, 4 days -> p90 = 4
    ("Q3", "invoicing", "2026-08-01"), ("Q3", "won", "2026-08-04 12:00"),
    ("Q4", "invoicing", "2026-08-01"), ("Q4", "won", "2026-08-05"),
    ("Q5", "invoicing", "2026-08-10"), ("Q5", "won", "2026-08-14"),
    # the deals at as_of
    ("BIG", "invoicing", "2026-09-18"),
    ("SMALL", "invoicing", "2026-09-26"),
    ("P1", "proposal", "2026-09-01"),
    ("CL", "invoicing", "2026-08-20"),
]
STALL_DEALS = [
    dict(deal_id="BIG", name="Invoice 200k", stage="invoicing", amount=200_000.0, created_at="2026-08-01",
         owner_id="u7"),
    dict(deal_id="SMALL", stage="invoicing", amount=5_000.0, created_at="2026-08-01"),
    dict(deal_id="P1", stage="proposal", amount=8_000.0, created_at="2026-08-01"),
    dict(deal_id="CL", stage="invoicing", status="won", amount=1.0, created_at="2026-08-01",
         closed_at="2026-09-20"),
]


def test_a_200k_invoice_stuck_10_days_where_the_norm_is_4_is_the_worst_stalled_deal(history_as):
    out = stalled_deals(make_deals(STALL_DEALS), history_as(make_history(STALL_HISTORY)), as_of=AS_OF)
    assert out["deal_id"].tolist() == ["BIG", "P1"]  # SMALL is within its norm, CL is closed
    big = out.iloc[0]
    assert (big["owner_id"], big["stage"], big["amount_rep"]) == ("u7", "invoicing", 200_000.0)
    assert big["days_in_stage"] == pytest.approx(10.0)
    assert big["norm_days"] == pytest.approx(4.0)
    assert big["ratio"] == pytest.approx(2.5)
    assert out.iloc[1]["norm_days"] == pytest.approx(19.0)
    assert out.iloc[1]["ratio"] == pytest.approx(27 / 19)
    assert out["norm_source"].tolist() == ["history", "history"]


def test_overrides_replace_the_norm_of_their_stage(history_as):
    out = stalled_deals(make_deals(STALL_DEALS), history_as(make_history(STALL_HISTORY)), as_of=AS_OF,
                        overrides={"proposal": 30, "invoicing": 1})
    assert out["deal_id"].tolist() == ["BIG", "SMALL"]  # P1: 27 < 30 days; SMALL: 2 > 1 day
    assert out["norm_source"].tolist() == ["override", "override"]
    assert out["ratio"].tolist() == pytest.approx([10.0, 2.0])


def test_explicit_norms_as_a_dict(history_as):
    out = stalled_deals(make_deals(STALL_DEALS), history_as(make_history(STALL_HISTORY)), as_of=AS_OF,
                        norms={"invoicing": 12.0})
    assert out.empty  # BIG 10 < 12; proposal has no norm so P1 is never flagged


def test_stalled_deals_without_history_or_norms_say_what_is_missing():
    with pytest.raises(MissingTableError, match="stage_history"):
        stalled_deals(make_deals(STALL_DEALS), None, as_of=AS_OF)


# ----------------------------------------------------------------------------- tasks
def make_activities(rows):
    cols = ["activity_id", "type", "deal_id", "created_at", "due_at", "completed_at"]
    f = pd.DataFrame(rows, columns=cols)
    for c in ("activity_id", "type", "deal_id"):
        f[c] = f[c].astype("str")
    for c in ("created_at", "due_at", "completed_at"):
        f[c] = ts(f[c].tolist())
    return f


TASK_DEALS = [
    dict(deal_id="T1", created_at="2026-09-01", owner_id="u1"),
    dict(deal_id="T2", created_at="2026-09-01", owner_id="u1"),
    dict(deal_id="T3", created_at="2026-09-01", owner_id="u1"),
    dict(deal_id="T4", created_at="2026-09-01", owner_id="u2"),
    dict(deal_id="T5", created_at="2026-09-01", owner_id="u2"),
    dict(deal_id="T6", created_at="2026-08-01", owner_id="u2", status="won", closed_at="2026-09-01"),
]
TASKS = [
    ("a1", "task", "T1", "2026-09-20", "2026-10-02", None),          # T1 next
    ("a9", "task", "T1", "2026-09-20", "2026-09-27", None),          # T1 also overdue
    ("a2", "meeting", "T2", "2026-09-20", "2026-09-25", None),       # T2 overdue only
    ("a3", "task", "T3", "2026-09-10", "2026-09-20", "2026-09-21"),  # done before as_of: not open
    ("a4", "task", "T4", "2026-09-10", "2026-09-30", "2026-09-29"),  # done after as_of: open, next
    ("a5", "call", "T5", "2026-09-20", "2026-10-05", None),          # a call is no task
    ("a6", "task", "T5", "2026-09-29", "2026-10-03", None),          # created after as_of
    ("a7", "task", "T5", "2026-09-20", None, None),                  # no due date
    ("a8", "task", "T6", "2026-08-01", "2026-09-01", None),          # deal closed
]


def test_task_coverage_by_hand(table_as):
    acts = table_as(make_activities(TASKS), "activities")
    out = task_coverage(make_deals(TASK_DEALS), acts, as_of=AS_OF).set_index("deal_id")
    assert sorted(out.index) == ["T1", "T2", "T3", "T4", "T5"]
    assert out["has_next_task"].to_dict() == {"T1": True, "T2": False, "T3": False, "T4": True, "T5": False}
    assert out["has_overdue_task"].to_dict() == {"T1": True, "T2": True, "T3": False, "T4": False,
                                                 "T5": False}
    assert out["open_tasks"].to_dict() == {"T1": 2, "T2": 1, "T3": 0, "T4": 1, "T5": 0}
    assert out.loc["T1", "next_due_at"] == t("2026-10-02")
    assert out.loc["T2", "overdue_since"] == t("2026-09-25")


def test_task_coverage_when_no_task_is_open_at_all(table_as):
    """Only a completed task and one without a due date: every open deal lacks a next task
    (this used to crash mapping an empty lookup)."""
    tasks = [TASKS[3], TASKS[7]]  # done before as_of; no due date
    out = task_coverage(make_deals(TASK_DEALS), table_as(make_activities(tasks), "activities"), as_of=AS_OF)
    assert len(out) == 5 and not out["has_next_task"].any() and not out["has_overdue_task"].any()
    assert out["next_due_at"].isna().all() and str(out["next_due_at"].dtype).startswith("datetime64")


def test_task_coverage_shares_per_owner(table_as):
    out = task_coverage_by_owner(make_deals(TASK_DEALS), table_as(make_activities(TASKS), "activities"), as_of=AS_OF)
    assert out["owner_id"].tolist() == ["u1", "u2"]
    u1, u2 = out.iloc[0], out.iloc[1]
    assert (u1["open_deals"], u1["without_next_task"], u1["with_overdue_task"]) == (3, 2, 2)
    assert u1["without_next_task_share"] == pytest.approx(2 / 3)
    assert (u2["open_deals"], u2["without_next_task"], u2["with_overdue_task"]) == (2, 1, 0)
    assert u2["with_overdue_task_share"] == 0.0


# ----------------------------------------------------------------------------- owner load
def test_owner_load_flags_owners_over_the_cap_heaviest_first():
    rows = [dict(deal_id=f"A{i}", owner_id="u1", created_at="2026-09-01") for i in range(3)]
    rows += [dict(deal_id="B1", owner_id="u2", created_at="2026-09-01"),
             dict(deal_id="B2", owner_id="u2", created_at="2026-09-01", status="won", closed_at="2026-09-10"),
             dict(deal_id="C1", owner_id=None, created_at="2026-09-01")]
    users = pd.DataFrame({"user_id": pd.Series(["u1", "u2", "u3", "u4"], dtype="str"),
                          "name": pd.Series(["Ann", "Bob", "Cy", "Di"], dtype="str"),
                          "team": pd.Series(["east"] * 4, dtype="str"),
                          "active": pd.array([True, True, True, False], dtype="boolean")})
    out = owner_load(make_deals(rows), as_of=AS_OF, users=users, cap=2, include_idle=True)
    assert out["owner_id"].tolist()[:2] == ["u1", "u2"]
    assert out["open_deals"].tolist() == [3, 1, 1, 0]   # u1, u2, (no owner), u3 idle; u4 inactive
    assert out["over_cap"].tolist() == [True, False, False, False]
    assert out.loc[0, "name"] == "Ann" and out.loc[0, "load_ratio"] == 1.5
    assert pd.isna(out.loc[2, "owner_id"])


def test_owner_load_default_cap_is_50():
    rows = [dict(deal_id=f"A{i}", owner_id="u1", created_at="2026-09-01") for i in range(51)]
    out = owner_load(make_deals(rows), as_of=AS_OF)
    assert out.loc[0, "cap"] == 50 and bool(out.loc[0, "over_cap"])
