"""The whole pack on each CRM's fixture export, read with its preset: one run per vendor.

``crm-reports run --source tests/fixtures/exports/<vendor> --preset <vendor>`` must exit 0
with every report ok, or skipped only because the export has no table the vendor's
export could give it:

* 08 Goals everywhere: no vendor export carries quotas as targets per period (Salesforce's
  ForecastingQuota has no period end, HubSpot goals and Pipedrive goals are API-only);
* 12 Campaigns for HubSpot and Pipedrive: their marketing campaigns are not part of the
  CRM's record exports (Salesforce's Campaign object is);
* 11 Customer service for Pipedrive: Pipedrive has no tickets.

Every row of the vendor files is accounted for: each table's input count equals the rows
of its files (counted here with the csv module, not by the loader), and input = kept +
quarantined.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from crmlib.cli import main
from crmlib.data import open_data
from crmlib.load import preset_mapping

FIXTURES = Path(__file__).parent / "fixtures" / "exports"

SKIPPED = {
    "salesforce": {"08_goals": "targets"},
    "hubspot": {"08_goals": "targets", "12_campaigns": "campaigns"},
    "pipedrive": {"08_goals": "targets", "11_customer_service": "tickets", "12_campaigns": "campaigns"},
}


def data_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def rows_of(folder: Path, pattern: str) -> int:
    return sum(len(data_rows(p)) for p in sorted(folder.glob(pattern)))


def filled_cells(path: Path, header: str) -> int:
    """Non-empty cells in the columns whose header matches the regex ``header``."""
    rows = data_rows(path)
    cols = [c for c in rows[0] if re.search(header, c)]
    return sum(1 for r in rows for c in cols if r[c].strip())


def expected_inputs(vendor: str) -> dict[str, int]:
    """The rows each table must read, from the vendor's files."""
    f = FIXTURES / vendor
    if vendor == "salesforce":
        return {"deals": rows_of(f, "Opportunity.csv"), "stage_history": rows_of(f, "OpportunityHistory.csv"),
                "stages": rows_of(f, "OpportunityStage.csv"), "leads": rows_of(f, "Lead.csv"),
                "activities": rows_of(f, "Task.csv") + rows_of(f, "Event.csv"), "tickets": rows_of(f, "Case.csv"),
                "accounts": rows_of(f, "Account.csv"), "contacts": rows_of(f, "Contact.csv"),
                "users": rows_of(f, "User.csv"), "campaigns": rows_of(f, "Campaign.csv"),
                "fx_rates": rows_of(f, "fx_rates.csv")}
    if vendor == "hubspot":
        return {"deals": rows_of(f, "deals.csv"), "stage_history": filled_cells(f / "deals.csv", "^hs_date_entered_"),
                "leads": rows_of(f, "*contacts*.csv"), "contacts": rows_of(f, "*contacts*.csv"),
                "accounts": rows_of(f, "*companies*.csv"), "tickets": rows_of(f, "*tickets*.csv"),
                "activities": rows_of(f, "engagements.csv"), "fx_rates": rows_of(f, "fx_rates.csv")}
    return {"deals": rows_of(f, "deals-*.csv"), "accounts": rows_of(f, "organizations-*.csv"),
            "contacts": rows_of(f, "people-*.csv"), "activities": rows_of(f, "activities-*.csv"),
            "fx_rates": rows_of(f, "fx_rates.csv")}


@pytest.fixture(scope="module", params=sorted(SKIPPED))
def vendor_pack(request, tmp_path_factory):
    """(vendor, exit code, manifest) of the whole pack on the vendor's fixture export."""
    vendor = request.param
    out = tmp_path_factory.mktemp(f"pack-{vendor}")
    code = main(["run", "--source", str(FIXTURES / vendor), "--preset", vendor, "--out", str(out), "--jobs", "2"])
    manifests = list(out.glob("*/manifest.json"))
    assert len(manifests) == 1, f"{vendor}: no pack written (exit {code})"
    return vendor, code, json.loads(manifests[0].read_text(encoding="utf-8"))


def test_whole_pack_runs_on_the_vendor_export_with_only_the_vendors_missing_tables_skipped(vendor_pack):
    vendor, code, manifest = vendor_pack
    statuses = {r["report"]: r["status"] for r in manifest["reports"]}
    failed = {r["report"]: r["error"] for r in manifest["reports"] if r["status"] == "failed"}
    assert failed == {}, f"{vendor}: {failed}"
    assert code == 0
    assert len(statuses) == 13
    assert {name for name, s in statuses.items() if s == "skipped"} == set(SKIPPED[vendor])
    for r in manifest["reports"]:
        if r["status"] == "skipped":
            assert SKIPPED[vendor][r["report"]] in r["reason"], r["reason"]
    assert manifest["as_of"] == "2026-09-27"  # recorded in the fixture's export.yaml
    assert manifest["data"]["meta"]["mapping"] == vendor


def test_every_row_of_the_vendor_files_is_kept_or_quarantined(vendor_pack):
    vendor, _, manifest = vendor_pack
    source = FIXTURES / vendor
    data = open_data(source, mapping=preset_mapping(vendor, source))
    assert data.fingerprint == manifest["data"]["fingerprint"]  # the data the pack ran on
    counts = data.counts.set_index("table")
    tables = counts.drop(index="all")
    assert (tables["input"] == tables["kept"] + tables["quarantined"]).all()
    assert tables["input"].to_dict() == expected_inputs(vendor)
    assert counts.loc["all", "input"] == sum(expected_inputs(vendor).values())
    assert {name: len(df) for name, df in data.tables.items()} == tables["kept"].to_dict()
