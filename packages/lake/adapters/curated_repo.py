"""The curated store: one MongoDB document per tweet, ``_id`` = twitter_id (MongoDB 7 and FerretDB)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from lake.settings import MongoSettings

DUPLICATE_KEY = 11000

# Each index serves a gateway query (docs/api.md lists which).
# The gateway sorts by (created_at, _id) in either direction and filters by equality on one field;
# each index is that field followed by the sort keys, so MongoDB walks it without a SORT stage.
_SORT = [("created_at", DESCENDING), ("_id", DESCENDING)]
INDEXES = [
    IndexModel(_SORT, name="created_id"),
    IndexModel([("companies", ASCENDING), *_SORT], name="companies_created_id"),
    IndexModel([("sentiment", ASCENDING), *_SORT], name="sentiment_created_id"),
    IndexModel([("hashtags", ASCENDING), *_SORT], name="hashtags_created_id"),
    IndexModel([("lineage.run_id", ASCENDING), ("lineage.chunk_id", ASCENDING)], name="lineage"),
]
# Names of indexes earlier versions created; dropped when found.
LEGACY_INDEXES = ("company_created", "sentiment_created", "created", "hashtags")


def make_client(cfg: MongoSettings) -> MongoClient[dict[str, Any]]:
    return MongoClient(cfg.url, serverSelectionTimeoutMS=5000, tz_aware=True)


class CuratedRepository:
    def __init__(self, client: MongoClient[dict[str, Any]], cfg: MongoSettings) -> None:
        self.client = client
        self.cfg = cfg
        self.tweets: Collection[dict[str, Any]] = client[cfg.database][cfg.collection]

    def wanted_indexes(self) -> list[IndexModel]:
        """The query indexes for this server.

        FerretDB 1.24 passes only an ``{_id: …}`` filter down to its storage (its SQLite backend's
        ``collection.go``); every other filter and sort runs in FerretDB over all documents, so a
        secondary index there is never read, and it cost 35% of the curator's insert throughput
        (docs/benchmarks.md). ``auto`` creates them on MongoDB and skips them on FerretDB."""
        mode = self.cfg.secondary_indexes
        if mode == "auto":
            info = self.client.admin.command("buildInfo")
            mode = "none" if "ferretdbVersion" in info else "all"
        return list(INDEXES) if mode == "all" else []

    def ensure_indexes(self) -> list[str]:
        """Converge the collection's query indexes to :meth:`wanted_indexes`; return those created.

        Only the missing ones are sent: FerretDB 1.24 panics (and drops the connection) on a
        ``createIndexes`` whose indexes all exist already, where MongoDB answers with a no-op. Our
        indexes that are not wanted on this server are dropped.
        """
        wanted = self.wanted_indexes()
        existing = {ix["name"] for ix in self.tweets.list_indexes()}
        names = {ix.document["name"] for ix in wanted}
        ours = [ix.document["name"] for ix in INDEXES] + list(LEGACY_INDEXES)
        for name in ours:
            if name in existing and name not in names:
                self.tweets.drop_index(name)
        missing = [ix for ix in wanted if ix.document["name"] not in existing]
        return list(self.tweets.create_indexes(missing)) if missing else []

    def write_chunk(
        self,
        run_id: str,
        chunk_id: int,
        docs: list[dict[str, Any]] | Callable[[], Iterable[list[dict[str, Any]]]],
    ) -> int:
        """Write one chunk's documents so that a replay leaves exactly one current document per tweet.

        ``docs``: the documents, or a function giving them in batches (called again for a second
        pass, so a chunk is never held in memory whole). Every document of a chunk carries that
        chunk in ``lineage`` (staging gives each tweet to exactly one chunk, the first to stage it).
        Fast path: unordered inserts. If some already exist, the chunk was written before (a replay,
        or an attempt cut short): its documents are deleted by lineage and inserted again, so the
        result equals an upsert.

        Not a ``ReplaceOne`` per document: FerretDB 1.24's SQLite backend keeps a connection per
        statement of an update command until the command ends, out of a pool of 100, so a bulk of
        ~100 replacements never returns. docs/decisions.md has the measurements.
        """
        batches = (lambda: [docs]) if isinstance(docs, list) else docs
        written = self._insert_batches(run_id, chunk_id, batches(), replay=False)
        if written is not None:
            return written
        self.tweets.delete_many({"lineage.run_id": run_id, "lineage.chunk_id": chunk_id})
        written = self._insert_batches(run_id, chunk_id, batches(), replay=True)
        assert written is not None
        return written

    def _insert_batches(
        self, run_id: str, chunk_id: int, batches: Iterable[list[dict[str, Any]]], replay: bool
    ) -> int | None:
        """Insert every batch; ``None`` when a document exists already (first pass only)."""
        written = 0
        for batch in batches:
            if not batch:
                continue
            foreign = [
                d["_id"]
                for d in batch
                if d["lineage"]["run_id"] != run_id or d["lineage"]["chunk_id"] != chunk_id
            ]
            if foreign:
                raise ValueError(f"{len(foreign)} documents do not belong to chunk {chunk_id} of {run_id}")
            try:
                self.tweets.insert_many(batch, ordered=False)
            except BulkWriteError as exc:
                self._raise_unless_duplicates(exc)
                if not replay:
                    return None
                taken = [batch[e["index"]]["_id"] for e in exc.details.get("writeErrors", [])]
                raise ValueError(
                    f"{len(taken)} tweets of chunk {chunk_id} of {run_id} are stored under another"
                    f" chunk's lineage (first: {taken[0]}); staging should have made them duplicates"
                ) from exc
            written += len(batch)
        return written

    def set_companies(self, companies: dict[int, list[str]], batch: int = 50) -> int:
        """Set ``companies`` of existing documents; returns how many matched.

        Batches of 50 updates: FerretDB 1.24 deadlocks on one update command of ~100 statements."""
        ops = [
            UpdateOne({"_id": str(tid)}, {"$set": {"companies": comps}}) for tid, comps in companies.items()
        ]
        matched = 0
        for i in range(0, len(ops), batch):
            matched += self.tweets.bulk_write(ops[i : i + batch], ordered=False).matched_count
        return matched

    @staticmethod
    def _raise_unless_duplicates(exc: BulkWriteError) -> None:
        errors = exc.details.get("writeErrors", [])
        if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise exc

    def count(self) -> int:
        return int(self.tweets.estimated_document_count())
