"""Each store, bootstrapped by the project, behaves as the pipeline relies on (real servers)."""

from __future__ import annotations

from typing import Any

import pymongo
import pytest

from lake.adapters.broker import admin, all_topics
from lake.adapters.curated_repo import INDEXES, CuratedRepository
from lake.adapters.mysql import connect, migrate
from lake.adapters.objectstore import S3ObjectStore
from lake.cli import bootstrap
from lake.settings import Settings


def test_bootstrap_is_idempotent(settings: Settings):
    again = bootstrap(settings)
    assert again["migrations_applied"] == [] and again["topics_created"] == []
    assert again["indexes_created"] == []
    assert migrate(settings.mysql) == []


def test_every_topic_and_dead_letter_topic_exists_with_the_configured_partitions(settings: Settings):
    client = admin(settings)
    try:
        described = {t["name"]: t for t in client.describe_topics(all_topics(settings))}
    finally:
        client.close()
    assert set(described) == set(all_topics(settings))
    assert any(name.endswith("raw.ready.dlq") for name in described)
    for topic in described.values():
        assert len(topic["partitions"]) == settings.kafka.partitions >= 3


def test_mysql_keeps_emoji_and_unicode_in_utf8mb4(settings: Settings):
    text = "Ünïcödé 😀🔥 東京 → “quotes”"
    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE t (s TEXT)")
        cur.execute("INSERT INTO t VALUES (%s)", (text,))
        cur.execute("SELECT s FROM t")
        assert cur.fetchone() == (text,)


def test_s3_ranges_and_keys_with_spaces_and_equals(settings: Settings, store: S3ObjectStore):
    key = "Bigtech - 12-07-2020 till 19-09-2020/company=Apple/part 1.csv"
    body = bytes(range(256)) * 10
    store.put_bytes(settings.s3.raw_bucket, key, body)
    assert store.get_range(settings.s3.raw_bucket, key, 100, 200) == body[100:200]
    assert store.get_bytes(settings.s3.raw_bucket, key) == body
    assert key in {o["Key"] for o in store.list_keys(settings.s3.raw_bucket, "Bigtech - ")}


def _doc(tweet_id: str, run_id: str, chunk_id: int, v: int) -> dict[str, Any]:
    return {"_id": tweet_id, "v": v, "text": "x" * 200, "lineage": {"run_id": run_id, "chunk_id": chunk_id}}


def test_a_chunk_written_twice_leaves_one_current_document_per_tweet(settings: Settings):
    """Also a regression test: FerretDB 1.24 never answered a replayed chunk of 1,500 documents sent
    as ReplaceOne upserts. 600 documents written again must all be replaced, quickly enough that the
    socket timeout (60 s) never fires."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo.url, socketTimeoutMS=60_000
    )
    try:
        repo = CuratedRepository(client, settings.mongo)
        ids = [str(1_100_000_000_000_000_000 + i) for i in range(600)]
        other = _doc("1099999999999999999", "run-b", 0, 1)
        assert repo.write_chunk("run-b", 0, [other]) == 1
        assert repo.write_chunk("run-a", 3, [_doc(i, "run-a", 3, 1) for i in ids]) == 600
        assert repo.write_chunk("run-a", 3, [_doc(i, "run-a", 3, 2) for i in ids]) == 600
        assert repo.tweets.count_documents({"lineage.run_id": "run-a"}) == 600
        assert repo.tweets.count_documents({"lineage.run_id": "run-a", "v": 2}) == 600
        assert repo.tweets.find_one({"_id": other["_id"]}) == other  # another chunk is untouched
    finally:
        client[settings.mongo.database][settings.mongo.collection].delete_many(
            {"lineage.run_id": {"$in": ["run-a", "run-b"]}}
        )
        client.close()


def test_a_tweet_owned_by_another_chunk_is_refused_not_overwritten(settings: Settings):
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        repo = CuratedRepository(client, settings.mongo)
        repo.write_chunk("run-c", 0, [_doc("1299999999999999999", "run-c", 0, 1)])
        with pytest.raises(ValueError, match="another chunk's lineage"):
            repo.write_chunk("run-d", 5, [_doc("1299999999999999999", "run-d", 5, 9)])
        with pytest.raises(ValueError, match="do not belong"):
            repo.write_chunk("run-d", 5, [_doc("1299999999999999998", "run-d", 6, 9)])
        assert repo.tweets.find_one({"_id": "1299999999999999999"})["v"] == 1  # type: ignore[index]
    finally:
        repo.tweets.delete_many({"lineage.run_id": "run-c"})
        client.close()


def test_a_lookup_by_id_uses_the_id_index(settings: Settings):
    """FerretDB 1.24's SQLite backend scanned the collection for every `_id` lookup (its query and
    its index spelled the path differently); the local build patches that (infra/ferretdb_component).
    MongoDB answers with its _id fast path."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        repo = CuratedRepository(client, settings.mongo)
        repo.write_chunk("run-x", 0, [_doc("1288888888888888888", "run-x", 0, 1)])
        plan = str(repo.tweets.find({"_id": "1288888888888888888"}).explain())
        assert any(marker in plan for marker in ("USING INDEX", "IDHACK", "EXPRESS", "IXSCAN")), plan
        assert repo.tweets.find_one({"_id": "1288888888888888888"}) is not None
    finally:
        client[settings.mongo.database][settings.mongo.collection].delete_many({"lineage.run_id": "run-x"})
        client.close()


def test_query_indexes_follow_the_setting_and_auto_skips_them_on_ferretdb(settings: Settings):
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    cfg = settings.mongo.model_copy(update={"collection": "index_probe"})
    try:
        client[cfg.database].drop_collection(cfg.collection)
        client[cfg.database][cfg.collection].insert_one({"_id": "x"})

        def names() -> set[str]:
            return {ix["name"] for ix in client[cfg.database][cfg.collection].list_indexes()}

        everything = {ix.document["name"] for ix in INDEXES}
        repo = CuratedRepository(client, cfg.model_copy(update={"secondary_indexes": "all"}))
        assert set(repo.ensure_indexes()) == everything and names() == everything | {"_id_"}
        repo = CuratedRepository(client, cfg.model_copy(update={"secondary_indexes": "none"}))
        assert repo.ensure_indexes() == [] and names() == {"_id_"}
        auto = CuratedRepository(client, cfg)
        on_ferretdb = "ferretdbVersion" in client.admin.command("buildInfo")
        assert {ix.document["name"] for ix in auto.wanted_indexes()} == (set() if on_ferretdb else everything)
    finally:
        client[cfg.database].drop_collection(cfg.collection)
        client.close()
