"""Curator: ``staged.ready`` → enriched documents in MongoDB (one per tweet, ``_id`` = twitter_id;
a replay rewrites its chunk in place) and per-chunk Parquet parts in S3 ``curated``, then the
chunk's rows in the curated catalogue (MySQL) → ``curated.ready``.

When a run's last chunk is curated, the curator that curated it finalises the run (see
``finalize.py``): company links found later are copied to the documents, the Parquet parts are
compacted into the partitioned layout, and the run is marked succeeded.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa

from lake.adapters.broker import Publisher
from lake.adapters.curated_catalog import CuratedCatalog
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.events import CuratedChunkReady, StagedChunkReady
from lake.observability import RECORDS
from lake.prefetch import prefetched
from lake.runner import PermanentError
from lake.settings import Settings
from lake.transform import curated_parquet as cp
from lake.transform import item_codec
from lake.transform.curate import CatalogueItem, curate_batch
from lake.transform.curated_store import StoredBatch, tokenizer_record
from lake.transform.tokenize import LoadedTokenizer
from services.curator.finalize import RunFinalizer

log = logging.getLogger(__name__)


class Curator:
    def __init__(
        self,
        settings: Settings,
        store: S3ObjectStore,
        staging: StagingRepository,
        ledger: RunLedger,
        curated: CuratedRepository,
        tokenizer: LoadedTokenizer,
        publisher: Publisher,
    ) -> None:
        self.settings = settings
        self.store = store
        self.staging = staging
        self.ledger = ledger
        self.curated = curated
        self.tokenizer = tokenizer
        self.publisher = publisher
        self.catalog = CuratedCatalog(staging)
        self.tokenizer_record = tokenizer_record(
            tokenizer.name, tokenizer.vocab_sha256, tokenizer.tokenizer.get_vocab_size()
        )
        curated.register_tokenizer(self.tokenizer_record)
        # builds a chunk's next batch while the store writes the current one; one thread for the
        # process's life, so its allocators' arenas are reused chunk after chunk (lake.prefetch)
        self.builder = ThreadPoolExecutor(1, thread_name_prefix="curator-batches")
        self.item_encoder = item_codec.ItemEncoder()  # the catalogue's list items, in that thread
        # the finaliser's company links run beside its compaction, which uses the ledger: they get
        # a MySQL connection of their own
        links = StagingRepository(settings.mysql)
        self.finalizer = RunFinalizer(settings, store, links, ledger, curated, CuratedCatalog(links))

    def handle(self, event: StagedChunkReady) -> None:
        started = datetime.now(UTC)
        status = self.ledger.run_status(event.run_id)
        # compacted: only a run that succeeded (finalising compacts, then marks it succeeded). A
        # failed run is not: its chunks curated meanwhile keep their parts for the compaction after
        # a redrive (skipping them here lost those chunks' Parquet rows; tests/e2e/test_faults.py)
        finished = status is not None and status[0] == "succeeded"
        frame = pl.read_parquet(io.BytesIO(self.store.get_bytes(event.bucket, event.key)))
        companies = self.staging.other_companies(event.run_id, event.chunk_id)
        meta = self.tokenizer.meta()
        step = self.settings.pipeline.curator_batch
        encoder = self.item_encoder
        tables: dict[tuple[str, str], list[pa.Table]] = {}
        # (twitter_id, created_at, sentiment, compressed list item, companies) of every document: the
        # catalogue's rows
        items: list[CatalogueItem] = []

        def batches() -> Iterator[StoredBatch]:
            for offset in range(0, frame.height, step):
                rows = frame.slice(offset, step)
                ids = self.tokenizer.encode(rows["clean_text"].to_list())
                found = zip(rows["twitter_id"].to_list(), rows["company"].to_list(), strict=True)
                names = [companies.get(tid, [company]) for tid, company in found]
                batch = curate_batch(rows, ids, names, self.tokenizer_record, meta)
                for part, table in batch.parts.items():
                    tables.setdefault(part, []).append(table)
                # compressed here, in the batch thread: a chunk's items take a quarter of the memory
                items.extend((t, c, s, encoder.encode(j), n) for t, c, s, j, n in batch.items)
                yield batch.stored

        # the next batch is built while the store writes this one (lake.prefetch)
        try:
            with closing(prefetched(batches(), self.builder)) as built:
                written = self.curated.write_chunk(event.run_id, event.chunk_id, built, event.replay)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        keys: list[str] = []
        # once a run is compacted, its chunk files are never read again; a chunk with no documents
        # still writes its (empty) file, so a replay that stages nothing leaves no rows behind
        if not finished:
            key = cp.chunk_key(event.run_id, event.chunk_id)
            with cp.local_chunk_file(Path(self.settings.pipeline.work_dir)) as path:
                cp.write_chunk_file(tables, path)
                self.store.put_file(self.settings.s3.curated_bucket, key, path)
            keys.append(key)
        # after the documents exist: the catalogue lists them, and the chunk counts as curated
        gone = self.catalog.add_chunk(event.run_id, event.chunk_id, event.key, started, items, event.replay)
        if gone:  # a replay from stage no longer stages them: off the catalogue above, now the store
            removed = self.curated.remove_absent(event.run_id, event.chunk_id, gone)
            log.info("documents no longer staged removed", extra={"fields": {"documents": removed}})
        self.publisher.publish(
            CuratedChunkReady(
                run_id=event.run_id, chunk_id=event.chunk_id, curated_docs=written, parquet_keys=keys
            )
        )
        RECORDS.labels("curator", "curated").inc(written)
        log.info("chunk curated", extra={"fields": {"curated_docs": written, "parquet_parts": len(keys)}})
        self.finalizer.finalize_if_ready(event.run_id)

    def close(self) -> None:
        """Stop the batch thread and the finaliser's (idle ones: a chunk's prefetch and a
        finalisation have ended when ``handle`` returns)."""
        self.builder.shutdown(wait=True)
        self.finalizer.close()

    def on_dead_letter(
        self, event: StagedChunkReady | None, error: str, letter_id: str | None = None
    ) -> None:
        if event is not None:
            error = f"chunk {event.chunk_id} dead-lettered by the curator: {error}"
            self.ledger.fail_run(event.run_id, error, letter_id)
