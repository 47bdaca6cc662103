"""Look at an export folder and say how to read it (``crm-reports inspect DIR``).

Only the header (and the first few rows, to find a header below title rows) of each
file is read. Every mapping preset (``crmlib/presets/*.yaml``) and the canonical format
itself are scored by the share of headers they recognise: mapped to a canonical column,
or known to the preset as a vendor field with no use here. The best one that maps a
deals table is suggested; when none recognises at least half of the headers, a starter
``export.yaml`` is drafted from the headers that match a canonical column by their
normalised name or a common synonym. Either way, the columns left unmapped are listed
per file, so a user sees what the reports will not read.
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import CrmConfigError, CrmDataError
from .load import (FILE_SUFFIXES, META_FILES, Mapping, TableMapping, _find_files,
                   _find_header_row, _norm, _sniff_delimiter, _strip_suffix, decode_bytes, is_ignored,
                   preset_names, read_mapping)
from .schema import TABLES, spec

#: a preset fits when it recognises at least this share of the headers (and maps deals)
FIT_SHARE = 0.5
#: bytes read from the start of a text file: enough for a header and a few rows
HEAD_BYTES = 64 * 1024
#: rows read after the header (to find a header under title rows)
HEAD_ROWS = 5
CANONICAL = "canonical"

#: other names of canonical columns (normalised), for a starter mapping of an unknown export
SYNONYMS: dict[str, tuple[str, ...]] = {
    "deal_id": ("id", "deal_id", "opportunity_id", "record_id", "deal_number", "opp_id", "opp_number",
                "opportunity_number", "number"),
    "account_id": ("account_id", "company_id", "organization_id", "organisation_id", "customer_id", "org_id"),
    "contact_id": ("id", "contact_id", "person_id", "record_id"),
    "lead_id": ("id", "lead_id", "record_id"),
    "activity_id": ("id", "activity_id", "task_id", "event_id", "engagement_id"),
    "ticket_id": ("id", "ticket_id", "case_id", "case_number", "ticket_number"),
    "user_id": ("id", "user_id", "owner_id", "employee_id"),
    "campaign_id": ("id", "campaign_id"),
    "order_id": ("id", "order_id", "invoice_id", "line_id"),
    "owner_id": ("owner", "owner_id", "deal_owner", "assigned_to", "user", "sales_rep", "rep", "salesperson"),
    "agent_id": ("agent", "agent_id", "owner", "assignee", "assigned_to"),
    "name": ("name", "title", "deal_name", "opportunity_name", "company_name", "full_name", "subject"),
    "stage": ("stage", "deal_stage", "stage_name", "pipeline_stage", "sales_stage"),
    "status": ("status", "deal_status", "state", "ticket_status", "lead_status"),
    "amount": ("amount", "value", "deal_value", "deal_amount", "revenue", "deal_size", "price"),
    "revenue": ("revenue", "amount", "total", "line_total", "net_amount"),
    "currency": ("currency", "currency_code", "currency_iso_code", "curr"),
    "source": ("source", "lead_source", "origin", "channel", "source_channel", "original_source"),
    "created_at": ("created", "created_at", "created_date", "create_date", "date_created", "add_time",
                   "created_on", "creation_date", "deal_created", "opened", "date_opened"),
    "closed_at": ("closed", "closed_at", "close_date", "closed_date", "closed_on", "deal_closed_on",
                  "close_time", "date_closed"),
    "expected_close_at": ("expected_close_date", "expected_close", "forecast_close_date"),
    "resolved_at": ("resolved", "resolved_at", "closed_date", "close_date", "date_closed", "solved_at"),
    "lost_reason": ("lost_reason", "loss_reason", "reason_lost", "closed_lost_reason"),
    "pipeline": ("pipeline", "funnel", "sales_pipeline"),
    "entered_at": ("entered_at", "changed_at", "date", "timestamp", "created_date"),
    "type": ("type", "activity_type", "kind"),
    "due_at": ("due", "due_date", "due_at", "activity_date", "start"),
    "completed_at": ("completed", "completed_at", "done_at", "marked_as_done_time", "completion_date"),
    "email": ("email", "e_mail", "email_address"),
    "phone": ("phone", "phone_number", "telephone", "mobile"),
    "industry": ("industry", "sector"),
    "ordered_at": ("ordered_at", "order_date", "date", "invoice_date"),
}

#: words in a file name that say which canonical table it holds
TABLE_WORDS: dict[str, tuple[str, ...]] = {
    "stage_history": ("history", "stage_change", "stagechange", "changelog"),
    "deals": ("deal", "opportunit", "opps", "opp_"),
    "accounts": ("account", "compan", "organi", "customer"),
    "contacts": ("contact", "people", "person"),
    "leads": ("lead",),
    "activities": ("activit", "task", "event", "engagement", "call", "meeting"),
    "tickets": ("ticket", "case"),
    "users": ("user", "owner", "employee"),
    "campaigns": ("campaign",),
    "orders": ("order", "invoice", "sale"),
    "stages": ("stage",),
    "surveys": ("survey", "nps", "csat"),
    "targets": ("target", "quota", "goal"),
    "fx_rates": ("fx", "exchange", "rate"),
}


@dataclass(frozen=True)
class FileHeaders:
    """The header of one file (and how many rows after it were looked at)."""

    name: str
    headers: tuple[str, ...]
    rows_seen: int
    note: str = ""


@dataclass(frozen=True)
class FileMatch:
    """How one mapping reads one file."""

    file: str
    tables: tuple[str, ...]  # the canonical tables the mapping reads from this file
    mapped: dict[str, str]  # header -> "table.column"
    known: tuple[str, ...]  # headers the mapping knows and does not use
    unknown: tuple[str, ...]  # headers no table of the mapping reads or knows


@dataclass(frozen=True)
class MappingScore:
    """How well one mapping (a preset, or the canonical format) recognises a folder."""

    name: str
    files: tuple[FileMatch, ...]
    tables: tuple[str, ...]  # tables whose required columns the mapping finds
    recognised: int
    total: int

    @property
    def share(self) -> float:
        """Recognised headers / all headers of the folder's data files."""
        return self.recognised / self.total if self.total else 0.0

    @property
    def fits(self) -> bool:
        """At least :data:`FIT_SHARE` of the headers recognised and a deals table found."""
        return "deals" in self.tables and self.share >= FIT_SHARE


@dataclass(frozen=True)
class Inspection:
    """What ``crm-reports inspect`` found: the files, every mapping's score (best first),
    the suggestion and, when nothing fits, a starter mapping."""

    folder: str
    files: tuple[FileHeaders, ...]
    scores: tuple[MappingScore, ...]
    starter: dict | None = None
    starter_unmatched: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def best(self) -> MappingScore | None:
        """The best mapping that fits, or None."""
        return next((s for s in self.scores if s.fits), None)


# ---------------------------------------------------------------- reading headers
def data_files(folder: Path) -> list[Path]:
    """The files of the folder a source reads (known suffixes, no metadata or hidden files)."""
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
            and p.name.lower() not in META_FILES and _strip_suffix(p.name) is not None]


def _expected_names() -> set[str]:
    names = {c for t in TABLES.values() for c in t.column_names}
    for preset in preset_names():
        for tm in read_mapping(preset).tables.values():
            names |= set(tm.columns)
    return names


def read_headers(path: Path, *, expected: set[str]) -> FileHeaders:
    """The header row of a CSV, Excel or Parquet file, reading only its start."""
    low = path.name.lower()
    if low.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        try:
            return FileHeaders(path.name, tuple(pq.read_schema(path).names), 0)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            return FileHeaders(path.name, (), 0, f"not readable as Parquet ({type(exc).__name__})")
    if low.endswith((".xlsx", ".xlsm", ".xls")):
        import pandas as pd

        try:
            grid = pd.read_excel(path, header=None, nrows=20 + HEAD_ROWS, dtype=object)
        except Exception as exc:  # noqa: BLE001 - a damaged workbook raises zipfile, XML or key errors
            return FileHeaders(path.name, (), 0, f"not readable as a workbook ({type(exc).__name__})")
        rows = [["" if pd.isna(v) else str(v).strip() for v in r] for r in grid.itertuples(index=False)]
        return _headers_from_rows(path.name, rows, expected, "")
    try:
        with (gzip.open(path, "rb") if low.endswith(".gz") else open(path, "rb")) as fh:
            data = fh.read(HEAD_BYTES)
    except (OSError, EOFError) as exc:
        return FileHeaders(path.name, (), 0, f"not readable ({getattr(exc, 'strerror', None) or exc})")
    if len(data) == HEAD_BYTES and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]  # whole lines only
    note = ""
    try:
        text = decode_bytes(data, name=path.name, encoding=None)
    except CrmDataError:
        text = data.decode("cp1252", errors="replace")
        note = "not UTF-8: headers read as cp1252; set `encoding:` in export.yaml"
    lines = [ln for ln in text.splitlines()[: 20 + HEAD_ROWS]]
    rows = [next(csv.reader([ln], delimiter=_sniff_delimiter(ln))) if ln.strip() else [] for ln in lines]
    return _headers_from_rows(path.name, rows, expected, note)


def _headers_from_rows(name: str, rows: list[list[str]], expected: set[str], note: str) -> FileHeaders:
    if not any(rows):
        return FileHeaders(name, (), 0, note or "empty")
    at = _find_header_row(rows[:20], expected)
    header = tuple(h.strip() for h in rows[at] if h.strip())
    seen = sum(1 for r in rows[at + 1: at + 1 + HEAD_ROWS] if any(c.strip() for c in r))
    if at:
        note = "; ".join(filter(None, [note, f"{at} title row(s) above the header"]))
    return FileHeaders(name, header, seen, note)


# ---------------------------------------------------------------- scoring
def classify(headers: tuple[str, ...], table: str, tm: TableMapping | None) -> tuple[dict[str, str], set[str]]:
    """Which headers a table mapping reads (header -> canonical column) and which it knows
    without using; the same rules as :func:`crmlib.load.map_columns` (explicit names, then
    canonical names ignoring case and punctuation, unpivoted columns, ignore patterns)."""
    t = spec(table)
    mapped: dict[str, str] = {}
    if tm is not None and tm.unpivot:
        pattern = re.compile(tm.unpivot["columns"])
        mapped.update({h: f"{tm.unpivot['name']} + {tm.unpivot['value']}" for h in headers if pattern.search(h)})
    by_norm = {_norm(h): h for h in headers}
    for src, canon in (tm.columns.items() if tm else []):
        hit = src if src in headers else by_norm.get(_norm(src))
        if hit is not None and hit not in mapped:
            mapped[hit] = canon
    taken = set(mapped.values())
    for h in headers:
        n = _norm(h)
        if h not in mapped and n in t.column_names and n not in taken:
            mapped[h] = n
            taken.add(n)
    known = {h for h in headers if h not in mapped and is_ignored(h, tm.ignore if tm else [])}
    return mapped, known


def _table_found(table: str, mapped: dict[str, str], tm: TableMapping | None) -> bool:
    """Whether the mapped columns (plus derived and constant ones) cover the table's required columns."""
    have = set(mapped.values())
    if tm is not None:
        unpivoted = f"{tm.unpivot['name']} + {tm.unpivot['value']}" if tm.unpivot else None
        if unpivoted in have:
            have |= {tm.unpivot["name"], tm.unpivot["value"]}
        have |= {col for col, rule in tm.derive.items() if rule.get("from") in have}
        have |= set(tm.constants)
    return all(c.name in have for c in spec(table).columns if c.required)


def score_mapping(name: str, mapping: Mapping, folder: Path, files: list[FileHeaders]) -> MappingScore:
    """Score one mapping on a folder: which tables it finds and how many headers it recognises."""
    by_file: dict[str, list[str]] = {}
    for table in TABLES:
        tm = mapping.tables.get(table)
        try:
            paths = _find_files(folder, table, tm)
        except CrmDataError:  # a mapping naming a file that is not there
            paths = []
        for p in paths:
            by_file.setdefault(p.name, []).append(table)
    matches, found, recognised, total = [], set(), 0, 0
    for fh in files:
        mapped: dict[str, str] = {}
        known: set[str] = set()
        for table in by_file.get(fh.name, []):
            tm = mapping.tables.get(table)
            m, k = classify(fh.headers, table, tm)
            if _table_found(table, m, tm):
                found.add(table)
            for h, col in m.items():
                mapped.setdefault(h, f"{table}.{col}")
            known |= k
        known -= set(mapped)
        unknown = tuple(h for h in fh.headers if h not in mapped and h not in known)
        matches.append(FileMatch(fh.name, tuple(by_file.get(fh.name, [])), mapped,
                                 tuple(h for h in fh.headers if h in known), unknown))
        recognised += len(fh.headers) - len(unknown)
        total += len(fh.headers)
    tables = tuple(t for t in TABLES if t in found)
    return MappingScore(name, tuple(matches), tables, recognised, total)


def inspect_folder(folder: str | Path) -> Inspection:
    """Read the headers of every data file in ``folder`` and score every preset and the
    canonical format on them; draft a starter mapping when none fits.

    Raises :class:`~crmlib.errors.CrmConfigError` when the folder does not exist, is a
    file, or holds no CSV, Excel or Parquet file.
    """
    path = Path(folder)
    if not path.exists():
        raise CrmConfigError(f"{folder}: no such folder; give the folder that holds the export's files")
    if not path.is_dir():
        raise CrmConfigError(f"{folder} is a file; give the folder that holds it")
    paths = data_files(path)
    if not paths:
        raise CrmConfigError(f"{folder}: no CSV, Excel or Parquet files ({', '.join(FILE_SUFFIXES)}) in it")
    expected = _expected_names()
    files = [read_headers(p, expected=expected) for p in paths]
    scores = [score_mapping(CANONICAL, Mapping(), path, files)]
    scores += [score_mapping(name, read_mapping(name), path, files) for name in preset_names()]
    scores.sort(key=lambda s: (not s.fits, -s.share, s.name != CANONICAL, s.name))
    result = Inspection(str(folder), tuple(files), tuple(scores))
    if result.best is None:
        starter, unmatched = starter_mapping(files)
        result = Inspection(str(folder), tuple(files), tuple(scores), starter, unmatched)
    return result


# ---------------------------------------------------------------- starter mapping
def guess_table(file_name: str, headers: tuple[str, ...]) -> str | None:
    """The canonical table a file probably holds: by a word in its name, else by the most
    headers matching the table's columns (None when nothing matches)."""
    stem = _norm(_strip_suffix(file_name) or file_name)
    for table, words in TABLE_WORDS.items():
        if _norm(table) == stem or any(w in stem for w in words):
            return table
    hits = {t: len(_column_guesses(headers, t)) for t in TABLES}
    best = max(hits, key=hits.get)
    return best if hits[best] >= 2 else None


def _strip_entity(norm: str) -> str:
    """``deal_title`` -> ``title`` (Pipedrive-style "Deal - Title" headers)."""
    for entity in ("deal", "opportunity", "organization", "organisation", "person", "activity", "lead",
                   "company", "contact", "ticket", "case", "account"):
        if norm.startswith(entity + "_") and len(norm) > len(entity) + 1:
            return norm[len(entity) + 1:]
    return norm


def _column_guesses(headers: tuple[str, ...], table: str) -> dict[str, str]:
    """header -> canonical column of ``table``, by normalised name or a synonym (first wins)."""
    cols = spec(table).column_names
    out: dict[str, str] = {}
    for h in headers:
        n = _norm(h)
        candidates = [c for c in cols if c in (n, _strip_entity(n))]
        candidates += [c for c in cols if c in SYNONYMS and (n in SYNONYMS[c] or _strip_entity(n) in SYNONYMS[c])]
        for c in candidates:
            if c not in out.values():
                out[h] = c
                break
    return out


def starter_mapping(files: list[FileHeaders]) -> tuple[dict, dict[str, tuple[str, ...]]]:
    """A draft export.yaml (as a dict) for files no preset fits, and per file the headers
    it could not match. Every line is a guess to check."""
    tables: dict[str, dict] = {}
    unmatched: dict[str, tuple[str, ...]] = {}
    for fh in files:
        table = guess_table(fh.name, fh.headers)
        if table is None or table in tables:
            unmatched[fh.name] = fh.headers
            continue
        guesses = _column_guesses(fh.headers, table)
        entry: dict = {"file": fh.name, "columns": {h: c for h, c in guesses.items() if h != c}}
        if table == "deals" and "status" not in guesses.values() and "stage" in guesses.values():
            entry["derive"] = {"status": {"from": "stage", "map": {"Won": "won", "Lost": "lost"},
                                          "default": "open"}}
        tables[table] = entry
        unmatched[fh.name] = tuple(h for h in fh.headers if h not in guesses)
    return {"tables": tables}, unmatched


def starter_yaml(starter: dict) -> str:
    """The starter mapping as export.yaml text, with a header saying it is a draft."""
    head = ("# export.yaml drafted by crm-reports inspect: check every line, then save it in the\n"
            "# export folder (date_formats, timezone, decimal: see the README)\n")
    return head + yaml.safe_dump(starter, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------- terminal output
def print_inspection(result: Inspection, console=None) -> None:
    """The inspection in a terminal: scores, the suggestion, unmapped columns per file."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(highlight=False, soft_wrap=True)
    console.print(Text(f"Inspected {len(result.files)} file(s) in {result.folder}"))
    for fh in result.files:
        if fh.note:
            console.print(Text(f"  {fh.name}: {fh.note}", style="yellow"))
    table = Table(title="How well each mapping recognises the headers", title_justify="left")
    for col, justify in (("mapping", "left"), ("headers recognised", "right"), ("share", "right"),
                         ("tables found", "left")):
        table.add_column(col, justify=justify)
    for s in result.scores:
        table.add_row(Text(s.name), f"{s.recognised} of {s.total}", f"{s.share:.0%}",
                      Text(", ".join(s.tables) or "none"))
    console.print(table)
    best = result.best
    if best is not None:
        how = ("the files are already in the canonical format: no preset needed"
               if best.name == CANONICAL else f"use --preset {best.name}")
        console.print(Text(f"Suggestion: {how} ({best.share:.0%} of the headers recognised)", style="green"))
        if best.name != CANONICAL:
            console.print(Text(f"  crm-reports run --source {result.folder} --preset {best.name}"))
        _print_files(console, best.files)
        return
    top = result.scores[0]
    console.print(Text(f"No preset fits (best: {top.name}, {top.share:.0%} of the headers, tables: "
                       f"{', '.join(top.tables) or 'none'}). A starter export.yaml from the headers "
                       "that match a canonical column by name:", style="yellow"))
    console.print(Text(starter_yaml(result.starter or {"tables": {}})))
    unmatched = Table(title="Columns the starter mapping does not use", title_justify="left")
    unmatched.add_column("file")
    unmatched.add_column("columns")
    for name, cols in result.starter_unmatched.items():
        unmatched.add_row(Text(name), Text(", ".join(cols) or "–"))
    console.print(unmatched)


def _print_files(console, files: tuple[FileMatch, ...]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Per file: the tables read and the columns no table maps", title_justify="left")
    for col in ("file", "read as", "mapped", "not mapped"):
        table.add_column(col)
    for f in files:
        table.add_row(Text(f.file), Text(", ".join(f.tables) or "not read"), str(len(f.mapped)),
                      Text(", ".join(f.unknown) or "–", style="yellow" if f.unknown else ""))
    console.print(table)


__all__ = ["Inspection", "MappingScore", "FileMatch", "FileHeaders", "inspect_folder", "print_inspection",
           "starter_mapping", "starter_yaml", "read_headers", "score_mapping", "classify"]
