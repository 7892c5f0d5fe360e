"""Staged and curated tweets as the API answers them: list pages (planned over MySQL indexes by
``tweet_pages``), one staged tweet, one curated document with its lineage and staged row; and the
API models of those answers (the routes' ``response_model``). Each read returns the answer's JSON
bytes: rendered by MySQL (staged rows), kept in the curated catalogue (list items), or rendered once
per document revision (``/curated/{id}``, the gateway's cache)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from lake.adapters.curated_repo import TOKENIZERS
from lake.transform.curated_store import NOT_STAGED, STAGED_ADDS, Staged, api_document
from lake.transform.item_codec import decode
from services.gateway.metrics import CURATED_CACHE
from services.gateway.query import TweetQuery
from services.gateway.stores import Stores
from services.gateway.tweet_pages import (
    CURATED,
    Row,
    page_keys,
    page_rows,
    staged_lookup,
    staged_page,
    staged_row_json,
)


class NotFound(LookupError):
    """No such tweet in the layer asked: 404 ``not_found`` (``errors.install``)."""


class StagedTweet(BaseModel):
    twitter_id: str = Field(description="decimal string: ids exceed 2^53", examples=["1307025660663005184"])
    created_at: datetime
    company: str
    screenname: str
    username: str
    location: str | None
    followers: int
    friends: int
    retweet_count: int
    search_query: str
    text: str
    clean_text: str
    polarity: float
    sentiment: str
    run_id: str
    chunk_id: int
    raw_key: str
    record_no: int


class StagedTweetDetail(StagedTweet):
    companies: list[str]
    hashtags: list[str]


class StagedPage(BaseModel):
    items: list[StagedTweet]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class Lineage(BaseModel):
    run_id: str
    chunk_id: int
    raw_key: str
    record_no: int


class CuratedTweet(BaseModel):
    """A curated document. With ``include_tokens`` it also carries ``tokens``: the BERT WordPiece
    ``ids`` (unpadded, truncated at LAKE_MAX_TOKENS), their ``count``, the ``tokenizer`` name and
    the vocabulary's ``vocab_sha256``."""

    model_config = ConfigDict(extra="allow")

    twitter_id: str = Field(description="decimal string: ids exceed 2^53", examples=["1307025660663005184"])
    created_at: datetime
    date: str = Field(description="YYYY-MM-DD (UTC)")
    year: int
    month: int
    day_of_week: int = Field(description="1 = Monday … 7 = Sunday")
    day_name: str
    hour: int
    is_weekend: bool
    company: str = Field(description="the company whose query collected the tweet first")
    companies: list[str] = Field(description="every company whose query collected the tweet")
    screenname: str
    username: str
    location: str | None
    followers: int
    friends: int
    retweet_count: int
    text: str
    clean_text: str
    hashtags: list[str]
    mentions: list[str]
    urls: list[str]
    emoji: list[str]
    polarity: float
    sentiment: str
    engagement: float = Field(description="2·log1p(retweets) + log1p(followers) + 0.5·log1p(friends)")
    lineage: Lineage


class CuratedPage(BaseModel):
    items: list[CuratedTweet]
    next_cursor: str | None


class CuratedDetail(BaseModel):
    document: CuratedTweet
    lineage: Lineage
    staged: StagedTweet | None = Field(description="the staged row the document was built from")


async def _tokenizers(stores: Stores, docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The records of the tokenizers these documents name (a few per deployment, kept in memory)."""
    if any(d.get("tokenizer") not in stores.tokenizers for d in docs if "tok" in d):
        found = stores.mongo[stores.settings.mongo.database][TOKENIZERS].find()
        stores.tokenizers = {r["_id"]: r for r in await found.to_list(None)}
    return stores.tokenizers


async def _catalogued(
    stores: Stores, ids: list[int], include_tokens: bool
) -> dict[int, tuple[bytes | None, Staged]]:
    """Per catalogued tweet: its list item (migration 007), or None when its document is read from
    the store (tokens asked, or catalogued before items were kept) with what the staged row adds
    (``clean_text`` and the raw record, which the document store does not repeat). The staged rows
    are read only for those."""
    marks = ", ".join(["%s"] * len(ids))
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        if include_tokens:
            found: dict[int, bytes | None] = dict.fromkeys(ids)
        else:
            await cur.execute(
                f"SELECT twitter_id, item FROM curated_tweets WHERE twitter_id IN ({marks})", ids
            )
            found = {int(t): None if item is None else decode(item) for t, item in await cur.fetchall()}
        staged: dict[int, Staged] = {}
        if unrendered := [t for t, item in found.items() if item is None]:
            await cur.execute(
                f"SELECT t.twitter_id, {STAGED_ADDS} FROM tweets t"
                f" WHERE t.twitter_id IN ({', '.join(['%s'] * len(unrendered))})",
                unrendered,
            )
            staged = {int(t): Staged(*adds) for t, *adds in await cur.fetchall()}
        return {t: (item, staged.get(t, NOT_STAGED)) for t, item in found.items()}


async def staging_page(stores: Stores, query: TweetQuery) -> bytes:
    """The answer of ``GET /staging`` (also served by ``services.gateway.hot_routes``)."""
    per_item = stores.settings.gateway.scan_rows_per_item
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        return await staged_page(cur, query, per_item)


async def staged_detail(stores: Stores, tid: int) -> bytes:
    """The answer of ``GET /staging/{twitter_id}``: the staged row with all its companies and
    hashtags."""
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        row = await staged_row_json(cur, tid)
        if row is None:
            raise NotFound(f"no staged tweet {tid}")
        await cur.execute(
            "SELECT company FROM tweet_companies WHERE twitter_id = %s ORDER BY company", (tid,)
        )
        companies = [r[0] for r in await cur.fetchall()]
        await cur.execute("SELECT hashtag FROM tweet_hashtags WHERE twitter_id = %s ORDER BY hashtag", (tid,))
        hashtags = [r[0] for r in await cur.fetchall()]
    return (
        row.rstrip()[:-1] + b',"companies":' + to_json(companies) + b',"hashtags":' + to_json(hashtags) + b"}"
    )


async def curated_page(stores: Stores, query: TweetQuery, include_tokens: bool) -> bytes:
    """The answer of ``GET /curated`` (also served by ``services.gateway.hot_routes``)."""
    per_item = stores.settings.gateway.scan_rows_per_item
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        rows: list[Row]
        if include_tokens:
            rows = [(*key, None) for key in await page_keys(cur, query, CURATED, per_item)]
        else:  # the list items come with the keys, read by the same statement
            rows = await page_rows(cur, query, CURATED, per_item)
    keys = [(created, tid) for created, tid, _ in rows]
    tids = [tid for _, tid in keys[: query.limit]]
    if not tids:  # never ask the store for no ids: FerretDB reads every document for `$in: []`
        return to_json({"items": [], "next_cursor": None})
    # the list projection answers; the document store only for tokens (which only it keeps) and
    # for tweets catalogued before the projection existed
    bodies = {tid: decode(item) for _, tid, item in rows[: query.limit] if item is not None}
    unread = [tid for tid in tids if tid not in bodies]
    catalogued = await _catalogued(stores, unread, include_tokens) if unread else {}
    bodies |= {t: body for t, (body, _) in catalogued.items() if body is not None}
    if missing := [str(tid) for tid in tids if tid not in bodies]:
        max_ms = int(stores.settings.gateway.query_timeout_s * 1000)
        # No projection: the packed token ids are a few dozen bytes, and FerretDB copies every
        # document to project it (12 % of its CPU on a page).
        docs = await stores.tweets.find({"_id": {"$in": missing}}).max_time_ms(max_ms).to_list(None)
        tokenizers = await _tokenizers(stores, docs) if include_tokens else {}
        for d in docs:
            tid = int(d["_id"])
            staged = catalogued.get(tid, (None, NOT_STAGED))[1]
            bodies[tid] = to_json(api_document(d, staged, tokenizers, include_tokens))
    # the catalogue lists a document only once it exists, and nothing deletes one: none is missing
    items = b",".join(bodies[tid] for tid in tids if tid in bodies)
    cursor = to_json(query.next_cursor(keys))
    return b'{"items":[' + items + b'],"next_cursor":' + cursor + b"}"


async def curated_detail(stores: Stores, tid: int, include_tokens: bool) -> bytes:
    """The answer of ``GET /curated/{twitter_id}`` (also served by ``services.gateway.hot_routes``)."""
    cache = stores.curated_cache if stores.curated_cache.max_bytes else None
    key = (tid, "detail+tokens" if include_tokens else "detail")

    async def staged() -> tuple[bytes, Staged, int | None]:
        async with stores.mysql.acquire() as conn, conn.cursor() as cur:
            return await staged_lookup(cur, tid)

    if cache is not None and key in cache:  # the catalogue says whether the entry is still current
        row, adds, revision = await staged()
        if revision is not None and (cached := cache.get(key, revision)) is not None:
            CURATED_CACHE.labels("hit").inc()
            return b"{" + cached + b',"staged":' + row + b"}"
        stored = await stores.tweets.find_one({"_id": str(tid)})
    else:  # both stores at once: the answer waits for the slower one, not for the sum
        stored, (row, adds, revision) = await asyncio.gather(
            stores.tweets.find_one({"_id": str(tid)}), staged()
        )
    if stored is None:
        raise NotFound(f"no curated tweet {tid}")
    tokenizers = await _tokenizers(stores, [stored]) if include_tokens else {}
    doc = api_document(stored, adds, tokenizers, include_tokens)
    body = b'"document":' + to_json(doc) + b',"lineage":' + to_json(doc["lineage"])
    if cache is not None and revision is not None:
        CURATED_CACHE.labels("miss").inc()
        cache.put(key, revision, body)
    return b"{" + body + b',"staged":' + row + b"}"
