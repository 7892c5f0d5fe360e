"""The curated catalogue in MySQL (migrations 005, 007, 012, 013): which curated documents exist,
with the fields their list queries filter and sort on, their companies and their list items.

GET /curated pages tweet ids from the staging indexes kept to the catalogued tweets (migrations 012,
013: services/gateway/tweet_pages.py) and then reads the page's list items or documents, so no list
query depends on the document store sorting or range-filtering. The rule that keeps the catalogue
honest: **a row says only what the document it describes holds** — a chunk's rows are written after
its documents, a document's ``companies`` after the document's were set — and a row leaves before
its document does (a replay from stage that no longer stages a tweet:
:meth:`CuratedCatalog.add_chunk` with ``replay``, then ``CuratedRepository.remove_absent``).
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
from lake.transform.curate import CatalogueItem
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
        items: Sequence[CatalogueItem],
        replay: bool = False,
    ) -> list[int]:
        """Catalogue a chunk whose documents were written, and record the chunk as curated, in one
        transaction. ``items``: (twitter_id, created_at, sentiment, list item, companies) of every
        document written (the list item: :func:`lake.transform.curated_store.list_item`, migration
        007, as JSON or compressed already by ``ItemEncoder``; companies: those the document was
        written with, migration 012).

        Company and hashtag pages walk the staging links and keep the catalogued tweets
        (migration 012): nothing else is written per link. Idempotent but for the documents'
        revisions: a replayed chunk adds no row, and moves the revision of each of its documents on
        with its new list item (they were rewritten), so no cache serves what they held before.

        ``replay`` (a chunk curated again, ``StagedChunkReady.replay``): the tweets catalogued under
        this chunk that it no longer holds (a replay from stage under new rules) are taken off the
        catalogue; their ids are returned, for ``CuratedRepository.remove_absent``."""
        conn = self.repo.conn
        gone: list[int] = []
        try:
            with conn.cursor() as cur:
                if replay:
                    gone = self._uncatalogue_replayed(cur, run_id, chunk_id, {t for t, *_ in items})
                self._add_items(cur, run_id, chunk_id, items)
                record_chunk(cur, run_id, "curated", chunk_id, raw_key, started, {"curated_docs": len(items)})
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return gone

    def _uncatalogue_replayed(self, cur: Any, run_id: str, chunk_id: int, ids: set[int]) -> list[int]:
        """Before a replayed chunk is catalogued again: the tweets catalogued under it that it no
        longer holds are deleted, and their ids returned."""
        gone = self._absent(cur, run_id, chunk_id, ids)
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
        tweet's whole ``companies``), for the tweets already catalogued: their companies, and their
        list items with the new ``companies``, under a new revision."""
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
                    # an INSERT's rows go as one multi-row statement (executemany sends an UPDATE
                    # once per row)
                    cur.executemany(
                        "INSERT INTO curated_tweets"
                        " (twitter_id, created_at, sentiment, run_id, chunk_id, item, companies)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                        " ON DUPLICATE KEY UPDATE revision = curated_tweets.revision + 1,"
                        " item = VALUES(item), companies = VALUES(companies)",
                        [self._late_row(row, companies[int(row[0])]) for row in rows],
                    )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _late_row(self, row: tuple[Any, ...], companies: Sequence[str]) -> tuple[Any, ...]:
        """A catalogue row read back (its five first columns and item) with its new companies."""
        item = None if row[5] is None else self._with_companies(row[5], companies)
        return (*row[:5], item, _json_list(companies))

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

    def _add_items(self, cur: Any, run_id: str, chunk_id: int, items: Sequence[CatalogueItem]) -> None:
        """A chunk's catalogue rows; a row catalogued before moves its revision on, with the new item
        (compressed: :mod:`lake.transform.item_codec`; items given compressed are kept) and
        companies."""
        literal = _Literals(cur.connection)
        run, chunk, encode = literal(run_id), int(chunk_id), self.items.stored
        insert_values(
            cur,
            "INSERT INTO curated_tweets"
            " (twitter_id, created_at, sentiment, run_id, chunk_id, item, companies)",
            (
                f"({int(t)},{sql_time(c)},{literal(s)},{run},{chunk},X'{encode(item).hex()}',"
                f"{literal(_json_list(names))})"
                for t, c, s, item, names in items
            ),
            " ON DUPLICATE KEY UPDATE revision = curated_tweets.revision + 1,"
            " item = VALUES(item), created_at = VALUES(created_at),"
            " sentiment = VALUES(sentiment), run_id = VALUES(run_id),"
            " chunk_id = VALUES(chunk_id), companies = VALUES(companies)",
        )


def _json_list(names: Sequence[str]) -> str:
    """A document's companies as the catalogue's JSON array (``curated_tweets.companies``)."""
    return to_json(list(names)).decode()


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
