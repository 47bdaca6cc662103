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
