"""The list queries of ``/staging`` and ``/curated``: one planner and one bounded keyset scan for
both layers, over indexes in MySQL (docs/api.md says which index serves which query).

A page is found in three steps:

1. **Drive.** One index is walked in ``(created_at, twitter_id)`` order: the company links when a
   company is asked for, else the hashtag links when a hashtag is, else the layer's tweets (by
   sentiment when asked). Only what that index answers by itself (equality prefix, day range,
   cursor) is put on the walk, so MySQL reads exactly the entries it returns.
2. **Check.** The other filters (a hashtag under a company, a sentiment under a hashtag,
   ``min_followers``, ``q``) are checked on the walked entries in windows, until the page is full
   or the walk ends. A page reads at most ``scan_rows_per_item x (limit + 1)`` entries: a query
   whose matches are sparser answers :class:`QueryTooCostly` (422 ``query_too_costly``) after that
   bounded work instead of scanning on. One exception keeps high ``min_followers`` thresholds
   answerable: when the followers index holds at most that many candidates, they are read instead.
3. **Read.** The page's rows (staging) are read by id; a curated page's list items come with its
   keys (:func:`page_rows`), and documents are read by ``_id`` only for what the items cannot show.

The curated layer's tweets are its catalogue (migrations 005, 012, 013), written only after the
documents exist: a curated page never lists a missing document, on MongoDB 7 or FerretDB alike. Its
pages walk the staging indexes — the tweets by time or by sentiment, the company and hashtag links —
keeping the catalogued tweets' (:data:`CURATED`): besides its own entries, such a page reads those
of the staged tweets not curated yet that lie ahead of it in the walk (a pipeline's chunks in
flight; a chunk whose curation failed, until it is redriven), and the bound of step 2 counts the
entries kept. A walk with no checks reads its keys from the index alone and each kept entry's list
item from the catalogue by primary key, so MariaDB walks a range of the index whatever the items'
size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from lake.schema import STAGED_API_COLUMNS
from lake.transform.curated_store import NOT_STAGED, STAGED_ADDS, Staged
from services.gateway.query import Cursor, TweetQuery

Key = tuple[datetime, int]  # (created_at, twitter_id): the order of every page
# a page's entry: its key and, when the walk read it, its list item (None: not read, or none kept)
Row = tuple[datetime, int, bytes | None]
# The staged row as the API shows it (lake.schema.STAGED_ROW): the table's columns but the load time.
STAGED_COLUMNS = STAGED_API_COLUMNS


class QueryTooCostly(Exception):
    """The query's matches are too sparse in the index that serves it: narrow it."""


@dataclass(frozen=True)
class Layer:
    """The tables whose indexes list a layer's tweets, each with ``created_at`` and ``sentiment``.

    A layer may walk another layer's tables: ``tweets_gate``, ``company_gate`` and
    ``hashtag_gate`` then join each walked entry to the layer's own rows, keeping only the entries
    the layer holds, and ``sentiment_gate`` is added to the gate when a sentiment is asked for."""

    name: str
    tweets: str
    companies: str
    hashtags: str
    tweets_gate: str = ""
    company_gate: str = ""
    hashtag_gate: str = ""
    sentiment_gate: str = ""
    items: bool = False  # the layer's rows hold each tweet's list item (``item``)


STAGING = Layer("staging", "tweets", "tweet_companies", "tweet_hashtags")
# The curated layer walks the staging indexes (migrations 012, 013) and keeps the catalogued tweets
# (``c``), as their documents hold them: the time and sentiment the document was written with (a
# replay from stage under new rules may change a staged sentiment before the chunk is curated
# again), every hashtag link of a catalogued tweet (both come from the same staged text), and a
# company link only once the document holds the company (a later run's link is copied into the
# documents when that run is finalised). STRAIGHT_JOIN: the staging index drives, in page order.
_CATALOGUED = " STRAIGHT_JOIN curated_tweets c ON c.twitter_id = w.twitter_id"
CURATED = Layer(
    "curated",
    "tweets",
    "tweet_companies",
    "tweet_hashtags",
    tweets_gate=_CATALOGUED + " AND c.created_at = w.created_at",
    company_gate=_CATALOGUED + " AND JSON_CONTAINS(c.companies, JSON_QUOTE(w.company))",
    hashtag_gate=_CATALOGUED,
    sentiment_gate=" AND c.sentiment = w.sentiment",
    items=True,
)


def _like(q: str) -> str:
    return "%" + re.sub(r"([!%_])", r"!\1", q) + "%"


@dataclass(frozen=True)
class Plan:
    """``table``: the driving index's table; ``gate``: the join that keeps its entries to the
    layer's tweets (:class:`Layer`), if any; ``served``: its conditions (on alias ``w``) that the
    index answers by itself; ``checks``: the other filters as one SQL condition on ``w`` (the
    walked entry: twitter_id, created_at, sentiment) and ``t`` (the staged tweet), empty when the
    walk alone answers; ``item``: the list item's column on the walk (``w.item`` or ``c.item``),
    empty when the layer keeps none."""

    table: str
    gate: str
    served: tuple[str, ...]
    served_args: tuple[Any, ...]
    checks: str
    check_args: tuple[Any, ...]
    needs_tweet: bool
    descending: bool
    item: str = ""

    def _where(self, after: Key | None) -> tuple[list[str], list[Any]]:
        parts, args = list(self.served), list(self.served_args)
        if after is not None:
            op = "<" if self.descending else ">"
            parts.append(f"(w.created_at {op} %s OR (w.created_at = %s AND w.twitter_id {op} %s))")
            stamp = after[0].replace(tzinfo=None)
            args += [stamp, stamp, after[1]]
        return parts, args

    def order(self, alias: str) -> str:
        way = "DESC" if self.descending else "ASC"
        return f" ORDER BY {alias}.created_at {way}, {alias}.twitter_id {way}"

    def walk(
        self, after: Key | None, n: int, columns: str = "w.twitter_id, w.created_at"
    ) -> tuple[str, list[Any]]:
        """The next ``n`` entries of the driving index after ``after``: ``columns`` of ``w``."""
        parts, args = self._where(after)
        where = (" WHERE " + " AND ".join(parts)) if parts else ""
        return (
            f"SELECT {columns} FROM {self.table} w{self.gate}{where}{self.order('w')} LIMIT %s",
            [*args, n],
        )

    def window(self, after: Key | None, n: int, items: bool = False) -> tuple[str, list[Any]]:
        """The next ``n`` entries with whether each passes the checks: (twitter_id, created_at, ok),
        and the list item with ``items`` (when the layer keeps them)."""
        item = f", {self.item} AS item" if items and self.item else ""
        walk, args = self.walk(after, n, f"w.twitter_id, w.created_at, w.sentiment{item}")
        join = " JOIN tweets t ON t.twitter_id = w.twitter_id" if self.needs_tweet else ""
        return (
            f"SELECT w.twitter_id, w.created_at, {self.checks}{', w.item' if item else ''}"
            f" FROM ({walk}) w{join}{self.order('w')}",
            [*self.check_args, *args],  # the checks come first in the statement's text
        )

    def by_followers(self, minimum: int, after: Key | None, n: int) -> tuple[str, list[Any]]:
        """The first ``n`` matches among the tweets with at least ``minimum`` followers, read
        through the followers index (only when they are few: see :func:`page_keys`)."""
        parts, args = self._where(after)
        if self.checks:
            parts.append(self.checks)
            args += self.check_args
        return (
            "SELECT t.twitter_id, t.created_at FROM tweets t FORCE INDEX (ix_tweets_followers)"
            f" WHERE t.followers >= %s AND EXISTS (SELECT 1 FROM {self.table} w{self.gate}"
            f" WHERE {' AND '.join(['w.twitter_id = t.twitter_id', *parts])}){self.order('t')} LIMIT %s",
            [minimum, *args, n],
        )


def plan(q: TweetQuery, layer: Layer) -> Plan:
    served: list[str] = []
    args: list[Any] = []
    checks: list[str] = []
    check_args: list[Any] = []
    gate = ""
    if q.company is not None:
        table, gate = layer.companies, layer.company_gate
        served.append("w.company = %s")
        args.append(q.company)
        if q.sentiment is not None:  # (company, sentiment, created_at, twitter_id)
            served.append("w.sentiment = %s")
            args.append(q.sentiment)
        if q.hashtag is not None:
            checks.append(
                f"EXISTS (SELECT 1 FROM {layer.hashtags} h"
                " WHERE h.twitter_id = w.twitter_id AND h.hashtag = %s)"
            )
            check_args.append(q.hashtag)
    elif q.hashtag is not None:
        table, gate = layer.hashtags, layer.hashtag_gate
        served.append("w.hashtag = %s")
        args.append(q.hashtag)
        if q.sentiment is not None:  # (hashtag, created_at, twitter_id) holds no sentiment
            checks.append("w.sentiment = %s")
            check_args.append(q.sentiment)
    else:
        table, gate = layer.tweets, layer.tweets_gate
        if q.sentiment is not None:  # (sentiment, created_at, twitter_id)
            served.append("w.sentiment = %s")
            args.append(q.sentiment)
    if q.sentiment is not None and gate:
        gate += layer.sentiment_gate
    if q.start is not None:
        served.append("w.created_at >= %s")
        args.append(q.start.replace(tzinfo=None))
    if q.end_exclusive is not None:
        served.append("w.created_at < %s")
        args.append(q.end_exclusive.replace(tzinfo=None))
    if q.min_followers is not None:
        checks.append("t.followers >= %s")
        check_args.append(q.min_followers)
    if q.q is not None:
        checks.append("t.text LIKE %s ESCAPE '!'")
        check_args.append(_like(q.q))
    return Plan(
        table,
        gate,
        tuple(served),
        tuple(args),
        " AND ".join(checks),
        tuple(check_args),
        q.min_followers is not None or q.q is not None,
        q.descending,
        ("c.item" if gate else "w.item") if layer.items else "",
    )


async def page_keys(cur: Any, q: TweetQuery, layer: Layer, per_item: int) -> list[Key]:
    """The keys of the page's ``limit + 1`` first matches (the extra one: another page exists),
    reading at most ``per_item x (limit + 1)`` index entries; :class:`QueryTooCostly` beyond."""
    return [(created, tid) for created, tid, _ in await _page_rows(cur, q, plan(q, layer), per_item)]


async def page_rows(cur: Any, q: TweetQuery, layer: Layer, per_item: int) -> list[Row]:
    """:func:`page_keys` with each entry's list item, read by the same statement as the keys when
    the layer keeps them (the walk's own row, or the catalogue row its gate joined): no second
    statement reads them by id. None where not read (the followers index's path) or none is kept."""
    return await _page_rows(cur, q, plan(q, layer), per_item, items=True)


async def _page_rows(cur: Any, q: TweetQuery, p: Plan, per_item: int, items: bool = False) -> list[Row]:
    want = q.limit + 1
    after = q.after
    item = items and bool(p.item)
    if not p.checks:
        sql, args = p.walk(
            after, want, f"w.twitter_id, w.created_at, {p.item}" if item else "w.twitter_id, w.created_at"
        )
        await cur.execute(sql, args)
        return [(row[1], int(row[0]), row[2] if item else None) for row in await cur.fetchall()]
    budget = per_item * want
    found: list[Row] = []
    read, size = 0, 2 * want
    while True:
        n = min(size, budget - read)
        sql, args = p.window(after, n, item)
        await cur.execute(sql, args)
        rows = await cur.fetchall()
        read += len(rows)
        found += [(row[1], int(row[0]), row[3] if item else None) for row in rows if row[2]]
        if len(found) >= want or len(rows) < n:
            return found[:want]
        if read >= budget:
            break
        after = (rows[-1][1], int(rows[-1][0]))
        size *= 2
    if q.min_followers is not None:
        # few tweets reach a high threshold: read them through the followers index instead
        await cur.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM tweets FORCE INDEX (ix_tweets_followers)"
            " WHERE followers >= %s LIMIT %s) x",
            (q.min_followers, budget + 1),
        )
        row = await cur.fetchone()
        if row is not None and int(row[0]) <= budget:
            sql, args = p.by_followers(q.min_followers, q.after, want)
            await cur.execute(sql, args)
            return [(created, int(tid), None) for tid, created in await cur.fetchall()]
    raise QueryTooCostly(
        f"fewer than 1 in {per_item} of the entries of the index serving this query match it"
        f" (read {read}); narrow it with start_date/end_date, company or hashtag"
    )


def staged_json(alias: str = "t") -> str:
    """SQL rendering a staged row (``alias``) as the API's JSON object (``StagedTweet``), bytes.

    MySQL renders it (``JSON_OBJECT``), so the gateway neither parses 18 columns per row nor
    serialises them again: a page's answer is the rows' bytes joined (profiled: parsing rows,
    building items and serialising them were ≈ 30 % of the gateway's CPU in the main mix). The
    values are the API's: the id as a decimal string (ids exceed 2^53), the time as
    ``YYYY-MM-DDTHH:MM:SSZ``, ``polarity`` as a number with 4 decimals, ``location`` null when
    empty. JSON_OBJECT escapes strings and keeps non-ASCII characters as UTF-8."""
    fields = []
    for c in STAGED_COLUMNS:
        if c == "twitter_id":
            expr = f"CAST({alias}.twitter_id AS CHAR)"
        elif c == "created_at":  # '%%': the statement is formatted with its arguments
            expr = f"DATE_FORMAT({alias}.created_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ')"
        else:
            expr = f"{alias}.{c}"
        fields.append(f"'{c}', {expr}")
    return f"CAST(JSON_OBJECT({', '.join(fields)}) AS BINARY)"


STAGED_JSON = staged_json("t")


async def staged_page(cur: Any, q: TweetQuery, per_item: int) -> bytes:
    """The ``/staging`` answer for ``q``: ``{"items": [...], "next_cursor": ...}`` as JSON bytes,
    its items rendered by MySQL (:func:`staged_json`)."""
    p = plan(q, STAGING)
    select = f"{STAGED_JSON}, t.created_at, t.twitter_id"
    if not p.checks:  # the walk is the page: one statement
        walk, args = p.walk(q.after, q.limit + 1)
        await cur.execute(
            f"SELECT {select} FROM ({walk}) w JOIN tweets t ON t.twitter_id = w.twitter_id{p.order('w')}",
            args,
        )
        rows = list(await cur.fetchall())
    else:
        keys = [(created, tid) for created, tid, _ in await _page_rows(cur, q, p, per_item)]
        rows = []
        if keys:
            ids = [tid for _, tid in keys]
            await cur.execute(
                f"SELECT {select} FROM tweets t WHERE t.twitter_id IN ({', '.join(['%s'] * len(ids))})",
                ids,
            )
            by_id = {int(row[2]): row for row in await cur.fetchall()}
            rows = [by_id[tid] for tid in ids if tid in by_id]
    shown = rows[: q.limit]
    cursor = None
    if len(rows) > q.limit:  # the extra row only says that another page exists
        _, created, tid = shown[-1]
        cursor = Cursor(created.replace(tzinfo=UTC), int(tid)).encode()
    return b'{"items":[' + b",".join(r[0] for r in shown) + b'],"next_cursor":' + to_json(cursor) + b"}"


async def staged_row_json(cur: Any, tid: int) -> bytes | None:
    """The staged row of one tweet as the API's JSON object (:func:`staged_json`), or None."""
    await cur.execute(f"SELECT {STAGED_JSON} FROM tweets t WHERE t.twitter_id = %s", (tid,))
    row = await cur.fetchone()
    return None if row is None else bytes(row[0])


async def staged_lookup(cur: Any, tid: int) -> tuple[bytes, Staged, int | None]:
    """For ``/curated/{id}``, in one primary-key query: the staged row as JSON (``null`` if none,
    :func:`staged_json`), what it adds to the stored document (clean text, raw record), and the
    catalogue's revision of the document (None: not catalogued)."""
    await cur.execute(
        f"SELECT {STAGED_JSON}, ct.revision, {STAGED_ADDS} FROM tweets t"
        " LEFT JOIN curated_tweets ct ON ct.twitter_id = t.twitter_id WHERE t.twitter_id = %s",
        (tid,),
    )
    found = await cur.fetchone()
    if found is None:
        return b"null", NOT_STAGED, None
    row, revision, *adds = found
    return bytes(row), Staged(*adds), None if revision is None else int(revision)
