"""crmlib.sample_large: the large Parquet export, on a small size that shows its properties."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmlib.cli import build_parser
from crmlib.data import open_data
from crmlib.errors import CrmConfigError
from crmlib.sample_large import plan, write_large


def test_the_named_sizes_are_the_issues_row_counts():
    large, huge = plan("large"), plan("huge")
    assert (large.deals, large.activities, large.orders) == (1_000_000, 10_000_000, 2_000_000)
    assert (huge.deals, huge.activities, huge.orders) == (10_000_000, 100_000_000, 20_000_000)
    assert plan(1_000_000).deals == 100_000
    with pytest.raises(CrmConfigError):
        plan("enormous")


def test_the_command_line_takes_large_and_huge():
    args = build_parser().parse_args(["sample", "--size", "large", "--out", "x"])
    assert args.size == "large"
    assert build_parser().parse_args(["sample", "--size", "huge"]).size == "huge"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    rows = write_large(folder, size=20_000, block=500)  # 2,000 deals in four blocks
    return folder, rows


def _read(folder, table):
    return pd.read_parquet(folder / f"{table}.parquet")


def test_the_export_has_the_planned_sizes_and_consistent_ids(export):
    folder, rows = export
    assert rows["deals"] == 2_000 and rows["users"] == 50
    assert 19_000 <= rows["activities"] <= 21_000  # Poisson counts around 10 per deal
    assert 3_000 <= rows["orders"] <= 5_000
    deals, users = _read(folder, "deals"), _read(folder, "users")
    assert set(_read(folder, "stage_history")["deal_id"]) <= set(deals["deal_id"])
    assert set(_read(folder, "orders")["account_id"]) <= set(_read(folder, "accounts")["account_id"])
    acts = _read(folder, "activities")
    assert set(acts["deal_id"].dropna()) <= set(deals["deal_id"])
    assert set(acts["lead_id"].dropna()) <= set(_read(folder, "leads")["lead_id"])
    assert set(acts["owner_id"]) - set(users["user_id"]) <= {"U999999"}  # the planted unknown user
    assert isinstance(acts["created_at"].dtype, pd.DatetimeTZDtype)  # typed, as a large source needs


def test_stage_history_runs_forward_and_ends_in_the_deals_stage(export):
    folder, _ = export
    h = _read(folder, "stage_history")
    assert (h.groupby("deal_id")["entered_at"].diff().dropna() >= pd.Timedelta(0)).all()
    last = h.groupby("deal_id")["stage"].last()
    deals = _read(folder, "deals").set_index("deal_id")
    assert (last == deals.loc[last.index, "stage"]).all()
    won = deals["status"] == "won"
    assert (deals.loc[won, "stage"] == "Closed Won").all() and deals.loc[won, "closed_at"].notna().all()


def test_the_same_seed_writes_the_same_export(export, tmp_path):
    folder, _ = export
    write_large(tmp_path, size=20_000, block=500)
    for table in ("deals", "activities", "orders"):
        assert pq.read_table(tmp_path / f"{table}.parquet").equals(pq.read_table(folder / f"{table}.parquet"))


def test_the_audit_finds_exactly_the_planted_dirty_rows(export):
    folder, _ = export
    acts = _read(folder, "activities")
    data = open_data(folder)  # export.yaml says pushdown: true
    assert "pushdown" in data.meta
    q = data.quarantine.loc[data.quarantine["table"] == "activities"]
    assert (q["check"] == "bulk_duplicate").sum() == acts["activity_id"].str.startswith("X").sum()
    assert (q["check"] == "duplicate_id").sum() == acts["activity_id"].duplicated().sum()
    counts = data.counts.set_index("table")
    assert (counts["input"] == counts["kept"] + counts["quarantined"]).all()
    assert counts.drop(index=["activities", "all"])["quarantined"].sum() == 0
