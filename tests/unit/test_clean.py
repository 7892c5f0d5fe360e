"""Validation rules and cleaning, one behaviour per test."""

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.schema import RAW_COLUMNS
from lake.transform.clean import (
    Rejection,
    Rules,
    clean_text,
    hashtags_of,
    mentions_of,
    sentiment_of,
    validate,
)

COLUMNS = list(RAW_COLUMNS)


def fields(**overrides: str) -> list[str]:
    base = {
        "created_at": "2020-07-12 10:00:00",
        "file_name": "Apple",
        "followers": "331",
        "friends": "341",
        "group_name": "Apple",
        "location": "Paris, France",
        "retweet_count": "0",
        "screenname": "bob",
        "search_query": "#Apple OR #Iphone",
        "text": "I love my #iPhone 😀 https://t.co/x",
        "twitter_id": "1282000000000000001",
        "username": "Bob 😀",
        "polarity": "0.6369",
        "partition_0": "Technology",
        "partition_1": "Apple",
    }
    base.update(overrides)
    return [base[c] for c in COLUMNS]


def test_a_valid_record_becomes_a_typed_staged_row():
    row = validate(fields(), COLUMNS)
    assert not isinstance(row, Rejection)
    assert row["twitter_id"] == 1282000000000000001
    assert row["created_at"] == datetime(2020, 7, 12, 10, 0, tzinfo=UTC)
    assert row["followers"] == 331 and row["sentiment"] == "positive"
    assert row["text"] == "I love my #iPhone 😀 https://t.co/x"  # kept verbatim


def test_a_null_location_is_a_valid_row():
    row = validate(fields(location=""), COLUMNS)
    assert not isinstance(row, Rejection) and row["location"] is None


@pytest.mark.parametrize(
    ("overrides", "reason", "column"),
    [
        ({"twitter_id": ""}, "missing_twitter_id", "twitter_id"),
        ({"twitter_id": "12x45"}, "invalid_twitter_id", "twitter_id"),
        ({"twitter_id": "99999999999999999999999"}, "out_of_range_twitter_id", "twitter_id"),
        ({"twitter_id": "-7"}, "negative_count", "twitter_id"),
        ({"created_at": "2020-13-45 99:00:00"}, "invalid_created_at", "created_at"),
        ({"created_at": "2020-09-20T10:00:00"}, "invalid_created_at", "created_at"),
        ({"created_at": "2020-09-20 10:00:00+02:00"}, "invalid_created_at", "created_at"),
        ({"created_at": "2020-09-20"}, "invalid_created_at", "created_at"),
        ({"followers": "-5"}, "negative_count", "followers"),
        ({"friends": "many"}, "invalid_friends", "friends"),
        ({"retweet_count": "1.5e3"}, "invalid_retweet_count", "retweet_count"),
        ({"polarity": "1.7"}, "invalid_polarity", "polarity"),
        ({"polarity": "NaN"}, "invalid_polarity", "polarity"),
        ({"polarity": "positive"}, "invalid_polarity", "polarity"),
        ({"text": "   "}, "empty_text", "text"),
        ({"text": "x" * 4001}, "field_too_long", "text"),
        ({"text": "bad \udcff byte"}, "invalid_encoding", "text"),
    ],
)
def test_each_broken_rule_is_named_with_its_column_and_value(overrides, reason, column):
    result = validate(fields(**overrides), COLUMNS)
    assert isinstance(result, Rejection)
    assert (result.reason, result.column) == (reason, column)
    assert result.value is not None and len(result.value) <= 200


def test_a_wrong_column_count_is_rejected():
    result = validate(fields()[:-2], COLUMNS)
    assert isinstance(result, Rejection) and result.reason == "column_count"


@pytest.mark.parametrize(
    ("polarity", "label"),
    [
        (0.05, "positive"),
        (0.0499, "neutral"),
        (0.0, "neutral"),
        (0.3, "positive"),
        (-0.0499, "neutral"),
        (-0.05, "negative"),
        (-0.9, "negative"),
        (0.9929, "positive"),
    ],
)
def test_sentiment_uses_vader_thresholds(polarity, label):
    assert sentiment_of(polarity) == label


def test_the_sentiment_thresholds_are_rules_a_setting_can_change():
    rules = Rules(sentiment_positive=0.7, sentiment_negative=-0.2)
    assert [sentiment_of(p, rules) for p in (0.6369, 0.7, -0.2, -0.1999)] == [
        "neutral",
        "positive",
        "negative",
        "neutral",
    ]
    row = validate(fields(), COLUMNS, rules)
    assert isinstance(row, dict) and row["sentiment"] == "neutral"  # positive under the default rules
    with pytest.raises(ValueError, match="negative < positive"):
        Rules(sentiment_positive=0.1, sentiment_negative=0.1)


def test_a_clean_text_shorter_than_the_rule_is_rejected_with_the_original_text():
    assert isinstance(validate(fields(), COLUMNS, Rules(min_clean_text_chars=20)), dict)
    # "I love my iPhone grinning face" once the URL is dropped and the emoji spelled out: 30 chars
    result = validate(fields(), COLUMNS, Rules(min_clean_text_chars=31))
    assert result == Rejection("clean_text_too_short", "text", "I love my #iPhone 😀 https://t.co/x")


def test_clean_text_drops_urls_generalises_mentions_and_spells_emoji():
    text = "RT @Bob_1: #Apple &amp; #AWS rock 🔥 https://t.co/abc\nnew"
    assert clean_text(text) == "RT @user : Apple & AWS rock fire new"


def test_hashtags_are_distinct_lowercase_and_not_numbers_or_entities():
    assert hashtags_of("#Apple #apple #1 &#39; a#b #AWS_cloud #Ünicode") == ["apple", "aws_cloud", "ünicode"]


def test_mentions_are_distinct_lowercase():
    assert mentions_of("@Bob hi @bob and mail@example.com") == ["bob"]


TRICKY_EMOJI = [
    "keycap 1️⃣ and #️⃣ then 5🔥",
    "family 👨‍👩‍👧 flag 🇫🇷 skin 👍🏽 heart ❤️ text ©™",
    "café naïve — “quotes” no emoji",
    "mixed😂😂word🚀",
]


def test_demojize_on_runs_matches_the_emoji_library_on_whole_texts():
    import emoji

    from lake.transform.clean import demojize

    for text in TRICKY_EMOJI:
        expected = emoji.demojize(text, delimiters=(" ", " "))
        assert demojize(text) == expected.replace("_", " "), text
    assert demojize("plain ascii_words") == "plain ascii_words"


def test_the_sign_first_patterns_match_exactly_what_the_look_behind_first_ones_did():
    """HASHTAG_RE, MENTION_RE and HASH_SIGN_RE start with their sign for speed; their matches (spans
    and groups) equal the earlier look-behind-first patterns' on generated tweets and edge cases,
    and the entity functions' pre-checks change no answer."""
    import random
    import re

    from lake.transform import clean
    from lake.transform.generate import _text

    before = {
        "hashtag": (re.compile(r"(?<![\w#&])#(\w*[^\W\d_]\w*)"), clean.HASHTAG_RE),
        "mention": (re.compile(r"(?<![\w@])@(\w{1,30})"), clean.MENTION_RE),
        "hash sign": (re.compile(r"(?<![\w#&])#(?=\w*[^\W\d_])"), clean.HASH_SIGN_RE),
    }
    rng = random.Random(7)
    texts = [_text(rng, rng.choice(["Apple", "Tesla", "Google"])) for _ in range(3000)]
    texts += [
        "#start", "&#39;#tag", "a#b #c", "##x #1 #1a #_a #a_ é#x #é", "#", "@", "x@", "@@c @a@b x@y",
        "@" + "w" * 40, "mail me@x.com @_u @ü", "http://x www.y HTTPS://Z WWW.Q", "#tag\n@user\thttp://a",
        "", "no signs at all", "&#x1F600; #ok&#y",
    ]  # fmt: skip
    for text in texts:
        for name, (old, new) in before.items():
            got = [(m.span(), m.groups()) for m in new.finditer(text)]
            assert got == [(m.span(), m.groups()) for m in old.finditer(text)], (name, text)
        old_tags = list(dict.fromkeys(t.lower() for t in before["hashtag"][0].findall(text)))
        old_mentions = list(dict.fromkeys(m.lower() for m in before["mention"][0].findall(text)))
        assert clean.hashtags_of(text) == old_tags, text
        assert clean.mentions_of(text) == old_mentions, text
        assert clean.urls_of(text) == clean.URL_RE.findall(text), text


WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000"


def test_the_guarded_clean_text_equals_every_pattern_run_on_every_text():
    """clean_text skips a pattern when the text lacks its sign and collapses whitespace with
    str.split: the same output as running every pattern and ``\\s+`` on every text."""
    import html
    import random
    import re

    from lake.transform import clean
    from lake.transform.generate import _text

    def unguarded(text: str) -> str:
        out = html.unescape(text)
        out = clean.URL_RE.sub(" ", out)
        out = clean.MENTION_RE.sub(" @user ", out)
        out = clean.HASH_SIGN_RE.sub(" ", out)
        out = clean.demojize(out)
        return re.sub(r"\s+", " ", out).strip()

    rng = random.Random(11)
    texts = [_text(rng, rng.choice(["Apple", "Tesla", "Google"])) for _ in range(2000)]
    texts += [*TRICKY_EMOJI, "WwW.x.com hi", "HTTP://A b", "ftp://x", "&#64;bob &#35;tag", "a&amp;b"]
    texts += ["".join(rng.choice(WHITESPACE + "ab@#&w.:/😀") for _ in range(30)) for _ in range(2000)]
    for text in texts:
        assert clean_text(text) == unguarded(text), repr(text)


_EMOJI_ALPHABET = "ab #*09é—“中\u200d\ufe0f\u20e3©™❤🔥😂👍🏽🇫🇷👨👩"


@given(st.text(alphabet=st.sampled_from(_EMOJI_ALPHABET) | st.characters(), max_size=40))
@settings(max_examples=400, deadline=None)
def test_emoji_runs_found_inside_non_ascii_runs_are_the_whole_text_scans(text: str):
    """emoji_runs and demojize scan with EMOJI_RUN_RE only inside runs of non-ASCII characters
    (with a keycap sign before them): the same matches and the same spelled text as scanning the
    whole text."""
    from lake.transform import clean

    assert clean.emoji_runs(text) == clean.EMOJI_RUN_RE.findall(text)
    assert clean.demojize(text) == clean.EMOJI_RUN_RE.sub(clean._spelled_run, text)
