"""Where the aggregations run: DuckDB (the embedded default), PostgreSQL or Spark, through Ibis.

* :func:`connect` opens a backend by name: ``duckdb`` (in memory, or a ``.duckdb`` file),
  ``postgres`` (a URL; the password comes from ``CRM_DB_PASSWORD`` or the URL held in an
  environment variable, never from an argument), ``pyspark`` (a SparkSession: a local one
  by default, or the session of a cluster the caller built);
* :func:`parquet_tables` exposes a folder's Parquet files as Ibis tables (DuckDB reads them
  out of core; nothing is loaded into Python), each with ``_pos``, the row's position in
  its file;
* :func:`run` executes the expressions of :mod:`crmlib.pushdown.expressions` and returns
  the same frames :mod:`crmlib.pushdown.frames` computes in memory.

Trino, Snowflake, BigQuery and the other engines Ibis speaks run the same expressions:
``ibis.connect(url)`` gives a backend, and :func:`run` takes any backend.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import pandas as pd

from ..errors import CrmConfigError
from .expressions import MONDAY_DAY, aggregate_expressions
from .frames import AGGREGATES, finish

HEAVY_TABLES = ("activities", "stage_history", "orders")
POSITION = "_pos"  # the row's position in the export (0-based): ties and "first" follow it

#: the columns of each aggregate, in order (the in-memory frames have the same)
COLUMNS = {
    "activity_weeks": ["owner_id", "week", "type", "done", "scheduled"],
    "deal_activity": ["deal_id", "activities", "call", "email", "meeting", "task", "note", "first_at", "last_at"],
    "activity_firsts": ["type", "direction", "with_lead", "first_at"],
    "stage_durations": ["deal_id", "stage", "visits", "completed", "days", "completed_days", "first_entered_at",
                        "last_entered_at", "current"],
    "customer_orders": ["account_id", "currency", "orders", "revenue", "cost", "first_at", "last_at"],
}
_TEXT = {"owner_id", "type", "deal_id", "direction", "stage", "account_id", "currency"}
_BOOL = {"with_lead", "current"}
_FLOAT = {"days", "completed_days", "revenue", "cost"}

__all__ = ["HEAVY_TABLES", "POSITION", "COLUMNS", "connect", "spark_session", "parquet_tables",
           "run", "from_engine"]


def connect(backend: str = "duckdb", *, database: str | os.PathLike | None = None, url: str | None = None,
            session=None, threads: int | None = None):
    """An Ibis backend: ``duckdb`` (in memory, or ``database`` = a .duckdb file), ``postgres`` (``url``, or ``env:NAME``) or ``pyspark`` (``session``, else a local one)."""
    import ibis

    if backend == "duckdb":
        kw = {"threads": int(threads)} if threads else {}
        return ibis.duckdb.connect(str(database) if database else ":memory:", **kw)
    if backend == "postgres":
        from ..load import resolve_url

        if not url:
            raise CrmConfigError("the postgres backend needs a URL (postgresql://user@host/db or env:NAME)")
        full = resolve_url(url)
        return ibis.connect(full.replace("postgresql+psycopg://", "postgres://")
                            .replace("postgresql://", "postgres://"))
    if backend == "pyspark":
        return ibis.pyspark.connect(session or spark_session())
    raise CrmConfigError(f"unknown engine {backend!r}; use duckdb, postgres or pyspark")


def spark_session(*, master: str = "local[1]", app_name: str = "crmlib", warehouse: str | os.PathLike | None = None):
    """A SparkSession in UTC: a local one by default, or ``master`` = a cluster's URL (``spark://host:7077``).

    ``warehouse``: where Spark may write managed tables (the expressions need none).
    """
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2"))
    if warehouse is not None:
        builder = builder.config("spark.sql.warehouse.dir", str(Path(warehouse).resolve()))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def parquet_tables(con, folder: str | os.PathLike, tables=HEAVY_TABLES) -> dict:
    """The Parquet files ``<table>.parquet`` of ``folder`` as Ibis tables of ``con``, each with ``_pos``.

    DuckDB reads the files where they lie (``read_parquet(..., file_row_number=true)``);
    other backends read them with their own Parquet reader and number the rows in file
    order.
    """
    folder = Path(folder)
    out = {}
    for name in tables:
        path = next((p for p in (folder / f"{name}.parquet", folder / f"{name}.pq") if p.exists()), None)
        if path is None:
            continue
        out[name] = read_parquet(con, path, name)
    return out


def read_parquet(con, path: str | os.PathLike, name: str):
    """One Parquet file as an Ibis table with ``_pos`` (its 0-based row number)."""
    import ibis
    import pyarrow.parquet as pq

    local = Path(str(path)).exists()  # a cluster's path (s3a://, hdfs://) is read by the engine alone
    numbered = local and POSITION in pq.read_schema(path).names  # the writer kept the export's order
    if con.name == "duckdb":
        pos = "" if numbered else f", file_row_number AS {POSITION}"
        sql = (f"SELECT * EXCLUDE (file_row_number){pos} "
               f"FROM read_parquet('{_quote(path)}', file_row_number = true)")
        with quiet():
            return con.sql(sql)
    with quiet():
        t = con.read_parquet(str(path), table_name=f"crm_{name}")
    return t if numbered else t.mutate(**{POSITION: ibis.row_number()})


def _quote(path) -> str:
    return str(Path(path).resolve()).replace("'", "''")


def from_engine(name: str, frame: pd.DataFrame, *, timezone: str) -> pd.DataFrame:
    """An engine's result as the in-memory frame of the same aggregate (names, dtypes, order)."""
    return finish(name, _converted(name, frame, timezone))


def _converted(name: str, frame: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """An engine's rows with the in-memory frame's names and dtypes (in their order)."""
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        s = frame[col]
        if col.endswith("_us"):
            target = col[:-3] + "_at"
            s = pd.to_numeric(s).astype("Int64")
            stamps = pd.to_datetime(s.astype("float64"), unit="us", utc=True)
            # float64 is exact for microsecond instants of this era (below 2**53)
            out[target] = stamps.dt.tz_convert(timezone).astype(f"datetime64[us, {timezone}]")
        elif col == "week":
            days = (pd.to_numeric(s).astype("int64") * 7 + MONDAY_DAY)
            out[col] = (pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D")).astype("datetime64[us]")
        elif col in _TEXT:
            out[col] = s.astype("str")
        elif col in _BOOL:
            out[col] = s.astype(bool)
        elif col in _FLOAT:
            out[col] = pd.to_numeric(s).astype("float64")
        else:
            out[col] = pd.to_numeric(s).astype("int64")
    return out[COLUMNS[name]]


def run(con, tables: dict, *, as_of, timezone: str = "UTC", since=None,
        names: tuple[str, ...] | None = None) -> dict[str, pd.DataFrame]:
    """Run the aggregations on ``con`` over its Ibis ``tables``: name -> frame (as :func:`crmlib.pushdown.frames.aggregate_frames`)."""
    exprs = aggregate_expressions(tables, as_of=as_of, timezone=timezone, since=since, dialect=con.name)
    out = {}
    for name, expr in exprs.items():
        if names is not None and name not in names:
            continue
        out[name] = from_engine(name, execute(con, expr), timezone=timezone)
    return out


def run_to_files(con, tables: dict, folder: str | os.PathLike, *, as_of, timezone: str = "UTC",
                 prefix: str = "_agg_", batch_rows: int = 1_000_000) -> list[str]:
    """Run the aggregations on ``con`` and write each to ``folder/<prefix><name>.parquet``: the frame
    :func:`run` returns (names, dtypes, order), streamed from the engine in batches, so an
    aggregate of tens of millions of rows never sits in memory whole. Returns the names written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    exprs = aggregate_expressions(tables, as_of=as_of, timezone=timezone, dialect=con.name)
    written = []
    for name, expr in exprs.items():
        # the order of finish(): by the keys, missing last (the engines' default for ascending)
        keys = [k if k in expr.columns else k[:-3] + "_us" for k in AGGREGATES[name][0]]
        ordered = expr.order_by(keys)
        path = Path(folder) / f"{prefix}{name}.parquet"
        writer = None
        try:
            with quiet():
                batches = con.to_pyarrow_batches(ordered, chunk_size=batch_rows)
                for batch in batches:
                    part = pa.Table.from_pandas(_converted(name, batch.to_pandas(), timezone), preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(path, part.schema)
                    writer.write_table(part.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # no rows: the empty frame, with its columns and dtypes
            empty = pd.DataFrame({c: pd.Series(dtype="object") for c in ordered.schema().names})
            from_engine(name, empty, timezone=timezone).to_parquet(path, index=False)
        written.append(name)
    return written


def execute(con, expr) -> pd.DataFrame:
    """``con.execute(expr)`` as a pandas frame."""
    with quiet():
        return con.execute(expr)


@contextlib.contextmanager
def quiet():
    """Silence the deprecation notes ibis 12 and pyspark raise inside themselves (duckdb's
    fetch_arrow_table, pandas' future.infer_string and copy keyword): they concern those
    libraries, not their callers."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis\.")
        warnings.filterwarnings("ignore", message=r".*future\.infer_string.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pyspark\.")  # pandas 3 notes
        yield

