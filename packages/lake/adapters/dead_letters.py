"""Dead letters in MySQL (migration 008): what operators list and redrive.

The consumer loop (``lake.runner``) records every event it gives up on here, with the original
Kafka message byte for byte, besides publishing it to ``<topic>.dlq``. A redrive
(``lake.recovery``) re-publishes the message to its topic with two headers, so that a delivery
that fails again is recorded as the redrive of the earlier letter with the attempts of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lake.adapters.mysql import Connected

# Kafka headers of a redriven message (its key and value are the original's, untouched)
REDRIVE_OF = "lake-redrive-of"
PRIOR_ATTEMPTS = "lake-prior-attempts"

COLUMNS = (
    "seq",
    "letter_id",
    "source_topic",
    "service",
    "run_id",
    "chunk_id",
    "error_type",
    "error",
    "attempts",
    "first_failed_at",
    "last_failed_at",
    "redrive_of",
    "redriven_at",
    "event_key",
    "event_value",
)


@dataclass(frozen=True)
class Letter:
    seq: int
    letter_id: str
    source_topic: str
    service: str
    run_id: str | None
    chunk_id: int | None
    error_type: str
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    redrive_of: str | None
    redriven_at: datetime | None
    event_key: bytes | None
    event_value: bytes

    @classmethod
    def of(cls, row: Sequence[Any]) -> Letter:
        values = dict(zip(COLUMNS, row, strict=True))
        values["seq"] = int(values["seq"])
        for name in ("event_key", "event_value"):
            if values[name] is not None:
                values[name] = bytes(values[name])
        return cls(**values)


def letter_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


@dataclass(frozen=True)
class Scope:
    """Which dead letters a redrive takes: exactly one of a letter, a run, a topic (its full name),
    or all of them."""

    letter_id: str | None = None
    run_id: str | None = None
    topic: str | None = None
    all: bool = False

    def __post_init__(self) -> None:
        given = [x for x in (self.letter_id, self.run_id, self.topic) if x] + ([True] if self.all else [])
        if len(given) != 1:
            raise ValueError("give exactly one of: a letter id, a run id, a topic, or all")

    def where(self) -> tuple[str, list[Any]]:
        if self.letter_id:
            return "letter_id = %s", [self.letter_id]
        if self.run_id:
            return "run_id = %s", [self.run_id]
        if self.topic:
            return "source_topic = %s", [self.topic]
        return "TRUE", []


class DeadLetterStore:
    """Dead letters on the process's MySQL session (PyMySQL, synchronous)."""

    def __init__(self, repo: Connected) -> None:
        self.repo = repo

    def record(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        service: str,
        run_id: str | None,
        chunk_id: int | None,
        error_type: str,
        error: str,
        attempts: int,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]],
        at: datetime,
    ) -> str:
        """Record a delivery given up after ``attempts`` tries; its letter id. A redriven message
        (``headers``) counts the attempts before it and links to the letter it redrove; the same
        delivery recorded again (redelivered after a crash) adds its attempts to its row."""
        given = {k: v for k, v in headers}
        redrive_of = given[REDRIVE_OF].decode() if REDRIVE_OF in given else None
        prior = int(given[PRIOR_ATTEMPTS]) if PRIOR_ATTEMPTS in given else 0
        lid = letter_id(topic, partition, offset)
        conn = self.repo.conn
        try:
            with conn.cursor() as cur:
                first = at if redrive_of is None else self._first_failed_at(cur, redrive_of, at)
                what = (lid, topic, service, run_id, chunk_id, error_type[:128], error[:4000])
                when = (prior + attempts, first, at, key, value, redrive_of)
                cur.execute(
                    "INSERT INTO dead_letters (letter_id, source_topic, service, run_id, chunk_id,"
                    " error_type, error, attempts, first_failed_at, last_failed_at, event_key,"
                    " event_value, redrive_of) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON DUPLICATE KEY UPDATE attempts = attempts + %s,"
                    " last_failed_at = VALUES(last_failed_at), error = VALUES(error),"
                    " error_type = VALUES(error_type)",
                    (*what, *when, attempts),
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return lid

    @staticmethod
    def _first_failed_at(cur: Any, redrive_of: str, at: datetime) -> datetime:
        """When the delivery a redrive repeats first failed (``at`` if its letter is gone)."""
        cur.execute("SELECT first_failed_at FROM dead_letters WHERE letter_id = %s", (redrive_of,))
        found = cur.fetchone()
        return found[0] if found else at

    def get(self, lid: str) -> Letter | None:
        with self.repo.conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM dead_letters WHERE letter_id = %s", (lid,))
            row = cur.fetchone()
        self.repo.conn.commit()
        return None if row is None else Letter.of(row)

    def list(
        self, run_id: str | None = None, topic: str | None = None, before: int | None = None, limit: int = 50
    ) -> list[Letter]:
        """Newest first; ``before``: the ``seq`` of the last letter of the previous page."""
        parts, args = listing_filters(run_id, topic, before)
        with self.repo.conn.cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(COLUMNS)} FROM dead_letters{parts} ORDER BY seq DESC LIMIT %s",
                [*args, limit],
            )
            rows = cur.fetchall()
        self.repo.conn.commit()
        return [Letter.of(r) for r in rows]


def listing_filters(run_id: str | None, topic: str | None, before: int | None) -> tuple[str, list[Any]]:
    """The WHERE clause of a listing (shared with the gateway's async read)."""
    parts: list[str] = []
    args: list[Any] = []
    if run_id:
        parts.append("run_id = %s")
        args.append(run_id)
    if topic:
        parts.append("source_topic = %s")
        args.append(topic)
    if before is not None:
        parts.append("seq < %s")
        args.append(before)
    return (" WHERE " + " AND ".join(parts)) if parts else "", args
