"""Sales cycle (report 04): time in each stage, which also gives the stalled-deal norms of 02.

A *stage visit* starts when a deal enters a stage (a ``stage_history`` row) and ends
when it enters the next one. Only history rows before ``as_of`` are used, so a visit
still running at ``as_of`` is *open* (right-censored): its duration is the time spent so
far, and it does not count towards the norms, which are quantiles of completed visits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CrmDataError
from ..periods import ensure_instant
from .catalogue import metric

__all__ = ["stage_visits", "stage_time_norms"]

_DAY_S = 86_400.0


@metric(report="04", unit="days")
def stage_visits(history: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per stage visit before as_of: the stage a deal entered, when it left it, and the days spent there.

    Parameters
    ----------
    history : the canonical ``stage_history`` table (deal_id, stage, entered_at).
    as_of : the instant "now"; history rows entered at or after it are ignored.

    Returns
    -------
    DataFrame with deal_id, visit (1, 2, ... per deal), stage, entered_at, left_at (the
    next entry's entered_at, NaT while the visit is still open at as_of), next_stage,
    duration_days (to left_at, or to as_of for an open visit) and completed (bool).
    Consecutive rows of one deal in the same stage are one visit (the first entry
    counts). Rows are ordered by deal_id and entered_at.
    """
    as_of = ensure_instant(as_of)
    _require(history, ("deal_id", "stage", "entered_at"), "stage_history")
    h = history.loc[history["entered_at"] < as_of, ["deal_id", "stage", "entered_at"]]
    h = h.sort_values(["deal_id", "entered_at"], kind="stable").reset_index(drop=True)
    same_deal_before = h["deal_id"].eq(h["deal_id"].shift())
    repeat = same_deal_before & h["stage"].eq(h["stage"].shift())
    h = h.loc[~repeat].reset_index(drop=True)

    next_same_deal = h["deal_id"].eq(h["deal_id"].shift(-1))
    left_at = h["entered_at"].shift(-1).where(next_same_deal)
    next_stage = h["stage"].shift(-1).where(next_same_deal)
    completed = left_at.notna()
    until = left_at.where(completed, as_of)
    out = pd.DataFrame({
        "deal_id": h["deal_id"],
        "visit": h.groupby("deal_id", sort=False).cumcount() + 1,
        "stage": h["stage"],
        "entered_at": h["entered_at"],
        "left_at": left_at.astype(h["entered_at"].dtype),
        "next_stage": next_stage.astype("str"),
        "duration_days": (until - h["entered_at"]).dt.total_seconds() / _DAY_S,
        "completed": completed.astype(bool),
    })
    return out


@metric(report="04", unit="days")
def stage_time_norms(history: pd.DataFrame, *, as_of: pd.Timestamp, quantile: float = 0.9,
                     min_completed: int = 1) -> pd.DataFrame:
    """Per stage, the time a completed visit normally takes: median and 90th percentile of completed visits in days.

    Parameters
    ----------
    history : the canonical ``stage_history`` table.
    as_of : the instant "now" (see :func:`stage_visits`).
    quantile : which quantile is the stalled-deal norm (``norm_days``); 0.9 by default.
    min_completed : stages with fewer completed visits get no norm (NaN), because a
        quantile of two or three visits says little.

    Returns
    -------
    DataFrame indexed by nothing, one row per stage seen in history: stage, visits,
    completed, open, median_days, p90_days, norm_days (the ``quantile`` of completed
    visits), ordered by stage name. Stages without completed visits have NaN times.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie between 0 and 1, not {quantile}")
    v = stage_visits(history, as_of=as_of)
    done = v.loc[v["completed"]]
    by_stage = v.groupby("stage", sort=True)
    out = pd.DataFrame({
        "visits": by_stage.size(),
        "completed": by_stage["completed"].sum().astype("int64"),
    })
    out["open"] = out["visits"] - out["completed"]
    grouped = done.groupby("stage")["duration_days"]
    out["median_days"] = grouped.median()
    out["p90_days"] = grouped.quantile(0.9)
    out["norm_days"] = grouped.quantile(quantile)
    few = out["completed"] < int(min_completed)
    out.loc[few, ["norm_days"]] = np.nan
    out.index.name = "stage"
    return out.reset_index()


def _require(frame: pd.DataFrame, cols, table: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise CrmDataError(f"{table} lacks column(s) {', '.join(missing)}; load it with crmlib.load "
                           "so it has the canonical columns", table=table, column=missing[0])
