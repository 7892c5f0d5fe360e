"""The staging layer (MySQL): filtered, sorted, cursor-paginated tweets, and one tweet by id."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from services.gateway.deps import Analyst, StoresDep
from services.gateway.query import Cursor, TweetQuery, tweet_query, twitter_id_path

router = APIRouter(tags=["staging"])

COLUMNS = (
    "twitter_id",
    "created_at",
    "company",
    "screenname",
    "username",
    "location",
    "followers",
    "friends",
    "retweet_count",
    "search_query",
    "text",
    "clean_text",
    "polarity",
    "sentiment",
    "run_id",
    "chunk_id",
    "raw_key",
    "record_no",
)


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


@router.get(
    "/staging",
    response_model=StagedPage,
    summary="Staged tweets: filters, sort and cursor pagination (analyst)",
)
async def list_staging(
    stores: StoresDep, _: Analyst, query: Annotated[TweetQuery, Depends(tweet_query)]
) -> Any:
    where, args = query.sql_where()
    sql = f"SELECT {', '.join('t.' + c for c in COLUMNS)} FROM tweets t{where}{query.sql_order()} LIMIT %s"
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, (*args, query.limit + 1))
        rows = await cur.fetchall()
    items = [to_item(r) for r in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        next_cursor = Cursor(last["created_at"], int(last["twitter_id"])).encode()
    return {"items": items, "next_cursor": next_cursor}


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
        await cur.execute(f"SELECT {', '.join(COLUMNS)} FROM tweets WHERE twitter_id = %s", (tid,))
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no staged tweet {tid}")
        await cur.execute(
            "SELECT company FROM tweet_companies WHERE twitter_id = %s ORDER BY company", (tid,)
        )
        companies = [r[0] for r in await cur.fetchall()]
        await cur.execute("SELECT hashtag FROM tweet_hashtags WHERE twitter_id = %s ORDER BY hashtag", (tid,))
        hashtags = [r[0] for r in await cur.fetchall()]
    return {**to_item(row), "companies": companies, "hashtags": hashtags}
