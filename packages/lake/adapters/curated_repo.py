"""The curated store: one MongoDB document per tweet, ``_id`` = twitter_id (MongoDB 7 and FerretDB)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient, ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from lake.settings import MongoSettings
from lake.transform.curated_store import StoredBatch

DUPLICATE_KEY = 11000

REPLACE_BATCH = 50
TOKENIZERS = "tokenizers"  # one record per tokenizer (lake.transform.curated_store)
# No secondary index: list queries are paged from the curated catalogue in MySQL (migration 005)
# and documents are read by _id only, the same on MongoDB and FerretDB (docs/api.md). Names of
# indexes earlier versions created, dropped when found.
LEGACY_INDEXES = (
    "created_id",
    "companies_created_id",
    "sentiment_created_id",
    "hashtags_created_id",
    "lineage",
    "company_created",
    "sentiment_created",
    "created",
    "hashtags",
)


def make_client(cfg: MongoSettings) -> MongoClient[dict[str, Any]]:
    return MongoClient(cfg.url, serverSelectionTimeoutMS=5000, tz_aware=True)


class CuratedRepository:
    def __init__(self, client: MongoClient[dict[str, Any]], cfg: MongoSettings) -> None:
        self.client = client
        self.cfg = cfg
        self.tweets: Collection[dict[str, Any]] = client[cfg.database][cfg.collection]

    def ensure_indexes(self) -> list[str]:
        """Drop the query indexes earlier versions created; return the names dropped.

        The collection keeps its ``_id`` index only: every read is by ``_id`` and each secondary
        index cost a third of the insert throughput (docs/benchmarks.md)."""
        existing = {ix["name"] for ix in self.tweets.list_indexes()}
        dropped = [name for name in LEGACY_INDEXES if name in existing]
        for name in dropped:
            self.tweets.drop_index(name)
        return dropped

    def write_chunk(
        self, run_id: str, chunk_id: int, batches: Iterable[StoredBatch], replay: bool = False
    ) -> int:
        """Write one chunk's documents so that a replay leaves exactly one current document per tweet
        and a document being rewritten is never missing (a list page may be fetching it).

        ``batches``: the chunk's documents in batches (a chunk is never held in memory whole). Every
        document of a chunk carries that chunk in ``lineage`` (staging gives each tweet to exactly
        one chunk, the first to stage it). Fast path: unordered inserts. Documents that exist
        already (a replay, or an attempt cut short) are replaced in place; a document that belongs
        to another chunk is an error, never overwritten, except in a ``replay`` to another chunk
        of the same run: a replay from stage may move a tweet from one chunk of the run to another
        (``remove_absent`` of the chunk it left then leaves this document alone).

        Replacements go in bulks of ``REPLACE_BATCH``: FerretDB 1.24's SQLite backend keeps a
        connection per statement of an update command until the command ends, out of a pool of
        100, so a bulk of ~100 replacements never returns (docs/decisions.md).
        """
        written = 0
        for batch in batches:
            if not batch.docs:
                continue
            if len(batch.ids) != len(batch.docs) or not batch.lineages:
                raise ValueError(
                    f"a batch of {len(batch.docs)} documents names {len(batch.ids)} ids and"
                    f" {len(batch.lineages)} lineages"
                )
            foreign = batch.lineages - {(run_id, chunk_id)}
            if foreign:
                run, chunk = min(foreign, key=repr)
                raise ValueError(
                    f"documents of {len(foreign)} other chunks (run {run} chunk {chunk}, …) do not"
                    f" belong to chunk {chunk_id} of {run_id}"
                )
            try:
                self.tweets.insert_many(batch.docs, ordered=False)
            except BulkWriteError as exc:
                self._raise_unless_duplicates(exc)
                existing = [e["index"] for e in exc.details.get("writeErrors", [])]
                self._replace(run_id, chunk_id, [(batch.ids[i], batch.docs[i]) for i in existing], replay)
            written += len(batch.docs)
        return written

    def _replace(
        self,
        run_id: str,
        chunk_id: int,
        docs: list[tuple[str, dict[str, Any] | RawBSONDocument]],
        replay: bool = False,
    ) -> None:
        """Replace documents written before (``(_id, document)``), after checking they are this
        chunk's. The check reads their lineage in one ``_id $in`` query; each replacement filters on
        ``_id`` alone, the only filter FerretDB looks up by index (with another key every statement
        would scan)."""
        stored = self.tweets.find({"_id": {"$in": [i for i, _ in docs]}}, {"lineage": 1})
        foreign = [
            d["_id"]
            for d in stored
            if d["lineage"]["run_id"] != run_id or (d["lineage"]["chunk_id"] != chunk_id and not replay)
        ]
        if foreign:
            raise ValueError(
                f"{len(foreign)} tweets of chunk {chunk_id} of {run_id} are stored under another"
                f" chunk's lineage (first: {sorted(foreign)[0]}); staging should have made them duplicates"
            )
        for i in range(0, len(docs), REPLACE_BATCH):
            part = docs[i : i + REPLACE_BATCH]
            self.tweets.bulk_write([ReplaceOne({"_id": _id}, doc) for _id, doc in part], ordered=False)

    def remove_absent(self, run_id: str, chunk_id: int, ids: Iterable[int]) -> int:
        """Delete the documents of ``ids`` that still carry this chunk's lineage (a replay from stage
        no longer stages them, and ``CuratedCatalog.add_chunk`` with ``replay`` already took them off
        the catalogue); the number deleted. A document another chunk of the run has taken meanwhile
        is left alone. Each delete filters on ``_id`` alone (FerretDB's one indexed filter)."""
        wanted = [str(t) for t in ids]
        deleted = 0
        for i in range(0, len(wanted), 1000):
            for d in self.tweets.find({"_id": {"$in": wanted[i : i + 1000]}}, {"lineage": 1}):
                if (d["lineage"]["run_id"], d["lineage"]["chunk_id"]) == (run_id, chunk_id):
                    deleted += self.tweets.delete_one({"_id": d["_id"]}).deleted_count
        return deleted

    def register_tokenizer(self, record: dict[str, Any]) -> None:
        """Store a tokenizer's record (name, vocabulary hash, id width) once; documents hold its key."""
        collection = self.client[self.cfg.database][TOKENIZERS]
        try:
            collection.replace_one({"_id": record["_id"]}, record, upsert=True)
        except DuplicateKeyError:
            # Replicas starting together race to insert the same record (an upsert is not atomic
            # against another upsert, on MongoDB as on FerretDB): the other one inserted it; the
            # retry replaces it (same key, same content).
            collection.replace_one({"_id": record["_id"]}, record, upsert=True)

    def tokenizers(self) -> dict[str, dict[str, Any]]:
        return {r["_id"]: r for r in self.client[self.cfg.database][TOKENIZERS].find()}

    def companies_of(self, ids: Iterable[str]) -> dict[int, list[str]]:
        """The ``companies`` the stored documents hold, by twitter_id (missing documents left out)."""
        found: dict[int, list[str]] = {}
        wanted = list(ids)
        for i in range(0, len(wanted), 1000):
            cursor = self.tweets.find({"_id": {"$in": wanted[i : i + 1000]}}, {"companies": 1})
            found.update((int(d["_id"]), list(d["companies"])) for d in cursor)
        return found

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
