"""``lake.prefetch.prefetched``: a source iterated by a thread ahead of its consumer (the curator
builds its next batch while the store writes the current one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from lake.prefetch import prefetched


@pytest.fixture
def worker() -> Iterator[ThreadPoolExecutor]:
    """One thread, as the curator keeps for its life."""
    with ThreadPoolExecutor(1, thread_name_prefix="prefetch-test") as pool:
        yield pool


def test_items_come_in_order_and_all_of_them(worker: ThreadPoolExecutor):
    assert list(prefetched(iter(range(1000)), worker, depth=3)) == list(range(1000))
    assert list(prefetched([], worker)) == []


def test_the_next_item_is_produced_while_the_consumer_holds_this_one(worker: ThreadPoolExecutor):
    second_built = threading.Event()

    def source() -> Iterator[int]:
        yield 1
        second_built.set()
        yield 2

    with closing(prefetched(source(), worker)) as items:
        assert next(items) == 1
        # the consumer has not asked for item 2: only the thread can have built it
        assert second_built.wait(timeout=30)
        assert next(items) == 2


def test_the_thread_runs_at_most_depth_items_ahead(worker: ThreadPoolExecutor):
    produced: list[int] = []
    blocked = threading.Event()

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            if i == 3:
                blocked.set()  # 0 handed over, 1-2 queued (depth 2), 3 waiting for room
            yield i

    with closing(prefetched(source(), worker, depth=2)) as items:
        assert next(items) == 0
        assert blocked.wait(timeout=30)
        # item 3 waits to enter the full queue; the source is not asked for item 4 meanwhile
        assert produced == [0, 1, 2, 3]
        assert list(items) == list(range(1, 100))


def test_an_error_of_the_source_is_raised_where_its_item_would_have_been(worker: ThreadPoolExecutor):
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("tokenizer failed")

    got = []
    with pytest.raises(RuntimeError, match="tokenizer failed"):
        for item in prefetched(source(), worker):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_thread(worker: ThreadPoolExecutor):
    finished = threading.Event()
    asked: list[int] = []

    def source() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                asked.append(i)
                yield i
        finally:
            finished.set()

    items = prefetched(source(), worker, depth=1)
    assert next(items) == 0
    items.close()  # waits for the producer
    assert finished.is_set()
    assert len(asked) <= 3  # the item handed over, the one queued, the one waiting for room
    assert worker.submit(len, "free").result(timeout=30) == 4  # the worker's one thread is free again


def test_depth_must_be_positive(worker: ThreadPoolExecutor):
    with pytest.raises(ValueError, match="depth"):
        next(prefetched([1], worker, depth=0))


def test_a_worker_thread_serves_one_prefetch_after_the_other_even_one_stopped_early():
    with ThreadPoolExecutor(1) as worker:  # its own, to count the threads that produced
        used: set[str] = set()

        def source(n: int) -> Iterator[int]:
            used.add(threading.current_thread().name)
            yield from range(n)

        early = prefetched(source(1_000_000), worker)
        assert next(early) == 0
        early.close()  # the worker is free again: the next prefetch does not wait on it
        assert list(prefetched(source(5), worker)) == [0, 1, 2, 3, 4]
        with pytest.raises(ZeroDivisionError):
            list(prefetched((1 // n for n in (1, 0)), worker))
        assert list(prefetched(source(3), worker)) == [0, 1, 2]
    assert len(used) == 1 and threading.current_thread().name not in used


def test_a_source_that_cannot_even_be_iterated_raises_to_the_consumer(worker: ThreadPoolExecutor):
    class Broken:
        def __iter__(self) -> Iterator[int]:
            raise OSError("no such chunk")

    with pytest.raises(OSError, match="no such chunk"):
        list(prefetched(Broken(), worker))


def test_a_failing_clean_up_of_a_source_stopped_early_is_logged_not_raised(
    worker: ThreadPoolExecutor, caplog
):
    def source() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            raise RuntimeError("clean-up failed")

    items = prefetched(source(), worker)
    assert next(items) == 0
    items.close()
    assert "closing a prefetched source failed" in caplog.text
