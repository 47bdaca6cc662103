"""The sample pack in a real browser, offline: index.html and every report page open with
no console or script error and no remote request, every image loads, every table's filter
box filters, and screenshots at desktop and phone width are saved.

Chromium is Debian's package, installed by scripts/install_chromium.sh when missing
(tests/browser/conftest.py); set CRM_SCREENSHOTS_DIR to keep the screenshots.
"""

from __future__ import annotations

import struct

import nbformat

from crmlib import runner
from crmlib.browser import offline_page, pack_pages
from crmlib.display import show_table

WIDTHS = {"desktop": 1280, "phone": 390}
NO_MATCH = "zz-no-such-row-qx"


def _open(browser, path, width=1280):
    page, log = offline_page(browser, width=width)
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, log


def _discriminating_term(rows: list[list[str]]) -> tuple[str, int]:
    """A word of some cell that not every row has (else any word), and how many rows hold it.

    ``rows``: the text of each cell of each row."""
    lowered = [" ".join(cells).lower() for cells in rows]
    fallback = None
    for text in lowered:
        for word in text.split():
            hits = sum(word in other for other in lowered)
            if 0 < hits < len(lowered):
                return word, hits
            fallback = fallback or (word, hits)
    assert fallback is not None, "a table whose rows have no text"
    return fallback


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_every_page_opens_offline_with_no_error_and_every_image_loaded(sample_pack, browser):
    pages = pack_pages(sample_pack.pack_dir)
    assert len(pages) == 1 + len(sample_pack.manifest["reports"])
    images_seen = 0
    for path in pages:
        page, log = _open(browser, path)
        try:
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.src.slice(0, 40), i.complete, i.naturalWidth])")
            assert log.problems == [], f"{path.name}: {log.problems}"
            broken = [src for src, complete, width in images if not (complete and width > 0)]
            assert broken == [], f"{path.name}: images that did not load: {broken}"
            images_seen += len(images)
        finally:
            page.context.close()
    assert images_seen >= len(pages) - 1, "the report pages show almost no pictures"


def test_a_page_asking_for_a_remote_script_is_caught(browser, tmp_path):
    page_path = tmp_path / "remote.html"
    page_path.write_text('<!DOCTYPE html><html><head><script src="https://cdn.example.org/x.js">'
                         '</script></head><body><img src="https://example.org/a.png"></body></html>',
                         encoding="utf-8")
    page, log = _open(browser, page_path)
    page.context.close()
    assert sorted(log.blocked) == ["https://cdn.example.org/x.js", "https://example.org/a.png"]
    assert log.console_errors, "a failed remote load shows as a console error"


def test_every_table_of_every_report_has_a_filter_box_that_filters(sample_pack, browser):
    boxes_tried = 0
    for report in sample_pack.manifest["reports"]:
        page, log = _open(browser, sample_pack.pack_dir / report["html"])
        try:
            tables = page.locator(".jp-OutputArea-output table")
            filterable = [t for t in tables.all() if t.locator("tbody tr").count() >= 2]
            boxes = page.locator(".crm-filter")
            assert boxes.count() == len(filterable), report["report"]
            for i in range(boxes.count()):
                box = boxes.nth(i)
                table = box.locator("xpath=following-sibling::table[1]")
                rows = table.locator("tbody tr")
                total = rows.count()
                cells = table.evaluate(
                    "t => Array.from(t.tBodies).flatMap(b => Array.from(b.rows))"
                    ".map(r => Array.from(r.cells).map(c => c.textContent))")
                term, expected = _discriminating_term(cells)
                search = box.locator("input[type=search]")
                search.fill(term.upper())  # matching ignores case
                assert table.locator("tbody tr:visible").count() == expected, (report["report"], term)
                assert box.locator(".crm-filter-count").text_content() == f"{expected} of {total} rows"
                search.fill(NO_MATCH)
                assert table.locator("tbody tr:visible").count() == 0
                search.fill("")
                assert table.locator("tbody tr:visible").count() == total
                boxes_tried += 1
            assert log.problems == [], f"{report['report']}: {log.problems}"
        finally:
            page.context.close()
    assert boxes_tried >= len(sample_pack.manifest["reports"]), "fewer filter boxes than reports"


PAYLOAD = '<img src=x onerror="document.title=\'pwned\'">'


def test_the_filter_reads_cell_text_as_text_and_never_runs_markup(browser, tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"name": [PAYLOAD, "Acme <b>bold</b>", "plain"], "deals": [1, 2, 3]})
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show_table(frame)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": show_table(frame).to_html(), "text/plain": "table"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Hostile table"), cell]
    path = tmp_path / "hostile.html"
    path.write_text(runner.notebook_to_html(nb, title="hostile"), encoding="utf-8")

    page, log = _open(browser, path)
    try:
        box = page.locator(".crm-filter")
        assert box.count() == 1
        rows = page.locator(".jp-OutputArea-output table tbody tr")
        box.locator("input").fill(PAYLOAD)
        assert rows.count() == 3 and page.locator("tbody tr:visible").count() == 1
        assert page.locator("tbody tr:visible td").first.text_content() == PAYLOAD
        box.locator("input").fill("<b>")
        assert page.locator("tbody tr:visible").count() == 1
        assert page.locator("main img, main b").count() == 0, "cell text became markup"
        assert page.title() == "hostile" and log.problems == []
    finally:
        page.context.close()


def test_screenshots_at_desktop_and_phone_width_are_saved(sample_pack, browser, screenshot_dirs):
    pages = pack_pages(sample_pack.pack_dir)
    for label, width in WIDTHS.items():
        for path in pages:
            page, log = _open(browser, path, width=width)
            try:
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                shot = page.screenshot(full_page=True)
            finally:
                page.context.close()
            assert overflow <= 1, f"{path.name} is {overflow}px wider than a {width}px screen"
            assert _png_size(shot)[0] == width
            for folder in screenshot_dirs:
                target = folder / label / f"{path.stem}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(shot)
    for folder in screenshot_dirs:
        for label in WIDTHS:
            assert sorted(p.stem for p in (folder / label).glob("*.png")) == sorted(p.stem for p in pages)
