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

__all__ = ["release", "release_after_each_cell"]


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
