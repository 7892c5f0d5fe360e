"""The staging store: tweets, their companies and hashtags, quarantined records, and the per-chunk
facet counts ``/stats`` sums. Runs and chunk progress are the run ledger's
(``lake.adapters.run_ledger``); a staged chunk's progress is recorded in the staging transaction.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import polars as pl
import pymysql

from lake.adapters.mysql import OnSession, batches, utc_now
from lake.adapters.run_ledger import record_chunk
from lake.schema import STAGED_COLUMNS

TWEET_COLUMNS = STAGED_COLUMNS  # lake.schema.STAGED_ROW: the tweets table's columns in order
DEADLOCK_CODES = {1205, 1213}
DUPLICATE_KEY = 1062  # lock wait timeout, deadlock: the whole transaction is retried


@dataclass(frozen=True)
class StageResult:
    raw_rows: int
    rejected_rows: int
    duplicate_rows: int
    staged_rows: int
    owned_ids: frozenset[int]


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\\0"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r\x00]")


def _esc(value: str) -> str:
    """A value for LOAD DATA with ``ESCAPED BY '\\'``: backslash, tab, LF, CR and NUL escaped.

    Most values have none of them: one regex scan (C) decides, and only those are translated
    (1.2 µs against 4.8 per value, profiled as 10 % of the stager's CPU)."""
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value


def write_tsv(frame: pl.DataFrame, out: IO[bytes]) -> None:
    """``frame`` as ``LOAD DATA … FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\'`` reads it, as
    :func:`_esc` writes it by hand: text escaped, times as ``DATETIME`` text, NULL as ``\\N``, floats
    with 4 decimals (the polarity's ``DECIMAL(5,4)``)."""
    escaped = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Utf8:
            for char, code in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\x00", "\\0")):
                col = col.str.replace_all(char, code, literal=True)
        elif isinstance(dtype, pl.Datetime):
            col = col.dt.strftime("%Y-%m-%d %H:%M:%S")
        escaped.append(col)
    frame.select(escaped).write_csv(
        out,
        include_header=False,
        separator="\t",
        line_terminator="\n",
        quote_style="never",
        null_value="\\N",
        float_precision=4,
    )


class StagingRepository(OnSession):
    OWNED_LIST_BYTES = 1 << 30  # the longest list of ids _owned reads as one value

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

    # --- staging a chunk ------------------------------------------------------------------------
    def stage_chunk(
        self,
        run_id: str,
        chunk_id: int,
        raw_key: str,
        raw_rows: int,
        rows: pl.DataFrame,
        links: list[tuple[int, str, int]],
        rejects: list[tuple[int, str, str | None, str | None]],
        hashtags: dict[int, list[str]],
        started: datetime,
        replay: bool = False,
    ) -> StageResult:
        """Stage one chunk in one transaction; exact and idempotent under replays and concurrency.

        ``rows``: valid records, first occurrence per twitter_id in the chunk
        (``lake.transform.stage.STAGED_SCHEMA``'s columns); ``links``: (twitter_id,
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
                self.db.rollback()
                if exc.args[0] not in DEADLOCK_CODES or attempt == 4:
                    raise
                time.sleep(0.1 * 2**attempt)
            except BaseException:
                self.db.rollback()  # nothing of a failed attempt may ride along with the next one
                raise
        raise AssertionError("unreachable")

    def _stage_chunk(
        self,
        run_id: str,
        chunk_id: int,
        raw_key: str,
        raw_rows: int,
        rows: pl.DataFrame,
        links: list[tuple[int, str, int]],
        rejects: list[tuple[int, str, str | None, str | None]],
        hashtags: dict[int, list[str]],
        started: datetime,
        replay: bool = False,
    ) -> StageResult:
        now = utc_now()
        rows = rows.sort("twitter_id")  # one lock order for every replica
        with self.conn.cursor() as cur:
            before = self._unstage_chunk(cur, run_id, chunk_id) if replay else set()
            self._insert_rejects(cur, run_id, chunk_id, raw_key, rejects, now)
            loaded = self._load_tweets(cur, rows, run_id, chunk_id, raw_key, now)
            # every row loaded (no id was staged before): the chunk owns all its ids, none to read back
            if loaded == rows.height:
                owned = set(rows["twitter_id"].to_list())
            else:
                owned = self._owned(cur, run_id, chunk_id)
            self._load_tags_and_links(cur, run_id, chunk_id, rows, owned, links, hashtags)
            staged = len(owned)
            result = StageResult(raw_rows, len(rejects), len(links) - staged, staged, frozenset(owned))
            counts = {
                "raw_rows": raw_rows,
                "rejected_rows": result.rejected_rows,
                "duplicate_rows": result.duplicate_rows,
                "staged_rows": staged,
            }
            record_chunk(cur, run_id, "staged", chunk_id, raw_key, started, counts)
            if replay:
                self._restaged(cur, run_id, chunk_id, before - owned)
            self._count_facets(cur, run_id, chunk_id, rows.filter(pl.col("twitter_id").is_in(list(owned))))
        self.conn.commit()
        return result

    @staticmethod
    def _insert_rejects(
        cur: Any,
        run_id: str,
        chunk_id: int,
        raw_key: str,
        rejects: list[tuple[int, str, str | None, str | None]],
        now: datetime,
    ) -> None:
        if rejects:
            cur.executemany(
                "INSERT IGNORE INTO rejected_rows (run_id, chunk_id, record_no, raw_key, reason,"
                " column_name, value, rejected_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(run_id, chunk_id, no, raw_key, reason, col, val, now) for no, reason, col, val in rejects],
            )

    @staticmethod
    def _owned(cur: Any, run_id: str, chunk_id: int) -> set[int]:
        """The ids whose rows this chunk holds after its load (the first ingestion of an id wins):
        its lineage, by index. Only its own load gives a row this lineage (a replay from stage
        deletes the chunk's rows first, in the same transaction), so no id list is needed.

        Read as one comma-separated value: parsing 50,000 result rows in PyMySQL was ≈ 6 % of the
        stager's CPU (py-spy). The count guards against a list the server would cut short."""
        where = "FROM tweets WHERE run_id = %s AND chunk_id = %s"
        cur.execute(f"SET SESSION group_concat_max_len = {StagingRepository.OWNED_LIST_BYTES}")
        cur.execute(f"SELECT COUNT(*), GROUP_CONCAT(twitter_id) {where}", (run_id, chunk_id))
        count, joined = cur.fetchone()
        text = joined.decode() if isinstance(joined, bytes) else joined or ""
        owned = {int(t) for t in text.split(",")} if text else set()
        if len(owned) != count:
            cur.execute(f"SELECT twitter_id {where}", (run_id, chunk_id))
            owned = {int(r[0]) for r in cur.fetchall()}
        return owned

    def _load_tags_and_links(
        self,
        cur: Any,
        run_id: str,
        chunk_id: int,
        rows: pl.DataFrame,
        owned: set[int],
        links: list[tuple[int, str, int]],
        hashtags: dict[int, list[str]],
    ) -> None:
        """The hashtags of the tweets the chunk owns, and a company link for every valid record,
        each with its tweet's kept time and sentiment (migration 004)."""
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

    @staticmethod
    def _count_facets(cur: Any, run_id: str, chunk_id: int, owned_rows: pl.DataFrame) -> None:
        """The chunk's tweets per company and sentiment, and per day (what ``/stats`` sums)."""
        facets: Counter[tuple[str, str]] = Counter()
        for facet in ("company", "sentiment"):
            facets.update({(facet, v): n for v, n in owned_rows[facet].value_counts().iter_rows()})
        day = pl.col("created_at").dt.strftime("%Y-%m-%d").alias("day")
        counted = owned_rows.group_by(day, "company", "sentiment").len()
        daily = {(d, c, s): n for d, c, s, n in counted.iter_rows()}
        cur.execute("DELETE FROM chunk_facets WHERE run_id = %s AND chunk_id = %s", (run_id, chunk_id))
        if facets:
            cur.executemany(
                "INSERT INTO chunk_facets (run_id, chunk_id, facet, value, n) VALUES (%s, %s, %s, %s, %s)",
                [(run_id, chunk_id, f, v, n) for (f, v), n in sorted(facets.items())],
            )
        cur.execute("DELETE FROM chunk_daily WHERE run_id = %s AND chunk_id = %s", (run_id, chunk_id))
        if daily:
            cur.executemany(
                "INSERT INTO chunk_daily (run_id, chunk_id, day, company, sentiment, n)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [(run_id, chunk_id, d, c, s, n) for (d, c, s), n in sorted(daily.items())],
            )

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
        for batch in batches(sorted(before), 5000):
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
        for batch in batches(sorted(gone), 5000):
            cur.execute(
                f"DELETE FROM tweet_companies WHERE twitter_id IN ({', '.join(['%s'] * len(batch))})",
                tuple(batch),
            )
        cur.execute(  # the chunk's tweets first, by lineage, then their links (see ``other_companies``)
            "UPDATE tweets t FORCE INDEX (ix_tweets_lineage)"
            " STRAIGHT_JOIN tweet_companies tc ON tc.twitter_id = t.twitter_id"
            " SET tc.created_at = t.created_at, tc.sentiment = t.sentiment"
            " WHERE t.run_id = %s AND t.chunk_id = %s"
            " AND NOT (tc.created_at <=> t.created_at AND tc.sentiment <=> t.sentiment)",
            (run_id, chunk_id),
        )

    def _load_tweets(
        self, cur: Any, rows: pl.DataFrame, run_id: str, chunk_id: int, raw_key: str, now: datetime
    ) -> int:
        """``LOAD DATA LOCAL INFILE … IGNORE`` of the chunk's rows (the first ingestion of an id
        wins); returns how many were loaded.

        The measured fast path: 5-6x the rows/s of multi-row ``INSERT IGNORE`` batches here
        (docs/benchmarks.md). The file is written by polars, column by column (:func:`write_tsv`).
        Values are validated and typed before; any warning other than a duplicate key fails the
        chunk instead of letting the server coerce a value silently."""
        if not rows.height:
            return 0
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        lineage = rows.with_columns(
            run_id=pl.lit(run_id), chunk_id=pl.lit(chunk_id), raw_key=pl.lit(raw_key), staged_at=pl.lit(stamp)
        )
        return self._load(cur, "tweets", TWEET_COLUMNS, lineage.select(TWEET_COLUMNS), chunk_id, run_id)

    @staticmethod
    def _kept_time_and_sentiment(
        cur: Any, rows: pl.DataFrame, owned: set[int], linked: set[int]
    ) -> dict[int, str]:
        """``created_at\tsentiment`` of each linked tweet as the tweets table keeps it (migration
        004): this chunk's values for the tweets it staged, the stored ones for tweets staged before
        (read with a locking read, so a row another stager committed meanwhile is seen)."""
        mine = rows.filter(pl.col("twitter_id").is_in(list(owned)))
        stamps = mine["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S") + "\t" + mine["sentiment"]
        kept = dict(zip(mine["twitter_id"].to_list(), stamps.to_list(), strict=True))
        for batch in batches(sorted(linked - owned), 5000):
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
        cur: Any,
        table: str,
        columns: Sequence[str],
        lines: list[str] | pl.DataFrame,
        chunk_id: int,
        run_id: str,
    ) -> int:
        """``LOAD DATA LOCAL INFILE … IGNORE`` of tab-separated ``lines`` (values escaped by ``_esc``)
        or of a frame (written by :func:`write_tsv`); returns how many rows were loaded (the others
        were ignored as duplicate keys)."""
        count = lines.height if isinstance(lines, pl.DataFrame) else len(lines)
        if not count:
            return 0
        with tempfile.NamedTemporaryFile("wb", suffix=".tsv", delete=False) as tmp:
            if isinstance(lines, pl.DataFrame):
                write_tsv(lines, tmp)
            else:
                tmp.write("".join(lines).encode())
        try:
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s IGNORE INTO TABLE {table} CHARACTER SET utf8mb4"
                f" FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
                f" ({', '.join(columns)})",
                (tmp.name,),
            )
            skipped = count - cur.rowcount  # rows ignored as duplicate keys, one warning each
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
        return int(count - skipped)

    def other_companies(self, run_id: str, chunk_id: int) -> dict[int, list[str]]:
        """Every company (sorted) of the chunk's staged tweets that are linked to another company
        than their own; a tweet not listed has exactly its own. MySQL finds those few tweets by
        the chunk's lineage, and only their links come back: the chunk's ids as ``IN`` lists and
        a row per link (``companies_of`` for the whole chunk) cost the curator ≈ 5 % of its CPU.

        The chunk's tweets first, by the lineage index (``STRAIGHT_JOIN``, ``FORCE INDEX``), then
        their links. With the statistics a bulk load leaves, MariaDB chose to walk all of
        ``tweet_companies`` in key order instead (no sort for the ``GROUP BY``): 2.6-3.0 s per chunk
        at 1.13M rows against 0.2-0.3 s, ≈ 50 µs of MariaDB per curated document, and growing with
        the table; with the join order fixed, it may walk all of ``tweets`` in key order for the
        same reason, unless told the index."""
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT STRAIGHT_JOIN t.twitter_id FROM tweets t FORCE INDEX (ix_tweets_lineage)"
                " JOIN tweet_companies tc ON tc.twitter_id = t.twitter_id"
                " WHERE t.run_id = %s AND t.chunk_id = %s GROUP BY t.twitter_id"
                " HAVING COUNT(*) > 1 OR CAST(MIN(tc.company) AS BINARY) <> CAST(MIN(t.company) AS BINARY)",
                (run_id, chunk_id),
            )
            ids = [int(r[0]) for r in cur.fetchall()]
        self.conn.commit()
        return self.companies_of(ids) if ids else {}

    def companies_of(self, ids: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        with self.conn.cursor() as cur:
            for batch in batches(list(ids), 5000):
                cur.execute(
                    f"SELECT twitter_id, company FROM tweet_companies"
                    f" WHERE twitter_id IN ({', '.join(['%s'] * len(batch))}) ORDER BY twitter_id, company",
                    tuple(batch),
                )
                for tid, comp in cur.fetchall():
                    out.setdefault(int(tid), []).append(comp)
        self.conn.commit()
        return out
