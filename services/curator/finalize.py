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
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from lake.adapters.curated_catalog import CuratedCatalog
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.settings import Settings
from lake.transform import curated_parquet as cp

log = logging.getLogger(__name__)


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
            linked = self.link_companies(run_id)
            files = self.compact(run_id)
            t1 = time.perf_counter()
            done = self.ledger.complete_if_done(run_id)
        log.info(
            "run finalized",
            extra={
                "fields": {
                    "companies_updated": linked,
                    "parquet_files": len(files),
                    "seconds": round(t1 - t0, 2),
                    "succeeded": done,
                }
            },
        )
        return done

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
            keys = []
            # each chunk's object read once, its partitions spilled to local files; then each
            # partition is written from them (curated_parquet.PartitionSpill)
            with cp.PartitionSpill(work) as spill:
                for key in listed:
                    self._spill_object(bucket, key, spill)
                for company, month in spill.partitions():

                    def upload(n: int, path: Path, company: str = company, month: str = month) -> None:
                        self.store.upload_file(bucket, cp.final_key(company, month, run_id, n), path)

                    tables = spill.tables((company, month))
                    rows = cp.compact(tables, self.settings.pipeline.parquet_max_rows, upload, work)
                    keys += [cp.final_key(company, month, run_id, n) for n in range(len(rows))]
            self.ledger.set_curated_objects(run_id, keys)
        self.store.delete_prefix(bucket, prefix)
        # a replayed run: the objects of its earlier compaction that this one did not rewrite
        for stale in sorted(set(self.ledger.take_previous_curated_objects(run_id)) - set(keys)):
            self.store.delete(bucket, stale)
        return keys

    def _spill_object(self, bucket: str, key: str, spill: cp.PartitionSpill) -> None:
        """One object of the run's ``_chunks`` into the spill: a chunk file downloaded to a local
        file and read a partition at a time, or a part of one partition (its key names it)."""
        if not cp.is_chunk_file(key):
            spill.add(cp.partition_of_key(key), cp.read_part(self.store.get_bytes(bucket, key)))
            return
        with cp.local_chunk_file(Path(self.settings.pipeline.work_dir)) as path:
            self.store.get_file(bucket, key, path)
            for part, table in cp.chunk_partitions(path):
                spill.add(part, table)
