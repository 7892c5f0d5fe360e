"""Each store, bootstrapped by the project, behaves as the pipeline relies on (real servers)."""

from __future__ import annotations

from typing import Any

import pymongo

from lake.adapters.broker import admin, all_topics
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.mysql import connect, migrate
from lake.adapters.objectstore import S3ObjectStore
from lake.cli import bootstrap
from lake.settings import Settings


def test_bootstrap_is_idempotent(settings: Settings):
    again = bootstrap(settings)
    assert again["migrations_applied"] == [] and again["topics_created"] == []
    assert migrate(settings.mysql) == []


def test_every_topic_and_dead_letter_topic_exists_with_the_configured_partitions(settings: Settings):
    client = admin(settings)
    try:
        described = {t["topic"]: t for t in client.describe_topics(all_topics(settings))}
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


def test_curated_upsert_twice_leaves_one_current_document(settings: Settings):
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        repo = CuratedRepository(client, settings.mongo)
        big_id = 1_299_999_999_999_999_999  # beyond 2^53: must stay exact as int64
        docs = [{"_id": big_id, "v": 1}, {"_id": big_id - 1, "v": 1}]
        assert repo.upsert(docs) == 2
        assert repo.upsert([{"_id": big_id, "v": 2}, {"_id": big_id - 2, "v": 2}]) == 2
        assert repo.tweets.count_documents({"_id": {"$in": [big_id, big_id - 1, big_id - 2]}}) == 3
        assert repo.tweets.find_one({"_id": big_id}) == {"_id": big_id, "v": 2}
        repo.tweets.delete_many({"_id": {"$in": [big_id, big_id - 1, big_id - 2]}})
    finally:
        client.close()
