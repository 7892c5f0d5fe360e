"""The curated catalogue in MySQL (migration 005): which curated documents exist, with the fields
their list queries filter and sort on.

GET /curated pages tweet ids from these tables' indexes and then reads the page's documents by
``_id``, so no list query depends on the document store sorting or range-filtering. The rule that
keeps the catalogue honest: **a row is written only after the document it describes holds it** —
a chunk's rows after its documents are written, a company link after the document's
``companies`` was set — and nothing here is ever deleted while its document exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lake.adapters.staging_repo import StagingRepository, _batches


class CuratedCatalog:
    """Writes the catalogue on the staging repository's connection, so a chunk's catalogue rows
    and its ``curated`` progress record commit together."""

    def __init__(self, repo: StagingRepository) -> None:
        self.repo = repo

    def add_chunk(
        self,
        run_id: str,
        chunk_id: int,
        raw_key: str,
        started: datetime,
        links: Sequence[tuple[int, str, datetime, str]],
        curated_docs: int,
    ) -> None:
        """Catalogue a chunk whose documents were written, and record the chunk as curated, in one
        transaction. ``links``: (twitter_id, company, created_at, sentiment) for every company each
        document was written with.

        The tweets and their hashtags are copied inside MySQL from the chunk's staged rows (the
        documents were built from exactly those); company links come from ``links``, never from the
        links table, which may have gained a link the documents do not hold yet. Idempotent but
        for the documents' revisions: a replayed chunk adds no row, and moves the revision of each
        of its documents on (they were rewritten), so no cache serves what they held before."""
        conn = self.repo.conn
        try:
            with conn.cursor() as cur:
                # a replayed chunk rewrote its documents: their revision moves on (migration 006)
                cur.execute(
                    "INSERT INTO curated_tweets (twitter_id, created_at, sentiment, run_id, chunk_id)"
                    " SELECT twitter_id, created_at, sentiment, run_id, chunk_id FROM tweets"
                    " WHERE run_id = %s AND chunk_id = %s"
                    " ON DUPLICATE KEY UPDATE revision = curated_tweets.revision + 1",
                    (run_id, chunk_id),
                )
                cur.execute(
                    "INSERT IGNORE INTO curated_hashtags (twitter_id, hashtag, created_at, sentiment)"
                    " SELECT th.twitter_id, th.hashtag, th.created_at, th.sentiment"
                    " FROM tweets t JOIN tweet_hashtags th ON th.twitter_id = t.twitter_id"
                    " WHERE t.run_id = %s AND t.chunk_id = %s",
                    (run_id, chunk_id),
                )
                self._add_links(cur, links)
                self.repo._record_chunk(
                    cur, run_id, "curated", chunk_id, raw_key, started, {"curated_docs": curated_docs}
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def add_companies(self, companies: Mapping[int, Sequence[str]]) -> None:
        """Catalogue company links the documents now hold (the run finaliser's late links), for the
        tweets already catalogued (their time and sentiment come from there)."""
        conn = self.repo.conn
        ids = sorted(companies)
        try:
            with conn.cursor() as cur:
                known: dict[int, tuple[datetime, str]] = {}
                for batch in _batches(ids):
                    marks = ", ".join(["%s"] * len(batch))
                    cur.execute(
                        "SELECT twitter_id, created_at, sentiment FROM curated_tweets"
                        f" WHERE twitter_id IN ({marks})",
                        list(batch),
                    )
                    known.update((int(t), (c, s)) for t, c, s in cur.fetchall())
                    # their documents changed (only catalogued tweets have a row to update)
                    cur.execute(
                        f"UPDATE curated_tweets SET revision = revision + 1 WHERE twitter_id IN ({marks})",
                        list(batch),
                    )
                links = [(t, c, *known[t]) for t in ids if t in known for c in companies[t]]
                self._add_links(cur, links)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    @staticmethod
    def _add_links(cur: Any, links: Sequence[tuple[int, str, datetime, str]]) -> None:
        if links:  # PyMySQL sends executemany of one INSERT … VALUES as multi-row statements
            cur.executemany(
                "INSERT IGNORE INTO curated_companies (twitter_id, company, created_at, sentiment)"
                " VALUES (%s, %s, %s, %s)",
                links,
            )
