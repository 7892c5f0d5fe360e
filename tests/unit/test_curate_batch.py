"""``curate_batch`` builds, column by column, exactly what the per-document functions build from
``curated_document``: the stored documents, the catalogue's rows (list items byte for byte) and
links, and the Parquet tables per partition."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import bson
import polars as pl
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.adapters.mysql import naive_utc
from lake.schema import RAW_COLUMNS
from lake.transform import curated_parquet as cp
from lake.transform.curate import curate_batch
from lake.transform.curated_store import list_item, stored_document, tokenizer_record
from lake.transform.enrich import curated_document
from lake.transform.generate import write_csv
from lake.transform.stage import stage_records, staged_frame

TOKENIZER = tokenizer_record("bert-base-uncased", "ab" * 32, 30522)
META = {"tokenizer": "bert-base-uncased", "vocab_sha256": "ab" * 32}
LINEAGE = {"run_id": "run-1", "chunk_id": 7, "raw_key": "raw/run-1/x.csv"}


def by_document(
    frame: pl.DataFrame,
    ids: list[list[int]],
    companies: list[list[str]],
    tokenizer: dict[str, Any] = TOKENIZER,
) -> dict[str, Any]:
    """The reference: one ``curated_document`` per row, and what the curator derived from each."""
    docs = [curated_document(r, t, c, META) for r, t, c in zip(frame.to_dicts(), ids, companies, strict=True)]
    items: list[tuple[int, datetime, str, bytes, list[str]]] = []
    for d in docs:
        tid, at = int(d["_id"]), naive_utc(d["created_at"])
        items.append((tid, at, d["sentiment"], list_item(d), d["companies"]))
    return {
        "stored": [stored_document(d, tokenizer) for d in docs],
        "items": items,
        "parts": cp.partitions(docs),
    }


def assert_same(
    frame: pl.DataFrame,
    ids: list[list[int]],
    companies: list[list[str]],
    tokenizer: dict[str, Any] = TOKENIZER,
) -> None:
    got = curate_batch(frame, ids, companies, tokenizer, META)
    want = by_document(frame, ids, companies, tokenizer)
    # what the store is sent: the same BSON, keys in the same order (created_at: the same instant)
    assert all(isinstance(d, RawBSONDocument) for d in got.stored.docs)
    assert [bytes(d.raw) for d in got.stored.docs if isinstance(d, RawBSONDocument)] == [
        bson.encode(d) for d in want["stored"]
    ]
    assert list(got.stored.ids) == [d["_id"] for d in want["stored"]]
    assert got.stored.lineages == {(d["lineage"]["run_id"], d["lineage"]["chunk_id"]) for d in want["stored"]}
    assert got.items == want["items"]
    assert got.parts.keys() == want["parts"].keys()
    for part, table in want["parts"].items():
        assert got.parts[part].equals(table), part


def generated(rows: int, seed: int) -> pl.DataFrame:
    buf = io.BytesIO()
    write_csv(buf, rows, seed=seed)
    data = buf.getvalue().split(b"\n", 1)[1]
    return stage_records(data, list(RAW_COLUMNS), 1, LINEAGE).frame


def test_a_generated_batch_curates_as_document_by_document() -> None:
    frame = generated(1500, 5)
    ids = [[101, *range(i % 40), 102] for i in range(frame.height)]
    companies = [["Apple", "Google"] if i % 7 == 0 else [c] for i, c in enumerate(frame["company"])]
    assert_same(frame, ids, companies)
    # a batch is a slice of its chunk's frame (Arrow arrays that start at an offset)
    assert_same(frame.slice(37, 500), ids[37:537], companies[37:537])


def test_ids_of_a_vocabulary_beyond_two_bytes_are_packed_in_four() -> None:
    frame = generated(300, 6)
    wide = tokenizer_record("wide-wordpiece", "cd" * 32, 70_000)
    assert wide["id_bytes"] == 4
    ids = [[101, *range(65_530 + i % 12, 65_540 + i % 12), 69_999, 102] for i in range(frame.height)]
    assert_same(frame, ids, [[c] for c in frame["company"]], wide)
    ids[0] = []  # no ids at all (an empty text) between others
    assert_same(frame, ids, [[c] for c in frame["company"]], wide)


def test_an_empty_batch_curates_to_nothing() -> None:
    got = curate_batch(staged_frame([]), [], [], TOKENIZER, META)
    assert (list(got.stored.docs), got.items, got.parts) == ([], [], {})


TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from('@#&😀\x00\x1f\x7f\u2028"\\/'),
    min_size=1,
    max_size=40,
)


@st.composite
def staged_row(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "twitter_id": draw(st.integers(1, 2**63 - 1)),
        "created_at": draw(st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1))).replace(
            microsecond=0, tzinfo=UTC
        ),
        "company": draw(st.sampled_from(["Apple", "AMD", "Nvidia"])),
        "screenname": draw(TEXT),
        "username": draw(TEXT),
        "location": draw(st.none() | TEXT),
        "followers": draw(st.integers(0, 2**32 - 1)),
        "friends": draw(st.integers(0, 2**32 - 1)),
        "retweet_count": draw(st.integers(0, 2**32 - 1)),
        "search_query": "#Apple",
        "text": draw(TEXT),
        "clean_text": draw(TEXT),
        "polarity": draw(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.0001, -0.0001, 0.05, 0.6369, -0.9999])),
        "sentiment": draw(st.sampled_from(["positive", "neutral", "negative"])),
        "run_id": "run-1",
        "chunk_id": 7,
        "raw_key": "raw/x.csv",
        "record_no": draw(st.integers(1, 2**40)),
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(staged_row(), min_size=1, max_size=8, unique_by=lambda r: r["twitter_id"]))
def test_rows_with_any_text_and_values_curate_as_document_by_document(rows: list[dict[str, Any]]) -> None:
    frame = staged_frame(rows)
    assert_same(frame, [[101, 5, 102]] * len(rows), [[r["company"]] for r in rows])


@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.sampled_from([None, UTC])))
@settings(max_examples=300, deadline=None)
def test_a_catalogue_time_literal_is_the_naive_utc_time_to_the_second(ts: datetime) -> None:
    from lake.adapters.mysql import sql_time

    assert sql_time(ts) == f"'{naive_utc(ts):%Y-%m-%d %H:%M:%S}'"
