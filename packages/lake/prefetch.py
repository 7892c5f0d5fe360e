"""Iterate in a worker's thread, a bounded number of items ahead of the consumer.

The curator builds a batch of documents (Python: the GIL held), then waits for the store to write it
(a socket read: the GIL released). Done one after the other, a chunk costs their sum; with the next
batch built while the store writes the current one, it costs the larger of the two
(docs/benchmarks.md, "The curator builds its next batch while the store writes").

Allocators give each new thread arenas of their own (glibc's malloc, and the jemalloc of polars),
and keep what a thread freed for a while: with a new producing thread for every chunk, the curator's
peak RSS at 1.13M rows rose from ≈ 460 to ≈ 690 MB. So the curator keeps one producing thread for
its life (``worker``), and :func:`lake.memory.one_malloc_arena` (glibc's ``M_ARENA_MAX``, what
``MALLOC_ARENA_MAX=1`` sets) keeps its threads on glibc's main arena.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_POLL_S = 0.1  # how often a producer blocked on a full queue checks that the consumer still reads


class _Done:
    """The producer's last item: the source ended, or raised ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetched(source: Iterable[T], worker: Executor, depth: int = 1) -> Generator[T, None, None]:
    """The items of ``source``, produced by ``worker``'s thread up to ``depth`` items ahead (a
    process that prefetches again and again keeps one worker of one thread: see the module's note).

    An exception raised by ``source`` is raised here, where its item would have been. A consumer
    that stops early (it raises, or closes this generator) stops the producer: it finishes the item
    it is producing, closes the source (a generator), then ends; closing waits for it, so the
    source is never left running. Close a generator you stop early (``contextlib.closing``): the
    worker's next prefetch waits until this one's producer has stopped."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    items: queue.Queue[T | _Done] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _Done) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it: Iterator[T] | None = None
        try:
            it = iter(source)
            for item in it:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Done(exc))
            return
        finally:
            if stop.is_set() and isinstance(it, Generator):
                try:
                    it.close()  # its clean-up runs now, not whenever it is collected
                except Exception:  # the consumer is raising its own error already, or stopped
                    log.exception("closing a prefetched source failed")
        put(_Done())

    done = worker.submit(produce).result
    try:
        while not isinstance(item := items.get(), _Done):
            yield item
        if item.error is not None:
            raise item.error
    finally:
        stop.set()
        done()
