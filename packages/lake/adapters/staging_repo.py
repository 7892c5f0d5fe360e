"""The staging store: tweets, their companies and hashtags, quarantined records, run bookkeeping."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pymysql

from lake.adapters.mysql import connect
from lake.events import RawChunkReady
from lake.schema import STAGED_COLUMNS
from lake.settings import MySQLSettings

TWEET_COLUMNS = STAGED_COLUMNS  # lake.schema.STAGED_ROW: the tweets table's columns in order
DEADLOCK_CODES = {1205, 1213}
DUPLICATE_KEY = 1062  # lock wait timeout, deadlock: the whole transaction is retried
BATCH = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class StageResult:
    raw_rows: int
    rejected_rows: int
    duplicate_rows: int
    staged_rows: int
    owned_ids: frozenset[int]


class RunNotReplayable(Exception):
    """The run does not exist or is still in progress."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(ts: datetime) -> datetime:
    if ts.tzinfo is UTC:  # the stager's times (no conversion needed)
        return ts.replace(tzinfo=None)
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\\0"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r\x00]")


def _esc(value: str) -> str:
    """A value for LOAD DATA with ``ESCAPED BY '\\'``: backslash, tab, LF, CR and NUL escaped.

    Most values have none of them: one regex scan (C) decides, and only those are translated
    (1.2 µs against 4.8 per value, profiled as 10 % of the stager's CPU)."""
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value


def _batches(rows: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


class StagingRepository:
    def __init__(self, cfg: MySQLSettings) -> None:
        self.cfg = cfg
        self._conn: pymysql.Connection | None = None

    @property
    def conn(self) -> pymysql.Connection:
        if self._conn is not None and self._conn.open:
            try:
                self._conn.ping(reconnect=False)
            except pymysql.err.Error:  # the server closed an idle connection: open a fresh one
                self._conn.close()
                self._conn = None
        if self._conn is None or not self._conn.open:
            self._conn = connect(self.cfg)
            with self._conn.cursor() as cur:
                # Read committed: the lineage check after INSERT IGNORE must see rows other
                # replicas committed meanwhile, not this transaction's older snapshot.
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return self._conn

    def close(self) -> None:
        if self._conn is not None and self._conn.open:
            self._conn.close()
        self._conn = None

    # --- runs -------------------------------------------------------------------------------
    def record_requested(self, run_id: str, source: dict[str, Any], requested_by: str) -> None:
        """The run exists from the moment it is accepted (``lake.runs.request_run``)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT IGNORE INTO runs (run_id, source, requested_by, status, requested_at)"
                " VALUES (%s, %s, %s, 'requested', %s)",
                (run_id, json.dumps(source), requested_by[:64], _now()),
            )
        self.conn.commit()

    def create_run(self, run_id: str, source: dict[str, Any], requested_by: str) -> None:
        """The ingestor took the run's request: ``requested`` (or no row yet: Airflow's runs)
        becomes ``running``; a run already further along keeps its status."""
        now = _now()
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

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark the run failed with its first error (kept in its history, migration 008)."""
        now = _now()
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE runs SET status = 'failed', error = %s, finished_at = %s"
                " WHERE run_id = %s AND status <> 'failed'",
                (error[:4000], now, run_id),
            )
            if cur.rowcount:
                self.add_history(cur, run_id, "failed", error, now)
        self.conn.commit()

    @staticmethod
    def add_history(
        cur: Any, run_id: str, event: str, detail: str | None, at: datetime | None = None
    ) -> None:
        """One entry of the run's history (``failed``, ``redriven``…), in the caller's transaction."""
        cur.execute(
            "INSERT INTO run_history (run_id, at, event, detail) VALUES (%s, %s, %s, %s)",
            (run_id, at or _now(), event, None if detail is None else detail[:4000]),
        )

    def complete_if_done(self, run_id: str) -> bool:
        """Mark the run succeeded once every chunk is curated; safe to call from anyone, any time."""
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE runs SET status = 'succeeded', finished_at = %s"
                " WHERE run_id = %s AND status = 'running' AND total_chunks IS NOT NULL"
                " AND total_chunks <= (SELECT COUNT(*) FROM chunk_progress"
                "                      WHERE run_id = %s AND layer = 'curated')",
                (_now(), run_id, run_id),
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

    def cross_linked_ids(self, run_id: str) -> list[int]:
        """Tweets this run linked to a company although another chunk (or run) staged them first."""
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT tc.twitter_id FROM tweet_companies tc"
                " JOIN tweets t ON t.twitter_id = tc.twitter_id"
                " WHERE tc.run_id = %s AND (t.run_id <> tc.run_id OR t.chunk_id <> tc.chunk_id)"
                " ORDER BY tc.twitter_id",
                (run_id,),
            )
            ids = [int(r[0]) for r in cur.fetchall()]
        self.conn.commit()
        return ids

    def reopen_for_replay(self, run_id: str, requested_by: str) -> list[tuple[int, dict[str, int]]]:
        """Reopen a finished run to be curated again from its staged chunks; their (chunk id,
        counts). In one transaction: the run goes back to ``running``, its ``curated`` progress is
        cleared (so it is finalised again once every chunk is curated anew), its curated Parquet
        objects are set aside for the new compaction, and the history notes the replay. Raises
        :class:`RunNotReplayable` for an unknown run, one still in progress, or one whose chunks
        were not all staged."""

        def staged_chunks(cur: Any, total: int) -> list[tuple[int, dict[str, int]]]:
            cur.execute(
                "SELECT chunk_id, raw_rows, rejected_rows, duplicate_rows, staged_rows"
                " FROM chunk_progress WHERE run_id = %s AND layer = 'staged' ORDER BY chunk_id",
                (run_id,),
            )
            chunks = [
                (
                    int(c),
                    {
                        "raw_rows": int(a),
                        "rejected_rows": int(r),
                        "duplicate_rows": int(d),
                        "staged_rows": int(t),
                    },
                )
                for c, a, r, d, t in cur.fetchall()
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
                self.add_history(
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

    def record_chunk(
        self, run_id: str, layer: str, chunk_id: int, raw_key: str, started: datetime, **counts: int
    ) -> None:
        with self.conn.cursor() as cur:
            self._record_chunk(cur, run_id, layer, chunk_id, raw_key, started, counts)
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
                    _naive(started),
                    _now(),
                    event.dumps(),
                ),
            )
        self.conn.commit()

    @staticmethod
    def _record_chunk(
        cur: Any,
        run_id: str,
        layer: str,
        chunk_id: int,
        raw_key: str,
        started: datetime,
        counts: dict[str, int],
    ) -> None:
        cols = ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs")
        values = [counts.get(c, 0) for c in cols]
        cur.execute(
            "REPLACE INTO chunk_progress (run_id, layer, chunk_id, raw_key, "
            + ", ".join(cols)
            + ", started_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run_id, layer, chunk_id, raw_key[:1024], *values, _naive(started), _now()),
        )

    # --- staging a chunk ------------------------------------------------------------------------
    def stage_chunk(
        self,
        run_id: str,
        chunk_id: int,
        raw_key: str,
        raw_rows: int,
        rows: list[dict[str, Any]],
        links: list[tuple[int, str, int]],
        rejects: list[tuple[int, str, str | None, str | None]],
        hashtags: dict[int, list[str]],
        started: datetime,
        replay: bool = False,
    ) -> StageResult:
        """Stage one chunk in one transaction; exact and idempotent under replays and concurrency.

        ``rows``: valid records, first occurrence per twitter_id in the chunk; ``links``: (twitter_id,
        company, record_no) for every valid record; ``rejects``: (record_no, reason, column, value).
        ``replay``: a replay from stage (rules may have changed since the chunk was staged): what
        the chunk staged before is replaced, in the same transaction (:meth:`_unstage_chunk`).
        """
        for attempt in range(5):
            try:
                return self._stage_chunk(
                    run_id, chunk_id, raw_key, raw_rows, rows, links, rejects, hashtags, started, replay
                )
            except pymysql.err.OperationalError as exc:
                self._rollback()
                if exc.args[0] not in DEADLOCK_CODES or attempt == 4:
                    raise
                time.sleep(0.1 * 2**attempt)
            except BaseException:
                self._rollback()  # nothing of a failed attempt may ride along with the next one
                raise
        raise AssertionError("unreachable")

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.open:
            with contextlib.suppress(pymysql.err.Error):
                self._conn.rollback()

    def _stage_chunk(
        self,
        run_id: str,
        chunk_id: int,
        raw_key: str,
        raw_rows: int,
        rows: list[dict[str, Any]],
        links: list[tuple[int, str, int]],
        rejects: list[tuple[int, str, str | None, str | None]],
        hashtags: dict[int, list[str]],
        started: datetime,
        replay: bool = False,
    ) -> StageResult:
        now = _now()
        rows = sorted(rows, key=lambda r: r["twitter_id"])  # one lock order for every replica
        ids = [r["twitter_id"] for r in rows]
        with self.conn.cursor() as cur:
            before = self._unstage_chunk(cur, run_id, chunk_id) if replay else set()
            if rejects:
                cur.executemany(
                    "INSERT IGNORE INTO rejected_rows (run_id, chunk_id, record_no, raw_key, reason,"
                    " column_name, value, rejected_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (run_id, chunk_id, no, raw_key, reason, col, val, now)
                        for no, reason, col, val in rejects
                    ],
                )
            self._load_tweets(cur, rows, run_id, chunk_id, raw_key, now)
            owned: set[int] = set()
            for batch in _batches(ids, 5000):
                cur.execute(
                    f"SELECT twitter_id FROM tweets WHERE run_id = %s AND chunk_id = %s"
                    f" AND twitter_id IN ({', '.join(['%s'] * len(batch))})",
                    (run_id, chunk_id, *batch),
                )
                owned.update(int(r[0]) for r in cur.fetchall())
            kept = self._kept_time_and_sentiment(cur, rows, owned, {tid for tid, _, _ in links})
            tag_lines = [
                f"{tid}\t{_esc(tag[:191])}\t{kept[tid]}\n"
                for tid in sorted(owned)
                for tag in hashtags.get(tid, [])
            ]
            tag_columns = ("twitter_id", "hashtag", "created_at", "sentiment")
            self._load(cur, "tweet_hashtags", tag_columns, tag_lines, chunk_id, run_id)
            link_rows = sorted({(tid, comp): no for tid, comp, no in links}.items())
            tail = f"\t{_esc(run_id)}\t{chunk_id}\t"
            link_lines = [f"{tid}\t{_esc(comp)}{tail}{no}\t{kept[tid]}\n" for (tid, comp), no in link_rows]
            columns = ("twitter_id", "company", "run_id", "chunk_id", "record_no", "created_at", "sentiment")
            self._load(cur, "tweet_companies", columns, link_lines, chunk_id, run_id)
            valid = len(links)
            staged = len(owned)
            result = StageResult(raw_rows, len(rejects), valid - staged, staged, frozenset(owned))
            self._record_chunk(
                cur,
                run_id,
                "staged",
                chunk_id,
                raw_key,
                started,
                {
                    "raw_rows": raw_rows,
                    "rejected_rows": result.rejected_rows,
                    "duplicate_rows": result.duplicate_rows,
                    "staged_rows": staged,
                },
            )
            facets: Counter[tuple[str, str]] = Counter()
            daily: Counter[tuple[str, str, str]] = Counter()
            for r in rows:
                if r["twitter_id"] in owned:
                    facets["company", r["company"]] += 1
                    facets["sentiment", r["sentiment"]] += 1
                    daily[_naive(r["created_at"]).strftime("%Y-%m-%d"), r["company"], r["sentiment"]] += 1
            if replay:
                self._restaged(cur, run_id, chunk_id, before - owned)
            cur.execute("DELETE FROM chunk_facets WHERE run_id = %s AND chunk_id = %s", (run_id, chunk_id))
            if facets:
                cur.executemany(
                    "INSERT INTO chunk_facets (run_id, chunk_id, facet, value, n)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(run_id, chunk_id, f, v, n) for (f, v), n in sorted(facets.items())],
                )
            cur.execute("DELETE FROM chunk_daily WHERE run_id = %s AND chunk_id = %s", (run_id, chunk_id))
            if daily:
                cur.executemany(
                    "INSERT INTO chunk_daily (run_id, chunk_id, day, company, sentiment, n)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    [(run_id, chunk_id, d, c, s, n) for (d, c, s), n in sorted(daily.items())],
                )
        self.conn.commit()
        return result

    @staticmethod
    def _unstage_chunk(cur: Any, run_id: str, chunk_id: int) -> set[int]:
        """Before a chunk is staged again from stage (a replay): delete what it staged, company
        links and rejects it recorded, and the hashtags of its tweets; the ids it had staged.

        Its tweets are locked first (``FOR UPDATE``), so no other stager can take their ids in
        between: the chunk's records are staged again at once, in the same transaction, and a
        record of an id that no longer passes the rules leaves the id free."""
        cur.execute(
            "SELECT twitter_id FROM tweets WHERE run_id = %s AND chunk_id = %s"
            " ORDER BY twitter_id FOR UPDATE",
            (run_id, chunk_id),
        )
        before = {int(r[0]) for r in cur.fetchall()}
        for batch in _batches(sorted(before), 5000):
            cur.execute(
                f"DELETE FROM tweet_hashtags WHERE twitter_id IN ({', '.join(['%s'] * len(batch))})",
                tuple(batch),
            )
        cur.execute("DELETE FROM tweet_companies WHERE run_id = %s AND chunk_id = %s", (run_id, chunk_id))
        cur.execute("DELETE FROM rejected_rows WHERE run_id = %s AND chunk_id = %s", (run_id, chunk_id))
        cur.execute("DELETE FROM tweets WHERE run_id = %s AND chunk_id = %s", (run_id, chunk_id))
        return before

    @staticmethod
    def _restaged(cur: Any, run_id: str, chunk_id: int, gone: set[int]) -> None:
        """After a chunk was staged again: the company links other chunks or runs made to tweets
        it no longer stages are deleted (those tweets left staging: a record counted as their
        duplicate stays counted so; docs/pipeline.md), and the time and sentiment that other
        links copy from its tweets (migration 004) follow their new values."""
        for batch in _batches(sorted(gone), 5000):
            cur.execute(
                f"DELETE FROM tweet_companies WHERE twitter_id IN ({', '.join(['%s'] * len(batch))})",
                tuple(batch),
            )
        cur.execute(
            "UPDATE tweet_companies tc JOIN tweets t ON t.twitter_id = tc.twitter_id"
            " SET tc.created_at = t.created_at, tc.sentiment = t.sentiment"
            " WHERE t.run_id = %s AND t.chunk_id = %s"
            " AND NOT (tc.created_at <=> t.created_at AND tc.sentiment <=> t.sentiment)",
            (run_id, chunk_id),
        )

    def _load_tweets(
        self, cur: Any, rows: list[dict[str, Any]], run_id: str, chunk_id: int, raw_key: str, now: datetime
    ) -> None:
        """``LOAD DATA LOCAL INFILE … IGNORE`` of the chunk's rows (the first ingestion of an id wins).

        The measured fast path: 5-6x the rows/s of multi-row ``INSERT IGNORE`` batches here
        (docs/benchmarks.md). Values are validated and typed before; any warning other than a
        duplicate key fails the chunk instead of letting the server coerce a value silently."""
        if not rows:
            return
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        tail = f"\t{_esc(run_id)}\t{chunk_id}\t{_esc(raw_key)}\t"
        lines = [
            "\t".join(
                (
                    str(r["twitter_id"]),
                    _naive(r["created_at"]).strftime("%Y-%m-%d %H:%M:%S"),
                    _esc(r["company"]),
                    _esc(r["screenname"]),
                    _esc(r["username"]),
                    "\\N" if r["location"] is None else _esc(r["location"]),
                    str(r["followers"]),
                    str(r["friends"]),
                    str(r["retweet_count"]),
                    _esc(r["search_query"]),
                    _esc(r["text"]),
                    _esc(r["clean_text"]),
                    f"{r['polarity']:.4f}",
                    r["sentiment"],
                )
            )
            + tail
            + f"{r['record_no']}\t{stamp}\n"
            for r in rows
        ]
        self._load(cur, "tweets", TWEET_COLUMNS, lines, chunk_id, run_id)

    @staticmethod
    def _kept_time_and_sentiment(
        cur: Any, rows: list[dict[str, Any]], owned: set[int], linked: set[int]
    ) -> dict[int, str]:
        """``created_at\tsentiment`` of each linked tweet as the tweets table keeps it (migration
        004): this chunk's values for the tweets it staged, the stored ones for tweets staged before
        (read with a locking read, so a row another stager committed meanwhile is seen)."""
        kept = {
            r["twitter_id"]: f"{_naive(r['created_at']):%Y-%m-%d %H:%M:%S}\t{r['sentiment']}"
            for r in rows
            if r["twitter_id"] in owned
        }
        for batch in _batches(sorted(linked - owned), 5000):
            cur.execute(
                f"SELECT twitter_id, created_at, sentiment FROM tweets"
                f" WHERE twitter_id IN ({', '.join(['%s'] * len(batch))}) LOCK IN SHARE MODE",
                tuple(batch),
            )
            kept.update((int(t), f"{c:%Y-%m-%d %H:%M:%S}\t{s}") for t, c, s in cur.fetchall())
        if missing := linked - kept.keys():
            raise AssertionError(f"linked tweets with no staged row: {sorted(missing)[:5]}")
        return kept

    @staticmethod
    def _load(
        cur: Any, table: str, columns: Sequence[str], lines: list[str], chunk_id: int, run_id: str
    ) -> None:
        """``LOAD DATA LOCAL INFILE … IGNORE`` of tab-separated ``lines`` (values escaped by ``_esc``)."""
        if not lines:
            return
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".tsv", delete=False) as tmp:
            tmp.writelines(lines)
        try:
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s IGNORE INTO TABLE {table} CHARACTER SET utf8mb4"
                f" FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
                f" ({', '.join(columns)})",
                (tmp.name,),
            )
            skipped = len(lines) - cur.rowcount  # rows ignored as duplicate keys, one warning each
            cur.execute("SHOW COUNT(*) WARNINGS")
            warnings = int(cur.fetchone()[0])
            if warnings > skipped:
                cur.execute("SHOW WARNINGS")
                bad = [w for w in cur.fetchall() if int(w[1]) != DUPLICATE_KEY] or ["(beyond the first 64)"]
                raise ValueError(
                    f"chunk {chunk_id} of {run_id}: {table}: values changed by the server: {bad[:3]}"
                )
        finally:
            os.unlink(tmp.name)

    def companies_of(self, ids: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        with self.conn.cursor() as cur:
            for batch in _batches(list(ids), 5000):
                cur.execute(
                    f"SELECT twitter_id, company FROM tweet_companies"
                    f" WHERE twitter_id IN ({', '.join(['%s'] * len(batch))}) ORDER BY twitter_id, company",
                    tuple(batch),
                )
                for tid, comp in cur.fetchall():
                    out.setdefault(int(tid), []).append(comp)
        self.conn.commit()
        return out

    # --- reading run reports -----------------------------------------------------------------
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
        names = ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs")
        return {n: int(v) for n, v in zip(names, row, strict=True)}

    def run_status(self, run_id: str) -> tuple[str, str | None] | None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT status, error FROM runs WHERE run_id = %s", (run_id,))
            row = cur.fetchone()
        self.conn.commit()
        return None if row is None else (str(row[0]), row[1])
