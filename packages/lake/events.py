"""The contract between services: topic names and the events they carry (pointers, never rows).

Events are small, frozen, versioned and named in the past tense. A consumer validates each event
on arrival; one that does not validate is dead-lettered, never retried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

INGEST_REQUESTED = "ingest.requested"
RAW_READY = "raw.ready"
STAGED_READY = "staged.ready"
CURATED_READY = "curated.ready"
TOPICS = (INGEST_REQUESTED, RAW_READY, STAGED_READY, CURATED_READY)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    topic: ClassVar[str]
    version: Literal[1] = 1
    run_id: str
    emitted_at: datetime = Field(default_factory=utcnow)

    def partition_key(self) -> str:
        """Partitioning key: spreads a run's chunks over partitions, keeps one chunk's replays together."""
        return self.run_id

    def dumps(self) -> bytes:
        return self.model_dump_json().encode()


class GeneratedSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source: Literal["generated"] = "generated"
    rows: int = Field(default=50_000, ge=1)
    seed: int = 42
    malformed_share: float = Field(default=0.002, ge=0, le=0.5)


class PathSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source: Literal["path"] = "path"
    path: str = Field(min_length=1, description="a CSV file, a folder of CSVs, or an s3:// URI")


class KaggleSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source: Literal["kaggle"] = "kaggle"
    version: int | None = Field(
        default=None, ge=1, description="dataset version; pinned versions read offline from cache"
    )


Source = Annotated[GeneratedSource | PathSource | KaggleSource, Field(discriminator="source")]


class IngestRequested(Event):
    topic: ClassVar[str] = INGEST_REQUESTED
    request: Source
    requested_by: str = "cli"


class ChunkEvent(Event):
    """An event about one chunk of a run: keyed ``<run_id>:<chunk_id>`` so a run's chunks spread over
    the partitions (``lake.adapters.broker.ChunkPartitioner``) and one chunk's replays stay together."""

    chunk_id: int = Field(ge=0)

    def partition_key(self) -> str:
        return f"{self.run_id}:{self.chunk_id}"


class RawChunkReady(ChunkEvent):
    """One chunk of one raw object: a byte range holding whole CSV records."""

    topic: ClassVar[str] = RAW_READY
    bucket: str
    key: str
    byte_start: int = Field(ge=0)
    byte_end: int = Field(ge=0)
    first_record: int = Field(
        ge=1, description="1-based record number of the chunk's first record in its object"
    )
    records: int = Field(ge=0)
    columns: list[str]
    sha256: str
    replay: bool = Field(
        default=False,
        description="a replay from stage: the chunk's earlier staged rows are replaced, not kept",
    )


# A run's five counts, by name everywhere (the run ledger's columns, the run report's fields):
# raw rows in = staged + rejected + duplicates, and staged = curated once the run succeeded
COUNT_NAMES = ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs")


class ChunkCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    raw_rows: int = 0
    rejected_rows: int = 0
    duplicate_rows: int = 0
    staged_rows: int = 0


class StagedChunkReady(ChunkEvent):
    topic: ClassVar[str] = STAGED_READY
    bucket: str
    key: str = Field(description="Parquet object with the rows this chunk staged for the first time")
    counts: ChunkCounts
    replay: bool = Field(
        default=False,
        description="a replay: documents of the chunk that it no longer stages are removed",
    )


class CuratedChunkReady(ChunkEvent):
    topic: ClassVar[str] = CURATED_READY
    curated_docs: int = Field(ge=0)
    parquet_keys: list[str] = Field(
        description="the chunk's curated rows in the curated bucket, until its run's compaction"
        " (one Arrow IPC file, lake.transform.curated_parquet.chunk_key); none once the run was compacted"
    )


class DeadLettered(BaseModel):
    """What lands on ``<topic>.dlq``: the original message, untouched, and why it failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    source_topic: str
    partition: int
    offset: int
    key: str | None
    value: str  # the message as text, for reading (bytes that are not UTF-8 replaced)
    value_base64: str | None = None  # the message exactly, base64 (None: written before 008)
    error: str
    error_type: str
    attempts: int
    service: str
    dead_lettered_at: datetime = Field(default_factory=utcnow)
    run_id: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.topic: cls for cls in (IngestRequested, RawChunkReady, StagedChunkReady, CuratedChunkReady)
}


def parse(topic_name: str, value: bytes, prefix: str = "") -> Event:
    base = topic_name.removeprefix(prefix)
    return EVENT_TYPES[base].model_validate_json(value)


def as_dict(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")
