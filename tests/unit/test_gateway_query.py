"""Gateway filters: cursors round-trip, bad input is a clear 422."""

from datetime import UTC, date, datetime

import pytest
from fastapi.exceptions import RequestValidationError

from services.gateway.query import Cursor, InvalidQuery, TweetQuery, parse_tweet_query, twitter_id_path


def query(**kw: object) -> TweetQuery:
    """The query of a request whose parameters are ``kw`` (as strings, as they come)."""
    return parse_tweet_query({k: str(v) for k, v in kw.items() if v is not None})


def test_a_cursor_round_trips_and_garbage_is_a_clear_422():
    c = Cursor(datetime(2020, 9, 1, 12, 30, tzinfo=UTC), 1_300_000_000_000_000_123)
    assert Cursor.decode(c.encode()) == c
    for bad in ("x", "bm90IGpzb24", Cursor(c.created_at, 1).encode()[:-3]):
        with pytest.raises(InvalidQuery, match="cursor: not a cursor this API returned"):
            Cursor.decode(bad)


def test_the_next_cursor_is_the_last_shown_item_and_only_when_another_exists():
    q = query(limit=2)
    keys = [(datetime(2020, 9, 3, 1), 30), (datetime(2020, 9, 2, 1), 20), (datetime(2020, 9, 1), 10)]
    cursor = q.next_cursor(keys)
    assert cursor is not None and Cursor.decode(cursor) == Cursor(datetime(2020, 9, 2, 1, tzinfo=UTC), 20)
    assert q.next_cursor(keys[:2]) is None


def test_an_end_before_the_start_and_a_bad_id_are_refused():
    with pytest.raises(InvalidQuery, match="end_date is before start_date"):
        query(start_date=date(2020, 9, 2), end_date=date(2020, 9, 1))
    assert twitter_id_path("1307025660663005184") == 1307025660663005184
    for bad in ("0", "12ab", "99999999999999999999", "-1"):
        with pytest.raises(InvalidQuery, match="twitter_id: 1 to 19 digits"):
            twitter_id_path(bad)


def test_parameters_are_validated_in_one_go_and_named_in_the_error():
    q = query(start_date="2020-09-01", sentiment="positive", company="Apple", limit="7", hashtag="#IPhone12")
    assert (q.start_date, q.sentiment, q.company, q.limit, q.hashtag) == (
        date(2020, 9, 1),
        "positive",
        "Apple",
        7,
        "iphone12",
    )
    assert (q.sort, q.end_date, q.cursor) == ("-created_at", None, None)
    assert query(unknown="x").limit == 50  # unknown parameters are ignored, as FastAPI ignores them
    with pytest.raises(RequestValidationError) as err:
        query(limit="0", sentiment="happy", company="")
    assert {e["loc"] for e in err.value.errors()} == {
        ("query", "limit"),
        ("query", "sentiment"),
        ("query", "company"),
    }
