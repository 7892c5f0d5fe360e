"""The sample generator: deterministic, the real schema, the real flaws in the documented shares."""

import csv
import io
from collections import Counter

from lake.schema import RAW_COLUMNS
from lake.transform.clean import Rejection, validate
from lake.transform.generate import write_csv


def generated(rows: int, seed: int = 1) -> bytes:
    buf = io.BytesIO()
    write_csv(buf, rows, seed)
    return buf.getvalue()


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert generated(2000, 5) == generated(2000, 5)
    assert generated(2000, 5) != generated(2000, 6)


def test_header_is_the_kaggle_schema_and_records_are_exactly_rows():
    data = generated(3000)
    records = list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline="")))
    assert records[0] == list(RAW_COLUMNS)
    assert len(records) - 1 == 3000


def test_flaws_appear_in_their_documented_shares():
    data = generated(40_000, 3).decode("utf-8", "surrogateescape")
    records = list(csv.reader(io.StringIO(data, newline="")))[1:]
    results = [validate(r, list(RAW_COLUMNS)) for r in records]
    rows = [r for r in results if not isinstance(r, Rejection)]
    rejected = len(results) - len(rows)
    null_location = sum(r["location"] is None for r in rows) / len(rows)
    ids = Counter(r["twitter_id"] for r in rows)
    repeated = sum(n - 1 for n in ids.values())
    texts = Counter(r["text"] for r in rows)
    assert 0.0005 <= rejected / len(records) <= 0.005
    assert 0.23 <= null_location <= 0.29
    assert 0.008 <= repeated / len(records) <= 0.03
    assert any(n > 1 for n in texts.values())
    assert any("\n" in r["text"] for r in rows) and any('"' in r["text"] for r in rows)
    assert any(not r["text"].isascii() for r in rows)
    assert {r["company"] for r in rows} == {
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
    }
    assert sum(r["polarity"] == 0 for r in rows) / len(rows) >= 0.25
    assert all(len(str(r["twitter_id"])) == 19 for r in rows)
