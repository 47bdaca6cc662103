"""The real pack end to end: the bundled sample, and an export full of hostile text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

from crmlib import runner
from crmlib.htmlcheck import audit_html
from crmlib.sample import write_sample
from helpers import NOTEBOOKS, SAMPLE, page_links

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
MDLINK = "[click me](javascript:alert(3))"


# sample_pack: tests/conftest.py (one build per session, shared with tests/browser)


def test_the_sample_pack_runs_every_report_ok(sample_pack):
    m = sample_pack.manifest
    assert sample_pack.exit_code == 0
    names = [r["report"] for r in m["reports"]]
    assert names == sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert {r["status"] for r in m["reports"]} == {"ok"}, [r["error"] for r in m["reports"]]


def test_the_sample_pack_uses_the_as_of_the_sample_records(sample_pack):
    recorded = json.loads((SAMPLE / "truth.json").read_text())["as_of"]
    assert sample_pack.manifest["as_of"] == recorded
    assert sample_pack.pack_dir.name == recorded


def test_manifest_records_parameters_fingerprint_versions_and_timings(sample_pack):
    m = json.loads((sample_pack.pack_dir / "manifest.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{16}", m["data"]["fingerprint"])
    assert {"pandas", "papermill", "crmlib"} <= set(m["versions"])
    assert m["timings"]["total_s"] > 0
    for r in m["reports"]:
        assert r["parameters"]["as_of"] == m["as_of"] and r["duration_s"] > 0


def test_every_page_exists_and_every_index_link_resolves(sample_pack):
    pack = sample_pack.pack_dir
    for r in sample_pack.manifest["reports"]:
        for key in ("html", "code_html", "notebook"):
            assert (pack / r[key]).is_file(), r[key]
    hrefs = page_links(sample_pack.index_path)
    assert len(hrefs) >= 2 * len(sample_pack.manifest["reports"])
    for href in hrefs:
        assert (pack / unquote(urlsplit(href).path)).is_file(), href


def test_no_page_of_the_sample_pack_has_live_markup_in_a_cell(sample_pack):
    for page in sample_pack.pack_dir.glob("*.html"):
        assert audit_html(page) == [], page.name


def test_index_shows_the_numbers_the_reports_recorded(sample_pack):
    html = sample_pack.index_path.read_text(encoding="utf-8")
    pipeline = next(r for r in sample_pack.manifest["reports"] if r["report"] == "02_pipeline")
    open_deals = next(h for h in pipeline["headlines"] if h["key"] == "open_value")
    truth = json.loads((SAMPLE / "truth.json").read_text())["pipeline"]
    assert open_deals["value"] == pytest.approx(truth["open_value_eur"], abs=0.01 * truth["open_deals"])
    assert f"{truth['open_deals']} open deals" in html


# ---------------------------------------------------------------- hostile text
@pytest.fixture(scope="module")
def hostile_pack(tmp_path_factory):
    """A small sample whose names, stages and reasons are markup and script payloads."""
    src = tmp_path_factory.mktemp("hostile") / "export"
    write_sample(src, size="small", seed=11)

    def edit(table, fn):
        path = src / f"{table}.csv"
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        fn(df)
        df.to_csv(path, index=False)

    def deals(df):
        df["name"] = [SCRIPT if i % 2 else MDLINK for i in range(len(df))]
        df["lost_reason"] = df["lost_reason"].where(df["lost_reason"] == "", IMG)
        df.loc[df.index[0], "status"] = SCRIPT  # quarantined: its reason quotes the value
        df["stage"] = df["stage"].replace({"Proposal": IMG})
        df["source"] = df["source"].replace({"organic": SCRIPT})  # cohorts show acquisition sources

    edit("deals", deals)
    edit("stage_history", lambda df: df.__setitem__("stage", df["stage"].replace({"Proposal": IMG})))
    edit("stages", lambda df: df.__setitem__("stage", df["stage"].replace({"Proposal": IMG})))
    edit("users", lambda df: df.__setitem__("name", SCRIPT))
    edit("accounts", lambda df: df.__setitem__("name", MDLINK))
    edit("campaigns", lambda df: df.__setitem__("name", SCRIPT))
    return runner.run_pack(source=src, out=tmp_path_factory.mktemp("hout"), jobs=2, with_code=True)


def test_hostile_text_runs_every_report(hostile_pack):
    assert hostile_pack.exit_code == 0
    assert {r["status"] for r in hostile_pack.manifest["reports"]} == {"ok"}


@pytest.mark.parametrize("view", ["html", "code_html"])
def test_hostile_text_appears_escaped_in_every_report_and_live_nowhere(hostile_pack, view):
    pack = hostile_pack.pack_dir
    for r in hostile_pack.manifest["reports"]:
        page = pack / r[view]
        html = page.read_text(encoding="utf-8")
        assert audit_html(page) == [], page.name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, f"{page.name}: payload not shown escaped"
        assert SCRIPT not in html and IMG not in html, page.name
        assert 'href="javascript:' not in html.lower(), page.name
    index = hostile_pack.index_path.read_text(encoding="utf-8")
    assert SCRIPT not in index and IMG not in index and audit_html(hostile_pack.index_path) == []


def test_an_export_with_only_deals_runs_every_report_ok_or_skipped(tmp_path):
    import shutil

    src = tmp_path / "deals_only"
    src.mkdir()
    shutil.copy(SAMPLE / "export.yaml", src / "export.yaml")
    deals = pd.read_csv(SAMPLE / "deals.csv", dtype=str, keep_default_na=False)
    deals[deals["currency"] == "EUR"].to_csv(src / "deals.csv", index=False)  # no fx table: one currency
    result = runner.run_pack(source=src, out=tmp_path / "out", jobs=2)
    statuses = {r["report"]: r["status"] for r in result.manifest["reports"]}
    assert "failed" not in statuses.values(), [r["error"] for r in result.manifest["reports"] if r["error"]]
    assert statuses["01_data_audit"] == statuses["02_pipeline"] == "ok"
    assert result.exit_code == 0


def test_mixed_currencies_without_rates_fail_the_report_with_one_clear_line(tmp_path):
    import shutil

    src = tmp_path / "mixed"
    src.mkdir()
    for name in ("deals.csv", "export.yaml"):
        shutil.copy(SAMPLE / name, src / name)
    result = runner.run_pack(source=src, out=tmp_path / "out", only=["02"], jobs=1)
    (report,) = result.manifest["reports"]
    assert result.exit_code == 1 and report["status"] == "failed"
    assert report["error"].startswith("CurrencyError: deals mixes currencies: USD")
    assert "fx_rates" in report["error"] and "\n" not in report["error"]


def test_the_pictures_are_in_the_pack(sample_pack):
    """Every plotting report carries its figures (a non-inline backend would silently drop them)."""
    for name, at_least in (("01_data_audit", 1), ("02_pipeline", 4)):
        nb = json.loads((sample_pack.pack_dir / f"{name}.ipynb").read_text(encoding="utf-8"))
        pngs = [o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(pngs) >= at_least, name
        html = (sample_pack.pack_dir / f"{name}.html").read_text(encoding="utf-8")
        assert html.count('src="data:image/png;base64,') >= at_least, name


def test_front_page_section_links_land_on_a_heading_of_the_report(sample_pack):
    pack = sample_pack.pack_dir
    anchored = 0
    for r in sample_pack.manifest["reports"]:
        page = (pack / r["html"]).read_text(encoding="utf-8")
        for item in r["headlines"] + r["alerts"]:
            if item.get("anchor"):
                anchored += 1
                assert f'id="{item["anchor"]}"' in page, (r["report"], item["anchor"])
    assert anchored >= 3
