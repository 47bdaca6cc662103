"""Paths shared by the tests (importable from every test folder)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
NOTEBOOKS = ROOT / "notebooks"


def page_links(path: Path) -> list[str]:
    """The local hrefs of the <a> elements of an HTML page (no #fragments, web or mail links)."""
    from html.parser import HTMLParser

    hrefs: list[str] = []

    class _Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            href = dict(attrs).get("href")
            if tag == "a" and href and not href.startswith(("#", "http", "mailto:")):
                hrefs.append(href)

    _Links().feed(Path(path).read_text(encoding="utf-8"))
    return hrefs
