"""Composition root of the curator process: ``python -m services.curator``.

The allocators are set before anything loads pyarrow (:mod:`lake.memory`): Arrow's C++ code takes
its default memory pool once, when pyarrow loads, so the wiring is imported only after."""

from __future__ import annotations

from lake.memory import arrow_on_malloc, one_malloc_arena

if __name__ == "__main__":
    one_malloc_arena()  # before any thread: the batches are built by a thread of their own (lake.prefetch)
    arrow_on_malloc()  # Arrow's buffers from malloc, its C++ code's too: before pyarrow loads
    from services.curator.wiring import main  # loads pyarrow

    main()
