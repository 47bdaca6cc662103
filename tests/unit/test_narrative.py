from html.parser import HTMLParser

import markdown_it
import mistune
import numpy as np
import pandas as pd
import pytest

from crmlib import narrative as n
from crmlib.stats.intervals import wilson

SCRIPT = "<script>alert(1)</script>"
LINK = "[x](javascript:alert(1))"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE = [SCRIPT, LINK, IMG, "**bold** _it_ `code`", "# heading\n\n- item", "$x^2$ and $y$",
           "<https://evil.example>", "&lt;script&gt;", "a | b | c"]


class _Parsed(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _rendered(markdown_text):
    """(tags, text) of the Markdown rendered by two common renderers."""
    out = []
    for html_text in (mistune.html(markdown_text), markdown_it.MarkdownIt("commonmark").render(markdown_text)):
        p = _Parsed()
        p.feed(html_text)
        out.append(([tag for tag, _ in p.tags], "".join(p.text)))
    return out


def _assert_inert(markdown_text, payloads):
    assert "<script" not in markdown_text.lower()
    assert "](javascript:" not in markdown_text
    assert "<img" not in markdown_text.lower()
    for tags, text in _rendered(markdown_text):
        assert not {"script", "img", "a", "code", "h1", "ul", "em", "iframe"} & set(tags), tags
        for payload in payloads:
            assert " ".join(payload.split()) in text  # still readable, as literal text


# ----------------------------------------------------------------------------- esc
@pytest.mark.parametrize("payload", HOSTILE)
def test_esc_makes_hostile_text_inert_and_readable_in_markdown_and_html(payload):
    _assert_inert(f"Deal {n.esc(payload)} is stuck.", [payload])


def test_esc_of_missing_values_and_numbers():
    assert n.esc(None) == "n/a" and n.esc(np.nan) == "n/a" and n.esc(pd.NA) == "n/a"
    assert n.esc(42) == "42"


def test_plain_undoes_the_escaping_for_plot_titles():
    text = f"**3 deals** for {n.esc(LINK)} and {n.esc(SCRIPT)}"
    assert n.plain(text) == f"3 deals for {LINK} and {SCRIPT}"


def test_md_returns_an_ipython_markdown_object():
    from IPython.display import Markdown

    m = n.md("**hi**")
    assert isinstance(m, Markdown) and m.data == "**hi**"


# ----------------------------------------------------------------------------- formatters
def test_money():
    assert n.money(200_000, "EUR") == "€200,000"
    assert n.money(1_234_567, "USD") == "$1.2M"
    assert n.money(-5_000, "GBP") == "-£5,000"
    assert n.money(1_500, "CHF") == "1,500 CHF"
    assert n.money(9.5, "EUR") == "€9.50"
    assert n.money(250_000, "EUR", short=True) == "€250k"
    assert n.money(np.nan, "EUR") == "n/a"


def test_pct_count_days():
    assert n.pct(0.123) == "12%" and n.pct(0.004) == "0.4%" and n.pct(0.996) == "99.6%"
    assert n.pct(1) == "100%" and n.pct(0.1234, digits=1) == "12.3%" and n.pct(None) == "n/a"
    assert n.count(1234) == "1,234" and n.count(1, "deal") == "1 deal" and n.count(3, "deal") == "3 deals"
    assert n.days(1) == "1 day" and n.days(3.5) == "3.5 days" and n.days(12.4) == "12 days"


def test_change_in_words():
    assert n.change(112, 100) == "up 12% on the previous week"
    assert n.change(95, 100, period="month") == "down 5% on the previous month"
    assert n.change(100, 100) == "unchanged on the previous week"
    assert n.change(5, 0) == "up from zero on the previous week"
    assert n.change(5, None, against="the same week last year") == "no comparison with the same week last year"


def test_significance_in_plain_words():
    assert n.significance(0.0004).startswith("statistically significant, strong evidence")
    assert "(p = 0.03)" in n.significance(0.03)
    assert n.significance(0.07).startswith("not statistically significant at the 5% level")
    assert n.significance(0.42) == "not statistically significant: this could well be chance (p = 0.42)"
    assert n.significance(np.nan).startswith("not testable")


def test_interval_from_numbers_and_from_a_proportion():
    assert n.interval(0.31, 0.26, 0.37) == "31% (95% CI 26% to 37%)"
    assert n.interval(wilson(81, 263)) == "31% (95% CI 26% to 37%, 81 of 263)"
    assert n.interval(10.0, 8.0, 12.5, fmt=n.days) == "10 days (95% CI 8 days to 12 days)"


# ----------------------------------------------------------------------------- descriptions
def _pipeline_table(stage_name):
    return pd.DataFrame({"stage": [stage_name, "proposal"], "deals": [2, 1],
                         "value": [400.0, 1000.0], "weighted_value": [40.0, 400.0],
                         "missing_amount": [1, 0]})


def test_describe_pipeline_by_hand():
    text = n.describe_pipeline(_pipeline_table("qualify"), currency="EUR", previous=1000.0)
    assert n.plain(text) == (
        "The open pipeline holds 3 deals worth €1,400 (€440 weighted by win probability), up 40% on "
        "the previous week. The largest stage by value is proposal: 1 deal worth €1,000 (71% of the "
        "value). 1 deal without an amount is left out of the sums.")


def test_describe_pipeline_with_a_hostile_stage_name():
    _assert_inert(n.describe_pipeline(_pipeline_table("x"), currency="USD"), [])
    table = _pipeline_table(SCRIPT)
    table.loc[0, "value"] = 5000.0
    _assert_inert(n.describe_pipeline(table, currency="USD"), [SCRIPT])


def _stalled(name, owner, stage):
    return pd.DataFrame({"deal_id": ["D1", "D2"], "name": [name, "ok"], "owner_id": [owner, "u2"],
                         "stage": [stage, "proposal"], "amount_rep": [200_000.0, 1_000.0],
                         "days_in_stage": [10.0, 20.0], "norm_days": [4.0, 19.0], "ratio": [2.5, 20 / 19]})


def test_describe_stalled_names_the_worst_deal_with_hostile_text_escaped():
    text = n.describe_stalled(_stalled(LINK, IMG, SCRIPT), currency="USD", open_deals=8)
    _assert_inert(text, [LINK, IMG, SCRIPT])
    assert n.plain(text) == (
        f"2 open deals (25% of open deals) have been in their stage longer than the stage's norm, worth "
        f"$201,000. The worst: {LINK} (owner {IMG}, $200,000) has spent 10 days in {SCRIPT} against a "
        f"norm of 4 days (2.5× the norm).")
    assert n.describe_stalled(_stalled(LINK, IMG, SCRIPT).iloc[0:0]).startswith("No open deal")


def test_describe_task_coverage_with_a_hostile_owner():
    cov = pd.DataFrame({"deal_id": ["a", "b", "c", "d"], "owner_id": [SCRIPT, SCRIPT, "u2", "u2"],
                        "has_next_task": [False, False, True, True],
                        "has_overdue_task": [True, False, False, False]})
    text = n.describe_task_coverage(cov)
    _assert_inert(text, [SCRIPT])
    assert n.plain(text) == (f"Of 4 open deals, 2 (50%) have no next task and 1 (25%) has an overdue "
                             f"task. The owner with most deals without a next task is {SCRIPT} (2).")


def test_describe_owner_load_with_hostile_names():
    load = pd.DataFrame({"owner_id": ["u1", "u2", "u3"], "name": [IMG, LINK, "Cy"],
                         "open_deals": [63, 40, 20], "cap": [50, 50, 50]})
    text = n.describe_owner_load(load)
    _assert_inert(text, [IMG])
    assert n.plain(text) == (f"1 owner carries more than the cap of 50 open deals: {IMG} with 63. "
                             "The median owner carries 40.")
    calm = n.plain(n.describe_owner_load(load.iloc[1:]))
    assert calm.startswith(f"No owner carries more than the cap of 50 open deals; the heaviest load is {LINK}")


def test_describe_velocity_and_changes_and_win_rate():
    from crmlib.metrics.pipeline import Velocity

    v = Velocity(open_deals=4, win_rate=wilson(2, 4), avg_won_size=2000.0, avg_cycle_days=40.0,
                 value_per_day=100.0, won_deals=2, window_days=90.0,
                 start=pd.Timestamp("2026-06-30", tz="UTC"), as_of=pd.Timestamp("2026-09-28", tz="UTC"))
    text = n.plain(n.describe_velocity(v, currency="EUR"))
    assert text.startswith("The pipeline turns into about €100 of won business a day (€700 per 7 days): "
                           "4 open deals × 50% win rate × €2,000 average won deal ÷ 40 days average cycle")
    assert "only 4 closed deals" in text
    wr = n.plain(n.describe_win_rate(wilson(81, 263)))
    assert wr == "The win rate is 31% (81 of 263 closed deals)."


def test_describe_changes_from_a_pipeline_changes_result():
    from crmlib.metrics.pipeline import pipeline_changes

    tz = "UTC"
    deals = pd.DataFrame({
        "deal_id": pd.Series([LINK, "B"], dtype="str"), "status": pd.Series(["open", "won"], dtype="str"),
        "amount_rep": [100.0, 50.0],
        "created_at": pd.Series([pd.Timestamp("2026-09-01", tz=tz), pd.Timestamp("2026-09-22", tz=tz)]),
        "closed_at": pd.Series([pd.NaT, pd.Timestamp("2026-09-25", tz=tz)], dtype="datetime64[us, UTC]"),
    })
    ch = pipeline_changes(deals, start=pd.Timestamp("2026-09-21", tz=tz), end=pd.Timestamp("2026-09-28", tz=tz))
    text = n.describe_changes(ch, currency="EUR")
    assert n.plain(text) == ("The open pipeline went from 1 deal (€100) to 1 deal (€100): 1 new, 1 won "
                             "and 0 lost. Meanwhile 0 deals passed their expected close date while still open.")


def test_describe_stalled_names_the_largest_deal_when_it_is_not_the_worst():
    import pandas as pd

    from crmlib.narrative import describe_stalled

    df = pd.DataFrame({"deal_id": ["a", "b"], "name": ["Small", "<b>Big</b>"], "owner_id": ["u1", "u2"],
                       "stage": ["Proposal", "Invoicing"], "amount_rep": [10.0, 200000.0],
                       "days_in_stage": [40.0, 10.0], "norm_days": [10.0, 4.0], "ratio": [4.0, 2.5]})
    text = describe_stalled(df, currency="EUR")
    assert "The largest" in text and "200,000" in text and "<b>" not in text


def test_owner_cap_alert_names_the_owners_over_the_cap_as_plain_text():
    import pandas as pd

    from crmlib.narrative import owner_cap_alert_text

    load = pd.DataFrame({"owner_id": ["U1", "U2"], "name": ["Ann <b>", None], "open_deals": [60, 55],
                         "over_cap": [True, True]})
    assert owner_cap_alert_text(load, cap=50) == "2 owners over the cap of 50 open deals: Ann <b> (60), U2 (55)"
    assert owner_cap_alert_text(load.assign(over_cap=False), cap=50) == ""
