"""Audit a loaded export: every row is kept or quarantined with a reason, nothing is lost.

Two outcomes for a row with a problem:

* **quarantined**: the row cannot be trusted in any number (a value that does not
  parse, a missing or duplicate id, an unknown status or stage, a deal closed before
  it was created, an event after the export was taken, a negative amount, a won deal
  worth nothing, a bulk-import copy, a double-submitted form, a ragged or "Total" row).
  It is removed from the clean tables and listed in the quarantine with its source
  row number, the check and a reason a person can act on.
* **flagged**: the row is kept but listed in the findings (a malformed email or phone,
  a reference to a row that does not exist, a probable duplicate person or company,
  stage-history inconsistencies), so someone can fix it at the source.

Counts are conserved per table: input = kept + quarantined (checked on every run).

The data-quality score of a table is ``100 x (1 - (quarantined + 0.5 x flagged) / input)``:
a quarantined row costs a full point of the share, a flagged row half of one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from .errors import CrmDataError
from .lookup import isin
from .load import Problem, RawExport, coerce_table
from .schema import EMAIL_RE, PHONE_RE, TABLES, spec

QUARANTINE_COLUMNS = ["table", "source", "row", "key", "column", "check", "reason", "record", "dated_at"]
FINDING_COLUMNS = ["table", "source", "row", "key", "column", "check", "reason", "dated_at"]

#: what each check means (shown in the audit report)
CHECKS = {
    "ragged_row": ("quarantine", "the row has a different number of fields than the header"),
    "summary_row": ("quarantine", "a Total/summary row, not a record"),
    "missing_key": ("quarantine", "the row has no id"),
    "missing_value": ("quarantine", "a required value is empty"),
    "duplicate_id": ("quarantine", "the id appears earlier in the table (first kept)"),
    "bulk_duplicate": ("quarantine", "identical to an earlier row except the id (bulk import)"),
    "double_submission": ("quarantine", "the same person submitted again within minutes"),
    "unparseable_date": ("quarantine", "a date that matches none of the export's formats"),
    "unparseable_number": ("quarantine", "a number or amount that does not parse"),
    "bad_id": ("quarantine", "an id that is not a whole number"),
    "bad_bool": ("quarantine", "a yes/no value that is neither"),
    "not_allowed": ("quarantine", "a value outside the allowed set (e.g. status not open/won/lost)"),
    "negative_amount": ("quarantine", "a negative amount"),
    "zero_amount_won": ("quarantine", "a won deal with zero amount"),
    "bad_currency": ("quarantine", "a currency that is not a 3-letter ISO code"),
    "close_before_create": ("quarantine", "closed before it was created"),
    "won_without_close_date": ("quarantine", "won or lost but no close date"),
    "future_date": ("quarantine", "an event dated after the export was taken"),
    "unknown_stage": ("quarantine", "a stage that is not in the pipeline definition"),
    "invalid_email": ("flag", "a malformed email address"),
    "invalid_phone": ("flag", "a malformed phone number"),
    "duplicate_contact": ("flag", "the same email, phone or name+company as another record"),
    "orphan": ("flag", "a reference to a row that does not exist"),
    "history_missing_current_stage": ("flag", "the deal's current stage is not in its history"),
    "history_out_of_order": ("flag", "history entries before the deal was created"),
    "open_with_close_date": ("flag", "an open deal with a close date"),
}


@dataclass
class AuditResult:
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    findings: pd.DataFrame
    counts: pd.DataFrame
    completeness: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass
class _TableAudit:
    table: str
    source: str
    typed: pd.DataFrame
    rows: np.ndarray
    problems: list[tuple[int, str, str, str]] = field(default_factory=list)  # pos, col, check, reason
    flags: list[tuple[int, str, str, str]] = field(default_factory=list)
    ragged: list[tuple[int, str]] = field(default_factory=list)
    raw: pd.DataFrame | None = None

    def quarantine(self, mask: pd.Series, column: str, check: str, reasons) -> None:
        idx = mask[mask].index
        if isinstance(reasons, str):
            reasons = [reasons] * len(idx)
        else:
            reasons = list(pd.Series(reasons, index=mask.index)[idx]) if isinstance(reasons, pd.Series) \
                and len(reasons) == len(mask) else list(reasons)
        self.problems.extend((int(i), column, check, r) for i, r in zip(idx, reasons))

    def flag(self, mask: pd.Series, column: str, check: str, reasons) -> None:
        idx = mask[mask].index
        if isinstance(reasons, str):
            reasons = [reasons] * len(idx)
        elif isinstance(reasons, pd.Series) and len(reasons) == len(mask):
            reasons = list(reasons[idx])
        self.flags.extend((int(i), column, check, r) for i, r in zip(idx, reasons))

    def bad_positions(self) -> set[int]:
        return {p[0] for p in self.problems}


def audit(raw: RawExport, *, timezone: str = "UTC", extracted_at: pd.Timestamp,
          double_submission_minutes: float = 10.0, require_deals: bool = True) -> AuditResult:
    """Type, validate and cross-check every table; split rows into kept and quarantined.

    ``extracted_at`` is when the export was taken: event timestamps after it are
    impossible and quarantined (planned times such as due dates may lie after it).
    ``require_deals``: False when the deals are audited elsewhere (a large source's engine).
    """
    if require_deals:
        if "deals" not in raw.tables:
            raise no_deals_error(raw.source)
        deals = raw.tables["deals"]
        if not len(deals.frame) and not deals.ragged:
            raise empty_deals_error(deals.source)
    audits: dict[str, _TableAudit] = {}
    for name, rt in raw.tables.items():
        typed, problems = coerce_table(rt, raw.mapping, timezone=timezone)
        ta = _TableAudit(name, rt.source, typed, rt.rows, ragged=list(rt.ragged), raw=rt.frame)
        ta.problems.extend((p.position, p.column, p.check, p.reason) for p in problems)
        audits[name] = ta

    for ta in audits.values():
        _row_checks(ta, extracted_at=extracted_at)
    _stage_checks(audits)
    if "leads" in audits:
        _double_submissions(audits["leads"], minutes=double_submission_minutes)
    # relational flags look at rows that survived the row checks
    kept_keys = {name: _kept(ta)[spec(name).key].dropna()
                 for name, ta in audits.items() if spec(name).key}
    for ta in audits.values():
        _flag_checks(ta, kept_keys)
    _history_checks(audits)
    return _assemble(audits, raw, timezone)


def no_deals_error(source: str) -> CrmDataError:
    return CrmDataError(f"{source}: no deals table found (expected a file named deals.csv, "
                        "deals.xlsx or deals.parquet, or a mapping entry tables.deals.file); "
                        "deals is the one required table", table="deals")


def empty_deals_error(source: str) -> CrmDataError:
    return CrmDataError(f"{source}: the deals table has a header but no rows; deals is the "
                        "one required table: export it again (check the export's filters)",
                        table="deals", source=source)


# ---------------------------------------------------------------- row checks
def _kept(ta: _TableAudit) -> pd.DataFrame:
    bad = ta.bad_positions()
    return ta.typed[~ta.typed.index.isin(list(bad))]


def _row_checks(ta: _TableAudit, *, extracted_at: pd.Timestamp) -> None:
    t = spec(ta.table)
    df = ta.typed
    already = pd.Series(ta.typed.index.isin(list(ta.bad_positions())), index=df.index)
    if t.key:
        key = df[t.key]
        is_total = pd.Series(False, index=df.index)
        if ta.raw is not None and len(ta.raw.columns) and key.isna().any():
            # only a row without an id can be a Total line: look at those alone (a million rows
            # turned into text would cost more than the whole check)
            raw_vals = ta.raw.loc[key.isna().to_numpy()].astype("str")
            is_total.loc[raw_vals.index] = raw_vals.apply(
                lambda c: c.str.match(TOTAL_RE_STR, na=False)).any(axis=1).to_numpy()
        ta.quarantine(key.isna() & is_total, t.key, "summary_row",
                      "a Total/summary row, not a record (sums would count it twice)")
        ta.quarantine(key.isna() & ~is_total & ~already, t.key, "missing_key", f"{t.key} is empty")
    # pandera: values of single columns (nullability, uniqueness, allowed sets, sign, codes)
    schema = TABLE_SCHEMAS.setdefault(ta.table, _schema(ta.table))
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
        table_level = fc[fc["index"].isna()]
        if len(table_level):
            first = table_level.iloc[0]
            raise CrmDataError(f"{ta.source}: column {first['column']} of {ta.table} failed "
                               f"{first['check']} for the whole table; check the export's format",
                               table=ta.table, column=str(first["column"])) from None
        for _, f in fc.iterrows():
            pos, col, check = int(f["index"]), str(f["column"]), str(f["check"])
            if already[pos] and check in ("not_nullable",):
                continue  # the value was unparseable: already quarantined with a better reason
            code, reason = _pandera_reason(ta, pos, col, check, f["failure_case"])
            if code is None:
                continue
            ta.problems.append((pos, col, code, reason))
    # cross-column checks
    for col in t.event_time_columns:
        fut = (df[col] > extracted_at).fillna(False)
        ta.quarantine(fut, col, "future_date",  # reasons for the rows found only
                      df.loc[fut, col].map(lambda v, c=col: f"{c} {v:%Y-%m-%d %H:%M} is after the export "
                                           f"was taken ({extracted_at:%Y-%m-%d %H:%M})"))
    if ta.table == "deals":
        cbc = (df["closed_at"] < df["created_at"]).fillna(False)
        ta.quarantine(cbc, "closed_at", "close_before_create", "closed_at is before created_at")
        closed = df["status"].isin(["won", "lost"])
        ta.quarantine(closed & df["closed_at"].isna() & ~already, "closed_at", "won_without_close_date",
                      df["status"].map(lambda s: f"status {s} but closed_at is empty"))
        zero_won = (df["status"] == "won") & (df["amount"] == 0)
        ta.quarantine(zero_won.fillna(False), "amount", "zero_amount_won", "won deal with amount 0")
        ta.flag((df["status"] == "open") & df["closed_at"].notna(), "closed_at",
                "open_with_close_date", "status open but closed_at is set")
    _bulk_duplicates(ta)


TOTAL_RE_STR = r"(?i)^\s*(?:grand\s+)?(?:total|totals|sum|subtotal)\b"
TABLE_SCHEMAS: dict[str, pa.DataFrameSchema] = {}


def _schema(table: str) -> pa.DataFrameSchema:
    from .schema import pandera_schema

    return pandera_schema(table)


def _pandera_reason(ta: _TableAudit, pos: int, col: str, check: str, value) -> tuple[str | None, str]:
    t = spec(ta.table)
    if check == "field_uniqueness":
        first = ta.typed.index[(ta.typed[col] == value).to_numpy()][0]
        return "duplicate_id", f"{col} {value} appears earlier (row {int(ta.rows[first])}, kept)"
    if check == "not_nullable":
        if col == t.key:
            return None, ""  # handled as missing_key / summary_row
        return "missing_value", f"{col} is empty but required"
    if check.startswith(("not_allowed", "isin")):
        allowed = "/".join(t.column(col).allowed or ())
        return "not_allowed", f"{col} {str(value)[:60]!r} is not one of {allowed}"
    if check.startswith(("negative_amount", "greater_than_or_equal_to")):
        return "negative_amount", f"{col} {value} is negative"
    if check.startswith(("bad_currency", "str_matches")):
        return "bad_currency", f"{col} {str(value)[:20]!r} is not a 3-letter currency code"
    return check, f"{col}: {check} ({str(value)[:60]})"


def _bulk_duplicates(ta: _TableAudit) -> None:
    """Rows identical in every column but the id (e.g. an import run twice)."""
    t = spec(ta.table)
    df = ta.typed
    others = [c for c in df.columns if c != t.key]
    content = df[others]
    # "informative": at least half of the columns the export has are filled (not half of
    # every canonical column: a small export with few columns has bulk copies too), and
    # with ids at least four values besides the id agree (two open deals of 100 created
    # on the same day are not copies of each other)
    present = [c for c in others if ta.raw is None or c in ta.raw.columns] or others
    need = max(4 if t.key else 2, len(present) // 2)
    informative = content[present].notna().sum(axis=1) >= need
    bad = pd.Series(df.index.isin(list(ta.bad_positions())), index=df.index)
    cand = content[informative & ~bad]
    dup = cand.duplicated(keep="first")
    if not dup.any():
        return
    if t.key:
        first_of = cand.reset_index().groupby(others, dropna=False, sort=False)["index"].transform("first")
        first_of.index = cand.index
        reasons = [f"identical to {t.key} {df.at[first_of[i], t.key]} (row {int(ta.rows[first_of[i]])}) "
                   "except its id" for i in dup[dup].index]
        ta.quarantine(dup.reindex(df.index, fill_value=False), t.key, "bulk_duplicate", reasons)
    else:
        ta.quarantine(dup.reindex(df.index, fill_value=False), others[0], "duplicate_id",
                      "the same row appears earlier")


def _stage_checks(audits: dict[str, _TableAudit]) -> None:
    if "stages" not in audits:
        return
    stages = _kept(audits["stages"])
    known = set(stages["stage"].dropna())
    for name in ("deals", "stage_history"):
        if name not in audits:
            continue
        ta = audits[name]
        st = ta.typed["stage"]
        unknown = st.notna() & ~st.isin(known)
        ta.quarantine(unknown, "stage", "unknown_stage",
                      st.map(lambda s: f"stage {str(s)[:60]!r} is not in the pipeline definition (stages)"))


def _double_submissions(ta: _TableAudit, *, minutes: float) -> None:
    """A lead with the same email (or phone) and company as one created minutes before."""
    df = ta.typed
    ok = ~df.index.isin(list(ta.bad_positions()))
    for col in ("email", "phone"):
        person = _normalise_contact(df[col], col)
        company = df["company"].fillna("").str.strip().str.lower()
        frame = pd.DataFrame({"p": person, "c": company, "t": df["created_at"]})[ok & person.notna()]
        frame = frame.sort_values("t")
        prev_t = frame.groupby(["p", "c"])["t"].shift()
        gap = (frame["t"] - prev_t).dt.total_seconds() / 60
        hit = (gap <= minutes).fillna(False)
        hit = hit[hit]
        already = {p[0] for p in ta.problems if p[2] == "double_submission"}
        for pos in hit.index:
            if pos in already:
                continue
            ta.problems.append((int(pos), col, "double_submission",
                                f"same {col} and company as a lead {gap[pos]:.0f} min earlier"))


def _normalise_contact(s: pd.Series, kind: str) -> pd.Series:
    if kind == "email":
        return s.str.strip().str.lower()
    digits = s.str.replace(r"\D", "", regex=True)
    return digits.where(digits.str.len() >= 7).str[-9:]


# ---------------------------------------------------------------- flags (rows kept)
def _flag_checks(ta: _TableAudit, kept_keys: dict[str, pd.Series]) -> None:
    t = spec(ta.table)
    df = ta.typed
    alive = pd.Series(~df.index.isin(list(ta.bad_positions())), index=df.index)
    if "email" in df.columns:
        bad = alive & df["email"].notna() & ~df["email"].str.strip().str.match(EMAIL_RE, na=False)
        ta.flag(bad, "email", "invalid_email",
                df.loc[bad, "email"].map(lambda v: f"email {str(v)[:60]!r} is malformed"))
    if "phone" in df.columns:
        bad = alive & df["phone"].notna() & ~df["phone"].str.strip().str.match(PHONE_RE, na=False)
        ta.flag(bad, "phone", "invalid_phone",
                df.loc[bad, "phone"].map(lambda v: f"phone {str(v)[:40]!r} is malformed"))
    for c in t.columns:
        if c.kind != "ref" or not c.refers_to:
            continue
        target_table, target_col = c.refers_to.split(".")
        if target_table not in kept_keys:
            continue
        vals = df[c.name]
        orphan = alive & vals.notna() & ~isin(vals, kept_keys[target_table])
        ta.flag(orphan, c.name, "orphan",
                vals[orphan].map(lambda v, tt=target_table: f"{c.name} {str(v)[:40]} does not exist in {tt}"))
    if ta.table in ("contacts", "leads", "accounts"):
        _flag_duplicates(ta, alive)


def _flag_duplicates(ta: _TableAudit, alive: pd.Series) -> None:
    """Probable duplicates: same normalised email, phone, or name (+ company/account)."""
    df = ta.typed
    t = spec(ta.table)
    keys = []
    if "email" in df.columns:
        keys.append(("email", _normalise_contact(df["email"], "email")))
    if "phone" in df.columns:
        keys.append(("phone", _normalise_contact(df["phone"], "phone")))
    if ta.table == "accounts":
        keys.append(("name", _normalise_company(df["name"])))
    flagged: set[int] = set()
    for col, norm in keys:
        norm = norm.where(alive)
        dup = norm.notna() & norm.duplicated(keep=False)
        if not dup.any():
            continue
        groups = norm[dup].groupby(norm[dup]).groups
        members = ([(int(i), str(df.at[i, t.key])) for i in idx] for idx in groups.values())
        ta.flags.extend((pos, col, "duplicate_contact", reason)
                        for pos, reason in duplicate_flags(col, members, flagged))


def duplicate_flags(col: str, groups, flagged: set[int]) -> list[tuple[int, str]]:
    """(position, reason) for each row of the groups of probable duplicates (each group: its
    rows' (position, key) in row order) not flagged yet under an earlier value; the rows
    join ``flagged``."""
    out = []
    for members in groups:
        ids = [key for _, key in members]
        for pos, key in members:
            if pos in flagged:
                continue
            flagged.add(pos)
            others = ", ".join(x for x in ids if x != key)[:80]
            out.append((pos, f"same normalised {col} as {others}"))
    return out


_LEGAL = r"\b(inc|ltd|llc|gmbh|ag|sa|sarl|plc|co|corp|corporation|company|limited|oy|ab|bv|nv)\b"


def _normalise_company(s: pd.Series) -> pd.Series:
    out = s.str.lower().str.replace(r"&", " and ", regex=False)
    out = out.str.replace(_LEGAL, " ", regex=True).str.replace(r"[^a-z0-9]+", "", regex=True)
    return out.where(out.str.len() > 0)


def _history_checks(audits: dict[str, _TableAudit]) -> None:
    if "stage_history" not in audits:
        return
    deals_ta, hist_ta = audits["deals"], audits["stage_history"]
    deals, hist = _kept(deals_ta), _kept(hist_ta)
    if not len(hist):
        return
    entered = hist.groupby(["deal_id", "stage"]).size().reset_index()[["deal_id", "stage"]]
    has_hist = isin(deals["deal_id"], hist["deal_id"])
    pair = deals[["deal_id", "stage"]].merge(entered.assign(_in=True), on=["deal_id", "stage"], how="left")
    missing = has_hist.to_numpy() & pair["_in"].isna().to_numpy() & deals["stage"].notna().to_numpy()
    deals_ta.flag(pd.Series(missing, index=deals.index).reindex(deals_ta.typed.index, fill_value=False),
                  "stage", "history_missing_current_stage", "the current stage never appears in its history")
    created = deals.set_index("deal_id")["created_at"]
    early = hist["entered_at"] < hist["deal_id"].map(created) - pd.Timedelta(minutes=1)
    hist_ta.flag(early.fillna(False).reindex(hist_ta.typed.index, fill_value=False), "entered_at",
                 "history_out_of_order", "entered a stage before the deal was created")


# ---------------------------------------------------------------- assemble
def _record_json(raw: pd.DataFrame | None, pos: int) -> str:
    if raw is None or pos >= len(raw):
        return "{}"
    row = raw.iloc[pos]
    return json.dumps({str(k): (None if pd.isna(v) else str(v)) for k, v in row.items()},
                      ensure_ascii=False, default=str)


def _dated_at(ta: _TableAudit, pos: int):
    """When the row happened (the table's dating timestamp, see TableSpec.dated_by); NaT
    when the table has none or the value did not parse."""
    col = spec(ta.table).dated_by
    if col is None or col not in ta.typed.columns:
        return pd.NaT
    value = ta.typed.at[pos, col]
    return pd.NaT if pd.isna(value) else value


def _assemble(audits: dict[str, _TableAudit], raw: RawExport, timezone: str = "UTC") -> AuditResult:
    tables, q_rows, f_rows, counts, comp = {}, [], [], [], []
    for name in [n for n in TABLES if n in audits]:
        ta = audits[name]
        t = spec(name)
        by_pos: dict[int, list[tuple[str, str, str]]] = {}
        for pos, col, check, reason in ta.problems:
            by_pos.setdefault(pos, []).append((col, check, reason))
        for pos, items in sorted(by_pos.items()):
            key = ta.typed.at[pos, t.key] if t.key else None
            col, check, _ = items[0]
            reason = "; ".join(dict.fromkeys(r for _, _, r in items))
            q_rows.append({"table": name, "source": ta.source, "row": int(ta.rows[pos]),
                           "key": None if key is None or pd.isna(key) else str(key),
                           "column": col, "check": check, "reason": reason,
                           "record": _record_json(ta.raw, pos), "dated_at": _dated_at(ta, pos)})
        for line, reason in ta.ragged:
            q_rows.append({"table": name, "source": ta.source, "row": int(line), "key": None,
                           "column": None, "check": "ragged_row", "reason": reason, "record": "{}",
                           "dated_at": pd.NaT})
        kept = ta.typed.drop(index=list(by_pos)).reset_index(drop=True)
        flagged_pos = set()
        for pos, col, check, reason in ta.flags:
            if pos in by_pos:
                continue
            flagged_pos.add(pos)
            key = ta.typed.at[pos, t.key] if t.key else None
            f_rows.append({"table": name, "source": ta.source, "row": int(ta.rows[pos]),
                           "key": None if key is None or pd.isna(key) else str(key),
                           "column": col, "check": check, "reason": reason, "dated_at": _dated_at(ta, pos)})
        n_in = len(ta.typed) + len(ta.ragged)
        n_q = len(by_pos) + len(ta.ragged)
        if n_in != len(kept) + n_q:  # conservation: never lose a row silently
            raise AssertionError(f"{name}: {n_in} rows in, {len(kept)} kept + {n_q} quarantined")
        score = 100.0 * (1 - (n_q + 0.5 * len(flagged_pos)) / n_in) if n_in else 100.0
        counts.append({"table": name, "source": ta.source, "input": n_in, "kept": len(kept),
                       "quarantined": n_q, "flagged": len(flagged_pos), "score": round(score, 1)})
        tables[name] = kept
        for c in t.columns:
            comp.append({"table": name, "column": c.name,
                         "present": c.name in (ta.raw.columns if ta.raw is not None else []),
                         "missing_share": float(kept[c.name].isna().mean()) if len(kept) else np.nan})
    counts_df = pd.DataFrame(counts)
    if len(counts_df):
        total_in = counts_df["input"].sum()
        overall = 100.0 * (1 - (counts_df["quarantined"].sum() + 0.5 * counts_df["flagged"].sum())
                           / total_in) if total_in else 100.0
        counts_df = pd.concat([counts_df, pd.DataFrame([{
            "table": "all", "source": "", "input": total_in, "kept": counts_df["kept"].sum(),
            "quarantined": counts_df["quarantined"].sum(), "flagged": counts_df["flagged"].sum(),
            "score": round(overall, 1)}])], ignore_index=True)
    quarantine = pd.DataFrame(q_rows, columns=QUARANTINE_COLUMNS).astype(
        {"row": "int64"} if q_rows else {})
    findings = pd.DataFrame(f_rows, columns=FINDING_COLUMNS)
    for frame in (quarantine, findings):  # one dtype whatever the rows: UTC instants
        frame["dated_at"] = pd.to_datetime(frame["dated_at"], utc=True).astype(f"datetime64[us, {timezone}]") \
            if len(frame) else pd.Series(dtype=f"datetime64[us, {timezone}]")
    return AuditResult(tables, quarantine, findings, counts_df, pd.DataFrame(comp), list(raw.notes) +
                       [n for rt in raw.tables.values() for n in rt.notes])
