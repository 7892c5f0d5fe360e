"""A chunk's records → staged rows, links and rejects; a staged row → a curated document."""

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from lake.schema import RAW_COLUMNS
from lake.transform.enrich import curated_document, emoji_of, engagement_score, time_features
from lake.transform.stage import stage_records

LINEAGE = {"run_id": "r1", "chunk_id": 4, "raw_key": "runs/r1/x.csv"}


def line(tid: str, company: str = "Apple", text: str = "hi #Apple", polarity: str = "0.1") -> list[str]:
    return [
        "2020-07-12 10:00:00",
        company,
        "1",
        "2",
        company,
        "",
        "0",
        "s",
        f"#{company}",
        text,
        tid,
        "u",
        polarity,
        "Technology",
        company,
    ]


def encode(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def test_first_occurrence_wins_and_every_valid_record_links_its_company():
    data = encode([line("11"), line("12"), line("11", "Google"), line("x"), line("11")])
    out = stage_records(data, list(RAW_COLUMNS), first_record=101, lineage=LINEAGE)
    assert out.records == 5
    assert [r["twitter_id"] for r in out.rows] == [11, 12]
    assert out.rows[0]["record_no"] == 101 and out.rows[0]["run_id"] == "r1" and out.rows[0]["chunk_id"] == 4
    assert out.links == [(11, "Apple", 101), (12, "Apple", 102), (11, "Google", 103), (11, "Apple", 105)]
    assert out.rejects == [(104, "invalid_twitter_id", "twitter_id", "x")]
    assert out.hashtags[11] == ["apple"]


def test_an_unparseable_record_is_quarantined_not_lost():
    data = encode([line("11")]) + b'a,"b\x00c",d\n' + encode([line("12")])
    out = stage_records(data, list(RAW_COLUMNS), first_record=1, lineage=LINEAGE)
    assert out.records == 3
    assert [r[0] for r in out.rejects] == [2]


def test_engagement_is_documented_formula_on_unscaled_counts():
    assert engagement_score(0, 0, 0) == 0
    assert engagement_score(1000, 10, 3) > engagement_score(1000, 10, 0) > engagement_score(10, 10, 0)


def test_time_features_read_naive_times_as_utc():
    f = time_features(datetime(2020, 7, 12, 23, 5))  # a Sunday
    assert f == {
        "date": "2020-07-12",
        "year": 2020,
        "month": 7,
        "day_of_week": 7,
        "day_name": "Sunday",
        "hour": 23,
        "is_weekend": True,
    }


def test_time_features_are_the_calendar_of_the_time_in_its_own_zone_at_every_hour():
    """Computed once per hour (cached): every hour of two years, a minute into it, in UTC and at
    UTC-7, equal the calendar read off the time itself; a caller may change its copy."""
    start = datetime(2020, 1, 1, 0, 1, tzinfo=UTC)
    for h in range(2 * 366 * 24):
        for ts in (
            start + timedelta(hours=h),
            (start + timedelta(hours=h)).astimezone(timezone(timedelta(hours=-7))),
        ):
            assert time_features(ts) == {
                "date": ts.date().isoformat(),
                "year": ts.year,
                "month": ts.month,
                "day_of_week": ts.isoweekday(),
                "day_name": ts.strftime("%A"),
                "hour": ts.hour,
                "is_weekend": ts.isoweekday() >= 6,
            }
    time_features(start)["hour"] = 99
    assert time_features(start)["hour"] == 0


def staged_row(**kw: Any) -> dict[str, Any]:
    """A staged row as the curator reads it, with ``kw`` replacing its fields."""
    row = {
        "twitter_id": 1282000000000000001,
        "created_at": datetime(2020, 7, 13, 9, tzinfo=UTC),
        "company": "Apple",
        "screenname": "s",
        "username": "u",
        "location": None,
        "followers": 5,
        "friends": 1,
        "retweet_count": 2,
        "text": "#Apple rocks 🔥 @bob https://t.co/x",
        "clean_text": "Apple rocks fire @user",
        "polarity": 0.4,
        "sentiment": "positive",
        "record_no": 7,
        **LINEAGE,
    }
    return {**row, **kw}


def test_curated_document_has_string_id_copy_tokens_and_lineage():
    doc = curated_document(
        staged_row(),
        [101, 6207, 102],
        ["Apple", "Google"],
        {"tokenizer": "bert-base-uncased", "vocab_sha256": "abc"},
    )
    assert doc["_id"] == "1282000000000000001" and doc["twitter_id"] == "1282000000000000001"
    assert doc["hashtags"] == ["apple"] and doc["mentions"] == ["bob"] and doc["urls"] == ["https://t.co/x"]
    assert doc["emoji"] == ["🔥"] and doc["is_weekend"] is False and doc["companies"] == ["Apple", "Google"]
    assert doc["tokens"] == {
        "ids": [101, 6207, 102],
        "count": 3,
        "tokenizer": "bert-base-uncased",
        "vocab_sha256": "abc",
    }
    assert doc["lineage"] == {"run_id": "r1", "chunk_id": 4, "raw_key": "runs/r1/x.csv", "record_no": 7}


def test_emoji_of_ascii_text_is_empty():
    assert emoji_of("plain") == [] and emoji_of("a 😀 b 😀") == ["😀"]


def test_emoji_of_finds_sequences_like_the_emoji_library():
    import emoji

    from tests.unit.test_clean import TRICKY_EMOJI

    for text in TRICKY_EMOJI:
        assert emoji_of(text) == list(dict.fromkeys(e["emoji"] for e in emoji.emoji_list(text))), text
