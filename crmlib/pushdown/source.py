"""The load step for a large source: heavy tables audited and aggregated where they lie.

A source is *large* when ``export.yaml`` says ``pushdown: true``, when
:func:`crmlib.data.open_data` is called with ``pushdown=True``, or (``pushdown: auto``,
the default) when it is a folder whose ``activities.parquet`` has more than
:data:`PUSHDOWN_ROWS` rows. For a large source :func:`read_large`

1. reads and audits the small tables (users, stages, campaigns, targets, fx_rates) in
   pandas as always;
2. opens the large light tables (:data:`ENGINE_LIGHT`: accounts, deals, leads, contacts,
   tickets, surveys) and the heavy tables (activities, stage_history, orders) in the engine
   (DuckDB over the Parquet files, or the database's own tables) and audits them there
   (:mod:`crmlib.pushdown.audit`): input = kept + quarantined holds for them as for the
   rest. The light tables stay in pandas instead when one of them is not a Parquet file
   (or a database table) or its mapping maps values, derives or fixes columns;
3. computes the aggregates (:mod:`crmlib.pushdown.expressions`) over the heavy tables'
   clean rows up to ``as_of``;
4. has the engine write the clean rows (of ``activities`` those of the last
   ``pushdown_window_days``: every row with an event on or after the window's start, plus
   every open task) to Parquet files with the canonical column types, which the tables of
   the returned data read when first used (a report that needs four columns of the
   deals reads those four): no table of the engine enters pandas whole during the load.

Settings in export.yaml: ``pushdown`` (true / false / auto), ``pushdown_window_days``
(default :data:`WINDOW_DAYS`: the 12 periods of a weekly report, its year-ago
comparison and a 52-week scan with its 8-week baseline), ``pushdown_memory`` (DuckDB's
memory limit; it spills to disk beyond. Default: 32 bytes per row of ``activities.parquet``
between 1 and 4 GiB, i.e. 1 GiB up to 33M activities and 3 GiB at 100M, whose 13M
owner-week-type groups DuckDB cannot aggregate in less; 1 GiB for a database). When the
engine runs out of it, the load stops with one line naming the setting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile
from datetime import timezone as dt_timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CrmConfigError, CrmDataError
from ..load import Mapping, export_mapping, is_database_url, read_source, resolve_url, safe_source_label
from ..memory import release
from ..schema import TABLES, empty_frame, spec
from . import backends

PUSHDOWN_ROWS = 2_000_000  # activities rows from which a Parquet folder is read as a large source
WINDOW_DAYS = 455  # 65 weeks of activity rows
ENGINE_MEMORY = "1GB"  # the engine's memory limit for a database source (a folder: see _engine_memory)
ENGINE_BYTES_PER_ROW = 32
ENGINE_MEMORY_RANGE = (1, 4)  # GiB
HEAVY = backends.HEAVY_TABLES
WINDOWED = ("activities",)  # the heavy tables whose rows come as a window (the others whole)
#: the light tables audited in the engine, in an order in which every table a table refers to comes first
ENGINE_LIGHT = ("accounts", "deals", "leads", "contacts", "tickets", "surveys")
_DB_SUFFIXES = (".duckdb",)

__all__ = ["PUSHDOWN_ROWS", "WINDOW_DAYS", "ENGINE_LIGHT", "pushdown_wanted", "read_large", "activity_window"]


def pushdown_wanted(source, mapping: Mapping, pushdown: bool | None) -> bool:
    """Whether ``source`` is read as a large source (see the module's docstring)."""
    if pushdown is not None:
        return bool(pushdown)
    setting = mapping.raw.get("pushdown", "auto")
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() != "auto":
        raise CrmConfigError(f"export.yaml: pushdown is {setting!r}; use true, false or auto")
    src = str(source)
    if is_database_url(src) or not Path(src).is_dir():
        return False
    path = Path(src) / "activities.parquet"
    if not path.exists():
        return False
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows > PUSHDOWN_ROWS


def _window_days(m: Mapping, window_days) -> float:
    value = window_days if window_days is not None else m.raw.get("pushdown_window_days", WINDOW_DAYS)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise CrmConfigError(f"pushdown_window_days must be a number of days, not {value!r}") from None
    if value <= 0:
        raise CrmConfigError(f"pushdown_window_days must be positive, not {value:g}")
    return value


def _is_database(src: str) -> bool:
    return is_database_url(src) or Path(src).suffix.lower() in _DB_SUFFIXES


def _engine_light(source, m: Mapping) -> tuple[str, ...]:
    """The light tables the engine audits: those of :data:`ENGINE_LIGHT` the source has, when
    each is one Parquet file (or a database table) without value maps, derived or constant
    columns in the mapping; otherwise none (the light tables are audited in pandas)."""
    from ..load import _find_files

    src = str(source)
    present = []
    for table in ENGINE_LIGHT:
        tm = m.tables.get(table)
        if tm is not None and (tm.values or tm.derive or tm.constants):
            return ()
        if _is_database(src):
            present.append(table)  # a table the database lacks is skipped when it is opened
            continue
        paths = _find_files(Path(src), table, tm)
        if not paths:
            continue
        if len(paths) > 1 or not paths[0].name.lower().endswith((".parquet", ".pq")):
            return ()
        present.append(table)
    return tuple(present)


def _engine_sources(source: str, m: Mapping, con, names) -> tuple[dict, dict, list[Path], dict]:
    """The tables ``names`` as Ibis tables with ``_pos``: (tables, labels, files, row offsets).

    The row a user finds a record at is ``_pos`` + its offset: file rows count from 1; a
    database table with ``export_row`` (see :func:`crmlib.db.write_database`) quotes that.
    """
    import ibis

    src = str(source)
    tables, labels, files, offsets = {}, {}, [], {}
    if _is_database(src):
        where = {"database": "src"} if con.name == "duckdb" else {}
        have = con.list_tables(**where)
        for table in names:
            tm = m.tables.get(table)
            db_name = (tm.file if tm and isinstance(tm.file, str) else None) or next(
                (n for n in have if n.lower() == table), None)
            if db_name is None:
                continue
            if db_name not in have:
                raise CrmDataError(f"the mapping names table {db_name!r} for {table}, but the database "
                                   "has no such table", table=table)
            t = con.table(db_name, **where)
            if "export_row" in t.columns:
                t, offsets[table] = t.mutate(**{backends.POSITION: t["export_row"].cast("int64")}).drop("export_row"), 0
            else:
                t, offsets[table] = t.mutate(**{backends.POSITION: ibis.row_number()}), 1
            tables[table], labels[table] = t, db_name
        return tables, labels, files, offsets
    from ..load import _find_file

    folder = Path(src)
    for table in names:
        path = _find_file(folder, table, m.tables.get(table))
        if path is None:
            continue
        if not path.name.lower().endswith((".parquet", ".pq")):
            raise CrmDataError(f"{path.name}: a large source needs its heavy tables ({', '.join(HEAVY)}) as "
                               "Parquet (the engine reads them where they lie); convert it, or read the export "
                               "whole with `pushdown: false` in export.yaml", table=table, source=path.name)
        tables[table], labels[table], offsets[table] = backends.read_parquet(con, path, table), path.name, 1
        files.append(path)
    return tables, labels, files, offsets


def _connect(source: str, m: Mapping, workdir: Path, memory: str):
    """The engine: PostgreSQL for a PostgreSQL source, else DuckDB in a scratch file in
    ``workdir`` (where the typed heavy tables are materialised, compressed, once) with a
    DuckDB source attached read-only as ``src``."""
    import ibis

    src = str(source)
    url = resolve_url(src) if is_database_url(src) else None
    if url is not None and url.startswith(("postgresql", "postgres")):
        return backends.connect("postgres", url=src)
    if url is not None and not url.startswith("duckdb:///"):
        raise CrmConfigError(f"{safe_source_label(src)}: a large source in a database is read from "
                             "PostgreSQL or DuckDB; read other databases whole (`pushdown: false`)")
    con = ibis.duckdb.connect(str(workdir / "engine.duckdb"), memory_limit=memory,
                              temp_directory=str(workdir / "spill"), preserve_insertion_order=True)
    db_file = url[len("duckdb:///"):] if url is not None else (src if Path(src).suffix.lower() in _DB_SUFFIXES
                                                              else None)
    if db_file is not None:
        con.attach(str(Path(db_file).resolve()), "src", read_only=True)
    return con


def _engine_memory(source: str, m: Mapping) -> str:
    """DuckDB's memory limit: ``pushdown_memory`` from export.yaml, else by the size of the
    activities (see the module's docstring)."""
    if m.raw.get("pushdown_memory") is not None:
        return str(m.raw["pushdown_memory"])
    path = Path(source) / "activities.parquet"
    if _is_database(source) or not path.exists():
        return ENGINE_MEMORY
    import pyarrow.parquet as pq

    gib = pq.ParquetFile(path).metadata.num_rows * ENGINE_BYTES_PER_ROW / 2**30
    low, high = ENGINE_MEMORY_RANGE
    return f"{min(max(gib, low), high):.1f}GiB"


def _out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryException"  # DuckDB's, however ibis raises it


def _instant(value, tz: str) -> pd.Timestamp:
    from ..periods import as_of_instant

    return as_of_instant(value, tz)


def read_large(source, *, timezone: str, mapping=None, extracted_at=None, as_of=None,
               window_days=None, workdir: str | os.PathLike | None = None):
    """Read, audit and aggregate a large source; returns the pieces of a :class:`crmlib.data.CrmData`.

    Returns ``(tables, audit_result, aggregates, fingerprint, meta)``; ``tables`` reads the
    engine's tables from files in a temporary folder of its own, removed with it.
    """
    from ..audit import audit, empty_deals_error, no_deals_error
    from ..data import fingerprint_files, fingerprint_frames
    from ..periods import default_as_of
    from .audit import audit_in_engine, flag_missing_current_stage, history_missing_current_stage, merge_results

    m = export_mapping(source, mapping)
    days = _window_days(m, window_days)
    in_engine = _engine_light(source, m)
    light_names = tuple(t for t in TABLES if t not in HEAVY and t not in in_engine)
    raw_light = read_source(source, mapping=m, tables=light_names)
    ext = extracted_at or m.extracted_at
    notes: list[str] = []
    if ext is None:
        ext_ts = pd.Timestamp(dt.datetime.now(dt_timezone.utc)).floor("s")
        notes.append("no extracted_at recorded: events after the time of loading count as future")
    else:
        ext_ts = pd.Timestamp(ext)
        ext_ts = ext_ts.tz_localize(m.timezone) if ext_ts.tzinfo is None else ext_ts
    ext_ts = ext_ts.tz_convert(timezone)
    light = audit(raw_light, timezone=timezone, extracted_at=ext_ts, require_deals=not in_engine)
    light_files = list(raw_light.files)
    deals_read = "deals" in raw_light.tables
    deals_source = raw_light.tables["deals"].source if deals_read else None
    deals_rows = _kept_rows(raw_light, light, "deals") if deals_read else None
    del raw_light  # the light tables as read: only the audited ones are kept
    release()
    if as_of is None:
        as_of = m.as_of or default_as_of(dt.date.today())
    as_of_ts = _instant(as_of, timezone)
    rows_from = as_of_ts - pd.Timedelta(days=days)

    own_tmp = workdir is None
    work = Path(tempfile.mkdtemp(prefix="crm-pushdown-")) if own_tmp else Path(workdir)
    keep = Path(tempfile.mkdtemp(prefix="crm-tables-"))  # the clean rows the tables read
    memory = _engine_memory(str(source), m)
    con = _connect(str(source), m, work, memory)
    try:
        with backends.quiet():  # ibis' own deprecation notes
            raw, labels, files, offsets = _engine_sources(str(source), m, con, in_engine + HEAVY)
            audited: dict = {}
            for name in in_engine + HEAVY:  # each table after those it refers to
                if name in raw:
                    audited[name] = audit_in_engine(con, raw[name], name, source=labels[name], mapping=m,
                                                light=light, timezone=timezone, extracted_at=ext_ts,
                                                row_offset=offsets[name], engine=audited)
            if in_engine and "deals" not in audited:
                raise no_deals_error(safe_source_label(source))
            if "deals" in audited and not audited["deals"].counts["input"]:
                raise empty_deals_error(audited["deals"].source)
            deal_flags = None
            if "stage_history" in audited and "deals" in audited:
                flag_missing_current_stage(con, audited["deals"], audited["stage_history"].kept, timezone)
            elif "stage_history" in audited:
                deal_flags = history_missing_current_stage(con, audited["stage_history"].kept,
                                                           light.tables["deals"])
            result = merge_results(light, audited, deal_flags=deal_flags, deals_source=deals_source,
                                   deals_rows=deals_rows, timezone=timezone)
            heavy = {name: h.kept for name, h in audited.items() if name in HEAVY}
            agg_names = backends.run_to_files(con, heavy, keep, as_of=as_of_ts, timezone=timezone)
            written = {}
            for name, h in audited.items():
                expr = activity_window(h.kept, rows_from, con.name) if name in WINDOWED else h.kept
                written[name] = _write_rows(con, expr, name, work / f"{name}.parquet")
        _close(con)  # before the rows are rewritten: the engine's buffers are not held beside them
        con = None
        release()
        for name, path in written.items():
            _canonical_file(path, keep / f"{name}.parquet", name, timezone)
    except BaseException as exc:
        import shutil

        shutil.rmtree(keep, ignore_errors=True)
        if _out_of_memory(exc):
            raise CrmConfigError(
                f"{safe_source_label(source)}: the engine ran out of its memory limit "
                f"({memory}) while auditing or aggregating this export; set "
                "pushdown_memory in export.yaml higher (e.g. pushdown_memory: 4GB)") from None
        raise
    finally:
        if con is not None:
            _close(con)
        if own_tmp:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    release()
    tables, aggregates = _tables(keep, written, result.tables, agg_names)
    if light_files or files:
        fp = fingerprint_files(light_files + files, m)
    else:  # a database: the clean rows and aggregates the engine wrote stand for its tables
        both = fingerprint_frames(dict(result.tables)) + fingerprint_files(sorted(keep.glob("*.parquet")), m)
        fp = hashlib.sha256(both.encode()).hexdigest()[:16]
    meta = {
        "source": safe_source_label(source), "timezone": timezone, "currency": m.currency,
        "as_of": m.as_of, "extracted_at": ext_ts.isoformat(), "mapping": m.name,
        "notes": result.notes + notes, "masked": False,
        "pushdown": {"engine": "duckdb" if not str(source).startswith(("postgres", "env:")) else "postgres",
                     "as_of": as_of_ts.isoformat(), "window_days": days,
                     "rows_from": {name: rows_from.isoformat() for name in WINDOWED if name in audited}},
    }
    return tables, result, aggregates, fp, meta


class _Scratch:
    """A folder removed when the last mapping that reads from it is gone."""

    def __init__(self, folder: Path):
        import shutil
        import weakref

        self.folder = folder
        weakref.finalize(self, shutil.rmtree, str(folder), True)


def _tables(folder: Path, written: dict, frames: dict, aggregates: list[str]):
    """(tables, aggregates): the tables in their canonical order, those the engine wrote read
    from ``folder`` when first used, the others (audited in pandas) as they are; the
    aggregates read from ``folder`` too. The folder goes with both mappings."""
    from ..data import _LazyTables

    tables = _LazyTables(folder, [])
    for name in TABLES:
        if name in written:
            tables.names.append(name)
        elif name in frames:
            tables[name] = frames[name]
    aggs = _LazyTables(folder, aggregates, prefix="_agg_")
    tables.scratch = aggs.scratch = _Scratch(folder)
    return tables, aggs


def _close(con) -> None:
    """Disconnect the engine. DuckDB's scratch file is thrown away, so it is not checkpointed
    on the way out (that would write, and hold in memory, what is about to be deleted)."""
    if con.name == "duckdb":
        with contextlib.suppress(Exception):
            con.raw_sql("PRAGMA disable_checkpoint_on_shutdown")
    con.disconnect()


def _kept_rows(raw_light, light, table: str) -> np.ndarray:
    """The source row numbers of the kept rows of a light table, in their order."""
    rows = raw_light.tables[table].rows
    q = light.quarantine
    bad = set(q.loc[(q["table"] == table) & (q["check"] != "ragged_row"), "row"].astype("int64"))
    return np.array([r for r in rows if int(r) not in bad], dtype="int64")


def activity_window(kept, rows_from: pd.Timestamp, dialect: str | None = None):
    """The activities a report may need from ``rows_from`` on: any with an event (logged,
    due or completed) on or after it, and every task or meeting still open."""
    from .expressions import micros, to_micros

    start = to_micros(rows_from)
    return kept.filter((micros(kept.created_at, dialect) >= start) | (micros(kept.completed_at, dialect) >= start)
                       | (micros(kept.due_at, dialect) >= start)
                       | (kept.completed_at.isnull() & kept.due_at.notnull() & kept.type.isin(["task", "meeting"])))


def _write_rows(con, expr, table: str, path: Path) -> Path:
    """A kept table (or a window of it) written by the engine to Parquet, so the rows stream
    out of it: canonical columns, rows in the export's order."""
    cols = spec(table).column_names
    ordered = expr.order_by(backends.POSITION).select(*cols)
    with backends.quiet():
        con.to_parquet(ordered, str(path))
    return path


def _canonical_file(path: Path, target: Path, table: str, timezone: str) -> Path:
    """Rewrite the engine's Parquet file of a table with the canonical column types (text, the
    timezone's timestamps, Int64, boolean: what pandas reads back as the audit's own frames),
    batch by batch, and delete the engine's file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.Schema.from_pandas(empty_frame(table, timezone), preserve_index=False)
    source = pq.ParquetFile(path)
    with pq.ParquetWriter(target, schema) as writer:
        for batch in source.iter_batches(batch_size=500_000, columns=schema.names):
            writer.write_table(pa.Table.from_batches([batch]).select(schema.names).cast(schema))
    source.close()
    path.unlink(missing_ok=True)
    return target
