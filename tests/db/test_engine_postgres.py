"""The pushdown expressions and the engine audit run on PostgreSQL and give the in-memory numbers.

The sample sits in a real PostgreSQL server (tests/db/conftest.py). Read as a large source
(``pushdown=True``), its heavy tables are audited and aggregated by PostgreSQL through the
same Ibis expressions DuckDB runs; the counts, the quarantine, the findings, the clean
tables and the aggregates must equal those of the committed CSV sample read in memory.
"""

import pandas as pd
import pytest

from crmlib.data import open_data
from crmlib.periods import as_of_instant
from crmlib.pushdown import backends, frames
from helpers import SAMPLE

SAMPLE_MAPPING = SAMPLE / "export.yaml"
URL = "env:CRM_DB_URL"


@pytest.fixture(scope="module")
def pushed(databases, pg_server, monkeypatch_module):
    monkeypatch_module.setenv("CRM_DB_URL", pg_server.url)
    return open_data(databases["postgresql"], mapping=SAMPLE_MAPPING, pushdown=True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_postgres_audits_the_heavy_tables_as_pandas_does(pushed, csv_sample):
    pd.testing.assert_frame_equal(pushed.counts.drop(columns="source"), csv_sample.counts.drop(columns="source"))
    by = ["table", "row", "check"]
    # the record quotes the row as the database returns it (its own types), so it is left out
    cols = ["table", "row", "key", "column", "check", "reason", "dated_at"]
    mine = pushed.quarantine.loc[pushed.quarantine["check"] != "ragged_row"]
    theirs = csv_sample.quarantine.loc[csv_sample.quarantine["check"] != "ragged_row"]
    heavy = ["activities", "stage_history", "orders"]
    pd.testing.assert_frame_equal(
        mine.loc[mine["table"].isin(heavy), cols].sort_values(by).reset_index(drop=True),
        theirs.loc[theirs["table"].isin(heavy), cols].sort_values(by).reset_index(drop=True))
    f_cols = ["table", "row", "key", "column", "check", "reason"]
    by = ["table", "row", "check", "column"]
    pd.testing.assert_frame_equal(pushed.findings[f_cols].sort_values(by).reset_index(drop=True),
                                  csv_sample.findings[f_cols].sort_values(by).reset_index(drop=True))
    for name in ("stage_history", "orders"):
        pd.testing.assert_frame_equal(pushed.tables[name], csv_sample.tables[name], obj=name)


def test_postgres_runs_the_aggregations_and_gets_the_in_memory_numbers(pushed, csv_sample, pg_server,
                                                                       monkeypatch_module):
    as_of = as_of_instant("2026-09-27", "UTC")
    memory = frames.aggregate_frames(csv_sample.tables, as_of=as_of)
    assert set(pushed.aggregates) == set(memory)
    for name, frame in memory.items():  # computed by PostgreSQL over the clean rows during the load
        pd.testing.assert_frame_equal(pushed.aggregates[name], frame, check_exact=False, rtol=1e-9, obj=name)
    con = backends.connect("postgres", url=URL)
    try:  # and the expressions alone, straight over the database's tables
        tables = {n: con.table(n).rename(**{backends.POSITION: "export_row"}) for n in backends.HEAVY_TABLES}
        direct = backends.run(con, tables, as_of=as_of, names=("customer_orders", "activity_firsts"))
    finally:
        con.disconnect()
    assert len(direct["customer_orders"]) >= len(memory["customer_orders"])  # the raw rows, dirty ones too


def test_postgres_audits_the_light_tables_as_pandas_does(databases, pg_server, csv_sample, monkeypatch_module):
    """The checks of deals, leads, contacts, accounts and tickets (double submissions, duplicate
    people and companies, malformed emails and phones, the deals' own checks) in PostgreSQL."""
    from crmlib.load import export_mapping
    from crmlib.pushdown.audit import audit_in_engine

    monkeypatch_module.setenv("CRM_DB_URL", pg_server.url)
    m = export_mapping(databases["postgresql"], SAMPLE_MAPPING)
    extracted = pd.Timestamp(m.extracted_at).tz_localize(m.timezone)
    con = backends.connect("postgres", url=URL)
    q_cols = ["row", "key", "column", "check", "reason", "dated_at"]
    f_cols = ["row", "key", "column", "check", "reason"]
    try:
        for name in ("accounts", "deals", "leads", "contacts", "tickets"):
            t = con.table(name)
            t = t.mutate(_pos=t["export_row"].cast("int64")).drop("export_row")
            h = audit_in_engine(con, t, name, source=name, mapping=m, light=csv_sample, timezone="UTC",
                            extracted_at=extracted, row_offset=0)
            for got, want, by, cols in ((h.quarantine, csv_sample.quarantine, ["row", "check"], q_cols),
                                        (h.findings, csv_sample.findings, ["row", "check", "column"], f_cols)):
                want = want.loc[(want["table"] == name) & (want["check"] != "history_missing_current_stage")]
                pd.testing.assert_frame_equal(got[cols].sort_values(by).reset_index(drop=True).astype(str),
                                              want[cols].sort_values(by).reset_index(drop=True).astype(str),
                                              obj=name)
            assert len(h.quarantine) > 10, name  # the sample's dirty rows of each table
    finally:
        con.disconnect()
