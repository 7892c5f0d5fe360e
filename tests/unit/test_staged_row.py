"""The staged row is defined once (``lake.schema.STAGED_ROW``): every other spelling of it derives
from that definition or is checked against it here (the migration's table: tests/integration)."""

from __future__ import annotations

import io
import types
from datetime import UTC, datetime
from typing import Any, get_args

import polars as pl

from lake.adapters.staging_repo import TWEET_COLUMNS, StagingRepository, _esc, write_tsv
from lake.schema import STAGED_API_COLUMNS, STAGED_COLUMNS, STAGED_ROW
from lake.transform.stage import STAGED_SCHEMA, staged_frame
from services.gateway.read.tweets import StagedTweet

API_TYPE_OF_KIND: dict[str, Any] = {
    "id": str,  # ids exceed 2^53: a decimal string
    "time": datetime,
    "text": str,
    "text?": str | None,
    "count": int,
    "int": int,
    "polarity": float,
}


def test_the_derived_column_lists_follow_the_definition():
    assert TWEET_COLUMNS == STAGED_COLUMNS == tuple(n for n, _ in STAGED_ROW)
    assert tuple(n for n, k in STAGED_ROW if k != "stamp") == STAGED_API_COLUMNS
    assert tuple(STAGED_SCHEMA) == STAGED_API_COLUMNS


def test_the_apis_staged_tweet_has_the_rows_columns_in_order_with_their_types():
    fields = StagedTweet.model_fields
    assert tuple(fields) == STAGED_API_COLUMNS
    kinds = dict(STAGED_ROW)
    for name, field in fields.items():
        want = API_TYPE_OF_KIND[kinds[name]]
        if isinstance(want, types.UnionType):
            assert set(get_args(field.annotation)) == set(get_args(want)), name
        else:
            assert field.annotation is want, name


NASTY = "a\\b\tc\nd\re\x00f \\N 😀 $1"  # every character LOAD DATA's escapes name, and more


def test_the_loaded_line_puts_each_value_in_its_column(monkeypatch):
    """``_load_tweets`` hands ``_load`` a frame that ``write_tsv`` writes column by column: each
    value lands under the column of the same name, escaped as ``_esc`` escapes it by hand."""
    captured: dict[str, Any] = {}

    def load(cur: Any, table: str, columns: Any, lines: pl.DataFrame, chunk_id: int, run_id: str) -> None:
        out = io.BytesIO()
        write_tsv(lines, out)
        captured.update(table=table, columns=columns, lines=out.getvalue().decode().split("\n")[:-1])

    monkeypatch.setattr(StagingRepository, "_load", staticmethod(load))
    row = {
        "twitter_id": 1307025660663005184,
        "created_at": datetime(2020, 9, 18, 18, 0, 5, tzinfo=UTC),
        "company": "Apple",
        "screenname": "bob",
        "username": "Bob",
        "location": None,
        "followers": 11,
        "friends": 12,
        "retweet_count": 13,
        "search_query": "#Apple",
        "text": NASTY,
        "clean_text": "I love my iPhone",
        "polarity": -0.05,
        "sentiment": "negative",
        "record_no": 14,
    }
    repo = StagingRepository.__new__(StagingRepository)
    repo._load_tweets(None, staged_frame([row]), "run-1", 15, "raw/key.csv", datetime(2020, 9, 19, 1, 2, 3))
    assert captured["table"] == "tweets" and tuple(captured["columns"]) == STAGED_COLUMNS
    [line] = captured["lines"]
    values = dict(zip(STAGED_COLUMNS, line.rstrip("\n").split("\t"), strict=True))
    assert values == {
        "twitter_id": "1307025660663005184",
        "created_at": "2020-09-18 18:00:05",
        "company": "Apple",
        "screenname": "bob",
        "username": "Bob",
        "location": "\\N",
        "followers": "11",
        "friends": "12",
        "retweet_count": "13",
        "search_query": "#Apple",
        "text": _esc(NASTY),
        "clean_text": "I love my iPhone",
        "polarity": "-0.0500",
        "sentiment": "negative",
        "run_id": "run-1",
        "chunk_id": "15",
        "raw_key": "raw/key.csv",
        "record_no": "14",
        "staged_at": "2020-09-19 01:02:03.000",
    }
