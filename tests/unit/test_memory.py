"""``lake.memory``: the curator's allocator settings."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys

import pytest

from lake.memory import arrow_on_malloc, one_malloc_arena, return_free_memory

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_one_malloc_arena_is_set_on_glibc():
    assert one_malloc_arena() is True


def test_arrow_allocates_with_malloc_unless_the_environment_names_a_pool() -> None:
    """pyarrow is loaded here already: its own calls follow, and the variable is set for any
    process this one starts."""
    import pyarrow as pa

    before, saved = pa.default_memory_pool(), os.environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    try:
        assert arrow_on_malloc() == "system"
        assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"
        held = pa.system_memory_pool().bytes_allocated()
        values = pa.array(range(100_000), pa.int64())
        assert pa.system_memory_pool().bytes_allocated() >= held + values.nbytes  # from malloc
        pa.set_memory_pool(before)
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = before.backend_name
        assert arrow_on_malloc() == before.backend_name  # the operator's choice kept
    finally:
        pa.set_memory_pool(before)
        os.environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
        if saved is not None:
            os.environ["ARROW_DEFAULT_MEMORY_POOL"] = saved


def test_the_curator_sets_the_pool_before_pyarrow_loads_so_arrows_cpp_code_uses_malloc_too():
    """In a fresh interpreter: the curator's entry module loads no pyarrow before it sets the
    allocators, and once set, Arrow's C++ default pool is malloc's without any call naming it
    (the Parquet writer allocates from that pool, not from pyarrow's)."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    script = (
        "import sys; import services.curator.__main__; assert 'pyarrow' not in sys.modules\n"
        "from lake.memory import arrow_on_malloc; print(arrow_on_malloc())"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["system"]


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
