"""The curated catalogue in MySQL (migration 005): which curated documents exist, with the fields
their list queries filter and sort on.

GET /curated pages tweet ids from these tables' indexes and then reads the page's documents by
``_id``, so no list query depends on the document store sorting or range-filtering. The rule that
keeps the catalogue honest: **a row is written only after the document it describes holds it** —
a chunk's rows after its documents are written, a company link after the document's
``companies`` was set — and a row leaves before its document does (a replay from stage that no
longer stages a tweet: :meth:`CuratedCatalog.add_chunk` with ``replay``, then
``CuratedRepository.remove_absent``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from lake.adapters.curated_repo import CuratedRepository
from lake.adapters.mysql import Connected, batches, insert_values, sql_time
from lake.adapters.run_ledger import record_chunk
from lake.transform import item_codec
from lake.transform.curated_store import STAGED_ADDS, Staged, api_document, with_companies


class CuratedCatalog:
    """Writes the catalogue on the process's MySQL session (shared with the run ledger), so a
    chunk's catalogue rows and its ``curated`` progress record commit together."""

    def __init__(self, repo: Connected) -> None:
        self.repo = repo
        self.items = item_codec.ItemEncoder()  # list items are stored compressed (item_codec)

    def add_chunk(
        self,
        run_id: str,
        chunk_id: int,
        raw_key: str,
        started: datetime,
        items: Sequence[tuple[int, datetime, str, bytes]],
        links: Sequence[tuple[int, str, datetime, str]],
        replay: bool = False,
    ) -> list[int]:
        """Catalogue a chunk whose documents were written, and record the chunk as curated, in one
        transaction. ``items``: (twitter_id, created_at, sentiment, list item) of every document
        written (the list item: :func:`lake.transform.curated_store.list_item`, migration 007);
        ``links``: (twitter_id, company, created_at, sentiment) for every company each document
        was written with.

        The hashtags are copied inside MySQL from the chunk's staged rows (the documents were built
        from exactly those); company links come from ``links``, never from the links table, which
        may have gained a link the documents do not hold yet. Idempotent but for the documents'
        revisions: a replayed chunk adds no row, and moves the revision of each of its documents on
        with its new list item (they were rewritten), so no cache serves what they held before.

        ``replay`` (a chunk curated again, ``StagedChunkReady.replay``): its tweets' hashtags and
        company links are rewritten rather than added to, and the tweets catalogued under this
        chunk that it no longer holds (a replay from stage under new rules) are taken off the
        catalogue; their ids are returned, for ``CuratedRepository.remove_absent``."""
        conn = self.repo.conn
        ids = sorted(t for t, _, _, _ in items)
        gone: list[int] = []
        try:
            with conn.cursor() as cur:
                if replay:
                    gone = self._uncatalogue_replayed(cur, run_id, chunk_id, ids)
                self._add_items(cur, run_id, chunk_id, items)
                cur.execute(
                    "INSERT IGNORE INTO curated_hashtags (twitter_id, hashtag, created_at, sentiment)"
                    " SELECT th.twitter_id, th.hashtag, th.created_at, th.sentiment"
                    " FROM tweets t JOIN tweet_hashtags th ON th.twitter_id = t.twitter_id"
                    " WHERE t.run_id = %s AND t.chunk_id = %s",
                    (run_id, chunk_id),
                )
                self._add_links(cur, links)
                record_chunk(cur, run_id, "curated", chunk_id, raw_key, started, {"curated_docs": len(items)})
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return gone

    def _uncatalogue_replayed(self, cur: Any, run_id: str, chunk_id: int, ids: list[int]) -> list[int]:
        """Before a replayed chunk is catalogued again: its tweets' hashtags and company links are
        deleted (rewritten next), and so are the tweets catalogued under it that it no longer
        holds; those ids are returned."""
        gone = self._absent(cur, run_id, chunk_id, set(ids))
        for table in ("curated_hashtags", "curated_companies"):
            for batch in batches([*ids, *gone]):
                cur.execute(
                    f"DELETE FROM {table} WHERE twitter_id IN ({', '.join(['%s'] * len(batch))})",
                    list(batch),
                )
        for batch in batches(gone):
            cur.execute(
                "DELETE FROM curated_tweets WHERE run_id = %s AND chunk_id = %s"
                f" AND twitter_id IN ({', '.join(['%s'] * len(batch))})",
                [run_id, chunk_id, *batch],
            )
        return gone

    @staticmethod
    def _absent(cur: Any, run_id: str, chunk_id: int, ids: set[int]) -> list[int]:
        """The tweets catalogued under this chunk that are not in ``ids`` (locked until commit)."""
        cur.execute(
            "SELECT twitter_id FROM curated_tweets WHERE run_id = %s AND chunk_id = %s FOR UPDATE",
            (run_id, chunk_id),
        )
        return sorted(int(r[0]) for r in cur.fetchall() if int(r[0]) not in ids)

    def add_companies(self, companies: Mapping[int, Sequence[str]]) -> None:
        """Catalogue the companies the documents now hold (the run finaliser's late links: each
        tweet's whole ``companies``), for the tweets already catalogued: their links, and their
        list items with the new ``companies`` under a new revision."""
        conn = self.repo.conn
        ids = sorted(companies)
        try:
            with conn.cursor() as cur:
                rows: list[tuple[Any, ...]] = []
                for batch in batches(ids):
                    cur.execute(
                        "SELECT twitter_id, created_at, sentiment, run_id, chunk_id, item"
                        f" FROM curated_tweets WHERE twitter_id IN ({', '.join(['%s'] * len(batch))})",
                        list(batch),
                    )
                    rows += cur.fetchall()
                if rows:  # their documents changed: the revision moves on, with the new item
                    cur.executemany(
                        "INSERT INTO curated_tweets"
                        " (twitter_id, created_at, sentiment, run_id, chunk_id, item)"
                        " VALUES (%s, %s, %s, %s, %s, %s)"
                        " ON DUPLICATE KEY UPDATE revision = curated_tweets.revision + 1,"
                        " item = VALUES(item)",
                        [
                            (
                                *row[:5],
                                None if row[5] is None else self._with_companies(row[5], companies[row[0]]),
                            )
                            for row in rows
                        ],
                    )
                links = [(int(r[0]), c, r[1], r[2]) for r in rows for c in companies[int(r[0])]]
                self._add_links(cur, links)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _with_companies(self, stored: bytes, companies: Sequence[str]) -> bytes:
        return self.items.encode(with_companies(item_codec.decode(stored), list(companies)))

    def missing_items(self) -> int:
        """Catalogued tweets without a list item (catalogued before migration 007)."""
        with self.repo.conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM curated_tweets WHERE item IS NULL")
            found = cur.fetchone()
        self.repo.conn.commit()
        return int(found[0]) if found else 0

    def backfill_items(
        self,
        curated: CuratedRepository,
        batch: int = 1000,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Give every catalogued tweet without a list item (catalogued before migration 007) the
        item of the document the store holds, ``batch`` tweets at a time in id order; the number
        written. ``progress(done, total)`` after each batch.

        Safe beside running curators: an item is written only if the tweet still has none under
        the revision read *before* its document was, so a rewrite that lands meanwhile (a newer
        document, a new revision and its own item) is never overwritten with the older content."""
        conn = self.repo.conn
        total, done, after = self.missing_items(), 0, -1
        while True:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT ct.twitter_id, ct.revision, {STAGED_ADDS} FROM curated_tweets ct"
                    " LEFT JOIN tweets t ON t.twitter_id = ct.twitter_id"
                    " WHERE ct.item IS NULL AND ct.twitter_id > %s ORDER BY ct.twitter_id LIMIT %s",
                    (after, batch),
                )
                rows = cur.fetchall()
            conn.commit()
            if not rows:
                return done
            after = rows[-1][0]
            found = curated.tweets.find({"_id": {"$in": [str(r[0]) for r in rows]}})
            docs = {d["_id"]: d for d in found}
            items = [
                (
                    self.items.encode(
                        to_json(api_document(docs[str(tid)], Staged(*adds), {}, include_tokens=False))
                    ),
                    tid,
                    revision,
                )
                for tid, revision, *adds in rows  # adds: the staged row's (None without one)
                if str(tid) in docs
            ]
            try:
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE curated_tweets SET item = %s"
                        " WHERE twitter_id = %s AND revision = %s AND item IS NULL",
                        items,
                    )
                    done += cur.rowcount
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            if progress is not None:
                progress(done, total)

    def _add_items(
        self, cur: Any, run_id: str, chunk_id: int, items: Sequence[tuple[int, datetime, str, bytes]]
    ) -> None:
        """A chunk's catalogue rows; a row catalogued before moves its revision on, with the new item
        (compressed: :mod:`lake.transform.item_codec`)."""
        literal = _Literals(cur.connection)
        run, chunk, encode = literal(run_id), int(chunk_id), self.items.encode
        insert_values(
            cur,
            "INSERT INTO curated_tweets (twitter_id, created_at, sentiment, run_id, chunk_id, item)",
            (
                f"({int(t)},{sql_time(c)},{literal(s)},{run},{chunk},X'{encode(item).hex()}')"
                for t, c, s, item in items
            ),
            " ON DUPLICATE KEY UPDATE revision = curated_tweets.revision + 1,"
            " item = VALUES(item), created_at = VALUES(created_at),"
            " sentiment = VALUES(sentiment), run_id = VALUES(run_id),"
            " chunk_id = VALUES(chunk_id)",
        )

    @staticmethod
    def _add_links(cur: Any, links: Sequence[tuple[int, str, datetime, str]]) -> None:
        literal = _Literals(cur.connection)
        insert_values(
            cur,
            "INSERT INTO curated_companies (twitter_id, company, created_at, sentiment)",
            (f"({int(t)},{literal(c)},{sql_time(at)},{literal(s)})" for t, c, at, s in links),
            " ON DUPLICATE KEY UPDATE created_at = VALUES(created_at), sentiment = VALUES(sentiment)",
        )


class _Literals:
    """Strings as the connection's escaped SQL literals, each distinct one escaped once (a chunk
    holds a few companies and sentiments, thousands of times each)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.known: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        found = self.known.get(value)
        if found is None:
            found = self.known[value] = self.conn.escape(value)
        return found
