"""The gateway's cache of rendered curated documents (services/gateway/doc_cache.py)."""

from __future__ import annotations

from services.gateway.doc_cache import ENTRY_OVERHEAD, DocCache


def test_a_document_is_served_only_under_the_revision_it_was_cached_with():
    cache = DocCache(1 << 20)
    cache.put((7, "detail+tokens"), 0, b'{"text":"a"}')
    assert cache.get((7, "detail+tokens"), 0) == b'{"text":"a"}'
    assert cache.get((7, "detail+tokens"), 1) is None  # the catalogue names a newer revision: read the store
    assert cache.get((8, "detail+tokens"), 0) is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_a_newer_revision_replaces_an_older_one_and_never_the_reverse():
    cache = DocCache(1 << 20)
    cache.put((7, "detail+tokens"), 1, b"new")
    cache.put((7, "detail+tokens"), 0, b"old")  # a page that read the older revision finishes later
    assert cache.get((7, "detail+tokens"), 1) == b"new"
    cache.put((7, "detail+tokens"), 2, b"newer")
    assert cache.get((7, "detail+tokens"), 2) == b"newer"
    assert len(cache) == 1 and cache.bytes == len(b"newer") + ENTRY_OVERHEAD


def test_the_least_recently_used_documents_leave_first_within_the_byte_bound():
    body = b"x" * 100
    size = len(body) + ENTRY_OVERHEAD
    cache = DocCache(3 * size)
    for tid in (1, 2, 3):
        cache.put((tid, "detail"), 0, body)
    assert cache.get((1, "detail"), 0) == body  # 1 is now the most recently used
    cache.put((4, "detail"), 0, body)
    assert cache.get((2, "detail"), 0) is None  # the least recently used went out
    assert [cache.get((t, "detail"), 0) is not None for t in (1, 3, 4)] == [True, True, True]
    assert cache.bytes == 3 * size <= cache.max_bytes


def test_an_empty_cache_stores_nothing():
    cache = DocCache(0)
    cache.put((1, "detail"), 0, b"{}")
    assert len(cache) == 0 and cache.get((1, "detail"), 0) is None and cache.bytes == 0


def test_each_form_of_a_document_is_its_own_entry():
    cache = DocCache(1 << 20)
    cache.put((7, "detail+tokens"), 0, b"with tokens")
    assert cache.get((7, "detail"), 0) is None
    cache.put((7, "detail"), 0, b"detail")
    assert cache.get((7, "detail+tokens"), 0) == b"with tokens" and cache.get((7, "detail"), 0) == b"detail"
