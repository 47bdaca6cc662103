"""Hand freed memory back to the system.

pandas frames live in memory from two allocators: Arrow's pool (strings, Parquet reads)
and the C library's ``malloc`` (NumPy arrays). Both keep blocks that were freed for
later use, so a process that once held a large intermediate result keeps its footprint
long after the result is gone. In a report kernel that runs beside another one, and in
the step that reads a large export, that footprint is what the machine runs out of.
:func:`release` returns the free blocks of both: Arrow's ``release_unused`` and glibc's
``malloc_trim(0)`` (elsewhere, such as macOS or musl, only Arrow's pool is trimmed).
It takes milliseconds and changes no data.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools

__all__ = ["release", "release_after_each_cell", "one_chunk", "as_categorical", "read_parquet_lean"]


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    with contextlib.suppress(OSError, AttributeError):
        trim = ctypes.CDLL(name).malloc_trim
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
        return trim
    return None


def release() -> None:
    """Return the free blocks of Arrow's memory pool and of the C allocator to the system."""
    with contextlib.suppress(ImportError):
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def one_chunk(frame):
    """``frame`` with each Arrow-backed text column held as one contiguous block (in place; returned).

    A Parquet file read in row groups gives text columns in many chunks, and Arrow's
    ``take`` (behind ``iloc``, sorting and merging) first concatenates every chunk of a
    chunked column: picking 400,000 rows of a 4M-row id column briefly costs a copy of the
    whole column. Joined once after the read, later picks copy only the rows they keep.
    Values and dtypes do not change.
    """
    import pandas as pd
    import pyarrow as pa

    for col in frame.columns:
        values = frame[col].array
        if isinstance(values, pd.arrays.ArrowStringArray):
            data = values.__arrow_array__()
            if data.num_chunks > 1:
                joined = pa.chunked_array([data.combine_chunks()], type=data.type)
                frame[col] = pd.Series(pd.arrays.ArrowStringArray(joined, dtype=values.dtype), index=frame.index,
                                       name=col)
    return frame


def as_categorical(array, *, most: int):
    """A text column (an Arrow array) as a pandas Categorical when it holds at most ``most``
    distinct values, else None: categories in sorted order (so sorting by the column sorts
    as the text would), a missing value as code -1."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    head = array.slice(0, 2 * most + 1)  # an id column shows its many values early: no full encoding
    if len(head) > most and pc.count_distinct(head, mode="only_valid").as_py() > most:
        return None
    enc = pc.dictionary_encode(array)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks() if enc.num_chunks != 1 else enc.chunk(0)
    if len(enc.dictionary) > most:
        return None
    order = pc.array_sort_indices(enc.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    codes = np.full(len(enc), -1, dtype=np.int32)
    valid = enc.indices.is_valid().to_numpy(zero_copy_only=False)
    codes[valid] = rank[enc.indices.drop_null().to_numpy()]
    cats = pd.Index(enc.dictionary.take(pa.array(order)).to_pylist(), dtype="str")
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cats))


def read_parquet_lean(path, columns=None, *, categories_below: float | None = None):
    """``pandas.read_parquet(path, columns=columns)`` passed through :func:`one_chunk`, read one
    column at a time.

    Reading a whole file at once holds every column's Parquet pages and Arrow buffers before
    pandas takes them: for the ten-million-deal table (2.1 GiB in pandas) the process peaks
    at 3.8 GiB. Column by column, each column is read, joined into one block and handed to
    pandas before the next is read, and the peak stays near the frame's own size (2.1 GiB).
    The file's pandas metadata still sets the dtypes; a file written with its index falls
    back to the plain read.

    ``categories_below``: a text column whose distinct values number at most this share of
    the rows is read as a Categorical (:func:`as_categorical`): a stage, status, owner or
    currency repeated over millions of rows then takes one or two bytes a row instead of
    about fifteen.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    meta = f.schema_arrow.pandas_metadata or {}
    default = {"kind": "range", "name": None, "start": 0, "step": 1}
    if any(not isinstance(ix, dict) or {k: ix.get(k) for k in default} != default
           for ix in meta.get("index_columns", [])):  # an index of its own: pandas restores it
        return one_chunk(pd.read_parquet(path, columns=columns))
    names = list(columns) if columns is not None else list(f.schema_arrow.names)
    if not names:
        return pd.read_parquet(path, columns=names)
    parts = {}
    for name in names:
        table = f.read(columns=[name])
        col = table.column(0)
        if col.num_chunks > 1:
            table = table.set_column(0, table.field(0), pa.chunked_array([col.combine_chunks()], type=col.type))
        del col
        kind, cat = table.schema.field(0).type, None
        if categories_below and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            cat = as_categorical(table.column(0), most=int(categories_below * table.num_rows))
        parts[name] = pd.Series(cat, name=name) if cat is not None else table.to_pandas(self_destruct=True)[name]
        del table
        release()
    return pd.DataFrame(parts, copy=False)


def release_after_each_cell() -> bool:
    """In IPython (a notebook's kernel), :func:`release` after every cell; False outside IPython.

    Registered once per kernel, so re-running a report's first cell does not stack hooks.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    hooks = shell.events.callbacks.get("post_run_cell", [])
    if not any(getattr(h, "__name__", "") == "_release_after_cell" for h in hooks):
        shell.events.register("post_run_cell", _release_after_cell)
    return True


def _release_after_cell(result=None) -> None:
    release()
