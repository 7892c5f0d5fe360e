"""The curator's allocators: what keeps its resident memory bounded chunk after chunk.

A curator builds and drops a chunk's tables and documents again and again, from two threads (the
batch builder of :mod:`lake.prefetch`, and the finaliser's). Allocators keep what a thread freed
for reuse, so without these its peak RSS at 1.13M rows grew with every change of thread or pool
(docs/benchmarks.md has the figures):

- :func:`one_malloc_arena`: every thread on glibc's main arena, not one arena per thread;
- :func:`arrow_on_malloc`: Arrow's buffers from ``malloc``, not from the allocator pyarrow bundles;
- :func:`return_free_memory`: what ``malloc`` holds free handed back to the system, before the
  run's finalisation, the last and largest allocation of a run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_ARENA_MAX = -8  # glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name)
    except OSError:  # no C library found
        return None


def one_malloc_arena() -> bool:
    """Every thread of this process allocates from glibc's main arena (threads started before keep
    the arenas they have). False where the C library is not glibc: nothing is changed."""
    libc = _libc()
    try:
        return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, 1))
    except AttributeError:  # not glibc (musl has no mallopt)
        return False


def arrow_on_malloc() -> str:
    """Arrow's buffers from the C library's ``malloc`` instead of the allocator pyarrow bundles
    (mimalloc or jemalloc), which keeps what was freed for reuse: the curator builds and drops a
    chunk's tables again and again, and its peak RSS at 1.13M rows fell from 590-594 to 504 MB
    with no measurable change of CPU (docs/benchmarks.md).

    Arrow's C++ code (the Parquet writer's buffers among them) takes its default pool from
    ``ARROW_DEFAULT_MEMORY_POOL`` once, when pyarrow loads: so this sets that variable, and must
    run before pyarrow is imported to act on them (pyarrow's own calls follow either way). The
    compaction's peak fell from 161-216 to 111-147 MB offline with the C++ code's buffers from
    malloc too. An ``ARROW_DEFAULT_MEMORY_POOL`` set in the environment wins. Returns the backend
    of pyarrow's default pool."""
    loaded = "pyarrow" in sys.modules
    chosen = os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    import pyarrow as pa

    if loaded and chosen == "system":  # too late for the C++ default: pyarrow's own calls at least
        pa.set_memory_pool(pa.system_memory_pool())
    return str(pa.default_memory_pool().backend_name)


def return_free_memory() -> bool:
    """The free memory ``malloc`` holds returned to the system (glibc's ``malloc_trim``): large
    blocks freed inside the heap stay resident otherwise. True if any was returned; False where
    the C library is not glibc."""
    libc = _libc()
    try:
        return libc is not None and bool(libc.malloc_trim(0))
    except AttributeError:  # not glibc
        return False
