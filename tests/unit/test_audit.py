"""The audit: every row kept or quarantined with a reason; flags on kept rows; scores."""

import pandas as pd
import pytest

from crmlib.data import open_data

EXT = "2025-01-01 00:00:00"
DEALS = "deal_id,name,account_id,owner_id,stage,status,amount,currency,created_at,closed_at\n"
STAGES = ("pipeline,stage,order,probability,is_closed,is_won\nSales,Lead,1,0.1,false,false\n"
          "Sales,Won,2,1,true,true\nSales,Lost,3,0,true,false\n")


def q_checks(data, table="deals"):
    q = data.quarantine
    return dict(zip(q.loc[q["table"] == table, "key"], q.loc[q["table"] == table, "check"]))


@pytest.fixture
def export(write_export):
    deals = DEALS + "\n".join([
        "D1,ok open,A1,U1,Lead,open,100,EUR,2024-01-01,",
        "D2,ok won,A1,U1,Won,won,200,EUR,2024-01-01,2024-02-01",
        "D3,before,A1,U1,Won,won,300,EUR,2024-03-01,2024-02-01",    # close before create
        "D4,future,A1,U1,Lead,open,50,EUR,2030-01-01,",             # future
        "D5,negative,A1,U1,Lead,open,-5,EUR,2024-01-01,",           # negative amount
        "D6,zero won,A1,U1,Won,won,0,EUR,2024-01-01,2024-02-01",    # zero won
        "D7,stage?,A1,U1,Limbo,open,10,EUR,2024-01-01,",            # unknown stage
        "D8,ok won,A1,U1,Won,won,200,EUR,2024-01-01,2024-02-01",    # bulk duplicate of D2
        "D1,ok open,A1,U1,Lead,open,100,EUR,2024-01-01,",           # duplicate id
        "D9,orphan,A9,U1,Lead,open,10,EUR,2024-01-01,",             # orphan account: flagged
        "D10,bad status,A1,U1,Lead,pending,10,EUR,2024-01-01,",     # not allowed
    ]) + "\n"
    contacts = ("contact_id,account_id,name,email,phone\n"
                "C1,A1,Ann,ann@example.com,+49 30 1234567\n"
                "C2,A1,Bob,bob@@example,+49 30 7654321\n"         # invalid email
                "C3,A1,Cy,cy@example.com,call me\n"               # invalid phone
                "C4,A1,Ann B,  ANN@example.com ,+49 30 1111111\n")  # duplicate of C1 by email
    leads = ("lead_id,created_at,source,email,company\n"
             "L1,2024-01-01 10:00:00,web,x@example.com,Acme\n"
             "L2,2024-01-01 10:03:00,web,x@example.com,Acme\n"   # double submission
             "L3,2024-01-02 10:00:00,web,x@example.com,Acme\n")  # a day later: a real new lead
    return write_export({"deals.csv": deals, "stages.csv": STAGES, "contacts.csv": contacts,
                         "leads.csv": leads, "accounts.csv": "account_id,name\nA1,Acme\n",
                         "users.csv": "user_id,name\nU1,Ann\n"})


def test_each_planted_problem_gets_its_check(export):
    data = open_data(export, extracted_at=EXT)
    got = q_checks(data)
    assert got["D3"] == "close_before_create"
    assert got["D4"] == "future_date"
    assert got["D5"] == "negative_amount"
    assert got["D6"] == "zero_amount_won"
    assert got["D7"] == "unknown_stage"
    assert got["D8"] == "bulk_duplicate"
    assert got["D1"] == "duplicate_id"  # the second D1; the first is kept
    assert got["D10"] == "not_allowed"
    assert sorted(data.tables["deals"]["deal_id"]) == ["D1", "D2", "D9"]


def test_counts_are_conserved_per_table(export):
    data = open_data(export, extracted_at=EXT)
    c = data.counts.set_index("table")
    for table, row in c.iterrows():
        assert row["input"] == row["kept"] + row["quarantined"], table
    assert c.loc["deals", "input"] == 11 and c.loc["deals", "quarantined"] == 8


def test_flags_keep_the_row_and_say_why(export):
    data = open_data(export, extracted_at=EXT)
    f = data.findings
    pairs = set(zip(f["key"], f["check"]))
    assert ("D9", "orphan") in pairs
    assert ("C2", "invalid_email") in pairs and ("C3", "invalid_phone") in pairs
    assert ("C4", "duplicate_contact") in pairs and ("C1", "duplicate_contact") in pairs
    assert "D9" in set(data.tables["deals"]["deal_id"])


def test_double_submission_within_minutes_is_quarantined_but_next_day_is_not(export):
    data = open_data(export, extracted_at=EXT)
    assert q_checks(data, "leads") == {"L2": "double_submission"}


def test_quality_score_formula_by_hand(export):
    data = open_data(export, extracted_at=EXT)
    c = data.counts.set_index("table")
    # deals: 11 rows, 8 quarantined, 1 flagged -> 100 * (1 - (8 + 0.5) / 11)
    assert c.loc["deals", "score"] == pytest.approx(round(100 * (1 - 8.5 / 11), 1))
    # contacts: 4 rows, C1..C4 flagged (C1 and C4 duplicates, C2 email, C3 phone) -> 100 * (1 - 2/4)
    assert c.loc["contacts", "score"] == pytest.approx(50.0)


def test_quarantine_rows_point_at_the_source_line(export):
    data = open_data(export, extracted_at=EXT)
    q = data.quarantine.set_index("key")
    assert q.loc["D3", "row"] == 4  # header is line 1, D3 is the third record
    assert q.loc["D3", "source"] == "deals.csv"
    assert '"name": "before"' in q.loc["D3", "record"]


def test_planned_times_after_the_export_are_not_future(write_export):
    src = write_export({"deals.csv": "deal_id,status,amount,created_at,expected_close_at\n"
                                     "D1,open,5,2024-01-01,2031-01-01\n"})
    data = open_data(src, extracted_at=EXT)
    assert len(data.quarantine) == 0


def test_mask_pii_leaves_no_email_or_phone_anywhere(export):
    data = open_data(export, extracted_at=EXT, mask_pii=True)
    text = " ".join(df.to_csv() for df in data.tables.values())
    text += data.quarantine.to_csv() + data.findings.to_csv()
    for secret in ["ann@example.com", "bob@@example", "+49 30 1234567", "x@example.com"]:
        assert secret not in text
    c = data.tables["contacts"].set_index("contact_id")
    assert c.loc["C1", "email"] == c.loc["C4", "email"]  # pseudonyms are stable


def test_snapshot_round_trip_is_identical(export, tmp_path):
    data = open_data(export, extracted_at=EXT)
    back = open_data(snapshot=data.save(tmp_path / "snap"))
    assert back.fingerprint == data.fingerprint
    for name, df in data.tables.items():
        pd.testing.assert_frame_equal(df, back.tables[name])
    pd.testing.assert_frame_equal(data.quarantine, back.quarantine)


def test_fingerprint_changes_with_the_input(write_export):
    a = open_data(write_export({"deals.csv": "deal_id,status,amount,created_at\n1,open,5,2024-01-01\n"}, "a"),
                  extracted_at=EXT)
    b = open_data(write_export({"deals.csv": "deal_id,status,amount,created_at\n1,open,6,2024-01-01\n"}, "b"),
                  extracted_at=EXT)
    assert a.fingerprint != b.fingerprint
