"""Validate one raw record and clean it into a staged row, or say precisely why it is rejected.

Rules (documented in docs/pipeline.md, "Cleaning rules"):
- the record has exactly the header's number of fields; every field is valid UTF-8;
- ``twitter_id``: digits only, 1 … 2^63-1; ``created_at``: ``YYYY-MM-DD HH:MM:SS``, read as UTC;
- ``followers``, ``friends``, ``retweet_count``: non-negative integers below 2^32;
- ``polarity``: a finite number in [-1, 1]; ``text``: not blank; each field within ``MAX_LEN``;
- ``location`` may be empty: it becomes NULL, the row stays.

Two rules are settings (:class:`Rules`, ``LAKE_SENTIMENT_*`` and ``LAKE_MIN_CLEAN_TEXT_CHARS``):
the sentiment thresholds on the polarity, and the shortest clean text a tweet may have. A run
staged under other values can be replayed from stage (``POST /runs/{id}/replay``).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import emoji

from lake.schema import (
    COUNT_MAX,
    MAX_LEN,
    NEGATIVE_THRESHOLD,
    POSITIVE_THRESHOLD,
    RAW_COLUMNS,
    TWITTER_ID_MAX,
    TWITTER_ID_MIN,
)

URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# A mention is "@" + up to 30 word characters, not after a word character or "@"; a hashtag is "#" +
# word characters with a letter, not after a word character, "#" or "&" (``&#39;``). Each pattern
# starts with its literal sign and checks the character before it with a look-behind that includes
# the sign: the same matches as a look-behind first, but the engine jumps from sign to sign instead
# of trying the look-behind at every position (2-5x faster; tests/unit/test_clean.py compares them).
MENTION_RE = re.compile(r"@(?<![\w@]@)(\w{1,30})")
HASHTAG_RE = re.compile(r"#(?<![\w#&]#)(\w*[^\W\d_]\w*)")
HASH_SIGN_RE = re.compile(r"#(?<![\w#&]#)(?=\w*[^\W\d_])")  # the "#" of a hashtag
CREATED_AT_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_VALUE_PREVIEW = 200


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    column: str | None
    value: str | None

    @staticmethod
    def of(reason: str, column: str | None, value: object) -> Rejection:
        text = None if value is None else str(value)
        if text is not None:
            text = text.encode("utf-8", "replace").decode("utf-8", "replace")[:_VALUE_PREVIEW]
        return Rejection(reason, column, text)


@dataclass(frozen=True, slots=True)
class Rules:
    """The cleaning rules that are settings (``PipelineSettings.rules()``); the defaults are VADER's
    documented thresholds on the compound score and no length rule."""

    sentiment_positive: float = POSITIVE_THRESHOLD
    sentiment_negative: float = NEGATIVE_THRESHOLD
    min_clean_text_chars: int = 0

    def __post_init__(self) -> None:
        if not -1.0 <= self.sentiment_negative < self.sentiment_positive <= 1.0:
            raise ValueError(
                f"sentiment thresholds must satisfy -1 <= negative < positive <= 1, got"
                f" negative={self.sentiment_negative} positive={self.sentiment_positive}"
            )


DEFAULT_RULES = Rules()


def sentiment_of(polarity: float, rules: Rules = DEFAULT_RULES) -> str:
    """``positive`` at or above the positive threshold, ``negative`` at or below the negative one."""
    if polarity >= rules.sentiment_positive:
        return "positive"
    if polarity <= rules.sentiment_negative:
        return "negative"
    return "neutral"


def hashtags_of(text: str) -> list[str]:
    """Distinct hashtags, lower-cased, in order of appearance (``#1`` or ``&#39;`` are not hashtags)."""
    if "#" not in text:
        return []
    return list(dict.fromkeys(tag.lower() for tag in HASHTAG_RE.findall(text)))


def mentions_of(text: str) -> list[str]:
    if "@" not in text:  # most tweets: no scan at all
        return []
    return list(dict.fromkeys(m.lower() for m in MENTION_RE.findall(text)))


def urls_of(text: str) -> list[str]:
    if "://" not in text and "www." not in text.lower():  # every match holds one of them
        return []
    return URL_RE.findall(text)


def _emoji_runs() -> tuple[frozenset[str], re.Pattern[str]]:
    """The non-ASCII characters that occur in emoji, and a pattern of runs of them.

    ``emoji.demojize`` walks every character of a text in Python (≈ 120 µs per non-ASCII tweet);
    most tweets hold no emoji character at all, and those that do hold them in short runs. So
    the library sees only the runs (a keycap's leading ``0-9#*`` included): same output, ~5x faster.
    """
    cps = sorted({ord(ch) for e in emoji.EMOJI_DATA for ch in e if not ch.isascii()})
    ranges: list[list[int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    cls = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )
    return frozenset(chr(c) for c in cps), re.compile(f"[0-9#*]?[{cls}]+")


EMOJI_CHARS, EMOJI_RUN_RE = _emoji_runs()

# Runs of non-ASCII characters, each with the keycap sign before it: every emoji run lies inside
# one. EMOJI_RUN_RE's class is ~80 ranges, most beyond the BMP, which ``re`` tests one after the
# other at every position of a text (≈ 10 µs a tweet, ≈ 10 % of the stager and of the curator in
# a profile); this class is one range, and EMOJI_RUN_RE then scans only these few characters.
_NON_ASCII_RUN_RE = re.compile(r"[0-9#*]?[^\x00-\x7f]+")


def has_emoji_chars(text: str) -> bool:
    return not text.isascii() and not EMOJI_CHARS.isdisjoint(text)


def demojize(text: str) -> str:
    """Emoji spelled out as words (``🔥`` → `` fire ``, ``😂`` → `` face with tears of joy ``)."""
    if not has_emoji_chars(text):
        return text
    return _NON_ASCII_RUN_RE.sub(_spelled_candidate, text)


def emoji_runs(text: str) -> list[str]:
    """EMOJI_RUN_RE's matches in ``text``, in order (scanning only its non-ASCII runs)."""
    if not has_emoji_chars(text):
        return []
    return [run for part in _NON_ASCII_RUN_RE.findall(text) for run in EMOJI_RUN_RE.findall(part)]


def _spelled_candidate(match: re.Match[str]) -> str:
    return EMOJI_RUN_RE.sub(_spelled_run, match.group())


def _spelled_run(match: re.Match[str]) -> str:
    return _spelled(match.group())


@lru_cache(maxsize=1 << 14)
def _spelled(run: str) -> str:
    """One run of emoji spelled out; runs repeat (the same few emoji make most of them), and the
    library's tokenizer is Python."""
    return emoji.demojize(run, delimiters=(" ", " ")).replace("_", " ")


def clean_text(text: str) -> str:
    """Text for models: entities unescaped, URLs dropped, mentions generalised, ``#`` dropped,
    emoji spelled out as words, whitespace collapsed. Case is left to the tokenizer."""
    # Each pattern runs only on texts that hold its sign (a C substring test), and whitespace is
    # collapsed by str.split, whose whitespace is the pattern's \s: the same text, half the time
    # (tests/unit/test_clean.py compares with the unguarded patterns).
    out = html.unescape(text)
    if "://" in out or "www." in out.lower():
        out = URL_RE.sub(" ", out)
    if "@" in out:
        out = MENTION_RE.sub(" @user ", out)
    if "#" in out:
        out = HASH_SIGN_RE.sub(" ", out)
    return " ".join(demojize(out).split())


def _int(value: str, column: str, low: int, high: int) -> int | Rejection:
    v = value.strip()
    if not v:
        return Rejection.of(f"missing_{column}", column, value)
    if not v.isdigit() or not v.isascii():
        reason = "negative_count" if v.startswith("-") and v[1:].isdigit() else f"invalid_{column}"
        return Rejection.of(reason, column, value)
    n = int(v)
    if not low <= n <= high:
        return Rejection.of(f"out_of_range_{column}", column, value)
    return n


def _unreadable(raw: dict[str, str]) -> Rejection | None:
    """The first field that is not valid UTF-8 or is longer than its column allows."""
    for name in RAW_COLUMNS:
        value = raw[name]
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return Rejection.of("invalid_encoding", name, value)
        limit = MAX_LEN.get(name)
        if limit is not None and len(value) > limit:
            return Rejection.of("field_too_long", name, value)
    return None


def _created_at(value: str) -> datetime | Rejection:
    stamp = value.strip()
    try:
        if not CREATED_AT_RE.fullmatch(stamp):
            raise ValueError(stamp)
        return datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    except ValueError:
        return Rejection.of("invalid_created_at", "created_at", value)


def _polarity(value: str) -> float | Rejection:
    try:
        polarity = float(value)
    except ValueError:
        return Rejection.of("invalid_polarity", "polarity", value)
    if not math.isfinite(polarity) or not -1.0 <= polarity <= 1.0:
        return Rejection.of("invalid_polarity", "polarity", value)
    return polarity


def validate(
    fields: list[str], columns: list[str], rules: Rules = DEFAULT_RULES
) -> dict[str, Any] | Rejection:
    """A staged row (plain dict of typed values) or the first rule the record breaks."""
    if len(fields) != len(columns):
        return Rejection.of("column_count", None, f"{len(fields)} fields, expected {len(columns)}")
    raw = dict(zip(columns, fields, strict=True))
    if (broken := _unreadable(raw)) is not None:
        return broken
    twitter_id = _int(raw["twitter_id"], "twitter_id", TWITTER_ID_MIN, TWITTER_ID_MAX)
    if isinstance(twitter_id, Rejection):
        return twitter_id
    created_at = _created_at(raw["created_at"])
    if isinstance(created_at, Rejection):
        return created_at
    counts: dict[str, int] = {}
    for name in ("followers", "friends", "retweet_count"):
        n = _int(raw[name], name, 0, COUNT_MAX)
        if isinstance(n, Rejection):
            return n
        counts[name] = n
    polarity = _polarity(raw["polarity"])
    if isinstance(polarity, Rejection):
        return polarity
    text = raw["text"]
    if not text.strip():
        return Rejection.of("empty_text", "text", text)
    company = raw["group_name"].strip() or raw["partition_1"].strip() or raw["file_name"].strip()
    if not company:
        return Rejection.of("missing_company", "group_name", raw["group_name"])
    location = raw["location"].strip()
    polarity = round(polarity, 4)
    cleaned = clean_text(text)
    if len(cleaned) < rules.min_clean_text_chars:
        return Rejection.of("clean_text_too_short", "text", text)
    return {
        "twitter_id": twitter_id,
        "created_at": created_at,
        "company": company,
        "followers": counts["followers"],
        "friends": counts["friends"],
        "retweet_count": counts["retweet_count"],
        "location": location or None,
        "screenname": raw["screenname"],
        "username": raw["username"],
        "search_query": raw["search_query"],
        "text": text,
        "clean_text": cleaned,
        "polarity": polarity,
        "sentiment": sentiment_of(polarity, rules),
    }
