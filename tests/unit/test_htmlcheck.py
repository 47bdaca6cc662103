"""crmlib.htmlcheck: live markup inside nbconvert's cell wrappers is a finding."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from crmlib.htmlcheck import Finding, audit_html
from crmlib.runner import notebook_to_html

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"


def page(cell_html: str, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head>{head}</head><body><main>"
            f'<div class="jp-Cell" id="cell-id=abc"><div class="jp-OutputArea">{cell_html}'
            "</div></div></main></body></html>")


def test_clean_html_has_no_findings():
    html = page('<table><tr><th>Deal</th></tr><tr><td>ACME &lt;script&gt;</td></tr></table>'
                '<img src="data:image/png;base64,AAAA"><a href="https://example.com/x">x</a>',
                head='<script src="theme.js"></script><style>p{}</style>')
    assert audit_html(html) == []


def test_a_live_img_onerror_inside_a_wrapper_is_one_finding():
    findings = audit_html(page('<img src="x" onerror="alert(1)">'))
    assert findings == [Finding(findings[0].line, findings[0].column, "img",
                                "event handler attribute onerror", "abc")]
    assert "onerror" in str(findings[0]) and "abc" in str(findings[0])


def test_the_templates_own_scripts_outside_the_wrappers_are_not_findings():
    html = ('<html><head><script>var x = 1;</script></head><body>'
            '<div id="cell-id=a"><p>fine</p></div><script type="module">boot()</script></body></html>')
    assert audit_html(html) == []


@pytest.mark.parametrize("cell_html, problem", [
    ("<script>alert(1)</script>", "live script"),
    ('<script type="text/javascript">alert(1)</script>', "live script"),
    ('<script src="https://cdn.example.com/x.js"></script>', "live script"),
    ('<iframe src="https://example.com"></iframe>', "embedded content"),
    ('<object data="x.swf"></object>', "embedded content"),
    ('<embed src="x.swf">', "embedded content"),
    ('<a href="javascript:alert(1)">click</a>', "href with a javascript: URL"),
    ('<a href=" JaVa&#09;ScRiPt:alert(1)">click</a>', "href with a javascript: URL"),
    ('<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>', "xlink:href with a javascript: URL"),
    ('<div onmouseover="steal()">hover</div>', "event handler attribute onmouseover"),
    ('<svg onload="alert(1)"/>', "event handler attribute onload"),
])
def test_live_markup_inside_a_wrapper_is_found(cell_html, problem):
    findings = audit_html(page(cell_html))
    assert [f.problem for f in findings] == [problem]


def test_data_scripts_that_never_run_are_not_findings():
    html = page('<script type="application/vnd.jupyter.widget-view+json">{"a": 1}</script>'
                '<script type="application/json">{}</script>')
    assert audit_html(html) == []


def test_markup_after_a_wrapper_closes_is_outside_it():
    html = ('<div id="cell-id=a"><div><p>text</div></div>'
            '<img src=x onerror="alert(1)">')
    assert audit_html(html) == []


def test_a_path_is_read_from_disk(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(page("<script>alert(1)</script>"), encoding="utf-8")
    assert len(audit_html(path)) == 1
    assert len(audit_html(str(path))) == 1


def test_a_page_rendered_by_the_runner_from_a_safe_notebook_is_clean():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n\nText with <b>bold</b>."),
                nbformat.v4.new_code_cell("print('<script>alert(1)</script>')", outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="<script>alert(1)</script>\n")],
                    execution_count=1)]
    html = notebook_to_html(nb, title="Safe")
    assert "cell-id=" in html
    assert audit_html(html) == []


def test_the_unsafe_fixture_notebook_gives_findings(tmp_path):
    """The test of the test: HTML(...) with a <script> survives into the page as live markup."""
    import papermill
    executed = tmp_path / "unsafe_html.ipynb"
    os.environ.setdefault("MPLBACKEND", "Agg")
    papermill.execute_notebook(str(FIXTURES / "unsafe_html.ipynb"), str(executed),
                               kernel_name="python3", progress_bar=False, cwd=str(FIXTURES))
    html = notebook_to_html(nbformat.read(executed, as_version=4), title="Unsafe")
    findings = audit_html(html)
    assert [f.problem for f in findings] == ["live script"]
    assert findings[0].tag == "script"
