"""Every HTML file of a pack loads nothing from the network: each script, stylesheet, image
and embedded resource is a relative path or a data: URL (read from the files, no browser)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

#: (tag, attribute) pairs whose URL a browser loads by itself when the page opens.
LOADED = {("script", "src"), ("link", "href"), ("img", "src"), ("img", "srcset"),
          ("source", "src"), ("source", "srcset"), ("iframe", "src"), ("frame", "src"),
          ("embed", "src"), ("object", "data"), ("video", "src"), ("video", "poster"),
          ("audio", "src"), ("track", "src"), ("input", "src"), ("image", "href"),
          ("image", "xlink:href"), ("use", "href"), ("use", "xlink:href")}
_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*:|//)")
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]*)|@import\s+['"]([^'"]*)""")


def _is_remote(url: str) -> bool:
    """True for a URL with a scheme other than data: (or a //host URL): it leaves the pack."""
    match = _SCHEME.match(url)
    return bool(match) and match.group(1).lower() != "data:"


def remote_references(text: str) -> list[str]:
    """``tag attr=url`` (or ``css url``) for every URL of the page that is not relative or data:."""
    found: list[str] = []

    class _Refs(HTMLParser):
        in_style = False

        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                value = value or ""
                urls = [u.strip().split(" ")[0] for u in value.split(",")] if name == "srcset" else [value]
                if (tag, name) in LOADED:
                    found.extend(f"{tag} {name}={u}" for u in urls if _is_remote(u))
                if name == "style":
                    found.extend(f"{tag} style {u}" for u in _css_urls(value) if _is_remote(u))
            self.in_style = tag == "style"

        def handle_endtag(self, tag):
            self.in_style = False

        def handle_data(self, data):
            if self.in_style:
                found.extend(f"css {u}" for u in _css_urls(data) if _is_remote(u))

    parser = _Refs()
    parser.feed(text)
    parser.close()
    return found


def _css_urls(css: str) -> list[str]:
    return [a or b for a, b in _CSS_URL.findall(css)]


def test_the_checker_finds_remote_scripts_styles_and_images():
    page = ('<html><head><script src="https://cdn.example.org/require.js"></script>'
            '<link rel="stylesheet" href="//fonts.example.org/a.css">'
            '<style>@import "http://x.example.org/b.css"; .a { background: url(https://x.example.org/c.png) }'
            ' .b { background: url(data:image/png;base64,AAAA) }</style></head>'
            '<body><img src="data:image/png;base64,AAAA"><img src="pic.png">'
            '<img srcset="a.png 1x, https://x.example.org/d.png 2x"><a href="https://example.org">a link</a>'
            '<div style="background-image: url(\'http://x.example.org/e.png\')"></div></body></html>')
    assert remote_references(page) == [
        "script src=https://cdn.example.org/require.js",
        "link href=//fonts.example.org/a.css",
        "css http://x.example.org/b.css",
        "css https://x.example.org/c.png",
        "img srcset=https://x.example.org/d.png",
        "div style http://x.example.org/e.png",
    ]


def test_no_html_file_of_the_pack_loads_anything_remote(sample_pack):
    pages = sorted(Path(sample_pack.pack_dir).rglob("*.html"))
    assert len(pages) >= 1 + 2 * len(sample_pack.manifest["reports"])  # index, reports, code views
    for page in pages:
        assert remote_references(page.read_text(encoding="utf-8")) == [], page.name


def test_report_pages_carry_one_inline_filter_script_that_never_parses_html(sample_pack):
    for report in sample_pack.manifest["reports"]:
        text = (Path(sample_pack.pack_dir) / report["html"]).read_text(encoding="utf-8")
        scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
        filters = [s for s in scripts if "crm-filter" in s]
        assert len(filters) == 1, report["report"]
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in filters[0], sink
