"""Write an export into a database as typed canonical tables, for ``--source <database>``.

``write_database(source, target)`` reads an export folder (any source
:func:`crmlib.load.read_source` reads) or takes a :class:`~crmlib.data.CrmData`, and writes
one table per canonical table into a database given as a SQLAlchemy URL, ``env:NAME`` (the
URL in an environment variable: the only way to pass a password) or a ``.sqlite``/``.db``/
``.duckdb`` file. Reading that database back with the export's settings (``mapping=`` the
folder's export.yaml) gives the same clean tables, the same quarantine and the same counts
as reading the folder.

Column types follow the column kinds of :mod:`crmlib.schema`:

=============================  =============================================================
kind                           SQL type
=============================  =============================================================
id, ref, text, category,       TEXT (ids keep their leading zeros)
currency
timestamp                      TIMESTAMP WITH TIME ZONE (PostgreSQL, DuckDB); SQLite has no
                               such type: ISO 8601 TEXT with the UTC offset
money                          NUMERIC(18, 4), the precision of SQL's money types
                               (DOUBLE PRECISION for a column with finer amounts)
float                          DOUBLE PRECISION
int                            BIGINT
bool                           BOOLEAN
=============================  =============================================================

Every table gets one more column, ``export_row`` (BIGINT): the record's row in the export
it came from. SQL keeps no row order (PostgreSQL puts a new row wherever a page has
room), and the audit keeps the *first* of two duplicates: the loader reads the rows in
``export_row`` order and quotes those numbers in the quarantine.

From a folder every row is written, the ones the audit will quarantine included, so that
the database is an export like the folder; a column with a value that does not parse is
written as TEXT as it was, and the audit quarantines that row again when it reads it. A
CSV row with the wrong number of fields cannot be a database row: it is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import CrmConfigError, CrmDataError
from .load import (ROW_COLUMN, Mapping, RawTable, coerce_table, is_database_url, read_source,
                   resolve_url, safe_source_label)
from .schema import TABLES, Column, spec

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .data import CrmData

DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".duckdb")
MONEY_PRECISION, MONEY_SCALE = 18, 4


def database_url(target: str | os.PathLike) -> str:
    """The SQLAlchemy URL of ``target``: a URL, ``env:NAME`` (read from the environment) or a
    ``.sqlite``/``.db``/``.duckdb`` file (created when missing). A password written into a
    URL is refused: it comes from the environment only."""
    text = str(target)
    if is_database_url(text):
        return resolve_url(text)
    path = Path(text).expanduser()
    if path.suffix.lower() not in DATABASE_SUFFIXES:
        raise CrmConfigError(f"database {text}: give a SQLAlchemy URL, env:NAME or a file ending "
                             f"in {', '.join(DATABASE_SUFFIXES)}")
    scheme = "duckdb" if path.suffix.lower() == ".duckdb" else "sqlite"
    return f"{scheme}:///{path.resolve()}"


def sql_type(column: Column, dialect: str) -> "sa.types.TypeEngine":
    """The SQL type a canonical column is written as in a database of ``dialect``."""
    import sqlalchemy as sa

    kind = column.kind
    if kind == "timestamp":
        return sa.Text() if dialect == "sqlite" else sa.DateTime(timezone=True)
    if kind == "money":
        return sa.Numeric(MONEY_PRECISION, MONEY_SCALE)
    if kind == "float":
        return sa.Double()
    if kind == "int":
        return sa.BigInteger()
    if kind == "bool":
        return sa.Boolean()
    return sa.Text()


def sql_frame(frame: pd.DataFrame, table: str, dialect: str, *, rows: np.ndarray,
              as_text: frozenset[str] = frozenset()
              ) -> tuple[pd.DataFrame, dict[str, "sa.types.TypeEngine"]]:
    """``frame`` (canonical columns, canonical dtypes) ready for ``to_sql``, with the SQL types.

    ``rows`` (each record's row in the export) becomes the ``export_row`` column. Columns in
    ``as_text`` hold the source's text and are written as TEXT; on SQLite timestamps become
    ISO 8601 text with the UTC offset (``2024-03-01T09:30:00+00:00``).
    """
    import sqlalchemy as sa

    t = spec(table)
    out = {ROW_COLUMN: pd.Series(np.asarray(rows, dtype="int64"), index=frame.index)}
    types: dict[str, sa.types.TypeEngine] = {ROW_COLUMN: sa.BigInteger()}
    for name in frame.columns:
        col = t.column(name)
        values = frame[name]
        if name in as_text:
            types[name] = sa.Text()
            out[name] = values.astype("object").where(values.notna(), None)
            continue
        types[name] = sql_type(col, dialect)
        if col.kind == "money" and not _fits_money_scale(values):
            types[name] = sa.Double()  # NUMERIC(18, 4) would round these amounts
        if col.kind == "timestamp" and dialect == "sqlite":
            values = values.dt.tz_convert("UTC").map(lambda v: None if pd.isna(v) else v.isoformat())
        out[name] = values
    return pd.DataFrame(out, index=frame.index), types


def _fits_money_scale(values: pd.Series) -> bool:
    """Whether every amount survives NUMERIC(18, 4) unchanged (at most four decimals)."""
    numbers = values.dropna().astype("float64")
    return bool(np.allclose(numbers, numbers.round(MONEY_SCALE), rtol=0.0, atol=1e-9))


@dataclass(frozen=True)
class _Rows:
    """One table to write: canonical columns, each record's export row, columns kept as text."""

    frame: pd.DataFrame
    rows: np.ndarray
    as_text: frozenset[str] = frozenset()


def _rows_from_export(raw_table: RawTable, mapping: Mapping) -> _Rows:
    """Every row of a raw table, typed; columns with a value that does not parse stay text."""
    if raw_table.ragged:
        line, reason = raw_table.ragged[0]
        raise CrmDataError(
            f"{raw_table.source}: line {line}: {reason}; a database table cannot hold that row: fix "
            f"the export ({len(raw_table.ragged)} such row(s)) before writing it to a database",
            table=raw_table.table, source=raw_table.source, row=line)
    typed, problems = coerce_table(raw_table, mapping, timezone="UTC")
    present = [c for c in spec(raw_table.table).column_names if c in raw_table.frame.columns]
    as_text = frozenset(p.column for p in problems)
    frame = typed[present].copy()
    for name in as_text:
        frame[name] = raw_table.frame[name].astype("str")
    return _Rows(frame, np.asarray(raw_table.rows, dtype="int64"), as_text)


def _insert(conn, name: str, data: pd.DataFrame, types: dict, dialect: str) -> None:
    """Create table ``name`` with ``types`` and insert ``data`` (DuckDB: one bulk INSERT from
    the registered frame, as its guide advises, instead of row-by-row parameters)."""
    if dialect != "duckdb":
        data.to_sql(name, conn, if_exists="replace", index=False, dtype=types, chunksize=10_000)
        return
    data.head(0).to_sql(name, conn, if_exists="replace", index=False, dtype=types)
    duck = conn.connection.driver_connection
    view = f"_crm_write_{name}"
    duck.register(view, data)
    try:
        conn.exec_driver_sql(f'INSERT INTO "{name}" BY NAME SELECT * FROM "{view}"')
    finally:
        duck.unregister(view)


def write_database(source: "CrmData | str | os.PathLike", target: str | os.PathLike, *,
                   mapping: Mapping | str | dict | None = None, replace: bool = False
                   ) -> dict[str, int]:
    """Write the canonical tables of ``source`` into the database ``target``; rows per table.

    ``source``: an export (folder, file or database, read with ``mapping``): every row is
    written; or a :class:`~crmlib.data.CrmData`: its clean tables are written. ``target``: a
    SQLAlchemy URL, ``env:NAME`` or a ``.sqlite``/``.db``/``.duckdb`` file. A canonical table
    that already exists is an error unless ``replace``. All tables are written in one
    transaction.

    Example::

        write_database("data/sample", "crm.duckdb")
        open_data("crm.duckdb", mapping="data/sample/export.yaml")  # the same CrmData
    """
    import sqlalchemy as sa

    from .data import CrmData

    url = database_url(target)
    label = safe_source_label(url)
    if isinstance(source, CrmData):
        tables = {name: _Rows(df, np.arange(1, len(df) + 1, dtype="int64"))
                  for name, df in source.tables.items()}
    else:
        raw = read_source(source, mapping=mapping)
        tables = {name: _rows_from_export(rt, raw.mapping) for name, rt in raw.tables.items()}
    written: dict[str, int] = {}
    engine = None
    try:
        engine = sa.create_engine(url)
        dialect = engine.dialect.name
        with engine.begin() as conn:
            clash = sorted(set(tables) & set(sa.inspect(conn).get_table_names()))
            if clash and not replace:
                raise CrmConfigError(f"{label}: table(s) {', '.join(clash)} already exist; "
                                     "write into an empty database or pass replace=True")
            for name in [n for n in TABLES if n in tables]:
                t = tables[name]
                data, types = sql_frame(t.frame, name, dialect, rows=t.rows, as_text=t.as_text)
                _insert(conn, name, data, types, dialect)
                written[name] = len(data)
    except ImportError as exc:
        raise CrmConfigError(f"{label}: the database driver is not installed ({exc})") from None
    except sa.exc.SQLAlchemyError as exc:
        msg = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise CrmDataError(f"{label}: cannot write the database ({msg})") from None
    finally:
        if engine is not None:
            engine.dispose()
    return written


__all__ = ["write_database", "database_url", "sql_type", "sql_frame"]
