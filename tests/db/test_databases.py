"""The sample in a real PostgreSQL server, a SQLite file and a DuckDB file reads back as the CSV
sample does, the pack runs from a database, and its password never reaches an output.

The reference is always the CSV sample read by ``open_data``; the spot values quoted
(D0001's created_at and amount, account 0001333) are the first lines of data/sample's
deals.csv.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crmlib.cli import main as cli_main
from crmlib.data import open_data
from crmlib.db import write_database
from crmlib.errors import CrmConfigError, CrmDataError
from crmlib.load import read_source
from helpers import ROOT, SAMPLE

DATABASES = ("postgresql", "sqlite", "duckdb")
SAMPLE_AS_OF = "2026-09-27"  # data/sample/export.yaml
RECORD_KEY = ["table", "row", "key", "column", "check", "reason"]  # quarantine and findings


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "crmlib", *args], capture_output=True, text=True,
                          env=environment, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL)


def config_with_sample_settings(folder: Path) -> Path:
    """A run configuration that reads a database with the sample's export.yaml settings."""
    config = folder / "config.yaml"
    config.write_text(f"mapping: {SAMPLE / 'export.yaml'}\n", encoding="utf-8")
    return config


def files_holding(folder: Path, needle: str) -> list[str]:
    """Every file under ``folder`` (hidden ones too) whose bytes contain ``needle``."""
    return [str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and needle.encode() in p.read_bytes()]


# ---------------------------------------------------------------- the sample, read back
@pytest.mark.parametrize("name", DATABASES)
def test_every_clean_table_equals_the_csv_sample(name, loaded, csv_sample):
    data = loaded(name)
    assert sorted(data.tables) == sorted(csv_sample.tables)
    for table, expected in csv_sample.tables.items():
        pd.testing.assert_frame_equal(data.tables[table], expected, obj=f"{name}: {table}")


@pytest.mark.parametrize("name", DATABASES)
def test_the_audit_keeps_and_quarantines_the_same_rows(name, loaded, csv_sample):
    data = loaded(name)
    columns = ["table", "input", "kept", "quarantined", "flagged", "score"]
    pd.testing.assert_frame_equal(data.counts[columns], csv_sample.counts[columns])
    assert data.counts.set_index("table").loc["all", "quarantined"] == 762  # the planted problems
    # same records, same checks, same reasons, quoted at the same export rows
    pd.testing.assert_frame_equal(data.quarantine[RECORD_KEY].reset_index(drop=True),
                                  csv_sample.quarantine[RECORD_KEY].reset_index(drop=True))
    pd.testing.assert_frame_equal(data.findings[RECORD_KEY].reset_index(drop=True),
                                  csv_sample.findings[RECORD_KEY].reset_index(drop=True))


@pytest.mark.parametrize("name", DATABASES)
def test_ids_keep_leading_zeros_and_timestamps_and_money_keep_their_values(name, loaded):
    data = loaded(name)
    deal = data.tables["deals"].set_index("deal_id").loc["D0001"]
    # deals.csv line 2: D0001,...,0001333,U026,...,won,34520,EUR,outbound,2023-07-31 18:04:14,2023-11-01 10:46:31
    assert deal["account_id"] == "0001333"
    assert deal["created_at"] == pd.Timestamp("2023-07-31 18:04:14", tz="UTC")
    assert deal["closed_at"] == pd.Timestamp("2023-11-01 10:46:31", tz="UTC")
    assert deal["amount"] == 34520.0
    assert "0001333" in set(data.tables["accounts"]["account_id"])
    assert str(data.tables["deals"]["created_at"].dt.tz) == "UTC"


def test_postgres_columns_have_sql_types(pg_server, databases):
    engine = sa.create_engine(os.environ["CRM_DB_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale "
                "FROM information_schema.columns WHERE table_schema = 'public'")).all()
    finally:
        engine.dispose()
    types = {(t, c): (d, p, s) for t, c, d, p, s in rows}
    assert types["deals", "deal_id"][0] == "text"
    assert types["accounts", "account_id"][0] == "text"
    assert types["deals", "created_at"][0] == "timestamp with time zone"
    assert types["deals", "amount"] == ("numeric", 18, 4)
    assert types["activities", "duration_s"][0] == "double precision"
    assert types["stages", "order"][0] == "bigint"
    assert types["users", "active"][0] == "boolean"
    assert types["deals", "export_row"][0] == "bigint"


def test_duckdb_and_sqlite_columns_have_their_types(databases):
    import duckdb

    with duckdb.connect(databases["duckdb"], read_only=True) as con:
        duck = {r[0]: r[1] for r in con.execute("DESCRIBE deals").fetchall()}
    assert duck["deal_id"] == "VARCHAR" and duck["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert duck["amount"] == "DECIMAL(18,4)"
    with sqlite3.connect(databases["sqlite"]) as con:
        first = con.execute("SELECT deal_id, created_at, amount FROM deals "
                            "ORDER BY export_row LIMIT 1").fetchone()
    # SQLite has no timestamp type: ISO 8601 text that carries its UTC offset
    assert first == ("D0001", "2023-07-31T18:04:14+00:00", 34520)


# ---------------------------------------------------------------- the pack from PostgreSQL
def test_the_pack_runs_from_an_env_postgres_url_and_no_output_holds_the_password(
        pg_server, databases, tmp_path):
    out = tmp_path / "out"
    done = cli("run", "--source", "env:CRM_DB_URL", "--config",
               str(config_with_sample_settings(tmp_path)), "--as-of", SAMPLE_AS_OF,
               "--only", "01,02", "--jobs", "2", "--out", str(out),
               env={"CRM_DB_URL": pg_server.url})
    assert done.returncode == 0, done.stderr[-2000:]
    pack = out / SAMPLE_AS_OF
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    assert [(r["report"], r["status"]) for r in manifest["reports"]] == \
        [("01_data_audit", "ok"), ("02_pipeline", "ok")]
    assert manifest["source"] == "env:CRM_DB_URL"
    assert manifest["data"]["meta"]["extracted_at"] == "2026-09-28T06:00:00+00:00"
    kept = {p.name for p in pack.iterdir()}
    assert {"01_data_audit.html", "01_data_audit.ipynb", "02_pipeline.html", "02_pipeline.ipynb",
            "index.html", "manifest.json"} <= kept
    assert list((pack / "_run" / "logs").glob("*.log"))
    assert files_holding(out, pg_server.password) == []
    assert pg_server.password not in done.stdout + done.stderr


def test_the_command_line_audits_a_database_file_given_as_the_source(databases, capsys):
    source = databases["sqlite"]
    code = cli_main(["audit", "--source", source, "--mapping", str(SAMPLE / "export.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Audit of {Path(source).resolve()}" in out
    # the CSV sample's totals (data/sample: 71,467 rows, 762 of them quarantined)
    assert "762 of 71,467 rows quarantined (1.1%); counts add up" in out


# ---------------------------------------------------------------- credentials
def test_a_postgres_url_with_a_password_on_the_command_line_is_refused_in_one_line(tmp_path):
    url = "postgresql+psycopg://crm:hunter2-on-the-cli@db.example.com:5432/crm"
    for args in (("run", "--source", url, "--out", str(tmp_path / "out")),
                 ("audit", "--source", url)):
        done = cli(*args)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert "env:CRM_DB_URL" in done.stderr
        assert "hunter2-on-the-cli" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()


def test_the_server_checks_the_password_and_the_error_does_not_quote_it(pg_server, databases,
                                                                       monkeypatch):
    wrong = "not-the-password-123"
    monkeypatch.setenv("CRM_DB_URL", pg_server.url.replace(pg_server.password, wrong))
    with pytest.raises(CrmDataError, match="password authentication failed") as info:
        read_source("env:CRM_DB_URL", tables=("deals",))
    assert wrong not in str(info.value)
    # a URL without a password takes it from CRM_DB_PASSWORD
    monkeypatch.setenv("CRM_DB_URL", pg_server.url.replace(f":{pg_server.password}@", "@"))
    monkeypatch.setenv("CRM_DB_PASSWORD", pg_server.password)
    raw = read_source("env:CRM_DB_URL", tables=("deals",))
    assert len(raw.tables["deals"].frame) == 3307  # data rows of deals.csv
    assert pg_server.password not in raw.source


def test_an_env_value_that_is_not_a_url_is_one_line_that_does_not_quote_it(monkeypatch):
    monkeypatch.setenv("CRM_BAD_URL", "postgresql+psycopg://crm:secret-bit@db:notaport/crm")
    with pytest.raises(CrmConfigError, match="value of CRM_BAD_URL is not a database URL") as info:
        read_source("env:CRM_BAD_URL")
    assert "secret-bit" not in str(info.value)


# ---------------------------------------------------------------- write_database itself
def test_rows_come_back_in_export_row_order_and_the_first_duplicate_is_kept(tmp_path):
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE deals (export_row INTEGER, deal_id TEXT, status TEXT, "
                    "amount REAL, created_at TEXT)")
        # stored out of order, as PostgreSQL may store them
        con.executemany("INSERT INTO deals VALUES (?, ?, ?, ?, ?)", [
            (4, "D2", "open", 9.0, "2024-01-03"),
            (3, "D1", "open", 5.0, "2024-01-02"),
            (2, "D1", "open", 7.0, "2024-01-01"),
        ])
    data = open_data(str(db), extracted_at="2024-06-01")
    deals = data.tables["deals"]
    assert deals["deal_id"].tolist() == ["D1", "D2"]
    assert deals["amount"].tolist() == [7.0, 9.0]  # export row 2 came first
    quarantined = data.quarantine[["row", "key", "check"]].to_dict("records")
    assert quarantined == [{"row": 3, "key": "D1", "check": "duplicate_id"}]


def test_an_export_row_column_with_a_gap_is_one_clear_error(tmp_path):
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE deals (export_row INTEGER, deal_id TEXT, status TEXT, "
                    "amount REAL, created_at TEXT)")
        con.execute("INSERT INTO deals VALUES (NULL, 'D1', 'open', 1.0, '2024-01-01')")
    with pytest.raises(CrmDataError, match="export_row must hold the whole row number"):
        open_data(str(db), extracted_at="2024-06-01")


def test_a_value_that_does_not_parse_is_written_as_text_and_quarantined_again(write_export,
                                                                               tmp_path):
    export = write_export({"deals.csv": "deal_id,status,amount,created_at\n"
                                        "007,open,100,2024-01-05 10:00:00\n"
                                        "008,won,lots,2024-01-06 11:30:00\n"
                                        "009,open,250.5,2024-01-07\n"})
    db = tmp_path / "crm.duckdb"
    assert write_database(export, str(db)) == {"deals": 3}
    from_csv = open_data(export, extracted_at="2024-06-01")
    from_db = open_data(str(db), extracted_at="2024-06-01")
    assert from_db.tables["deals"]["deal_id"].tolist() == ["007", "009"]
    assert from_db.tables["deals"]["amount"].tolist() == [100.0, 250.5]
    assert from_db.quarantine[RECORD_KEY].to_dict("records") == \
        from_csv.quarantine[RECORD_KEY].to_dict("records")
    assert from_db.quarantine[["row", "key", "check"]].to_dict("records") == \
        [{"row": 3, "key": "008", "check": "unparseable_number"}]


def test_a_ragged_csv_row_cannot_be_written(write_export, tmp_path):
    export = write_export({"deals.csv": "deal_id,status,amount,created_at\n"
                                        "1,open,5,2024-01-05\n"
                                        "2,open,5,2024-01-05,extra\n"})
    with pytest.raises(CrmDataError, match="line 3.*fix the export"):
        write_database(export, str(tmp_path / "crm.sqlite"))


def test_clean_tables_of_a_crmdata_read_back_with_nothing_to_quarantine(csv_sample, tmp_path):
    db = tmp_path / "clean.duckdb"
    written = write_database(csv_sample, str(db))
    assert written == {name: len(df) for name, df in csv_sample.tables.items()}
    again = open_data(str(db), mapping=SAMPLE / "export.yaml")
    assert len(again.quarantine) == 0
    for table, expected in csv_sample.tables.items():
        pd.testing.assert_frame_equal(again.tables[table], expected, obj=table)


def test_existing_tables_and_passwords_in_the_target_are_refused(write_export, tmp_path,
                                                                 monkeypatch):
    export = write_export({"deals.csv": "deal_id,status,amount,created_at\n1,open,5,2024-01-05\n"})
    db = tmp_path / "crm.sqlite"
    write_database(export, str(db))
    with pytest.raises(CrmConfigError, match="deals already exist"):
        write_database(export, str(db))
    assert write_database(export, str(db), replace=True) == {"deals": 1}
    with pytest.raises(CrmConfigError, match="password"):
        write_database(export, "postgresql+psycopg://crm:s3cret-pw@localhost/crm")
    with pytest.raises(CrmConfigError, match="file ending in"):
        write_database(export, str(tmp_path / "crm.csv"))


def test_the_server_script_wants_a_password_and_stop_is_safe_on_a_missing_folder(tmp_path):
    script = [sys.executable, str(ROOT / "scripts" / "pg_server.py")]
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    done = subprocess.run([*script, "start", str(tmp_path / "pg")], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stderr.strip() == "pg_server: error: set PGPASSWORD to the password the role crm " \
                                  "should get"
    assert not (tmp_path / "pg").exists()
    done = subprocess.run([*script, "stop", str(tmp_path / "never-started")], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and done.stderr == ""


def test_amounts_finer_than_four_decimals_are_not_rounded(write_export, tmp_path):
    import duckdb

    export = write_export({"deals.csv": "deal_id,status,amount,created_at\n"
                                        "1,open,0.123456,2024-01-05\n"
                                        "2,open,10.5,2024-01-05\n"})
    db = tmp_path / "crm.duckdb"
    write_database(export, str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        types = {r[0]: r[1] for r in con.execute("DESCRIBE deals").fetchall()}
    assert types["amount"] == "DOUBLE"
    amounts = open_data(str(db), extracted_at="2024-06-01").tables["deals"]["amount"].tolist()
    assert amounts == [0.123456, 10.5]
