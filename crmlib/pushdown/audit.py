"""The audit of a table, run inside the engine.

:func:`crmlib.audit.audit` checks a table row by row in pandas; for ``activities``,
``stage_history`` and ``orders`` of a large source the same checks run as Ibis
expressions where the data lies, and only what the audit reports leaves the engine: the
quarantined and flagged rows (a small share), the counts and the completeness. The
clean rows stay in the engine as an expression (:attr:`EngineAudit.kept`) that the
aggregations and the window of recent rows read.

The checks, their order (which decides the check a quarantined row is listed under) and
their reasons are those of :mod:`crmlib.audit`, so a large source and the same data read
whole give the same counts, the same quarantine and the same findings
(``tests/unit/test_engine_load.py``):

* quarantine: a Total/summary row, a missing key, a missing required value, a duplicated
  id (the first kept), a value outside the allowed set, a negative amount, a bad currency
  code, an event after the export was taken, a deal closed before it was created, closed
  without a close date or won at zero, a bulk-import copy (identical but for the id;
  without an id: the same row again), a stage missing from the pipeline definition, a
  lead submitted twice within minutes;
* flags (rows kept): references to rows that do not exist (orphans), malformed emails and
  phones, probable duplicate people and companies, open deals with a close date, stage
  history entered before the deal was created, and deals whose current stage is missing
  from their history.

The checks of the light tables (deals, leads, contacts, accounts, tickets) are here too
and give the pandas audit's results on the sample and on an export that breaks each of
them; :func:`crmlib.pushdown.source.read_large` still audits those tables in pandas (their
rows are needed there whole today).

The typed projection accepts typed columns only (what Parquet and databases hold):
timestamps as timestamps (timezone-aware, or naive in UTC), numbers as numbers. A column
that holds text where a timestamp or number belongs is one clear error: such an export
is read whole (``pushdown: false``) so that each value can be parsed and reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import ibis
import numpy as np
import pandas as pd

from ..audit import _LEGAL, FINDING_COLUMNS, QUARANTINE_COLUMNS, TOTAL_RE_STR, AuditResult, duplicate_flags
from ..errors import CrmConfigError, CrmDataError
from ..load import Mapping, map_columns
from ..schema import EMAIL_RE, PHONE_RE, TABLES, spec
from .backends import POSITION, quiet
from .expressions import EPOCH, micros, to_micros

__all__ = ["EngineAudit", "typed_table", "audit_in_engine", "merge_results"]

_FIRST = "_first"  # position of the first of a group of duplicates
_DATED = "_dated"  # the row's date (microseconds since the epoch), carried by the problems found in it


@dataclass
class EngineAudit:
    """One table audited in the engine."""

    table: str
    source: str
    kept: ibis.Table  # the clean rows: canonical columns + _pos
    counts: dict
    quarantine: pd.DataFrame
    findings: pd.DataFrame
    completeness: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    row_offset: int = 1  # the row a user finds a record at = _pos + row_offset


# ----------------------------------------------------------------------------- typed projection
def _source_columns(columns: list[str], table: str, m: Mapping, *, name: str) -> tuple[dict[str, str], list[str]]:
    """canonical column -> source column, by the rules of :func:`crmlib.load.map_columns`."""
    tm = m.tables.get(table)
    if tm is not None and (tm.values or tm.derive or tm.constants):
        raise CrmConfigError(f"{name}: value maps, derived and constant columns of {table} are not "
                             "available for a large source; map the values in the export, or read it "
                             "whole with `pushdown: false` in export.yaml")
    probe = pd.DataFrame([{c: c for c in columns}], dtype="str")
    mapped, notes = map_columns(probe, table, tm, name=name)
    return {canon: str(mapped.at[0, canon]) for canon in mapped.columns}, notes


def typed_table(raw: ibis.Table, table: str, m: Mapping, *, name: str) -> tuple[ibis.Table, dict[str, str], list[str]]:
    """The source table as typed canonical columns (+ ``_pos``), the way :func:`crmlib.load.coerce_table` types them.

    Text is stripped where the loader strips it, the export's missing markers
    (``na_values``) become missing, ids stay text. Returns (table, the source column of
    each canonical column present, notes).
    """
    t = spec(table)
    source_of, notes = _source_columns([c for c in raw.columns if c != POSITION], table, m, name=name)
    na = [str(v) for v in m.option(table, "na_values")]
    schema = raw.schema()
    cols = {}
    for c in t.columns:
        src = source_of.get(c.name)
        if src is None:
            cols[c.name] = _absent(c, m)
            continue
        v, typ = raw[src], schema[src]
        if c.kind in ("id", "ref", "text", "category", "currency"):
            cols[c.name] = _text(v, typ, c, na, name=name)
        elif c.kind == "timestamp":
            cols[c.name] = _timestamp(v, typ, c, m.option(table, "timezone"), name=name, table=table)
        elif c.kind in ("money", "float", "int"):
            if not typ.is_numeric():
                raise _typed_only(name, table, c.name, "a number", typ)
            cols[c.name] = v.cast("float64" if c.kind != "int" else "int64")
        elif c.kind == "bool":
            if not typ.is_boolean():
                raise _typed_only(name, table, c.name, "true/false", typ)
            cols[c.name] = v
    cols[POSITION] = raw[POSITION].cast("int64")
    return raw.select(**cols), source_of, notes


def _totals(raw: ibis.Table, no_key: ibis.Table) -> ibis.Table:
    """The rows without an id whose text reads like a "Total" line (only those can be one)."""
    text_cols = [c for c in raw.columns if c != POSITION and raw.schema()[c].is_string()]
    rows = _having(raw, POSITION, no_key)
    if not text_cols:
        return rows.filter(ibis.literal(False)).select(POSITION)
    return rows.filter(ibis.or_(*[rows[c].re_search(TOTAL_RE_STR).fill_null(False) for c in text_cols])) \
        .select(POSITION)


def _typed_only(name, table, col, what, typ) -> CrmDataError:
    return CrmDataError(
        f"{name}: column {col} of {table} is {typ} where {what} belongs; a large source is audited in "
        "the engine and needs typed columns (timestamps, numbers): export them typed, or read the "
        "export whole with `pushdown: false` in export.yaml", table=table, column=col, source=name)


def _absent(c, m: Mapping):
    if c.kind == "currency" and m.currency:
        return ibis.literal(str(m.currency), "string")
    typ = {"timestamp": "timestamp('UTC')", "money": "float64", "float": "float64", "int": "int64",
           "bool": "boolean"}.get(c.kind, "string")
    return ibis.null(typ)


def _having(rel: ibis.Table, col: str, other: ibis.Table) -> ibis.Table:
    """The rows of ``rel`` whose ``col`` occurs in ``other[col]`` (``IN (SELECT ...)``: every
    engine plans it as a semi-join; ibis' own semi-join is not valid PostgreSQL)."""
    return rel.filter(rel[col].isin(other[col]))


def _with_date(rel: ibis.Table) -> dict:
    """The row's date column to carry into a check's rows, when the table has one."""
    return {_DATED: rel[_DATED]} if _DATED in rel.columns else {}


def _sharing_hash(rel: ibis.Table, hashed) -> ibis.Table:
    """The rows of ``rel`` whose ``hashed`` value (a hash of the columns compared) another row
    shares: the candidates of a duplicate check, found by grouping integers instead of the
    rows' text (an inner join on the few shared hashes)."""
    with_hash = rel.mutate(_h=hashed)
    per_hash = with_hash.group_by("_h").agg(_n=with_hash.count())
    shared = per_hash.filter(per_hash._n > 1).select("_h")
    return with_hash.inner_join(shared, "_h").drop("_h")


def _lacking(rel: ibis.Table, col: str, other: ibis.Table) -> ibis.Table:
    """The rows of ``rel`` whose ``col`` does not occur in ``other[col]`` (no missing values there)."""
    return rel.filter(~rel[col].isin(other[col]))


def _strip(v):
    return v.strip()  # spaces, tabs, line breaks: what str.strip removes from ASCII text


def _text(v, typ, c, na: list[str], *, name: str):
    if typ.is_floating() and c.kind in ("id", "ref"):
        raise CrmDataError(f"{name}: {c.name} holds decimal numbers; ids must be text or whole numbers "
                           "in a large source", column=c.name, source=name)
    if not typ.is_string():
        return v.cast("string")
    if c.kind in ("id", "ref", "category", "currency"):  # stripped once, then compared
        s = _strip(v)
        s = ibis.ifelse(s.isin(na), ibis.null("string"), s) if na else s
        return s.upper() if c.kind == "currency" else s
    return ibis.ifelse(_strip(v).isin(na), ibis.null("string"), v) if na else v


def _timestamp(v, typ, c, source_tz: str, *, name: str, table: str):
    if not typ.is_timestamp():
        raise _typed_only(name, table, c.name, "a timestamp", typ)
    if typ.timezone is None and source_tz != "UTC":
        raise CrmDataError(
            f"{name}: column {c.name} of {table} holds timestamps without a timezone, local to "
            f"{source_tz}; a large source needs timezone-aware timestamps or UTC ones (set "
            "`timezone: UTC` in export.yaml if they are UTC)", table=table, column=c.name, source=name)
    return v.cast("timestamp('UTC')") if typ.timezone is None else v


# ----------------------------------------------------------------------------- checks
_PROBLEM = {"_seq": "int64", "column": "string", "check": "string", "value_s": "string", "value_f": "float64",
            _FIRST: "int64", "first_key": "string"}


def _problem(rel: ibis.Table, *, seq: int, column: str, check: str, value_s=None, value_f=None, first=None,
             first_key=None) -> ibis.Table:
    """Rows of ``rel`` as problems: _pos, _seq, column, check and what the reason quotes."""
    lit = ibis.literal
    return rel.select(
        POSITION,
        _seq=lit(seq, "int64"), column=lit(column, "string"), check=lit(check, "string"),
        value_s=(value_s.cast("string") if value_s is not None else ibis.null("string")),
        value_f=(value_f.cast("float64") if value_f is not None else ibis.null("float64")),
        **{_FIRST: (first.cast("int64") if first is not None else ibis.null("int64"))},
        first_key=(first_key.cast("string") if first_key is not None else ibis.null("string")),
        **_with_date(rel),
    )


def _row_problems(t: ibis.Table, table: str, raw: ibis.Table, *, extracted_us: int,
                  dialect: str | None = None) -> list[ibis.Table]:
    """The checks of :func:`crmlib.audit._row_checks` before the bulk duplicates, in its order."""
    s = spec(table)
    out = []
    if s.key:
        no_key = t.filter(t[s.key].isnull())
        totals = _totals(raw, no_key.select(POSITION))
        out.append(_problem(_having(no_key, POSITION, totals), seq=10, column=s.key, check="summary_row"))
        out.append(_problem(_lacking(no_key, POSITION, totals), seq=11, column=s.key, check="missing_key"))
    for i, c in enumerate(s.columns):
        base = 100 + 10 * i
        if not c.nullable and c.name != s.key:
            out.append(_problem(t.filter(t[c.name].isnull()), seq=base, column=c.name, check="missing_value"))
        if c.kind == "id":  # every occurrence after the first, grouped by the id itself (100M ids in
            ids = t.filter(t[c.name].notnull())  # DuckDB: 19.5 s, where a hash first took 34 s)
            per_id = ids.group_by(c.name).agg(_n=ids.count(), **{_FIRST: ids[POSITION].min()})
            again = per_id.filter(per_id._n > 1).select(c.name, _FIRST)
            d = ids.inner_join(again, c.name)
            d = d.filter(d[POSITION] > d[_FIRST])
            out.append(_problem(d, seq=base + 1, column=c.name, check="duplicate_id", value_s=d[c.name],
                                first=d[_FIRST]))
        if c.allowed:
            bad = t.filter(t[c.name].notnull() & ~t[c.name].isin(list(c.allowed)))
            out.append(_problem(bad, seq=base + 2, column=c.name, check="not_allowed", value_s=bad[c.name]))
        if c.kind == "money":
            bad = t.filter(t[c.name] < 0)
            out.append(_problem(bad, seq=base + 3, column=c.name, check="negative_amount", value_f=bad[c.name]))
        if c.kind == "currency":
            bad = t.filter(t[c.name].notnull() & ~t[c.name].re_search(r"^[A-Z]{3}$"))
            out.append(_problem(bad, seq=base + 4, column=c.name, check="bad_currency", value_s=bad[c.name]))
    for j, col in enumerate(s.event_time_columns):
        bad = t.filter(micros(t[col], dialect) > extracted_us)
        out.append(_problem(bad, seq=500 + j, column=col, check="future_date", value_f=micros(bad[col], dialect)))
    if table == "deals":
        early = t.filter(micros(t.closed_at, dialect) < micros(t.created_at, dialect))
        out.append(_problem(early, seq=600, column="closed_at", check="close_before_create"))
        open_end = t.filter(t.status.isin(["won", "lost"]) & t.closed_at.isnull())
        out.append(_problem(open_end, seq=601, column="closed_at", check="won_without_close_date",
                            value_s=open_end.status))
        zero = t.filter((t.status == "won") & (t.amount == 0))
        out.append(_problem(zero, seq=602, column="amount", check="zero_amount_won"))
    return out


def _normalised(v, kind: str):
    """:func:`crmlib.audit._normalise_contact` in the engine: an email trimmed and lower-cased; a
    phone's last nine digits (missing with fewer than seven)."""
    if kind == "email":
        return _strip(v).lower()
    digits = v.re_replace(r"\D", "")
    return ibis.ifelse(digits.length() >= 7, digits.right(9), ibis.null("string"))


def _double_submissions(t: ibis.Table, bad_pos: ibis.Table, fetch, *, minutes: float,
                        dialect: str | None = None) -> pd.DataFrame:
    """Leads with the same email (then phone) and company as one created at most ``minutes``
    before (:func:`crmlib.audit._double_submissions`); a lead found by its email is not listed
    again for its phone."""
    alive = _lacking(t, POSITION, bad_pos)
    found = []
    for seq, col in ((950, "email"), (951, "phone")):
        rel = alive.select(POSITION, _p=_normalised(alive[col], col),
                           _c=_strip(alive.company.fill_null("")).lower(), _t=micros(alive.created_at, dialect),
                           **_with_date(alive))
        rel = rel.filter(rel._p.notnull())
        w = ibis.window(group_by=[rel._p, rel._c], order_by=[rel._t, rel[POSITION]])
        rel = rel.mutate(_gap=(rel._t - rel._t.lag().over(w)).cast("float64") / 60e6)
        hits = rel.filter(rel._gap <= float(minutes))
        found.append(fetch([_problem(hits, seq=seq, column=col, check="double_submission", value_f=hits._gap)]))
    email, phone = found
    return pd.concat([email, phone.loc[~phone[POSITION].isin(email[POSITION])]], ignore_index=True)


def _bulk_problems(t: ibis.Table, table: str, bad_pos: ibis.Table, *, hashable: bool = True,
                   present: list[str] | None = None, positions=lambda rel: rel) -> ibis.Table:
    """Rows identical in every column but the id to an earlier row (:func:`crmlib.audit._bulk_duplicates`):
    informative ones only, with at least half of the columns the export has filled (and with
    an id, at least four)."""
    s = spec(table)
    others = [c for c in s.column_names if c != s.key]
    present = [c for c in others if present is None or c in present] or others
    filled = sum(ibis.ifelse(t[c].notnull(), 1, 0) for c in present)
    cand = _lacking(t.filter(filled >= max(4 if s.key else 2, len(present) // 2)), POSITION, bad_pos)
    if hashable:  # rows sharing a hash of their content first (cheap), then the exact comparison
        # ``positions`` may bring the (few) candidates' positions out of the engine before the
        # window compares them: over 100M rows DuckDB took 75-80 s for the window over the
        # join (or a table made of it), 22 s for the positions + 5 s for the window
        shared = _sharing_hash(cand, ibis.struct({c: cand[c] for c in others}).hash()).select(POSITION)
        cand = _having(t, POSITION, positions(shared))
    w = ibis.window(group_by=[cand[c] for c in others], order_by=cand[POSITION])
    extra = {_FIRST: cand[POSITION].first().over(w)}
    if s.key:
        extra["_first_key"] = cand[s.key].first().over(w)
    d = cand.mutate(_n=ibis.row_number().over(w), **extra)
    d = d.filter(d._n > 0)
    if s.key:
        return _problem(d, seq=800, column=s.key, check="bulk_duplicate", first=d[_FIRST],
                        first_key=d["_first_key"])
    return _problem(d, seq=800, column=others[0], check="duplicate_id", first=d[_FIRST])


def _reason(table: str, p, row_offset: int, extracted_at: pd.Timestamp, tz: str) -> str:
    """The reason :mod:`crmlib.audit` gives for one problem (``p``: a row of the problems frame, as a dict)."""
    s = spec(table)
    col, check = p["column"], p["check"]
    if check == "summary_row":
        return "a Total/summary row, not a record (sums would count it twice)"
    if check == "missing_key":
        return f"{s.key} is empty"
    if check == "missing_value":
        return f"{col} is empty but required"
    if check == "duplicate_id" and s.key:
        return f"{col} {p['value_s']} appears earlier (row {int(p['_first']) + row_offset}, kept)"
    if check == "duplicate_id":
        return "the same row appears earlier"
    if check == "not_allowed":
        return f"{col} {str(p['value_s'])[:60]!r} is not one of {'/'.join(s.column(col).allowed or ())}"
    if check == "negative_amount":
        return f"{col} {p['value_f']} is negative"
    if check == "bad_currency":
        return f"{col} {str(p['value_s'])[:20]!r} is not a 3-letter currency code"
    if check == "future_date":
        v = (EPOCH + pd.Timedelta(microseconds=int(p['value_f']))).tz_convert(tz)
        return f"{col} {v:%Y-%m-%d %H:%M} is after the export was taken ({extracted_at:%Y-%m-%d %H:%M})"
    if check == "bulk_duplicate":
        return (f"identical to {s.key} {p['first_key']} (row {int(p['_first']) + row_offset}) except its id")
    if check == "unknown_stage":
        return f"stage {str(p['value_s'])[:60]!r} is not in the pipeline definition (stages)"
    if check == "close_before_create":
        return "closed_at is before created_at"
    if check == "won_without_close_date":
        return f"status {p['value_s']} but closed_at is empty"
    if check == "zero_amount_won":
        return "won deal with amount 0"
    if check == "double_submission":
        return f"same {col} and company as a lead {p['value_f']:.0f} min earlier"
    return f"{col}: {check}"


# ----------------------------------------------------------------------------- the audit
def audit_in_engine(con, raw: ibis.Table, table: str, *, source: str, mapping: Mapping, light: AuditResult,
                timezone: str, extracted_at: pd.Timestamp, row_offset: int = 1,
                double_submission_minutes: float = 10.0, engine: dict[str, "EngineAudit"] | None = None) -> EngineAudit:
    """Audit one table in the engine (``raw``: the source table with ``_pos``).

    ``light`` is the audit of the tables read into pandas and ``engine`` the tables already
    audited in the engine: their kept keys decide the orphans, the kept stages the unknown
    stages, the kept deals the stage history entered before its deal. Returns a
    :class:`EngineAudit` whose ``kept`` stays in the engine.
    """
    engine = engine or {}
    t, source_of, notes = typed_table(raw, table, mapping, name=source)
    s = spec(table)
    dated = s.dated_by
    if dated:  # each problem and flag takes its row's date from here, not from a join back to the table
        t = t.mutate(**{_DATED: micros(t[dated], con.name)})
    t = _materialise(con, t, f"typed_{table}")
    hashable = con.name in ("duckdb", "pyspark")  # ibis has no hash for PostgreSQL

    def fetch(problems: list[ibis.Table]) -> pd.DataFrame:
        return _execute_each(con, problems)

    # each group of checks runs once and only its (few) rows come back: the bulk-duplicate
    # check needs the rows found so far, the stage check the kept stages
    pf = fetch(_row_problems(t, table, raw, extracted_us=to_micros(extracted_at), dialect=con.name))
    bad_pos = ibis.memtable(pd.DataFrame({POSITION: pf[POSITION].drop_duplicates().astype("int64").to_numpy()}))
    parts = [pf, fetch([_bulk_problems(t, table, bad_pos, hashable=hashable, present=list(source_of),
                                       positions=lambda rel: ibis.memtable(fetch([rel])))])]
    if table in ("deals", "stage_history") and "stages" in light.tables:
        known = ibis.memtable(pd.DataFrame({"stage": light.tables["stages"]["stage"].dropna().astype(str)
                                            .drop_duplicates().to_numpy()}))
        bad = _lacking(t.filter(t.stage.notnull()), "stage", known)
        parts.append(fetch([_problem(bad, seq=900, column="stage", check="unknown_stage", value_s=bad.stage)]))
    if table == "leads":
        so_far = pd.concat([p for p in parts if len(p)] or [pf], ignore_index=True)
        bad_pos = ibis.memtable(pd.DataFrame({POSITION: so_far[POSITION].drop_duplicates().astype("int64")
                                             .to_numpy()}))
        parts.append(_double_submissions(t, bad_pos, fetch, minutes=double_submission_minutes,
                                         dialect=con.name))
    pf = pd.concat([p for p in parts if len(p)] or [pf], ignore_index=True)
    pf = pf.sort_values(["_pos", "_seq"], kind="stable").reset_index(drop=True)
    q_pos = pd.DataFrame({POSITION: pf[POSITION].drop_duplicates().astype("int64").to_numpy()})
    q_mem = ibis.memtable(q_pos)
    kept = _lacking(t, POSITION, q_mem) if len(q_pos) else t
    n_in = int(_scalar(con, t.count()))

    quarantine = _quarantine_frame(con, table, source, pf, raw, t, row_offset, extracted_at, timezone,
                                   source_of)
    flags = _flags(kept, table, _kept_keys(light, engine), _deals_created(light, engine, con.name),
                   dialect=con.name)
    if flags:
        ff = _execute_each(con, flags)
        ff = ff.sort_values(["_seq", "_pos"], kind="stable").reset_index(drop=True)
    else:
        ff = pd.DataFrame(columns=["_pos", "_seq", "column", "check", "value_s", "key", "_dated"])
    if table in ("contacts", "leads", "accounts"):
        dup = _duplicate_contacts(con, kept, table)
        if len(dup):
            ff = pd.concat([f for f in (ff, dup) if len(f)], ignore_index=True)
    findings = _findings_frame(table, source, ff, row_offset, timezone)
    n_q = len(q_pos)
    n_flagged = int(ff[POSITION].nunique()) if len(ff) else 0
    counts = _counts_row(table, source, n_in, n_q, n_flagged)
    completeness = _completeness(con, kept, table, list(source_of), n_in - n_q)
    return EngineAudit(table, source, kept, counts, quarantine, findings, completeness, notes, row_offset)


def _materialise(con, expr: ibis.Table, name: str) -> ibis.Table:
    """``expr`` written once into a DuckDB table (compressed, spilled to disk beyond the memory
    limit), so the dozen checks and aggregations that read it do not type every row again.
    Other engines keep the expression: they plan it as they see fit."""
    if con.name != "duckdb":
        return expr
    with quiet():
        return con.create_table(name, expr, overwrite=True)


def _execute_each(con, rels: list[ibis.Table]) -> pd.DataFrame:
    """The rows of several checks (same columns), each query run on its own: as one UNION,
    DuckDB materialises a relation the checks share (the kept rows) whole first; the four
    orphan checks of 100M activities took 57 s that way, 21 s one by one."""
    with quiet():
        frames = [con.execute(rel) for rel in rels]
    found = [f for f in frames if len(f)]
    return pd.concat(found, ignore_index=True) if found else frames[0]


def _scalar(con, expr):
    with quiet():
        return con.execute(expr)


def _counts_row(table: str, source: str, n_in: int, n_q: int, n_flagged: int) -> dict:
    score = 100.0 * (1 - (n_q + 0.5 * n_flagged) / n_in) if n_in else 100.0
    return {"table": table, "source": source, "input": n_in, "kept": n_in - n_q, "quarantined": n_q,
            "flagged": n_flagged, "score": round(score, 1)}


def _dated(us, tz: str):
    if us is None or pd.isna(us):
        return pd.NaT
    return (EPOCH + pd.Timedelta(microseconds=int(us))).tz_convert(tz)


def _quarantine_frame(con, table, source, pf, raw, t, row_offset, extracted_at, tz, record_columns):
    s = spec(table)
    if not len(pf):
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    positions = pf[POSITION].drop_duplicates().astype("int64")
    keys = _fetch_at(con, t.select(POSITION, _key=t[s.key]) if s.key else t.select(POSITION), positions)
    records = _records(con, raw, positions, record_columns)
    rows = []
    for pos, group in pf.groupby(POSITION, sort=True):
        first = group.iloc[0]
        reasons = [_reason(table, p, row_offset, extracted_at, tz) for p in group.to_dict("records")]
        key = keys.get(pos) if s.key else None
        row = {"table": table, "source": source, "row": int(pos) + row_offset,
               "key": None if key is None or pd.isna(key) else str(key), "column": first["column"],
               "check": first["check"], "reason": "; ".join(dict.fromkeys(reasons)),
               "record": records.get(int(pos), "{}"),
               "dated_at": _dated(first["_dated"], tz) if "_dated" in group.columns else pd.NaT}
        rows.append({c: row.get(c) for c in QUARANTINE_COLUMNS})
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)


def _fetch_at(con, rel: ibis.Table, positions: pd.Series) -> dict:
    """{_pos: value} of the second column of ``rel`` at ``positions``."""
    if len(rel.columns) < 2:
        return {}
    at = rel.inner_join(ibis.memtable(pd.DataFrame({POSITION: positions.to_numpy()})), POSITION)
    with quiet():
        df = con.execute(at)
    return dict(zip(df[POSITION].astype("int64"), df[rel.columns[1]]))


def _records(con, raw: ibis.Table, positions: pd.Series, record_columns: dict[str, str] | None) -> dict[int, str]:
    """The quarantined rows as the source holds them (JSON of their values as text), like :func:`crmlib.audit._record_json`."""
    at = raw.inner_join(ibis.memtable(pd.DataFrame({POSITION: positions.to_numpy()})), POSITION)
    with quiet():
        frame = at.to_pyarrow().to_pandas()
    out = {}
    cols = record_columns or {c: c for c in raw.columns if c != POSITION}
    for rec in frame.to_dict("records"):
        out[int(rec[POSITION])] = json.dumps(
            {canon: (None if pd.isna(rec[src]) else str(rec[src])) for canon, src in cols.items()},
            ensure_ascii=False, default=str)
    return out


def _kept_keys(light: AuditResult, engine: dict[str, EngineAudit]) -> dict[str, ibis.Table]:
    """The kept keys of every audited table with a key, as one-column tables (named by the key)."""
    keys = {}
    for target, df in light.tables.items():
        key = spec(target).key
        if key:
            with quiet():
                keys[target] = ibis.memtable(pd.DataFrame({key: df[key].dropna().astype(str).drop_duplicates()
                                                           .to_numpy()}))
    for target, h in engine.items():
        key = spec(target).key
        if key:
            keys[target] = h.kept.filter(h.kept[key].notnull()).select(key)
    return keys


def _deals_created(light: AuditResult, engine: dict[str, EngineAudit], dialect: str | None) -> ibis.Table | None:
    """deal_id and ``_created_us`` (creation in microseconds) of the kept deals."""
    if "deals" in engine:
        kept = engine["deals"].kept
        kept = kept.filter(kept.created_at.notnull())
        return kept.select("deal_id", _created_us=micros(kept.created_at, dialect))
    if "deals" not in light.tables:
        return None
    deals = light.tables["deals"]
    created = pd.DataFrame({"deal_id": deals["deal_id"].astype(str).to_numpy(),
                            "_created_us": ((deals["created_at"].dt.tz_convert("UTC") - EPOCH)
                                            // pd.Timedelta(microseconds=1)).to_numpy()})
    return ibis.memtable(created.dropna())


def _flags(kept: ibis.Table, table: str, keys: dict[str, ibis.Table], deals: ibis.Table | None, *,
           dialect: str | None = None) -> list[ibis.Table]:
    """The flag checks of :func:`crmlib.audit._flag_checks` and ``_history_checks`` on the kept rows
    (``keys``: the kept keys of each table; ``deals``: the kept deals' creation times)."""
    s = spec(table)
    out = []

    def flag(rel, seq, column, check, value_s=None):
        return rel.select(POSITION, _seq=ibis.literal(seq, "int64"), column=ibis.literal(column),
                          check=ibis.literal(check),
                          value_s=value_s.cast("string") if value_s is not None else ibis.null("string"),
                          key=rel[s.key].cast("string") if s.key else ibis.null("string"),
                          target=ibis.null("string"), **_with_date(rel))

    if table == "deals":
        out.append(flag(kept.filter((kept.status == "open") & kept.closed_at.notnull()), 10, "closed_at",
                        "open_with_close_date"))
    for seq, col, pattern in ((20, "email", EMAIL_RE), (30, "phone", PHONE_RE)):
        if col in kept.columns:
            bad = kept.filter(kept[col].notnull() & ~_strip(kept[col]).re_search(pattern))
            out.append(flag(bad, seq, col, f"invalid_{col}", bad[col]))
    for i, c in enumerate(s.columns):
        if c.kind != "ref" or not c.refers_to:
            continue
        target, target_col = c.refers_to.split(".")
        if target not in keys:
            continue
        known = keys[target].select(**{c.name: keys[target][spec(target).key]})
        bad = _lacking(kept.filter(kept[c.name].notnull()), c.name, known)
        out.append(bad.select(POSITION, _seq=ibis.literal(100 + i, "int64"), column=ibis.literal(c.name),
                              check=ibis.literal("orphan"), value_s=bad[c.name], key=(bad[s.key] if s.key
                                                                                      else ibis.null("string")),
                              target=ibis.literal(target), **_with_date(bad)))
    if table == "stage_history" and deals is not None:
        j = kept.inner_join(deals, "deal_id")
        early = j.filter(micros(j.entered_at, dialect) < j._created_us - 60 * 1_000_000)
        out.append(early.select(POSITION, _seq=ibis.literal(1000, "int64"), column=ibis.literal("entered_at"),
                                check=ibis.literal("history_out_of_order"), value_s=ibis.null("string"),
                                key=ibis.null("string"), target=ibis.null("string"), **_with_date(early)))
    return out


def _normalised_company(v, dialect: str | None = None):
    """:func:`crmlib.audit._normalise_company` in the engine (PostgreSQL spells a word boundary ``\\y``)."""
    legal = _LEGAL.replace(r"\b", r"\y") if dialect == "postgres" else _LEGAL
    out = v.lower().replace("&", " and ").re_replace(legal, " ").re_replace(r"[^a-z0-9]+", "")
    return ibis.ifelse(out.length() > 0, out, ibis.null("string"))


def _duplicate_contacts(con, kept: ibis.Table, table: str) -> pd.DataFrame:
    """Probable duplicates among the kept rows (:func:`crmlib.audit._flag_duplicates`): the same
    normalised email, phone or (accounts) company name. Only the rows of such groups leave the
    engine; a row is listed once, under the first value it shares."""
    key = spec(table).key
    kinds = [c for c in ("email", "phone") if c in kept.columns] + (["name"] if table == "accounts" else [])
    flagged: set[int] = set()
    rows = []
    for col in kinds:
        norm = _normalised_company(kept[col], con.name) if col == "name" else _normalised(kept[col], col)
        rel = kept.select(POSITION, _key=kept[key].cast("string"), _n=norm,
                          **_with_date(kept))
        rel = rel.filter(rel._n.notnull())
        per = rel.group_by("_n").agg(_k=rel.count())
        rel = rel.inner_join(per.filter(per._k > 1), "_n")
        with quiet():
            got = con.execute(rel)
        if not len(got):
            continue
        got = got.sort_values([POSITION], kind="stable")
        got[POSITION] = got[POSITION].astype("int64")
        members = (list(zip(g[POSITION], g["_key"].astype(str))) for _, g in got.groupby("_n", sort=True))
        at = got.set_index(POSITION)
        for pos, reason in duplicate_flags(col, members, flagged):
            rows.append({POSITION: pos, "_seq": 2000, "column": col, "check": "duplicate_contact",
                         "value_s": reason, "key": at.at[pos, "_key"], "target": None,
                         "_dated": at.at[pos, "_dated"] if "_dated" in at.columns else None})
    return pd.DataFrame(rows)


def _findings_frame(table, source, ff, row_offset, tz) -> pd.DataFrame:
    if not len(ff):
        return pd.DataFrame(columns=FINDING_COLUMNS)
    rows = []
    for f in ff.to_dict("records"):
        check = f["check"]
        if check == "orphan":
            reason = f"{f['column']} {str(f['value_s'])[:40]} does not exist in {f['target']}"
        elif check == "invalid_email":
            reason = f"email {str(f['value_s'])[:60]!r} is malformed"
        elif check == "invalid_phone":
            reason = f"phone {str(f['value_s'])[:40]!r} is malformed"
        elif check == "open_with_close_date":
            reason = "status open but closed_at is set"
        elif check == "duplicate_contact":
            reason = f["value_s"]  # written whole by _duplicate_contacts
        else:
            reason = "entered a stage before the deal was created"
        key = f["key"]
        row = {"table": table, "source": source, "row": int(f[POSITION]) + row_offset,
               "key": None if key is None or pd.isna(key) else str(key), "column": f["column"],
               "check": f["check"], "reason": reason, "dated_at": _dated(f.get("_dated"), tz)}
        rows.append({c: row.get(c) for c in FINDING_COLUMNS})
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def _completeness(con, kept: ibis.Table, table: str, present: list[str], n_kept: int) -> pd.DataFrame:
    s = spec(table)
    if n_kept:
        with quiet():
            shares = con.execute(kept.aggregate(**{c.name: ibis.ifelse(kept[c.name].isnull(), 1.0, 0.0).mean()
                                                   for c in s.columns}))
        share = {c: float(shares[c].iloc[0]) for c in s.column_names}
    else:
        share = {c: np.nan for c in s.column_names}
    return pd.DataFrame([{"table": table, "column": c, "present": c in present, "missing_share": share[c]}
                         for c in s.column_names])


def history_missing_current_stage(con, kept_history: ibis.Table, deals: pd.DataFrame) -> pd.Series:
    """Kept deals (by position) that have history but whose current stage never appears in it."""
    pairs = kept_history.select("deal_id", "stage").distinct()
    with_history = kept_history.select("deal_id").distinct()
    d = pd.DataFrame({"deal_id": deals["deal_id"].astype(str).to_numpy(),
                      "stage": deals["stage"].astype(str).to_numpy(), "_i": np.arange(len(deals))})
    d = d.loc[deals["stage"].notna().to_numpy()]
    dm = ibis.memtable(d)
    dm = _having(dm, "deal_id", with_history)
    paired = dm.left_join(pairs.mutate(_seen=ibis.literal(True)), ["deal_id", "stage"])
    missing = paired.filter(paired._seen.isnull())
    with quiet():
        idx = con.execute(missing.select("_i"))["_i"].astype("int64")
    return pd.Series(np.isin(np.arange(len(deals)), idx.to_numpy()), index=deals.index)


def flag_missing_current_stage(con, deals: EngineAudit, kept_history: ibis.Table, timezone: str) -> None:
    """Flag the deals audited in the engine that have history but whose current stage never
    appears in it (:func:`history_missing_current_stage` for deals that stay in the engine):
    their findings and flagged count grow in place."""
    kept = deals.kept
    pairs = kept_history.select("deal_id", "stage").distinct().mutate(_seen=ibis.literal(True))
    with_history = kept_history.select("deal_id").distinct()
    d = _having(kept.filter(kept.stage.notnull()), "deal_id", with_history)
    paired = d.left_join(pairs, ["deal_id", "stage"])
    missing = paired.filter(paired._seen.isnull())
    dated = spec("deals").dated_by
    with quiet():
        got = con.execute(missing.select(POSITION, "deal_id",
                                         _dated=micros(missing[dated], con.name) if dated else ibis.null("int64")))
    if not len(got):
        return
    got = got.sort_values(POSITION, kind="stable")
    extra = pd.DataFrame([{
        "table": "deals", "source": deals.source, "row": int(r[POSITION]) + deals.row_offset, "key": str(r["deal_id"]),
        "column": "stage", "check": "history_missing_current_stage",
        "reason": "the current stage never appears in its history", "dated_at": _dated(r["_dated"], timezone),
    } for r in got.to_dict("records")], columns=FINDING_COLUMNS)
    already = set(deals.findings["row"].astype("int64")) if len(deals.findings) else set()
    new_rows = set(extra["row"].astype("int64")) - already
    deals.findings = pd.concat([f for f in (deals.findings, extra) if len(f)], ignore_index=True)
    c = deals.counts
    deals.counts = _counts_row("deals", c["source"], c["input"], c["quarantined"], c["flagged"] + len(new_rows))


# ----------------------------------------------------------------------------- merging
def merge_results(light: AuditResult, engine: dict[str, EngineAudit], *, deal_flags: pd.Series | None,
                  deals_source: str | None, deals_rows: np.ndarray | None, timezone: str) -> AuditResult:
    """The audit of the whole export: the pandas audit's result with the engine tables' counts, quarantine,
    findings and completeness, and the deals flagged for their history, in the tables' order."""
    counts = light.counts.loc[light.counts["table"] != "all"].to_dict("records")
    findings = [light.findings]
    if deal_flags is not None and deal_flags.any():
        deals = light.tables["deals"]
        flagged = deals.loc[deal_flags.to_numpy()]
        dated = spec("deals").dated_by
        extra = pd.DataFrame([{
            "table": "deals", "source": deals_source, "row": int(deals_rows[i]), "key": str(k),
            "column": "stage", "check": "history_missing_current_stage",
            "reason": "the current stage never appears in its history",
            "dated_at": flagged[dated].iloc[j] if dated else pd.NaT,
        } for j, (i, k) in enumerate(zip(np.flatnonzero(deal_flags.to_numpy()), flagged["deal_id"]))],
            columns=FINDING_COLUMNS)
        already = set(light.findings.loc[light.findings["table"] == "deals", "row"].astype("int64"))
        new_rows = set(extra["row"].astype("int64")) - already
        for row in counts:
            if row["table"] == "deals":
                row["flagged"] += len(new_rows)
                row["score"] = round(100.0 * (1 - (row["quarantined"] + 0.5 * row["flagged"]) / row["input"]), 1) \
                    if row["input"] else 100.0
        findings.append(extra)
    counts += [h.counts for h in engine.values()]
    order = {name: i for i, name in enumerate(TABLES)}
    counts.sort(key=lambda r: order[r["table"]])
    counts_df = pd.DataFrame(counts)
    total_in = counts_df["input"].sum()
    overall = 100.0 * (1 - (counts_df["quarantined"].sum() + 0.5 * counts_df["flagged"].sum()) / total_in) \
        if total_in else 100.0
    counts_df = pd.concat([counts_df, pd.DataFrame([{
        "table": "all", "source": "", "input": total_in, "kept": counts_df["kept"].sum(),
        "quarantined": counts_df["quarantined"].sum(), "flagged": counts_df["flagged"].sum(),
        "score": round(overall, 1)}])], ignore_index=True)

    def ordered(frames: list[pd.DataFrame], columns) -> pd.DataFrame:
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=columns)
        out = pd.concat(frames, ignore_index=True)
        out["_t"] = out["table"].map(order)
        out = out.sort_values(["_t"], kind="stable").drop(columns="_t")
        # built from records as crmlib.audit builds it, so every column gets the same dtype
        return pd.DataFrame(out.to_dict("records"), columns=columns)

    quarantine = ordered([light.quarantine] + [h.quarantine for h in engine.values()], QUARANTINE_COLUMNS)
    findings_df = ordered(findings + [h.findings for h in engine.values()], FINDING_COLUMNS)
    for frame in (quarantine, findings_df):
        if "dated_at" in frame.columns:
            frame["dated_at"] = pd.to_datetime(frame["dated_at"], utc=True).astype(f"datetime64[us, {timezone}]") \
                if len(frame) else pd.Series(dtype=f"datetime64[us, {timezone}]")
    if "row" in quarantine.columns and len(quarantine):
        quarantine["row"] = quarantine["row"].astype("int64")
    completeness = pd.concat([light.completeness] + [h.completeness for h in engine.values()], ignore_index=True)
    completeness["_t"] = completeness["table"].map(order)
    completeness = completeness.sort_values("_t", kind="stable").drop(columns="_t").reset_index(drop=True)
    notes = list(light.notes) + [n for h in engine.values() for n in h.notes]
    return AuditResult(dict(light.tables), quarantine, findings_df, counts_df, completeness, notes)
