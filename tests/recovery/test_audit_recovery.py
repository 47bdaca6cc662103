"""The audit finds the dirty rows the sample planted (precision and recall >= 0.95 each)."""

import re

import pandas as pd


def _found(data):
    q = data.quarantine[["table", "row", "key", "check"]].assign(outcome="quarantine")
    f = data.findings[["table", "row", "key", "check", "reason"]].assign(outcome="flag")
    return pd.concat([q, f], ignore_index=True)


def _planted(truth):
    rows = pd.DataFrame(truth["dirty"]["rows"])
    rows["row"] = rows["row_index"] + 2  # CSV line: header is line 1
    return rows


def _true_positive(found_row, planted_keys):
    """A flagged row is right when it was planted, or when it is the partner a planted
    duplicate copies (both records of a duplicate pair are duplicates)."""
    if (found_row.table, found_row.row) in planted_keys["rows"]:
        return True
    if found_row.check == "duplicate_contact":
        partners = re.sub(r"^same normalised \w+ as ", "", str(found_row.reason)).split(", ")
        return any((found_row.table, k) in planted_keys["dup_keys"] for k in partners)
    return False


def test_audit_recovers_planted_dirty_rows_with_precision_and_recall_over_95_percent(sample_data, truth):
    planted, found = _planted(truth), _found(sample_data)
    keys = {"rows": set(zip(planted["table"], planted["row"])),
            "dup_keys": set(zip(planted.loc[planted["kind"] == "duplicate_contact", "table"],
                                planted.loc[planted["kind"] == "duplicate_contact", "key"]))}
    found_rows = found.drop_duplicates(["table", "row"])
    tp = found_rows.apply(_true_positive, axis=1, planted_keys=keys)
    precision = tp.mean()
    recall = len(keys["rows"] & set(zip(found_rows["table"], found_rows["row"]))) / len(keys["rows"])
    per_kind = planted.merge(found_rows[["table", "row", "check"]], on=["table", "row"], how="left") \
        .assign(found=lambda d: d["check"].notna()).groupby("kind")["found"].mean()
    print(f"\naudit vs planted: precision {precision:.3f}, recall {recall:.3f} "
          f"({len(keys['rows'])} planted, {len(found_rows)} found)\n{per_kind.to_string()}")
    assert precision >= 0.95 and recall >= 0.95


def test_each_planted_row_gets_the_check_and_outcome_of_its_kind(sample_data, truth):
    planted, found = _planted(truth), _found(sample_data)
    merged = planted.merge(found[["table", "row", "check", "outcome"]], on=["table", "row"], how="left",
                           suffixes=("_planted", "_found"))
    dup = ["duplicate_id", "bulk_duplicate"]  # an exact copy is both
    same_kind = merged["kind"].eq(merged["check"]) | (merged["kind"].isin(dup) & merged["check"].isin(dup))
    same_outcome = merged["outcome_planted"].eq(merged["outcome_found"])
    per_row = (same_kind & same_outcome).groupby([merged["table"], merged["row"]]).any()
    assert per_row.mean() >= 0.95, merged[~(same_kind & same_outcome)].head(20).to_string()


def test_counts_add_up_for_every_table_of_the_sample(sample_data):
    c = sample_data.counts
    assert (c["input"] == c["kept"] + c["quarantined"]).all()
    written = {t: v["rows_written"] for t, v in _truth_by_table(sample_data).items()}
    for table, rows in written.items():
        assert int(c.loc[c["table"] == table, "input"].iloc[0]) == rows


def _truth_by_table(data):
    import json

    from helpers import SAMPLE

    return json.loads((SAMPLE / "truth.json").read_text())["dirty"]["by_table"]


def test_special_rows_survive_as_text(sample_data, truth):
    deals = sample_data.tables["deals"].set_index("deal_id")
    special = truth["special_rows"]
    assert deals.loc[special["html_deal_id"], "name"] == "<script>alert(1)</script>"
    assert set(deals.loc[special["none_lost_reason_deal_ids"], "lost_reason"]) == {"None"}
    accounts = sample_data.tables["accounts"]["account_id"]
    assert special["html_account_id"] in set(accounts) and special["html_account_id"].startswith("0")
