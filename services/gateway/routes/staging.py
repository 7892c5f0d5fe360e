"""The staging layer (MySQL): filtered, sorted, cursor-paginated tweets, and one tweet by id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from services.gateway.answers import json_bytes
from services.gateway.deps import Analyst, StoresDep
from services.gateway.query import TweetQueryDep, tweet_query_openapi, twitter_id_path
from services.gateway.read.tweets import StagedPage, StagedTweetDetail, staged_detail, staging_page

router = APIRouter(tags=["staging"])


@router.get(
    "/staging",
    response_model=StagedPage,
    summary="Staged tweets: filters, sort and cursor pagination (analyst)",
    responses={422: {"description": "invalid filters, or `query_too_costly`: too sparse (docs/api.md)"}},
    openapi_extra=tweet_query_openapi(),
)
async def list_staging(stores: StoresDep, _: Analyst, query: TweetQueryDep) -> Any:
    return json_bytes(await staging_page(stores, query))


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
    return json_bytes(await staged_detail(stores, twitter_id_path(twitter_id)))
