"""Rendered curated documents kept in the gateway's memory, checked against the catalogue.

``/curated/{id}`` reads the document's revision from the curated catalogue in MySQL (with the
staged row), then takes the document's JSON from this cache when it holds that revision, and reads
the document store only otherwise. The curator bumps
a document's revision (migration 006) after every rewrite of the document, so an entry of an older
revision is never served; FerretDB's cost per document read (docs/benchmarks.md) is paid once per
document and revision, not once per request.

Bounded in bytes (``LAKE_GATEWAY_CURATED_CACHE_MB``, 0 turns it off), least recently used first
out; one per gateway process. Keys are ``(twitter_id, form)``: the form names which rendering of
the document the entry holds (``/curated/{id}``'s, with or without tokens).
"""

from __future__ import annotations

from collections import OrderedDict

Key = tuple[int, str]  # (twitter_id, form)
ENTRY_OVERHEAD = 200  # bytes per entry beyond the JSON: the dict slot, the key, the tuple, the bytes header


class DocCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, tuple[int, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Key) -> bool:
        """An entry of any revision (not counted as a hit or a miss)."""
        return key in self._entries

    def get(self, key: Key, revision: int) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != revision:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Key, revision: int, body: bytes) -> None:
        size = len(body) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            if old[0] > revision:  # a newer revision is cached already (pages read concurrently)
                self._entries[key] = old
                return
            self.bytes -= len(old[1]) + ENTRY_OVERHEAD
        self._entries[key] = (revision, body)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= len(evicted) + ENTRY_OVERHEAD
