"""Curated documents: a staged row plus entities, time features, engagement and BERT tokens."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import emoji

from lake.transform.clean import emoji_runs, hashtags_of, mentions_of, urls_of


def engagement_score(followers: int, friends: int, retweet_count: int) -> float:
    """``log1p(retweets) * 2 + log1p(followers) + 0.5 * log1p(friends)``, on unscaled counts.

    Retweets weigh most (they are the engagement), audience size counts on a log scale so that one
    celebrity does not dwarf everyone else, and following others counts a little. Rounded to 4 places.
    """
    return round(2 * math.log1p(retweet_count) + math.log1p(followers) + 0.5 * math.log1p(friends), 4)


def emoji_of(text: str) -> list[str]:
    """Distinct emoji in order of appearance (the library looks only at runs of emoji characters)."""
    return list(dict.fromkeys(e for run in emoji_runs(text) for e in _emoji_in_run(run)))


@lru_cache(maxsize=1 << 14)
def _emoji_in_run(run: str) -> tuple[str, ...]:
    """The emoji of one run, as the library finds them. Its tokenizer is Python (≈ 60 µs a run,
    10 % of the curator's CPU in a profile), and runs repeat: the same few emoji make most of them."""
    return tuple(e["emoji"] for e in emoji.emoji_list(run))


# The entities a curated document shows, each a pure function of its text, in the document's order:
# the curator computes them for its batches (``curate.curate_batch``) and the gateway for what it
# renders from the store, which does not keep them (docs/pipeline.md, "The stored curated document")
ENTITIES: dict[str, Callable[[str], list[str]]] = {
    "hashtags": hashtags_of,
    "mentions": mentions_of,
    "urls": urls_of,
    "emoji": emoji_of,
}


def entities_of(text: str) -> dict[str, list[str]]:
    return {name: entity(text) for name, entity in ENTITIES.items()}


def time_features(created_at: datetime) -> dict[str, Any]:
    """Calendar features of the tweet's time (naive times are UTC); they depend on its hour only,
    so each hour's are computed once (the curator and the gateway derive them for every document)."""
    ts = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return dict(_hour_features(ts.year, ts.month, ts.day, ts.hour))


@lru_cache(maxsize=1 << 14)  # ~680 days of hours
def _hour_features(year: int, month: int, day: int, hour: int) -> tuple[tuple[str, Any], ...]:
    ts = datetime(year, month, day, hour)
    return (
        ("date", ts.strftime("%Y-%m-%d")),
        ("year", year),
        ("month", month),
        ("day_of_week", ts.isoweekday()),  # 1 = Monday … 7 = Sunday
        ("day_name", ts.strftime("%A")),
        ("hour", hour),
        ("is_weekend", ts.isoweekday() >= 6),
    )


def curated_document(
    row: dict[str, Any],
    token_ids: list[int],
    companies: list[str],
    tokenizer: dict[str, Any],
) -> dict[str, Any]:
    """One MongoDB document per tweet; ``_id`` is the twitter_id as a decimal string.

    A string, like Twitter's own ``id_str``: 19-digit ids exceed 2^53, so JSON clients would round
    a number, and FerretDB's SQLite backend looks ``_id`` up by index only for strings and ObjectIds
    (an int64 ``_id`` makes every lookup and replay a collection scan)."""
    text = row["text"]
    created_at: datetime = row["created_at"]
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return {
        "_id": str(row["twitter_id"]),
        "twitter_id": str(row["twitter_id"]),
        "created_at": created_at,
        **time_features(created_at),
        "company": row["company"],
        "companies": companies,
        "screenname": row["screenname"],
        "username": row["username"],
        "location": row["location"],
        "followers": row["followers"],
        "friends": row["friends"],
        "retweet_count": row["retweet_count"],
        "text": text,
        "clean_text": row["clean_text"],
        **entities_of(text),
        "polarity": row["polarity"],
        "sentiment": row["sentiment"],
        "engagement": engagement_score(row["followers"], row["friends"], row["retweet_count"]),
        "tokens": {"ids": token_ids, "count": len(token_ids), **tokenizer},
        "lineage": {
            "run_id": row["run_id"],
            "chunk_id": row["chunk_id"],
            "raw_key": row["raw_key"],
            "record_no": row["record_no"],
        },
    }
