"""The three pipeline handlers over the real stores, wired in-process (the broker is the only fake):
every record is accounted for, replays change nothing, refused input fails the run."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any, cast

import polars as pl
import pyarrow as pa
import pytest
from pydantic_core import to_json

from lake.adapters.curated_catalog import CuratedCatalog
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.objectstore import S3ObjectStore
from lake.events import (
    GeneratedSource,
    IngestRequested,
    PathSource,
    RawChunkReady,
    StagedChunkReady,
)
from lake.runner import PermanentError
from lake.settings import Settings
from lake.transform import curated_parquet as cp
from lake.transform import item_codec
from lake.transform.clean import hashtags_of
from lake.transform.curated_store import STAGED_ADDS, Staged, api_document, unpack_ids
from services.curator.handler import Curator
from services.ingestor.handler import Ingestor
from services.stager.handler import Stager
from tests.fakes import CollectingPublisher
from tests.unit.test_curated_parquet import _docs as curated_docs
from tests.unit.test_curated_parquet import ipc_part


def run_all(
    pub: CollectingPublisher, ingestor: Ingestor, stager: Stager, curator: Curator, event: Any
) -> None:
    ingestor.handle(event)
    for raw in pub.of(RawChunkReady):
        stager.handle(raw)
    for staged in pub.of(StagedChunkReady):
        curator.handle(staged)


def test_a_generated_run_reconciles_and_every_layer_holds_it(pipeline, repo, ledger, store, settings):
    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    run_all(
        pub,
        ingestor,
        stager,
        curator,
        IngestRequested(run_id=run_id, request=GeneratedSource(rows=3000, seed=11, malformed_share=0.01)),
    )
    counts = ledger.run_counts(run_id)
    assert counts["raw_rows"] == 3000
    assert counts["raw_rows"] == counts["staged_rows"] + counts["rejected_rows"] + counts["duplicate_rows"]
    assert counts["curated_docs"] == counts["staged_rows"]
    assert counts["rejected_rows"] > 0 and counts["duplicate_rows"] > 0
    assert ledger.run_status(run_id) == ("succeeded", None)
    assert len(pub.of(RawChunkReady)) == 5  # 3000 records / 700 per chunk
    assert curated.tweets.count_documents({"lineage.run_id": run_id}) == counts["staged_rows"]
    doc = curated.tweets.find_one({"lineage.run_id": run_id})
    assert doc is not None and doc["tokenizer"].startswith("bert-base-uncased@")
    tokenizer = curated.tokenizers()[doc["tokenizer"]]
    assert unpack_ids(doc["tok"], tokenizer["id_bytes"])[0] == 101 and len(tokenizer["vocab_sha256"]) == 64
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
    assert_compacted(store, settings, run_id, counts["staged_rows"])


def assert_compacted(store: S3ObjectStore, settings: Settings, run_id: str, rows: int) -> list[str]:
    """The run's curated Parquet: one file per partition, deterministic names, no parts left over,
    every staged row once, and each file's rows in its own partition."""
    bucket = settings.s3.curated_bucket
    assert list(store.list_keys(bucket, f"_chunks/run_id={run_id}/")) == []
    keys = sorted(o["Key"] for o in store.list_keys(bucket, "tweets/") if f"/{run_id}-part-" in o["Key"])
    assert all(k.endswith(f"/{run_id}-part-00000.parquet") for k in keys)
    total = 0
    for key in keys:
        frame = pl.read_parquet(io.BytesIO(store.get_bytes(bucket, key)))
        company, month = (p.split("=", 1)[1] for p in key.split("/")[1:3])
        assert set(frame["company"]) == {company}
        assert {d[:7] for d in frame["date"]} == {month}
        assert frame["lineage_run_id"].unique().to_list() == [run_id]
        total += frame.height
    assert total == rows
    return keys


def test_a_tweet_met_again_under_another_company_gains_it_in_the_curated_document(pipeline, repo):
    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    event = IngestRequested(run_id=run_id, request=GeneratedSource(rows=4000, seed=23))
    run_all(pub, ingestor, stager, curator, event)
    with repo.conn.cursor() as cur:
        cur.execute(
            "SELECT tc.twitter_id, GROUP_CONCAT(tc.company ORDER BY tc.company SEPARATOR ',')"
            " FROM tweet_companies tc JOIN tweets t ON t.twitter_id = tc.twitter_id"
            " WHERE t.run_id = %s GROUP BY tc.twitter_id HAVING COUNT(*) > 1",
            (run_id,),
        )
        linked = {str(tid): comps.split(",") for tid, comps in cur.fetchall()}
    repo.conn.commit()
    assert len(linked) >= 5  # the generator catches ~1% of tweets under a second company
    docs = {d["_id"]: d["companies"] for d in curated.tweets.find({"_id": {"$in": list(linked)}})}
    assert docs == linked


def test_a_finalisation_cut_short_after_recording_its_files_only_finishes_the_cleanup(
    pipeline, repo, ledger, store, settings
):
    pub, ingestor, stager, curator, _ = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    run_all(
        pub, ingestor, stager, curator, IngestRequested(run_id=run_id, request=GeneratedSource(rows=1500))
    )
    keys = assert_compacted(store, settings, run_id, ledger.run_counts(run_id)["staged_rows"])
    # as if the finaliser had died between recording the compacted files and deleting the parts
    leftover = f"_chunks/run_id={run_id}/company=Apple/year_month=2020-09/chunk-00000.arrow"
    store.put_bytes(settings.s3.curated_bucket, leftover, b"not read again")
    assert curator.finalizer.compact(run_id) == keys
    assert list(store.list_keys(settings.s3.curated_bucket, f"_chunks/run_id={run_id}/")) == []


def test_a_run_curated_across_the_upgrade_compacts_each_chunk_once_from_its_latest_form(
    pipeline, store, settings, tmp_path: Path
):
    *_, curator, _ = pipeline
    run_id, bucket = f"h-{uuid.uuid4().hex[:8]}", settings.s3.curated_bucket
    apple, tesla = ("Apple", "2020-09"), ("Tesla", "2020-09")

    def rows(n: int, start: int, company: str = "Apple") -> pa.Table:
        return cp.partitions(curated_docs(n, start, company))[company, "2020-09"]

    def chunk_file(parts: dict[tuple[str, str], list[pa.Table]]) -> bytes:
        cp.write_chunk_file(parts, tmp_path / "chunk.arrow")
        return (tmp_path / "chunk.arrow").read_bytes()

    objects = {  # chunk 0 as parts, chunk 1 as a part and again as a file, chunk 2 as a file
        cp.chunk_part_key(run_id, *apple, 0): ipc_part(rows(30, 0)),
        cp.chunk_part_key(run_id, *tesla, 0): ipc_part(rows(5, 500, "Tesla")),
        cp.chunk_part_key(run_id, *apple, 1): ipc_part(rows(10, 9000)),  # superseded
        cp.chunk_key(run_id, 1): chunk_file({apple: [rows(20, 30)]}),
        cp.chunk_key(run_id, 2): chunk_file({apple: [rows(7, 50)], tesla: [rows(3, 505, "Tesla")]}),
    }
    for key, data in objects.items():
        store.put_bytes(bucket, key, data)
    keys = curator.finalizer.compact(run_id)
    assert keys == [cp.final_key(*apple, run_id, 0), cp.final_key(*tesla, run_id, 0)]
    ids = [pl.read_parquet(io.BytesIO(store.get_bytes(bucket, k)))["twitter_id"].to_list() for k in keys]
    first = 1_300_000_000_000_000_000
    assert ids == [[first + i for i in range(57)], [first + i for i in range(500, 508)]]
    assert list(store.list_keys(bucket, f"_chunks/run_id={run_id}/")) == []
    for key in keys:
        store.delete(bucket, key)


def test_replaying_every_event_changes_no_count_and_no_store(pipeline, repo, ledger, store, settings):
    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    event = IngestRequested(run_id=run_id, request=GeneratedSource(rows=1500, seed=5))
    run_all(pub, ingestor, stager, curator, event)
    before = ledger.run_counts(run_id)
    docs = curated.tweets.count_documents({"lineage.run_id": run_id})
    for raw in pub.of(RawChunkReady):
        stager.handle(raw)
    for staged in pub.of(StagedChunkReady):
        curator.handle(staged)
    published = len(pub.events)
    ingestor.handle(event)  # the same run requested again (a scheduler retry): nothing is redone
    assert len(pub.events) == published
    assert ledger.run_counts(run_id) == before
    assert curated.tweets.count_documents({"lineage.run_id": run_id}) == docs
    assert ledger.run_status(run_id) == ("succeeded", None)
    assert_compacted(store, settings, run_id, before["staged_rows"])  # replays after success add no part


def test_reingesting_the_same_data_in_a_new_run_stages_nothing_new(pipeline, repo, ledger):
    pub, ingestor, stager, curator, _ = pipeline
    request = GeneratedSource(rows=1000, seed=99)
    first, second = f"h-{uuid.uuid4().hex[:8]}", f"h-{uuid.uuid4().hex[:8]}"
    run_all(pub, ingestor, stager, curator, IngestRequested(run_id=first, request=request))
    pub.events.clear()
    run_all(pub, ingestor, stager, curator, IngestRequested(run_id=second, request=request))
    a, b = ledger.run_counts(first), ledger.run_counts(second)
    assert b["staged_rows"] == 0 and b["curated_docs"] == 0
    assert b["duplicate_rows"] == a["staged_rows"] + a["duplicate_rows"]
    assert b["rejected_rows"] == a["rejected_rows"]
    assert ledger.run_status(second) == ("succeeded", None)


def test_a_path_outside_the_allowed_roots_is_refused_and_nothing_goes_downstream(
    pipeline, repo, ledger, tmp_path
):
    pub, ingestor, *_ = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    with pytest.raises(PermanentError, match="outside the allowed roots"):
        ingestor.handle(IngestRequested(run_id=run_id, request=PathSource(path="/etc/passwd")))
    ingestor.on_dead_letter(IngestRequested(run_id=run_id, request=PathSource(path="/etc/passwd")), "refused")
    assert pub.events == []
    status = ledger.run_status(run_id)
    assert status is not None and status[0] == "failed" and "refused" in (status[1] or "")


def test_a_chunk_whose_bytes_changed_is_refused_by_checksum(pipeline):
    pub, ingestor, stager, *_ = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    ingestor.handle(IngestRequested(run_id=run_id, request=GeneratedSource(rows=800, seed=3)))
    raw = pub.of(RawChunkReady)[0]
    tampered = raw.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(PermanentError, match="checksum"):
        stager.handle(tampered)


def _with_roots(curator_pipeline: Any, roots: list[str]) -> Ingestor:
    _, ingestor, *_ = curator_pipeline
    pipeline_cfg = ingestor.settings.pipeline.model_copy(update={"allowed_roots": [Path(r) for r in roots]})
    settings = ingestor.settings.model_copy(update={"pipeline": pipeline_cfg})
    return Ingestor(settings, ingestor.store, ingestor.ledger, ingestor.publisher)


def test_a_kaggle_shaped_folder_is_read_whole_with_its_subfolder_file_kept_byte_for_byte(
    pipeline, repo, ledger, store, settings, tmp_path
):
    from lake.transform.generate import write_csv

    pub, _, stager, curator, _ = pipeline
    sub = tmp_path / "Bigtech - 12-07-2020 till 19-09-2020"
    sub.mkdir()
    files = {
        "Bigtech - 20-09-2020 till 13-10-2020.csv": tmp_path / "Bigtech - 20-09-2020 till 13-10-2020.csv",
        f"{sub.name}/{sub.name}.csv": sub / f"{sub.name}.csv",
    }
    for seed, path in enumerate(files.values()):
        with path.open("wb") as out:
            write_csv(out, 900, seed=100 + seed)
    ingestor = _with_roots(pipeline, [str(tmp_path)])
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    run_all(
        pub, ingestor, stager, curator, IngestRequested(run_id=run_id, request=PathSource(path=str(tmp_path)))
    )
    counts = ledger.run_counts(run_id)
    assert counts["raw_rows"] == 1800
    assert counts["raw_rows"] == counts["staged_rows"] + counts["rejected_rows"] + counts["duplicate_rows"]
    assert ledger.run_status(run_id) == ("succeeded", None)
    for name, path in files.items():
        assert store.get_bytes(settings.s3.raw_bucket, f"runs/{run_id}/{name}") == path.read_bytes()


def test_an_s3_prefix_under_an_allowed_root_is_ingested_and_one_outside_is_refused(
    pipeline, repo, ledger, store, settings
):
    from lake.transform.generate import write_csv

    pub, _, stager, curator, _ = pipeline
    buf = io.BytesIO()
    write_csv(buf, 700, seed=31)
    prefix = f"incoming-{uuid.uuid4().hex[:6]}"
    store.put_bytes(settings.s3.raw_bucket, f"{prefix}/day1/tweets.csv", buf.getvalue())
    ingestor = _with_roots(pipeline, [f"s3://{settings.s3.raw_bucket}/{prefix}"])
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    uri = f"s3://{settings.s3.raw_bucket}/{prefix}/"
    run_all(pub, ingestor, stager, curator, IngestRequested(run_id=run_id, request=PathSource(path=uri)))
    assert ledger.run_counts(run_id)["raw_rows"] == 700
    assert store.get_bytes(settings.s3.raw_bucket, f"runs/{run_id}/day1/tweets.csv") == buf.getvalue()
    with pytest.raises(PermanentError, match="not under an allowed s3:// root"):
        ingestor.handle(
            IngestRequested(
                run_id=f"h-{uuid.uuid4().hex[:8]}",
                request=PathSource(path=f"s3://{settings.s3.raw_bucket}/other/"),
            )
        )


def catalogue(repo: Any, run_id: str) -> tuple[set[str], set[tuple[str, str]], int]:
    """The run's tweets in the curated catalogue, the companies it lists them under (their
    documents' companies, migration 012), and the hashtag links curated pages walk for them."""
    with repo.conn.cursor() as cur:
        cur.execute("SELECT twitter_id, companies FROM curated_tweets WHERE run_id = %s", (run_id,))
        rows = cur.fetchall()
        cur.execute(
            "SELECT COUNT(*) FROM tweet_hashtags th JOIN curated_tweets ct ON ct.twitter_id = th.twitter_id"
            " WHERE ct.run_id = %s",
            (run_id,),
        )
        tags = int(cur.fetchone()[0])
    repo.conn.commit()
    tweets = {str(t) for t, _ in rows}
    links = {(str(t), c) for t, names in rows for c in json.loads(names)}
    return tweets, links, tags


def catalogue_revisions(repo: Any, run_id: str) -> dict[str, int]:
    with repo.conn.cursor() as cur:
        cur.execute("SELECT twitter_id, revision FROM curated_tweets WHERE run_id = %s", (run_id,))
        found = {str(t): int(r) for t, r in cur.fetchall()}
    repo.conn.commit()
    return found


def list_items_match_the_documents(repo: Any, curated: Any, run_id: str) -> int:
    """Check that each catalogued list item (migration 007) is the API's rendering of the document
    the store holds now (with what the staged row adds: the store does not repeat it); their number."""
    with repo.conn.cursor() as cur:
        cur.execute(
            f"SELECT ct.twitter_id, ct.item, {STAGED_ADDS} FROM curated_tweets ct"
            " JOIN tweets t ON t.twitter_id = ct.twitter_id WHERE ct.run_id = %s",
            (run_id,),
        )
        found = {str(t): (item, Staged(*adds)) for t, item, *adds in cur.fetchall()}
    repo.conn.commit()
    docs = {d["_id"]: d for d in curated.tweets.find({"_id": {"$in": list(found)}})}
    assert set(docs) == set(found)
    for tid, (item, adds) in found.items():
        shown = to_json(api_document(docs[tid], adds, {}, include_tokens=False))
        assert item_codec.decode(item) == shown, tid
    return len(found)


def test_the_curated_catalogue_lists_exactly_the_documents_that_exist(pipeline, repo):
    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    ingestor.handle(IngestRequested(run_id=run_id, request=GeneratedSource(rows=4000, seed=31)))
    for raw in pub.of(RawChunkReady):
        stager.handle(raw)
    # staged, not curated yet: the catalogue lists none of the run's tweets
    assert catalogue(repo, run_id) == (set(), set(), 0)
    staged = [e for e in pub.of(StagedChunkReady) if e.run_id == run_id]
    curator.handle(staged[0])
    first = {d["_id"] for d in curated.tweets.find({"lineage.run_id": run_id, "lineage.chunk_id": 0})}
    assert catalogue(repo, run_id)[0] == first  # one chunk curated: exactly its documents
    for event in staged[1:]:
        curator.handle(event)
    docs = {d["_id"]: d for d in curated.tweets.find({"lineage.run_id": run_id})}
    tweets, links, tags = catalogue(repo, run_id)
    assert tweets == set(docs)
    # a company is listed exactly when the document holds it (late links copied at finalisation)
    assert links == {(tid, c) for tid, d in docs.items() for c in d["companies"]}
    assert tags == sum(len(hashtags_of(d["text"])) for d in docs.values())  # the store derives them
    assert any(len(d["companies"]) > 1 for d in docs.values())
    assert list_items_match_the_documents(repo, curated, run_id) == len(docs)  # late links too
    # a replayed chunk changes neither the documents nor the catalogue, but for the revisions of
    # the documents it rewrote (the gateway's cache reads them again) and only theirs
    revisions = catalogue_revisions(repo, run_id)
    several = {tid for tid, d in docs.items() if len(d["companies"]) > 1}
    assert {tid for tid, r in revisions.items() if r > 0} <= several  # late links: rewritten
    curator.handle(staged[1])
    assert catalogue(repo, run_id) == (tweets, links, tags)
    assert curated.tweets.count_documents({"lineage.run_id": run_id}) == len(docs)
    chunk_1 = {d["_id"] for d in docs.values() if d["lineage"]["chunk_id"] == staged[1].chunk_id}
    now = catalogue_revisions(repo, run_id)
    assert {tid for tid in now if now[tid] != revisions[tid]} == chunk_1
    assert all(now[tid] == revisions[tid] + 1 for tid in chunk_1)
    assert list_items_match_the_documents(repo, curated, run_id) == len(docs)


class RewriteDuringRead:
    """The document store, but the first read of documents is overtaken by a curator's rewrite of
    ``tid`` (a new revision with its own item): the race the backfill must lose."""

    def __init__(self, curated: Any, repo: Any, tid: int) -> None:
        self.curated, self.repo, self.tid, self.raced = curated, repo, tid, False

    @property
    def tweets(self) -> Any:
        return self

    def find(self, *args: Any, **kwargs: Any) -> Any:
        if not self.raced:
            self.raced = True
            with self.repo.conn.cursor() as cur:
                cur.execute(
                    "UPDATE curated_tweets SET revision = revision + 1, item = 'rewritten'"
                    " WHERE twitter_id = %s",
                    (self.tid,),
                )
            self.repo.conn.commit()
        return self.curated.tweets.find(*args, **kwargs)


def test_the_backfill_renders_missing_items_from_the_documents_and_loses_races(pipeline, repo):
    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    run_all(
        pub,
        ingestor,
        stager,
        curator,
        IngestRequested(run_id=run_id, request=GeneratedSource(rows=900, seed=9091)),
    )
    catalog = CuratedCatalog(repo)
    with repo.conn.cursor() as cur:  # as if catalogued before migration 007
        cur.execute("UPDATE curated_tweets SET item = NULL WHERE run_id = %s", (run_id,))
        cur.execute("SELECT MIN(twitter_id), COUNT(*) FROM curated_tweets WHERE run_id = %s", (run_id,))
        first, n = cur.fetchone()
    repo.conn.commit()
    assert n > 800 and catalog.missing_items() >= n
    seen: list[tuple[int, int]] = []
    racing = cast(CuratedRepository, RewriteDuringRead(curated, repo, first))
    written = catalog.backfill_items(racing, 100, lambda *a: seen.append(a))
    assert catalog.missing_items() == 0 and written >= n - 1 and seen[-1] == (written, seen[0][1])
    with repo.conn.cursor() as cur:
        cur.execute("SELECT item FROM curated_tweets WHERE twitter_id = %s", (first,))
        assert cur.fetchone() == (b"rewritten",)  # the newer item stayed
        cur.execute("UPDATE curated_tweets SET item = NULL WHERE twitter_id = %s", (first,))
    repo.conn.commit()
    assert catalog.backfill_items(curated) == 1  # idempotent: only what is missing
    assert list_items_match_the_documents(repo, curated, run_id) == n


def test_a_replay_from_curate_rebuilds_the_curated_layer_with_the_same_counts(
    pipeline, repo, ledger, store, settings
):
    from lake.adapters.run_ledger import RunNotReplayable
    from lake.recovery import curate_again

    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    run_all(
        pub,
        ingestor,
        stager,
        curator,
        IngestRequested(run_id=run_id, request=GeneratedSource(rows=2000, seed=9292)),
    )
    before = ledger.run_counts(run_id)
    keys = assert_compacted(store, settings, run_id, before["staged_rows"])
    revisions = catalogue_revisions(repo, run_id)
    with pytest.raises(RunNotReplayable, match="no run"):
        ledger.reopen_for_replay("h-nosuchrun", "test")
    chunks = ledger.reopen_for_replay(run_id, "test")
    assert [c for c, _ in chunks] == [e.chunk_id for e in pub.of(StagedChunkReady) if e.run_id == run_id]
    assert ledger.run_status(run_id) == ("running", None)
    assert ledger.run_counts(run_id)["curated_docs"] == 0  # curated again from scratch
    with pytest.raises(RunNotReplayable, match="is running"):
        ledger.reopen_for_replay(run_id, "test")
    for event in curate_again(settings, run_id, chunks):  # what lake.recovery.replay_run publishes
        curator.handle(event)
    assert ledger.run_status(run_id) == ("succeeded", None)
    assert ledger.run_counts(run_id) == before
    assert assert_compacted(store, settings, run_id, before["staged_rows"]) == keys  # same keys, none left
    now = catalogue_revisions(repo, run_id)
    assert set(now) == set(revisions) and all(now[t] > revisions[t] for t in now)  # every document rewritten
    assert list_items_match_the_documents(repo, curated, run_id) == before["curated_docs"]
    with repo.conn.cursor() as cur:
        cur.execute("SELECT event FROM run_history WHERE run_id = %s ORDER BY seq", (run_id,))
        assert [r[0] for r in cur.fetchall()] == ["replayed"]
    repo.conn.commit()


def test_a_replay_from_stage_applies_changed_rules_to_every_layer_as_a_fresh_ingestion_would(
    pipeline, repo, ledger, store, settings
):
    """A cleaning rule changes (sentiment thresholds, a shortest clean text): the replay from stage
    leaves staging, its copies (company links, hashtags, rejects, staged Parquet) and the curated
    layer (documents, catalogue, list items, Parquet) exactly as an ingestion of the same file
    under the new rules gives them, and the counts reconcile."""
    from lake.adapters.run_ledger import RunNotReplayable
    from lake.transform.clean import Rules
    from lake.transform.stage import stage_records

    pub, ingestor, stager, curator, curated = pipeline
    run_id = f"h-{uuid.uuid4().hex[:8]}"
    run_all(
        pub,
        ingestor,
        stager,
        curator,
        IngestRequested(run_id=run_id, request=GeneratedSource(rows=3000, seed=7171, malformed_share=0.01)),
    )
    before = ledger.run_counts(run_id)
    staged_before = staged_rows(repo, run_id)
    raw_events = [e for e in pub.of(RawChunkReady) if e.run_id == run_id]
    rules = Rules(sentiment_positive=0.4, sentiment_negative=-0.4, min_clean_text_chars=60)
    # What an ingestion of the same file under the new rules stages (first valid record of an id).
    raw = store.get_bytes(settings.s3.raw_bucket, raw_events[0].key)
    body = raw[raw_events[0].byte_start :]
    expected = stage_records(body, raw_events[0].columns, 1, {}, rules)
    want = {r["twitter_id"]: (r["sentiment"], r["clean_text"]) for r in expected.rows}
    assert len(want) < before["staged_rows"] and any(r[1] == "clean_text_too_short" for r in expected.rejects)
    assert {s for s, _ in want.values()} != {s for s, _ in staged_before.values()} or len(want) > 0

    with pytest.raises(RunNotReplayable, match="no run"):
        ledger.reopen_for_stage_replay("h-nosuchrun", "test")
    stager.rules = rules  # the stagers restarted with the new rules
    events = ledger.reopen_for_stage_replay(run_id, "test")
    assert [e.model_dump(exclude={"emitted_at", "replay"}) for e in events] == [
        e.model_dump(exclude={"emitted_at", "replay"}) for e in raw_events
    ]
    assert all(e.replay for e in events)
    assert ledger.run_status(run_id) == ("running", None)
    assert ledger.run_counts(run_id) | {"raw_rows": 0} == dict.fromkeys(
        before, 0
    )  # staged again from scratch
    with pytest.raises(RunNotReplayable, match="is running"):
        ledger.reopen_for_stage_replay(run_id, "test")
    mark = len(pub.of(StagedChunkReady))
    for event in events:
        stager.handle(event)
    replayed = pub.of(StagedChunkReady)[mark:]
    assert len(replayed) == len(events) and all(e.replay for e in replayed)
    for event in replayed:
        curator.handle(event)

    after = ledger.run_counts(run_id)
    assert ledger.run_status(run_id) == ("succeeded", None)
    assert after["raw_rows"] == before["raw_rows"] == 3000
    assert after["raw_rows"] == after["staged_rows"] + after["rejected_rows"] + after["duplicate_rows"]
    assert after["staged_rows"] == after["curated_docs"] == len(want)
    assert after["rejected_rows"] == len(expected.rejects)
    assert staged_rows(repo, run_id) == want  # values under the new rules, ids as a fresh ingestion
    with repo.conn.cursor() as cur:
        cur.execute("SELECT reason, COUNT(*) FROM rejected_rows WHERE run_id = %s GROUP BY reason", (run_id,))
        reasons = dict(cur.fetchall())
        cur.execute(  # copies of the staged rows' time and sentiment follow them
            "SELECT COUNT(*) FROM tweet_companies tc JOIN tweets t ON t.twitter_id = tc.twitter_id"
            " WHERE t.run_id = %s AND NOT (tc.created_at <=> t.created_at AND tc.sentiment <=> t.sentiment)",
            (run_id,),
        )
        assert cur.fetchone()[0] == 0
        cur.execute(
            "SELECT COUNT(*) FROM tweet_companies WHERE twitter_id IN"
            " (SELECT twitter_id FROM tweet_companies WHERE run_id = %s)"
            " AND twitter_id NOT IN (SELECT twitter_id FROM tweets)",
            (run_id,),
        )
        assert cur.fetchone()[0] == 0  # no link to a tweet that left staging
        cur.execute(
            "SELECT ct.twitter_id, ct.sentiment, t.sentiment FROM curated_tweets ct"
            " LEFT JOIN tweets t ON t.twitter_id = ct.twitter_id WHERE ct.run_id = %s",
            (run_id,),
        )
        catalogued = cur.fetchall()
        cur.execute("SELECT event, detail FROM run_history WHERE run_id = %s ORDER BY seq", (run_id,))
        history = cur.fetchall()
    repo.conn.commit()
    assert reasons["clean_text_too_short"] > 0 and sum(reasons.values()) == after["rejected_rows"]
    assert {int(t) for t, _, _ in catalogued} == set(want)
    assert all(a == b for _, a, b in catalogued)
    _, links, _ = catalogue(repo, run_id)
    assert {int(t) for t, _ in links} == set(want)
    assert list_items_match_the_documents(repo, curated, run_id) == len(want)
    gone = [str(t) for t in set(staged_before) - set(want)]
    assert gone and curated.tweets.count_documents({"_id": {"$in": gone}}) == 0
    staged_parquet = sum(
        pl.read_parquet(io.BytesIO(store.get_bytes(settings.s3.staging_bucket, o["Key"]))).height
        for o in store.list_keys(settings.s3.staging_bucket, f"tweets/run_id={run_id}/")
    )
    assert staged_parquet == len(want)
    rejected_lines = sum(
        store.get_bytes(settings.s3.staging_bucket, o["Key"]).count(b"\n")
        for o in store.list_keys(settings.s3.staging_bucket, f"rejected/run_id={run_id}/")
    )
    assert rejected_lines == after["rejected_rows"]
    assert_compacted(store, settings, run_id, len(want))
    sentiments = pl.concat(
        [
            pl.read_parquet(io.BytesIO(store.get_bytes(settings.s3.curated_bucket, o["Key"])))
            for o in store.list_keys(settings.s3.curated_bucket, "tweets/")
            if f"/{run_id}-part-" in o["Key"]
        ]
    ).select(pl.col("twitter_id").cast(pl.Int64), "sentiment")
    assert dict(sentiments.iter_rows()) == {t: s for t, (s, _) in want.items()}
    assert [(e, d.split(",")[0]) for e, d in history] == [("replayed", "from stage")]


def staged_rows(repo: Any, run_id: str) -> dict[int, tuple[str, str]]:
    with repo.conn.cursor() as cur:
        cur.execute("SELECT twitter_id, sentiment, clean_text FROM tweets WHERE run_id = %s", (run_id,))
        found = {int(t): (s, c) for t, s, c in cur.fetchall()}
    repo.conn.commit()
    return found
