"""Mapping presets for Salesforce, HubSpot and Pipedrive exports, ``--preset`` and ``inspect``."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from crmlib.cli import main
from crmlib.data import open_data
from crmlib.errors import CrmConfigError
from crmlib.inspect import inspect_folder, starter_yaml
from crmlib.load import preset_mapping, preset_names, read_mapping
from crmlib.schema import ACTIVITY_TYPES, DEAL_STATUSES, TICKET_STATUSES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exports"
VENDORS = ("hubspot", "pipedrive", "salesforce")
#: the one custom field planted in each fixture, which no preset can know
CUSTOM = {"salesforce": ("Opportunity.csv", "Region__c"), "hubspot": ("deals.csv", "partner_tier"),
          "pipedrive": ("deals-4711-1.csv", "Deal - Partner tier")}
EXT = "2025-06-01T00:00:00+00:00"


def load(folder, preset):
    return open_data(folder, mapping=preset_mapping(preset, folder), extracted_at=EXT)


def utc(*args) -> pd.Timestamp:
    return pd.Timestamp(datetime(*args, tzinfo=timezone.utc))


def test_the_three_presets_are_bundled():
    assert set(VENDORS) <= set(preset_names())
    for name in VENDORS:
        assert read_mapping(name).name == name


# ---------------------------------------------------------------- fixtures: headers
@pytest.mark.parametrize("vendor", VENDORS)
def test_inspect_suggests_the_vendors_preset_for_its_fixture(vendor):
    result = inspect_folder(FIXTURES / vendor)
    assert result.best is not None and result.best.name == vendor
    assert result.scores[0].name == vendor
    others = [s for s in result.scores if s.name != vendor]
    assert all(s.share < 0.5 and "deals" not in s.tables for s in others)


@pytest.mark.parametrize("vendor", VENDORS)
def test_each_preset_maps_every_fixture_header_but_the_planted_custom_field(vendor):
    best = inspect_folder(FIXTURES / vendor).best
    unknown = {f.file: f.unknown for f in best.files if f.unknown}
    file, column = CUSTOM[vendor]
    assert unknown == {file: (column,)}
    assert all(f.tables for f in best.files)  # every file is read by some table


def test_every_fixture_file_is_read_into_the_expected_tables():
    tables = {v: {f.file: set(f.tables) for f in inspect_folder(FIXTURES / v).best.files} for v in VENDORS}
    assert tables["salesforce"]["Task.csv"] == tables["salesforce"]["Event.csv"] == {"activities"}
    assert tables["salesforce"]["OpportunityHistory.csv"] == {"stage_history"}
    assert tables["hubspot"]["deals.csv"] == {"deals", "stage_history"}
    assert tables["hubspot"]["hubspot-crm-exports-all-contacts-2026-09-28.csv"] == {"contacts", "leads"}
    assert tables["pipedrive"]["people-4711-3.csv"] == {"contacts"}


# ---------------------------------------------------------------- fixtures: values
@pytest.mark.parametrize("vendor", VENDORS)
def test_fixture_values_come_out_canonical(vendor):
    data = open_data(FIXTURES / vendor, mapping=preset_mapping(vendor, FIXTURES / vendor))
    t = data.tables
    assert set(t["deals"]["status"]) == set(DEAL_STATUSES)
    assert set(t["activities"]["type"]) <= set(ACTIVITY_TYPES)
    assert t["deals"]["currency"].isin(["EUR", "USD"]).all()
    sources = set(t["deals"]["source"].dropna())
    assert sources and all(s == s.lower() and " " not in s for s in sources)  # no vendor spelling left
    open_deals = t["deals"]["status"] == "open"
    assert t["deals"].loc[open_deals, "closed_at"].isna().all()
    assert t["deals"].loc[~open_deals, "closed_at"].notna().all()
    if "tickets" in t:
        assert set(t["tickets"]["status"].dropna()) <= set(TICKET_STATUSES)
    if "leads" in t:
        assert set(t["leads"]["status"].dropna()) <= {"new", "working", "converted", "disqualified"}
    assert not data.quarantine["check"].isin(["unparseable_date", "unparseable_number", "not_allowed"]).any()


# ---------------------------------------------------------------- small hand-made exports
def test_salesforce_stage_names_give_status_and_close_date_splits_by_status(write_export):
    src = write_export({"Opportunity.csv": (
        "Id,StageName,Amount,CurrencyIsoCode,CloseDate,CreatedDate,LeadSource,ForecastCategoryName\n"
        "0065g00000AbCdEAAV,Closed Won,100,USD,2024-02-01,2024-01-05T10:00:00.000+0000,Web,Closed\n"
        "0065g00000AbCdFAAV,Closed Lost,50,USD,2024-02-03,2024-01-06T10:00:00.000+0000,Partner Referral,Omitted\n"
        "0065g00000AbCdGAAV,Prospecting,70,EUR,2024-06-30,2024-01-07T23:30:00.000-0200,Purchased List,Best Case\n")})
    d = load(src, "salesforce").tables["deals"]
    assert d["deal_id"].tolist() == ["0065g00000AbCdEAAV", "0065g00000AbCdFAAV", "0065g00000AbCdGAAV"]
    assert d["status"].tolist() == ["won", "lost", "open"]
    assert d["closed_at"].tolist()[:2] == [utc(2024, 2, 1), utc(2024, 2, 3)]
    assert pd.isna(d["closed_at"].iloc[2]) and d["expected_close_at"].iloc[2] == utc(2024, 6, 30)
    assert d["expected_close_at"].iloc[:2].isna().all()
    assert d["created_at"].iloc[2] == utc(2024, 1, 8, 1, 30)  # -0200 offset read
    assert d["source"].tolist() == ["organic", "referral", "purchased_list"]
    assert d["forecast_category"].tolist() == ["commit", "omitted", "best case"]


def test_salesforce_task_and_event_are_appended_into_activities(write_export):
    src = write_export({
        "Opportunity.csv": "Id,StageName,Amount,CloseDate,CreatedDate\n006A,Closed Won,1,2024-02-01,2024-01-01\n",
        "Task.csv": "Id,TaskSubtype,CreatedDate,CallType,CallDisposition,CallDurationInSeconds,WhatId\n"
                    "00TA,Call,2024-01-02T09:00:00.000+0000,Inbound,No Answer,0,006A\n"
                    "00TB,Email,2024-01-03T09:00:00.000+0000,,,,006A\n",
        "Event.csv": "Id,EventSubtype,CreatedDate,StartDateTime,EndDateTime,DurationInMinutes\n"
                     "00UA,Event,2024-01-04T09:00:00.000+0000,2024-01-05T09:00:00.000+0000,"
                     "2024-01-05T09:45:00.000+0000,45\n"})
    data = load(src, "salesforce")
    a = data.tables["activities"]
    assert a["activity_id"].tolist() == ["00TA", "00TB", "00UA"]
    assert a["type"].tolist() == ["call", "email", "meeting"]
    assert a["direction"].iloc[0] == "inbound" and a["outcome"].iloc[0] == "no_answer"
    assert a["due_at"].iloc[2] == utc(2024, 1, 5, 9) and a["completed_at"].iloc[2] == utc(2024, 1, 5, 9, 45)
    row = data.counts.set_index("table").loc["activities"]
    assert (row["source"], row["input"]) == ("Task.csv + Event.csv", 3)


def test_hubspot_api_stage_ids_epoch_millis_and_date_entered_columns(write_export):
    created = int(datetime(2024, 1, 31, 14, 5, tzinfo=timezone.utc).timestamp() * 1000)
    src = write_export({"deals.csv": (
        "hs_object_id,dealstage,amount,deal_currency_code,createdate,closedate,"
        "hs_date_entered_appointmentscheduled,hs_date_entered_closedwon\n"
        f"901,closedwon,10,EUR,{created},{created + 86_400_000},{created},{created + 86_400_000}\n"
        f"902,appointmentscheduled,20,EUR,{created},{created + 5 * 86_400_000},{created},\n")})
    data = load(src, "hubspot")
    d = data.tables["deals"]
    assert d["status"].tolist() == ["won", "open"]
    assert d["stage"].tolist() == ["Closed Won", "Appointment Scheduled"]
    assert d["created_at"].iloc[0] == utc(2024, 1, 31, 14, 5)
    assert d["closed_at"].iloc[0] == utc(2024, 2, 1, 14, 5) and pd.isna(d["closed_at"].iloc[1])
    assert d["expected_close_at"].iloc[1] == utc(2024, 2, 5, 14, 5)
    h = data.tables["stage_history"].sort_values(["deal_id", "entered_at"])
    assert list(h.itertuples(index=False, name=None)) == [
        ("901", "Appointment Scheduled", utc(2024, 1, 31, 14, 5)), ("901", "Closed Won", utc(2024, 2, 1, 14, 5)),
        ("902", "Appointment Scheduled", utc(2024, 1, 31, 14, 5))]


def test_hubspot_csv_export_labels_in_the_portals_time_zone(write_export):
    src = write_export({
        "hubspot-crm-exports-all-deals-2024-03-01.csv": (
            'Record ID,Deal Name,Deal Stage,Amount,Currency,Create Date,Close Date,'
            '"Date entered ""Closed Lost (Sales Pipeline)"""\n'
            "77,Big one,Closed Lost,\"1,500\",USD,2024-01-31 09:05,2024-02-01 12:00,2024-02-01 12:00\n"),
        "export.yaml": "timezone: America/New_York\n"})
    data = load(src, "hubspot")
    d = data.tables["deals"]
    assert (d["status"].iloc[0], d["amount"].iloc[0]) == ("lost", 1500.0)
    assert d["created_at"].iloc[0] == utc(2024, 1, 31, 14, 5)  # 09:05 EST = 14:05 UTC
    h = data.tables["stage_history"]
    assert (h["stage"].iloc[0], h["entered_at"].iloc[0]) == ("Closed Lost", utc(2024, 2, 1, 17))


def test_hubspot_engagements_types_outcomes_and_milliseconds(write_export):
    src = write_export({
        "deals.csv": "hs_object_id,dealstage,amount,createdate\n1,closedwon,1,2024-01-01\n",
        "engagements.csv": (
            "engagement.id,engagement.type,engagement.createdAt,engagement.timestamp,metadata.status,"
            "metadata.durationMilliseconds,metadata.completionDate\n"
            "1,CALL,1704103200000,1704103200000,NO_ANSWER,4500,\n"
            "2,INCOMING_EMAIL,1704103200000,1704103200000,,,\n"
            "3,TASK,1704103200000,1704189600000,COMPLETED,,1704189600000\n")})
    a = load(src, "hubspot").tables["activities"]
    assert a["type"].tolist() == ["call", "email", "task"]
    assert a["outcome"].tolist()[0] == "no_answer" and pd.isna(a["outcome"].iloc[2])  # a task's status is no outcome
    assert a["duration_s"].iloc[0] == pytest.approx(4.5)
    assert a["direction"].iloc[1] == "inbound" and pd.isna(a["direction"].iloc[0])
    assert pd.isna(a["due_at"].iloc[0]) and a["due_at"].iloc[2] == utc(2024, 1, 2, 10)  # a task's timestamp is its due date
    assert a["completed_at"].iloc[2] == utc(2024, 1, 2, 10)


def test_pipedrive_export_status_stage_types_and_dotted_local_dates(write_export):
    src = write_export({
        "deals-1-1.csv": "Deal - ID,Deal - Title,Deal - Value,Deal - Currency,Deal - Stage,Deal - Status,"
                         "Deal - Deal created,Deal - Deal closed on,Deal - Expected close date\n"
                         "1,A,\"100.5\",EUR,Proposal Made,won,31.01.2024 15:05,01.02.2024 10:00,\n"
                         "2,B,20,EUR,Qualified,open,31.01.2024 15:05,,29.02.2024\n",
        "activities-1-2.csv": "Activity - ID,Activity - Type,Activity - Add time,Deal - ID\n"
                              "9,deadline,31.01.2024 15:05,1\n10,lunch,31.01.2024 15:05,2\n",
        "export.yaml": "timezone: Europe/Berlin\n"})
    data = load(src, "pipedrive")
    d = data.tables["deals"]
    assert d["status"].tolist() == ["won", "open"] and d["stage"].tolist() == ["Proposal Made", "Qualified"]
    assert d["created_at"].iloc[0] == utc(2024, 1, 31, 14, 5)  # 15:05 CET
    assert d["closed_at"].iloc[0] == utc(2024, 2, 1, 9) and d["expected_close_at"].iloc[1] == utc(2024, 2, 28, 23)
    assert d["amount"].tolist() == [100.5, 20.0]
    assert data.tables["activities"]["type"].tolist() == ["task", "meeting"]


def test_pipedrive_deleted_deal_is_quarantined_not_counted(write_export):
    src = write_export({"deals-1-1.csv": "Deal - ID,Deal - Value,Deal - Status,Deal - Deal created,Deal - Deal closed on\n"
                                         "1,10,won,2024-01-01 10:00:00,2024-01-02 10:00:00\n"
                                         "2,10,deleted,2024-01-01 10:00:00,\n"})
    data = load(src, "pipedrive")
    assert data.tables["deals"]["deal_id"].tolist() == ["1"]
    assert data.quarantine[["key", "check"]].values.tolist() == [["2", "not_allowed"]]


# ---------------------------------------------------------------- export.yaml over a preset
def test_export_yaml_overrides_one_entry_of_a_preset_and_keeps_the_rest(write_export):
    src = write_export({
        "Opportunity.csv": "Id,StageName,Amount,CloseDate,CreatedDate\n"
                           "1,Signed,10,2024-02-01,2024-01-01\n2,Closed Won,10,2024-02-01,2024-01-01\n"
                           "3,Discovery,10,2024-02-01,2024-01-01\n",
        "export.yaml": "tables:\n  deals:\n    derive:\n      status:\n        map: {Signed: won}\n"})
    assert load(src, "salesforce").tables["deals"]["status"].tolist() == ["won", "won", "open"]
    (src / "export.yaml").write_text("preset: salesforce\n" + (src / "export.yaml").read_text())
    data = open_data(src, extracted_at=EXT)  # the folder's own `preset:` line, without --preset
    assert data.tables["deals"]["status"].tolist() == ["won", "won", "open"]


def test_export_yaml_naming_another_preset_conflicts_with_preset_option(write_export):
    src = write_export({"deals.csv": "deal_id\n", "export.yaml": "preset: hubspot\n"})
    with pytest.raises(CrmConfigError, match="says preset: hubspot"):
        preset_mapping("salesforce", src)


# ---------------------------------------------------------------- command line
def test_unknown_preset_is_one_line_listing_the_known_ones(tmp_path, capsys):
    code = main(["run", "--source", str(FIXTURES / "salesforce"), "--preset", "zoho", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "unknown preset 'zoho'" in err and "hubspot, pipedrive, salesforce" in err
    assert not any(tmp_path.iterdir())  # nothing written
    assert main(["audit", "--source", str(FIXTURES / "salesforce"), "--preset", "zoho"]) == 2
    assert "unknown preset 'zoho'" in capsys.readouterr().err


def test_preset_and_config_mapping_together_are_refused(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("mapping: salesforce\n")
    code = main(["run", "--source", str(FIXTURES / "salesforce"), "--preset", "salesforce", "--config", str(config),
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "keep one" in capsys.readouterr().err


def test_audit_with_preset_prints_the_counts(capsys):
    assert main(["audit", "--source", str(FIXTURES / "pipedrive"), "--preset", "pipedrive"]) == 0
    out = capsys.readouterr().out
    assert "deals" in out and "counts add up" in out


def test_inspect_command_prints_the_suggestion_and_the_unknown_column(capsys):
    assert main(["inspect", str(FIXTURES / "hubspot")]) == 0
    out = capsys.readouterr().out
    assert "use --preset hubspot" in out and "partner_tier" in out


def test_inspect_of_a_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err


def test_inspect_drafts_a_starter_mapping_when_no_preset_fits(write_export):
    src = write_export({"Opps_2024.csv": "Opp Number;Deal Title;Stage;Value;Created On;Mood\n1;A;Won;10;2024-01-01;x\n",
                        "notes.csv": "Colour,Taste\nred,sweet\n"})
    result = inspect_folder(src)
    assert result.best is None
    deals = result.starter["tables"]["deals"]
    assert deals["file"] == "Opps_2024.csv"
    assert deals["columns"] == {"Opp Number": "deal_id", "Deal Title": "name", "Stage": "stage",
                                "Value": "amount", "Created On": "created_at"}
    assert deals["derive"]["status"]["from"] == "stage"
    assert result.starter_unmatched == {"Opps_2024.csv": ("Mood",), "notes.csv": ("Colour", "Taste")}
    assert starter_yaml(result.starter).startswith("# export.yaml drafted by crm-reports inspect")


def test_inspect_reads_only_the_start_of_a_big_file(write_export):
    body = "Id,StageName,Amount,CloseDate,CreatedDate\n" + "006X,Closed Won,1,2024-01-01,2024-01-01\n" * 20000
    result = inspect_folder(write_export({"Opportunity.csv": body}))
    assert result.best.name == "salesforce"
    assert result.files[0].rows_seen == 5
