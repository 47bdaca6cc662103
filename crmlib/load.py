"""Read a CRM export and map it onto the canonical schema.

Sources:

* a folder of files named by table (``deals.csv``, ``deals.xlsx``, ``deals.parquet``,
  ``deals.csv.gz``, ...), or named in the mapping;
* a SQLAlchemy URL (``sqlite:///crm.db``, ``duckdb:///crm.duckdb``, ``postgresql+psycopg://
  user@host/db``) or a ``.sqlite``/``.db``/``.duckdb`` file; ``env:NAME`` reads the URL from
  the environment variable NAME. A password in a URL given on the command line or as a
  parameter is refused: credentials come from the environment only (``CRM_DB_PASSWORD``
  fills in a URL without one).

How a source is read is set by a mapping (``export.yaml`` in the folder, a mapping
file, or defaults): encoding, delimiter, decimal and thousands separators, the date
formats (tried in order; ISO 8601 is always accepted), the timezone of naive
timestamps, column names (source -> canonical) and value maps (e.g. stage -> status).
For vendor exports (the presets in crmlib/presets) a table may also come from several
files, know the vendor columns it ignores, scale a unit, split a column by status
(``derive ... when``) and turn wide "date entered" columns into rows (``unpivot``).

Every pandas trap of reading exports is defended against here (see TRAPS.md): every
column is read as text first (ids keep leading zeros, ``NA``/``None`` stay text), only
the configured missing markers mean missing, duplicated headers and ragged rows are
caught, encodings are decoded strictly, dates and money are parsed with explicit
formats. A value that does not parse is not guessed: it is reported as a row problem
(the audit quarantines the row); a whole column or table that cannot be read is one
:class:`~crmlib.errors.CrmDataError` naming the file, column and what to do.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from .errors import CrmConfigError, CrmDataError
from .schema import TABLES, Column, TableSpec, spec

FILE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt", ".xlsx", ".xlsm", ".xls", ".parquet", ".pq")
META_FILES = {"export.yaml", "export.yml", "truth.json", "readme.md", "readme.txt"}
ISO = "ISO8601"
DEFAULT_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
DELIMITERS = (",", ";", "\t", "|")
TOTAL_RE = re.compile(r"^\s*(grand\s+)?(total|totals|sum|subtotal)\b", re.I)
CURRENCY_SIGNS = "$€£¥₽₹"
ROW_COLUMN = "export_row"  # a database table's record order (see _in_export_order)


# ---------------------------------------------------------------- mapping
@dataclass
class TableMapping:
    """How one canonical table is found and mapped in the source."""

    # file name (or glob) in the folder, or table name in a database; a list of globs: every
    # file any of them matches is read and the rows are appended (none matching: no table)
    file: str | list[str] | None = None
    sheet: str | int | None = None  # Excel sheet
    columns: dict[str, str] = field(default_factory=dict)  # source column -> canonical column
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {source: canonical}
    derive: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> {from, map, default, when}
    constants: dict[str, Any] = field(default_factory=dict)  # column -> value for every row
    options: dict[str, Any] = field(default_factory=dict)  # per-table read options
    ignore: list[str] = field(default_factory=list)  # source columns known to have no canonical use
    scale: dict[str, float] = field(default_factory=dict)  # canonical number column -> factor
    unpivot: dict[str, Any] | None = None  # {columns: regex, name: column, value: column}


READ_OPTIONS = ("encoding", "delimiter", "decimal", "thousands", "date_formats", "timezone",
                "na_values", "header_row")


@dataclass
class Mapping:
    """Read options and column mapping of one export (export.yaml or a mapping file)."""

    name: str = "default"
    timezone: str = "UTC"  # timezone of naive timestamps in the source
    currency: str | None = None  # currency of money columns when the export has no currency column
    date_formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    decimal: str = "."
    thousands: str = ","  # "" = none allowed; "," "." or " " (digits must group by three)
    encoding: str | None = None  # None: UTF-8 (with or without BOM) or UTF-16 with a BOM
    delimiter: str | None = None  # None: detected from the header among , ; tab |
    na_values: tuple[str, ...] = ("",)
    header_row: int | None = None  # 0-based row of the header (spreadsheets with title rows)
    extracted_at: str | None = None
    as_of: str | None = None
    tables: dict[str, TableMapping] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    def option(self, table: str, name: str):
        tm = self.tables.get(table)
        if tm is not None and name in tm.options:
            return tm.options[name]
        return getattr(self, name)

    @classmethod
    def from_dict(cls, data: dict | None, *, origin: str = "mapping") -> "Mapping":
        data = dict(data or {})
        known = {"name", "timezone", "currency", "date_formats", "decimal", "thousands", "encoding",
                 "delimiter", "na_values", "header_row", "extracted_at", "as_of", "tables",
                 "preset", "generator", "description",
                 # large sources (crmlib.pushdown.source): engine, window of activity rows
                 "pushdown", "pushdown_window_days", "pushdown_memory"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CrmConfigError(f"{origin}: unknown setting(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(known))}")
        tables = {}
        for tname, tdata in (data.get("tables") or {}).items():
            spec(tname)  # raises a clear error for an unknown table
            tdata = dict(tdata or {})
            opts = {k: tdata.pop(k) for k in list(tdata) if k in READ_OPTIONS}
            allowed = {"file", "sheet", "columns", "values", "derive", "constants", "ignore", "scale",
                       "unpivot"}
            bad = sorted(set(tdata) - allowed)
            if bad:
                raise CrmConfigError(f"{origin}: tables.{tname}: unknown key(s) {', '.join(bad)}")
            columns = {str(k): str(v) for k, v in (tdata.get("columns") or {}).items()}
            for canon in columns.values():
                if canon not in TABLES[tname].column_names:
                    raise CrmConfigError(
                        f"{origin}: tables.{tname}.columns maps to {canon!r}, which is not a "
                        f"column of {tname}; its columns are {', '.join(TABLES[tname].column_names)}")
            if "date_formats" in opts:
                opts["date_formats"] = tuple(_as_list(opts["date_formats"]))
            file = tdata.get("file")
            tables[tname] = TableMapping(
                file=[str(f) for f in file] if isinstance(file, list) else file,
                sheet=tdata.get("sheet"), columns=columns,
                values={k: {str(a): b for a, b in (v or {}).items()}
                        for k, v in (tdata.get("values") or {}).items()},
                derive=dict(tdata.get("derive") or {}), constants=dict(tdata.get("constants") or {}),
                options=opts, ignore=[str(c) for c in _as_list(tdata.get("ignore") or [])],
                scale=_check_scale(tdata.get("scale"), tname, origin),
                unpivot=_check_unpivot(tdata.get("unpivot"), tname, origin))
        m = cls(tables=tables, raw=data)
        for key in ("name", "timezone", "currency", "decimal", "thousands", "encoding", "delimiter",
                    "header_row"):
            if data.get(key) is not None:
                setattr(m, key, data[key])
        if data.get("date_formats"):
            m.date_formats = tuple(_as_list(data["date_formats"]))
        if data.get("na_values") is not None:
            m.na_values = tuple(str(v) for v in _as_list(data["na_values"]))
        for key in ("extracted_at", "as_of"):
            if data.get(key) is not None:
                setattr(m, key, str(data[key]))
        if m.decimal == m.thousands:
            raise CrmConfigError(f"{origin}: decimal and thousands separators are both {m.decimal!r}")
        return m


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _check_scale(scale, table: str, origin: str) -> dict[str, float]:
    """``scale: {column: factor}``: numbers of a canonical number column are multiplied by the
    factor after parsing (e.g. 0.001 for milliseconds read into ``duration_s``)."""
    out = {}
    for col, factor in (scale or {}).items():
        if col not in TABLES[table].of_kind("float", "int", "money"):
            raise CrmConfigError(f"{origin}: tables.{table}.scale.{col}: scale applies to the number "
                                 f"columns of {table}: {', '.join(TABLES[table].of_kind('float', 'int', 'money'))}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor == 0:
            raise CrmConfigError(f"{origin}: tables.{table}.scale.{col}: give a non-zero number, "
                                 f"not {factor!r}")
        out[str(col)] = float(factor)
    return out


def _check_unpivot(spec_: dict | None, table: str, origin: str) -> dict | None:
    """``unpivot: {columns: REGEX, name: COLUMN, value: COLUMN}``: every source column whose
    header matches REGEX becomes rows (one per non-empty cell): ``name`` gets the regex's first
    matching group (the whole header without groups), ``value`` the cell. HubSpot's
    "Date entered <stage>" columns become stage history this way."""
    if spec_ is None:
        return None
    where = f"{origin}: tables.{table}.unpivot"
    if not isinstance(spec_, dict) or set(spec_) != {"columns", "name", "value"}:
        raise CrmConfigError(f"{where}: give columns (a regular expression), name and value")
    try:
        re.compile(str(spec_["columns"]))
    except re.error as e:
        raise CrmConfigError(f"{where}.columns: not a regular expression ({e})") from None
    for key in ("name", "value"):
        if spec_[key] not in TABLES[table].column_names:
            raise CrmConfigError(f"{where}.{key}: {spec_[key]!r} is not a column of {table}")
    return {k: str(v) for k, v in spec_.items()}


def read_mapping(path: str | os.PathLike) -> Mapping:
    """Read a mapping YAML file (or a preset name from crmlib/presets)."""
    p = Path(path)
    if not p.exists():
        preset = Path(__file__).parent / "presets" / f"{path}.yaml"
        if preset.exists():
            p = preset
        else:
            raise CrmConfigError(f"mapping file {path} not found (nor a preset of that name)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise CrmConfigError(f"{p.name}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CrmConfigError(f"{p.name}: expected a mapping of settings at the top level")
    if data.get("preset"):
        data = merge_mappings(read_mapping(data["preset"]).raw, data)
    return Mapping.from_dict(data, origin=p.name)


PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    """The names of the bundled mapping presets (``crmlib/presets/<name>.yaml``), sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def merge_mappings(base: dict, over: dict) -> dict:
    """Mapping settings ``over`` laid on ``base``: top-level settings of ``over`` win; tables
    are merged key by key, and their dictionaries (columns, values per column, derive,
    constants, scale) entry by entry, so an export.yaml can change one stage name of a
    preset without repeating the rest. Lists (file globs, ignore) are replaced."""
    def deep(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for k, v in b.items():
                out[k] = deep(a[k], v) if k in a else v
            return out
        return b

    merged = {**base, **{k: v for k, v in over.items() if k != "tables"}}
    tables = dict(base.get("tables") or {})
    for name, entry in (over.get("tables") or {}).items():
        tables[name] = deep(tables.get(name) or {}, entry or {})
    merged["tables"] = tables
    return merged


def preset_mapping(preset: str, source: str | os.PathLike | None = None) -> Mapping:
    """The mapping for ``--preset NAME``: the preset, with the source folder's own export.yaml
    (when there is one) laid over it, so the export can record its as_of or override a
    stage name. An export.yaml naming a different preset is a configuration error."""
    names = preset_names()
    if preset not in names:
        raise CrmConfigError(f"unknown preset {preset!r}; the presets are: {', '.join(names)}")
    folder = Path(str(source)) if source is not None and not is_database_url(str(source)) else None
    own = next((folder / n for n in ("export.yaml", "export.yml")
                if folder is not None and folder.is_dir() and (folder / n).exists()), None)
    if own is None:
        return read_mapping(PRESETS_DIR / f"{preset}.yaml")
    own_preset = read_mapping(own).raw.get("preset")
    if own_preset not in (None, preset):
        raise CrmConfigError(f"--preset {preset}: the source's {own.name} says preset: {own_preset}; "
                             "give one preset (or remove the line from the export.yaml)")
    data = read_mapping(own).raw if own_preset else merge_mappings(
        read_mapping(PRESETS_DIR / f"{preset}.yaml").raw, read_mapping(own).raw)
    return Mapping.from_dict(data, origin=f"{own.name} over preset {preset}")


def export_mapping(source: str | os.PathLike, mapping: Mapping | str | os.PathLike | dict | None
                   ) -> Mapping:
    """The mapping for a source: the given one, else the folder's export.yaml, else defaults."""
    if isinstance(mapping, Mapping):
        return mapping
    if isinstance(mapping, dict):
        return Mapping.from_dict(mapping)
    if mapping is not None:
        return read_mapping(mapping)
    folder = Path(str(source))
    for name in ("export.yaml", "export.yml"):
        if folder.is_dir() and (folder / name).exists():
            return read_mapping(folder / name)
    return Mapping()


# ---------------------------------------------------------------- raw tables
@dataclass
class RawTable:
    """One table as read: canonical column names, values as text or native types."""

    table: str
    source: str  # file name or database table, for messages
    frame: pd.DataFrame  # canonical columns; RangeIndex = position in the source
    rows: np.ndarray  # the row number a user finds the record at (spreadsheet row, 1 = header)
    text: bool  # values are text to be parsed (CSV/Excel) rather than typed (Parquet/SQL)
    excel: bool = False
    ragged: list[tuple[int, str]] = field(default_factory=list)  # (row, reason) rows not parsed
    notes: list[str] = field(default_factory=list)


@dataclass
class RawExport:
    source: str
    mapping: Mapping
    tables: dict[str, RawTable]
    notes: list[str]
    files: list[Path]  # the files read (for the fingerprint); empty for databases


# ---------------------------------------------------------------- text decoding / CSV
def decode_bytes(data: bytes, *, name: str, encoding: str | None) -> str:
    """Decode strictly: a BOM decides, else the configured encoding, else UTF-8; never guess."""
    if data.startswith(codecs.BOM_UTF8):
        enc, data = "utf-8", data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = "utf-16"
    else:
        enc = encoding or "utf-8"
    if b"\x00" in data and not enc.lower().replace("_", "-").startswith(("utf-16", "utf16")):
        # UTF-16 without a byte-order mark: a NUL beside every ASCII letter
        raise CrmDataError(f"{name}: NUL bytes between the characters: the file looks like UTF-16 "
                           "without a byte-order mark; set `encoding: utf-16-le` (or utf-16-be) in "
                           "export.yaml", source=name)
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        hint = ("set `encoding:` in export.yaml to the file's encoding (e.g. cp1251, cp1252, "
                "latin-1, utf-16)")
        raise CrmDataError(
            f"{name}: cannot be decoded as {enc} (byte 0x{data[e.start]:02x} on line {line}); {hint}",
            source=name, row=line) from None
    except LookupError:
        raise CrmConfigError(f"{name}: unknown encoding {enc!r} in the mapping") from None


def _sniff_delimiter(first_line: str) -> str:
    best, best_n = ",", 1
    for d in DELIMITERS:
        n = len(next(csv.reader([first_line], delimiter=d)))
        if n > best_n:
            best, best_n = d, n
    return best


def read_csv_text(text: str, *, name: str, delimiter: str | None, header_row: int | None,
                  expected: set[str]) -> tuple[pd.DataFrame, np.ndarray, list[tuple[int, str]], list[str]]:
    """Parse CSV text into an all-text frame; ragged rows are returned, not dropped.

    Returns (frame, row numbers, ragged rows, notes). Row numbers are the line a user
    sees in a spreadsheet (header = 1 unless title rows come first).
    """
    notes: list[str] = []
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise CrmDataError(f"{name}: the file is empty (no header row); export the table again "
                           "or remove the file", source=name)
    if header_row is None:
        # blank lines stay in as empty rows, so the index is the csv reader's record index
        header_row = _find_header_row([next(csv.reader([ln], delimiter=delimiter or
                                                       _sniff_delimiter(ln))) if ln.strip() else []
                                       for ln in lines[:20]], expected)
    header_line = lines[header_row] if header_row < len(lines) else ""
    delim = delimiter or _sniff_delimiter(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=False)
    records: list[list[str]] = []
    rows: list[int] = []
    ragged: list[tuple[int, str]] = []
    header: list[str] | None = None
    for i, rec in enumerate(reader):
        line_no = reader.line_num
        if i < header_row:
            continue
        if header is None:
            header = rec
            continue
        if not rec or all(not v.strip() for v in rec):
            continue  # blank line
        if len(rec) != len(header):
            if len(rec) > len(header) and all(not v.strip() for v in rec[len(header):]):
                rec = rec[: len(header)]  # trailing empty fields (e.g. a trailing comma)
            else:
                ragged.append((line_no, f"row has {len(rec)} fields, the header has {len(header)}"))
                continue
        records.append(rec)
        rows.append(line_no)
    header = _check_header(header or [], name=name, delimiter=delim, expected=expected)
    frame = pd.DataFrame(records, columns=range(len(header)), dtype="str") if records else \
        pd.DataFrame({i: pd.Series(dtype="str") for i in range(len(header))})
    frame.columns = header
    frame, extra_notes = _drop_empty_unnamed(frame, name)
    notes += extra_notes
    if header_row:
        notes.append(f"{name}: {header_row} title row(s) above the header skipped")
    return frame, np.asarray(rows, dtype="int64"), ragged, notes


def _find_header_row(candidates: list[list[str]], expected: set[str]) -> int:
    """The first row that names at least two expected columns (spreadsheets with title rows)."""
    norm_expected = {_norm(x) for x in expected}
    for i, cells in enumerate(candidates):
        hits = sum(_norm(c) in norm_expected for c in cells)
        if hits >= min(2, len(norm_expected)):
            return i
    return 0


def _check_header(header: list[str], *, name: str, delimiter: str, expected: set[str]) -> list[str]:
    header = [h.strip() for h in header]
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        if not h:
            header[i] = f"__unnamed_{i + 1}"
            continue
        k = h.lower()
        if k in seen:
            raise CrmDataError(
                f"{name}: column {h!r} appears twice in the header (columns {seen[k] + 1} and {i + 1}); "
                "rename or remove one in the export", source=name, column=h)
        seen[k] = i
    if len(header) == 1 and delimiter == "," and any(d in header[0] for d in ";\t|"):
        raise CrmDataError(f"{name}: the header is one column ({header[0][:60]!r}); "
                           "set `delimiter:` in export.yaml", source=name)
    return header


def _drop_empty_unnamed(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    for col in [c for c in frame.columns if str(c).startswith("__unnamed_")]:
        if (frame[col].fillna("").str.strip() == "").all():
            frame = frame.drop(columns=col)
            notes.append(f"{name}: an unnamed empty column (trailing delimiter) ignored")
        else:
            pos = str(col).removeprefix("__unnamed_")
            raise CrmDataError(f"{name}: column {pos} has values but no header; name it in the export",
                               source=name)
    return frame, notes


# ---------------------------------------------------------------- Excel
def _excel_text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (pd.Timestamp,)) or hasattr(v, "isoformat"):
        return pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def read_excel_file(path: Path, *, sheet, header_row: int | None, expected: set[str]
                    ) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    try:
        grid = pd.read_excel(path, sheet_name=sheet if sheet is not None else 0, header=None,
                             dtype=object)
    except Exception as e:  # noqa: BLE001 - a damaged workbook raises zipfile, XML or key errors
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CrmDataError(f"{path.name}: cannot read the sheet ({detail})", source=path.name) from None
    cells = [[_excel_text(v) for v in row] for row in grid.itertuples(index=False)]
    if not cells:
        raise CrmDataError(f"{path.name}: the sheet is empty", source=path.name)
    if header_row is None:
        header_row = _find_header_row(cells[:20], expected)
    header = _check_header(cells[header_row], name=path.name, delimiter="xlsx", expected=expected)
    body = [r for r in cells[header_row + 1:]]
    rows = np.arange(header_row + 2, header_row + 2 + len(body), dtype="int64")
    keep = [i for i, r in enumerate(body) if any(v.strip() for v in r)]
    frame = pd.DataFrame([body[i] for i in keep], columns=header, dtype="str") if keep else \
        pd.DataFrame({h: pd.Series(dtype="str") for h in header})
    frame, notes = _drop_empty_unnamed(frame, path.name)
    if header_row:
        notes.append(f"{path.name}: {header_row} title row(s) above the header skipped")
    return frame, rows[keep], notes


# ---------------------------------------------------------------- sources
def is_database_url(source: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+]*://", str(source))) or str(source).startswith("env:")


def resolve_url(source: str) -> str:
    """The database URL to connect to (``env:NAME`` read from the environment; password from
    ``CRM_DB_PASSWORD`` when the URL has a user but no password). Passwords written into a
    URL given directly are refused; a value that is not a URL is one clear error that never
    quotes it (it may hold a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    src = str(source)
    from_env = src.startswith("env:")
    if from_env:
        var = src[4:]
        if not os.environ.get(var):
            raise CrmConfigError(f"source {src}: environment variable {var} is not set")
        src = os.environ[var].strip()
    try:
        url = make_url(src)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        where = f"the value of {var}" if from_env else "the source"
        raise CrmConfigError(f"{where} is not a database URL; write it as "
                             "dialect+driver://user@host:port/database") from None
    if url.password:
        if from_env:
            return src
        raise CrmConfigError("the source URL contains a password; put the URL in an environment "
                             "variable and pass --source env:NAME, or set CRM_DB_PASSWORD")
    if os.environ.get("CRM_DB_PASSWORD") and url.username:
        url = url.set(password=os.environ["CRM_DB_PASSWORD"])
        return url.render_as_string(hide_password=False)
    return src


def safe_source_label(source: str | os.PathLike) -> str:
    """The source as it may appear in outputs: never a password."""
    src = str(source)
    if src.startswith("env:") or not is_database_url(src):
        return src
    try:
        from sqlalchemy.engine import make_url

        return make_url(src).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a label must never fail; hide everything instead
        return "<database url>"


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def _find_files(folder: Path, table: str, tm: TableMapping | None) -> list[Path]:
    """The files of a table: with a list of globs in the mapping, every data file any glob
    matches (case-insensitively, in glob order; none: the table is absent), else the one
    file :func:`_find_file` finds."""
    if not (tm and isinstance(tm.file, list)):
        path = _find_file(folder, table, tm)
        return [path] if path is not None else []
    names = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
             and p.name.lower() not in META_FILES and _strip_suffix(p.name) is not None]
    found: list[Path] = []
    for pattern in tm.file:
        found += [p for p in names if fnmatch.fnmatch(p.name.lower(), pattern.lower()) and p not in found]
    return found


def _find_file(folder: Path, table: str, tm: TableMapping | None) -> Path | None:
    if tm and tm.file:
        matches = sorted(folder.glob(tm.file))
        if not matches:
            raise CrmDataError(f"{folder.name}: the mapping names {tm.file!r} for {table}, "
                               "but no such file is in the folder", table=table)
        return matches[0]
    found = [p for p in sorted(folder.iterdir())
             if p.is_file() and _strip_suffix(p.name) is not None
             and _norm(_strip_suffix(p.name)) == table]
    if len(found) > 1:
        raise CrmDataError(f"{folder.name}: several files for table {table}: "
                           f"{', '.join(p.name for p in found)}; keep one", table=table)
    return found[0] if found else None


def _strip_suffix(name: str) -> str | None:
    low = name.lower()
    for suf in sorted(FILE_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return name[: -len(suf)]
    return None


def _expected_names(t: TableSpec, tm: TableMapping | None) -> set[str]:
    names = set(t.column_names)
    if tm:
        names |= set(tm.columns)
    return names


def read_source(source: str | os.PathLike, *, mapping: Mapping | str | dict | None = None,
                tables: tuple[str, ...] | None = None) -> RawExport:
    """Read every canonical table the source has (only ``tables`` if given)."""
    m = export_mapping(source, mapping)
    wanted = tables or tuple(TABLES)
    src = str(source)
    if is_database_url(src) or Path(src).suffix.lower() in (".db", ".sqlite", ".sqlite3", ".duckdb"):
        return _read_database(src, m, wanted)
    folder = Path(src)
    if not folder.exists():
        raise CrmConfigError(f"source {src} does not exist; give a folder of CSV/Excel/Parquet files "
                             "or a database URL")
    if not folder.is_dir():
        raise CrmConfigError(f"source {src} is a file; give the folder that holds it (files are "
                             "named by table: deals.csv, leads.csv, ...)")
    notes: list[str] = []
    raw_tables: dict[str, RawTable] = {}
    files: list[Path] = []
    for table in wanted:
        tm = m.tables.get(table)
        paths = _find_files(folder, table, tm)
        if not paths:
            continue
        try:
            raw_tables[table] = _read_file(paths[0], table, m) if len(paths) == 1 else \
                _read_files(paths, table, m)
        except NoUnpivotColumns as exc:
            notes.append(f"{table} left out: {exc}")
            continue
        files.extend(paths)
    used = {p.name for p in files}
    if tables is not None:  # a part of the export was asked for: the other tables' files are known
        used |= _known_files(folder, m, [t for t in TABLES if t not in wanted])
    ignored = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in used
                     and p.name.lower() not in META_FILES and not p.name.startswith("."))
    if ignored:
        notes.append(f"files not used (not a known table): {', '.join(ignored)}")
    return RawExport(str(source), m, raw_tables, notes, files)


def _known_files(folder: Path, m: Mapping, tables) -> set[str]:
    """The names of the files of ``tables`` (read elsewhere, e.g. by the engine); a table whose
    files cannot be told is skipped here (reading it says why)."""
    names: set[str] = set()
    for table in tables:
        try:
            names |= {p.name for p in _find_files(folder, table, m.tables.get(table))}
        except CrmDataError:
            continue
    return names


def _read_file(path: Path, table: str, m: Mapping) -> RawTable:
    t = spec(table)
    tm = m.tables.get(table)
    expected = _expected_names(t, tm)
    header_row = m.option(table, "header_row")
    low = path.name.lower()
    ragged: list[tuple[int, str]] = []
    notes: list[str] = []
    excel = False
    if low.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            detail = (str(exc).splitlines() or [type(exc).__name__])[0].replace(str(path), path.name)
            raise CrmDataError(f"{path.name}: cannot be read as Parquet ({detail}); export the table "
                               "again", source=path.name) from None
        rows = np.arange(1, len(frame) + 1, dtype="int64")
        text = False
    elif low.endswith((".xlsx", ".xlsm", ".xls")):
        frame, rows, notes = read_excel_file(path, sheet=tm.sheet if tm else None,
                                             header_row=header_row, expected=expected)
        text, excel = True, True
    else:
        try:
            data = path.read_bytes()
            if low.endswith(".gz"):
                import gzip

                data = gzip.decompress(data)
        except (OSError, EOFError) as exc:  # unreadable, or not (or half) a gzip file
            raise CrmDataError(f"{path.name}: cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                               "export the table again", source=path.name) from None
        txt = decode_bytes(data, name=path.name, encoding=m.option(table, "encoding"))
        frame, rows, ragged, notes = read_csv_text(
            txt, name=path.name, delimiter=m.option(table, "delimiter"), header_row=header_row,
            expected=expected)
        text = True
    frame = frame.reset_index(drop=True)
    if tm is not None and tm.unpivot:
        frame, rows = unpivot_columns(frame, rows, tm.unpivot, name=path.name)
    frame, map_notes = map_columns(frame, table, tm, name=path.name)
    return RawTable(table, path.name, frame, rows, text, excel, ragged, notes + map_notes)


def _read_files(paths: list[Path], table: str, m: Mapping) -> RawTable:
    """One table from several files (e.g. Salesforce Task.csv and Event.csv as activities):
    each file is read and mapped on its own, then the rows are appended in file order.
    Row numbers stay those of each file; the source names every file."""
    parts = [_read_file(p, table, m) for p in paths]
    if len({(p.text, p.excel) for p in parts}) > 1:
        raise CrmDataError(f"{' + '.join(p.name for p in paths)}: the files of {table} mix spreadsheets, "
                           "text and typed (Parquet) files; export them in one format", table=table)
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    notes = [n for p in parts for n in p.notes]
    notes.append(f"{table}: {len(parts)} files appended ("
                 + ", ".join(f"{p.source} {len(p.frame)} rows" for p in parts)
                 + "); row numbers are those of each file")
    return RawTable(table, " + ".join(p.source for p in parts), frame,
                    np.concatenate([p.rows for p in parts]).astype("int64"), parts[0].text,
                    parts[0].excel, [r for p in parts for r in p.ragged], notes)


class NoUnpivotColumns(CrmDataError):
    """The file has none of the columns an ``unpivot`` rule reads (the table is left out)."""


def unpivot_columns(frame: pd.DataFrame, rows: np.ndarray, rule: dict, *, name: str
                    ) -> tuple[pd.DataFrame, np.ndarray]:
    """Wide columns to rows: each column whose header matches ``rule["columns"]`` gives one
    row per non-empty cell, with the header's first matching regex group (or the whole
    header) in column ``rule["name"]`` and the cell in ``rule["value"]``; the other columns
    are repeated. Rows stay in source order, each keeping its source row number."""
    pattern = re.compile(rule["columns"])
    hits: dict[str, str] = {}
    for col in frame.columns:
        found = pattern.search(str(col))
        if found:
            hits[col] = next((g for g in found.groups() if g), None) or str(col)
    if not hits:
        raise NoUnpivotColumns(f"{name}: no column matches {rule['columns']!r}", source=name)
    keep = [c for c in frame.columns if c not in hits and _norm(c) not in (rule["name"], rule["value"])]
    parts = []
    for col, label in hits.items():
        cells = frame[col]
        has = (cells.notna() & (cells.astype("str").str.strip() != "")).to_numpy()
        part = frame.loc[has, keep].copy()
        part.insert(0, rule["value"], cells[has])
        part.insert(0, rule["name"], label)
        part["__position"] = np.flatnonzero(has)
        parts.append(part)
    long = pd.concat(parts, ignore_index=True).sort_values("__position", kind="stable")
    positions = long.pop("__position").to_numpy()
    return long.reset_index(drop=True), np.asarray(rows)[positions].astype("int64")


def _read_database(src: str, m: Mapping, wanted) -> RawExport:
    import sqlalchemy as sa

    url = src
    if not is_database_url(src):
        p = Path(src)
        if not p.exists():
            raise CrmConfigError(f"database file {src} does not exist")
        url = ("duckdb:///" if p.suffix.lower() == ".duckdb" else "sqlite:///") + str(p.resolve())
    url = resolve_url(url)
    label = safe_source_label(url)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            raw_tables = {}
            for table in wanted:
                tm = m.tables.get(table)
                db_file = next((f for f in tm.file if f in names), None) \
                    if tm and isinstance(tm.file, list) else (tm.file if tm else None)
                db_name = db_file or next((n for n in names if _norm(n) == table), None)
                if db_name is None:
                    continue
                if db_name not in names:
                    raise CrmDataError(f"{label}: the mapping names table {db_name!r} for {table}, "
                                       "but the database has no such table", table=table)
                q = sa.select(sa.text("*")).select_from(sa.table(db_name))
                frame = pd.read_sql_query(q, conn)
                frame, rows = _in_export_order(frame, name=db_name)
                frame, notes = map_columns(frame, table, tm, name=db_name)
                raw_tables[table] = RawTable(table, db_name, frame, rows, text=False, notes=notes)
    except sa.exc.SQLAlchemyError as e:
        msg = str(e.orig if getattr(e, "orig", None) else e).splitlines()[0]
        raise CrmDataError(f"{label}: cannot read the database ({msg})") from None
    finally:
        if "engine" in locals():
            engine.dispose()
    return RawExport(label, m, raw_tables, [], [])


def _in_export_order(frame: pd.DataFrame, *, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """A database table's rows in a defined order, and the row number of each.

    SQL returns rows in no defined order (PostgreSQL puts a new row wherever a page has
    room), yet "the first of two duplicates is kept" needs one. A table with an
    ``export_row`` column (:func:`crmlib.db.write_database` writes it: the record's row in
    the export it came from) is read in that order and quotes those row numbers; any other
    table is read as the database returns it and numbered from 1.
    """
    if ROW_COLUMN not in frame.columns:
        return frame, np.arange(1, len(frame) + 1, dtype="int64")
    rows = pd.to_numeric(frame[ROW_COLUMN], errors="coerce")
    if rows.isna().any() or (rows != rows.round()).any():
        raise CrmDataError(f"{name}: column {ROW_COLUMN} must hold the whole row number of every "
                           "record; fill it or drop the column", source=name, column=ROW_COLUMN)
    order = np.argsort(rows.to_numpy(), kind="stable")
    frame = frame.drop(columns=ROW_COLUMN).iloc[order].reset_index(drop=True)
    return frame, rows.to_numpy()[order].astype("int64")


def map_columns(frame: pd.DataFrame, table: str, tm: TableMapping | None, *, name: str
                ) -> tuple[pd.DataFrame, list[str]]:
    """Rename source columns to canonical names, apply value maps, derivations and constants.

    Columns are matched by the mapping first, then by canonical name ignoring case,
    spaces and punctuation. A required column that is still missing is one clear error.
    """
    t = spec(table)
    notes: list[str] = []
    rename: dict[str, str] = {}
    explicit = {k: v for k, v in (tm.columns.items() if tm else [])}
    by_norm = {_norm(c): c for c in frame.columns}
    fallbacks: dict[str, list] = {}  # canonical column -> further source columns filling its gaps
    for src_col, canon in explicit.items():
        hit = src_col if src_col in frame.columns else by_norm.get(_norm(src_col))
        if hit is None or hit in rename or any(hit in f for f in fallbacks.values()):
            continue
        if canon in rename.values():  # two source columns for one field: the first non-empty wins
            fallbacks.setdefault(canon, []).append(hit)
        else:
            rename[hit] = canon
    taken = set(rename.values())
    for col in frame.columns:
        if col in rename:
            continue
        n = _norm(col)
        if n in t.column_names and n not in taken:
            rename[col] = n
            taken.add(n)
    filling = {c for cols in fallbacks.values() for c in cols}
    unused = [c for c in frame.columns if c not in rename and c not in filling
              and not is_ignored(c, tm.ignore if tm else [])]
    out = frame[list(rename)].rename(columns=rename)
    for canon, cols in fallbacks.items():
        for col in cols:
            gap = out[canon].isna() | (out[canon].astype("str").str.strip() == "")
            out[canon] = out[canon].where(~gap, frame[col])
    if unused and not (tm and tm.unpivot):  # an unpivoted file's other columns belong to another table
        notes.append(f"{name}: columns not used: {', '.join(map(str, unused[:12]))}"
                     + (" ..." if len(unused) > 12 else ""))
    for col, rule in (tm.derive.items() if tm else []):
        frm = rule.get("from")
        if frm not in out.columns and not t.column(col).required:
            notes.append(f"{name}: no {frm} column, so {col} is not derived from it")
            continue
        if frm not in out.columns:
            raise CrmConfigError(f"mapping: tables.{table}.derive.{col} reads {frm!r}, which the "
                                 f"export ({name}) does not have")
        vmap = {str(k): v for k, v in (rule.get("map") or {}).items()}
        default = rule.get("default")
        mapped = out[frm].astype("str").map(vmap)
        if default is not None:
            mapped = mapped.where(mapped.notna() | out[frm].isna(), default)
        out[col] = mapped.where(mapped.notna(), out[frm] if default is None else default)
        if rule.get("when"):
            out[col] = out[col].where(_rows_when(out, rule["when"], f"tables.{table}.derive.{col}.when",
                                                 name), None)
    for col, vmap in (tm.values.items() if tm else []):
        if col in out.columns:
            vm = {str(k): v for k, v in vmap.items()}
            out[col] = out[col].map(lambda v, vm=vm: vm.get(str(v), v) if v is not None else v)
    for col, value in (tm.constants.items() if tm else []):
        out[col] = value
    missing_required = [c.name for c in t.columns if c.required and c.name not in out.columns]
    if missing_required:
        col = missing_required[0]
        raise CrmDataError(
            f"{name}: required column {col!r} of table {table} is missing (found: "
            f"{', '.join(map(str, frame.columns[:15]))}); map it under tables.{table}.columns in "
            "export.yaml", table=table, column=col, source=name)
    return out, notes


def is_ignored(column, patterns: list[str]) -> bool:
    """Whether a source column is one the mapping knows has no canonical use: equal to an
    ``ignore`` entry (ignoring case and punctuation) or matching it as a shell-style pattern
    (``hs_date_exited_*``)."""
    name = str(column)
    return any(_norm(p) == _norm(name) or fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns)


def _rows_when(out: pd.DataFrame, when: dict, where: str, name: str) -> pd.Series:
    """Rows whose columns hold one of the given values (``{status: [won, lost]}``); the
    values compared are those after derivation (e.g. a status derived from the stage)."""
    keep = pd.Series(True, index=out.index)
    for col, wanted in dict(when).items():
        if col not in out.columns:
            raise CrmConfigError(f"mapping: {where} reads {col!r}, which the export ({name}) does not have")
        keep &= out[col].astype("str").isin([str(v) for v in _as_list(wanted)])
    return keep


# ---------------------------------------------------------------- typing values
@dataclass
class Problem:
    position: int
    column: str
    check: str
    reason: str
    value: str


def coerce_table(raw: RawTable, m: Mapping, *, timezone: str
                 ) -> tuple[pd.DataFrame, list[Problem]]:
    """Type every canonical column; values that do not parse become row problems.

    Returns the typed frame (same positions as ``raw.frame``, canonical columns in
    order, missing optional columns added empty) and the problems found.
    """
    t = spec(raw.table)
    out = {}
    problems: list[Problem] = []
    na_values = set(m.option(raw.table, "na_values"))
    for col in t.columns:
        if col.name in raw.frame.columns:
            s = raw.frame[col.name]
        else:
            s = pd.Series([None] * len(raw.frame), index=raw.frame.index, dtype="object")
            if col.kind == "currency" and m.currency:
                s = pd.Series([m.currency] * len(raw.frame), index=raw.frame.index, dtype="object")
        if raw.text or s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            s = _to_text(s, na_values)
        parser = PARSERS[col.kind]
        typed, bad = parser(s, col=col, raw=raw, m=m, timezone=timezone)
        factor = m.tables[raw.table].scale.get(col.name) if raw.table in m.tables else None
        if factor is not None:
            typed = typed * factor if col.kind != "int" else (typed * factor).round().astype("Int64")
        out[col.name] = typed
        problems.extend(bad)
    return pd.DataFrame(out, index=raw.frame.index), problems


def _to_text(s: pd.Series, na_values: set[str]) -> pd.Series:
    """Strings with configured missing markers turned into NA; nothing else is missing."""
    if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
        return s
    txt = s.astype("str")
    stripped = txt.str.strip()
    return txt.where(~stripped.isin(na_values) & s.notna(), None).astype("str")


def _bad(s: pd.Series, mask: pd.Series, col: Column, check: str, reason: str) -> list[Problem]:
    return [Problem(int(i), col.name, check, reason.format(value=str(v)[:80]), str(v)[:200])
            for i, v in s[mask].items()]


def _parse_id(s, *, col, **_):
    if pd.api.types.is_float_dtype(s.dtype):
        ok = s.isna() | (s == np.floor(s))
        txt = s.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else repr(v)))
        return txt.astype("str"), _bad(s, ~ok, col, "bad_id", f"{col.name} {{value}} is not a whole number")
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.astype("Int64").astype("str").where(s.notna(), None).astype("str"), []
    return s.astype("str").str.strip().astype("str"), []


def _parse_text(s, *, col, **_):
    if not pd.api.types.is_string_dtype(s.dtype):
        s = s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    s = s.astype("str")
    if col.kind in ("category", "ref"):
        s = s.str.strip()
    if col.kind == "currency":
        s = s.str.strip().str.upper()
    return s, []


def _parse_bool(s, *, col, **_):
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("boolean"), []
    if pd.api.types.is_numeric_dtype(s.dtype):
        ok = s.isna() | s.isin([0, 1])
        return s.where(ok).astype("Float64").astype("boolean"), \
            _bad(s, ~ok, col, "bad_bool", f"{col.name} {{value}} is not true/false")
    low = s.astype("str").str.strip().str.lower()
    truthy = {"true", "t", "yes", "y", "1", "1.0"}
    falsy = {"false", "f", "no", "n", "0", "0.0"}
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[low.isin(truthy)] = True
    out[low.isin(falsy)] = False
    bad = s.notna() & out.isna()
    return out, _bad(s, bad, col, "bad_bool", f"{col.name} {{value!r}} is not true/false".replace("!r", ""))


_MONEY_STRIP = re.compile(r"^\s*(?:[A-Z]{3}\s*)?[" + re.escape(CURRENCY_SIGNS) + r"]?\s*|\s*[" +
                          re.escape(CURRENCY_SIGNS) + r"]?\s*(?:[A-Z]{3})?\s*$")


def parse_number_text(s: pd.Series, *, decimal: str = ".", thousands: str = "") -> pd.Series:
    """Parse money/number text strictly; values that are not numbers become NaN.

    Accepts a currency sign or code before or after (``$1,200.00``, ``1 200 €``,
    ``EUR 5``), accounting negatives ``(300.00)``, a leading minus, and K/M suffixes
    (``$1,117.10K``). Thousands separators must group digits by three, so
    ``1234,56`` read with ``.`` as decimal is rejected rather than read as 123456.
    """
    txt = s.astype("str").str.replace("\u00a0", " ").str.replace("\u202f", " ").str.strip()
    neg_paren = txt.str.match(r"^\(.*\)$", na=False)
    txt = txt.str.replace(r"^\((.*)\)$", r"\1", regex=True)
    txt = txt.str.replace(_MONEY_STRIP, "", regex=True)
    neg = txt.str.startswith("-", na=False) | neg_paren
    txt = txt.str.replace(r"^[-+]\s*", "", regex=True)
    # a currency sign may also sit after the minus: -$300
    txt = txt.str.replace(r"^[" + re.escape(CURRENCY_SIGNS) + r"]\s*", "", regex=True)
    mult = pd.Series(1.0, index=s.index)
    suffix = txt.str.extract(r"([KkMm])$", expand=False)
    mult[suffix.str.lower() == "k"] = 1e3
    mult[suffix.str.lower() == "m"] = 1e6
    txt = txt.str.replace(r"[KkMm]$", "", regex=True).str.strip()
    d = re.escape(decimal)
    if thousands:
        t = r"[ \u00a0]" if thousands == " " else re.escape(thousands)
        pattern = rf"^(\d{{1,3}}(?:{t}\d{{3}})+|\d+)(?:{d}(\d+))?$"
    else:
        pattern = rf"^(\d+)(?:{d}(\d+))?$"
    parts = txt.str.extract(pattern)
    whole = parts[0].str.replace(r"\D", "", regex=True)
    frac = parts[1].fillna("0") if 1 in parts.columns else "0"
    num = pd.to_numeric(whole + "." + frac, errors="coerce")
    num = num.where(parts[0].notna())
    num = num.where(~neg, -num) * mult
    return num.astype("float64")


def _parse_number(s, *, col, raw, m, **_):
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        out = s.astype("float64")
    else:
        out = parse_number_text(s, decimal=m.option(raw.table, "decimal"),
                                thousands=m.option(raw.table, "thousands"))
    bad = s.notna() & out.isna()
    n_in, n_bad = int(s.notna().sum()), int(bad.sum())
    if n_bad and n_in >= 10 and n_bad > n_in / 2:
        first = s[bad].iloc[0]
        row = int(raw.rows[bad.to_numpy().nonzero()[0][0]]) if len(raw.rows) else None
        raise CrmDataError(
            f"{raw.source}: column {col.name} ({raw.table}): {n_bad} of {n_in} values are not numbers "
            f"with decimal {m.option(raw.table, 'decimal')!r} and thousands "
            f"{m.option(raw.table, 'thousands') or 'none'!r} (e.g. {str(first)[:30]!r} in row {row}); "
            "set `decimal:` and `thousands:` in export.yaml", table=raw.table, column=col.name,
            source=raw.source, row=row)
    problems = _bad(s, bad, col, "unparseable_number",
                    f"{col.name} {{value}} is not a number (decimal "
                    f"{m.option(raw.table, 'decimal')!r}, thousands "
                    f"{m.option(raw.table, 'thousands') or 'none'!r})")
    if col.kind == "int":
        frac = out.notna() & (out != np.floor(out))
        problems += _bad(s, frac, col, "unparseable_number", f"{col.name} {{value}} is not a whole number")
        out = out.where(~frac).round().astype("Int64")
    return out, problems


def parse_timestamps(s: pd.Series, *, formats, source_tz: str, tz: str, excel: bool = False
                     ) -> pd.Series:
    """Parse text timestamps with the given formats (in order) and ISO 8601; NaT when none fits.

    Naive values are local times of ``source_tz``; the result is converted to ``tz``.
    With ``excel`` plain numbers are spreadsheet serial dates (days since 1899-12-30).
    """
    txt = s.astype("str").str.strip()
    result = pd.Series(pd.NaT, index=s.index, dtype=f"datetime64[us, {tz}]")
    todo = txt.notna()
    for fmt in tuple(formats) + (ISO,):
        if not todo.any():
            break
        part = txt[todo]
        if fmt in EPOCH_FORMATS:
            parsed = _parse_epoch(part, EPOCH_FORMATS[fmt])
        else:
            parsed = pd.to_datetime(part, format=fmt, errors="coerce", utc=False) \
                if fmt != ISO else _parse_iso(part)
        ok = parsed.notna()
        if not ok.any():
            continue
        result.loc[ok[ok].index] = _to_tz(parsed[ok], source_tz, tz)
        todo.loc[ok[ok].index] = False
    if excel and todo.any():
        num = pd.to_numeric(txt[todo], errors="coerce")
        ok = num.between(1, 2958465)
        if ok.any():
            days = num[ok]
            parsed = pd.to_datetime(days, unit="D", origin="1899-12-30").dt.round("s")
            result.loc[ok[ok].index] = _to_tz(parsed, source_tz, tz)
    return result


#: date formats that are numbers: seconds or milliseconds since 1970-01-01 UTC (APIs such
#: as HubSpot's write epoch milliseconds); only whole numbers of 9-11 (seconds) or 12-14
#: (milliseconds) digits are read, so a stray number is never taken for a date
EPOCH_FORMATS = {"epoch_s": ("s", 9, 11), "epoch_ms": ("ms", 12, 14)}


def _parse_epoch(part: pd.Series, unit: tuple[str, int, int]) -> pd.Series:
    """Epoch numbers as UTC timestamps; anything else NaT."""
    name, lo, hi = unit
    ok = part.str.fullmatch(rf"-?\d{{{lo},{hi}}}", na=False)
    out = pd.Series(pd.NaT, index=part.index, dtype="datetime64[us, UTC]")
    if ok.any():
        out[ok] = pd.to_datetime(part[ok].astype("int64"), unit=name, utc=True)
    return out


def _parse_iso(part: pd.Series) -> pd.Series:
    """ISO 8601 values: naive ones stay naive, values with offsets become UTC."""
    has_tz = part.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True, na=False)
    if not has_tz.any():
        return pd.to_datetime(part, format="ISO8601", errors="coerce")
    aware = pd.to_datetime(part[has_tz], format="ISO8601", errors="coerce", utc=True)
    if has_tz.all():
        return aware
    naive = pd.to_datetime(part[~has_tz], format="ISO8601", errors="coerce")
    return _mixed(naive, aware, part.index)


def _mixed(naive: pd.Series, aware: pd.Series, index) -> pd.Series:
    """Naive and aware parsed values side by side (object dtype), in index order."""
    out = pd.Series(pd.NaT, index=index, dtype="object")
    out[naive.index] = list(naive)
    out[aware.index] = list(aware)
    return out


def _to_tz(values: pd.Series, source_tz: str, tz: str) -> pd.Series:
    """Localise naive values in ``source_tz`` (DST gaps and overlaps become NaT) and convert."""
    dtype = f"datetime64[us, {tz}]"
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(tz).astype(dtype)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        loc = values.dt.tz_localize(source_tz, ambiguous="NaT", nonexistent="NaT")
        return loc.dt.tz_convert(tz).astype(dtype)
    aware = values.map(lambda v: getattr(v, "tzinfo", None) is not None)
    out = pd.Series(pd.NaT, index=values.index, dtype=dtype)
    if aware.any():
        out[aware] = _to_tz(pd.to_datetime(values[aware], utc=True), source_tz, tz)
    if (~aware).any():
        out[~aware] = _to_tz(pd.to_datetime(values[~aware]), source_tz, tz)
    return out


def _parse_timestamp(s, *, col, raw, m, timezone, **_):
    source_tz = m.option(raw.table, "timezone")
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert(timezone).astype(f"datetime64[us, {timezone}]"), []
    if pd.api.types.is_datetime64_dtype(s.dtype):
        loc = s.dt.tz_localize(source_tz, ambiguous="NaT", nonexistent="NaT")
        out = loc.dt.tz_convert(timezone).astype(f"datetime64[us, {timezone}]")
        return out, _bad(s, s.notna() & out.isna(), col, "unparseable_date",
                         f"{col.name} {{value}} does not exist in {source_tz} (DST change)")
    if pd.api.types.is_numeric_dtype(s.dtype):
        s = s.map(lambda v: None if pd.isna(v) else repr(v)).astype("str")
    fmts = m.option(raw.table, "date_formats")
    out = parse_timestamps(s, formats=fmts, source_tz=source_tz, tz=timezone, excel=raw.excel)
    bad = s.notna() & out.isna()
    n_in, n_bad = int(s.notna().sum()), int(bad.sum())
    if n_bad and (n_bad == n_in or (n_in >= 10 and n_bad > n_in / 2)):
        first = s[bad].iloc[0]
        row = int(raw.rows[bad.to_numpy().nonzero()[0][0]]) if len(raw.rows) else None
        raise CrmDataError(
            f"{raw.source}: column {col.name} ({raw.table}): {n_bad} of {n_in} values match none of "
            f"the date formats {list(fmts)} (e.g. {str(first)[:40]!r} in row {row}); set "
            "`date_formats:` in export.yaml to the export's format",
            table=raw.table, column=col.name, source=raw.source, row=row)
    # a local time that parses but does not exist (or exists twice) at a daylight-saving change
    clock = bad & parse_timestamps(s.where(bad), formats=fmts, source_tz="UTC", tz="UTC",
                                   excel=raw.excel).notna() if n_bad else bad
    return out, (_bad(s, bad & ~clock, col, "unparseable_date",
                      f"{col.name} {{value}} matches none of the date formats")
                 + _bad(s, clock, col, "unparseable_date", f"{col.name} {{value}} does not exist or is "
                        f"ambiguous in {source_tz} (daylight-saving change)"))


PARSERS: dict[str, Callable] = {
    "id": _parse_id, "ref": _parse_id, "text": _parse_text, "category": _parse_text,
    "currency": _parse_text, "timestamp": _parse_timestamp, "money": _parse_number,
    "float": _parse_number, "int": _parse_number, "bool": _parse_bool,
}
