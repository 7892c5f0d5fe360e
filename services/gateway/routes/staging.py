"""The staging layer (MySQL): filtered, sorted, cursor-paginated tweets, and one tweet by id."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from lake.adapters.staging_repo import TWEET_COLUMNS
from services.gateway.answers import json_answer
from services.gateway.deps import Analyst, StoresDep
from services.gateway.query import TweetQuery, tweet_query, twitter_id_path
from services.gateway.tweet_pages import staged_rows

router = APIRouter(tags=["staging"])

# The staged row as the API shows it: the table's columns but the load time.
COLUMNS = tuple(c for c in TWEET_COLUMNS if c != "staged_at")


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


def to_item(row: tuple[Any, ...]) -> dict[str, Any]:
    item = dict(zip(COLUMNS, row, strict=True))
    item["twitter_id"] = str(item["twitter_id"])
    item["created_at"] = item["created_at"].replace(tzinfo=UTC)
    if isinstance(item["polarity"], Decimal):
        item["polarity"] = float(item["polarity"])
    return item


async def staged_row(cur: Any, tid: int) -> dict[str, Any] | None:
    """The staged row of one tweet as the API shows it, or None."""
    await cur.execute(f"SELECT {', '.join(COLUMNS)} FROM tweets WHERE twitter_id = %s", (tid,))
    row = await cur.fetchone()
    return None if row is None else to_item(row)


@router.get(
    "/staging",
    response_model=StagedPage,
    summary="Staged tweets: filters, sort and cursor pagination (analyst)",
    responses={422: {"description": "invalid filters, or `query_too_costly`: too sparse (docs/api.md)"}},
)
async def list_staging(
    stores: StoresDep, _: Analyst, query: Annotated[TweetQuery, Depends(tweet_query)]
) -> Any:
    per_item = stores.settings.gateway.scan_rows_per_item
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        rows = await staged_rows(cur, query, per_item, COLUMNS)
    return json_answer(query.page([to_item(r) for r in rows]))


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
        row = await staged_row(cur, tid)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no staged tweet {tid}")
        await cur.execute(
            "SELECT company FROM tweet_companies WHERE twitter_id = %s ORDER BY company", (tid,)
        )
        companies = [r[0] for r in await cur.fetchall()]
        await cur.execute("SELECT hashtag FROM tweet_hashtags WHERE twitter_id = %s ORDER BY hashtag", (tid,))
        hashtags = [r[0] for r in await cur.fetchall()]
    return {**row, "companies": companies, "hashtags": hashtags}
