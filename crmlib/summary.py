"""The weekly summary (report 99): the pack's front page, built from what the reports recorded.

Nothing here computes a metric. Every number on the front page is a value a report
recorded while it ran (:mod:`crmlib.results`, carried by the run's manifest); this
module only formats those values, derives the change from the recorded value and its
recorded comparison, orders the alerts and writes a one-line verdict per report from
its record. The same formatter (:func:`format_headline`) prints the key figures inside
each report, so the front page and the report show the very same text.

Changes: rates (unit ``pct``) change in percentage points, everything else relatively:
a win rate going from 50% to 55% is "+5.0 pp", not "+10%".
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["format_value", "format_change", "change", "headline_html", "report_verdict",
           "front_page_alerts", "SEVERITY_ORDER", "RAISED"]

#: Alerts of these severities are "raised": shown at the top of the front page.
RAISED = ("critical", "warning")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def format_value(value: Any, unit: str | None = None, currency: str | None = None) -> str:
    """A recorded headline value as text: pct values are fractions (0.25 -> "25.0%").

    >>> format_value(0.2534, "pct"), format_value(6429460.17, "money", "EUR")
    ('25.3%', '€6,429,460')
    >>> format_value(None, "count")
    '–'
    """
    if isinstance(value, str):
        return value
    number = _number(value)
    if number is None:
        return "–"
    if unit == "pct":
        return f"{number:.1%}"
    if unit == "money":
        sign = CURRENCY_SIGNS.get((currency or "").upper())
        amount = f"{abs(number):,.0f}"
        text = f"{sign}{amount}" if sign else f"{amount} {currency or ''}".strip()
        return f"-{text}" if number < 0 and round(abs(number)) else text
    if unit == "count":
        return f"{number:,.0f}"
    if unit in ("days", "hours"):
        return f"{number:,.1f} {unit}"
    if unit in ("score", "ratio"):
        return f"{number:,.1f}" if unit == "score" else f"{number:,.2f}"
    if number.is_integer():
        return f"{number:,.0f}"
    return f"{number:,.2f}" if abs(number) < 1000 else f"{number:,.0f}"


def change(value: Any, before: Any, unit: str | None) -> float | None:
    """The change from ``before`` to ``value``: a difference for rates (pct), else relative.

    None when either is missing, or (relative changes) when ``before`` is 0.

    >>> change(0.55, 0.50, "pct")  # percentage points, as a fraction
    0.050000000000000044
    >>> change(120, 100, "money")
    0.2
    """
    now, then = _number(value), _number(before)
    if now is None or then is None:
        return None
    if unit == "pct":
        return now - then
    if then == 0:
        return None
    return (now - then) / abs(then)


def format_change(value: Any, before: Any, unit: str | None) -> str:
    """``change`` as text: "+5.0 pp" for rates, "+20.0%" otherwise, "" when undefined.

    >>> format_change(0.55, 0.50, "pct"), format_change(80, 100, "count"), format_change(1, None, "count")
    ('+5.0 pp', '-20.0%', '')
    >>> format_change(0.14435, 0.14436, "pct")  # no "-0.0 pp"
    '0.0 pp'
    """
    delta = change(value, before, unit)
    if delta is None:
        return ""
    points = delta * 100
    if round(points, 1) == 0:
        return "0.0 pp" if unit == "pct" else "0.0%"
    return f"{points:+.1f} pp" if unit == "pct" else f"{points:+.1f}%"


def headline_html(headline: Mapping, *, currency: str | None = None, previous_label: str = "previous",
                  year_ago_label: str = "a year ago") -> str:
    """One key figure as a small escaped HTML block, as a report shows it where it records it.

    The block carries ``data-headline`` (the key) and ``data-value`` (the formatted value),
    so a test can read the figure from the report page and from the front page and check
    that they agree.
    """
    unit = headline.get("unit")
    value = format_value(headline.get("value"), unit, currency)
    parts = []
    for key, label in (("previous", previous_label), ("year_ago", year_ago_label)):
        if headline.get(key) is not None:
            delta = format_change(headline.get("value"), headline.get(key), unit)
            text = f"{label} {format_value(headline.get(key), unit, currency)}"
            parts.append(f"{text} ({delta})" if delta else text)
    e = html.escape
    detail = f' <span class="crm-headline-detail">· {e("; ".join(parts))}</span>' if parts else ""
    verdict = headline.get("verdict") or ""
    verdict_html = f'<br><small>{e(verdict)}</small>' if verdict else ""
    return (f'<div class="crm-headline" data-headline="{e(str(headline.get("key", "")))}" '
            f'data-value="{e(value)}" style="border-left:4px solid #0969da;padding:2px 8px;margin:6px 0">'
            f'{e(str(headline.get("label") or headline.get("key", "")))}: <strong>{e(value)}</strong>'
            f'{detail}{verdict_html}</div>')


# ----------------------------------------------------------------------------------
# the front page's view of the manifest
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RaisedAlert:
    """An alert of one report, as the top of the front page lists it."""

    report: str
    title: str
    key: str
    message: str
    severity: str
    href: str | None


def front_page_alerts(reports: Sequence[Mapping], *, raised: Sequence[str] = RAISED) -> list[RaisedAlert]:
    """Every raised alert of every report, most severe first, then in report order.

    A failed report is raised too (critical): its numbers are missing from the pack.
    ``href`` points into the report's page at the alert's section when both exist.
    """
    out: list[tuple[int, int, RaisedAlert]] = []
    for order, r in enumerate(reports):
        page = r.get("html")
        if r.get("status") == "failed":
            out.append((0, order, RaisedAlert(r.get("report", ""), r.get("title", ""), "report_failed",
                                              f"The report failed: {r.get('error') or 'see its page'}",
                                              "critical", page)))
        for a in r.get("alerts") or []:
            severity = a.get("severity", "warning")
            if severity not in raised:
                continue
            href = page and (f"{page}#{a['anchor']}" if a.get("anchor") else page)
            out.append((SEVERITY_ORDER.get(severity, 9), order,
                        RaisedAlert(r.get("report", ""), r.get("title", ""), a.get("key", ""),
                                    a.get("message", ""), severity, href)))
    return [alert for _, _, alert in sorted(out, key=lambda t: (t[0], t[1]))]


def report_verdict(report: Mapping, *, currency: str | None = None, period: str = "period") -> str:
    """One line on a report, from its record: its verdict when it wrote one, else its lead
    headline with the change on the previous period and how many alerts it raised.

    >>> report_verdict({"status": "ok", "headlines": [{"label": "Win rate", "value": 0.55,
    ...     "previous": 0.5, "unit": "pct"}], "alerts": [{"severity": "warning"}]}, period="week")
    'Win rate 55.0%, +5.0 pp on the previous week; 1 alert.'
    """
    status = report.get("status")
    if status == "failed":
        return "Failed: no numbers this run."
    if status == "skipped":
        return f"Skipped: {report.get('reason') or 'not enough data'}"
    if report.get("verdict"):
        return str(report["verdict"])
    raised = sum(1 for a in report.get("alerts") or [] if a.get("severity", "warning") in RAISED)
    tail = f"{raised} alert{'s' if raised != 1 else ''}." if raised else "no alerts."
    heads = report.get("headlines") or []
    if not heads:
        return f"No headline figure; {tail}"
    h = heads[0]
    text = f"{h.get('label') or h.get('key')} {format_value(h.get('value'), h.get('unit'), currency)}"
    delta = format_change(h.get("value"), h.get("previous"), h.get("unit"))
    if delta:
        text += f", {delta} on the previous {h.get('period') or period}"
    return f"{text}; {tail}"
