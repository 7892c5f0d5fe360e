"""Each store, bootstrapped by the project, behaves as the pipeline relies on (real servers)."""

from __future__ import annotations

from typing import Any

import pymongo
import pytest
from pymongo.errors import BulkWriteError

from lake.adapters.broker import admin, all_topics
from lake.adapters.curated_repo import LEGACY_INDEXES, CuratedRepository
from lake.adapters.mysql import connect, migrate
from lake.adapters.objectstore import S3ObjectStore
from lake.cli import bootstrap
from lake.settings import Settings
from lake.transform.curated_store import StoredBatch


def test_bootstrap_is_idempotent(settings: Settings):
    again = bootstrap(settings)
    assert again["migrations_applied"] == [] and again["topics_created"] == []
    assert again["indexes_dropped"] == []
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


def test_bootstrap_gives_existing_topics_the_partitions_they_lack_and_never_removes_any(settings: Settings):
    import time
    import uuid

    from lake.adapters.broker import ensure_topics

    prefix = f"grow-{uuid.uuid4().hex[:6]}."
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix})
    two = settings.model_copy(update={"kafka": kafka.model_copy(update={"partitions": 2})})
    four = settings.model_copy(update={"kafka": kafka.model_copy(update={"partitions": 4})})
    names = all_topics(two)
    client = admin(settings)
    try:
        assert sorted(ensure_topics(two)) == sorted(names)  # created with 2
        assert sorted(ensure_topics(four)) == sorted(names)  # grown to 4
        assert ensure_topics(four) == [] and ensure_topics(two) == []  # nothing to do; never shrunk
        deadline = time.monotonic() + 15  # the broker's metadata follows the controller shortly
        while True:
            counts = {t["name"]: len(t["partitions"]) for t in client.describe_topics(names)}
            if counts == dict.fromkeys(names, 4) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert counts == dict.fromkeys(names, 4)
    finally:
        client.delete_topics(names)
        client.close()


def test_the_migrated_tweets_table_has_the_staged_rows_columns_in_order(settings: Settings):
    """The migrations spell the staged row in SQL; ``lake.schema.STAGED_ROW`` is its definition."""
    import re

    from lake.schema import STAGED_ROW

    sql_type_of_kind = {  # MariaDB shows display widths, MySQL 8 does not
        "id": r"bigint(\(20\))? unsigned",
        "time": r"datetime",
        "text": r"varchar\(\d+\)|text",
        "text?": r"varchar\(\d+\)",
        "count": r"int(\(10\))? unsigned",
        "int": r"int(\(11\))?",
        "polarity": r"decimal\(5,4\)",
        "stamp": r"datetime\(3\)",
    }
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, column_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'tweets' ORDER BY ordinal_position",
            (settings.mysql.database,),
        )
        columns = cur.fetchall()
    assert [c[0] for c in columns] == [name for name, _ in STAGED_ROW]
    for (name, kind), (_, sql_type, nullable) in zip(STAGED_ROW, columns, strict=True):
        assert re.fullmatch(sql_type_of_kind[kind], sql_type), (name, sql_type)
        assert (nullable == "YES") == kind.endswith("?"), name


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
    """Also a regression test: FerretDB 1.24 never answered an update command of ~100 statements
    (docs/decisions.md, trap 2). 600 documents written again must all be replaced, in bulks small
    enough that the socket timeout (60 s) never fires."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo.url, socketTimeoutMS=60_000
    )
    try:
        repo = CuratedRepository(client, settings.mongo)
        ids = [str(1_100_000_000_000_000_000 + i) for i in range(600)]
        other = _doc("1099999999999999999", "run-b", 0, 1)
        assert repo.write_chunk("run-b", 0, [StoredBatch.of([other])]) == 1
        assert repo.write_chunk("run-a", 3, [StoredBatch.of([_doc(i, "run-a", 3, 1) for i in ids])]) == 600
        # a replay cut short: the first half was written again, then the whole chunk
        halves = [StoredBatch.of([_doc(i, "run-a", 3, 2) for i in part]) for part in (ids[:300], ids[300:])]
        assert repo.write_chunk("run-a", 3, halves[:1]) == 300
        assert repo.write_chunk("run-a", 3, halves) == 600
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
        repo.write_chunk("run-c", 0, [StoredBatch.of([_doc("1299999999999999999", "run-c", 0, 1)])])
        with pytest.raises(ValueError, match="another chunk's lineage"):
            repo.write_chunk("run-d", 5, [StoredBatch.of([_doc("1299999999999999999", "run-d", 5, 9)])])
        with pytest.raises(ValueError, match="do not belong"):
            repo.write_chunk("run-d", 5, [StoredBatch.of([_doc("1299999999999999998", "run-d", 6, 9)])])
        stored = repo.tweets.find_one({"_id": "1299999999999999999"})
        assert stored is not None and stored["v"] == 1
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
        repo.write_chunk("run-x", 0, [StoredBatch.of([_doc("1288888888888888888", "run-x", 0, 1)])])
        plan = str(repo.tweets.find({"_id": "1288888888888888888"}).explain())
        assert any(marker in plan for marker in ("USING INDEX", "IDHACK", "EXPRESS", "IXSCAN")), plan
        assert repo.tweets.find_one({"_id": "1288888888888888888"}) is not None
    finally:
        client[settings.mongo.database][settings.mongo.collection].delete_many({"lineage.run_id": "run-x"})
        client.close()


def test_a_find_by_a_list_of_ids_uses_the_id_index_and_is_exact(settings: Settings):
    """FerretDB 1.24 pushed only `{_id: value}` down to SQLite: `{_id: {$in: [...]}}` (how /curated
    fetches a page's documents) read and filtered every document of the collection. The local build
    pushes a list of string ids down to the `_id` index (infra/ferretdb_component); MongoDB answers
    it with an IXSCAN of `_id`. What it returns must stay exactly MongoDB's answer."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    coll = client[settings.mongo.database]["id_in_probe"]
    try:
        coll.drop()
        docs: list[dict[str, Any]] = [
            {
                "_id": str(1_277_000_000_000_000_000 + i),
                "sentiment": ("positive", "negative")[i % 2],
                "tokens": [i],
            }
            for i in range(300)
        ]
        docs += [{"_id": s, "sentiment": "positive", "tokens": []} for s in ("", "é 東京 😀", 'a"b\\c<&>')]
        docs.append({"_id": 1277, "sentiment": "positive", "tokens": []})  # an int twin of "1277"
        docs.append({"_id": "1277", "sentiment": "negative", "tokens": []})
        coll.insert_many(docs)
        by_id = {d["_id"]: d for d in docs}
        wanted = [d["_id"] for d in docs[250:0:-7]] + ["", "é 東京 😀", 'a"b\\c<&>', "1277"]
        asked = [*wanted, *wanted[:5], "1277999999999999999", "no such id"]  # repeated and missing ids
        flt = {"_id": {"$in": asked}}

        plan = coll.find(flt, {"tokens": 0}).explain()
        if "ferretdbVersion" in client.admin.command("buildInfo"):
            assert plan["filterPushdown"] is True and "USING INDEX" in str(plan["queryPlanner"]), plan
        else:
            assert "IXSCAN" in str(plan), plan

        found = list(coll.find(flt, {"tokens": 0}))
        assert sorted(found, key=lambda d: d["_id"]) == [
            {"_id": i, "sentiment": by_id[i]["sentiment"]} for i in sorted(set(wanted))
        ]
        positive = coll.find({"_id": {"$in": asked}, "sentiment": "positive"})
        assert {d["_id"] for d in positive} == {i for i in wanted if by_id[i]["sentiment"] == "positive"}
        mixed = coll.find({"_id": {"$in": [1277, "1277", wanted[0]]}})  # not all strings: still exact
        assert {(type(d["_id"]), d["_id"]) for d in mixed} == {(int, 1277), (str, "1277"), (str, wanted[0])}
    finally:
        coll.drop()
        client.close()


def test_an_unordered_insert_of_many_documents_keeps_all_but_the_duplicates(settings: Settings):
    """The local FerretDB build inserts 1,000 documents per transaction, not 100
    (infra/ferretdb_component, LAKE_FERRETDB_INSERT_BATCH); a batch holding a duplicate `_id` fails
    as a whole and is retried one document at a time. The curator's writes rely on MongoDB's answer
    to an unordered insert: every other document stored, an error for each duplicate, at its index.
    This checks that answer across several such batches; it cannot see the batch size itself (the
    benchmarks measure what it changes)."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    coll = client[settings.mongo.database]["batch_probe"]
    try:
        coll.drop()
        coll.insert_many([{"_id": str(i), "v": "old"} for i in (5, 1_500, 2_999)])
        docs = [{"_id": str(i), "v": "new", "n": i} for i in range(3_000)]
        docs.insert(2_200, {"_id": "1200", "v": "twin", "n": -1})  # a duplicate within the insert
        with pytest.raises(BulkWriteError) as raised:
            coll.insert_many(docs, ordered=False)
        errors = raised.value.details["writeErrors"]
        assert sorted((e["index"], e["code"]) for e in errors) == [
            (5, 11000),
            (1_500, 11000),
            (2_200, 11000),
            (3_000, 11000),
        ]
        assert raised.value.details["nInserted"] == 2_997
        stored = {d["_id"]: d for d in coll.find()}
        assert len(stored) == 3_000
        assert [stored[str(i)]["v"] for i in (5, 1_500, 2_999)] == ["old"] * 3
        assert stored["1200"] == {"_id": "1200", "v": "new", "n": 1_200}
        assert sum(d["v"] == "new" for d in stored.values()) == 2_997
    finally:
        coll.drop()
        client.close()


def test_bootstrap_drops_the_query_indexes_earlier_versions_created(settings: Settings):
    """Every read of the curated store is by `_id` (list queries use the catalogue in MySQL), and each
    secondary index costs inserts: a collection from an earlier version loses them."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    cfg = settings.mongo.model_copy(update={"collection": "index_probe"})
    coll = client[cfg.database][cfg.collection]
    try:
        coll.drop()
        coll.insert_one({"_id": "x", "created_at": 1, "sentiment": "neutral"})
        coll.create_index([("created_at", -1), ("_id", -1)], name="created_id")
        coll.create_index([("sentiment", 1), ("created_at", -1)], name="sentiment_created")
        repo = CuratedRepository(client, cfg)
        assert set(repo.ensure_indexes()) == {"created_id", "sentiment_created"} <= set(LEGACY_INDEXES)
        assert {ix["name"] for ix in coll.list_indexes()} == {"_id_"}
        assert repo.ensure_indexes() == []
    finally:
        coll.drop()
        client.close()


def test_a_document_being_replayed_is_never_missing_from_a_read(settings: Settings):
    """A list page reads its documents by `_id` while a curator may be replaying their chunk: the
    replay replaces them in place, so every read finds every one of them, old or new."""
    import threading

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        repo = CuratedRepository(client, settings.mongo)
        ids = [str(1_150_000_000_000_000_000 + i) for i in range(400)]
        repo.write_chunk("run-r", 1, [StoredBatch.of([_doc(i, "run-r", 1, 1) for i in ids])])
        done = threading.Event()
        seen: list[tuple[int, set[int]]] = []

        def read() -> None:
            while not done.is_set():
                found = list(repo.tweets.find({"_id": {"$in": ids[::8]}}, {"v": 1}))
                seen.append((len(found), {d["v"] for d in found}))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            repo.write_chunk("run-r", 1, [StoredBatch.of([_doc(i, "run-r", 1, 2) for i in ids])])
        finally:
            done.set()
            reader.join()
        assert len(seen) >= 2 and all(n == len(ids[::8]) for n, _ in seen)  # reads overlapped; no hole
        assert {d["v"] for d in repo.tweets.find({"_id": {"$in": ids}}, {"v": 1})} == {2}
    finally:
        client[settings.mongo.database][settings.mongo.collection].delete_many({"lineage.run_id": "run-r"})
        client.close()


def test_replicas_registering_the_same_tokenizer_at_once_all_start(settings: Settings):
    """Curator replicas start together and each registers its tokenizer: concurrent upserts of one
    `_id` can raise a duplicate key error (FerretDB, and MongoDB too); none may fail to start."""
    import threading

    from lake.transform.curated_store import tokenizer_record

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    cfg = settings.mongo.model_copy(update={"database": f"{settings.mongo.database}_tok_race"})
    client.drop_database(cfg.database)
    repos = [CuratedRepository(client, cfg) for _ in range(6)]
    errors: list[BaseException] = []
    try:
        for attempt in range(8):
            record = tokenizer_record("bert-base-uncased", f"{attempt:02d}" * 32, 30522)
            barrier = threading.Barrier(len(repos))

            def register(repo: CuratedRepository, record: dict[str, Any] = record, b: Any = barrier) -> None:
                b.wait()
                try:
                    repo.register_tokenizer(record)
                except BaseException as exc:  # collected, asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=register, args=(r,)) for r in repos]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert errors == []
        assert len(repos[0].tokenizers()) == 8
    finally:
        client.drop_database(cfg.database)
        client.close()
