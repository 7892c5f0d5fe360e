"""Filters, sorting and cursors shared by ``/staging`` and ``/curated``, validated once
(``tweet_pages`` turns them into SQL with bound parameters only)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from lake.schema import SENTIMENTS

MAX_LIMIT = 1000
COMPANY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.&-]{0,63}$"
HASHTAG_PATTERN = r"^#?\w{1,100}$"
Sort = Literal["-created_at", "created_at"]
# what a cursor looks like: after the tweet 1305560412345678848 of 2020-09-14 12:30:00 UTC
CURSOR_EXAMPLE = "eyJ0IjogIjIwMjAtMDktMTRUMTI6MzA6MDArMDA6MDAiLCAiaSI6ICIxMzA1NTYwNDEyMzQ1Njc4ODQ4In0"
FIRST_DAY, LAST_DAY = date(2006, 3, 21), date(2999, 12, 30)  # Twitter's first day; before overflow


class InvalidQuery(ValueError):
    """A query parameter the API cannot use (its message says which and why): 422
    ``invalid_request`` (``errors.install``)."""


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the last item's ``created_at`` and ``twitter_id``."""

    created_at: datetime
    twitter_id: int

    def encode(self) -> str:
        raw = json.dumps({"t": self.created_at.isoformat(), "i": str(self.twitter_id)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            created = datetime.fromisoformat(data["t"])
            created = created if created.tzinfo else created.replace(tzinfo=UTC)
            return Cursor(created.astimezone(UTC), int(data["i"]))
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidQuery("cursor: not a cursor this API returned") from exc


@dataclass(frozen=True)
class TweetQuery:
    start_date: date | None
    end_date: date | None
    sentiment: str | None
    company: str | None
    hashtag: str | None
    q: str | None
    min_followers: int | None
    sort: Sort
    limit: int
    cursor: Cursor | None

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def start(self) -> datetime | None:
        return None if self.start_date is None else datetime.combine(self.start_date, time(), UTC)

    @property
    def end_exclusive(self) -> datetime | None:
        """The day after ``end_date`` at midnight: ``end_date`` is inclusive."""
        if self.end_date is None:
            return None
        return datetime.combine(self.end_date + timedelta(days=1), time(), UTC)

    @property
    def after(self) -> tuple[datetime, int] | None:
        """The (created_at, twitter_id) the page starts after: the cursor's, if any."""
        return None if self.cursor is None else (self.cursor.created_at, self.cursor.twitter_id)

    def next_cursor(self, keys: Sequence[tuple[datetime, int]]) -> str | None:
        """The cursor after the page's last item, from up to ``limit + 1`` (created_at, twitter_id)
        keys: ``None`` when no further item exists."""
        if len(keys) <= self.limit:
            return None
        created_at, twitter_id = keys[self.limit - 1]
        at = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
        return Cursor(at, twitter_id).encode()

    def page(self, fetched: list[dict[str, Any]]) -> dict[str, Any]:
        """A list answer from up to ``limit + 1`` fetched items: the extra one only says that
        another page exists, whose cursor is the last shown item."""
        items = fetched[: self.limit]
        next_cursor = None
        if len(fetched) > self.limit:
            last = items[-1]
            next_cursor = Cursor(last["created_at"], int(last["twitter_id"])).encode()
        return {"items": items, "next_cursor": next_cursor}


class TweetFilters(BaseModel):
    """The list routes' query parameters, validated in one call (``tweet_query``). FastAPI's own
    parameter solving cost ≈ 230 µs per request for these ten; one model validation ≈ 80 µs
    (docs/benchmarks.md). Unknown parameters are ignored, as FastAPI ignores them."""

    start_date: date | None = Field(
        None, description="first day, inclusive (YYYY-MM-DD, UTC)", examples=["2020-09-14"]
    )
    end_date: date | None = Field(
        None, description="last day, inclusive (YYYY-MM-DD, UTC)", examples=["2020-09-20"]
    )
    sentiment: Literal["positive", "neutral", "negative"] | None = Field(
        None, description="sentiment label", examples=["positive"]
    )
    company: str | None = Field(
        None,
        pattern=COMPANY_PATTERN,
        description="any company the tweet was collected for",
        examples=["Apple"],
    )
    hashtag: str | None = Field(
        None, pattern=HASHTAG_PATTERN, description="a hashtag, with or without #", examples=["iphone12"]
    )
    q: str | None = Field(
        None,
        min_length=2,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="text contains (case-insensitive; no control characters)",
        examples=["battery"],
    )
    min_followers: int | None = Field(
        None, ge=0, le=2**32 - 1, description="author followers ≥", examples=[1000]
    )
    sort: Sort = Field(
        "-created_at", description="by creation time; `-` for newest first", examples=["-created_at"]
    )
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}", examples=[50])
    cursor: str | None = Field(
        None, max_length=200, description="`next_cursor` of the previous page", examples=[CURSOR_EXAMPLE]
    )


def parse_tweet_query(params: Mapping[str, str]) -> TweetQuery:
    """A validated query from the request's parameters (the last value of a repeated one, as
    FastAPI takes it); invalid ones raise ``RequestValidationError``, answered 422 like any other."""
    try:
        f = TweetFilters.model_validate(params)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    for name, day in (("start_date", f.start_date), ("end_date", f.end_date)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidQuery(f"{name}: between {FIRST_DAY} and {LAST_DAY}")
    if f.start_date and f.end_date and f.end_date < f.start_date:
        raise InvalidQuery("end_date is before start_date")
    assert f.sentiment is None or f.sentiment in SENTIMENTS
    return TweetQuery(
        f.start_date,
        f.end_date,
        f.sentiment,
        f.company,
        None if f.hashtag is None else f.hashtag.removeprefix("#").lower(),
        f.q,
        f.min_followers,
        f.sort,
        f.limit,
        None if f.cursor is None else Cursor.decode(f.cursor),
    )


async def tweet_query(request: Request) -> TweetQuery:  # async: a sync one would run in a thread
    return parse_tweet_query(request.query_params)


def _openapi_parameters() -> list[dict[str, Any]]:
    """``TweetFilters`` as OpenAPI query parameters, the way FastAPI would list them (the routes
    add them with ``openapi_extra``, since ``tweet_query`` reads the request itself)."""
    schema = TweetFilters.model_json_schema(ref_template="#/components/schemas/{model}")
    out = []
    for name, prop in schema["properties"].items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out


def tweet_query_openapi() -> dict[str, Any]:
    """The list routes' ``openapi_extra``: their query parameters (a fresh copy per route)."""
    return {"parameters": _openapi_parameters()}


TweetQueryDep = Annotated[TweetQuery, Depends(tweet_query)]


def twitter_id_path(twitter_id: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", twitter_id) or not 1 <= int(twitter_id) <= 2**63 - 1:
        raise InvalidQuery("twitter_id: 1 to 19 digits")
    return int(twitter_id)
