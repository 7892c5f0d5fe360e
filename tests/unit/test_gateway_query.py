"""Gateway filters: cursors round-trip, SQL only binds values, MongoDB filters hold known fields only."""

import asyncio
from datetime import UTC, date, datetime

import pytest
from fastapi import HTTPException

from services.gateway.query import Cursor, TweetQuery, tweet_query, twitter_id_path


def query(**kw: object) -> TweetQuery:
    params: dict[str, object] = {
        "start_date": None,
        "end_date": None,
        "sentiment": None,
        "company": None,
        "hashtag": None,
        "q": None,
        "min_followers": None,
        "sort": "-created_at",
        "limit": 50,
        "cursor": None,
    }
    params.update(kw)
    return asyncio.run(tweet_query(**params))  # type: ignore[arg-type]


def test_a_cursor_round_trips_and_garbage_is_a_clear_422():
    c = Cursor(datetime(2020, 9, 1, 12, 30, tzinfo=UTC), 1_300_000_000_000_000_123)
    assert Cursor.decode(c.encode()) == c
    for bad in ("x", "bm90IGpzb24", Cursor(c.created_at, 1).encode()[:-3]):
        with pytest.raises(HTTPException) as err:
            Cursor.decode(bad)
        assert err.value.status_code == 422


def test_sql_has_placeholders_only_and_end_date_is_inclusive():
    q = query(
        start_date=date(2020, 9, 1),
        end_date=date(2020, 9, 2),
        sentiment="positive",
        company="Apple",
        hashtag="#Apple",
        q="50%_off'; DROP TABLE tweets; --",
        min_followers=10,
    )
    sql, args = q.sql_select(["twitter_id", "text"])
    assert "DROP" not in sql and "Apple" not in sql and "%s" in sql
    assert args[:2] == [datetime(2020, 9, 1), datetime(2020, 9, 3)]
    assert args[2:5] == ["positive", "Apple", "apple"]
    assert args[5:] == [10, "%50!%!_off'; DROP TABLE tweets; --%", 51]
    # a company filter reads the links in the order of their index (migration 004)
    assert sql.startswith("SELECT t.twitter_id, t.text FROM tweet_companies tc JOIN tweets t ON")
    assert "tc.company = %s" in sql and "tc.sentiment = %s" in sql and "tc.created_at >= %s" in sql
    assert sql.endswith(" ORDER BY tc.created_at DESC, tc.twitter_id DESC LIMIT %s")
    # without one, the tweets table alone, sorted by its own columns
    sql, args = query(sentiment="neutral", sort="created_at").sql_select(["twitter_id"])
    assert sql == (
        "SELECT t.twitter_id FROM tweets t WHERE t.sentiment = %s"
        " ORDER BY t.created_at ASC, t.twitter_id ASC LIMIT %s"
    )
    assert args == ["neutral", 51]


def test_the_mongo_filter_is_built_from_known_fields_with_plain_values():
    cursor = Cursor(datetime(2020, 9, 1, tzinfo=UTC), 42)
    f = query(company="Apple", q="$where", sort="created_at", cursor=cursor.encode()).mongo_filter()
    assert f == {
        "$and": [
            {"companies": "Apple"},
            {"text": {"$regex": "\\$where", "$options": "i"}},
            {
                "$or": [
                    {"created_at": {"$gt": cursor.created_at}},
                    {"created_at": cursor.created_at, "_id": {"$gt": "42"}},
                ]
            },
        ]
    }
    assert query().mongo_filter() == {}


def test_an_end_before_the_start_and_a_bad_id_are_refused():
    with pytest.raises(HTTPException):
        query(start_date=date(2020, 9, 2), end_date=date(2020, 9, 1))
    assert twitter_id_path("1307025660663005184") == 1307025660663005184
    for bad in ("0", "12ab", "99999999999999999999", "-1"):
        with pytest.raises(HTTPException):
            twitter_id_path(bad)
