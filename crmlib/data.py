"""CrmData: the audited snapshot every report of a run reads.

``open_data(source)`` reads the export (:mod:`crmlib.load`), audits it
(:mod:`crmlib.audit`) and returns a :class:`CrmData`: the clean canonical tables, the
quarantine, the findings, the per-table counts and scores, and a fingerprint of the
input. The runner saves it once per run as Parquet (:meth:`CrmData.save`) and every
notebook of the pack opens that snapshot (:meth:`CrmData.load`) instead of reading and
auditing the export again.

A large source (tens of millions of activities; see :mod:`crmlib.pushdown`) is audited and
aggregated in an engine: its snapshot holds the light tables whole, ``stage_history`` and
``orders`` whole, the ``activities`` of a recent window, and :attr:`CrmData.aggregates`
(the engine's aggregates of every clean row up to as_of). The engine writes them to
Parquet files, and the tables (like those of a saved snapshot) are read from there when a
report first asks for them. The metrics use the aggregates
when a question reaches before the window, and refuse in one line what neither can answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from pathlib import Path

import pandas as pd

from .audit import audit
from .errors import CrmConfigError, CrmDataError, MissingTableError
from .load import Mapping, export_mapping, is_database_url, read_source, safe_source_label
from .memory import read_parquet_lean, release
from .schema import TABLES, spec

SNAPSHOT_VERSION = 1
#: the tables :meth:`CrmData.scan` can leave in a large snapshot's file (the metrics reading them accept a scan)
SCANNABLE = ("stage_history", "activities")
#: a large snapshot's text columns with at most this share of distinct values are read as
#: pandas categoricals (owner, stage, status, source... of millions of rows); None: never
CATEGORY_SHARE: float | None = 0.01


@dataclass
class CrmData:
    """Clean canonical tables + quarantine + findings + counts + fingerprint + meta."""

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    findings: pd.DataFrame
    counts: pd.DataFrame
    completeness: pd.DataFrame
    fingerprint: str
    meta: dict = field(default_factory=dict)
    #: a large source's aggregates of the heavy tables (crmlib.pushdown.AGGREGATES); empty otherwise
    aggregates: MutableMapping[str, pd.DataFrame] = field(default_factory=dict)
    _scans: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.tables, _LazyTables):
            self.tables.on_load = self._mark_window
        else:
            for name, df in self.tables.items():
                self._mark_window(name, df)

    def _mark_window(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        """Give a heavy table of a large source its PushdownInfo (which rows are loaded, the aggregates)."""
        push = self.meta.get("pushdown") or {}
        rows_from = (push.get("rows_from") or {}).get(name)
        if rows_from:
            from .pushdown.info import ATTR, PushdownInfo

            as_of = pd.Timestamp(push["as_of"]) if push.get("as_of") else None
            df.attrs[ATTR] = PushdownInfo(name, pd.Timestamp(rows_from), as_of, self.aggregates,
                                          push.get("window_days"))
        return df

    def has(self, *names: str) -> bool:
        return all(n in self.tables for n in names)

    def missing(self, *names: str) -> list[str]:
        return [n for n in names if n not in self.tables]

    def table(self, name: str, columns=None) -> pd.DataFrame:
        """A clean table; MissingTableError when the export does not have it.

        ``columns``: only these columns (a report that needs four of a large table's twelve
        columns reads just those from a saved snapshot, and keeps the rest out of memory).
        """
        spec(name)
        if name not in self.tables:
            raise MissingTableError(f"the export has no {name} table", table=name)
        if columns is None:
            return self.tables[name]
        columns = list(columns)
        if isinstance(self.tables, _LazyTables):
            return self.tables.columns(name, columns)
        return _columns_of(name, self.tables[name], columns)

    def dating(self) -> dict[str, pd.DataFrame]:
        """Every dated table with its dating column alone (``TableSpec.dated_by``): what the
        data-quality trend counts. Read from a snapshot column by column, so the data-audit
        report never holds the large tables whole."""
        from .schema import dating_column

        out = {}
        for name in list(self.tables):
            col = dating_column(name)
            have = self.tables.column_names(name) if isinstance(self.tables, _LazyTables) \
                else self.tables[name].columns
            if col is not None and col in have:
                out[name] = self.table(name, columns=[col])
        return out

    def rows(self, name: str) -> int:
        """The number of rows of a clean table, without reading a table not read yet (0 when the
        export does not have it)."""
        if name not in self.tables:
            return 0
        if isinstance(self.tables, _LazyTables):
            return self.tables.rows(name)
        return len(self.tables[name])

    def get(self, name: str, columns=None) -> pd.DataFrame | None:
        """:meth:`table`, or None when the export does not have the table."""
        return self.table(name, columns) if name in self.tables else None

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.table(name)

    def scan(self, name: str, columns=None):
        """A table for the metrics that can have an engine reduce it where it lies; None when the
        export does not have it.

        From the snapshot of a large source, a table in :data:`SCANNABLE` not read yet comes
        back as a :class:`crmlib.pushdown.scan.ParquetScan`: the metrics that take it ask
        DuckDB for the few rows they need, and the table never enters memory. Those are, for
        ``stage_history``: ``stage_at``, ``open_pipeline``, ``pipeline_changes``,
        ``stalled_deals``, ``stage_visits``, ``stage_time_norms``, ``stage_time_table``,
        ``stage_funnel``, ``lost_deals`` and the win-probability features; for
        ``activities``: the win-probability features. A scanned heavy table carries its
        window info in ``attrs`` as the frame would. Otherwise (a small source, a table read
        already, a filtered or masked view) it is the table itself (``columns``: only those,
        as :meth:`table`), and the metrics give the same numbers from it.
        """
        spec(name)
        if name not in self.tables:
            return None
        lazy = isinstance(self.tables, _LazyTables)
        if name in SCANNABLE and lazy and name not in self.tables.loaded and self.meta.get("pushdown"):
            if name not in self._scans:
                from .pushdown.scan import ParquetScan

                self._scans[name] = self._mark_window(name, ParquetScan(name, self.tables.path(name)))
            return self._scans[name]
        return self.table(name, columns)

    # ------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike) -> Path:
        """Write the snapshot as Parquet files + meta.json into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.tables:
            if not _copied(self.tables, name, folder / f"{name}.parquet"):
                plain = self.tables[name].copy(deep=False)
                plain.attrs = {}  # the window's info is rebuilt from meta on load
                plain.to_parquet(folder / f"{name}.parquet", index=False)
        for name in ("quarantine", "findings", "counts", "completeness"):
            getattr(self, name).to_parquet(folder / f"_{name}.parquet", index=False)
        for name in self.aggregates:
            if not _copied(self.aggregates, name, folder / f"_agg_{name}.parquet"):
                self.aggregates[name].to_parquet(folder / f"_agg_{name}.parquet", index=False)
        meta = dict(self.meta, fingerprint=self.fingerprint, snapshot_version=SNAPSHOT_VERSION,
                    tables=sorted(self.tables), aggregates=sorted(self.aggregates))
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "CrmData":
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            raise CrmConfigError(f"snapshot {folder} has no meta.json; was it written by CrmData.save?")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        large = bool(meta.get("pushdown"))
        tables = _LazyTables(folder, meta.get("tables", []), compact=large)
        parts = {n: pd.read_parquet(folder / f"_{n}.parquet")
                 for n in ("quarantine", "findings", "counts", "completeness")}
        aggregates = _LazyTables(folder, meta.pop("aggregates", []), prefix="_agg_", compact=large)
        fp = meta.pop("fingerprint")
        meta.pop("tables", None)
        meta.pop("snapshot_version", None)
        return cls(tables, parts["quarantine"], parts["findings"], parts["counts"],
                   parts["completeness"], fp, meta, aggregates)

    # ------------------------------------------------------------ views
    def filtered(self, *, owners=None, teams=None) -> "CrmData":
        """The same snapshot restricted to some owners and/or teams (by owner_id / agent_id)."""
        owners = [str(o) for o in (owners or [])]
        teams = [str(t) for t in (teams or [])]
        if not owners and not teams:
            return self
        keep = set(owners)
        if teams:
            users = self.table("users") if "users" in self.tables else None
            if users is None:
                raise CrmConfigError("a teams filter needs the users table (it maps owners to teams)")
            unknown = sorted(set(teams) - set(users["team"].dropna()))
            if unknown:
                raise CrmConfigError(f"unknown team(s) {', '.join(unknown)}; teams in the export: "
                                     f"{', '.join(sorted(users['team'].dropna().unique()))}")
            keep |= set(users.loc[users["team"].isin(teams), "user_id"])
        tables = {}
        for name, df in self.tables.items():
            col = "owner_id" if "owner_id" in df.columns else ("agent_id" if "agent_id" in df.columns else None)
            if name == "targets":
                team_rows = df["team"].isin(teams) if teams else False
                tables[name] = df[df["owner_id"].isin(keep) | team_rows].reset_index(drop=True)
            elif name == "users":
                tables[name] = df[df["user_id"].isin(keep)].reset_index(drop=True)
            elif col and name != "accounts":
                tables[name] = df[df[col].isin(keep)].reset_index(drop=True)
            else:
                tables[name] = df
        meta = dict(self.meta, owners=owners, teams=teams)
        return CrmData(tables, self.quarantine, self.findings, self.counts, self.completeness,
                       self.fingerprint, meta, _filter_aggregates(self.aggregates, keep))

    def masked(self, *, salt: str | None = None) -> "CrmData":
        """Personal data replaced by stable pseudonyms (salt from CRM_PII_SALT)."""
        from .privacy import mask_data

        masked = mask_data(self, salt=salt)
        if self.aggregates:  # ids, counts and times: nothing personal
            masked = CrmData(masked.tables, masked.quarantine, masked.findings, masked.counts,
                             masked.completeness, masked.fingerprint, masked.meta, dict(self.aggregates))
        return masked


def _filter_aggregates(aggregates: dict[str, pd.DataFrame], owners: set) -> dict[str, pd.DataFrame]:
    """The aggregates of the activities of some owners: those kept per owner are filtered; the
    per-deal and first-activity ones cannot be (a deal's activities have many owners) and go,
    so the metrics answer from the rows of the window instead."""
    out = {}
    for name, df in aggregates.items():
        if name == "activity_weeks":
            out[name] = df.loc[df["owner_id"].isin(owners)].reset_index(drop=True)
        elif name not in ("deal_activity", "activity_firsts"):
            out[name] = df
    return out


def _copied(tables, name: str, target: Path) -> bool:
    """Copy a table of a saved snapshot that was never read (no need to read it to write it)."""
    if not isinstance(tables, _LazyTables) or name in tables.loaded:
        return False
    source = tables.folder / f"{tables.prefix}{name}.parquet"
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    return True


class _LazyTables(MutableMapping):
    """The tables of a saved snapshot, each read from its Parquet file when first used.

    A report reads the few tables it needs, not the whole snapshot (which for a large
    source holds millions of rows). ``name in tables`` does not read anything.
    """

    def __init__(self, folder: Path, names, *, prefix: str = "", compact: bool = False):
        self.folder = Path(folder)
        self.compact = compact
        self.prefix = prefix
        self.names = list(names)
        self.loaded: dict[str, pd.DataFrame] = {}
        self.on_load = None

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.loaded:
            if name not in self.names:
                raise KeyError(name)
            self.loaded[name] = self._read(name)
        return self.loaded[name]

    def path(self, name: str) -> Path:
        """A table's Parquet file."""
        return self.folder / f"{self.prefix}{name}.parquet"

    def _read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A table's file (or some of its columns) as a frame, text columns in one block each."""
        df = read_parquet_lean(self.path(name), columns=columns,
                               categories_below=CATEGORY_SHARE if self.compact else None)
        df = self.on_load(name, df) if self.on_load else df
        release()  # what Arrow used while reading the file
        return df

    def columns(self, name: str, columns: list[str]) -> pd.DataFrame:
        """Some columns of a table: read from its file alone unless the whole table is loaded
        already (not kept: each call reads them again)."""
        if name in self.loaded:
            return _columns_of(name, self.loaded[name], columns)
        _check_columns(name, self.column_names(name), columns)
        return self._read(name, columns)

    def column_names(self, name: str) -> list[str]:
        """A table's columns, from its file's schema unless it is read already."""
        if name in self.loaded:
            return list(self.loaded[name].columns)
        if name not in self.names:
            raise KeyError(name)
        import pyarrow.parquet as pq

        return pq.read_schema(self.path(name)).names

    def rows(self, name: str) -> int:
        """A table's number of rows, from its file's metadata unless it is read already."""
        if name in self.loaded:
            return len(self.loaded[name])
        if name not in self.names:
            raise KeyError(name)
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path(name)).metadata.num_rows

    def __contains__(self, name) -> bool:
        return name in self.names

    def __setitem__(self, name: str, df: pd.DataFrame) -> None:
        if name not in self.names:
            self.names.append(name)
        self.loaded[name] = df

    def __delitem__(self, name: str) -> None:
        self.names.remove(name)
        self.loaded.pop(name, None)

    def __iter__(self):
        return iter(list(self.names))

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"<tables {', '.join(self.names)} from {self.folder} ({len(self.loaded)} read)>"


def _check_columns(name: str, have, wanted) -> None:
    have = set(have)
    missing = [c for c in wanted if c not in have]
    if missing:
        raise CrmDataError(f"{name} has no column(s) {', '.join(map(str, missing))}", table=name, column=missing[0])


def _columns_of(name: str, df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Some columns of a table in memory, with its attrs (a large source's window info)."""
    _check_columns(name, df.columns, columns)
    out = df[columns]
    out.attrs = dict(df.attrs)
    return out


# ---------------------------------------------------------------- opening
def export_settings(source: str | os.PathLike, mapping=None) -> dict:
    """The export's recorded settings (as_of, extracted_at, timezone, currency) without loading."""
    if is_database_url(str(source)):
        m = export_mapping(source, mapping) if mapping is not None else Mapping()
    else:
        m = export_mapping(source, mapping)
    return {"as_of": m.as_of, "extracted_at": m.extracted_at, "timezone": m.timezone,
            "currency": m.currency, "name": m.name}


def fingerprint_files(paths, mapping: Mapping) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(mapping.raw, sort_keys=True, default=str).encode())
    for p in sorted(paths, key=lambda p: Path(p).name):
        h.update(Path(p).name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def fingerprint_frames(tables: dict[str, pd.DataFrame]) -> str:
    h = hashlib.sha256()
    for name in sorted(tables):
        df = tables[name]
        h.update(name.encode())
        h.update(",".join(map(str, df.columns)).encode())
        h.update(pd.util.hash_pandas_object(df.astype("str"), index=False).values.tobytes())
    return h.hexdigest()[:16]


def open_data(source: str | os.PathLike = "data/sample", *, timezone: str = "UTC",
              mapping: Mapping | str | dict | None = None, mask_pii: bool = False,
              extracted_at: str | pd.Timestamp | None = None, snapshot: str | os.PathLike | None = None,
              owners=None, teams=None, pushdown: bool | None = None, as_of=None) -> CrmData:
    """Read, audit and return the export as a CrmData snapshot.

    ``snapshot``: a folder written by :meth:`CrmData.save` (the runner passes it) is
    opened instead of reading the source again. ``extracted_at``: when the export was
    taken (default: the export's own record, else now); later event times are
    quarantined as impossible.

    ``pushdown``: read the source as a large one (:mod:`crmlib.pushdown.source`): True,
    False, or None to follow export.yaml's ``pushdown`` (default ``auto``: a folder whose
    activities.parquet has more than two million rows). ``as_of``: the report date the
    aggregates of a large source are computed at (default: the export's recorded as_of,
    else the end of the last complete week).
    """
    if snapshot:
        data = CrmData.load(snapshot)
        if data.meta.get("timezone") != timezone:
            data = _convert_tz(data, timezone)
    elif _is_large(source, mapping, pushdown):
        data = _read_large(source, timezone=timezone, mapping=mapping, extracted_at=extracted_at, as_of=as_of)
    else:
        data = _read_and_audit(source, timezone=timezone, mapping=mapping, extracted_at=extracted_at)
    if mask_pii and not data.meta.get("masked"):
        data = data.masked()
    return data.filtered(owners=owners, teams=teams)


def _read_and_audit(source, *, timezone, mapping, extracted_at) -> CrmData:
    _check_timezone(timezone)
    raw = read_source(source, mapping=mapping)
    m = raw.mapping
    ext = extracted_at or m.extracted_at
    if ext is None:
        ext_ts = pd.Timestamp(datetime.now(dt_timezone.utc)).floor("s")
        ext_note = "no extracted_at recorded: events after the time of loading count as future"
    else:
        ext_ts = pd.Timestamp(ext)
        ext_ts = ext_ts.tz_localize(m.timezone) if ext_ts.tzinfo is None else ext_ts
        ext_note = None
    ext_ts = ext_ts.tz_convert(timezone)
    result = audit(raw, timezone=timezone, extracted_at=ext_ts)
    fp = fingerprint_files(raw.files, m) if raw.files else fingerprint_frames(result.tables)
    notes = result.notes + ([ext_note] if ext_note else [])
    meta = {
        "source": safe_source_label(source), "timezone": timezone, "currency": m.currency,
        "as_of": m.as_of, "extracted_at": ext_ts.isoformat(), "mapping": m.name,
        "notes": notes, "masked": False,
    }
    return CrmData(result.tables, result.quarantine, result.findings, result.counts,
                   result.completeness, fp, meta)


def _is_large(source, mapping, pushdown: bool | None) -> bool:
    if pushdown is False:
        return False
    from .pushdown.source import pushdown_wanted

    return pushdown_wanted(source, export_mapping(source, mapping), pushdown)


def _read_large(source, *, timezone, mapping, extracted_at, as_of) -> CrmData:
    from .pushdown.source import read_large

    _check_timezone(timezone)
    tables, result, aggregates, fp, meta = read_large(source, timezone=timezone, mapping=mapping,
                                                      extracted_at=extracted_at, as_of=as_of)
    return CrmData(tables, result.quarantine, result.findings, result.counts, result.completeness, fp,
                   meta, aggregates)


def _check_timezone(tz: str) -> None:
    try:
        pd.Timestamp("2024-01-01", tz=tz)
    except Exception:  # noqa: BLE001 - any failure means the name is not a timezone
        raise CrmConfigError(f"unknown timezone {tz!r}; use an IANA name such as UTC or "
                             "Europe/Berlin") from None


def _convert_tz(data: CrmData, tz: str) -> CrmData:
    _check_timezone(tz)
    tables = {}
    for name, df in data.tables.items():
        df = df.copy()
        for c in TABLES[name].of_kind("timestamp"):
            df[c] = df[c].dt.tz_convert(tz)
        tables[name] = df
    aggregates = {}
    for name, df in data.aggregates.items():
        if name == "activity_weeks":
            continue  # local weeks of the snapshot's timezone: the rows answer in another one
        df = df.copy()
        for c in df.columns:
            if isinstance(df[c].dtype, pd.DatetimeTZDtype):
                df[c] = df[c].dt.tz_convert(tz)
        aggregates[name] = df
    return CrmData(tables, data.quarantine, data.findings, data.counts, data.completeness,
                   data.fingerprint, dict(data.meta, timezone=tz), aggregates)


__all__ = ["CrmData", "open_data", "export_settings", "CrmDataError"]
