from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from crmlib.display import SafeTable, format_value, show_table, to_safe_html

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


class _Parsed(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse(html_text):
    p = _Parsed()
    p.feed(html_text)
    return p.tags, p.text


def hostile_frame():
    df = pd.DataFrame({SCRIPT: [IMG, "fine"], "amount": [200_000.0, 1_500.5], "share": [0.123, 0.5]},
                      index=pd.Index([SCRIPT, IMG], name=f"name {SCRIPT}"))
    df.columns.name = IMG
    return df


def test_values_headers_row_labels_and_index_name_are_escaped():
    html_text = to_safe_html(hostile_frame(), money_cols=["amount"], pct_cols=["share"],
                             caption=f"Deals {SCRIPT}")
    tags, text = parse(html_text)
    assert "script" not in tags and "img" not in tags
    assert "<script" not in html_text and "<img" not in html_text
    # every payload is still there, as text: cell, header, row labels, index name, caption
    joined = "".join(text)
    assert joined.count(SCRIPT) == 4  # column header, row label, index name, caption
    assert joined.count(IMG) == 3  # cell, row label, name of the column axis
    assert f"name {SCRIPT}" in text and f"Deals {SCRIPT}" in text


def test_show_table_renders_in_jupyter_as_escaped_html():
    t = show_table(hostile_frame())
    assert isinstance(t, SafeTable)
    html_text = t._repr_html_()
    tags, _ = parse(html_text)
    assert tags.count("table") == 1 and "script" not in tags and "img" not in tags
    assert SCRIPT in repr(t)  # plain text repr for terminals (Jupyter escapes text/plain itself)


def test_money_and_percent_columns_are_formatted():
    html_text = to_safe_html(hostile_frame(), money_cols=["amount"], pct_cols=["share"], currency="EUR")
    _, text = parse(html_text)
    assert "€200,000" in text and "€1,500" in text  # whole currency units in tables
    assert "12.3%" in text and "50.0%" in text


def test_long_tables_are_cut_with_a_note():
    df = pd.DataFrame({"deal": [f"D{i}" for i in range(120)], "amount": np.arange(120.0)})
    t = show_table(df, max_rows=50, caption="Stalled deals")
    _, text = parse(t.to_html())
    assert t.truncated and len(t.frame) == 50
    assert "Stalled deals — showing top 50 of 120 rows" in text
    assert "D49" in text and "D50" not in text
    assert not show_table(df, max_rows=None).truncated


def test_a_plain_range_index_is_not_shown_but_a_named_one_is():
    df = pd.DataFrame({"a": [1, 2]})
    assert "<th>0</th>" not in to_safe_html(df)
    assert "<th>x</th>" in to_safe_html(df.set_index(pd.Index(["x", "y"], name="k")))


def test_multiindex_rows_and_columns_are_escaped_too():
    idx = pd.MultiIndex.from_tuples([(SCRIPT, IMG)], names=[SCRIPT, IMG])
    cols = pd.MultiIndex.from_tuples([(SCRIPT, "v")], names=[IMG, SCRIPT])
    tags, text = parse(to_safe_html(pd.DataFrame([[1]], index=idx, columns=cols)))
    assert "script" not in tags and "img" not in tags
    assert "".join(text).count(SCRIPT) == 4  # row label, index name, column header and axis name


def test_unknown_format_column_is_an_error():
    with pytest.raises(KeyError, match="amount_rep"):
        show_table(pd.DataFrame({"a": [1]}), money_cols=["amount_rep"])


def test_format_value():
    assert format_value(np.nan) == "" and format_value(None) == "" and format_value(pd.NaT) == ""
    assert format_value(1234567) == "1,234,567" and format_value(2.5) == "2.50"
    assert format_value(0.1234) == "0.123" and format_value(True) == "yes"
    assert format_value(pd.Timestamp("2026-09-28", tz="UTC")) == "2026-09-28"
    assert format_value(pd.Timestamp("2026-09-28 14:05", tz="UTC")) == "2026-09-28 14:05"
