"""A snapshot table left in its file: the metrics ask DuckDB for the few rows they need of it.

A large source's ``stage_history`` has several rows per deal (4.5 million for a million
deals): loaded into a report's kernel it costs more memory than anything else the report
holds, yet the reports want a few thousand numbers from it (each deal's stage at a
date, the norms per stage). :meth:`crmlib.data.CrmData.scan` hands such a table to the
metrics as a :class:`ParquetScan`; the metrics that accept one
(:mod:`crmlib.pushdown.history`) run their reduction in an in-process DuckDB over the
file and get back only the result. The definitions are the pandas ones, written once
more as Ibis expressions (:mod:`crmlib.pushdown.expressions`); the tests check that both
give the same frames.

DuckDB runs with a memory limit (``CRM_SCAN_MEMORY``, default :data:`SCAN_MEMORY`) and
spills its sorts to a temporary folder beyond it. Not all of its working memory is bound
by that limit: an exact quantile holds every value it ranks, so the stage norms of 45M
history rows (the size at 100M activities) take a process to 1.6 GiB, where the same in
pandas takes it to 9.7 GiB (``python benchmarks/history_scan.py``).
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import pandas as pd

SCAN_MEMORY = "1GiB"
_CACHE_SIZE = 8  # results kept per scan (a report asks for the same date several times)

__all__ = ["ParquetScan", "is_scan", "SCAN_MEMORY"]


def is_scan(obj) -> bool:
    """Whether ``obj`` is a :class:`ParquetScan` (the metrics branch on it)."""
    return isinstance(obj, ParquetScan)


class ParquetScan:
    """One canonical table in its snapshot Parquet file, read by DuckDB where it lies.

    ``len(scan)`` and ``scan.columns`` come from the file's metadata; :meth:`run` executes
    an Ibis expression over the file and returns a pandas frame; :meth:`cached` keeps the
    last few results. Nothing of the table enters Python but those results.
    """

    def __init__(self, name: str, path: str | os.PathLike):
        import pyarrow.parquet as pq

        self.name = name
        self.path = Path(path)
        meta = pq.ParquetFile(self.path)
        self.schema = meta.schema_arrow
        self._rows = meta.metadata.num_rows
        self._results: OrderedDict = OrderedDict()
        #: as a frame's attrs: a large source's heavy table carries its window info here
        self.attrs: dict = {}

    def __len__(self) -> int:
        return self._rows

    @property
    def columns(self) -> list[str]:
        return [n for n in self.schema.names if not n.startswith("__")]

    def __repr__(self) -> str:
        return f"<{self.name}: {self._rows:,} rows scanned by DuckDB from {self.path.name}>"

    # ------------------------------------------------------------------ engine
    def run(self, build) -> pd.DataFrame:
        """``build(table)`` (an Ibis expression over the file as a table with ``_pos``, the row's
        position in the file, which is the table's order in the snapshot) as a pandas frame.

        Each run opens its own in-memory DuckDB and closes it after: DuckDB keeps what it
        allocated until it closes, and a report's kernel should not carry a query's
        working memory for the rest of the report.
        """
        import ibis

        from .backends import quiet, read_parquet

        memory = os.environ.get("CRM_SCAN_MEMORY") or SCAN_MEMORY
        with tempfile.TemporaryDirectory(prefix="crm-scan-") as spill, quiet():
            con = ibis.duckdb.connect(":memory:", memory_limit=memory, temp_directory=spill,
                                      preserve_insertion_order=True)
            try:
                return con.to_pyarrow(build(read_parquet(con, self.path, self.name))).to_pandas()
            finally:
                con.disconnect()

    def cached(self, key, compute):
        """``compute()``, remembered under ``key`` (the last few results are kept)."""
        if key in self._results:
            self._results.move_to_end(key)
            return self._results[key]
        value = compute()
        self._results[key] = value
        while len(self._results) > _CACHE_SIZE:
            self._results.popitem(last=False)
        return value

    def timestamps(self, us: pd.Series, column: str) -> pd.Series:
        """Integer microseconds since 1970 (UTC) as the file's ``column`` reads in pandas
        (same unit and timezone), so results mix with the tables read whole."""
        import pyarrow as pa

        arr = pa.array(us.to_numpy(dtype="int64", na_value=0), type=pa.int64(),
                       mask=us.isna().to_numpy()).cast(pa.timestamp("us", tz="UTC"))
        target = self.schema.field(column).type
        return pd.Series(arr.cast(target).to_pandas(), index=us.index, name=column)

    def clear(self) -> None:
        """Forget the kept results."""
        self._results.clear()
