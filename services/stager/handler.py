"""Stager: ``raw.ready`` → validated, cleaned, de-duplicated rows in MySQL (+ a Parquet copy in S3
``staging``, rejects in ``staging/rejected/``) → ``staged.ready``.

The first ingestion of a tweet wins: rows are inserted with INSERT IGNORE and the chunk then reads
back which ids carry its own lineage. Those are its staged rows; every other valid record is a
duplicate. Replaying a chunk therefore finds the same rows and the same counts. A replay *from
stage* (``RawChunkReady.replay``, after a rule changed) replaces what the chunk staged before with
what the rules give now, in the same transaction (``StagingRepository.stage_chunk``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from datetime import UTC, datetime

import polars as pl

from lake.adapters.broker import Publisher
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.events import ChunkCounts, RawChunkReady, StagedChunkReady
from lake.observability import RECORDS
from lake.runner import PermanentError
from lake.settings import Settings
from lake.transform.chunking import check_header
from lake.transform.stage import STAGED_SCHEMA, ChunkRows, rejected_key, stage_records, staged_key

log = logging.getLogger(__name__)


class Stager:
    def __init__(
        self,
        settings: Settings,
        store: S3ObjectStore,
        repo: StagingRepository,
        ledger: RunLedger,
        publisher: Publisher,
    ) -> None:
        self.settings = settings
        self.store = store
        self.repo = repo
        self.ledger = ledger
        self.publisher = publisher
        self.rules = settings.pipeline.rules()

    def handle(self, event: RawChunkReady) -> None:
        started = datetime.now(UTC)
        chunk = self._read_and_validate(event)
        result = self.repo.stage_chunk(
            event.run_id,
            event.chunk_id,
            event.key,
            chunk.records,
            chunk.frame,
            chunk.links,
            chunk.rejects,
            chunk.hashtags,
            started,
            replay=event.replay,
        )
        owned = chunk.frame.filter(pl.col("twitter_id").is_in(list(result.owned_ids)))
        bucket = self.settings.s3.staging_bucket
        key = staged_key(event.run_id, event.chunk_id)
        self.store.put_bytes(bucket, key, to_parquet(owned))
        self._keep_rejects(event, chunk.rejects)
        counts = ChunkCounts(
            raw_rows=result.raw_rows,
            rejected_rows=result.rejected_rows,
            duplicate_rows=result.duplicate_rows,
            staged_rows=result.staged_rows,
        )
        self.publisher.publish(
            StagedChunkReady(
                run_id=event.run_id,
                chunk_id=event.chunk_id,
                bucket=bucket,
                key=key,
                counts=counts,
                replay=event.replay,
            )
        )
        for outcome in ("rejected_rows", "duplicate_rows", "staged_rows"):
            RECORDS.labels("stager", outcome.removesuffix("_rows")).inc(getattr(counts, outcome))
        log.info("chunk staged", extra={"fields": counts.model_dump()})

    def _read_and_validate(self, event: RawChunkReady) -> ChunkRows:
        """The chunk's bytes, checked against the event (header, checksum, record count), staged
        into rows, links and rejects; a mismatch is permanent (the raw object is what it is)."""
        try:
            check_header(event.columns, event.key)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        data = self.store.get_range(event.bucket, event.key, event.byte_start, event.byte_end)
        if hashlib.sha256(data).hexdigest() != event.sha256:
            raise PermanentError(
                f"checksum mismatch for {event.key} bytes {event.byte_start}-{event.byte_end}"
            )
        lineage = {"run_id": event.run_id, "chunk_id": event.chunk_id, "raw_key": event.key}
        chunk = stage_records(data, event.columns, event.first_record, lineage, self.rules)
        if chunk.records != event.records:
            raise PermanentError(f"chunk holds {chunk.records} records, the event announced {event.records}")
        return chunk

    def _keep_rejects(
        self, event: RawChunkReady, rejects: list[tuple[int, str, str | None, str | None]]
    ) -> None:
        """The chunk's rejected records as JSON lines in the staging bucket (none: no object)."""
        bucket = self.settings.s3.staging_bucket
        if not rejects:
            if event.replay:  # the replayed chunk rejects nothing now: no stale rejects object
                self.store.delete(bucket, rejected_key(event.run_id, event.chunk_id))
            return
        lines = [
            json.dumps(
                {
                    "run_id": event.run_id,
                    "chunk_id": event.chunk_id,
                    "raw_key": event.key,
                    "record_no": no,
                    "reason": reason,
                    "column": col,
                    "value": val,
                },
                ensure_ascii=False,
            )
            for no, reason, col, val in rejects
        ]
        self.store.put_bytes(
            bucket,
            rejected_key(event.run_id, event.chunk_id),
            ("\n".join(lines) + "\n").encode(),
            "application/x-ndjson",
        )

    def on_dead_letter(self, event: RawChunkReady | None, error: str, letter_id: str | None = None) -> None:
        if event is not None:
            error = f"chunk {event.chunk_id} dead-lettered by the stager: {error}"
            self.ledger.fail_run(event.run_id, error, letter_id)


def to_parquet(frame: pl.DataFrame) -> bytes:
    """The staged Parquet copy of a chunk's staged rows (``lake.transform.stage.STAGED_SCHEMA``)."""
    buf = io.BytesIO()
    frame.select(list(STAGED_SCHEMA)).write_parquet(buf, compression="zstd")
    return buf.getvalue()
