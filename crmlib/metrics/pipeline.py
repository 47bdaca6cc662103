"""Pipeline (report 02): what is open now, how it changed, where it is stuck, who carries it.

Conventions shared by every function here:

* ``as_of`` is the instant "now" (a timezone-aware ``Timestamp``, see
  :func:`crmlib.periods.as_of_instant`); an event counts only if it happened strictly
  before it. Deals created at or after ``as_of`` do not exist yet, and a deal closed at
  or after ``as_of`` is still open (:func:`deal_status_at`).
* Money is read from ``amount_col``, by default ``"amount_rep"``: the deal amount in the
  reporting currency added by :func:`crmlib.money.to_reporting`. Passing
  ``amount_col="amount"`` is allowed only when every deal has the same currency.
  Sums skip missing amounts and say how many were missing (``missing_amount``);
  they are never filled with zeros.
* Shares are fractions between 0 and 1 (``*_share``, ``win_rate``); durations are in
  days (``*_days``, float).
* Group keys that are missing (a deal without owner) form their own group; nothing is
  dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import CrmDataError, MissingTableError
from ..lookup import isin
from ..money import require_single_currency
from ..periods import ensure_instant
from ..pushdown.info import require_rows
from ..pushdown.scan import is_scan
from ..stats.intervals import Proportion, wilson, wilson_frame
from .catalogue import metric
from .cycle import _engine, _last_visits, _require, stage_time_norms, stage_visits

__all__ = [
    "PipelineChanges", "Velocity", "deal_status_at", "stage_at", "open_pipeline",
    "pipeline_changes", "win_rate", "deal_velocity", "stalled_deals", "task_coverage",
    "task_coverage_by_owner", "owner_load",
]

AMOUNT_COL = "amount_rep"
TASK_TYPES = ("task", "meeting")
_DAY_S = 86_400.0
_CLOSED = ("won", "lost")
_STATUS_COLUMNS = ("deal_id", "status", "created_at", "closed_at")


# ----------------------------------------------------------------------------- status and stage
@metric(report="02", unit="label")
def deal_status_at(deals: pd.DataFrame, as_of: pd.Timestamp, *, columns: Sequence[str] | None = None
                   ) -> pd.DataFrame:
    """A deal's status at as_of: won or lost if it closed before as_of, otherwise open.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now".
    columns : keep only these columns of ``deals`` (those it has) besides deal_id, status,
        created_at and closed_at: a caller that needs a few columns of a large table does
        not copy the others. None: every column.

    Returns
    -------
    A copy of the deals created before ``as_of`` with a ``status_at`` column
    (``"open"``, ``"won"`` or ``"lost"``). A deal the export shows as won or lost
    but which closed at or after ``as_of`` is open at ``as_of``. A deal whose export
    status is open stays open even if it has a closed_at.

    Raises
    ------
    CrmDataError : won or lost deals without a closed_at (their status at as_of is
        unknown); the audit should quarantine them.
    """
    as_of = ensure_instant(as_of)
    _require(deals, _STATUS_COLUMNS, "deals")
    _check_close_dates(deals)
    if columns is not None:
        deals = deals[list(dict.fromkeys([*_STATUS_COLUMNS, *(c for c in columns if c in deals.columns)]))]
    exists = deals["created_at"] < as_of
    # every deal exists at as_of (the usual case): a lazy copy (copy-on-write), not a copy of every column
    out = deals.copy(deep=False) if exists.all() else deals.loc[exists].copy()
    closed = out["status"].isin(_CLOSED) & (out["closed_at"] < as_of)
    out["status_at"] = pd.Series(np.where(closed, out["status"], "open"), index=out.index, dtype="str")
    return out


@metric(report="02", unit="days")
def stage_at(deals: pd.DataFrame, history: pd.DataFrame | None, as_of: pd.Timestamp, *,
             open_only: bool = False) -> pd.DataFrame:
    """The stage each deal was in at as_of, when it entered it, and the days it has spent there since.

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    history : the canonical ``stage_history`` table, a scan of it (:meth:`crmlib.data.CrmData.scan`),
        or None.
    as_of : the instant "now".
    open_only : only the deals open at as_of (what the pipeline and the stalled-deal check
        look at; a scan then asks DuckDB for the stages of those deals alone).

    Returns
    -------
    :func:`deal_status_at` plus ``stage_at``, ``stage_entered_at``, ``days_in_stage``
    (float days from entry to ``as_of``) and ``stage_source``: ``"history"`` when the
    stage comes from the last history entry before ``as_of``, ``"deal"`` when the deal
    has no such entry and the export's ``stage`` and ``created_at`` stand in (an
    approximation: the export stage may be later than the stage at ``as_of``).
    """
    as_of = ensure_instant(as_of)
    out = deal_status_at(deals, as_of)
    if open_only:
        out = out.loc[out["status_at"] == "open"]
    if "stage" not in out.columns:
        raise CrmDataError("deals lacks the stage column", table="deals", column="stage")
    if history is not None and len(history):
        ids = out["deal_id"] if open_only and is_scan(history) else None
        last = _last_visits(history, as_of=as_of, deal_ids=ids).set_index("deal_id")
        h_stage = out["deal_id"].map(last["stage"])
        h_entered = out["deal_id"].map(last["entered_at"])
    else:
        h_stage = pd.Series(pd.NA, index=out.index, dtype="str")
        h_entered = pd.Series(pd.NaT, index=out.index, dtype=out["created_at"].dtype)
    known = h_stage.notna()
    out["stage_at"] = h_stage.where(known, out["stage"]).astype("str")
    out["stage_entered_at"] = h_entered.where(known, out["created_at"]).astype(out["created_at"].dtype)
    out["days_in_stage"] = (as_of - out["stage_entered_at"]).dt.total_seconds() / _DAY_S
    out["stage_source"] = pd.Series(np.where(known, "history", "deal"), index=out.index, dtype="str")
    return out


# ----------------------------------------------------------------------------- open pipeline
@metric(report="02", unit="money")
def open_pipeline(deals: pd.DataFrame, stages: pd.DataFrame | None, as_of: pd.Timestamp, *,
                  history: pd.DataFrame | None = None, by: str | Sequence[str] = ("stage",),
                  amount_col: str = AMOUNT_COL, probability_col: str | None = None) -> pd.DataFrame:
    """Deals open at as_of per group: how many, their total value, their value weighted by win probability, and their average size.

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col`` (see module notes).
    stages : the canonical ``stages`` table (order and probability per stage), or None
        (then weighted values are NaN unless ``probability_col`` is given, and rows are
        ordered by value).
    as_of : the instant "now".
    history : ``stage_history``; when given, a deal's stage is its stage at ``as_of``
        (:func:`stage_at`), otherwise the export's current stage.
    by : grouping columns of deals, e.g. ``"stage"``, ``"owner_id"``, ``"pipeline"`` or
        ``("pipeline", "stage")``.
    amount_col : the money column (reporting currency).
    probability_col : a per-deal win probability column (e.g. from a win-probability
        model) used instead of the stage probability.

    Returns
    -------
    One row per group: the ``by`` columns, ``stage_order`` and ``probability`` (when
    grouping by stage), ``deals``, ``value``, ``weighted_value``, ``avg_deal_size``
    (value / deals with an amount), ``value_share`` (of the whole open pipeline),
    ``missing_amount`` and ``missing_probability`` (deals left out of the sums).
    Ordered by stage order when grouping by stage, else by value (largest first).
    """
    as_of = ensure_instant(as_of)
    by = (by,) if isinstance(by, str) else tuple(by)
    if not by:
        raise ValueError("by needs at least one column")
    require_single_currency(deals, amount_col)
    if history is not None:
        d = stage_at(deals, history, as_of, open_only=True)
        d["stage"] = d["stage_at"]
    else:
        d = deal_status_at(deals, as_of)
    d = d.loc[d["status_at"] == "open"].copy()
    missing = [c for c in by if c not in d.columns]
    if missing:
        raise CrmDataError(f"deals has no column(s) {', '.join(missing)} to group the pipeline by",
                           table="deals", column=missing[0])

    info = _stage_info(d, stages)
    prob = d[probability_col].astype("float64") if probability_col else info["probability"]
    amount = d[amount_col].astype("float64")
    work = d[list(by)].copy()
    work["_amount"] = amount
    work["_weighted"] = amount * prob
    work["_no_amount"] = amount.isna()
    work["_no_prob"] = amount.notna() & prob.isna()
    work["_order"] = info["order"]
    work["_prob"] = info["probability"]
    g = work.groupby(list(by), dropna=False, sort=False)
    out = pd.DataFrame({"deals": g.size()})
    if "stage" in by:
        out["stage_order"] = g["_order"].min()
        if set(by) <= {"stage", "pipeline"} and probability_col is None:
            out["probability"] = g["_prob"].mean()
    out["value"] = g["_amount"].sum(min_count=1)
    out["weighted_value"] = g["_weighted"].sum(min_count=1)
    out["missing_amount"] = g["_no_amount"].sum().astype("int64")
    out["missing_probability"] = g["_no_prob"].sum().astype("int64")
    known = out["deals"] - out["missing_amount"]
    out["avg_deal_size"] = out["value"] / known.where(known > 0)
    total = amount.sum()
    out["value_share"] = out["value"] / total if total > 0 else np.nan
    out = out.reset_index()
    if "stage" in by and out["stage_order"].notna().any():
        keys = ["stage_order"] + [c for c in by if c != "stage"]
        out = out.sort_values(keys, na_position="last", kind="stable")
    else:
        out = out.sort_values("value", ascending=False, na_position="last", kind="stable")
    cols = list(by) + [c for c in ("stage_order", "probability") if c in out.columns] + [
        "deals", "value", "weighted_value", "avg_deal_size", "value_share", "missing_amount",
        "missing_probability"]
    return out[cols].reset_index(drop=True)


# ----------------------------------------------------------------------------- changes (waterfall)
@dataclass(frozen=True, eq=False)
class PipelineChanges:
    """The open pipeline at ``start`` and at ``end`` and what moved it in between.

    ``components`` (index start, new, won, lost, end; columns deals, value,
    missing_amount) satisfies start + new - won - lost = end for deals and value.
    ``advanced`` and ``slipped`` are side counts (deals and value), not part of that sum;
    ``advanced`` is None when no ``stages`` table was given. ``deals`` has one row per
    deal involved with a boolean column per component.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    components: pd.DataFrame
    advanced: dict | None
    slipped: dict
    deals: pd.DataFrame = field(repr=False)

    ORDER = ("start", "new", "advanced", "won", "lost", "slipped", "end")
    KIND = {"start": "level", "new": "in", "advanced": "memo", "won": "out", "lost": "out",
            "slipped": "memo", "end": "level"}

    def value(self, component: str, what: str = "deals"):
        """One number: ``value("won")`` deals won, ``value("won", "value")`` their value."""
        if component == "advanced":
            return None if self.advanced is None else self.advanced[what]
        if component == "slipped":
            return self.slipped[what]
        return self.components.loc[component, what].item()

    @property
    def balanced(self) -> bool:
        """Whether start + new - won - lost = end holds for counts and values."""
        c = self.components
        for what in ("deals", "value"):
            lhs = c.loc["start", what] + c.loc["new", what] - c.loc["won", what] - c.loc["lost", what]
            if not np.isclose(lhs, c.loc["end", what]):
                return False
        return True

    def to_frame(self) -> pd.DataFrame:
        """The waterfall rows in reading order: component, kind (level/in/out/memo), deals, value, missing_amount."""
        rows = []
        for name in self.ORDER:
            rows.append({"component": name, "kind": self.KIND[name],
                         "deals": self.value(name, "deals"), "value": self.value(name, "value"),
                         "missing_amount": self.value(name, "missing_amount")})
        frame = pd.DataFrame(rows)
        frame["deals"] = frame["deals"].astype("Int64")
        frame["value"] = frame["value"].astype("float64")
        frame["missing_amount"] = frame["missing_amount"].astype("Int64")
        return frame

    def summary(self) -> str:
        c = self.components
        return (f"open {c.loc['start', 'deals']} -> +{c.loc['new', 'deals']} new, "
                f"-{c.loc['won', 'deals']} won, -{c.loc['lost', 'deals']} lost -> open "
                f"{c.loc['end', 'deals']}")


@metric(report="02", unit="count")
def pipeline_changes(deals: pd.DataFrame, history: pd.DataFrame | None = None, *,
                     start: pd.Timestamp, end: pd.Timestamp, stages: pd.DataFrame | None = None,
                     amount_col: str = AMOUNT_COL) -> PipelineChanges:
    """How the open pipeline moved from start to end: deals open at start, plus deals created, minus deals won and lost, equals deals open at end.

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col``.
    history : ``stage_history`` or a scan of it (needed for ``advanced``), or None.
    start, end : instants bounding the window ``[start, end)``, usually
        ``period.start`` and ``as_of``.
    stages : the ``stages`` table; gives the stage order that decides what "advanced"
        means (without it ``advanced`` is None).
    amount_col : the money column (reporting currency); values use today's amount of
        each deal (amount changes over time are not tracked by the export).

    Returns
    -------
    :class:`PipelineChanges`. Definitions: open at t = created before t and not won or
    lost before t; new = created in the window; won / lost = closed as such in the
    window (a close recorded before the creation counts at the creation). Side counts:
    advanced = deals that entered a later, not closed stage during the window;
    slipped = deals whose expected close day ended inside the window while they were
    still open (based on the export's current expected_close_at).
    """
    start, end = ensure_instant(start, name="start"), ensure_instant(end, name="end")
    if not start < end:
        raise ValueError(f"start ({start}) must be before end ({end})")
    _require(deals, ("deal_id", "status", "created_at", "closed_at"), "deals")
    require_single_currency(deals, amount_col)
    _check_close_dates(deals)
    d = deals.loc[deals["created_at"] < end].copy()
    closed_status = d["status"].isin(_CLOSED)
    close = d["closed_at"].where(closed_status)
    close = close.where(~(close < d["created_at"]), d["created_at"])  # effective close time

    def open_at(t):
        return (d["created_at"] < t) & ~(closed_status & (close < t))

    in_window = (close >= start) & (close < end)
    flags = pd.DataFrame({
        "start": open_at(start),
        "new": (d["created_at"] >= start) & (d["created_at"] < end),
        "won": (d["status"] == "won") & in_window,
        "lost": (d["status"] == "lost") & in_window,
        "end": open_at(end),
    }, index=d.index)
    flags["slipped"] = _slipped(d, close, closed_status, start, end)
    adv = _advanced(d, history, stages, start, end)
    flags["advanced"] = adv if adv is not None else False

    amount = d[amount_col].astype("float64")
    comp = pd.DataFrame({
        "deals": [int(flags[k].sum()) for k in ("start", "new", "won", "lost", "end")],
        "value": [float(amount[flags[k]].sum()) for k in ("start", "new", "won", "lost", "end")],
        "missing_amount": [int(amount[flags[k]].isna().sum()) for k in ("start", "new", "won", "lost", "end")],
    }, index=pd.Index(["start", "new", "won", "lost", "end"], name="component"))

    def side(mask):
        return {"deals": int(mask.sum()), "value": float(amount[mask].sum()),
                "missing_amount": int(amount[mask].isna().sum())}

    keep = [c for c in ("deal_id", "name", "owner_id", "stage") if c in d.columns]
    per_deal = pd.concat([d[keep], amount.rename(amount_col), flags[list(PipelineChanges.ORDER)]], axis=1)
    per_deal = per_deal.loc[flags.any(axis=1)].reset_index(drop=True)
    if adv is None:
        per_deal = per_deal.drop(columns="advanced")
    return PipelineChanges(start, end, comp, None if adv is None else side(flags["advanced"]),
                           side(flags["slipped"]), per_deal)


def _slipped(d, close, closed_status, start, end) -> pd.Series:
    if "expected_close_at" not in d.columns:
        return pd.Series(False, index=d.index)
    exp = d["expected_close_at"]
    deadline = exp.dt.normalize() + pd.DateOffset(days=1)  # the expected close day is over
    still_open = (d["created_at"] < deadline) & ~(closed_status & (close < deadline))
    return ((deadline > start) & (deadline <= end) & still_open).fillna(False).astype(bool)


def _advanced(d, history, stages, start, end) -> pd.Series | None:
    if history is None or stages is None:
        return None
    if is_scan(history):  # only the deals that entered a stage in the window can have advanced
        h = _engine(history).entries_around(history, start=start, end=end)
        h = h.loc[isin(h["deal_id"], d["deal_id"])]
    else:
        h = history.loc[isin(history["deal_id"], d["deal_id"]) & (history["entered_at"] < end)]
    h = h.sort_values(["deal_id", "entered_at"], kind="stable").copy()
    if "pipeline" in d.columns:
        mine = d.loc[isin(d["deal_id"], h["deal_id"]), ["deal_id", "pipeline"]]  # the deals with rows only
        h["pipeline"] = h["deal_id"].map(mine.drop_duplicates("deal_id").set_index("deal_id")["pipeline"])
    info = _stage_info(h, stages)
    h["_order"] = info["order"]
    h["_closed"] = info["is_closed"].fillna(False).astype(bool)
    same = h["deal_id"].eq(h["deal_id"].shift())
    prev_order = h["_order"].shift().where(same)
    moved_up = same & (h["_order"] > prev_order) & ~h["_closed"] & (h["entered_at"] >= start)
    ids = set(h.loc[moved_up, "deal_id"])
    return isin(d["deal_id"], ids)


# ----------------------------------------------------------------------------- win rate, velocity
@metric(report="02", unit="pct")
def win_rate(deals: pd.DataFrame, *, as_of: pd.Timestamp, start: pd.Timestamp | None = None,
             by: str | Sequence[str] | None = None, alpha: float = 0.05) -> Proportion | pd.DataFrame:
    """Won deals divided by won plus lost deals, among deals closed before as_of (and at or after start when given).

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now".
    start : the window's first instant (None: every deal closed before ``as_of``).
    by : grouping column(s), e.g. ``"owner_id"`` or ``"source"``.
    alpha : 1 - confidence level of the Wilson interval.

    Returns
    -------
    Without ``by``: a :class:`~crmlib.stats.intervals.Proportion` (estimate, low, high,
    successes = won, n = closed). With ``by``: a frame with the ``by`` columns, won,
    lost, closed, win_rate, win_rate_low, win_rate_high, most closed deals first.
    """
    as_of = ensure_instant(as_of)
    d = deal_status_at(deals, as_of)
    closed = d.loc[d["status_at"].isin(_CLOSED)]
    if start is not None:
        closed = closed.loc[closed["closed_at"] >= ensure_instant(start, name="start")]
    won = closed["status_at"] == "won"
    if by is None:
        return wilson(int(won.sum()), len(closed), alpha=alpha)
    by = [by] if isinstance(by, str) else list(by)
    g = closed.assign(_won=won, _lost=~won).groupby(by, dropna=False, sort=True)
    out = pd.DataFrame({"won": g["_won"].sum(), "lost": g["_lost"].sum()}).astype("int64")
    out["closed"] = out["won"] + out["lost"]
    out = wilson_frame(out.reset_index(), "won", "closed", alpha=alpha, name="win_rate")
    return out.sort_values("closed", ascending=False, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Velocity:
    """Deal velocity and its four parts (money per day)."""

    open_deals: int
    win_rate: Proportion
    avg_won_size: float
    avg_cycle_days: float
    value_per_day: float
    won_deals: int
    window_days: float
    start: pd.Timestamp
    as_of: pd.Timestamp

    def per(self, days: float) -> float:
        """Velocity over ``days`` days, e.g. ``per(7)`` for a week."""
        return self.value_per_day * days

    def to_frame(self) -> pd.DataFrame:
        """One row per part: open_deals, win_rate, avg_won_size, avg_cycle_days, value_per_day."""
        parts = [("open_deals", self.open_deals, "count"),
                 ("win_rate", self.win_rate.estimate, "pct"),
                 ("avg_won_size", self.avg_won_size, "money"),
                 ("avg_cycle_days", self.avg_cycle_days, "days"),
                 ("value_per_day", self.value_per_day, "money")]
        return pd.DataFrame(parts, columns=["part", "value", "unit"])

    def summary(self) -> str:
        return (f"{self.open_deals} open x {self.win_rate.estimate:.1%} win rate x "
                f"{self.avg_won_size:,.0f} avg won / {self.avg_cycle_days:.1f} days = "
                f"{self.value_per_day:,.0f} per day")


@metric(report="02", unit="money")
def deal_velocity(deals: pd.DataFrame, *, as_of: pd.Timestamp, window_days: float = 90,
                  amount_col: str = AMOUNT_COL, alpha: float = 0.05) -> Velocity:
    """Deal velocity: open deals times win rate times average won deal size, divided by the average sales cycle in days.

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col``.
    as_of : the instant "now"; open deals are counted at it.
    window_days : win rate, average won size and cycle length come from deals closed
        in the ``window_days`` days before ``as_of``.
    amount_col : the money column (reporting currency).

    Returns
    -------
    :class:`Velocity`: value_per_day is the expected won value per day; NaN when the
    window has no won deal (nothing to average).
    """
    as_of = ensure_instant(as_of)
    if window_days <= 0:
        raise ValueError(f"window_days must be positive, not {window_days}")
    require_single_currency(deals, amount_col)
    start = as_of - pd.Timedelta(days=window_days)
    d = deal_status_at(deals, as_of)
    open_n = int((d["status_at"] == "open").sum())
    rate = win_rate(deals, as_of=as_of, start=start, alpha=alpha)
    won = d.loc[(d["status_at"] == "won") & (d["closed_at"] >= start)]
    avg_size = float(won[amount_col].mean()) if won[amount_col].notna().any() else np.nan
    cycle = (won["closed_at"] - won["created_at"]).dt.total_seconds() / _DAY_S
    avg_cycle = float(cycle.mean()) if len(cycle) else np.nan
    if not avg_cycle > 0:
        per_day = np.nan
    else:
        per_day = open_n * rate.estimate * avg_size / avg_cycle
    return Velocity(open_n, rate, avg_size, avg_cycle, float(per_day), len(won), float(window_days),
                    start, as_of)


# ----------------------------------------------------------------------------- stalled deals
@metric(report="02", unit="ratio")
def stalled_deals(deals: pd.DataFrame, history: pd.DataFrame | None, *, as_of: pd.Timestamp,
                  norms: pd.DataFrame | Mapping[str, float] | pd.Series | None = None,
                  overrides: Mapping[str, float] | None = None, quantile: float = 0.9,
                  amount_col: str = AMOUNT_COL) -> pd.DataFrame:
    """Open deals whose days in their current stage exceed that stage's norm (by default the 90th percentile of completed visits to the stage).

    Parameters
    ----------
    deals : the canonical ``deals`` table with ``amount_col``.
    history : ``stage_history`` or a scan of it (the stage at ``as_of`` and the default norms).
    as_of : the instant "now".
    norms : the norm per stage in days: a frame from
        :func:`crmlib.metrics.cycle.stage_time_norms` (its ``norm_days``), a Series or
        a dict; None computes them from ``history`` with ``quantile``.
    overrides : ``{stage: days}`` that replace the norms of those stages (the report's
        per-stage parameter).
    quantile : the default norm's quantile of completed visits.

    Returns
    -------
    One row per stalled deal: deal_id, name, owner_id, stage (at ``as_of``),
    ``amount_col``, days_in_stage, norm_days, ratio (days / norm), stage_entered_at,
    stage_source, norm_source (history or override); worst ratio first. Stages without
    a norm never flag a deal.
    """
    as_of = ensure_instant(as_of)
    require_single_currency(deals, amount_col)
    if norms is None and history is None and not overrides:
        raise MissingTableError("stalled deals need stage_history (for time in stage and the default "
                                "norms) or explicit norms/overrides per stage", table="stage_history")
    d = stage_at(deals, history, as_of, open_only=True).copy()
    if norms is None and history is not None:
        norms = stage_time_norms(history, as_of=as_of, quantile=quantile)
    norm_map = _norm_series(norms)
    norm = d["stage_at"].map(norm_map).astype("float64")
    source = pd.Series(np.where(norm.notna(), "history", ""), index=d.index, dtype="str")
    if overrides:
        over = d["stage_at"].map(pd.Series(overrides, dtype="float64"))
        source = source.where(over.isna(), "override")
        norm = over.where(over.notna(), norm)
    d["norm_days"] = norm
    d["norm_source"] = source.where(norm.notna())
    d["ratio"] = d["days_in_stage"] / norm
    out = d.loc[d["days_in_stage"] > norm].copy()
    out["stage"] = out["stage_at"]
    cols = [c for c in ("deal_id", "name", "owner_id", "pipeline", "stage") if c in out.columns]
    cols += [amount_col, "days_in_stage", "norm_days", "ratio", "stage_entered_at", "stage_source",
             "norm_source"]
    out = out.sort_values(["ratio", amount_col], ascending=False, na_position="last", kind="stable")
    return out[cols].reset_index(drop=True)


def _norm_series(norms) -> pd.Series:
    if norms is None:
        return pd.Series(dtype="float64")
    if isinstance(norms, pd.DataFrame):
        if not {"stage", "norm_days"} <= set(norms.columns):
            raise CrmDataError("norms must have the columns stage and norm_days (as from "
                               "crmlib.metrics.cycle.stage_time_norms)")
        return norms.drop_duplicates("stage").set_index("stage")["norm_days"].astype("float64")
    return pd.Series(norms, dtype="float64")


# ----------------------------------------------------------------------------- tasks
#: the activities columns the task checks use (a report reads only these)
TASK_COLUMNS = ("type", "deal_id", "created_at", "due_at", "completed_at")


@metric(report="02", unit="flag")
def task_coverage(deals: pd.DataFrame, activities: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """For each deal open at as_of, whether it has a next task (an open task or meeting due at or after as_of) and whether it has an overdue one (an open task or meeting due before as_of).

    An *open task at as_of* is an activity of type task or meeting with a due_at,
    created before ``as_of``, and not completed before ``as_of``.

    Returns
    -------
    One row per open deal: deal_id, name, owner_id, open_tasks, has_next_task,
    has_overdue_task, next_due_at, overdue_since (the earliest overdue due_at); deals
    without a next task first.
    """
    as_of = ensure_instant(as_of)
    _require(activities, TASK_COLUMNS, "activities")
    require_rows(activities, as_of, what="the next-task check")  # a window holds every task open then
    d = deal_status_at(deals, as_of)
    d = d.loc[d["status_at"] == "open"]
    upcoming, overdue, counts, due_dtype = _open_tasks(activities, as_of)
    keep = [c for c in ("deal_id", "name", "owner_id") if c in d.columns]
    out = d[keep].copy()
    out["open_tasks"] = counts.reindex(out["deal_id"], fill_value=0).to_numpy(dtype="int64")
    empty = pd.Series(pd.NaT, index=out.index, dtype=due_dtype)  # mapping an empty Series gives floats
    out["next_due_at"] = out["deal_id"].map(upcoming).astype(due_dtype) if len(upcoming) else empty
    out["overdue_since"] = out["deal_id"].map(overdue).astype(due_dtype) if len(overdue) else empty
    out["has_next_task"] = out["next_due_at"].notna()
    out["has_overdue_task"] = out["overdue_since"].notna()
    out = out[keep + ["open_tasks", "has_next_task", "has_overdue_task", "next_due_at", "overdue_since"]]
    return out.sort_values(["has_next_task", "has_overdue_task", "deal_id"], ascending=[True, False, True],
                           kind="stable").reset_index(drop=True)


def _open_tasks(activities, as_of: pd.Timestamp):
    """Per deal with open tasks at as_of: the earliest due date at or after it, the earliest before
    it, the number of open tasks (Series by deal_id), and the dtype of due_at. A scan of a large
    snapshot's activities has DuckDB reduce the file (pushdown.deal_rows.open_tasks)."""
    if is_scan(activities):
        from ..pushdown.deal_rows import open_tasks

        t = open_tasks(activities, as_of=as_of, types=TASK_TYPES).set_index("deal_id")
        return (t["next_due_at"].dropna(), t["overdue_since"].dropna(), t["open_tasks"],
                t["next_due_at"].dtype)
    a = activities
    is_open = (a["type"].isin(TASK_TYPES) & a["due_at"].notna() & a["deal_id"].notna()
               & (a["created_at"] < as_of) & (a["completed_at"].isna() | (a["completed_at"] >= as_of)))
    t = a.loc[is_open, ["deal_id", "due_at"]]
    upcoming = t.loc[t["due_at"] >= as_of].groupby("deal_id")["due_at"].min()
    overdue = t.loc[t["due_at"] < as_of].groupby("deal_id")["due_at"].min()
    return upcoming, overdue, t.groupby("deal_id").size(), a["due_at"].dtype


@metric(report="02", unit="pct")
def task_coverage_by_owner(deals: pd.DataFrame, activities: pd.DataFrame, *,
                           as_of: pd.Timestamp) -> pd.DataFrame:
    """Per owner, the share of their open deals without a next task and the share with an overdue task.

    Returns
    -------
    One row per owner (a missing owner is its own row): owner_id, open_deals,
    without_next_task, without_next_task_share, with_overdue_task,
    with_overdue_task_share; most deals without a next task first.
    """
    cov = task_coverage(deals, activities, as_of=as_of)
    if "owner_id" not in cov.columns:
        raise CrmDataError("deals lacks owner_id, so coverage per owner cannot be shown",
                           table="deals", column="owner_id")
    g = cov.assign(_no_next=~cov["has_next_task"]).groupby("owner_id", dropna=False, sort=True)
    out = pd.DataFrame({
        "open_deals": g.size(),
        "without_next_task": g["_no_next"].sum(),
        "with_overdue_task": g["has_overdue_task"].sum(),
    }).astype("int64")
    out["without_next_task_share"] = out["without_next_task"] / out["open_deals"]
    out["with_overdue_task_share"] = out["with_overdue_task"] / out["open_deals"]
    out = out.reset_index()[["owner_id", "open_deals", "without_next_task", "without_next_task_share",
                             "with_overdue_task", "with_overdue_task_share"]]
    return out.sort_values(["without_next_task", "open_deals"], ascending=False,
                           kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- load per owner
@metric(report="02", unit="count")
def owner_load(deals: pd.DataFrame, *, as_of: pd.Timestamp, users: pd.DataFrame | None = None,
               cap: int = 50, amount_col: str | None = None, include_idle: bool = False) -> pd.DataFrame:
    """Open deals per owner at as_of, and whether the owner carries more than the cap (50 by default).

    Parameters
    ----------
    deals : the canonical ``deals`` table.
    as_of : the instant "now".
    users : the ``users`` table; adds name and team.
    cap : the most open deals one owner should carry (the sources' arithmetic: about
        75 deals is the ceiling, 50 the recommended limit).
    amount_col : when given, also the open value per owner (reporting currency).
    include_idle : with ``users``, also list users with no open deal (0 deals) unless they are
        marked inactive.

    Returns
    -------
    owner_id, [name, team], open_deals, [open_value], cap, over_cap, load_ratio
    (open deals / cap); heaviest first.
    """
    as_of = ensure_instant(as_of)
    if not cap > 0:
        raise ValueError(f"cap must be positive, not {cap}")
    d = deal_status_at(deals, as_of)
    _require(d, ("owner_id",), "deals")
    d = d.loc[d["status_at"] == "open"]
    g = d.groupby("owner_id", dropna=False, sort=True)
    out = pd.DataFrame({"open_deals": g.size().astype("int64")})
    if amount_col is not None:
        require_single_currency(deals, amount_col)
        out["open_value"] = g[amount_col].sum(min_count=1)
    out = out.reset_index()
    if users is not None:
        _require(users, ("user_id",), "users")
        info = users.drop_duplicates("user_id").set_index("user_id")
        if include_idle:
            if "active" in info.columns:
                active = info["active"].astype("boolean").fillna(True).astype(bool)  # unknown: listed
            else:
                active = pd.Series(True, index=info.index)
            idle = info.index[active.to_numpy() & ~info.index.isin(out["owner_id"].dropna())]
            zeros = pd.DataFrame({"owner_id": pd.Series(idle, dtype="str"),
                                  "open_deals": np.zeros(len(idle), dtype="int64")})
            if amount_col is not None:
                zeros["open_value"] = 0.0  # an owner with no open deal carries no value
            out = pd.concat([out, zeros], ignore_index=True)
        for col in ("name", "team"):
            if col in info.columns:
                out.insert(out.columns.get_loc("open_deals"), col, out["owner_id"].map(info[col]))
    out["cap"] = int(cap)
    out["over_cap"] = out["open_deals"] > cap
    out["load_ratio"] = out["open_deals"] / cap
    return out.sort_values(["open_deals", "owner_id"], ascending=[False, True],
                           kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- helpers
def _check_close_dates(deals: pd.DataFrame) -> None:
    bad = deals["status"].isin(_CLOSED) & deals["closed_at"].isna()
    if bad.any():
        ids = ", ".join(map(str, deals.loc[bad, "deal_id"].head(5)))
        raise CrmDataError(
            f"deals: {int(bad.sum())} won/lost deals have no closed_at (e.g. {ids}), so their status "
            "at as_of is unknown; the audit should quarantine them, or fill closed_at at the source",
            table="deals", column="closed_at")


def _stage_info(keys: pd.DataFrame, stages: pd.DataFrame | None) -> pd.DataFrame:
    """order, probability and is_closed of each row's stage (by pipeline and stage when stages has several pipelines)."""
    cols = ["order", "probability", "is_closed"]
    if stages is None:
        return pd.DataFrame({"order": np.nan, "probability": np.nan, "is_closed": pd.NA}, index=keys.index)
    _require(stages, ("stage",), "stages")
    st = stages.copy()
    for col in cols:
        if col not in st.columns:
            st[col] = np.nan if col != "is_closed" else pd.NA
    several = "pipeline" in st.columns and st["pipeline"].nunique() > 1 and "pipeline" in keys.columns
    on = ["pipeline", "stage"] if several else ["stage"]
    st = st.dropna(subset=on).drop_duplicates(on, keep="first")
    right = st[on + cols].assign(order=lambda s: s["order"].astype("float64"),
                                 probability=lambda s: s["probability"].astype("float64"))
    merged = keys[on].merge(right, on=on, how="left")
    merged.index = keys.index
    blank = keys[on].isna().any(axis=1)  # a missing key never matches
    merged.loc[blank, ["order", "probability"]] = np.nan
    return merged[cols]
