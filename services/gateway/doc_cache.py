"""Rendered curated documents kept in the gateway's memory, checked against the catalogue.

A ``/curated`` page reads its ids *and their revisions* from the curated catalogue in MySQL, then
takes each document's JSON from this cache when it holds that revision, and reads only the others
from the document store. The curator bumps a document's revision (migration 006) after every
rewrite of the document, so an entry of an older revision is never served; FerretDB's cost per
document read (docs/benchmarks.md) is paid once per document and revision, not once per page.

Bounded in bytes (``LAKE_GATEWAY_CURATED_CACHE_MB``, 0 turns it off), least recently used first
out; one per gateway process. Documents with their token ids (``include_tokens``) are not cached.
"""

from __future__ import annotations

from collections import OrderedDict

ENTRY_OVERHEAD = 160  # bytes per entry beyond the JSON: the dict slot, the key, the tuple, the bytes header


class DocCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[int, tuple[int, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, twitter_id: int, revision: int) -> bytes | None:
        entry = self._entries.get(twitter_id)
        if entry is None or entry[0] != revision:
            self.misses += 1
            return None
        self._entries.move_to_end(twitter_id)
        self.hits += 1
        return entry[1]

    def put(self, twitter_id: int, revision: int, body: bytes) -> None:
        size = len(body) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        old = self._entries.pop(twitter_id, None)
        if old is not None:
            if old[0] > revision:  # a newer revision is cached already (pages read concurrently)
                self._entries[twitter_id] = old
                return
            self.bytes -= len(old[1]) + ENTRY_OVERHEAD
        self._entries[twitter_id] = (revision, body)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= len(evicted) + ENTRY_OVERHEAD
