"""What a large source's snapshot holds of a heavy table, as the metrics see it.

For a large source (:mod:`crmlib.pushdown.source`) the snapshot does not hold the whole
``activities`` table: it holds the rows of a recent window (``rows_from`` on) and the
aggregates the engine computed over all rows up to ``as_of``. The window's table carries
a :class:`PushdownInfo` in ``DataFrame.attrs`` so that a metric given that table can

* use an aggregate instead of rows (:func:`aggregate`), and
* refuse, with one clear line, a question about rows before the window
  (:func:`require_rows`) rather than answer it from a part of the data.

A table read whole (every sample, every small or medium export) carries nothing, and every
metric computes from its rows exactly as before. This module imports pandas only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from ..errors import CrmDataError

ATTR = "crm_pushdown"  # the DataFrame.attrs key

__all__ = ["ATTR", "PushdownInfo", "pushdown_info", "require_rows", "aggregate", "first_logged"]


@dataclass(frozen=True, eq=False)
class PushdownInfo:
    """How a heavy table was loaded: its rows from ``rows_from`` on, aggregates up to ``as_of``.

    ``aggregates`` maps an aggregate's name (see :data:`crmlib.pushdown.AGGREGATES`) to its
    frame, computed by the engine over every clean row before ``as_of``. ``rows_from`` is
    None when every row is present.
    """

    table: str
    rows_from: pd.Timestamp | None
    as_of: pd.Timestamp | None
    aggregates: Mapping[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    window_days: float | None = None

    def __deepcopy__(self, memo) -> "PushdownInfo":
        # pandas deep-copies attrs on every operation; the info is read-only and shared
        return self

    def describe(self) -> str:
        """One sentence: which rows of the table are loaded."""
        if self.rows_from is None:
            return f"every row of {self.table} is loaded"
        return (f"{self.table} is loaded from {self.rows_from:%Y-%m-%d} on (a large source: the "
                f"rest is kept as aggregates up to {self.as_of:%Y-%m-%d %H:%M})")


def pushdown_info(frame) -> PushdownInfo | None:
    """The :class:`PushdownInfo` of a table of a large source's snapshot, or None."""
    attrs = getattr(frame, "attrs", None) or {}
    info = attrs.get(ATTR)
    return info if isinstance(info, PushdownInfo) else None


def require_rows(frame, since, *, what: str) -> None:
    """Raise CrmDataError when rows before ``since`` are needed but not loaded.

    ``since`` None means "every row": then any window is too short.
    """
    info = pushdown_info(frame)
    if info is None or info.rows_from is None:
        return
    if since is None or pd.isna(since) or pd.Timestamp(since) < info.rows_from:
        start = "the first row" if since is None or pd.isna(since) else f"{pd.Timestamp(since):%Y-%m-%d}"
        raise CrmDataError(
            f"{what} needs {info.table} from {start} on, but this large source's snapshot holds "
            f"{info.table} rows from {info.rows_from:%Y-%m-%d} on only; raise `pushdown_window_days` "
            f"in export.yaml (now {info.window_days:g}) or shorten the report's window",
            table=info.table)


def aggregate(frame, name: str, *, as_of=None) -> pd.DataFrame | None:
    """The engine's aggregate ``name`` for this table, when it is windowed and has one computed at ``as_of``.

    None when the table is whole (compute from rows), when the snapshot has no such
    aggregate, or when it was computed at another instant (then the rows must answer, and
    :func:`require_rows` says whether they can).
    """
    info = pushdown_info(frame)
    if info is None or info.rows_from is None or name not in info.aggregates:
        return None
    if as_of is not None and info.as_of is not None and pd.Timestamp(as_of) != info.as_of:
        return None
    return info.aggregates[name]


def first_logged(frame, fallback, *, as_of, types, direction: str | None = None,
                 with_lead: bool = False):
    """The first ``created_at`` before ``as_of`` of activities of ``types`` (and ``direction``, and with a lead when ``with_lead``).

    ``fallback`` is that minimum over the rows at hand; for a windowed table it is
    replaced by the minimum over every row (the engine's ``activity_firsts``), so "since
    when does the CRM log calls" does not move with the window.
    """
    firsts = aggregate(frame, "activity_firsts", as_of=as_of)
    if firsts is None:
        return fallback
    f = firsts.loc[firsts["type"].isin([str(t).lower() for t in types])]
    if direction is not None:
        f = f.loc[f["direction"] == direction]
    if with_lead:
        f = f.loc[f["with_lead"].astype(bool)]
    found = f["first_at"].min() if len(f) else pd.NaT
    if pd.isna(found):
        return fallback
    return found if pd.isna(fallback) else min(found, fallback)
