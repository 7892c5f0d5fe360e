"""Filters, sorting and cursors shared by ``/staging`` and ``/curated``, validated once
(``tweet_pages`` turns them into SQL with bound parameters only)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query

from lake.schema import SENTIMENTS

MAX_LIMIT = 1000
COMPANY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.&-]{0,63}$"
HASHTAG_PATTERN = r"^#?\w{1,100}$"
Sort = Literal["-created_at", "created_at"]
# what a cursor looks like: after the tweet 1305560412345678848 of 2020-09-14 12:30:00 UTC
CURSOR_EXAMPLE = "eyJ0IjogIjIwMjAtMDktMTRUMTI6MzA6MDArMDA6MDAiLCAiaSI6ICIxMzA1NTYwNDEyMzQ1Njc4ODQ4In0"
FIRST_DAY, LAST_DAY = date(2006, 3, 21), date(2999, 12, 30)  # Twitter's first day; before overflow


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
            raise HTTPException(422, "cursor: not a cursor this API returned") from exc


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


async def tweet_query(  # async: a sync dependency would run in a worker thread
    start_date: Annotated[
        date | None, Query(description="first day, inclusive (YYYY-MM-DD, UTC)", examples=["2020-09-14"])
    ] = None,
    end_date: Annotated[
        date | None, Query(description="last day, inclusive (YYYY-MM-DD, UTC)", examples=["2020-09-20"])
    ] = None,
    sentiment: Annotated[
        Literal["positive", "neutral", "negative"] | None,
        Query(description="sentiment label", examples=["positive"]),
    ] = None,
    company: Annotated[
        str | None,
        Query(
            pattern=COMPANY_PATTERN, description="any company the tweet was collected for", examples=["Apple"]
        ),
    ] = None,
    hashtag: Annotated[
        str | None,
        Query(pattern=HASHTAG_PATTERN, description="a hashtag, with or without #", examples=["iphone12"]),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=100,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="text contains (case-insensitive; no control characters)",
            examples=["battery"],
        ),
    ] = None,
    min_followers: Annotated[
        int | None, Query(ge=0, le=2**32 - 1, description="author followers ≥", examples=[1000])
    ] = None,
    sort: Annotated[
        Sort, Query(description="by creation time; `-` for newest first", examples=["-created_at"])
    ] = "-created_at",
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}", examples=[50])
    ] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="`next_cursor` of the previous page", examples=[CURSOR_EXAMPLE]),
    ] = None,
) -> TweetQuery:
    for name, day in (("start_date", start_date), ("end_date", end_date)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise HTTPException(422, f"{name}: between {FIRST_DAY} and {LAST_DAY}")
    if start_date and end_date and end_date < start_date:
        raise HTTPException(422, "end_date is before start_date")
    assert sentiment is None or sentiment in SENTIMENTS
    return TweetQuery(
        start_date,
        end_date,
        sentiment,
        company,
        None if hashtag is None else hashtag.removeprefix("#").lower(),
        q,
        min_followers,
        sort,
        limit,
        None if cursor is None else Cursor.decode(cursor),
    )


def twitter_id_path(twitter_id: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", twitter_id) or not 1 <= int(twitter_id) <= 2**63 - 1:
        raise HTTPException(422, "twitter_id: 1 to 19 digits")
    return int(twitter_id)
