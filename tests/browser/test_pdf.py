"""The pack as one PDF: ``crm-reports run --pdf`` and :func:`crmlib.browser.write_pack_pdf`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

from pypdf import PdfReader

from crmlib.browser import PDF_NAME, write_pack_pdf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"


def first_heading(path: Path) -> str:
    """The text of the first <h1> of an HTML page, whitespace collapsed (without the "¶"
    of nbconvert's anchor link, which the page hides)."""

    class _H1(HTMLParser):
        def __init__(self):
            super().__init__()
            self.depth, self.parts, self.done = 0, [], False

        def handle_starttag(self, tag, attrs):
            if tag == "h1" and not self.done:
                self.depth += 1

        def handle_endtag(self, tag):
            if tag == "h1" and self.depth:
                self.depth, self.done = 0, True

        def handle_data(self, data):
            if self.depth:
                self.parts.append(data)

    parser = _H1()
    parser.feed(path.read_text(encoding="utf-8"))
    return _norm("".join(parser.parts).replace("¶", ""))


def _norm(text: str) -> str:
    """NFKC (PDF text has ligatures such as "ﬁ"), whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _page_text(reader: PdfReader, number: int) -> str:
    return _norm(reader.pages[number].extract_text() or "")


def _copy_pages(pack: Path, target: Path) -> Path:
    """The HTML pages and manifest of a pack in a new folder (the shared pack stays as it is)."""
    target.mkdir()
    for path in [pack / "manifest.json", *pack.glob("*.html")]:
        shutil.copy2(path, target / path.name)
    return target


def test_the_pack_pdf_has_the_index_then_every_report_in_index_order(sample_pack, browser, tmp_path):
    pack = _copy_pages(sample_pack.pack_dir, tmp_path / "pack")
    reports = sample_pack.manifest["reports"]
    pdf = write_pack_pdf(pack, browser=browser)

    assert pdf.path == pack / PDF_NAME and pdf.documents == 1 + len(reports)
    reader = PdfReader(pdf.path)
    assert len(reader.pages) == pdf.pages >= 1 + len(reports)
    index_title = first_heading(pack / "index.html")
    assert index_title and index_title in _page_text(reader, 0)
    # one bookmark per page of the pack, each at the first page of its document, in index order
    starts = [reader.get_destination_page_number(item) for item in reader.outline]
    assert len(starts) == 1 + len(reports) and starts[0] == 0
    assert starts == sorted(set(starts)), "documents overlap or are out of order"
    for report, start in zip(reports, starts[1:]):
        heading = first_heading(pack / report["html"])
        assert heading and heading in _page_text(reader, start), report["report"]


#: crm-reports in its own process (one process runs one Playwright; the session's browser is
#: one), on one fixture notebook with a faked data snapshot: seconds, not minutes.
_CLI = """
import sys
from crmlib import cli, runner
runner.build_snapshot = lambda source, snapshot_dir, **kw: {"fingerprint": "fp", "meta": {}}
sys.exit(cli.main(sys.argv[1:]))
"""


def _run_fixture_pack(out: Path, *extra: str, env: dict) -> tuple[subprocess.CompletedProcess, Path]:
    args = ["run", "--notebooks", str(FIXTURES), "--only", "01", "--as-of", "2024-06-30",
            "--source", str(FIXTURES), "--out", str(out), "--timeout", "60", *extra]
    done = subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, stdin=subprocess.DEVNULL)
    return done, out / "2024-06-30"


def test_run_pdf_writes_pack_pdf_beside_the_index(chromium_path, tmp_path):
    done, pack = _run_fixture_pack(tmp_path / "out", "--pdf", env={"CRM_CHROMIUM": str(chromium_path)})
    assert done.returncode == 0, done.stderr
    reader = PdfReader(pack / PDF_NAME)
    assert len(reader.pages) >= 2  # the index and the one report
    assert first_heading(pack / "index.html") in _page_text(reader, 0)
    assert [item.title for item in reader.outline][1:] == ["Headline fixture"]
    assert f"PDF: {pack / PDF_NAME}" in done.stderr


def test_run_pdf_without_a_browser_keeps_the_pack_and_exits_1_with_one_line(tmp_path):
    done, pack = _run_fixture_pack(tmp_path / "out", "--pdf",
                                   env={"CRM_CHROMIUM": str(tmp_path / "no-such-chromium")})
    assert done.returncode == 1
    assert (pack / "index.html").is_file() and (pack / "01_headline.html").is_file()
    assert not (pack / PDF_NAME).exists() and not list(pack.glob(f".{PDF_NAME}.*"))
    problem = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(problem) == 1 and "no PDF written" in problem[0] and "CRM_CHROMIUM" in problem[0]
    assert "Traceback" not in done.stderr
