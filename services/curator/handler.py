"""Curator: ``staged.ready`` → enriched documents in MongoDB (one per tweet, ``_id`` = twitter_id;
a replay rewrites its chunk) and Parquet in S3
``curated`` partitioned by company and month → ``curated.ready``; marks the run succeeded when its
last chunk is curated."""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import polars as pl

from lake.adapters.broker import Publisher
from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.staging_repo import StagingRepository
from lake.events import CuratedChunkReady, Event, StagedChunkReady
from lake.observability import RECORDS
from lake.runner import PermanentError
from lake.settings import Settings
from lake.transform.enrich import curated_document
from lake.transform.tokenize import LoadedTokenizer

log = logging.getLogger(__name__)


def parquet_key(company: str, month: str, run_id: str, chunk_id: int) -> str:
    return f"tweets/company={company}/month={month}/{run_id}-chunk-{chunk_id:05d}.parquet"


class Curator:
    def __init__(
        self,
        settings: Settings,
        store: S3ObjectStore,
        staging: StagingRepository,
        curated: CuratedRepository,
        tokenizer: LoadedTokenizer,
        publisher: Publisher,
    ) -> None:
        self.settings = settings
        self.store = store
        self.staging = staging
        self.curated = curated
        self.tokenizer = tokenizer
        self.publisher = publisher

    def handle(self, event: Event) -> None:
        assert isinstance(event, StagedChunkReady)
        started = datetime.now(UTC)
        frame = pl.read_parquet(io.BytesIO(self.store.get_bytes(event.bucket, event.key)))
        rows = frame.to_dicts()
        companies = self.staging.companies_of([r["twitter_id"] for r in rows])
        ids = self.tokenizer.encode([r["clean_text"] for r in rows])
        meta = self.tokenizer.meta()
        docs = [
            curated_document(r, tok, companies.get(r["twitter_id"], [r["company"]]), meta)
            for r, tok in zip(rows, ids, strict=True)
        ]
        try:
            written = self.curated.write_chunk(event.run_id, event.chunk_id, docs)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        keys = self._write_parquet(event, docs)
        self.staging.record_chunk(
            event.run_id, "curated", event.chunk_id, event.key, started, curated_docs=written
        )
        self.publisher.publish(
            CuratedChunkReady(
                run_id=event.run_id, chunk_id=event.chunk_id, curated_docs=written, parquet_keys=keys
            )
        )
        RECORDS.labels("curator", "curated").inc(written)
        if self.staging.complete_if_done(event.run_id):
            log.info("run succeeded")
        log.info("chunk curated", extra={"fields": {"curated_docs": written, "parquet_objects": len(keys)}})

    def _write_parquet(self, event: StagedChunkReady, docs: list[dict[str, Any]]) -> list[str]:
        parts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for d in docs:
            flat = {k: v for k, v in d.items() if k not in ("_id", "tokens", "lineage")}
            flat["twitter_id"] = int(d["_id"])
            flat["token_ids"] = d["tokens"]["ids"]
            flat["token_count"] = d["tokens"]["count"]
            flat.update({f"lineage_{k}": v for k, v in d["lineage"].items()})
            parts[d["company"], d["date"][:7]].append(flat)
        keys = []
        for (company, month), rows in sorted(parts.items()):
            buf = io.BytesIO()
            pl.DataFrame(rows, infer_schema_length=None).write_parquet(buf, compression="zstd")
            key = parquet_key(company, month, event.run_id, event.chunk_id)
            self.store.put_bytes(self.settings.s3.curated_bucket, key, buf.getvalue())
            keys.append(key)
        return keys

    def on_dead_letter(self, event: Event | None, error: str) -> None:
        if event is not None:
            chunk = getattr(event, "chunk_id", "?")
            self.staging.fail_run(event.run_id, f"chunk {chunk} dead-lettered by the curator: {error}")
