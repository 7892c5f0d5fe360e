"""The curated store: one MongoDB document per tweet, ``_id`` = twitter_id (MongoDB 7 and FerretDB)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from lake.settings import MongoSettings

DUPLICATE_KEY = 11000

# Each index serves a gateway query (docs/api.md lists which).
INDEXES = [
    IndexModel([("company", ASCENDING), ("created_at", DESCENDING)], name="company_created"),
    IndexModel([("sentiment", ASCENDING), ("created_at", DESCENDING)], name="sentiment_created"),
    IndexModel([("created_at", DESCENDING)], name="created"),
    IndexModel([("hashtags", ASCENDING)], name="hashtags"),
    IndexModel([("lineage.run_id", ASCENDING), ("lineage.chunk_id", ASCENDING)], name="lineage"),
]


def make_client(cfg: MongoSettings) -> MongoClient[dict[str, Any]]:
    return MongoClient(cfg.url, serverSelectionTimeoutMS=5000, tz_aware=True)


class CuratedRepository:
    def __init__(self, client: MongoClient[dict[str, Any]], cfg: MongoSettings) -> None:
        self.client = client
        self.tweets: Collection[dict[str, Any]] = client[cfg.database][cfg.collection]

    def ensure_indexes(self) -> list[str]:
        return list(self.tweets.create_indexes(INDEXES))

    def upsert(self, docs: list[dict[str, Any]]) -> int:
        """Write documents so that a replay leaves exactly one, current, document per ``_id``.

        Fast path: one unordered insert. Documents that already exist (a replayed chunk) are then
        replaced, which keeps the result identical to an upsert, without paying for it every time.
        """
        if not docs:
            return 0
        try:
            self.tweets.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            again = {e["index"] for e in errors}
            self.tweets.bulk_write(
                [ReplaceOne({"_id": docs[i]["_id"]}, docs[i], upsert=True) for i in sorted(again)],
                ordered=False,
            )
        return len(docs)

    def count(self) -> int:
        return int(self.tweets.estimated_document_count())
