"""Dead letters: the events the pipeline gave up on, and their redrive once the cause is fixed
(``lake.adapters.dead_letters``, ``lake.recovery``; docs/api.md "Recovery")."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import BaseModel, Field

from lake.adapters.dead_letters import COLUMNS, Letter, Scope, listing_filters
from lake.recovery import redrive_dead_letters
from services.gateway.deps import Admin, Analyst, SettingsDep, StoresDep

router = APIRouter(tags=["recovery"])


class DeadLetter(BaseModel):
    letter_id: str = Field(description="<topic>/<partition>/<offset> of the delivery that failed")
    topic: str = Field(description="the topic the event failed on, without the deployment's prefix")
    service: str
    run_id: str | None
    chunk_id: int | None
    error_type: str
    error: str
    attempts: int = Field(description="every attempt at this event, its earlier redrives included")
    first_failed_at: datetime = Field(description="the event's first failure (before any redrive)")
    last_failed_at: datetime
    redrive_of: str | None = Field(description="the dead letter whose redrive this delivery was")
    redriven: bool
    redriven_at: datetime | None
    event: Any = Field(description="the original message as JSON (null if it is not JSON)")
    event_base64: str = Field(description="the original message, byte for byte")


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


class RedriveRequest(BaseModel):
    """Exactly one scope: a dead letter, a run, a topic, or all."""

    letter_id: str | None = None
    run_id: str | None = None
    topic: str | None = Field(default=None, description="e.g. staged.ready (without the prefix)")
    all: bool = False


class RedriveAnswer(BaseModel):
    request_id: str
    redriven: int = Field(description="dead letters re-published by this request")
    letters: list[str]
    runs_reopened: list[str] = Field(description="failed runs now running again")


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=UTC)


def _item(x: Letter, prefix: str) -> dict[str, Any]:
    try:
        event = json.loads(x.event_value)
    except ValueError:
        event = None
    return {
        "letter_id": x.letter_id,
        "topic": x.source_topic.removeprefix(prefix),
        "service": x.service,
        "run_id": x.run_id,
        "chunk_id": x.chunk_id,
        "error_type": x.error_type,
        "error": x.error,
        "attempts": x.attempts,
        "first_failed_at": _utc(x.first_failed_at),
        "last_failed_at": _utc(x.last_failed_at),
        "redrive_of": x.redrive_of,
        "redriven": x.redriven_at is not None,
        "redriven_at": _utc(x.redriven_at),
        "event": event,
        "event_base64": base64.b64encode(x.event_value).decode(),
    }


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    summary="Events the pipeline gave up on, newest first: why, how often, whether redriven (analyst)",
)
async def list_dead_letters(
    stores: StoresDep,
    _: Analyst,
    run_id: Annotated[str | None, Query(max_length=64, examples=["20261130T120000Z-1a2b3c4d"])] = None,
    topic: Annotated[str | None, Query(max_length=200, examples=["staged.ready"])] = None,
    limit: Annotated[int, Query(ge=1, le=500, examples=[50])] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,20}$", description="next_cursor", examples=["1042"])
    ] = None,
) -> Any:
    prefix = stores.settings.kafka.topic_prefix
    where, args = listing_filters(run_id, None if topic is None else prefix + topic, _int(cursor))
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            f"SELECT {', '.join(COLUMNS)} FROM dead_letters{where} ORDER BY seq DESC LIMIT %s",
            [*args, limit + 1],
        )
        rows = [Letter.of(r) for r in await cur.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [_item(x, prefix) for x in rows],
        "next_cursor": str(rows[-1].seq) if more else None,
    }


def _int(cursor: str | None) -> int | None:
    return None if cursor is None else int(cursor)


@router.post(
    "/dead-letters/redrive",
    response_model=RedriveAnswer,
    summary="Re-publish dead letters to their topics, each at most once; reopens their failed runs (admin)",
    responses={422: {"description": "not exactly one scope"}},
)
async def redrive(
    settings: SettingsDep,
    who: Admin,
    scope: Annotated[
        RedriveRequest,
        Body(openapi_examples={"run": {"value": {"run_id": "20261130T120000Z-1a2b3c4d"}}}),
    ],
) -> Any:
    try:
        chosen = Scope(
            letter_id=scope.letter_id,
            run_id=scope.run_id,
            topic=None if scope.topic is None else settings.topic(scope.topic),
            all=scope.all,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    done = await asyncio.to_thread(redrive_dead_letters, settings, chosen, f"gateway:{who}")
    return done.as_dict()
