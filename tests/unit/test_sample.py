"""crmlib.sample: the seeded generator of the sample export (shape, determinism, files)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from crmlib.sample import AS_OF, generate, load_truth, write_sample
from crmlib.schema import TABLES

KEYS = {name: t.key for name, t in TABLES.items()}


@pytest.fixture(scope="module")
def small():
    return generate(size="small", seed=7)


@pytest.fixture(scope="module")
def small_again():
    return generate(size="small", seed=7)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("default")
    truth = write_sample(folder)
    return folder, truth


def test_same_seed_gives_identical_tables_and_truth(small, small_again):
    tables, truth = small
    again, truth_again = small_again
    assert truth == truth_again
    for name in tables:
        pd.testing.assert_frame_equal(tables[name], again[name])


def test_another_seed_gives_other_data():
    tables, truth = generate(size="small", seed=8)
    base, base_truth = generate(size="small", seed=7)
    assert not tables["deals"].equals(base["deals"])
    assert truth["pipeline"]["stalled_deal_ids"] != base_truth["pipeline"]["stalled_deal_ids"]


def test_every_table_has_exactly_the_canonical_columns_as_text(small):
    tables, _ = small
    assert list(tables) == list(TABLES)
    for name, df in tables.items():
        assert list(df.columns) == TABLES[name].column_names, name
        assert len(df) > 0
        for col in df.columns:
            assert pd.api.types.is_string_dtype(df[col]), (name, col)
            assert df[col].notna().all(), (name, col)  # missing is the empty string


def test_ids_are_short_zero_padded_strings_and_account_ids_keep_leading_zeros(small):
    tables, _ = small
    assert tables["accounts"]["account_id"].str.fullmatch(r"0\d{6}").all()
    assert tables["users"]["user_id"].str.fullmatch(r"U\d{3}").all()
    assert tables["deals"]["deal_id"].str.fullmatch(r"D\d{4}").all()
    assert tables["activities"]["activity_id"].str.fullmatch(r"A\d{5}").all()


def test_timestamps_and_numbers_use_the_declared_formats(small):
    tables, _ = small
    ts = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
    day = r"\d{4}-\d{2}-\d{2}"
    d = tables["deals"]
    assert d["created_at"].str.fullmatch(ts).all()
    assert d["closed_at"].str.fullmatch(f"({ts})?").all()
    assert tables["targets"]["period_start"].str.fullmatch(day).all()
    assert tables["fx_rates"]["date"].str.fullmatch(day).all()
    money = pd.concat([d["amount"], tables["orders"]["revenue"], tables["orders"]["cost"]])
    assert money.str.fullmatch(r"-?\d+(\.\d{1,2})?").all()


def test_size_accepts_a_number_of_deals_and_rejects_nonsense():
    tables, truth = generate(size=600, seed=3)
    assert truth["generator"]["deals"] == 600
    n_extra = sum(1 for r in truth["dirty"]["rows"] if r["table"] == "deals" and r["outcome"] == "quarantine")
    assert len(tables["deals"]) == 600 + n_extra
    for bad in ("huge", 10, True, 2.5):
        with pytest.raises(ValueError):
            generate(size=bad)


def test_write_sample_writes_every_table_truth_and_export_yaml(written):
    folder, truth = written
    names = {p.name for p in folder.iterdir()}
    assert names == {f"{t}.csv" for t in TABLES} | {"truth.json", "export.yaml"}
    assert load_truth(folder) == truth
    meta = yaml.safe_load((folder / "export.yaml").read_text(encoding="utf-8"))
    assert meta["name"] == "sample" and meta["timezone"] == "UTC" and meta["currency"] == "EUR"
    assert meta["date_formats"] == ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
    assert meta["decimal"] == "." and meta["thousands"] == ""
    assert meta["as_of"] == AS_OF.strftime("%Y-%m-%d") == truth["as_of"]
    assert pd.Timestamp(meta["extracted_at"]) == AS_OF + pd.Timedelta(hours=30)
    assert meta["generator"] == {"seed": 7, "size": "default"}
    raw = (folder / "deals.csv").read_bytes()
    assert b"\r\n" not in raw and raw.startswith(b"deal_id,name,")
    raw.decode("utf-8")


def test_as_of_is_a_sunday():
    assert AS_OF.day_name() == "Sunday"


def test_default_sample_is_under_five_megabytes(written):
    folder, _ = written
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total < 5_000_000


def test_written_csv_reads_back_as_the_generated_frames(written):
    folder, truth = written
    tables, _ = generate()
    for name in ("accounts", "deals", "activities"):
        back = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(back, tables[name], check_dtype=False)
    accounts = pd.read_csv(folder / "accounts.csv", dtype=str, keep_default_na=False)
    assert accounts["account_id"].str.startswith("0").all()


def test_default_sample_has_the_advertised_scale(written):
    _, truth = written
    rows = truth["rows"]
    assert 3000 <= truth["generator"]["deals"] <= 5000
    assert rows["activities"] >= 30000
    assert rows["tickets"] >= 1500
    assert truth["clv"]["customers"] >= 1500
    assert len(truth["rep_effects"]["by_owner"]) >= 30


def test_dirty_rows_point_at_rows_with_their_key(small):
    tables, truth = small
    rows = truth["dirty"]["rows"]
    assert rows
    for r in rows:
        df = tables[r["table"]]
        assert df[KEYS[r["table"]]].iat[r["row_index"]] == r["key"], r
        assert r["outcome"] == ("flag" if r["kind"] in truth["dirty"]["flag_kinds"] else "quarantine")


def test_quarantine_rows_have_new_ids_except_duplicate_ids(small):
    tables, truth = small
    for r in truth["dirty"]["rows"]:
        if r["outcome"] != "quarantine":
            continue
        ids = tables[r["table"]][KEYS[r["table"]]]
        assert (ids == r["key"]).sum() == (2 if r["kind"] == "duplicate_id" else 1), r


def test_dirty_rows_are_the_stated_rate_of_each_tables_clean_rows(small):
    tables, truth = small
    for table, info in truth["dirty"]["by_table"].items():
        assert info["rows_written"] == len(tables[table])
        assert info["clean_rows"] + info["quarantine"] == info["rows_written"]
        assert info["quarantine"] + info["flag"] == info["dirty_rows"] == round(0.02 * info["clean_rows"])


def test_markup_and_none_are_kept_as_plain_text(small):
    tables, truth = small
    deals = tables["deals"].set_index("deal_id")
    assert deals.at[truth["special_rows"]["html_deal_id"], "name"] == "<script>alert(1)</script>"
    accounts = tables["accounts"].set_index("account_id")
    assert accounts.at[truth["special_rows"]["html_account_id"], "name"] == "Smith & Sons <b>bold</b>"
    assert (tables["deals"]["lost_reason"] == "None").any()


def test_clean_emails_and_phones_are_valid_and_unique(small):
    tables, truth = small
    from crmlib.schema import EMAIL_RE, PHONE_RE

    flagged = {(r["table"], r["row_index"]) for r in truth["dirty"]["rows"]}
    for name in ("leads", "contacts"):
        df = tables[name]
        clean = df[[(name, i) not in flagged for i in range(len(df))]]
        clean = clean[~clean[KEYS[name]].duplicated()]
        email = clean["email"][clean["email"] != ""]
        phone = clean["phone"][clean["phone"] != ""]
        assert email.str.match(EMAIL_RE).all() and phone.str.match(PHONE_RE).all()
        assert not email.str.lower().duplicated().any() or name == "leads"


def test_truth_names_every_planted_fact(small):
    _, truth = small
    for key in ("sources", "stages", "pipeline", "bookings", "rep_effects", "activity_outcome",
                "lead_response", "missed_calls", "clv", "cross_sell_pair", "revenue_top20_share",
                "retention", "service", "nps", "campaigns", "goals", "dirty"):
        assert key in truth, key
    assert truth["pipeline"]["invoice_deal"]["amount"] == 200000
    assert truth["pipeline"]["cap"] == 50
    assert re.fullmatch(r"\d{4}-\d{2}", truth["retention"]["weak_month"])


def test_committed_sample_is_exactly_what_the_generator_writes(written):
    """data/sample cannot drift from crmlib.sample: regenerate and compare every file."""
    from helpers import SAMPLE

    folder, _ = written
    for path in sorted(folder.iterdir()):
        assert (SAMPLE / path.name).read_bytes() == path.read_bytes(), path.name
    assert {p.name for p in SAMPLE.iterdir()} == {p.name for p in folder.iterdir()}
