"""The curated layer (MongoDB): filtered, cursor-paginated documents, and one document with its
lineage back to the staged row and the raw record."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import ExecutionTimeout

from services.gateway.deps import StoresDep, Viewer
from services.gateway.query import Cursor, TweetQuery, tweet_query, twitter_id_path
from services.gateway.routes.staging import COLUMNS, StagedTweet, to_item

router = APIRouter(tags=["curated"])
MAX_TIME_MS = 10_000  # a list query that runs longer is refused: narrow it with filters


class Lineage(BaseModel):
    run_id: str
    chunk_id: int
    raw_key: str
    record_no: int


class CuratedTweet(BaseModel):
    model_config = ConfigDict(extra="allow")

    twitter_id: str = Field(description="decimal string: ids exceed 2^53", examples=["1307025660663005184"])
    created_at: datetime
    company: str
    companies: list[str]
    text: str
    clean_text: str
    hashtags: list[str]
    mentions: list[str]
    sentiment: str
    polarity: float
    engagement: float
    lineage: Lineage
    tokens: dict[str, Any] | None = Field(
        default=None, description="WordPiece ids, count, tokenizer and vocabulary hash (when asked)"
    )


class CuratedPage(BaseModel):
    items: list[CuratedTweet]
    next_cursor: str | None


class CuratedDetail(BaseModel):
    document: CuratedTweet
    lineage: Lineage
    staged: StagedTweet | None = Field(description="the staged row the document was built from")


def _projection(include_tokens: bool) -> dict[str, int]:
    return {"_id": 0} if include_tokens else {"_id": 0, "tokens": 0}


@router.get(
    "/curated",
    response_model=CuratedPage,
    response_model_exclude_none=True,
    summary="Curated documents: filters, sort, cursor pagination; tokens only when asked (viewer)",
)
async def list_curated(
    stores: StoresDep,
    _: Viewer,
    query: Annotated[TweetQuery, Depends(tweet_query)],
    include_tokens: Annotated[bool, Query(description="include the BERT token ids")] = False,
) -> Any:
    find = stores.tweets.find(query.mongo_filter(), _projection(include_tokens))
    find = find.sort(query.mongo_sort()).limit(query.limit + 1).max_time_ms(MAX_TIME_MS)
    try:
        docs = await find.to_list(None)
    except ExecutionTimeout as exc:
        raise HTTPException(
            422,
            f"the query ran over {MAX_TIME_MS} ms on this store; narrow it with filters",
        ) from exc
    items = docs[: query.limit]
    next_cursor = None
    if len(docs) > query.limit:
        last = items[-1]
        next_cursor = Cursor(last["created_at"], int(last["twitter_id"])).encode()
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/curated/{twitter_id}",
    response_model=CuratedDetail,
    response_model_exclude_none=True,
    summary="One curated document with its lineage: run, chunk, raw key and record, staged row (viewer)",
    responses={404: {"description": "no curated document with this id"}},
)
async def get_curated(
    stores: StoresDep,
    _: Viewer,
    twitter_id: Annotated[str, Path(description="decimal id", examples=["1307025660663005184"])],
    include_tokens: Annotated[bool, Query(description="include the BERT token ids")] = True,
) -> Any:
    tid = twitter_id_path(twitter_id)
    doc = await stores.tweets.find_one({"_id": str(tid)}, _projection(include_tokens))
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no curated tweet {tid}")
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(f"SELECT {', '.join(COLUMNS)} FROM tweets WHERE twitter_id = %s", (tid,))
        row = await cur.fetchone()
    return {"document": doc, "lineage": doc["lineage"], "staged": None if row is None else to_item(row)}
