"""Finalising a run once its last chunk is curated: company links, Parquet compaction, success.

Whichever curator replica curates a run's last chunk finalises it, under a MySQL named lock (so two
replicas never compact the same run at once; a crashed holder's lock is released by the server and
the redelivered event finalises again). Every step is idempotent:

1. **Company links.** A tweet staged first under one company and met again under another gains a
   ``tweet_companies`` link in a later chunk; its curated document may have been written before that
   link existed. The run's cross-company links are copied to the documents' ``companies``, then to
   the curated catalogue (what the documents hold, read back).
2. **Compaction.** The run's per-chunk Parquet parts (``_chunks/run_id=<run>/…``) are concatenated
   per partition into ``tweets/company=<c>/year_month=<YYYY-MM>/<run>-part-NNNNN.parquet``, streamed. The
   output keys are recorded on the run before the parts are deleted, so a finalisation cut short
   after that point only finishes the deletion.
3. The run is marked ``succeeded``.

Steps 1 and 2 are independent (the Parquet files keep the ``companies`` known when their chunks were
curated) and run side by side: the links on a MySQL connection of their own, the compaction on
three threads (the next chunk file downloads while one is spilled; two partitions are written at
once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pyarrow as pa

from lake.adapters.curated_catalog import CuratedCatalog
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.memory import return_free_memory
from lake.prefetch import prefetched
from lake.settings import Settings
from lake.transform import curated_parquet as cp

log = logging.getLogger(__name__)
COMPACTION_THREADS = 2


class RunFinalizer:
    def __init__(
        self,
        settings: Settings,
        store: S3ObjectStore,
        staging: StagingRepository,
        ledger: RunLedger,
        curated: CuratedRepository,
        catalog: CuratedCatalog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.staging = staging
        self.ledger = ledger
        self.curated = curated
        self.catalog = catalog
        # a finalisation is the only work left at the end of a run, and one thread left the second
        # core idle. So the company links run beside the compaction (on ``staging``'s connection:
        # the caller gives the finaliser one of its own), the next chunk file downloads while one
        # is spilled, and two partitions are written at once (Arrow and boto3 release the GIL)
        self.workers = ThreadPoolExecutor(1 + COMPACTION_THREADS, thread_name_prefix="finalize")
        self.timings: dict[str, float] = {}

    def close(self) -> None:
        self.workers.shutdown(wait=True)
        self.staging.close()

    def finalize_if_ready(self, run_id: str) -> bool:
        """Finalise the run if every chunk is curated; True when this call marked it succeeded."""
        if not self.ledger.all_chunks_curated(run_id):
            return False
        with self.ledger.run_lock(run_id) as held:
            if not held:
                log.info("another curator is finalising the run")
                return False
            if not self.ledger.all_chunks_curated(run_id):  # finalised while we waited for the lock
                return False
            t0 = time.perf_counter()
            self.timings = {}
            links = self.workers.submit(self._timed_links, run_id)
            try:
                files = self.compact(run_id)
            finally:
                linked, self.timings["links_seconds"] = links.result()  # its error, if any, raised here
            t1 = time.perf_counter()
            done = self.ledger.complete_if_done(run_id)
        log.info(
            "run finalized",
            extra={
                "fields": {
                    "companies_updated": linked,
                    "parquet_files": len(files),
                    "seconds": round(t1 - t0, 2),
                    **self.timings,
                    "succeeded": done,
                }
            },
        )
        return done

    def _timed_links(self, run_id: str) -> tuple[int, float]:
        t0 = time.perf_counter()
        return self.link_companies(run_id), round(time.perf_counter() - t0, 2)

    def link_companies(self, run_id: str) -> int:
        ids = self.staging.cross_linked_ids(run_id)
        if not ids:
            return 0
        updated = self.curated.set_companies(self.staging.companies_of(ids))
        # the catalogue lists what the documents hold, read back (a document not written yet is left out)
        self.catalog.add_companies(self.curated.companies_of(str(i) for i in ids))
        return updated

    def compact(self, run_id: str) -> list[str]:
        bucket = self.settings.s3.curated_bucket
        prefix = cp.chunk_prefix(run_id)
        keys = self.ledger.curated_objects(run_id)
        if keys is None:
            work = Path(self.settings.pipeline.work_dir)
            work.mkdir(parents=True, exist_ok=True)
            listed = cp.chunk_sources(obj["Key"] for obj in self.store.list_keys(bucket, prefix))
            # the curation's freed memory back to the system first: the compaction is a run's
            # largest allocation, on top of what the chunks left free in the heap (lake.memory)
            return_free_memory()
            # each chunk's object read once, its partitions spilled to local files (the next one
            # downloading meanwhile); then the partitions are written from them, two at a time
            # (curated_parquet.PartitionSpill)
            with cp.PartitionSpill(work) as spill:
                t0 = time.perf_counter()
                fetched = prefetched(self._fetched(bucket, listed, spill), self.workers)
                with closing(fetched) as objects:
                    for source in objects:
                        self._spill(source, spill)
                t1 = time.perf_counter()
                keys = [
                    key
                    for written in self.workers.map(
                        lambda part: self._write_partition(run_id, part, spill, work), spill.partitions()
                    )
                    for key in written
                ]
                self.timings |= {
                    "spill_seconds": round(t1 - t0, 2),
                    "write_seconds": round(time.perf_counter() - t1, 2),
                }
            self.ledger.set_curated_objects(run_id, keys)
        self.store.delete_prefix(bucket, prefix)
        # a replayed run: the objects of its earlier compaction that this one did not rewrite
        for stale in sorted(set(self.ledger.take_previous_curated_objects(run_id)) - set(keys)):
            self.store.delete(bucket, stale)
        return keys

    def _fetched(
        self, bucket: str, keys: list[str], spill: cp.PartitionSpill
    ) -> Iterator[tuple[str, Path | pa.Table]]:
        """The run's ``_chunks`` objects in order, each as (key, source): a chunk file downloaded to
        a file of the spill's folder (removed with it), or a part of one partition read."""
        for key in keys:
            if cp.is_chunk_file(key):
                path = spill.scratch_path()
                self.store.get_file(bucket, key, path)
                yield key, path
            else:
                yield key, cp.read_part(self.store.get_bytes(bucket, key))

    @staticmethod
    def _spill(source: tuple[str, Path | pa.Table], spill: cp.PartitionSpill) -> None:
        """One object of the run's ``_chunks`` into the spill: a chunk file read a partition at a
        time, or a part of one partition (its key names it)."""
        key, found = source
        if isinstance(found, pa.Table):
            spill.add(cp.partition_of_key(key), found)
            return
        for part, table in cp.chunk_partitions(found):
            spill.add(part, table)
        found.unlink()

    def _write_partition(
        self, run_id: str, part: tuple[str, str], spill: cp.PartitionSpill, work: Path
    ) -> list[str]:
        """A partition's Parquet files, from the spill: their keys."""
        bucket, (company, month) = self.settings.s3.curated_bucket, part

        def upload(n: int, path: Path) -> None:
            self.store.upload_file(bucket, cp.final_key(company, month, run_id, n), path)

        rows = cp.compact(spill.tables(part), self.settings.pipeline.parquet_max_rows, upload, work)
        return [cp.final_key(company, month, run_id, n) for n in range(len(rows))]
