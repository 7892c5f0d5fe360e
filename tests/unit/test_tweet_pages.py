"""The list planner: which index drives a page, what it answers by itself, and that SQL only binds
values (the bounded reads themselves are measured on MariaDB in tests/integration)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.gateway.query import Cursor
from services.gateway.tweet_pages import CURATED, STAGING, plan
from tests.unit.test_gateway_query import query


def render(sql: str, args: list[object]) -> str:
    """The statement with its arguments in place, to check each lands on its placeholder."""
    parts = sql.split("%s")
    assert len(parts) == len(args) + 1
    shown = [p + repr(a) for p, a in zip(parts, args, strict=False)]
    return "".join(shown) + parts[-1]


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
    p = plan(q, STAGING)
    sql, args = p.window(None, 102)
    assert "DROP" not in sql and "Apple" not in sql and "%s" in sql
    # the company links drive, by company and sentiment, over the day range (end_date inclusive)
    assert p.table == "tweet_companies"
    assert p.served_args == ("Apple", "positive", datetime(2020, 9, 1), datetime(2020, 9, 3))
    # the rest is checked on the walked entries
    assert p.check_args == ("apple", 10, "%50!%!_off'; DROP TABLE tweets; --%")
    assert args == [*p.check_args, *p.served_args, 102]  # in the order of the placeholders
    assert "FROM tweet_companies w WHERE w.company = %s AND w.sentiment = %s" in sql
    assert "ORDER BY w.created_at DESC, w.twitter_id DESC LIMIT %s) w JOIN tweets t" in sql
    shown = render(sql, args)
    for each in ("h.hashtag = 'apple'", "t.followers >= 10", "w.company = 'Apple'", "LIMIT 102) w"):
        assert each in shown


def test_each_filter_is_answered_by_the_index_that_can():
    # no filter, or a sentiment: the staged tweets, and the walk alone is the page; on the curated
    # layer kept to the catalogued tweets as their documents hold them (migration 013), the list
    # item read from the catalogue row joined
    p = plan(query(), CURATED)
    assert (p.table, p.checks, p.item) == ("tweets", "", "c.item")
    assert (
        p.gate
        == " STRAIGHT_JOIN curated_tweets c ON c.twitter_id = w.twitter_id AND c.created_at = w.created_at"
    )
    assert plan(query(sentiment="neutral"), CURATED).gate == p.gate + " AND c.sentiment = w.sentiment"
    assert (plan(query(), STAGING).gate, plan(query(), STAGING).item) == ("", "")
    p = plan(query(sentiment="neutral", sort="created_at"), STAGING)
    assert p.table == "tweets" and p.served == ("w.sentiment = %s",) and p.checks == ""
    sql, args = p.walk(None, 51)
    assert sql == (
        "SELECT w.twitter_id, w.created_at FROM tweets w WHERE w.sentiment = %s"
        " ORDER BY w.created_at ASC, w.twitter_id ASC LIMIT %s"
    )
    assert args == ["neutral", 51]
    # a hashtag: its links in time order; a sentiment is then a check (that index holds none)
    p = plan(query(hashtag="iphone12", sentiment="negative"), CURATED)
    assert p.table == "tweet_hashtags" and p.checks == "w.sentiment = %s" and not p.needs_tweet
    # on the curated layer, the staging links kept to the catalogued tweets (migration 012), whose
    # documents have the sentiment asked for
    sql, _ = p.walk(None, 11)
    gate = "STRAIGHT_JOIN curated_tweets c ON c.twitter_id = w.twitter_id AND c.sentiment = w.sentiment"
    assert f"FROM tweet_hashtags w {gate} WHERE" in sql
    assert plan(query(hashtag="iphone12"), STAGING).gate == ""
    # a hashtag under a company: the company drives, the hashtag is looked up per entry; a curated
    # company entry is kept only when the document holds the company
    p = plan(query(hashtag="iphone12", company="Apple"), CURATED)
    assert p.table == "tweet_companies" and "FROM tweet_hashtags h" in p.checks
    assert p.gate.endswith("AND JSON_CONTAINS(c.companies, JSON_QUOTE(w.company))")
    # min_followers and q need the staged tweet
    assert plan(query(q="battery"), CURATED).needs_tweet


def test_the_cursor_continues_after_the_last_item_in_the_sort_direction():
    at = datetime(2020, 9, 1, 12, tzinfo=UTC)
    for sort, op in (("-created_at", "<"), ("created_at", ">")):
        q = query(sort=sort, cursor=Cursor(at, 42).encode())
        sql, args = plan(q, STAGING).walk((at, 42), 11)
        assert f"(w.created_at {op} %s OR (w.created_at = %s AND w.twitter_id {op} %s))" in sql
        assert args == [at.replace(tzinfo=None), at.replace(tzinfo=None), 42, 11]


def test_high_follower_thresholds_read_the_followers_index_with_every_filter_inside():
    q = query(min_followers=1_000_000, company="Apple", q="chip")
    sql, args = plan(q, CURATED).by_followers(1_000_000, None, 11)
    assert sql.startswith(
        "SELECT t.twitter_id, t.created_at FROM tweets t FORCE INDEX (ix_tweets_followers)"
        " WHERE t.followers >= %s AND EXISTS (SELECT 1 FROM tweet_companies w STRAIGHT_JOIN"
        " curated_tweets c ON c.twitter_id = w.twitter_id AND JSON_CONTAINS(c.companies,"
        " JSON_QUOTE(w.company)) WHERE"
        " w.twitter_id = t.twitter_id AND w.company = %s AND t.followers >= %s AND t.text LIKE %s"
    )
    assert args == [1_000_000, "Apple", 1_000_000, "%chip%", 11]
    assert render(sql, args).endswith(
        "t.text LIKE '%chip%' ESCAPE '!') ORDER BY t.created_at DESC, t.twitter_id DESC LIMIT 11"
    )
