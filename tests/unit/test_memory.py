"""``lake.memory``: the curator's allocator settings."""

from __future__ import annotations

import ctypes
import platform

import pytest

from lake.memory import arrow_on_malloc, one_malloc_arena, return_free_memory

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_one_malloc_arena_is_set_on_glibc():
    assert one_malloc_arena() is True


def test_arrow_allocates_with_malloc_unless_the_environment_names_a_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow as pa

    before = pa.default_memory_pool()
    try:
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
        assert arrow_on_malloc() == "system"
        held = pa.system_memory_pool().bytes_allocated()
        values = pa.array(range(100_000), pa.int64())
        assert pa.system_memory_pool().bytes_allocated() >= held + values.nbytes  # from malloc
        pa.set_memory_pool(before)
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", before.backend_name)
        assert arrow_on_malloc() == before.backend_name  # the operator's choice kept
    finally:
        pa.set_memory_pool(before)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_free_memory_inside_the_heap_is_returned_to_the_system():
    """Blocks freed below the top of the heap stay resident until ``malloc_trim``: ≈ 50 MB in
    blocks of 64 kB (below glibc's mmap threshold, so from the heap), all freed but the last."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 * 1024
    blocks = [libc.malloc(size) for _ in range(800)]
    for block in blocks:
        ctypes.memset(block, 1, size)  # resident
    for block in blocks[:-1]:
        libc.free(block)
    before = rss_kb()
    assert return_free_memory() is True
    assert rss_kb() < before - 20_000  # most of what was freed left the process
    libc.free(blocks[-1])


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
