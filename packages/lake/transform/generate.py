"""A realistic, deterministic sample of the Kaggle dataset: the same 15 columns, the same flaws.

Per seed the output is byte-for-byte the same. Shares (of records): 26% null location, ~0.5% exact
duplicate records, ~2% the same text under another id, ~1% the same tweet caught by another
company's query, and ``malformed_share`` (default 0.2%) records that must be quarantined.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from lake.schema import COMPANIES, RAW_COLUMNS, SEARCH_QUERIES

START = datetime(2020, 7, 12)
SPAN_SECONDS = int((datetime(2020, 10, 13, 23, 59, 59) - START).total_seconds())
FIRST_ID = 1_282_000_000_000_000_000

_WORDS = (
    "new launch price stock market earnings chip gpu cloud deal streaming series watch buy sell "
    "update today love hate great bad amazing terrible fast slow battery camera service outage "
    "users growth revenue quarter ceo event live stream game gamers crypto data privacy ads ai "
    "model research release delay shipping order review unboxing subscription "
).split()
_EMOJI = ("😀", "🔥", "🚀", "💸", "😡", "😂", "❤️", "👍", "🤔", "📈", "📉", "🎮", "🍿", "⚡")
_LOCATIONS = (
    "PARIS",
    "Paris, France",
    "New York, NY",
    "London",
    "San Francisco, CA",
    "India",
    "Toronto",
    "Berlin, Germany",
    "Lagos, Nigeria",
    "東京",
    "São Paulo",
    "🌍 Earth",
    "→ here ←",
    "Sydney, Australia",
    "Los Angeles",
    "Seattle, WA",
    "Austin, TX",
    "Mumbai",
    "Madrid",
    "worldwide",
)
_NAMES = ("alex", "sam", "maría", "jürgen", "李", "tech", "news", "daily", "guru", "fan", "bot", "dev")
MALFORMED_KINDS = (
    "column_count",
    "twitter_id",
    "created_at",
    "followers",
    "polarity",
    "empty_text",
    "encoding",
)


@dataclass(frozen=True)
class GeneratedStats:
    records: int
    malformed: int
    exact_duplicates: int
    cross_company: int


def _lognormal_int(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    return min(cap, int(rng.lognormvariate(math.log(median), sigma)))


def _text(rng: random.Random, company: str) -> str:
    words = rng.choices(_WORDS, k=rng.randint(4, 22))
    tags = {f"#{company}"} | {f"#{rng.choice(COMPANIES)}" for _ in range(rng.randint(0, 2))}
    parts = [*words, *sorted(tags)]
    if rng.random() < 0.35:
        parts.insert(rng.randrange(len(parts) + 1), f"@{rng.choice(_NAMES)}{rng.randint(1, 999)}")
    if rng.random() < 0.3:
        parts.append(rng.choice(_EMOJI) * rng.randint(1, 3))
    if rng.random() < 0.15:
        parts.insert(rng.randrange(len(parts)), 'said "wow, really"')
    if rng.random() < 0.5:
        parts.append(f"https://t.co/{rng.randbytes(5).hex()}")
    text = " ".join(parts)
    if rng.random() < 0.05:
        text = text.replace(" ", "\n", 1)
    if rng.random() < 0.1:
        text = text.replace(" ", ", ", 1)
    if rng.random() < 0.03:
        text = "RT " + text + " &amp; more"
    return text


def _polarity(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "0.0"
    return f"{max(-0.996, min(0.9929, rng.gauss(0.12, 0.4))):.4f}"


def _row(rng: random.Random, twitter_id: int, company: str, text: str | None = None) -> list[str]:
    created = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    name = f"{rng.choice(_NAMES)}{rng.choice(['', '_', '.'])}{rng.randint(0, 9999)}"
    return [
        created.strftime("%Y-%m-%d %H:%M:%S"),
        company,
        str(_lognormal_int(rng, 331, 2.2, 13_800_000)),
        str(_lognormal_int(rng, 341, 1.5, 1_160_000)),
        company,
        "" if rng.random() < 0.26 else rng.choice(_LOCATIONS),
        str(0 if rng.random() < 0.8 else _lognormal_int(rng, 3, 2.0, 27_090)),
        name,
        SEARCH_QUERIES[company],
        text if text is not None else _text(rng, company),
        str(twitter_id),
        name.title() + ("" if rng.random() < 0.9 else f" {rng.choice(_EMOJI)}"),
        _polarity(rng),
        "Technology",
        company,
    ]


def _malform(rng: random.Random, row: list[str]) -> list[str] | bytes:
    kind = rng.choice(MALFORMED_KINDS)
    idx = {c: i for i, c in enumerate(RAW_COLUMNS)}
    if kind == "column_count":
        return row[:-3]
    if kind == "twitter_id":
        row[idx["twitter_id"]] = rng.choice(["", "12x45", "-7", "99999999999999999999999"])
    elif kind == "created_at":
        row[idx["created_at"]] = rng.choice(["2020-13-45 99:00:00", "yesterday", ""])
    elif kind == "followers":
        row[idx["followers"]] = rng.choice(["-5", "many", "1.5e3"])
    elif kind == "polarity":
        row[idx["polarity"]] = rng.choice(["1.7", "NaN", "positive"])
    elif kind == "empty_text":
        row[idx["text"]] = "  "
    else:
        line = _encode([row])
        return line.replace(b",", b",\xff\xfe", 1)
    return row


def _encode(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def generate_records(
    rows: int, seed: int = 42, malformed_share: float = 0.002
) -> Iterator[list[str] | bytes]:
    """``rows`` records (rows, or raw bytes for records with broken encoding), deterministic per seed."""
    rng = random.Random(seed)
    recent: list[list[str]] = []
    next_id = FIRST_ID + rng.randrange(10**15)
    for _ in range(rows):
        roll = rng.random()
        if roll < 0.005 and recent:
            yield list(rng.choice(recent))  # exact duplicate record
            continue
        next_id += rng.randint(1, 5_000_000_000)
        company = rng.choice(COMPANIES)
        if roll < 0.015 and recent:
            other = rng.choice(recent)  # same tweet caught by another company's query
            row = list(other)
            row[1] = row[4] = row[14] = company
            row[8] = SEARCH_QUERIES[company]
        elif roll < 0.035 and recent:
            row = _row(rng, next_id, company, text=rng.choice(recent)[9])  # same text, another id
        else:
            row = _row(rng, next_id, company)
        if rng.random() < malformed_share:
            yield _malform(rng, row)
            continue
        recent.append(row)
        if len(recent) > 2000:
            recent.pop(rng.randrange(len(recent)))
        yield row


def write_csv(out: BinaryIO, rows: int, seed: int = 42, malformed_share: float = 0.002) -> int:
    """Write header + ``rows`` records to ``out``; return the number of bytes written."""
    written = out.write(_encode([list(RAW_COLUMNS)]))
    batch: list[list[str]] = []
    for rec in generate_records(rows, seed, malformed_share):
        if isinstance(rec, bytes):
            written += out.write(_encode(batch)) + out.write(rec)
            batch = []
            continue
        batch.append(rec)
        if len(batch) >= 5000:
            written += out.write(_encode(batch))
            batch = []
    written += out.write(_encode(batch))
    return written
