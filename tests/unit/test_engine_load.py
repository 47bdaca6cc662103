"""The load step for large sources: the heavy tables audited and aggregated in DuckDB.

The same Parquet export is opened twice, whole in pandas (``pushdown=False``) and as a
large source (``pushdown=True``): the counts (input = kept + quarantined), the
quarantine with its reasons and records, the findings, the completeness and the clean
tables must be identical, on the sample and on a small export that breaks every check of
the heavy tables. With the default window, the metrics must give the in-memory numbers
for every question the window or the aggregates answer, and refuse the others in one line.
"""

import pandas as pd
import pytest
import yaml

from helpers import ROOT, SAMPLE, as_text
from crmlib.data import CrmData, open_data
from crmlib.errors import CrmDataError
from crmlib.load import coerce_table, read_source
from crmlib.metrics import activity, goals, pipeline, response
from crmlib.periods import as_of_instant, period_bounds
from crmlib.pushdown import PushdownInfo, frames, pushdown_info
from crmlib.pushdown.info import ATTR
from crmlib.pushdown import deal_rows
from crmlib.pushdown import source as pushdown_source

AS_OF = as_of_instant("2026-09-27", "UTC")


def assert_text_equal(got, want, **kw):
    """Frames equal once categorical columns are compared as the text they stand for."""
    pd.testing.assert_frame_equal(as_text(got), as_text(want), **kw)


def write_parquet_export(src, folder, settings: dict) -> None:
    """An export as typed Parquet files (values that do not parse become missing) + export.yaml."""
    raw = read_source(src)
    for name, rt in raw.tables.items():
        typed, _ = coerce_table(rt, raw.mapping, timezone="UTC")
        typed.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "export.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


def assert_same_audit(whole: CrmData, large: CrmData, heavy_whole=True) -> None:
    pd.testing.assert_frame_equal(whole.counts, large.counts)
    by = ["table", "row", "check"]
    pd.testing.assert_frame_equal(whole.quarantine.sort_values(by).reset_index(drop=True),
                                  large.quarantine.sort_values(by).reset_index(drop=True))
    by = ["table", "row", "check", "column"]
    pd.testing.assert_frame_equal(whole.findings.sort_values(by).reset_index(drop=True),
                                  large.findings.sort_values(by).reset_index(drop=True))
    pd.testing.assert_frame_equal(whole.completeness, large.completeness)
    assert set(whole.tables) == set(large.tables)
    for name in whole.tables:
        if name == "activities" and not heavy_whole:
            continue
        pd.testing.assert_frame_equal(whole.tables[name], large.tables[name], obj=name)


# ----------------------------------------------------------------------------- the sample
@pytest.fixture(scope="module")
def sample_parquet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample_parquet")
    settings = yaml.safe_load((SAMPLE / "export.yaml").read_text(encoding="utf-8"))
    settings = {k: v for k, v in settings.items() if k not in ("date_formats", "generator")}
    write_parquet_export(SAMPLE, folder, settings)
    return folder


@pytest.fixture(scope="module")
def whole(sample_parquet):
    return open_data(sample_parquet, pushdown=False)


@pytest.fixture(scope="module")
def large(sample_parquet):
    return open_data(sample_parquet, pushdown=True)  # the default window: 455 days of activities


def test_the_sample_read_as_a_large_source_gives_the_same_audit_and_tables(sample_parquet, whole):
    everything = open_data(sample_parquet, pushdown=True,
                           mapping={**yaml.safe_load((sample_parquet / "export.yaml").read_text()),
                                    "pushdown_window_days": 4000})
    assert_same_audit(whole, everything)
    counts = everything.counts.set_index("table")
    assert (counts["input"] == counts["kept"] + counts["quarantined"]).all()
    assert counts.loc["activities", "quarantined"] > 100  # the sample's dirty rows are found in the engine
    aggregates = frames.aggregate_frames(whole.tables, as_of=AS_OF)
    assert set(everything.aggregates) == set(aggregates)
    for name, frame in aggregates.items():
        pd.testing.assert_frame_equal(everything.aggregates[name], frame, check_exact=False, rtol=1e-9, obj=name)


def test_a_large_source_loads_a_window_of_activities_and_counts_every_row(whole, large):
    assert_same_audit(whole, large, heavy_whole=False)
    info = pushdown_info(large.tables["activities"])
    assert info.rows_from == AS_OF - pd.Timedelta(days=455) and info.as_of == AS_OF
    acts, every = large.tables["activities"], whole.tables["activities"]
    assert 0 < len(acts) < len(every)
    started = ((every["created_at"] >= info.rows_from) | (every["completed_at"] >= info.rows_from)
               | (every["due_at"] >= info.rows_from)
               | (every["completed_at"].isna() & every["due_at"].notna() & every["type"].isin(["task", "meeting"])))
    pd.testing.assert_frame_equal(acts, every.loc[started].reset_index(drop=True))
    assert pushdown_info(whole.tables["activities"]) is None


def test_metrics_on_the_window_give_the_whole_tables_numbers(whole, large):
    w, big = whole.tables, large.tables
    week = period_bounds(AS_OF, "week")
    for fn, kw in [
        (activity.activities_done, dict(start=week.current.start, end=week.current.end, as_of=AS_OF)),
        (activity.activities_scheduled, dict(start=week.current.next().start, end=week.current.next().end,
                                             as_of=AS_OF)),
        (activity.rep_week_activity, dict(as_of=AS_OF, weeks=52, min_weekly_calls=1)),
        (activity.rep_week_activity, dict(as_of=AS_OF, weeks=150, min_weekly_calls=1)),  # the aggregate
    ]:
        pd.testing.assert_frame_equal(fn(big["activities"], **kw), fn(w["activities"], **kw))
    start = AS_OF - pd.Timedelta(weeks=12)
    pd.testing.assert_frame_equal(response.first_touches(big["leads"], big["activities"], AS_OF, start=start),
                                  response.first_touches(w["leads"], w["activities"], AS_OF, start=start))
    calls_big = response.inbound_calls(big["activities"], AS_OF)
    calls = response.inbound_calls(w["activities"], AS_OF)
    pd.testing.assert_frame_equal(response.missed_call_alerts(calls_big, AS_OF),
                                  response.missed_call_alerts(calls, AS_OF))
    pd.testing.assert_frame_equal(response.call_heatmap(big["activities"], AS_OF, start=start),
                                  response.call_heatmap(w["activities"], AS_OF, start=start))
    pd.testing.assert_frame_equal(pipeline.task_coverage(w["deals"], big["activities"], as_of=AS_OF),
                                  pipeline.task_coverage(w["deals"], w["activities"], as_of=AS_OF))


def test_questions_before_the_window_are_refused_in_one_line(large):
    acts = large.tables["activities"]
    old = AS_OF - pd.Timedelta(days=700)
    with pytest.raises(CrmDataError, match="pushdown_window_days"):
        activity.activities_done(acts, start=old, end=old + pd.Timedelta(days=7), as_of=AS_OF)
    with pytest.raises(CrmDataError, match="from 20"):
        response.first_touches(large.tables["leads"], acts, AS_OF)  # every lead: from the first row
    calls = response.inbound_calls(acts, AS_OF)  # a derived frame keeps the window's limits
    with pytest.raises(CrmDataError, match="missed-call rate"):
        response.missed_call_rate(calls, start=old, end=old + pd.Timedelta(days=7))


def test_goals_before_the_window_have_no_actual_instead_of_a_partial_one(whole):
    # the sample's call and meeting targets start 2025-10; a window from 2026-03 cuts through them
    every = whole.tables["activities"]
    rows_from = pd.Timestamp("2026-03-01", tz="UTC")
    window = every.loc[(every["created_at"] >= rows_from) | (every["completed_at"] >= rows_from)
                       | (every["due_at"] >= rows_from)].reset_index(drop=True)
    window.attrs[ATTR] = PushdownInfo("activities", rows_from, AS_OF, {}, 211)
    kw = dict(as_of=AS_OF, deals=None, leads=None, users=whole.tables["users"])
    mine = goals.goal_actuals(whole.tables["targets"], activities=window, **kw)
    theirs = goals.goal_actuals(whole.tables["targets"], activities=every, **kw)
    calls = mine["metric"].isin(["calls", "meetings"]).to_numpy()
    early = calls & (mine["period_start"] < rows_from).to_numpy()
    assert early.any() and (calls & ~early).any()
    assert mine.loc[early, "actual"].isna().all() and theirs.loc[early, "actual"].notna().all()
    pd.testing.assert_frame_equal(mine.loc[~early], theirs.loc[~early])


def test_the_snapshot_of_a_large_source_keeps_its_aggregates_and_window(large, tmp_path):
    back = CrmData.load(large.save(tmp_path / "snap"))
    assert set(back.aggregates) == set(large.aggregates)
    for name in large.aggregates:
        assert_text_equal(back.aggregates[name], large.aggregates[name])
    info = pushdown_info(back.tables["activities"])
    assert info.rows_from == pushdown_info(large.tables["activities"]).rows_from
    assert_text_equal(back.tables["activities"], large.tables["activities"])
    one = back.filtered(owners=["U003"])
    weeks = one.aggregates["activity_weeks"]
    assert len(weeks) and set(weeks["owner_id"]) == {"U003"}
    assert "deal_activity" not in one.aggregates  # a deal's activities have many owners
    assert pushdown_info(one.tables["activities"]).aggregates["activity_weeks"] is one.aggregates["activity_weeks"]


def test_a_report_reads_only_the_columns_it_asks_for_with_the_window_kept(large, tmp_path):
    back = CrmData.load(large.save(tmp_path / "snap"))
    cols = list(pipeline.TASK_COLUMNS)
    part = back.table("activities", columns=cols)
    assert "activities" not in back.tables.loaded  # read from the file alone, the table not kept
    assert_text_equal(part, large.tables["activities"][cols])
    assert pushdown_info(part).rows_from == pushdown_info(large.tables["activities"]).rows_from
    # the metric gives the same numbers from the columns as from the whole table
    assert_text_equal(pipeline.task_coverage(large.tables["deals"], part, as_of=AS_OF),
                                  pipeline.task_coverage(large.tables["deals"], large.tables["activities"],
                                                         as_of=AS_OF))
    whole_table = back.tables["activities"]  # once loaded, the columns come from memory
    assert_text_equal(back.table("activities", columns=cols), whole_table[cols])
    # in memory (not a saved snapshot) the same, and a wrong column is one clear error
    assert_text_equal(large.table("activities", columns=cols), large.tables["activities"][cols])
    for data in (CrmData.load(tmp_path / "snap"), large):
        with pytest.raises(CrmDataError, match="activities has no column.*colour"):
            data.table("activities", columns=["type", "colour"])
        # get: the same columns, or None for a table the export does not have
        assert_text_equal(data.get("activities", columns=cols), large.tables["activities"][cols])
    fresh = CrmData.load(tmp_path / "snap")  # not the shared fixture: a table is removed
    del fresh.tables["activities"]
    assert fresh.get("activities", columns=cols) is None and fresh.get("activities") is None


def test_the_data_audit_reads_each_dated_table_by_its_dating_column_alone(large, tmp_path):
    """Report 01's quality trend counts rows by date: from a snapshot it reads one column of
    each dated table and loads no table whole, with the numbers of the whole tables."""
    from crmlib.metrics import quality
    from crmlib.schema import spec

    back = CrmData.load(large.save(tmp_path / "snap"))
    dating = back.dating()
    assert not back.tables.loaded  # no table read whole
    assert set(dating) == {n for n in large.tables if spec(n).dated_by}
    for name, frame in dating.items():
        assert list(frame.columns) == [spec(name).dated_by]
        pd.testing.assert_series_equal(frame.iloc[:, 0], large.tables[name][spec(name).dated_by])
    args = (back.quarantine, back.findings)
    pd.testing.assert_frame_equal(quality.weekly_problem_share(dating, *args, as_of=AS_OF, weeks=20),
                                  quality.weekly_problem_share(large.tables, *args, as_of=AS_OF, weeks=20))
    before = AS_OF - pd.Timedelta(days=90)
    assert quality.quality_as_it_stood(back.counts, dating, *args, before=before, as_of=AS_OF) == \
        quality.quality_as_it_stood(large.counts, large.tables, *args, before=before, as_of=AS_OF)
    assert set(large.dating()) == set(dating)  # in memory the same


def test_a_parquet_folder_with_many_activities_is_read_as_a_large_source(sample_parquet, monkeypatch):
    settings = yaml.safe_load((sample_parquet / "export.yaml").read_text())
    assert not pushdown_source.pushdown_wanted(sample_parquet, _mapping(settings), None)
    monkeypatch.setattr(pushdown_source, "PUSHDOWN_ROWS", 10_000)  # the sample has 32,361 activities
    assert pushdown_source.pushdown_wanted(sample_parquet, _mapping(settings), None)
    assert not pushdown_source.pushdown_wanted(sample_parquet, _mapping({**settings, "pushdown": False}), None)
    assert not pushdown_source.pushdown_wanted(SAMPLE, _mapping(settings), None)  # CSV: read whole


def _mapping(settings):
    from crmlib.load import Mapping

    return Mapping.from_dict(settings)


# ----------------------------------------------------------------------------- a hostile export
def _hostile(folder):
    ts = lambda x: pd.Timestamp(x, tz="UTC")  # noqa: E731
    pd.DataFrame({"user_id": ["U1", "U2"], "name": ["Ann", "Bob"]}).to_parquet(folder / "users.parquet")
    pd.DataFrame({"account_id": ["A1"], "name": ["Acme"]}).to_parquet(folder / "accounts.parquet")
    pd.DataFrame({"lead_id": ["L1"], "created_at": [ts("2024-01-01")]}).to_parquet(folder / "leads.parquet")
    pd.DataFrame({"pipeline": ["p"] * 3, "stage": ["Qualification", "Proposal", "Won"], "order": [1, 2, 3]}) \
        .to_parquet(folder / "stages.parquet")
    pd.DataFrame({
        "deal_id": ["D1", "D2", "D3"], "status": ["open", "open", "open"], "amount": [10.0, 20.0, 30.0],
        "stage": ["Proposal", "Proposal", "Qualification"], "owner_id": ["U1", "U1", "U2"],
        "created_at": [ts("2024-01-01"), ts("2024-01-01"), ts("2024-01-01")],
    }).to_parquet(folder / "deals.parquet")
    call = dict(type="call", owner_id="U1", deal_id="D1", created_at=ts("2024-01-02 10:00"), direction="outbound")
    pd.DataFrame([
        dict(call, activity_id="A1"),                                      # row 1: kept
        dict(call, activity_id="A1", created_at=ts("2024-01-03")),         # row 2: duplicate id
        dict(call, activity_id=None, owner_id="Total"),                    # row 3: a Total line
        dict(call, activity_id=None, created_at=ts("2024-01-04")),         # row 4: no id
        dict(call, activity_id="A4", type="fax"),                          # row 5: not a type
        dict(call, activity_id="A5", type=None),                           # row 6: type missing
        dict(call, activity_id="A6", created_at=ts("2024-03-01")),         # row 7: after the export
        dict(call, activity_id="A7", owner_id="U2", deal_id="D2"),         # row 8: kept
        dict(call, activity_id="A8", owner_id="U2", deal_id="D2"),         # row 9: A7 again, new id
        dict(call, activity_id="A9", owner_id="U99", deal_id="D99"),       # row 10: kept, two orphans
        dict(call, activity_id="A10", direction="sideways"),               # row 11: not a direction
        dict(call, activity_id="A11", lead_id="L1"),                       # row 12: kept
    ]).to_parquet(folder / "activities.parquet")
    pd.DataFrame([
        dict(deal_id="D1", stage="Qualification", entered_at=ts("2024-01-01 01:00")),  # row 1: kept
        dict(deal_id="D1", stage="Qualification", entered_at=ts("2024-01-01 01:00")),  # row 2: the same row
        dict(deal_id="D1", stage="Lost in space", entered_at=ts("2024-01-05")),        # row 3: unknown stage
        dict(deal_id="D2", stage="Proposal", entered_at=ts("2023-12-01")),             # row 4: before D2 began
        dict(deal_id="D9", stage="Proposal", entered_at=ts("2024-01-02")),             # row 5: no such deal
        dict(deal_id="D3", stage="Qualification", entered_at=ts("2024-06-01")),        # row 6: after the export
    ]).to_parquet(folder / "stage_history.parquet")
    order = dict(account_id="A1", deal_id="D1", ordered_at=ts("2024-01-10"), revenue=100.0, currency="EUR")
    pd.DataFrame([
        dict(order, order_id="O1"),                      # row 1: kept
        dict(order, order_id="O2", revenue=-5.0),        # row 2: negative
        dict(order, order_id="O3", currency=" euro"),    # row 3: not a currency code
        dict(order, order_id="O4", account_id="A9"),     # row 4: kept, orphan account
        dict(order, order_id="O5", ordered_at=pd.NaT),   # row 5: no date
        dict(order, order_id="O1", revenue=1.0),         # row 6: duplicate id
    ]).to_parquet(folder / "orders.parquet")
    settings = {"name": "hostile", "timezone": "UTC", "currency": "EUR", "extracted_at": "2024-02-01T00:00:00",
                "as_of": "2024-01-31"}
    (folder / "export.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


def test_every_check_of_the_heavy_tables_runs_in_the_engine_as_in_pandas(tmp_path):
    _hostile(tmp_path)
    whole = open_data(tmp_path, pushdown=False)
    large = open_data(tmp_path, pushdown=True)
    assert_same_audit(whole, large)
    q = large.quarantine
    by_hand = {
        "activities": [(2, "duplicate_id"), (3, "summary_row"), (4, "missing_key"), (5, "not_allowed"),
                       (6, "missing_value"), (7, "future_date"), (9, "bulk_duplicate"), (11, "not_allowed")],
        "stage_history": [(2, "duplicate_id"), (3, "unknown_stage"), (6, "future_date")],
        "orders": [(2, "negative_amount"), (3, "bad_currency"), (5, "missing_value"), (6, "duplicate_id")],
    }
    for table, expected in by_hand.items():
        got = q.loc[q["table"] == table].sort_values("row")
        assert list(zip(got["row"], got["check"])) == expected, table
    f = large.findings
    assert sorted(zip(f["table"], f["row"], f["check"], f["column"])) == sorted([
        ("activities", 10, "orphan", "owner_id"), ("activities", 10, "orphan", "deal_id"),
        ("stage_history", 4, "history_out_of_order", "entered_at"), ("stage_history", 5, "orphan", "deal_id"),
        ("orders", 4, "orphan", "account_id"), ("deals", 1, "history_missing_current_stage", "stage"),
    ])
    counts = large.counts.set_index("table")
    assert counts.loc["activities", ["input", "kept", "quarantined", "flagged"]].tolist() == [12, 4, 8, 1]
    assert counts.loc["deals", "flagged"] == 1
    reason = q.loc[(q["table"] == "activities") & (q["row"] == 9), "reason"].item()
    assert reason == "identical to activity_id A7 (row 8) except its id"


def test_text_where_a_large_source_needs_timestamps_is_one_clear_error(tmp_path):
    _hostile(tmp_path)
    acts = pd.read_parquet(tmp_path / "activities.parquet")
    acts["created_at"] = acts["created_at"].astype("str")
    acts.to_parquet(tmp_path / "activities.parquet")
    with pytest.raises(CrmDataError, match=r"created_at of activities is string where a timestamp belongs") as e:
        open_data(tmp_path, pushdown=True)
    assert "\n" not in str(e.value)


def test_the_runner_computes_a_large_sources_aggregates_at_the_runs_as_of(sample_parquet, monkeypatch, tmp_path):
    """`crm-reports run --as-of 2026-06-28` on a large source: the engine's aggregates are
    computed at that date, not at the export's recorded as_of (they would then be ignored
    by every report and the activity questions refused)."""
    from crmlib import runner

    monkeypatch.setattr(pushdown_source, "PUSHDOWN_ROWS", 10_000)
    runner.build_snapshot(str(sample_parquet), tmp_path / "snap", as_of="2026-06-28")
    back = CrmData.load(tmp_path / "snap")
    info = pushdown_info(back.tables["activities"])
    assert info.as_of == as_of_instant("2026-06-28", "UTC")
    assert back.meta["pushdown"]["as_of"] == as_of_instant("2026-06-28", "UTC").isoformat()


# ----------------------------------------------------------------------------- the light tables' checks
def _hostile_light(folder):
    """Deals, leads, contacts and accounts breaking every check the light tables have."""
    ts = lambda x: pd.Timestamp(x, tz="UTC")  # noqa: E731
    pd.DataFrame({"user_id": ["U1"], "name": ["Ann"]}).to_parquet(folder / "users.parquet")
    pd.DataFrame({"pipeline": ["p"] * 2, "stage": ["Qualification", "Proposal"], "order": [1, 2]}) \
        .to_parquet(folder / "stages.parquet")
    pd.DataFrame([
        dict(account_id="A1", name="Acme Inc.", owner_id="U1"),   # row 1: kept
        dict(account_id="A2", name="ACME Ltd", owner_id="U1"),    # row 2: kept, flagged: same company
        dict(account_id="A3", name="Acme", owner_id="U1"),        # row 3: kept, flagged: same company
        dict(account_id="A4", name="Globex", owner_id="U9"),      # row 4: kept, orphan owner
    ]).to_parquet(folder / "accounts.parquet")
    deal = dict(status="open", amount=10.0, stage="Proposal", owner_id="U1", account_id="A1", currency="EUR",
                created_at=ts("2024-01-02"), closed_at=pd.NaT)
    pd.DataFrame([
        dict(deal, deal_id="D1"),                                                   # row 1: kept
        dict(deal, deal_id="D2", status="won", closed_at=ts("2024-01-01")),         # row 2: closed before created
        dict(deal, deal_id="D3", status="lost"),                                    # row 3: lost, no close date
        dict(deal, deal_id="D4", status="won", amount=0.0, closed_at=ts("2024-01-05")),  # row 4: won at 0
        dict(deal, deal_id="D5", closed_at=ts("2024-01-06")),                       # row 5: kept, flagged
        dict(deal, deal_id="D6", stage="Closing"),                                  # row 6: unknown stage
        dict(deal, deal_id="D7", status="won", amount=-3.0, closed_at=ts("2023-12-01")),  # row 7: two problems
    ]).to_parquet(folder / "deals.parquet")
    lead = dict(company="Initech", owner_id="U1", source="email", created_at=ts("2024-01-10 09:00"))
    pd.DataFrame([
        dict(lead, lead_id="L1", email="Ann@Initech.com", phone="+44 20 7946 0001"),   # row 1: kept, flagged
        dict(lead, lead_id="L2", email=" ann@initech.com", phone=None,
             created_at=ts("2024-01-10 09:04")),                                        # row 2: 4 min later
        dict(lead, lead_id="L3", email="bob@initech.com", phone="020 7946 0001",
             created_at=ts("2024-01-10 09:07")),                                        # row 3: same phone
        dict(lead, lead_id="L4", email="ann@initech.com", company="Other",
             created_at=ts("2024-01-10 09:05")),                                        # row 4: other company
        dict(lead, lead_id="L5", email="not-an-email", phone="call me",
             created_at=ts("2024-01-11")),                                              # row 5: kept, two flags
        dict(lead, lead_id="L6", email="ann@initech.com", created_at=ts("2024-01-10 10:00")),  # row 6: an hour on
    ]).to_parquet(folder / "leads.parquet")
    pd.DataFrame([
        dict(contact_id="K1", account_id="A1", email="x@acme.com", phone="+1 555 010 0001"),  # row 1: flagged
        dict(contact_id="K2", account_id="A1", email="X@ACME.com ", phone=None),             # row 2: same email
        dict(contact_id="K3", account_id="A1", email=None, phone="(555) 010-0001"),          # row 3: same phone
        dict(contact_id="K4", account_id="A9", email="k4@acme", phone="12"),                 # row 4: three flags
    ]).to_parquet(folder / "contacts.parquet")
    settings = {"name": "hostile", "timezone": "UTC", "currency": "EUR", "extracted_at": "2024-02-01T00:00:00",
                "as_of": "2024-01-31"}
    (folder / "export.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


LIGHT = ("accounts", "deals", "leads", "contacts")


def _engine_audits(folder, names=LIGHT):
    import ibis

    from crmlib.audit import audit
    from crmlib.load import export_mapping
    from crmlib.pushdown import backends
    from crmlib.pushdown.audit import audit_in_engine

    m = export_mapping(folder, None)
    extracted = pd.Timestamp(m.extracted_at).tz_localize("UTC")
    whole = audit(read_source(folder, mapping=m), timezone="UTC", extracted_at=extracted)
    con = ibis.duckdb.connect()
    engine = {name: audit_in_engine(con, backends.read_parquet(con, folder / f"{name}.parquet", name), name,
                                source=f"{name}.parquet", mapping=m, light=whole, timezone="UTC",
                                extracted_at=extracted) for name in names}
    return whole, engine


def _assert_engine_like_pandas(whole, engine):
    for name, h in engine.items():
        for got, want, by in ((h.quarantine, whole.quarantine, ["row", "check"]),
                              (h.findings, whole.findings, ["row", "check", "column"])):
            want = want.loc[want["table"] == name].sort_values(by).reset_index(drop=True)
            got = got.sort_values(by).reset_index(drop=True)
            pd.testing.assert_frame_equal(got.astype(str), want.astype(str), obj=name)
        counts = whole.counts.set_index("table").loc[name]
        assert [h.counts[k] for k in ("input", "kept", "quarantined", "flagged")] == \
            counts[["input", "kept", "quarantined", "flagged"]].tolist(), name


def test_every_check_of_the_light_tables_runs_in_the_engine_as_in_pandas(tmp_path):
    _hostile_light(tmp_path)
    whole, engine = _engine_audits(tmp_path)
    _assert_engine_like_pandas(whole, engine)
    q = pd.concat([h.quarantine for h in engine.values()])
    assert sorted(zip(q["table"], q["row"], q["check"])) == sorted([
        ("deals", 2, "close_before_create"), ("deals", 3, "won_without_close_date"),
        ("deals", 4, "zero_amount_won"), ("deals", 6, "unknown_stage"), ("deals", 7, "negative_amount"),
        ("leads", 2, "double_submission"), ("leads", 3, "double_submission"),
    ])
    reasons = dict(zip(zip(q["table"], q["row"]), q["reason"]))
    assert reasons[("deals", 7)] == "amount -3.0 is negative; closed_at is before created_at"
    assert reasons[("leads", 2)] == "same email and company as a lead 4 min earlier"
    assert reasons[("leads", 3)] == "same phone and company as a lead 7 min earlier"
    f = pd.concat([h.findings for h in engine.values()])
    assert sorted(zip(f["table"], f["row"], f["check"], f["column"])) == sorted([
        ("accounts", 1, "duplicate_contact", "name"), ("accounts", 2, "duplicate_contact", "name"),
        ("accounts", 3, "duplicate_contact", "name"), ("accounts", 4, "orphan", "owner_id"),
        ("deals", 5, "open_with_close_date", "closed_at"),
        ("leads", 1, "duplicate_contact", "email"), ("leads", 4, "duplicate_contact", "email"),
        ("leads", 6, "duplicate_contact", "email"),
        ("leads", 5, "invalid_email", "email"), ("leads", 5, "invalid_phone", "phone"),
        ("contacts", 1, "duplicate_contact", "email"), ("contacts", 2, "duplicate_contact", "email"),
        ("contacts", 3, "duplicate_contact", "phone"),
        ("contacts", 4, "invalid_email", "email"), ("contacts", 4, "invalid_phone", "phone"),
        ("contacts", 4, "orphan", "account_id"),
    ])
    reasons = dict(zip(zip(f["table"], f["row"], f["column"]), f["reason"]))
    assert reasons[("accounts", 1, "name")] == "same normalised name as A2, A3"
    assert reasons[("contacts", 3, "phone")] == "same normalised phone as K1"


def test_the_samples_light_tables_are_audited_in_the_engine_as_in_pandas(sample_parquet):
    whole, engine = _engine_audits(sample_parquet, LIGHT + ("tickets",))
    _assert_engine_like_pandas(whole, engine)
    assert sum(h.counts["quarantined"] for h in engine.values()) > 150  # the planted dirty rows


def test_a_large_sources_engine_tables_are_read_when_first_used_and_their_files_go_with_them(sample_parquet):
    import gc

    data = open_data(sample_parquet, pushdown=True)
    tables = data.tables
    assert not tables.loaded.keys() & {"deals", "leads", "accounts", "activities", "orders"}  # none read yet
    assert set(tables.loaded) == {"users", "stages", "campaigns", "targets", "fx_rates"}  # audited in pandas
    counts = data.counts.set_index("table")
    assert data.rows("deals") == counts.loc["deals", "kept"] and "deals" not in tables.loaded
    assert data.rows("activities") < counts.loc["activities", "kept"]  # the window
    assert data.rows("no_such_table") == 0
    deals = data.table("deals", ["deal_id", "amount"])
    assert list(deals.columns) == ["deal_id", "amount"] and "deals" not in tables.loaded
    assert data.rows("users") == len(data.tables["users"])
    folder = tables.folder
    assert (folder / "deals.parquet").exists()
    del data, tables, deals
    gc.collect()
    assert not folder.exists()  # the clean rows' files are removed with the tables that read them


def test_an_engine_out_of_memory_is_one_line_naming_the_setting(sample_parquet):
    settings = yaml.safe_load((sample_parquet / "export.yaml").read_text())
    with pytest.raises(Exception) as e:
        open_data(sample_parquet, pushdown=True, mapping={**settings, "pushdown_memory": "2MB"})
    assert type(e.value).__name__ == "CrmConfigError"
    assert "ran out of its memory limit (2MB)" in str(e.value) and "pushdown_memory" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_engines_memory_follows_the_size_of_the_activities(sample_parquet, tmp_path, monkeypatch):
    from crmlib.load import export_mapping

    m = export_mapping(sample_parquet, None)
    assert pushdown_source._engine_memory(str(sample_parquet), m) == "1.0GiB"  # the floor
    monkeypatch.setattr(pushdown_source, "ENGINE_BYTES_PER_ROW", 2**30 * 3 / 32_000)  # as if 3 GiB of rows
    assert pushdown_source._engine_memory(str(sample_parquet), m) == "3.0GiB"
    monkeypatch.setattr(pushdown_source, "ENGINE_BYTES_PER_ROW", 2**30)
    assert pushdown_source._engine_memory(str(sample_parquet), m) == "4.0GiB"  # the ceiling
    m.raw["pushdown_memory"] = "2GB"
    assert pushdown_source._engine_memory(str(sample_parquet), m) == "2GB"  # export.yaml's own


# ----------------------------------------------------------------------------- stage history left in its file
@pytest.fixture(scope="module")
def large_snapshot(large, tmp_path_factory):
    return large.save(tmp_path_factory.mktemp("large_snapshot"))


def test_a_large_snapshots_history_is_scanned_with_the_whole_tables_numbers(whole, large_snapshot):
    """Reports 02 to 04 hand the metrics ``data.scan("stage_history")``: from a large source's
    snapshot, DuckDB reduces the file and the table is never loaded; every history metric
    gives the frames the whole table gives, at several report dates. Durations are the
    same integers divided the same way; the quantiles, means and sums may differ in the last
    bits (DuckDB adds and interpolates in its own order), hence rtol 1e-12."""
    from crmlib.metrics import conversion, cycle
    from crmlib.pushdown.scan import ParquetScan

    back = CrmData.load(large_snapshot)
    scan = back.scan("stage_history")
    assert isinstance(scan, ParquetScan) and len(scan) == len(whole.tables["stage_history"])
    h, stages = whole.tables["stage_history"], whole.tables["stages"]
    deals = whole.tables["deals"].assign(amount_rep=whole.tables["deals"]["amount"])
    for as_of in (AS_OF, AS_OF - pd.Timedelta(days=7), AS_OF - pd.DateOffset(years=1)):
        pd.testing.assert_frame_equal(cycle.stage_visits(scan, as_of=as_of), cycle.stage_visits(h, as_of=as_of))
        pd.testing.assert_frame_equal(cycle._last_visits(scan, as_of=as_of).reset_index(drop=True),
                                      cycle._last_visits(h, as_of=as_of).reset_index(drop=True))
        for q in (0.9, 0.75):
            pd.testing.assert_frame_equal(cycle.stage_time_norms(scan, as_of=as_of, quantile=q, min_completed=30),
                                          cycle.stage_time_norms(h, as_of=as_of, quantile=q, min_completed=30),
                                          rtol=1e-12)
        for st in (stages, None):
            pd.testing.assert_frame_equal(cycle.stage_time_table(scan, as_of=as_of, stages=st),
                                          cycle.stage_time_table(h, as_of=as_of, stages=st), rtol=1e-12)
        pd.testing.assert_frame_equal(pipeline.open_pipeline(deals, stages, as_of, history=scan),
                                      pipeline.open_pipeline(deals, stages, as_of, history=h))
        pd.testing.assert_frame_equal(pipeline.stalled_deals(deals, scan, as_of=as_of),
                                      pipeline.stalled_deals(deals, h, as_of=as_of), rtol=1e-12)
        start = as_of - pd.Timedelta(days=30)
        got = pipeline.pipeline_changes(deals, scan, start=start, end=as_of, stages=stages)
        want = pipeline.pipeline_changes(deals, h, start=start, end=as_of, stages=stages)
        assert got.advanced == want.advanced and want.advanced["deals"] > 0
        pd.testing.assert_frame_equal(got.deals, want.deals)
        for st in (stages, None):  # without the stages table the closing stages come from every row
            args = dict(as_of=as_of, start=as_of - pd.DateOffset(years=1))
            got, want = conversion.stage_funnel(deals, scan, st, **args), conversion.stage_funnel(deals, h, st, **args)
            pd.testing.assert_frame_equal(got.table, want.table)
            assert (got.cohort, got.no_history) == (want.cohort, want.no_history)
            pd.testing.assert_frame_equal(conversion.lost_deals(deals, scan, st, **args),
                                          conversion.lost_deals(deals, h, st, **args))
    assert "stage_history" not in back.tables.loaded
    assert isinstance(CrmData.load(large_snapshot).filtered(owners=["U001"]).scan("stage_history"), pd.DataFrame)
    whole_back = CrmData.load(whole.save(large_snapshot.parent / "whole_snapshot"))
    assert isinstance(whole_back.scan("stage_history"), pd.DataFrame)  # a small source: the table itself


def _run_report(report, snapshot, tmp_path, name, *, first=None):
    """Run a report notebook on a snapshot (``first``: a cell run before the report's own
    cells); the tables it loaded, its results record and what it shows."""
    import json

    import nbformat
    import papermill

    from crmlib.results import read_record
    from helpers import ROOT

    nb = nbformat.read(ROOT / "notebooks" / f"{report}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import json\nprint(json.dumps(sorted(r.data.tables.loaded)))"))
    if first:
        nb.cells.insert(0, nbformat.v4.new_code_cell(first))
    source = tmp_path / f"{report}_{name}.ipynb"
    nbformat.write(nb, source)
    results = tmp_path / f"results_{name}"
    done = papermill.execute_notebook(str(source), str(tmp_path / f"{name}.ipynb"), progress_bar=False,
                                      parameters={"snapshot": str(snapshot), "results_dir": str(results)},
                                      cwd=str(ROOT / "notebooks"), kernel_name="python3")
    return json.loads(done.cells[-1].outputs[0]["text"]), read_record(results, report), \
        _outputs(done.cells[:-1])


def _outputs(cells) -> list[str]:
    """What a report's cells show: their text, tables (HTML), Markdown and pictures."""
    shown = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                shown.append(out["text"])
            elif "data" in out:
                data = out["data"]
                shown.append(next((data[k] for k in ("image/png", "image/svg+xml", "text/html", "text/markdown",
                                                     "text/plain") if k in data), ""))
    return shown


@pytest.mark.parametrize("report", ["02_pipeline", "03_conversion", "04_sales_cycle"])
def test_reports_02_to_04_leave_a_large_snapshots_history_in_its_file(report, whole, large_snapshot, tmp_path):
    """The notebooks themselves: run on the large source's snapshot they never load
    stage_history, and record the headline numbers they record from the whole tables."""
    large = _run_report(report, large_snapshot, tmp_path, "large")
    small = _run_report(report, whole.save(tmp_path / "whole"), tmp_path, "whole")
    assert "stage_history" not in large[0]
    assert "stage_history" in small[0]  # the small source's path: the frame
    assert large[1]["headlines"] == small[1]["headlines"]
    assert large[1]["headlines"]


def test_the_win_model_on_a_large_snapshot_gives_the_loaded_tables_numbers(large_snapshot):
    """Report 07 hands the win-probability model scans of the history and the activity window:
    DuckDB picks the sampled deals' rows (several snapshots) and counts the open deals'
    touches (one snapshot). The model, its test and the scored pipeline are the ones the
    loaded tables give, exactly: the same rows reach the same pandas code, and the counts
    are integers."""
    from crmlib.pushdown.scan import ParquetScan
    from crmlib.stats import winprob

    data = CrmData.load(large_snapshot)
    history, acts = data.scan("stage_history"), data.scan("activities", columns=winprob.ACTIVITY_COLUMNS)
    assert isinstance(history, ParquetScan) and isinstance(acts, ParquetScan)
    tables = dict(history=data.tables["stage_history"],
                  activities=data.get("activities", columns=winprob.ACTIVITY_COLUMNS))
    info, want_info = pushdown_info(acts), pushdown_info(tables["activities"])  # the window travels
    assert (info.rows_from, info.as_of, info.window_days) == (want_info.rows_from, want_info.as_of,
                                                              want_info.window_days)
    deals = data.tables["deals"].assign(amount_rep=data.tables["deals"]["amount"])
    kw = dict(holdout_days=180, label_wait_days=60, every_days=28, max_deals=600, seed=3)
    for as_of in (AS_OF, AS_OF - pd.Timedelta(days=90)):
        got = winprob.win_probability_model(deals, as_of, history=history, activities=acts, **kw)
        want = winprob.win_probability_model(deals, as_of, **tables, **kw)
        assert_text_equal(got.model.to_frame(), want.model.to_frame())
        assert_text_equal(got.evaluation.to_frame(), want.evaluation.to_frame())
        scored = winprob.score_open_deals(deals, got.model, as_of, history=history, activities=acts)
        assert_text_equal(scored, winprob.score_open_deals(deals, got.model, as_of, **tables))
        assert scored["stage"].notna().mean() > 0.9 and scored["log_calls_emails"].abs().sum() > 0


def test_the_next_task_check_on_a_large_snapshot_scans_the_activity_window(large_snapshot):
    """Report 02's next-task check handed a scan of the activity window: DuckDB reduces each
    deal's open tasks, and the frames equal the loaded columns' at several dates; a date
    before the window is refused in one line, as from the frame."""
    data = CrmData.load(large_snapshot)
    scan, part = data.scan("activities"), data.table("activities", columns=pipeline.TASK_COLUMNS)
    deals = data.tables["deals"]
    for as_of in (AS_OF, AS_OF - pd.Timedelta(days=7), AS_OF - pd.Timedelta(days=45)):
        got = pipeline.task_coverage(deals, scan, as_of=as_of)
        pd.testing.assert_frame_equal(got, pipeline.task_coverage(deals, part, as_of=as_of))
        assert got["has_next_task"].any() and got["open_tasks"].sum() > 0
        if as_of == AS_OF:  # 62 deals with an overdue task that day
            assert got["has_overdue_task"].sum() > 50
        pd.testing.assert_frame_equal(pipeline.task_coverage_by_owner(deals, scan, as_of=as_of),
                                      pipeline.task_coverage_by_owner(deals, part, as_of=as_of))
    early = pushdown_info(scan).rows_from - pd.Timedelta(days=1)
    for acts in (scan, part):
        with pytest.raises(CrmDataError, match="pushdown_window_days"):
            pipeline.task_coverage(deals, acts, as_of=early)


def test_report_05s_activity_counts_on_a_large_snapshot_are_the_loaded_columns(large_snapshot):
    """Report 05 handed a scan of the activity window: DuckDB counts what is done per owner and
    per period, what is scheduled, and the per-week panel comes from the engine's weekly
    aggregate; every frame equals the one from the loaded columns, for two periods."""
    from crmlib.periods import periods_back

    data = CrmData.load(large_snapshot)
    scan, part = data.scan("activities"), data.table("activities", columns=activity.ACTIVITY_COLUMNS)
    deals = data.tables["deals"].assign(amount_rep=data.tables["deals"]["amount"])
    for as_of in (AS_OF, AS_OF - pd.Timedelta(days=30)):
        for period in ("week", "month"):
            cur = period_bounds(as_of, period).current
            got = activity.owner_performance(deals, period=cur, as_of=as_of, activities=scan)
            pd.testing.assert_frame_equal(got, activity.owner_performance(deals, period=cur, as_of=as_of,
                                                                          activities=part))
            assert got["calls_done"].sum() > 0
            if as_of == AS_OF:  # the tasks and meetings due after the report date
                assert got[["meetings_scheduled", "tasks_scheduled"]].to_numpy().sum() > 0
            periods = periods_back(as_of, period, 6)
            pd.testing.assert_frame_equal(activity.activity_mix(scan, periods=periods, as_of=as_of),
                                          activity.activity_mix(part, periods=periods, as_of=as_of))
        got = activity.activity_outcome(deals, scan, as_of=as_of)
        want = activity.activity_outcome(deals, part, as_of=as_of)
        pd.testing.assert_frame_equal(got.bands, want.bands)
        assert got.fitted == want.fitted
    assert "activities" not in data.tables.loaded


def test_goal_actuals_on_a_large_snapshot_scan_the_calls_and_meetings(large_snapshot):
    """Report 08 handed a scan of the activity window: the call and meeting actuals (and the
    targets before the window, left unmeasured) are those of the loaded columns."""
    data = CrmData.load(large_snapshot)
    scan, part = data.scan("activities"), data.table("activities", columns=goals.ACTIVITY_COLUMNS)
    deals = data.tables["deals"].assign(amount_rep=data.tables["deals"]["amount"])
    kw = dict(as_of=AS_OF, deals=deals, users=data.tables["users"])
    got = goals.goal_progress(data.tables["targets"], activities=scan, **kw)
    pd.testing.assert_frame_equal(got, goals.goal_progress(data.tables["targets"], activities=part, **kw))
    assert got.loc[got["metric"] == "calls", "actual"].sum() > 0
    assert got.loc[got["metric"] == "meetings", "actual"].sum() > 0
    for metric in ("calls", "meetings"):
        pd.testing.assert_frame_equal(
            goals.attainment_history(data.tables["targets"], activities=scan, metric=metric, **kw),
            goals.attainment_history(data.tables["targets"], activities=part, metric=metric, **kw))
    assert "activities" not in data.tables.loaded


@pytest.mark.parametrize("inline", [1000, 0], ids=["keys-inline", "keys-joined"])
def test_report_06s_call_and_touch_metrics_on_a_large_snapshot_are_the_loaded_tables(large_snapshot, inline,
                                                                                     monkeypatch):
    """Report 06 handed a scan of the activity window: DuckDB picks the calls (by direction,
    window and key) and the lead touches, and every frame equals the loaded table's, whether
    the allowed values are written into the query or (as for the many keys of a large
    source's missed calls) semi-joined from a table of them."""
    monkeypatch.setattr(deal_rows, "INLINE_VALUES", inline)
    data = CrmData.load(large_snapshot)
    scan, table = data.scan("activities"), CrmData.load(large_snapshot).tables["activities"]
    leads = data.table("leads", columns=response.LEAD_COLUMNS)
    for as_of in (AS_OF, AS_OF - pd.Timedelta(days=30)):
        start = as_of - pd.Timedelta(weeks=12)
        got = response.inbound_calls(scan, as_of)
        assert_text_equal(got, response.inbound_calls(table, as_of))
        assert got["missed"].sum() > 0 and (got["callback_status"] == "called back").sum() > 0
        window = dict(start=start, end=as_of - pd.Timedelta(days=7))
        assert_text_equal(response.inbound_calls(scan, as_of, **window),
                                      response.inbound_calls(table, as_of, **window))
        assert_text_equal(response.first_touches(leads, scan, as_of, start=start),
                                      response.first_touches(leads, table, as_of, start=start))
        assert_text_equal(response.call_heatmap(scan, as_of, start=start),
                                      response.call_heatmap(table, as_of, start=start))
        users = data.tables["users"]
        assert_text_equal(response.call_handling(scan, as_of, start=start, users=users),
                                      response.call_handling(table, as_of, start=start, users=users))
    assert "activities" not in data.tables.loaded


@pytest.mark.parametrize("report", sorted(p.stem for p in (ROOT / "notebooks").glob("[01]*.ipynb")))
def test_every_report_on_a_large_snapshot_shows_what_the_tables_read_whole_as_text_show(report, large_snapshot,
                                                                                       tmp_path):
    """On a large snapshot the heavy tables stay in their files (reports 02-08 hand the metrics
    scans of the stage history and the activity window) and repetitive text columns (stage,
    status, owner, source, currency, ...) are read as pandas categories. Every report shows
    exactly what it shows from the same snapshot with both switched off (tables read whole,
    text as text): each table, sentence and picture, and the same recorded headlines."""
    data = CrmData.load(large_snapshot)
    assert isinstance(data.tables["deals"]["stage"].dtype, pd.CategoricalDtype)
    assert data.tables["deals"]["deal_id"].dtype == "str"  # unique ids stay text
    lean = _run_report(report, large_snapshot, tmp_path, "lean")
    whole = _run_report(report, large_snapshot, tmp_path, "whole",
                        first="import crmlib.data\ncrmlib.data.CATEGORY_SHARE = None\ncrmlib.data.SCANNABLE = ()")
    assert lean[2] == whole[2] and len(lean[2]) > 5
    assert (lean[1] or {}).get("headlines") == (whole[1] or {}).get("headlines")  # 00 records none
    assert not {"stage_history", "activities"} & set(lean[0])  # neither heavy table loaded
    if report in ("02_pipeline", "07_forecast"):  # they read the history; 03 and 04 scan it
        assert "stage_history" in whole[0]
