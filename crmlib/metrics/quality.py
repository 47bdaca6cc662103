"""Data-quality metrics for the audit report (01): what the audit kept, quarantined and flagged."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..audit import CHECKS
from .catalogue import metric


@dataclass(frozen=True)
class QualityVerdict:
    """The overall data-quality score with its parts."""

    score: float
    input_rows: int
    kept_rows: int
    quarantined_rows: int
    flagged_rows: int
    worst_table: str | None
    worst_score: float | None

    @property
    def conserved(self) -> bool:
        return self.input_rows == self.kept_rows + self.quarantined_rows

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__])


@metric(report="01", unit="score")
def quality_verdict(counts: pd.DataFrame) -> QualityVerdict:
    """Overall data-quality score: 100 x (1 - (quarantined + 0.5 x flagged rows) / input rows)."""
    tables = counts[counts["table"] != "all"]
    total = counts[counts["table"] == "all"].iloc[0]
    worst = tables.sort_values("score").iloc[0] if len(tables) else None
    return QualityVerdict(
        score=float(total["score"]), input_rows=int(total["input"]), kept_rows=int(total["kept"]),
        quarantined_rows=int(total["quarantined"]), flagged_rows=int(total["flagged"]),
        worst_table=None if worst is None else str(worst["table"]),
        worst_score=None if worst is None else float(worst["score"]))


@metric(report="01", unit="table")
def issues_by_check(quarantine: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """Rows per table and check, with the check's outcome (quarantined or flagged), meaning and a first example."""
    cols = ["table", "check", "outcome", "rows", "meaning", "example"]
    parts = [frame.assign(outcome=outcome) for frame, outcome in
             ((quarantine, "quarantined"), (findings, "flagged (kept)")) if len(frame)]
    if not parts:
        return pd.DataFrame(columns=cols)
    both = pd.concat([p[["table", "check", "outcome", "source", "row", "reason"]] for p in parts],
                     ignore_index=True)
    first = both.sort_values("row").groupby(["table", "check", "outcome"], sort=False).first()
    out = both.groupby(["table", "check", "outcome"]).size().rename("rows").to_frame().join(first)
    out = out.reset_index()
    out["meaning"] = out["check"].map(lambda c: CHECKS.get(c, ("", c))[1])
    out["example"] = out["source"] + " row " + out["row"].astype("str") + ": " + out["reason"]
    return out.sort_values(["rows", "table"], ascending=[False, True])[cols].reset_index(drop=True)


@metric(report="01", unit="table")
def worst_offenders(quarantine: pd.DataFrame, findings: pd.DataFrame, *, n: int = 25) -> pd.DataFrame:
    """The rows to fix first at the source: one row of every kind of problem first (quarantined before flagged), then the rest by table and row."""
    cols = ["outcome", "table", "source", "row", "key", "check", "reason"]
    q = quarantine.assign(outcome="quarantined")[cols]
    f = findings.assign(outcome="flagged")[cols]
    both = pd.concat([x for x in (q, f) if len(x)], ignore_index=True) if len(q) or len(f) \
        else pd.DataFrame(columns=cols)
    both = both.sort_values(["table", "row"])
    both["_rank"] = both.groupby(["outcome", "table", "check"]).cumcount()
    both["_q"] = both["outcome"] != "quarantined"
    return both.sort_values(["_rank", "_q", "table", "row"]).head(n)[cols].reset_index(drop=True)


@metric(report="01", unit="pct")
def completeness_by_table(completeness: pd.DataFrame, *, threshold: float = 0.2) -> pd.DataFrame:
    """Share of empty values per column of each table (kept rows); columns above ``threshold`` only."""
    c = completeness[completeness["present"]]
    return c[c["missing_share"] > threshold].sort_values("missing_share", ascending=False) \
        .reset_index(drop=True)[["table", "column", "missing_share"]]


@dataclass(frozen=True)
class Staleness:
    """Contacts not updated for more than ``months`` months before as_of."""

    stale: int
    total: int
    months: int

    @property
    def share(self) -> float:
        return self.stale / self.total if self.total else float("nan")


@metric(report="01", unit="pct")
def stale_contacts(contacts: pd.DataFrame, *, as_of: pd.Timestamp, months: int = 12) -> Staleness:
    """Share of contacts whose last update (or creation) is more than ``months`` months before as_of."""
    seen = contacts["updated_at"].fillna(contacts["created_at"])
    known = contacts[seen.notna() & (seen < as_of)]
    seen = seen[known.index]
    stale = int((seen < as_of - pd.DateOffset(months=months)).sum())
    return Staleness(stale, len(known), months)


@metric(report="01", unit="table")
def history_problems(findings: pd.DataFrame) -> pd.DataFrame:
    """Stage-history consistency findings (current stage missing, entries before creation)."""
    mask = findings["check"].isin(["history_missing_current_stage", "history_out_of_order"])
    return findings[mask].reset_index(drop=True)


def _dates_of(tables: dict[str, pd.DataFrame]) -> list[pd.Series]:
    """The dating timestamp (TableSpec.dated_by) of every kept row, one Series per dated table
    (counted table by table: never concatenated, as a large export's tables hold 100Ms of rows)."""
    from ..schema import dating_column

    parts = []
    for name, frame in tables.items():
        col = dating_column(name)
        if col is not None and col in frame.columns and len(frame):
            parts.append(frame[col])
    return parts


@metric(report="01", unit="score")
def quality_as_it_stood(counts: pd.DataFrame, tables: dict[str, pd.DataFrame], quarantine: pd.DataFrame,
                        findings: pd.DataFrame, *, before: pd.Timestamp, as_of: pd.Timestamp) -> float | None:
    """The overall data-quality score of the export without the rows dated in [``before``, ``as_of``):
    the export as it stood at ``before``, scored like ``quality_verdict`` (100 x (1 - (quarantined +
    0.5 x flagged) / rows)). Undated rows and undated tables count at every date, so with
    ``before = as_of`` this is the overall score exactly; None when no row is left."""
    total = counts[counts["table"] == "all"].iloc[0]
    recent_kept = sum(int(((kept >= before) & (kept < as_of)).sum()) for kept in _dates_of(tables))

    def recent(frame: pd.DataFrame) -> pd.DataFrame:
        if not len(frame):
            return frame
        return frame[(frame["dated_at"] >= before) & (frame["dated_at"] < as_of)]

    recent_q = len(recent(quarantine))
    recent_f = len(recent(findings).drop_duplicates(["table", "row"]))
    all_f = int(total["flagged"])
    n = int(total["input"]) - recent_kept - recent_q
    q = int(total["quarantined"]) - recent_q
    f = all_f - recent_f
    return 100.0 * (1 - (q + 0.5 * f) / n) if n > 0 else None


@metric(report="01", unit="table")
def weekly_problem_share(tables: dict[str, pd.DataFrame], quarantine: pd.DataFrame,
                         findings: pd.DataFrame, *, as_of: pd.Timestamp, weeks: int = 12,
                         baseline_weeks: int = 8, alpha: float = 0.05) -> pd.DataFrame:
    """Per ISO week: rows dated in it (kept + quarantined), rows with a problem (quarantined or
    flagged), their share, and the one-sided binomial test of that share against the
    ``baseline_weeks`` weeks before (crmlib.stats.spikes, Holm-corrected over the ``weeks``
    tested). A week whose share is significantly above its baseline is a drop in data quality.
    Rows whose date did not parse are undated and counted in no week."""
    from ..stats.spikes import weekly_spikes

    tz = getattr(as_of, "tz", None)
    bad = pd.concat([quarantine[["table", "row", "dated_at"]],
                     findings[["table", "row", "dated_at"]]], ignore_index=True) \
        .drop_duplicates(["table", "row"])
    problem_dates = bad["dated_at"].dropna()
    problem_dates = problem_dates[problem_dates < as_of]
    quarantined_dates = quarantine["dated_at"].dropna()
    quarantined_dates = quarantined_dates[quarantined_dates < as_of]

    def week_of(s: pd.Series) -> pd.Series:
        local = s.dt.tz_convert(tz) if tz is not None else s
        return local.dt.tz_localize(None).dt.normalize() - pd.to_timedelta(local.dt.day_of_week, unit="D")

    counted = [week_of(kept[kept < as_of]).value_counts() for kept in _dates_of(tables)]
    rows = pd.concat([*counted, week_of(quarantined_dates).value_counts()]).groupby(level=0).sum()
    events = week_of(problem_dates).value_counts()
    per_week = pd.DataFrame({"n": rows, "events": events}).fillna(0).astype("int64").sort_index()
    end_local = (as_of.tz_convert(tz) if tz is not None else as_of).tz_localize(None) - pd.Timedelta(microseconds=1)
    last = end_local.normalize() - pd.Timedelta(days=end_local.day_of_week)
    first = last - pd.Timedelta(weeks=weeks - 1)
    out = weekly_spikes(per_week, first=first, last=last, baseline_weeks=baseline_weeks, alpha=alpha)
    out["quality_score"] = 100.0 * (1 - out["share"])
    return out


@metric(report="01", unit="table")
def quality_drops(weekly: pd.DataFrame, *, alpha: float = 0.05, min_points: float = 2.0) -> pd.DataFrame:
    """The weeks of ``weekly_problem_share`` whose problem share is significantly above their
    baseline (corrected p < ``alpha``) and at least ``min_points`` percentage points higher:
    significant and material."""
    material = (weekly["share"] - weekly["baseline_share"]) * 100 >= min_points
    return weekly[weekly["tested"] & (weekly["p_adjusted"] < alpha) & material].reset_index(drop=True)
