"""The run ledger: runs, their history and each chunk's progress per layer (tables ``runs``,
``run_history``, ``chunk_progress``).

Every service records what it did to a run here, and the CLI, the gateway and the benchmarks read
runs from here (the gateway with its own async reads, ``services/gateway/read/runs.py``). A run's
counts are named once, :data:`lake.events.COUNT_NAMES`, and read by name everywhere.

A chunk's progress is recorded in the same transaction as the work it counts: the staging
repository and the curated catalogue call :func:`record_chunk` with their own cursor, on the
:class:`~lake.adapters.mysql.Session` they share with the ledger.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from lake.adapters.mysql import OnSession, naive_utc, utc_now
from lake.events import COUNT_NAMES, RawChunkReady

T = TypeVar("T")
STAGED_COUNTS = COUNT_NAMES[:4]  # what a staged chunk counts (curated_docs is the curator's)
assert STAGED_COUNTS == ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows")


class RunNotReplayable(Exception):
    """The run does not exist or is still in progress."""


def add_history(cur: Any, run_id: str, event: str, detail: str | None, at: datetime | None = None) -> None:
    """One entry of the run's history (``failed``, ``redriven``…), in the caller's transaction."""
    cur.execute(
        "INSERT INTO run_history (run_id, at, event, detail) VALUES (%s, %s, %s, %s)",
        (run_id, at or utc_now(), event, None if detail is None else detail[:4000]),
    )


def reopen_failed(cur: Any, run_id: str) -> bool:
    """A failed run goes back to ``running`` (its dead letters are redriven), in the caller's
    transaction; whether it was failed."""
    cur.execute(
        "UPDATE runs SET status = 'running', error = NULL, finished_at = NULL"
        " WHERE run_id = %s AND status = 'failed'",
        (run_id,),
    )
    return bool(cur.rowcount)


def record_chunk(
    cur: Any, run_id: str, layer: str, chunk_id: int, raw_key: str, started: datetime, counts: dict[str, int]
) -> None:
    """A chunk done in ``layer`` (``staged`` or ``curated``) with its counts, in the caller's
    transaction (the one that did the chunk's work)."""
    values = [counts.get(name, 0) for name in COUNT_NAMES]
    cur.execute(
        "REPLACE INTO chunk_progress (run_id, layer, chunk_id, raw_key, "
        + ", ".join(COUNT_NAMES)
        + ", started_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, layer, chunk_id, raw_key[:1024], *values, naive_utc(started), utc_now()),
    )


def _claimed(cur: Any, letter_id: str) -> bool:
    """Whether a redrive has claimed the dead letter (read with a shared lock, until commit)."""
    cur.execute(
        "SELECT redrive_claimed_at IS NOT NULL OR redriven_at IS NOT NULL"
        " FROM dead_letters WHERE letter_id = %s LOCK IN SHARE MODE",
        (letter_id,),
    )
    found = cur.fetchone()
    return found is not None and bool(found[0])


class RunLedger(OnSession):
    def record_requested(self, run_id: str, source: dict[str, Any], requested_by: str) -> None:
        """The run exists from the moment it is accepted (``lake.runs.request_run``)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT IGNORE INTO runs (run_id, source, requested_by, status, requested_at)"
                " VALUES (%s, %s, %s, 'requested', %s)",
                (run_id, json.dumps(source), requested_by[:64], utc_now()),
            )
        self.conn.commit()

    def create_run(self, run_id: str, source: dict[str, Any], requested_by: str) -> None:
        """The ingestor took the run's request: ``requested`` (or no row yet: Airflow's runs)
        becomes ``running``; a run already further along keeps its status."""
        now = utc_now()
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO runs (run_id, source, requested_by, status, requested_at, started_at)"
                " VALUES (%s, %s, %s, 'running', %s, %s)"
                " ON DUPLICATE KEY UPDATE status = IF(status = 'requested', 'running', status),"
                " started_at = COALESCE(started_at, %s)",
                (run_id, json.dumps(source), requested_by[:64], now, now, now),
            )
        self.conn.commit()

    def set_raw_objects(self, run_id: str, keys: list[str], total_chunks: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE runs SET raw_objects = %s, total_chunks = %s WHERE run_id = %s",
                (json.dumps(keys), total_chunks, run_id),
            )
        self.conn.commit()

    def fail_run(self, run_id: str, error: str, letter_id: str | None = None) -> None:
        """Mark the run failed with its first error (kept in its history, migration 008).

        ``letter_id``: the dead letter, recorded just before, that fails the run. The consumer loop
        records a letter and then fails its run; a redrive in between claims the letter while the
        run still runs (so it reopens nothing), and the failure that followed left the run failed
        for good although its chunk was processed again. So the run is not failed once a redrive
        has claimed its letter. The letter is read with a shared lock: a redrive's claim (which
        locks it) commits either before this read, and the run is left running, or after this
        transaction, and the redrive reopens the failed run."""
        now = utc_now()
        try:
            with self.conn.cursor() as cur:
                if letter_id is None or not _claimed(cur, letter_id):
                    cur.execute(
                        "UPDATE runs SET status = 'failed', error = %s, finished_at = %s"
                        " WHERE run_id = %s AND status <> 'failed'",
                        (error[:4000], now, run_id),
                    )
                    if cur.rowcount:
                        add_history(cur, run_id, "failed", error, now)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    def complete_if_done(self, run_id: str) -> bool:
        """Mark the run succeeded once every chunk is curated; safe to call from anyone, any time."""
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE runs SET status = 'succeeded', finished_at = %s"
                " WHERE run_id = %s AND status = 'running' AND total_chunks IS NOT NULL"
                " AND total_chunks <= (SELECT COUNT(*) FROM chunk_progress"
                "                      WHERE run_id = %s AND layer = 'curated')",
                (utc_now(), run_id, run_id),
            )
            done = cur.rowcount > 0
        self.conn.commit()
        return done

    def raw_complete(self, run_id: str) -> bool:
        """Every chunk of the run is already published: a repeated ``ingest.requested`` for it (an
        Airflow retry, a redelivery) has nothing left to do."""
        return self._all_chunks(run_id, "raw", running_only=False)

    def all_chunks_curated(self, run_id: str) -> bool:
        """The run is still running, knows its chunk count, and every chunk is curated."""
        return self._all_chunks(run_id, "curated", running_only=True)

    def _all_chunks(self, run_id: str, layer: str, running_only: bool) -> bool:
        """The run knows its chunk count and ``layer`` has recorded every chunk."""
        running = " AND status = 'running'" if running_only else ""
        with self.conn.cursor() as cur:
            cur.execute(
                f"SELECT 1 FROM runs WHERE run_id = %s{running} AND total_chunks IS NOT NULL"
                " AND total_chunks <= (SELECT COUNT(*) FROM chunk_progress"
                "                      WHERE run_id = %s AND layer = %s)",
                (run_id, run_id, layer),
            )
            done = cur.fetchone() is not None
        self.conn.commit()
        return done

    @contextlib.contextmanager
    def run_lock(self, run_id: str) -> Iterator[bool]:
        """A MySQL named lock on the run (yields whether it was obtained, without waiting).

        Held by this connection: if the process dies, the server releases it, so a replica that
        takes over the redelivered event can finalise the run."""
        name = f"lake:finalize:{run_id}"[:64]
        conn = self.conn
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
            row = cur.fetchone()
        held = bool(row and row[0] == 1)
        try:
            yield held
        finally:
            if held and conn.open:
                with conn.cursor() as cur:
                    cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
                conn.commit()

    def reopen_for_replay(self, run_id: str, requested_by: str) -> list[tuple[int, dict[str, int]]]:
        """Reopen a finished run to be curated again from its staged chunks; their (chunk id,
        counts). In one transaction: the run goes back to ``running``, its ``curated`` progress is
        cleared (so it is finalised again once every chunk is curated anew), its curated Parquet
        objects are set aside for the new compaction, and the history notes the replay. Raises
        :class:`RunNotReplayable` for an unknown run, one still in progress, or one whose chunks
        were not all staged."""

        def staged_chunks(cur: Any, total: int) -> list[tuple[int, dict[str, int]]]:
            cur.execute(
                f"SELECT chunk_id, {', '.join(STAGED_COUNTS)} FROM chunk_progress"
                " WHERE run_id = %s AND layer = 'staged' ORDER BY chunk_id",
                (run_id,),
            )
            chunks = [
                (int(row[0]), dict(zip(STAGED_COUNTS, map(int, row[1:]), strict=True)))
                for row in cur.fetchall()
            ]
            if len(chunks) < total:
                raise RunNotReplayable(
                    f"run {run_id}: {len(chunks)} of {total} chunks were staged; the others never"
                    " were (redrive its dead letters first, or replay it from stage)"
                )
            return chunks

        return self._reopen(run_id, requested_by, "curate", staged_chunks)

    def reopen_for_stage_replay(self, run_id: str, requested_by: str) -> list[RawChunkReady]:
        """Reopen a finished run to be staged (then curated) again from its raw objects; the
        ``raw.ready`` events to publish again (those the ingestor published, marked as a replay).
        As :meth:`reopen_for_replay`, and its ``staged`` progress is cleared too: each chunk's
        counts come back as the stagers replace its rows (``stage_chunk(replay=True)``). Raises
        :class:`RunNotReplayable` as well for a run ingested before its chunks' events were kept
        (migration 010)."""

        def raw_chunks(cur: Any, total: int) -> list[RawChunkReady]:
            cur.execute(
                "SELECT chunk_id, event FROM chunk_progress WHERE run_id = %s AND layer = 'raw'"
                " ORDER BY chunk_id",
                (run_id,),
            )
            found = cur.fetchall()
            if len(found) < total:
                raise RunNotReplayable(
                    f"run {run_id}: {len(found)} of {total} raw chunks were published; ingest the"
                    " source again as a new run"
                )
            if any(event is None for _, event in found):
                raise RunNotReplayable(
                    f"run {run_id} was ingested before its chunks' events were kept (migration 010):"
                    " replay it from curate, or ingest the source again as a new run"
                )
            now = datetime.now(UTC)
            return [
                RawChunkReady.model_validate_json(event).model_copy(
                    update={"replay": True, "emitted_at": now}
                )
                for _, event in found
            ]

        return self._reopen(run_id, requested_by, "stage", raw_chunks)

    def _reopen(
        self, run_id: str, requested_by: str, layer: str, chunks_of: Callable[[Any, int], list[T]]
    ) -> list[T]:
        conn = self.conn
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT status, total_chunks FROM runs WHERE run_id = %s FOR UPDATE", (run_id,))
                found = cur.fetchone()
                if found is None:
                    raise RunNotReplayable(f"no run {run_id}")
                if found[0] not in ("succeeded", "failed"):
                    raise RunNotReplayable(f"run {run_id} is {found[0]}: replay it once it has finished")
                if found[1] is None:
                    raise RunNotReplayable(f"run {run_id} was never split into chunks: ingest it again")
                chunks = chunks_of(cur, int(found[1]))
                cur.execute(
                    "UPDATE runs SET status = 'running', error = NULL, finished_at = NULL,"
                    " previous_curated_objects = COALESCE(curated_objects, previous_curated_objects),"
                    " curated_objects = NULL WHERE run_id = %s",
                    (run_id,),
                )
                cleared = "('curated', 'staged')" if layer == "stage" else "('curated')"
                cur.execute(f"DELETE FROM chunk_progress WHERE run_id = %s AND layer IN {cleared}", (run_id,))
                add_history(
                    cur, run_id, "replayed", f"from {layer}, {len(chunks)} chunks, by {requested_by[:64]}"
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return chunks

    def take_previous_curated_objects(self, run_id: str) -> list[str]:
        """The curated Parquet objects a replayed run had before (none otherwise), forgotten."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT previous_curated_objects FROM runs WHERE run_id = %s", (run_id,))
            row = cur.fetchone()
            cur.execute("UPDATE runs SET previous_curated_objects = NULL WHERE run_id = %s", (run_id,))
        self.conn.commit()
        return [] if row is None or row[0] is None else list(json.loads(row[0]))

    def curated_objects(self, run_id: str) -> list[str] | None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT curated_objects FROM runs WHERE run_id = %s", (run_id,))
            row = cur.fetchone()
        self.conn.commit()
        return None if row is None or row[0] is None else list(json.loads(row[0]))

    def set_curated_objects(self, run_id: str, keys: list[str]) -> None:
        with self.conn.cursor() as cur:
            cur.execute("UPDATE runs SET curated_objects = %s WHERE run_id = %s", (json.dumps(keys), run_id))
        self.conn.commit()

    def record_raw_chunk(self, event: RawChunkReady, started: datetime) -> None:
        """A raw chunk published: its count, and the event itself (migration 010), which a replay
        from stage publishes again."""
        with self.conn.cursor() as cur:
            cur.execute(
                "REPLACE INTO chunk_progress (run_id, layer, chunk_id, raw_key, raw_rows, started_at,"
                " finished_at, event) VALUES (%s, 'raw', %s, %s, %s, %s, %s, %s)",
                (
                    event.run_id,
                    event.chunk_id,
                    event.key[:1024],
                    event.records,
                    naive_utc(started),
                    utc_now(),
                    event.dumps(),
                ),
            )
        self.conn.commit()

    def run_counts(self, run_id: str) -> dict[str, int]:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT COALESCE(SUM(CASE WHEN layer = 'raw' THEN raw_rows END), 0),"
                " COALESCE(SUM(CASE WHEN layer = 'staged' THEN rejected_rows END), 0),"
                " COALESCE(SUM(CASE WHEN layer = 'staged' THEN duplicate_rows END), 0),"
                " COALESCE(SUM(CASE WHEN layer = 'staged' THEN staged_rows END), 0),"
                " COALESCE(SUM(CASE WHEN layer = 'curated' THEN curated_docs END), 0)"
                " FROM chunk_progress WHERE run_id = %s",
                (run_id,),
            )
            row = cur.fetchone() or (0, 0, 0, 0, 0)
        self.conn.commit()
        return {n: int(v) for n, v in zip(COUNT_NAMES, row, strict=True)}

    def run_status(self, run_id: str) -> tuple[str, str | None] | None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT status, error FROM runs WHERE run_id = %s", (run_id,))
            row = cur.fetchone()
        self.conn.commit()
        return None if row is None else (str(row[0]), row[1])
