"""The raw CSV schema of the Kaggle dataset, the staged row, and the limits a staged record must
respect."""

from __future__ import annotations

RAW_COLUMNS: tuple[str, ...] = (
    "created_at",
    "file_name",
    "followers",
    "friends",
    "group_name",
    "location",
    "retweet_count",
    "screenname",
    "search_query",
    "text",
    "twitter_id",
    "username",
    "polarity",
    "partition_0",
    "partition_1",
)

COMPANIES: tuple[str, ...] = (
    "Nvidia",
    "Apple",
    "Google",
    "Microsoft",
    "Amazon",
    "Tesla",
    "Twitch",
    "Youtube",
    "Netflix",
    "AMD",
)

SEARCH_QUERIES: dict[str, str] = {
    "Nvidia": "#Nvidia",
    "Apple": "#Apple OR #Iphone",
    "Google": "#Google",
    "Microsoft": "#Microsoft",
    "Amazon": "#Amazon OR #AWS",
    "Tesla": "#Tesla",
    "Twitch": "#Twitch",
    "Youtube": "#Youtube",
    "Netflix": "#Netflix",
    "AMD": "#AMD",
}

# Field size limits (characters). A record over a limit is quarantined, never truncated silently.
MAX_LEN: dict[str, int] = {
    "text": 4000,
    "location": 255,
    "screenname": 255,
    "username": 255,
    "search_query": 255,
    "group_name": 64,
    "file_name": 64,
    "partition_0": 64,
    "partition_1": 64,
}

TWITTER_ID_MIN = 1
TWITTER_ID_MAX = 2**63 - 1  # BIGINT; ids are 19 digits today
COUNT_MAX = 2**32 - 1  # INT UNSIGNED

# VADER's documented thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
SENTIMENTS = ("positive", "neutral", "negative")


# The staged row: the ``tweets`` table's columns in order, each with its kind. Defined here once:
# the staging repository's column list (``TWEET_COLUMNS``), the stager's Parquet schema
# (``STAGED_SCHEMA``) and the API's staged tweet (``STAGED_API_COLUMNS``, ``StagedTweet``) derive
# from it; tests check the migration's table and the API model against it. Kinds: ``id`` (BIGINT
# UNSIGNED, a decimal string in the API), ``time`` (DATETIME, UTC), ``text``, ``text?`` (nullable),
# ``count`` (INT UNSIGNED), ``int``, ``polarity`` (DECIMAL(5,4)), ``stamp`` (load time, not shown).
STAGED_ROW: tuple[tuple[str, str], ...] = (
    ("twitter_id", "id"),
    ("created_at", "time"),
    ("company", "text"),
    ("screenname", "text"),
    ("username", "text"),
    ("location", "text?"),
    ("followers", "count"),
    ("friends", "count"),
    ("retweet_count", "count"),
    ("search_query", "text"),
    ("text", "text"),
    ("clean_text", "text"),
    ("polarity", "polarity"),
    ("sentiment", "text"),
    ("run_id", "text"),
    ("chunk_id", "int"),
    ("raw_key", "text"),
    ("record_no", "int"),
    ("staged_at", "stamp"),
)
STAGED_COLUMNS: tuple[str, ...] = tuple(name for name, _ in STAGED_ROW)
STAGED_API_COLUMNS: tuple[str, ...] = tuple(name for name, kind in STAGED_ROW if kind != "stamp")
