"""The curated layer (MongoDB): filtered, cursor-paginated documents, and one document with its
lineage back to the staged row and the raw record."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from services.gateway.answers import json_bytes
from services.gateway.deps import StoresDep, Viewer
from services.gateway.query import TweetQueryDep, tweet_query_openapi, twitter_id_path
from services.gateway.read.tweets import CuratedDetail, CuratedPage, curated_detail, curated_page

router = APIRouter(tags=["curated"])


@router.get(
    "/curated",
    response_model=CuratedPage,
    summary="Curated documents: filters, sort, cursor pagination; tokens only when asked (viewer)",
    responses={422: {"description": "invalid filters, or `query_too_costly`: too sparse (docs/api.md)"}},
    openapi_extra=tweet_query_openapi(),
)
async def list_curated(
    stores: StoresDep,
    _: Viewer,
    query: TweetQueryDep,
    include_tokens: Annotated[
        bool, Query(description="include the BERT token ids", examples=[False])
    ] = False,
) -> Any:
    return json_bytes(await curated_page(stores, query, include_tokens))


@router.get(
    "/curated/{twitter_id}",
    response_model=CuratedDetail,
    summary="One curated document with its lineage: run, chunk, raw key and record, staged row (viewer)",
    responses={404: {"description": "no curated document with this id"}},
)
async def get_curated(
    stores: StoresDep,
    _: Viewer,
    twitter_id: Annotated[str, Path(description="decimal id", examples=["1307025660663005184"])],
    include_tokens: Annotated[bool, Query(description="include the BERT token ids", examples=[True])] = True,
) -> Any:
    return json_bytes(await curated_detail(stores, twitter_id_path(twitter_id), include_tokens))
