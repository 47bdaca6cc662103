"""Reading exports: every pandas trap of TRAPS.md, one test each."""

import sqlite3

import pandas as pd
import pytest

from crmlib.data import open_data
from crmlib.errors import CrmConfigError, CrmDataError
from crmlib.load import parse_number_text, parse_timestamps, read_source

HEAD = "deal_id,name,status,amount,currency,created_at,closed_at,lost_reason\n"
EXT = "2025-01-01"


def deals(data):
    return data.tables["deals"]


def test_ids_keep_leading_zeros_in_csv(write_export):
    src = write_export({"deals.csv": HEAD + "00123,A,open,10,EUR,2024-01-02,,\n"})
    assert deals(open_data(src, extracted_at=EXT))["deal_id"].tolist() == ["00123"]


def test_ids_keep_leading_zeros_in_excel_text_cells(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    df = pd.DataFrame({"deal_id": ["00123", "0456"], "status": ["open", "won"],
                       "amount": [10, 20], "created_at": ["2024-01-02", "2024-01-03"],
                       "closed_at": ["", "2024-02-01"]})
    df.to_excel(folder / "deals.xlsx", index=False)
    assert deals(open_data(folder, extracted_at=EXT))["deal_id"].tolist() == ["00123", "0456"]


def test_na_like_words_stay_text(write_export):
    rows = "".join(f"D{i},{w},lost,10,EUR,2024-01-02,2024-01-05,{w}\n"
                   for i, w in enumerate(["NA", "None", "null", "n/a", "#N/A"]))
    d = deals(open_data(write_export({"deals.csv": HEAD + rows}), extracted_at=EXT))
    assert d["lost_reason"].tolist() == ["NA", "None", "null", "n/a", "#N/A"]


def test_duplicated_header_is_one_clear_error(write_export):
    src = write_export({"deals.csv": "deal_id,status,amount,created_at,amount\n1,open,1,2024-01-01,2\n"})
    with pytest.raises(CrmDataError, match=r"deals.csv: column 'amount' appears twice"):
        open_data(src, extracted_at=EXT)


def test_ragged_row_is_quarantined_with_its_line(write_export):
    src = write_export({"deals.csv": HEAD + "1,A,open,10,EUR,2024-01-02,,\n2,B,open,10\n"
                                            "3,C,open,10,EUR,2024-01-02,,,extra,more\n"})
    data = open_data(src, extracted_at=EXT)
    q = data.quarantine
    assert sorted(q.loc[q["check"] == "ragged_row", "row"]) == [3, 4]
    assert deals(data)["deal_id"].tolist() == ["1"]


def test_total_footer_row_is_quarantined_not_summed(write_export):
    src = write_export({"deals.csv": HEAD + "1,A,won,10,EUR,2024-01-02,2024-01-03,\n"
                                            "2,B,won,20,EUR,2024-01-02,2024-01-03,\n,Total,,30,,,,\n"})
    data = open_data(src, extracted_at=EXT)
    assert deals(data)["amount"].sum() == 30
    assert data.quarantine["check"].tolist() == ["summary_row"]


def test_stray_text_in_amount_quarantines_the_row_not_the_sum(write_export):
    src = write_export({"deals.csv": HEAD + "".join(
        f"{i},A,open,{v},EUR,2024-01-02,,\n" for i, v in enumerate(["10", "20", "n/a", "30"]))})
    data = open_data(src, extracted_at=EXT)
    assert deals(data)["amount"].sum() == 60.0
    assert data.quarantine["check"].tolist() == ["unparseable_number"]


def test_semicolon_file_with_decimal_commas_needs_its_separators(write_export):
    body = "deal_id;status;amount;created_at\n" + "".join(
        f"{i};open;1.234,5{i};2024-01-02\n" for i in range(12))
    src = write_export({"deals.csv": body})
    with pytest.raises(CrmDataError, match=r"amount .*set `decimal:`"):
        open_data(src, extracted_at=EXT)
    src = write_export({"deals.csv": body, "export.yaml": "decimal: ','\nthousands: '.'\n"}, "eu")
    assert deals(open_data(src, extracted_at=EXT))["amount"].iloc[0] == pytest.approx(1234.50)


def test_iso_dates_are_never_read_day_first():
    s = pd.Series(["2024-03-01", "01/03/2024"], dtype="str")
    out = parse_timestamps(s, formats=["%d/%m/%Y"], source_tz="UTC", tz="UTC")
    assert [t.month for t in out] == [3, 3] and [t.day for t in out] == [1, 1]


def test_a_date_column_matching_no_format_is_one_clear_error(write_export):
    src = write_export({"deals.csv": HEAD + "1,A,open,1,EUR,15 Apr 2021,,\n2,B,open,1,EUR,16 Apr 2021,,\n"})
    with pytest.raises(CrmDataError) as e:
        open_data(src, extracted_at=EXT)
    msg = str(e.value)
    assert "created_at" in msg and "date_formats" in msg and "row 2" in msg and "\n" not in msg


def test_one_unparseable_date_is_quarantined_others_kept(write_export):
    rows = "".join(f"{i},A,open,1,EUR,2024-01-0{i},,\n" for i in range(1, 6)) + "9,B,open,1,EUR,2024-02-30,,\n"
    data = open_data(write_export({"deals.csv": HEAD + rows}), extracted_at=EXT)
    assert len(deals(data)) == 5
    assert data.quarantine["check"].tolist() == ["unparseable_date"]
    assert data.quarantine["row"].tolist() == [7]


def test_zoho_style_dates_and_k_amounts(write_export):
    src = write_export({
        "deals.csv": 'deal_id,status,amount,created_at\n1,open,"$1,117.10K","15 Apr, 2021 00:03:00"\n',
        "export.yaml": "date_formats: ['%d %b, %Y %H:%M:%S']\n"})
    d = deals(open_data(src, extracted_at=EXT))
    assert d["amount"].iloc[0] == pytest.approx(1_117_100.0)
    assert d["created_at"].iloc[0] == pd.Timestamp("2021-04-15 00:03:00", tz="UTC")


def test_excel_serial_dates_are_converted(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    pd.DataFrame({"deal_id": ["1"], "status": ["open"], "amount": [1.0],
                  "created_at": [45292]}).to_excel(folder / "deals.xlsx", index=False)
    d = deals(open_data(folder, extracted_at=EXT))
    assert d["created_at"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_excel_title_rows_above_the_header_are_skipped(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    with pd.ExcelWriter(folder / "deals.xlsx") as xw:
        pd.DataFrame([["Deals report"], ["exported 2024-06-30"]]).to_excel(xw, index=False, header=False)
        pd.DataFrame({"deal_id": ["7"], "status": ["open"], "amount": [1.0],
                      "created_at": ["2024-01-01"]}).to_excel(xw, index=False, startrow=3)
    data = open_data(folder, extracted_at=EXT)
    assert deals(data)["deal_id"].tolist() == ["7"]


def test_all_timestamps_are_timezone_aware_in_the_run_timezone(write_export):
    src = write_export({"deals.csv": HEAD + "1,A,won,1,EUR,2024-01-02 10:00:00,2024-01-05T10:00:00+02:00,\n"})
    d = deals(open_data(src, extracted_at=EXT, timezone="Europe/Berlin"))
    assert str(d["created_at"].dt.tz) == "Europe/Berlin"
    assert d["created_at"].iloc[0] == pd.Timestamp("2024-01-02 10:00", tz="UTC")
    assert d["closed_at"].iloc[0] == pd.Timestamp("2024-01-05 08:00", tz="UTC")


def test_money_formats_parse_explicitly():
    s = pd.Series(["$1,200.00", "(300.00)", " $200,000 ", "-$5", "EUR 7.5", "1234,56", "12,34"], dtype="str")
    out = parse_number_text(s, decimal=".", thousands=",")
    assert out.tolist()[:5] == [1200.0, -300.0, 200000.0, -5.0, 7.5]
    assert out.iloc[5:].isna().all()  # bad grouping is rejected, never read as 123456
    eu = parse_number_text(pd.Series(["1 200 €", "1.234,56"], dtype="str"), decimal=",", thousands=" ")
    assert eu.iloc[0] == 1200.0 and pd.isna(eu.iloc[1])


def test_cp1251_file_fails_with_a_fix_and_loads_when_declared(write_export):
    body = (HEAD + "1,Сделка,open,1,EUR,2024-01-02,,\n").encode("cp1251")
    with pytest.raises(CrmDataError, match=r"deals.csv: cannot be decoded as utf-8 .*encoding"):
        open_data(write_export({"deals.csv": body}), extracted_at=EXT)
    src = write_export({"deals.csv": body, "export.yaml": "encoding: cp1251\n"}, "ru")
    assert deals(open_data(src, extracted_at=EXT))["name"].iloc[0] == "Сделка"


def test_utf16_spreadsheet_export_with_bom_loads(write_export):
    body = (HEAD.replace(",", "\t") + "1\tÄrger\topen\t1\tEUR\t2024-01-02\t\t\n").encode("utf-16")
    d = deals(open_data(write_export({"deals.csv": body}), extracted_at=EXT))
    assert d["name"].iloc[0] == "Ärger"


def test_crlf_line_ends_and_trailing_comma_header(write_export):
    body = "deal_id,status,amount,created_at,\r\n1,open,5,2024-01-02,\r\n"
    data = open_data(write_export({"deals.csv": body}), extracted_at=EXT)
    assert deals(data)["amount"].tolist() == [5.0]
    assert any("unnamed empty column" in n for n in data.meta["notes"])


def test_missing_required_column_names_table_column_and_fix(write_export):
    with pytest.raises(CrmDataError) as e:
        open_data(write_export({"deals.csv": "deal_id,status,amount\n1,open,5\n"}), extracted_at=EXT)
    assert "required column 'created_at' of table deals" in str(e.value)
    assert "export.yaml" in str(e.value)


def test_no_deals_table_is_one_clear_error(write_export):
    with pytest.raises(CrmDataError, match="no deals table"):
        open_data(write_export({"users.csv": "user_id\nU1\n"}), extracted_at=EXT)


def test_column_mapping_and_value_maps(write_export):
    src = write_export({
        "Opportunity.csv": "Id,StageName,Amount,CreatedDate,CloseDate\n0061,Closed Won,10,2024-01-02,2024-02-01\n"
                           "0062,Prospecting,5,2024-01-03,\n",
        "export.yaml": """
tables:
  deals:
    file: Opportunity.csv
    columns: {Id: deal_id, StageName: stage, Amount: amount, CreatedDate: created_at, CloseDate: closed_at}
    derive:
      status: {from: stage, map: {Closed Won: won, Closed Lost: lost}, default: open}
"""})
    d = deals(open_data(src, extracted_at=EXT))
    assert d["status"].tolist() == ["won", "open"]
    assert d["deal_id"].tolist() == ["0061", "0062"]


def test_unknown_mapping_key_is_a_config_error(write_export):
    src = write_export({"deals.csv": HEAD, "export.yaml": "delimeter: ';'\n"})
    with pytest.raises(CrmConfigError, match="unknown setting"):
        open_data(src, extracted_at=EXT)


def test_parquet_source_keeps_types(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pd.DataFrame({"deal_id": ["001"], "status": ["won"], "amount": [3.5],
                  "created_at": pd.to_datetime(["2024-01-01"]),
                  "closed_at": pd.to_datetime(["2024-01-09"])}).to_parquet(folder / "deals.parquet")
    d = deals(open_data(folder, extracted_at=EXT))
    assert d["deal_id"].tolist() == ["001"] and d["amount"].tolist() == [3.5]
    assert d["closed_at"].iloc[0] == pd.Timestamp("2024-01-09", tz="UTC")


def test_sqlite_and_duckdb_files_load_like_folders(tmp_path):
    frame = pd.DataFrame({"deal_id": ["001", "002"], "status": ["open", "won"], "amount": [1.0, 2.0],
                          "created_at": ["2024-01-01", "2024-01-02"], "closed_at": [None, "2024-02-01"]})
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as con:
        frame.to_sql("deals", con, index=False)
    assert deals(open_data(f"sqlite:///{db}", extracted_at=EXT))["deal_id"].tolist() == ["001", "002"]
    import duckdb

    ddb = tmp_path / "crm.duckdb"
    con = duckdb.connect(str(ddb))
    con.execute("CREATE TABLE deals AS SELECT * FROM frame")
    con.close()
    assert deals(open_data(str(ddb), extracted_at=EXT))["amount"].tolist() == [1.0, 2.0]


def test_password_in_url_is_refused_and_env_url_is_used(tmp_path, monkeypatch):
    with pytest.raises(CrmConfigError, match="environment"):
        open_data("postgresql://bob:s3cret@localhost/crm")
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as con:
        pd.DataFrame({"deal_id": ["1"], "status": ["open"], "amount": [1.0],
                      "created_at": ["2024-01-01"]}).to_sql("deals", con, index=False)
    monkeypatch.setenv("CRM_TEST_URL", f"sqlite:///{db}")
    data = open_data("env:CRM_TEST_URL", extracted_at=EXT)
    assert data.meta["source"] == "env:CRM_TEST_URL"


# ---------------------------------------------------------------- mapping features for vendor presets
def test_epoch_milliseconds_and_seconds_are_read_as_utc_and_short_numbers_are_not_dates():
    from datetime import datetime, timezone

    ms = int(datetime(2024, 1, 31, 14, 5, tzinfo=timezone.utc).timestamp()) * 1000
    s = pd.Series([str(ms), str(ms // 1000), "1234567", ""], dtype="str")
    out = parse_timestamps(s, formats=("epoch_ms", "epoch_s"), source_tz="Europe/Berlin", tz="UTC")
    assert out.iloc[0] == out.iloc[1] == pd.Timestamp("2024-01-31 14:05", tz="UTC")
    assert out.iloc[2:].isna().all()  # 7 digits: neither 9-11 (seconds) nor 12-14 (milliseconds)


def test_derive_when_splits_one_column_by_status(write_export):
    src = write_export({"deals.csv": "deal_id,stage,amount,created_at,close\n"
                                     "1,Won,1,2024-01-01,2024-02-01\n2,Talking,1,2024-01-01,2024-03-01\n",
                        "export.yaml": """
tables:
  deals:
    columns: {close: closed_at}
    derive:
      status: {from: stage, map: {Won: won}, default: open}
      expected_close_at: {from: closed_at, when: {status: open}}
      closed_at: {from: closed_at, when: {status: [won, lost]}}
"""})
    d = deals(open_data(src, extracted_at=EXT))
    assert d["closed_at"].iloc[0] == pd.Timestamp("2024-02-01", tz="UTC") and pd.isna(d["closed_at"].iloc[1])
    assert pd.isna(d["expected_close_at"].iloc[0])
    assert d["expected_close_at"].iloc[1] == pd.Timestamp("2024-03-01", tz="UTC")


def test_derive_from_an_absent_optional_column_is_skipped_with_a_note(write_export):
    src = write_export({"deals.csv": HEAD + "1,A,open,10,EUR,2024-01-02,,\n",
                        "export.yaml": "tables:\n  deals:\n    derive:\n"
                                       "      deal_type: {from: source, map: {x: y}}\n"})
    data = open_data(src, extracted_at=EXT)
    assert deals(data)["deal_type"].isna().all()
    assert any("no source column, so deal_type is not derived" in n for n in data.meta["notes"])


def test_a_list_of_file_globs_appends_every_match_and_keeps_each_files_rows(write_export):
    src = write_export({
        "deals.csv": HEAD + "1,A,open,10,EUR,2024-01-02,,\n",
        "Task.csv": "Id,kind,created\nT1,call,2024-01-02\nT2,call,not a date\n",
        "Event.csv": "Id,kind,created\nE1,meeting,2024-01-03\n",
        "export.yaml": "tables:\n  activities:\n    file: [task.*, event.*, nothing*]\n"
                       "    columns: {Id: activity_id, kind: type, created: created_at}\n"
                       "  leads:\n    file: [lead.*]\n"})
    data = open_data(src, extracted_at=EXT)
    assert data.tables["activities"]["activity_id"].tolist() == ["T1", "E1"]
    q = data.quarantine
    assert q[["source", "row", "key"]].values.tolist() == [["Task.csv + Event.csv", 3, "T2"]]
    assert "leads" not in data.tables  # no file matches: the table is absent, not an error


def test_reading_some_tables_reports_only_files_of_no_table_as_unused(write_export):
    """A large source reads its light tables here and its heavy ones in the engine: the heavy
    tables' files are not "not used"; a file that belongs to no table still is."""
    src = write_export({"deals.csv": "deal_id,status,amount,created_at\n1,open,5,2024-01-01\n",
                        "activities.csv": "activity_id,type,created_at\na1,call,2024-01-02\n",
                        "budget_2024.csv": "x\n1\n"})
    notes = read_source(src, tables=("deals",)).notes
    assert notes == ["files not used (not a known table): budget_2024.csv"]
    assert read_source(src).notes == notes


def test_ignored_columns_are_not_reported_as_unused(write_export):
    src = write_export({"deals.csv": "deal_id,status,amount,created_at,IsWon,hs_time_in_x,Mystery\n"
                                     "1,open,1,2024-01-01,false,5,?\n",
                        "export.yaml": "tables:\n  deals:\n    ignore: [ISWON, 'HS_time_in_*']\n"})
    notes = open_data(src, extracted_at=EXT).meta["notes"]
    assert "deals.csv: columns not used: Mystery" in notes


def test_scale_multiplies_a_number_column_after_parsing(write_export):
    src = write_export({"deals.csv": HEAD + "1,A,open,10,EUR,2024-01-02,,\n",
                        "activities.csv": "activity_id,type,created_at,duration_s\nA1,call,2024-01-02,4500\n",
                        "export.yaml": "tables:\n  activities:\n    scale: {duration_s: 0.001}\n"})
    assert open_data(src, extracted_at=EXT).tables["activities"]["duration_s"].tolist() == [4.5]
    bad = write_export({"deals.csv": HEAD, "export.yaml": "tables:\n  deals:\n    scale: {name: 2}\n"}, "bad")
    with pytest.raises(CrmConfigError, match="scale applies to the number columns"):
        open_data(bad, extracted_at=EXT)


def test_unpivot_turns_date_entered_columns_into_stage_rows(write_export):
    src = write_export({"deals.csv": (
        'deal_id,status,amount,created_at,"Date entered ""Won (Sales)""",hs_date_entered_talk\n'
        "1,won,1,2024-01-01,2024-01-09,2024-01-02\n2,open,1,2024-01-01,,2024-01-03\n"),
        "export.yaml": """
tables:
  stage_history:
    file: [deals.*]
    unpivot: {columns: '^hs_date_entered_(.+)$|^Date entered "(.+?) \\(.*\\)"$', name: stage, value: entered_at}
"""})
    data = open_data(src, extracted_at=EXT)
    h = data.tables["stage_history"]
    assert sorted(zip(h["deal_id"], h["stage"], h["entered_at"].dt.day)) == [
        ("1", "Won", 9), ("1", "talk", 2), ("2", "talk", 3)]
    assert data.counts.set_index("table").loc["stage_history", "input"] == 3


def test_two_source_columns_for_one_field_fill_each_others_gaps(write_export):
    src = write_export({"deals.csv": HEAD + "1,A,open,10,EUR,2024-01-02,,\n",
                        "activities.csv": "activity_id,type,created_at,endTime,completionDate\n"
                                          "A1,meeting,2024-01-02,2024-01-03,\nA2,task,2024-01-02,,2024-01-04\n",
                        "export.yaml": "tables:\n  activities:\n"
                                       "    columns: {endTime: completed_at, completionDate: completed_at}\n"})
    a = open_data(src, extracted_at=EXT).tables["activities"]
    assert a["completed_at"].dt.day.tolist() == [3, 4]


def test_export_yaml_merges_into_its_preset_entry_by_entry():
    from crmlib.load import merge_mappings

    base = {"timezone": "UTC", "tables": {"deals": {"columns": {"Id": "deal_id", "Amt": "amount"},
                                                    "values": {"stage": {"a": "A", "b": "B"}}, "file": ["x.*"]}}}
    over = {"timezone": "Europe/Paris", "tables": {"deals": {"values": {"stage": {"b": "Bee"}}, "file": ["y.*"]},
                                                  "leads": {"file": "leads.csv"}}}
    merged = merge_mappings(base, over)
    assert merged["timezone"] == "Europe/Paris"
    assert merged["tables"]["deals"] == {"columns": {"Id": "deal_id", "Amt": "amount"},
                                         "values": {"stage": {"a": "A", "b": "Bee"}}, "file": ["y.*"]}
    assert merged["tables"]["leads"] == {"file": "leads.csv"}
    assert base["tables"]["deals"]["values"]["stage"]["b"] == "B"  # the preset itself is untouched
