"""The staging layer (MySQL): filtered, sorted, cursor-paginated tweets, and one tweet by id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field
from pydantic_core import to_json

from services.gateway.answers import json_bytes
from services.gateway.deps import Analyst, StoresDep
from services.gateway.query import TweetQuery, TweetQueryDep, tweet_query_openapi, twitter_id_path
from services.gateway.stores import Stores
from services.gateway.tweet_pages import staged_page, staged_row_json

router = APIRouter(tags=["staging"])


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


@router.get(
    "/staging",
    response_model=StagedPage,
    summary="Staged tweets: filters, sort and cursor pagination (analyst)",
    responses={422: {"description": "invalid filters, or `query_too_costly`: too sparse (docs/api.md)"}},
    openapi_extra=tweet_query_openapi(),
)
async def list_staging(stores: StoresDep, _: Analyst, query: TweetQueryDep) -> Any:
    return json_bytes(await staging_page(stores, query))


async def staging_page(stores: Stores, query: TweetQuery) -> bytes:
    """The answer of ``GET /staging`` (also served by ``services.gateway.hot_routes``)."""
    per_item = stores.settings.gateway.scan_rows_per_item
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        return await staged_page(cur, query, per_item)


@router.get(
    "/staging/{twitter_id}",
    response_model=StagedTweetDetail,
    summary="One staged tweet with all its companies and hashtags (analyst)",
    responses={404: {"description": "no staged tweet with this id"}},
)
async def get_staging(
    stores: StoresDep,
    _: Analyst,
    twitter_id: Annotated[str, Path(description="decimal id", examples=["1307025660663005184"])],
) -> Any:
    tid = twitter_id_path(twitter_id)
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        row = await staged_row_json(cur, tid)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no staged tweet {tid}")
        await cur.execute(
            "SELECT company FROM tweet_companies WHERE twitter_id = %s ORDER BY company", (tid,)
        )
        companies = [r[0] for r in await cur.fetchall()]
        await cur.execute("SELECT hashtag FROM tweet_hashtags WHERE twitter_id = %s ORDER BY hashtag", (tid,))
        hashtags = [r[0] for r in await cur.fetchall()]
    return json_bytes(
        row.rstrip()[:-1] + b',"companies":' + to_json(companies) + b',"hashtags":' + to_json(hashtags) + b"}"
    )
