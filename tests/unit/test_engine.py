"""The heavy aggregations of crmlib.pushdown: pushed down to DuckDB and computed in pandas.

Each aggregation is checked on a tiny table whose answer is worked out by hand (both
paths must give it), and on the sample, where the DuckDB run over the clean tables
written as Parquet must give the numbers of the in-memory run (counts exactly, money and
days to 1e-9 relative).
"""

import numpy as np
import pandas as pd
import pytest

from helpers import SAMPLE
from crmlib.data import _convert_tz, open_data
from crmlib.periods import as_of_instant
from crmlib.pushdown import backends, frames
from crmlib.pushdown.expressions import offset_steps, to_micros
from crmlib.schema import spec

HEAVY = backends.HEAVY_TABLES


def canonical(table: str, rows: list[dict], tz: str = "UTC") -> pd.DataFrame:
    """A clean canonical table from records (missing columns empty; timestamps written in UTC)."""
    out = {}
    for c in spec(table).columns:
        values = [r.get(c.name) for r in rows]
        if c.kind == "timestamp":
            out[c.name] = pd.Series(pd.to_datetime(values, utc=True, format="ISO8601")).dt.tz_convert(tz) \
                .astype(f"datetime64[us, {tz}]")
        elif c.kind in ("money", "float"):
            out[c.name] = pd.Series(values, dtype="float64")
        elif c.kind == "int":
            out[c.name] = pd.Series(values, dtype="Int64")
        elif c.kind == "bool":
            out[c.name] = pd.Series(values, dtype="boolean")
        else:
            out[c.name] = pd.Series(values, dtype="str")
    return pd.DataFrame(out)


def both_paths(tables: dict, tmp_path, *, as_of, tz="UTC") -> tuple[dict, dict]:
    """(in-memory aggregates, DuckDB aggregates over the same tables written as Parquet)."""
    memory = frames.aggregate_frames(tables, as_of=as_of)
    for name, df in tables.items():
        df.to_parquet(tmp_path / f"{name}.parquet", index=False)
    con = backends.connect("duckdb")
    engine = backends.run(con, backends.parquet_tables(con, tmp_path, tables=tuple(tables)), as_of=as_of,
                          timezone=tz)
    return memory, engine


def assert_same(memory: dict, engine: dict) -> None:
    assert set(memory) == set(engine)
    for name in memory:
        pd.testing.assert_frame_equal(memory[name], engine[name], check_exact=False, rtol=1e-9, atol=0,
                                      obj=name)


def utc(x):
    return pd.Timestamp(x, tz="UTC")


# ----------------------------------------------------------------------------- time
def test_offset_steps_of_berlin_2024_are_the_two_dst_changes():
    steps = offset_steps("Europe/Berlin", "2024-01-01", "2024-12-31")
    hour = 3_600_000_000
    assert steps == [(None, hour), (to_micros(utc("2024-03-31 01:00")), 2 * hour),
                     (to_micros(utc("2024-10-27 01:00")), hour)]
    assert offset_steps("UTC", "2024-01-01", "2024-12-31") == [(None, 0)]


# ----------------------------------------------------------------------------- (a) activity weeks
def _activities(tz="UTC"):
    return canonical("activities", [
        dict(activity_id="A1", type="call", owner_id="U1", deal_id="D1", created_at="2024-04-01T09:00Z",
             direction="outbound", lead_id="L1"),
        dict(activity_id="A2", type="call", owner_id="U1", deal_id="D1", created_at="2024-04-03T10:00Z",
             direction="inbound"),
        dict(activity_id="A3", type="meeting", owner_id="U1", deal_id="D2", created_at="2024-03-20T08:00Z",
             due_at="2024-04-02T14:00Z", completed_at="2024-04-02T15:00Z"),
        dict(activity_id="A4", type="task", owner_id="U2", deal_id="D2", created_at="2024-04-05T08:00Z",
             due_at="2024-04-10T08:00Z"),
        dict(activity_id="A5", type="meeting", owner_id="U2", deal_id="D2", created_at="2024-04-06T08:00Z",
             due_at="2024-04-09T08:00Z", completed_at="2024-04-09T09:00Z"),
        dict(activity_id="A6", type="email", owner_id="U1", deal_id="D1", created_at="2024-04-08T00:00Z",
             direction="outbound", lead_id="L1"),
        dict(activity_id="A7", type="note", created_at="2024-03-31T23:30Z"),
    ], tz)


AS_OF_A = utc("2024-04-08 00:00")  # the Monday after week 2024-W14


def test_activity_weeks_counts_done_by_done_week_and_scheduled_by_due_week(tmp_path):
    memory, engine = both_paths({"activities": _activities()}, tmp_path, as_of=AS_OF_A)
    expected = pd.DataFrame({
        "owner_id": ["U1", "U1", "U2", "U2", None],
        "week": pd.to_datetime(["2024-04-01", "2024-04-01", "2024-04-08", "2024-04-08", "2024-03-25"]),
        "type": ["call", "meeting", "meeting", "task", "note"],
        # A1 and A2 are calls logged in W14; A3's meeting was completed in W14; A6 is logged at as_of
        "done": [2, 1, 0, 0, 1],
        # A4 (open) and A5 (completed only after as_of) are due in W15
        "scheduled": [0, 0, 1, 1, 0],
    }).astype({"owner_id": "str", "type": "str", "week": "datetime64[us]"})
    for got in (memory, engine):
        pd.testing.assert_frame_equal(got["activity_weeks"], expected)


def test_activity_weeks_are_local_weeks_of_the_run_timezone(tmp_path):
    # A7 at 2024-03-31 23:30 UTC is Monday 01:30 in Berlin: week 2024-04-01 there, 2024-03-25 in UTC
    memory, engine = both_paths({"activities": _activities("Europe/Berlin")}, tmp_path,
                                as_of=AS_OF_A.tz_convert("Europe/Berlin"), tz="Europe/Berlin")
    for got in (memory, engine):
        note = got["activity_weeks"].query("type == 'note'")
        assert list(note["week"]) == [pd.Timestamp("2024-04-01")]
    assert_same(memory, engine)


# ----------------------------------------------------------------------------- (b) per deal
def test_deal_activity_counts_what_was_logged_before_as_of_per_deal(tmp_path):
    memory, engine = both_paths({"activities": _activities()}, tmp_path, as_of=AS_OF_A)
    expected = pd.DataFrame({
        "deal_id": ["D1", "D2"],
        "activities": [2, 3],  # A6 of D1 is logged at as_of: not yet
        "call": [2, 0], "email": [0, 0], "meeting": [0, 2], "task": [0, 1], "note": [0, 0],
        "first_at": [utc("2024-04-01 09:00"), utc("2024-03-20 08:00")],
        "last_at": [utc("2024-04-03 10:00"), utc("2024-04-06 08:00")],
    }).astype({"deal_id": "str", "first_at": "datetime64[us, UTC]", "last_at": "datetime64[us, UTC]"})
    for got in (memory, engine):
        pd.testing.assert_frame_equal(got["deal_activity"], expected)


def test_activity_firsts_give_the_first_logged_activity_per_type_direction_and_lead(tmp_path):
    memory, engine = both_paths({"activities": _activities()}, tmp_path, as_of=AS_OF_A)
    for got in (memory, engine):
        f = got["activity_firsts"].set_index(["type", "direction", "with_lead"])["first_at"]
        assert f[("call", "outbound", True)] == utc("2024-04-01 09:00")
        assert f[("call", "inbound", False)] == utc("2024-04-03 10:00")
        assert ("email", "outbound", True) not in f.index  # A6 is logged at as_of
        assert len(f) == 5  # call out with a lead, call in, meeting (A3 and A5), task, note
    assert_same(memory, engine)


# ----------------------------------------------------------------------------- (c) stage durations
def test_stage_durations_merge_repeats_count_revisits_and_run_open_visits_to_as_of(tmp_path):
    history = canonical("stage_history", [
        dict(deal_id="D1", stage="Qualification", entered_at="2024-01-01T00:00Z"),
        dict(deal_id="D1", stage="Qualification", entered_at="2024-01-02T00:00Z"),  # a repeat: same visit
        dict(deal_id="D1", stage="Proposal", entered_at="2024-01-11T00:00Z"),
        dict(deal_id="D1", stage="Qualification", entered_at="2024-01-21T00:00Z"),  # a revisit, open
        dict(deal_id="D2", stage="Qualification", entered_at="2024-01-05T10:00Z"),
        dict(deal_id="D2", stage="Won", entered_at="2024-01-05T10:00Z"),  # same instant: export order
        dict(deal_id="D2", stage="Lost", entered_at="2024-02-05T00:00Z"),  # after as_of: not yet
    ])
    as_of = utc("2024-02-01 00:00")
    memory, engine = both_paths({"stage_history": history}, tmp_path, as_of=as_of)
    expected = pd.DataFrame({
        "deal_id": ["D1", "D1", "D2", "D2"],
        "stage": ["Proposal", "Qualification", "Qualification", "Won"],
        "visits": [1, 2, 1, 1],
        "completed": [1, 1, 1, 0],
        # Proposal 11th -> 21st; Qualification 1st -> 11th (10) + 21st -> as_of (11); Won 5 Jan 10:00 -> 1 Feb
        "days": [10.0, 21.0, 0.0, 26 + 14 / 24],
        "completed_days": [10.0, 10.0, 0.0, 0.0],
        "first_entered_at": [utc("2024-01-11"), utc("2024-01-01"), utc("2024-01-05 10:00"), utc("2024-01-05 10:00")],
        "last_entered_at": [utc("2024-01-11"), utc("2024-01-21"), utc("2024-01-05 10:00"), utc("2024-01-05 10:00")],
        "current": [False, True, False, True],
    }).astype({"deal_id": "str", "stage": "str", "first_entered_at": "datetime64[us, UTC]",
               "last_entered_at": "datetime64[us, UTC]"})
    for got in (memory, engine):
        pd.testing.assert_frame_equal(got["stage_durations"], expected, check_exact=False, rtol=1e-12)


# ----------------------------------------------------------------------------- (d) orders per customer
def test_customer_orders_sum_per_account_and_currency_before_as_of(tmp_path):
    orders = canonical("orders", [
        dict(order_id="O1", account_id="A1", currency="EUR", ordered_at="2024-01-10T00:00Z", revenue=100.0, cost=40.0),
        dict(order_id="O2", account_id="A1", currency="EUR", ordered_at="2024-03-01T00:00Z", revenue=50.5),
        dict(order_id="O3", account_id="A1", currency="USD", ordered_at="2024-02-01T00:00Z", revenue=10.0, cost=1.0),
        dict(order_id="O4", account_id="A2", currency="EUR", ordered_at="2024-04-01T00:00Z", revenue=999.0),
        dict(order_id="O5", currency="EUR", ordered_at="2024-01-01T00:00Z", revenue=5.0),
        dict(order_id="O6", account_id="A2", currency="EUR", ordered_at="2024-03-31T00:00Z"),
    ])
    memory, engine = both_paths({"orders": orders}, tmp_path, as_of=utc("2024-04-01"))
    expected = pd.DataFrame({
        "account_id": ["A1", "A1", "A2"], "currency": ["EUR", "USD", "EUR"],
        "orders": [2, 1, 1],  # O4 is ordered at as_of; O5 has no customer
        "revenue": [150.5, 10.0, 0.0], "cost": [40.0, 1.0, 0.0],  # missing values skipped
        "first_at": [utc("2024-01-10"), utc("2024-02-01"), utc("2024-03-31")],
        "last_at": [utc("2024-03-01"), utc("2024-02-01"), utc("2024-03-31")],
    }).astype({"account_id": "str", "currency": "str", "first_at": "datetime64[us, UTC]",
               "last_at": "datetime64[us, UTC]"})
    for got in (memory, engine):
        pd.testing.assert_frame_equal(got["customer_orders"], expected)


# ----------------------------------------------------------------------------- the sample
@pytest.fixture(scope="module")
def sample_heavy(tmp_path_factory):
    data = open_data(SAMPLE)
    folder = tmp_path_factory.mktemp("sample_parquet")
    for name in HEAVY:
        data.tables[name].to_parquet(folder / f"{name}.parquet", index=False)
    return data, folder


def test_aggregates_streamed_to_files_in_small_batches_equal_the_frames(sample_heavy, tmp_path):
    """run_to_files writes each aggregate batch by batch (here 997 rows at a time, so every
    large one spans many batches): read back, the files are the frames run() returns."""
    _, folder = sample_heavy
    as_of = as_of_instant("2026-09-27", "America/New_York")
    con = backends.connect("duckdb")
    tables = backends.parquet_tables(con, folder)
    expected = backends.run(con, tables, as_of=as_of, timezone="America/New_York")
    names = backends.run_to_files(con, tables, tmp_path, as_of=as_of, timezone="America/New_York",
                                  batch_rows=997)
    assert names == list(expected)
    assert max(len(f) for f in expected.values()) > 5 * 997
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"_agg_{name}.parquet"), frame, obj=name)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_duckdb_pushdown_gives_the_in_memory_numbers_on_the_sample(sample_heavy, tz):
    data, folder = sample_heavy
    data = _convert_tz(data, tz) if tz != "UTC" else data
    as_of = as_of_instant("2026-09-27", tz)
    memory = frames.aggregate_frames({n: data.tables[n] for n in HEAVY}, as_of=as_of)
    con = backends.connect("duckdb")
    engine = backends.run(con, backends.parquet_tables(con, folder), as_of=as_of, timezone=tz)
    assert_same(memory, engine)
    # the sample is not trivial for any of them
    assert len(memory["activity_weeks"]) > 1000 and memory["activity_weeks"]["scheduled"].sum() > 0
    assert memory["stage_durations"]["current"].any() and memory["stage_durations"]["completed"].any()
    assert memory["customer_orders"]["revenue"].sum() > 0
    totals = memory["activity_weeks"]["done"].sum()
    acts = data.tables["activities"]
    done_before = ((acts["type"].isin(["meeting", "task"]) & (acts["completed_at"] < as_of))
                   | (~acts["type"].isin(["meeting", "task"]) & (acts["created_at"] < as_of))).sum()
    assert totals == done_before


def test_a_lookback_window_is_pushed_down_too(sample_heavy, tmp_path):
    data, folder = sample_heavy
    as_of = as_of_instant("2026-09-27", "UTC")
    since = as_of - pd.Timedelta(weeks=12)
    memory = frames.aggregate_frames({n: data.tables[n] for n in HEAVY}, as_of=as_of, since=since)
    con = backends.connect("duckdb")
    engine = backends.run(con, backends.parquet_tables(con, folder), as_of=as_of, since=since)
    assert_same(memory, engine)
    weeks = memory["activity_weeks"]
    assert weeks.loc[weeks["done"] > 0, "week"].min() >= since.tz_localize(None) - pd.Timedelta(days=6)
    assert np.all(memory["customer_orders"]["first_at"] >= since)


@pytest.mark.parametrize("inline", [1000, 0], ids=["values-inline", "values-joined"])
def test_picked_rows_filter_long_value_lists_by_a_join_with_the_same_rows(tmp_path, monkeypatch, inline):
    """Allowed values beyond INLINE_VALUES are semi-joined from a table instead of written into
    the query; the rows picked (and their order and labels) are the same, for text and
    integer columns, with missing values never matching."""
    from crmlib.pushdown import deal_rows
    from crmlib.pushdown.scan import ParquetScan

    monkeypatch.setattr(deal_rows, "INLINE_VALUES", inline)
    t0 = pd.Timestamp("2026-01-05", tz="UTC")
    frame = pd.DataFrame({
        "created_at": [t0 + pd.Timedelta(hours=h) for h in range(6)],
        "lead_id": ["L1", "L2", None, "L1", "L3", "L2"],
        "tries": pd.array([1, 2, 3, None, 2, 1], dtype="Int64"),
    })
    frame.to_parquet(tmp_path / "acts.parquet")
    scan = ParquetScan("activities", tmp_path / "acts.parquet")
    got = deal_rows.picked_rows(scan, columns=["lead_id", "tries"], before=t0 + pd.Timedelta(hours=5),
                                where={"lead_id": ["L2", "L1", "L1", None], "tries": [1, 2]})
    # rows 0 (L1, 1) and 1 (L2, 2); row 3 has no tries, row 5 is not before the bound
    assert got.index.tolist() == [0, 1]
    assert got["lead_id"].tolist() == ["L1", "L2"] and got["tries"].tolist() == [1, 2]
    none = deal_rows.picked_rows(scan, columns=["lead_id"], where={"lead_id": ["L9"]})
    assert none.empty
