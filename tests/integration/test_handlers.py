"""The three pipeline handlers over the real stores, wired in-process (the broker is the only fake):
every record is accounted for, replays change nothing, refused input fails the run."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any, cast

import polars as pl
import pymongo
import pytest

from lake.adapters.broker import Publisher
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.staging_repo import StagingRepository
from lake.events import GeneratedSource, IngestRequested, PathSource, RawChunkReady, StagedChunkReady
from lake.runner import PermanentError
from lake.settings import Settings
from lake.transform.tokenize import load_tokenizer
from services.curator.handler import Curator
from services.ingestor.handler import Ingestor
from services.stager.handler import Stager
from tests.fakes import CollectingPublisher


@pytest.fixture
def mongo(settings: Settings) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def pipeline(settings: Settings, store: S3ObjectStore, repo: StagingRepository, mongo: Any):
    small = settings.model_copy(update={"pipeline": settings.pipeline.model_copy(update={"chunk_rows": 700})})
    pub = CollectingPublisher()
    publisher = cast(Publisher, pub)
    tok = load_tokenizer("bert-base-uncased", 64, offline=True)
    curated = CuratedRepository(mongo, settings.mongo)
    return (
        pub,
        Ingestor(small, store, repo, publisher),
        Stager(small, store, repo, publisher),
        Curator(small, store, repo, curated, tok, publisher),
        curated,
    )


def run_all(
    pub: CollectingPublisher, ingestor: Ingestor, stager: Stager, curator: Curator, event: Any
) -> None:
    ingestor.handle(event)
    for raw in pub.of(RawChunkReady):
        stager.handle(raw)
    for staged in pub.of(StagedChunkReady):
        curator.handle(staged)


def test_a_generated_run_reconciles_and_every_layer_holds_it(pipeline, repo, store, settings):
    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    run_all(
        pub,
        ingestor,
        stager,
        curator,
        IngestRequested(run_id=run_id, request=GeneratedSource(rows=3000, seed=11, malformed_share=0.01)),
    )
    counts = repo.run_counts(run_id)
    assert counts["raw_rows"] == 3000
    assert counts["raw_rows"] == counts["staged_rows"] + counts["rejected_rows"] + counts["duplicate_rows"]
    assert counts["curated_docs"] == counts["staged_rows"]
    assert counts["rejected_rows"] > 0 and counts["duplicate_rows"] > 0
    assert repo.run_status(run_id) == ("succeeded", None)
    assert len(pub.of(RawChunkReady)) == 5  # 3000 records / 700 per chunk
    assert curated.tweets.count_documents({"lineage.run_id": run_id}) == counts["staged_rows"]
    doc = curated.tweets.find_one({"lineage.run_id": run_id})
    assert (
        doc is not None
        and doc["tokens"]["ids"][0] == 101
        and doc["tokens"]["tokenizer"] == "bert-base-uncased"
    )
    with repo.conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tweets WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == counts["staged_rows"]
        cur.execute("SELECT COUNT(*) FROM rejected_rows WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == counts["rejected_rows"]
    staged_objects = list(store.list_keys(settings.s3.staging_bucket, f"tweets/run_id={run_id}/"))
    frames = [
        pl.read_parquet(io.BytesIO(store.get_bytes(settings.s3.staging_bucket, o["Key"])))
        for o in staged_objects
    ]
    assert sum(f.height for f in frames) == counts["staged_rows"]
    raw_keys = [o["Key"] for o in store.list_keys(settings.s3.raw_bucket, f"runs/{run_id}/")]
    assert raw_keys == [f"runs/{run_id}/generated-seed11-rows3000.csv"]
    curated_keys = [o["Key"] for o in store.list_keys(settings.s3.curated_bucket, "tweets/company=")]
    assert any(run_id in k for k in curated_keys)


def test_replaying_every_event_changes_no_count_and_no_store(pipeline, repo):
    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    event = IngestRequested(run_id=run_id, request=GeneratedSource(rows=1500, seed=5))
    run_all(pub, ingestor, stager, curator, event)
    before = repo.run_counts(run_id)
    docs = curated.tweets.count_documents({"lineage.run_id": run_id})
    for raw in pub.of(RawChunkReady):
        stager.handle(raw)
    for staged in pub.of(StagedChunkReady):
        curator.handle(staged)
    ingestor.handle(event)
    assert repo.run_counts(run_id) == before
    assert curated.tweets.count_documents({"lineage.run_id": run_id}) == docs


def test_reingesting_the_same_data_in_a_new_run_stages_nothing_new(pipeline, repo):
    pub, ingestor, stager, curator, _ = pipeline
    request = GeneratedSource(rows=1000, seed=99)
    first, second = f"h-{uuid.uuid4().hex[:8]}", f"h-{uuid.uuid4().hex[:8]}"
    run_all(pub, ingestor, stager, curator, IngestRequested(run_id=first, request=request))
    pub.events.clear()
    run_all(pub, ingestor, stager, curator, IngestRequested(run_id=second, request=request))
    a, b = repo.run_counts(first), repo.run_counts(second)
    assert b["staged_rows"] == 0 and b["curated_docs"] == 0
    assert b["duplicate_rows"] == a["staged_rows"] + a["duplicate_rows"]
    assert b["rejected_rows"] == a["rejected_rows"]
    assert repo.run_status(second) == ("succeeded", None)


def test_a_path_outside_the_allowed_roots_is_refused_and_nothing_goes_downstream(pipeline, repo, tmp_path):
    pub, ingestor, *_ = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    with pytest.raises(PermanentError, match="outside the allowed roots"):
        ingestor.handle(IngestRequested(run_id=run_id, request=PathSource(path="/etc/passwd")))
    ingestor.on_dead_letter(IngestRequested(run_id=run_id, request=PathSource(path="/etc/passwd")), "refused")
    assert pub.events == []
    status = repo.run_status(run_id)
    assert status is not None and status[0] == "failed" and "refused" in (status[1] or "")


def test_a_chunk_whose_bytes_changed_is_refused_by_checksum(pipeline):
    pub, ingestor, stager, *_ = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    ingestor.handle(IngestRequested(run_id=run_id, request=GeneratedSource(rows=800, seed=3)))
    raw = pub.of(RawChunkReady)[0]
    tampered = raw.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(PermanentError, match="checksum"):
        stager.handle(tampered)
