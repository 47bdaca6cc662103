"""The weekly summary's formatting: values, changes (rates in points), verdicts and alert order."""

import doctest

import pytest

from crmlib import summary
from crmlib.summary import (change, format_change, format_value, front_page_alerts, headline_html,
                            report_verdict)


def test_doctests_of_the_module_hold():
    assert doctest.testmod(summary).failed == 0


@pytest.mark.parametrize(("value", "unit", "currency", "text"), [
    (0.2534, "pct", None, "25.3%"),
    (6429460.17, "money", "EUR", "€6,429,460"),
    (-578753.4, "money", "EUR", "-€578,753"),
    (1234.0, "money", "CHF", "1,234 CHF"),
    (10, "count", None, "10"),
    (45.66, "days", None, "45.7 days"),
    (98.74, "score", None, "98.7"),
    (None, "pct", None, "–"),
    (float("nan"), "money", "EUR", "–"),
    ("referral", None, None, "referral"),
])
def test_format_value(value, unit, currency, text):
    assert format_value(value, unit, currency) == text


def test_rates_change_in_points_and_everything_else_relatively():
    assert change(0.52, 0.64, "pct") == pytest.approx(-0.12)
    assert format_change(0.52, 0.64, "pct") == "-12.0 pp"
    assert format_change(270397.1, 581486.4, "money") == "-53.5%"  # 270397.1 / 581486.4 - 1
    assert format_change(5, 0, "count") == ""  # no relative change from zero
    assert format_change(0.1, 0.0, "pct") == "+10.0 pp"  # but a rate can rise from zero


def test_the_key_figure_in_a_report_is_escaped_and_carries_its_value():
    h = {"key": "open<value>", "label": "<script>alert(1)</script>", "value": 0.5, "unit": "pct",
         "previous": 0.4, "year_ago": None, "verdict": "<img src=x onerror=alert(1)>"}
    out = headline_html(h)
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;" in out and 'data-value="50.0%"' in out and "previous 40.0% (+10.0 pp)" in out


def _report(name, alerts=(), status="ok", **kw):
    return {"report": name, "title": f"T{name}", "status": status, "html": f"{name}.html",
            "alerts": list(alerts), "headlines": kw.pop("headlines", []), **kw}


def test_alerts_are_ordered_by_severity_then_report_and_info_is_not_raised():
    reports = [
        _report("02", [{"key": "a", "message": "w2", "severity": "warning", "anchor": "x"}]),
        _report("03", [{"key": "b", "message": "c3", "severity": "critical", "anchor": ""},
                       {"key": "c", "message": "i3", "severity": "info", "anchor": ""}]),
        _report("04", status="failed", error="boom"),
    ]
    alerts = front_page_alerts(reports)
    assert [a.message for a in alerts] == ["c3", "The report failed: boom", "w2"]  # critical first, in report order
    assert alerts[2].href == "02.html#x" and alerts[0].href == "03.html"


def test_report_verdict_from_the_lead_headline_or_the_report_s_own_words():
    lead = {"label": "Open pipeline", "value": 120.0, "previous": 100.0, "unit": "money", "period": "week"}
    assert report_verdict(_report("02", headlines=[lead]), currency="EUR") == \
        "Open pipeline €120, +20.0% on the previous week; no alerts."
    assert report_verdict(_report("02", headlines=[lead], verdict="Pipeline grew.")) == "Pipeline grew."
    assert report_verdict(_report("05", status="skipped", reason="no leads table")) == "Skipped: no leads table"
    assert report_verdict(_report("05", status="failed")).startswith("Failed")
