"""List pages on MariaDB read a bounded number of index entries per item, whatever the table's size:
measured with the server's own handler counters, on a database of 20,000 tweets of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncmy
import pytest

from lake.adapters.mysql import connect, migrate
from lake.settings import MySQLSettings, Settings
from services.gateway.query import Cursor, TweetQuery
from services.gateway.tweet_pages import CURATED, STAGING, Layer, QueryTooCostly, page_keys, page_rows

N = 20_000
UNCURATED = 1_000  # the newest tweets are staged but not curated yet
BASE = datetime(2020, 8, 1)
PER_ITEM = 50
COMPANIES = ("Apple", "Tesla", "Nvidia", "Amazon")


def _tweet(i: int) -> tuple[Any, ...]:
    text = "a tweet about chips" + (" and a rareword" if i % 2_000 == 7 else "")
    sentiment = ("positive", "neutral", "negative")[i % 3]
    return (
        10**18 + i,
        BASE + timedelta(minutes=i),
        COMPANIES[i % 4],
        f"user{i}",
        f"User {i}",
        None,
        i * 7_919 % N,  # followers: a permutation of 0 … N-1, so the top ones are spread in time
        10,
        0,
        "#Apple",
        text,
        text,
        "0.1000",
        sentiment,
        "run-pages",
        i // 1_000,
        "raw/key.csv",
        i,
        BASE,
    )


@pytest.fixture(scope="module")
def mysql(settings: Settings) -> Iterator[MySQLSettings]:
    cfg = settings.mysql.model_copy(update={"database": f"{settings.mysql.database}_pages"})
    with connect(cfg, database=False, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{cfg.database}`")
    migrate(cfg)
    rows = [_tweet(i) for i in range(N)]
    with connect(cfg, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO tweets VALUES ({', '.join(['%s'] * len(rows[0]))})", rows)
        cur.execute(
            "INSERT INTO tweet_companies (twitter_id, company, run_id, chunk_id, record_no, created_at,"
            " sentiment) SELECT twitter_id, company, run_id, chunk_id, record_no, created_at, sentiment"
            " FROM tweets"
        )
        cur.execute(
            "INSERT INTO tweet_hashtags (twitter_id, hashtag, created_at, sentiment)"
            " SELECT twitter_id, LOWER(company), created_at, sentiment FROM tweets"
        )
        cur.execute(
            "INSERT INTO curated_tweets (twitter_id, created_at, sentiment, run_id, chunk_id, companies)"
            " SELECT twitter_id, created_at, sentiment, run_id, chunk_id, JSON_ARRAY(company)"
            " FROM tweets WHERE record_no < %s",
            (N - UNCURATED,),
        )
        # a later run's links to Intel: staged for 1 tweet in 500, in the documents (copied at that
        # run's finalisation) for 1 in 1,000 only
        cur.execute(
            "INSERT INTO tweet_companies (twitter_id, company, run_id, chunk_id, record_no, created_at,"
            " sentiment) SELECT twitter_id, 'Intel', 'run-later', 0, record_no, created_at, sentiment"
            " FROM tweets WHERE MOD(record_no, 500) = 0"
        )
        cur.execute(
            "UPDATE curated_tweets SET companies = JSON_ARRAY_APPEND(companies, '$', 'Intel')"
            " WHERE MOD(twitter_id, 1000) = 0"
        )
        cur.execute("UPDATE curated_tweets SET item = CAST(CONCAT('item-', twitter_id) AS BINARY)")
        cur.execute("ANALYZE TABLE tweets, tweet_companies, tweet_hashtags, curated_tweets")
    yield cfg
    with connect(cfg, database=False, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{cfg.database}`")


def q(**kw: Any) -> TweetQuery:
    fields: dict[str, Any] = dict.fromkeys(
        ("start_date", "end_date", "sentiment", "company", "hashtag", "q", "min_followers", "cursor")
    )
    return TweetQuery(**{**fields, "sort": "-created_at", "limit": 10, **kw})


INDEX_READS = (
    "Handler_read_first",
    "Handler_read_key",
    "Handler_read_last",
    "Handler_read_next",
    "Handler_read_prev",
)


@contextlib.asynccontextmanager
async def cursor_of(cfg: MySQLSettings) -> AsyncIterator[Any]:
    """A cursor on a connection of its own (asyncmy, autocommit, as the gateway's pool)."""
    conn = await asyncmy.connect(
        host=cfg.host,
        port=cfg.port,
        user=cfg.user,
        password=cfg.password.get_secret_value(),
        database=cfg.database,
        autocommit=True,
    )
    try:
        async with conn.cursor() as cur:
            yield cur
    finally:
        await conn.ensure_closed()


def measured(
    cfg: MySQLSettings, query: TweetQuery, layer: Layer, items: bool = False
) -> tuple[list[Any] | str, int]:
    """The page's keys (or 'too costly') and the index entries the server read for it (``items``:
    read with their list items, as ``/curated`` reads them)."""

    async def go() -> tuple[list[Any] | str, int]:
        async with cursor_of(cfg) as cur:

            async def reads() -> int:
                await cur.execute("SHOW SESSION STATUS LIKE 'Handler_read%%'")
                return sum(int(v) for k, v in await cur.fetchall() if k in INDEX_READS)

            before = await reads()
            keys: list[Any] | str
            try:
                if items:
                    keys = [(c, t) for c, t, _ in await page_rows(cur, query, layer, PER_ITEM)]
                else:
                    keys = await page_keys(cur, query, layer, PER_ITEM)
            except QueryTooCostly:
                keys = "too costly"
            return keys, await reads() - before

    return asyncio.run(go())


def expected(cfg: MySQLSettings, where: str, limit: int = 11, way: str = "DESC") -> list[int]:
    with connect(cfg) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT twitter_id FROM tweets t WHERE {where}"
            f" ORDER BY created_at {way}, twitter_id {way} LIMIT %s",
            (limit,),
        )
        return [int(r[0]) for r in cur.fetchall()]


def test_a_page_reads_about_its_own_size_not_the_tables(mysql):
    # the curated layer walks the staging indexes (migrations 012, 013), so a curated page also reads
    # the entries of the staged tweets not curated yet ahead of it (here the newest 1,000), each an
    # index entry and a lookup; the staging layer's page reads its own
    for layer, uncurated in ((STAGING, 0), (CURATED, UNCURATED)):
        keys, reads = measured(mysql, q(sort="created_at"), layer)
        assert [k[1] for k in keys] == expected(mysql, "TRUE", way="ASC")
        assert reads <= 3 * 11
        keys, reads = measured(mysql, q(), layer)
        assert [k[1] for k in keys] == expected(mysql, f"record_no < {N - uncurated}")  # curated ones
        assert reads <= 3 * 11 + 2 * uncurated
    keys, reads = measured(mysql, q(company="Tesla", sentiment="neutral", limit=50), STAGING)
    assert [k[1] for k in keys] == expected(mysql, "company = 'Tesla' AND sentiment = 'neutral'", 51)
    assert reads <= 3 * 51
    # a company alone and a hashtag alone, on both layers: each walks its (…, created_at,
    # twitter_id) index (migration 011 dropped the (company, twitter_id) and (hashtag, twitter_id) ones)
    for layer in (STAGING, CURATED):
        curated = "" if layer is STAGING else f" AND record_no < {N - UNCURATED}"
        ahead = 0 if layer is STAGING else UNCURATED // len(COMPANIES)
        keys, reads = measured(mysql, q(company="Nvidia", limit=50), layer)
        assert [k[1] for k in keys] == expected(mysql, f"company = 'Nvidia'{curated}", 51)
        assert reads <= 3 * 51 + 2 * ahead
        keys, reads = measured(mysql, q(hashtag="amazon", sort="created_at", limit=50), layer)
        assert [k[1] for k in keys] == expected(mysql, f"company = 'Amazon'{curated}", 51, "ASC")
        assert reads <= 3 * 51


def test_a_curated_company_page_lists_a_tweet_only_once_its_document_holds_the_company(mysql):
    # staged links to Intel: 1 tweet in 500; in the documents: 1 in 1,000 (and only curated ones)
    keys, _ = measured(mysql, q(company="Intel", limit=50), STAGING)
    assert [k[1] for k in keys] == expected(mysql, "MOD(record_no, 500) = 0", 41)
    keys, _ = measured(mysql, q(company="Intel", limit=50), CURATED)
    assert [k[1] for k in keys] == expected(
        mysql, f"MOD(record_no, 1000) = 0 AND record_no < {N - UNCURATED}", 51
    )
    assert len(keys) == 19  # 0, 1000, …, 18000
    # under a sentiment, and with a hashtag checked per entry, the same documents
    keys, _ = measured(mysql, q(company="Intel", sentiment="neutral", limit=50), CURATED)
    want = f"MOD(record_no, 1000) = 0 AND record_no < {N - UNCURATED} AND sentiment = 'neutral'"
    assert [k[1] for k in keys] == expected(mysql, want, 51)
    keys, _ = measured(mysql, q(company="Intel", hashtag="apple", limit=50), CURATED)
    want = f"MOD(record_no, 1000) = 0 AND record_no < {N - UNCURATED} AND company = 'Apple'"
    assert [k[1] for k in keys] == expected(mysql, want, 51) and keys


def rows_of(cfg: MySQLSettings, query: TweetQuery) -> list[Any]:
    async def go() -> list[Any]:
        async with cursor_of(cfg) as cur:
            return await page_rows(cur, query, CURATED, PER_ITEM)

    return asyncio.run(go())


def test_a_curated_page_reads_its_list_items_with_its_keys(mysql):
    top = N - 300
    for query in (
        q(),  # the catalogue's own walk
        q(sentiment="negative", sort="created_at"),
        q(company="Nvidia", limit=30),  # the staging links, gated: the item of the catalogue row joined
        q(hashtag="tesla", sentiment="neutral"),  # checked in windows
        q(company="Apple", hashtag="apple", q="chips"),  # checked against the staged tweet too
    ):
        rows = rows_of(mysql, query)
        assert [(c, t) for c, t, _ in rows] == measured(mysql, query, CURATED)[0]
        assert rows and all(item == f"item-{t}".encode() for _, t, item in rows), query
    # the followers index's path reads keys only: their items are read by id afterwards
    rows = rows_of(mysql, q(min_followers=top, sentiment="positive"))
    assert len(rows) == 11 and all(item is None for _, _, item in rows)


def walk_plans(cfg: MySQLSettings, query: TweetQuery) -> list[tuple[str, str, str, str]]:
    """(table, access type, key, Extra) of each table in the plans of the statements a curated
    page with its items runs (``EXPLAIN`` of each, on the same connection)."""

    async def go() -> list[tuple[str, str, str, str]]:
        async with cursor_of(cfg) as cur:
            statements: list[tuple[str, Any]] = []

            class Recorded:  # the cursor, recording what it runs
                async def execute(self, sql: str, args: Any = None) -> Any:
                    statements.append((sql, args))
                    return await cur.execute(sql, args)

                async def fetchall(self) -> Any:
                    return await cur.fetchall()

                async def fetchone(self) -> Any:
                    return await cur.fetchone()

            await page_rows(Recorded(), query, CURATED, PER_ITEM)
            plans = []
            for sql, args in statements:
                await cur.execute("EXPLAIN " + sql, args)
                names = [d[0] for d in cur.description]
                for row in await cur.fetchall():
                    r = dict(zip(names, row, strict=True))
                    plans.append((r["table"], r["type"], r["key"], r["Extra"] or ""))
            return plans

    return asyncio.run(go())


def test_a_curated_page_read_with_its_items_is_still_a_range_of_its_index(mysql):
    # With the list items read by the walk itself, an index of (sentiment, created_at, …) no longer
    # covered the walk's columns, and MariaDB then read a sentiment from its newest (or oldest)
    # entry to the page's end date or cursor, every entry between: 30-160 ms a page at 113k rows.
    # The walk reads its keys from the index alone and joins each kept entry's item by primary key.
    at = N // 4
    day, after = (BASE + timedelta(minutes=at)).date(), Cursor(BASE + timedelta(minutes=at), 10**18 + at)
    for query in (
        q(sentiment="neutral", end_date=day),
        q(sentiment="negative", cursor=after),
        q(end_date=day),
        q(sentiment="positive", cursor=Cursor(BASE + timedelta(minutes=3 * at), 0), sort="created_at"),
    ):
        keys, reads = measured(mysql, query, CURATED, items=True)
        assert keys == measured(mysql, query, CURATED)[0] and len(keys) == 11, query
        assert reads <= 3 * 11, (query, reads)
        # whatever the optimizer's statistics (on this table it chose well even before), the walk's
        # table is read from its index alone, and the catalogue row joined by its primary key
        for table, access, key, extra in walk_plans(mysql, query):
            if table == "w":
                assert "Using index" in extra, (query, access, key, extra)
            if table == "c":
                assert (access, key) == ("eq_ref", "PRIMARY"), (query, access, key, extra)


def test_checked_filters_read_at_most_the_bound_per_item(mysql):
    # a hashtag under a company (every Apple tweet carries #apple): dense, read little
    keys, reads = measured(mysql, q(company="Apple", hashtag="apple"), CURATED)
    assert len(keys) == 11 and reads <= 4 * PER_ITEM * 11
    # a word in 1 of 2,000 tweets: refused after the bound, not after reading 20,000 tweets
    keys, reads = measured(mysql, q(q="rareword"), STAGING)
    assert keys == "too costly" and reads <= 3 * PER_ITEM * 11
    # narrowed to one day (1,440 tweets, within the bound of a 30-item page) it is answered, exactly
    day = (BASE + timedelta(minutes=4_007)).date()
    keys, reads = measured(mysql, q(q="rareword", start_date=day, end_date=day, limit=30), STAGING)
    assert [k[1] for k in keys] == [10**18 + 4_007]
    assert reads <= 3 * PER_ITEM * 31
    # a cursor walk goes on where the last page ended
    after = Cursor(BASE + timedelta(minutes=4_007), 10**18 + 4_007)
    keys, _ = measured(mysql, q(start_date=day, end_date=day, cursor=after, limit=2), CURATED)
    assert [k[1] for k in keys] == [10**18 + 4_006, 10**18 + 4_005, 10**18 + 4_004]


def test_a_high_follower_threshold_is_served_by_the_followers_index(mysql):
    # 300 tweets reach it, 1 in 67 of the walk: too sparse for the walk, few enough to read them all
    top = N - 300
    keys, reads = measured(mysql, q(min_followers=top, sentiment="positive"), CURATED)
    curated = f"record_no < {N - UNCURATED}"
    assert [k[1] for k in keys] == expected(
        mysql, f"followers >= {top} AND {curated} AND sentiment = 'positive'"
    )
    assert len(keys) == 11 and reads <= 6 * PER_ITEM * 11


TRICKY = (
    ('quotes " and \\ backslash', "Zoë 😀", "Île-de-France, “FR”"),
    ("tab\tnew line\ncarriage\rnul\x00end", "控制 \u2028 sep", None),
    ("</script><b>&amp;</b> 'single'", "a" * 255, ""),
)


def test_staged_rows_rendered_by_mysql_are_the_apis_values_for_every_kind_of_text(mysql: MySQLSettings):
    """``staged_json`` (MySQL's JSON_OBJECT) gives, once parsed, exactly the values the API
    documents for ``StagedTweet``: escapes, non-ASCII and control characters, NULL, a zero and a
    negative polarity, an id beyond 2^53, the UTC time with ``Z``."""
    import json
    from decimal import Decimal

    from services.gateway.read.tweets import StagedTweet
    from services.gateway.tweet_pages import STAGED_COLUMNS, STAGED_JSON, staged_page

    rows = []
    for i, (text, name, location) in enumerate(TRICKY):
        row = list(_tweet(N + 10 + i))
        row[0] = 9_223_372_036_854_775_000 + i  # beyond 2^53: must stay a string, exact
        row[4], row[5], row[10], row[11] = name, location, text, text.strip()
        row[12] = ("0.0000", "-0.0500", "0.9999")[i]
        row[14] = "run-json"
        rows.append(tuple(row))
    with connect(mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO tweets VALUES ({', '.join(['%s'] * len(rows[0]))})", rows)
        try:
            cur.execute(
                f"SELECT {STAGED_JSON}, {', '.join(f't.{c}' for c in STAGED_COLUMNS)} FROM tweets t"
                " WHERE t.run_id = %s ORDER BY t.twitter_id",
                ("run-json",),
            )
            found = cur.fetchall()
        finally:
            cur.execute("DELETE FROM tweets WHERE run_id = 'run-json'")
    assert len(found) == len(TRICKY)
    for rendered, *values in found:
        want = dict(zip(STAGED_COLUMNS, values, strict=True))
        want["twitter_id"] = str(want["twitter_id"])
        want["created_at"] = want["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert isinstance(want["polarity"], Decimal)
        want["polarity"] = float(want["polarity"])
        got = json.loads(rendered)
        assert got == want and list(got) == list(STAGED_COLUMNS)
        StagedTweet.model_validate_json(rendered)  # the documented model reads it back

    async def page() -> bytes:
        async with cursor_of(mysql) as cur:
            return await staged_page(cur, q(company="Apple", limit=3), PER_ITEM)

    answer = json.loads(asyncio.run(page()))
    assert [i["twitter_id"] for i in answer["items"]] == [
        str(t) for t in expected(mysql, "company = 'Apple'", 3)
    ]
    assert Cursor.decode(answer["next_cursor"]) == Cursor(
        datetime.fromisoformat(answer["items"][-1]["created_at"]), int(answer["items"][-1]["twitter_id"])
    )
