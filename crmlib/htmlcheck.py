"""Find live markup inside the cells of a report's HTML (an XSS check for the pack).

nbconvert wraps every cell in an element whose id starts with ``cell-id=``. Whatever a
cell shows comes from code and data, so inside those wrappers nothing may be able to
run: a live ``<script>``, an ``<iframe>``/``<object>``/``<embed>``, an ``on*`` event
handler attribute or a ``javascript:`` URL is a finding. The page template's own
scripts and styles sit outside the wrappers and are not findings.

    >>> audit_html('<div id="cell-id=a"><img src=x onerror="alert(1)"></div>')
    [Finding(line=1, column=20, tag='img', problem='event handler attribute onerror', cell='a')]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

WRAPPER_PREFIX = "cell-id="
#: Elements that embed another document or plug-in content.
EMBEDDING = frozenset({"iframe", "frame", "frameset", "object", "embed", "applet"})
#: Attributes that hold a URL a browser may follow or load.
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "data",
                            "poster", "background", "lowsrc", "dynsrc", "srcdoc"})
#: SVG animation elements can set an attribute (such as href) to any value.
ANIMATION = frozenset({"animate", "set"})
ANIMATION_VALUES = frozenset({"to", "from", "values", "by"})
#: <script type=...> values browsers execute (absent or empty also executes).
SCRIPT_TYPES = frozenset({"", "text/javascript", "application/javascript", "module",
                          "text/ecmascript", "application/ecmascript", "text/jscript",
                          "text/livescript", "application/x-javascript", "text/x-javascript",
                          "application/x-ecmascript", "text/x-ecmascript"})
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                  "param", "source", "track", "wbr"})
DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "data:text/html")


@dataclass(frozen=True)
class Finding:
    """One piece of live markup inside a cell wrapper."""

    line: int
    column: int
    tag: str
    problem: str
    cell: str  # the wrapper's cell id

    def __str__(self) -> str:
        return f"line {self.line}: <{self.tag}> {self.problem} (cell {self.cell})"


def _dangerous_scheme(value: str) -> str | None:
    """The dangerous scheme a URL starts with (javascript:, ...), or None."""
    # browsers ignore ASCII whitespace and control characters inside the scheme
    compact = "".join(ch for ch in value if ord(ch) > 32 and ord(ch) != 127).lower()
    return next((s for s in DANGEROUS_SCHEMES if compact.startswith(s)), None)


class _Auditor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []  # (tag, wrapper cell id or None)
        self.findings: list[Finding] = []

    # which wrapper are we in (innermost), if any
    def _cell(self) -> str | None:
        for _, cell in reversed(self.stack):
            if cell is not None:
                return cell
        return None

    def _find(self, tag: str, problem: str, cell: str) -> None:
        line, column = self.getpos()
        self.findings.append(Finding(line, column, tag, problem, cell))

    def _check(self, tag: str, attrs: list[tuple[str, str | None]], cell: str) -> None:
        attributes = {name.lower(): (value or "") for name, value in attrs}
        if tag == "script":
            kind = attributes.get("type", "").strip().lower().split(";")[0]
            if kind in SCRIPT_TYPES or "src" in attributes:
                self._find(tag, "live script", cell)
        elif tag in EMBEDDING:
            self._find(tag, "embedded content", cell)
        for name, value in attributes.items():
            if name.startswith("on"):
                self._find(tag, f"event handler attribute {name}", cell)
            elif name in URL_ATTRIBUTES and _dangerous_scheme(value):
                self._find(tag, f"{name} with a {_dangerous_scheme(value)} URL", cell)
            elif tag in ANIMATION and name in ANIMATION_VALUES and "javascript:" in value.lower():
                self._find(tag, f"animation {name} with a javascript: URL", cell)

    def handle_starttag(self, tag: str, attrs) -> None:
        tag = tag.lower()
        ident = dict(attrs).get("id") or ""
        own = ident[len(WRAPPER_PREFIX):] if ident.startswith(WRAPPER_PREFIX) else None
        cell = self._cell()
        if cell is not None:
            self._check(tag, attrs, cell)
        if tag not in VOID:
            self.stack.append((tag, own))

    def handle_startendtag(self, tag: str, attrs) -> None:
        tag = tag.lower()
        cell = self._cell()
        if cell is not None:
            self._check(tag, attrs, cell)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return
        # a stray end tag: ignore it, as browsers do


def audit_html(path_or_text: str | os.PathLike) -> list[Finding]:
    """Live markup inside nbconvert's cell wrappers of an HTML page (empty list: clean).

    ``path_or_text``: a path to an HTML file, or the HTML itself (any string with a ``<``).
    """
    if isinstance(path_or_text, os.PathLike) or (
            isinstance(path_or_text, str) and "<" not in path_or_text):
        text = Path(path_or_text).read_text(encoding="utf-8")
    else:
        text = str(path_or_text)
    auditor = _Auditor()
    auditor.feed(text)
    auditor.close()
    return auditor.findings


__all__ = ["Finding", "audit_html"]
