"""Tables for reports: HTML in which every piece of data is escaped, money and shares formatted.

``df.style.format(escape="html")`` leaves column headers, row labels and the index
name live (see TRAPS.md), so this module writes the table HTML itself and escapes
everything that came from data with :func:`html.escape`: cells, column headers, row
labels, index and column-axis names, and the caption. Long tables are cut to
``max_rows`` with a note ("showing top 50 of 1,234 rows"), so a report never ships a
5,000-row table.

In a notebook::

    show_table(stalled, money_cols=["amount_rep"], pct_cols=[], caption="Stalled deals")
"""

from __future__ import annotations

import datetime as dt
import html
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import narrative

__all__ = ["SafeTable", "show_table", "to_safe_html", "format_value"]

_STYLE = "text-align: right;"


class SafeTable:
    """A table that renders as escaped HTML in Jupyter (``_repr_html_``) and as text elsewhere."""

    def __init__(self, frame: pd.DataFrame, *, max_rows: int | None = 50, money_cols: Sequence = (),
                 pct_cols: Sequence = (), caption: str | None = None, currency: str | None = None,
                 index: bool | None = None):
        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(frame)
        self.total_rows = len(frame)
        self.max_rows = max_rows
        self.frame = frame if max_rows is None else frame.head(max_rows)
        self.money_cols = set(_as_list(money_cols))
        self.pct_cols = set(_as_list(pct_cols))
        unknown = (self.money_cols | self.pct_cols) - set(frame.columns)
        if unknown:
            raise KeyError(f"show_table: no column(s) {', '.join(map(str, sorted(map(str, unknown))))} "
                           f"in the table (columns: {', '.join(map(str, frame.columns))})")
        self.caption = caption
        self.currency = currency
        self.index = _default_index(frame) if index is None else index

    @property
    def truncated(self) -> bool:
        return len(self.frame) < self.total_rows

    @property
    def note(self) -> str:
        """``showing top N of M rows`` when the table was cut, else empty."""
        if not self.truncated:
            return ""
        return f"showing top {len(self.frame):,} of {self.total_rows:,} rows"

    def to_html(self) -> str:
        """The table as an HTML string with every value, label and name escaped."""
        f = self.frame
        out = ['<table class="dataframe crm-table" border="1">']
        caption = " — ".join(x for x in (self.caption or "", self.note) if x)
        if caption:
            out.append(f"<caption>{_e(caption)}</caption>")
        out.append("<thead>")
        col_levels = f.columns.nlevels
        index_levels = f.index.nlevels if self.index else 0
        for level in range(col_levels):
            cells = []
            if self.index:
                name = f.columns.names[level] if col_levels > 1 or f.columns.name is not None else None
                cells.extend(["<th></th>"] * (index_levels - 1))
                cells.append(f"<th>{_e(name) if name is not None else ''}</th>")
            for col in f.columns:
                label = col[level] if col_levels > 1 else col
                cells.append(f"<th>{_e(label)}</th>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        if self.index and any(n is not None for n in f.index.names):
            cells = [f"<th>{_e(n) if n is not None else ''}</th>" for n in f.index.names]
            cells.extend(["<th></th>"] * len(f.columns))
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</thead><tbody>")
        formatted = {col_pos: [self._fmt(col, v) for v in f.iloc[:, col_pos]]
                     for col_pos, col in enumerate(f.columns)}
        numeric = {col_pos: _is_numeric(f.iloc[:, col_pos]) for col_pos in range(f.shape[1])}
        for row_pos, label in enumerate(f.index):
            cells = []
            if self.index:
                labels = label if isinstance(label, tuple) else (label,)
                cells.extend(f"<th>{_e(format_value(x))}</th>" for x in labels)
            for col_pos in range(f.shape[1]):
                style = f' style="{_STYLE}"' if numeric[col_pos] else ""
                cells.append(f"<td{style}>{_e(formatted[col_pos][row_pos])}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        return "\n".join(out)

    def _fmt(self, col, value) -> str:
        if col in self.money_cols:
            return "" if narrative._missing(value) else _money_cell(value, self.currency)
        if col in self.pct_cols:
            return "" if narrative._missing(value) else narrative.pct(value, digits=1)
        return format_value(value)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        text = self.frame.to_string()
        note = f"\n({self.note})" if self.truncated else ""
        head = f"{self.caption}\n" if self.caption else ""
        return head + text + note


def show_table(df: pd.DataFrame, *, max_rows: int | None = 50, money_cols: Sequence = (),
               pct_cols: Sequence = (), caption: str | None = None, currency: str | None = None,
               index: bool | None = None) -> SafeTable:
    """A table for a report cell: escaped HTML in Jupyter, money and percent formatted, long tables cut.

    Parameters
    ----------
    df : the table (sort it first: the top ``max_rows`` rows are shown).
    max_rows : rows shown; None shows all. A cut table says "showing top N of M rows".
    money_cols : columns shown as money (thousands separators, currency symbol when
        ``currency`` is given).
    pct_cols : columns holding fractions shown as percentages (0.123 -> 12.3%).
    caption : a caption (escaped).
    index : show the row index; by default only when it is not a plain 0..n-1 range.
    """
    return SafeTable(df, max_rows=max_rows, money_cols=money_cols, pct_cols=pct_cols, caption=caption,
                     currency=currency, index=index)


def to_safe_html(df: pd.DataFrame, *, max_rows: int | None = None, money_cols: Sequence = (),
                 pct_cols: Sequence = (), caption: str | None = None, currency: str | None = None,
                 index: bool | None = None) -> str:
    """The HTML of :func:`show_table` as a string (all rows unless ``max_rows`` is given)."""
    return show_table(df, max_rows=max_rows, money_cols=money_cols, pct_cols=pct_cols, caption=caption,
                      currency=currency, index=index).to_html()


def format_value(value) -> str:
    """A cell value as text: missing -> empty, floats with separators, midnight timestamps as dates."""
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return str(value)
    if narrative._missing(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(value)
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, pd.Timedelta):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return f"{v:,.0f}"
        return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"
    return str(value)


# ----------------------------------------------------------------------------- helpers
def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _money_cell(value, currency) -> str:
    v = float(value)
    body = f"{abs(v):,.0f}"
    symbol = narrative._SYMBOLS.get(str(currency).upper()) if currency else None
    sign = "-" if v < 0 else ""
    if currency is None:
        return sign + body
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


def _as_list(cols) -> list:
    if cols is None:
        return []
    if isinstance(cols, str):
        return [cols]
    return list(cols)


def _default_index(frame: pd.DataFrame) -> bool:
    idx = frame.index
    plain_range = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    return not plain_range


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
