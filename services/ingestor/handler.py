"""Ingestor: ``ingest.requested`` → original CSV files in S3 ``raw`` → one ``raw.ready`` per chunk.

The original files are kept unchanged (the raw layer is the replayable source of truth); a chunk is
a byte range of whole records inside one of them. Every file's header is checked before anything is
written, so a refused input leaves nothing downstream.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from lake.adapters.broker import Publisher
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.events import GeneratedSource, IngestRequested, KaggleSource, PathSource, RawChunkReady
from lake.observability import RECORDS
from lake.runner import PermanentError
from lake.settings import Settings
from lake.sources import InputFile, SourceRefused, check_allowed, check_rows, kaggle_files, local_files
from lake.transform.chunking import InvalidRawFile, read_columns, split
from lake.transform.generate import write_csv

log = logging.getLogger(__name__)


class Ingestor:
    def __init__(
        self, settings: Settings, store: S3ObjectStore, ledger: RunLedger, publisher: Publisher
    ) -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.publisher = publisher

    def handle(self, event: IngestRequested) -> None:
        run_id = event.run_id
        if self.ledger.raw_complete(run_id):
            # Idempotent per run id: the scheduler may request the same run again (a retry, a
            # re-run of the same logical date); every chunk of it is already on its way.
            log.info("run already ingested, request ignored", extra={"fields": {"run_id": run_id}})
            return
        self.ledger.create_run(run_id, event.request.model_dump(mode="json"), event.requested_by)
        try:
            files = self._resolve(run_id, event)
            for f in files:
                with f.path.open("rb") as stream:
                    read_columns(stream, f.name)
        except (SourceRefused, InvalidRawFile) as exc:
            raise PermanentError(str(exc)) from exc
        bucket = self.settings.s3.raw_bucket
        keys: list[str] = []
        chunk_id = 0
        total_records = 0
        t0 = time.perf_counter()
        # The last chunk is published only once the run knows its chunk count: whichever chunk is
        # curated last then sees the count and finalises the run.
        held: RawChunkReady | None = None
        for f in files:
            key = f"runs/{run_id}/{f.name}"
            self.store.upload_file(bucket, key, f.path)
            keys.append(key)
            with f.path.open("rb") as stream:
                columns, chunks = split(stream, self.settings.pipeline.chunk_rows, f.name)
                for chunk in chunks:
                    if held is not None:
                        self._publish(held)
                    held = RawChunkReady(
                        run_id=run_id,
                        chunk_id=chunk_id,
                        bucket=bucket,
                        key=key,
                        byte_start=chunk.byte_start,
                        byte_end=chunk.byte_end,
                        first_record=chunk.first_record,
                        records=chunk.records,
                        columns=columns,
                        sha256=chunk.sha256,
                    )
                    total_records += chunk.records
                    chunk_id += 1
        self.ledger.set_raw_objects(run_id, keys, chunk_id)
        if held is not None:
            self._publish(held)
        log.info(
            "run split",
            extra={
                "fields": {
                    "objects": len(keys),
                    "chunks": chunk_id,
                    "raw_rows": total_records,
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            },
        )

    def _publish(self, event: RawChunkReady) -> None:
        started = datetime.now(UTC)
        self.publisher.publish(event)
        # delivered before recorded: a run whose raw chunks are all recorded is entirely on its way,
        # which is what lets a repeated request for it be ignored (``raw_complete``)
        self.publisher.flush()
        self.ledger.record_raw_chunk(event, started)
        RECORDS.labels("ingestor", "read").inc(event.records)
        log.info(
            "chunk published",
            extra={"fields": {"chunk_id": event.chunk_id, "key": event.key, "records": event.records}},
        )

    def _resolve(self, run_id: str, event: IngestRequested) -> list[InputFile]:
        req = event.request
        cfg = self.settings.pipeline
        if isinstance(req, GeneratedSource):
            check_rows(req.rows, cfg.max_generated_rows)
            work = Path(cfg.work_dir) / run_id
            work.mkdir(parents=True, exist_ok=True)
            path = work / f"generated-seed{req.seed}-rows{req.rows}.csv"
            if not path.exists():
                tmp = path.with_suffix(".part")
                with tmp.open("wb") as out:
                    write_csv(out, req.rows, req.seed, req.malformed_share)
                tmp.replace(path)
            return [InputFile(path, path.name)]
        if isinstance(req, PathSource):
            check_allowed(req.path, cfg.allowed_roots)
            if req.path.startswith("s3://"):
                return self._download_s3(run_id, req.path)
            return local_files(Path(req.path))
        if isinstance(req, KaggleSource):
            return kaggle_files(cfg.kaggle_dataset, req.version)
        raise PermanentError(f"unknown source {req!r}")

    def _download_s3(self, run_id: str, uri: str) -> list[InputFile]:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        work = Path(self.settings.pipeline.work_dir) / run_id / "s3"
        out: list[InputFile] = []
        for obj in self.store.list_keys(bucket, prefix):
            key = obj["Key"]
            if not key.lower().endswith(".csv"):
                continue
            name = key[len(prefix) :].lstrip("/") or Path(key).name
            dest = work / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.store.client.download_file(bucket, key, str(dest))
            out.append(InputFile(dest, name))
        if not out:
            raise SourceRefused(f"{uri}: no .csv object under this prefix")
        return out

    def on_dead_letter(self, event: IngestRequested | None, error: str, letter_id: str | None = None) -> None:
        if event is not None:
            self.ledger.fail_run(event.run_id, f"ingest refused: {error}", letter_id)
