"""A batch of staged rows made into the curated layer's three forms at once, column by column.

:func:`lake.transform.enrich.curated_document` defines a curated document, one row at a time; the
stored document (:func:`lake.transform.curated_store.stored_document`), its list item (``list_item``)
and its Parquet row (``curated_parquet.table_of``) were each derived from that dict, which made
the curator's per-row Python most of its CPU (docs/benchmarks.md). :func:`curate_batch` builds the
same three from the batch's columns: the time features, list items (polars' JSON encoder) and
Parquet columns in polars and Arrow, the stored documents' BSON in Arrow
(``lake.transform.bson_columns``), and only the entities (hashtags, mentions, URLs, emoji: look-
behind patterns and the emoji library) and the engagement score (Python's ``math.log1p`` and
``round``) per row. ``tests/unit/test_curate_batch.py`` checks each
output equals what the per-document functions give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa
from bson.raw_bson import RawBSONDocument

from lake.transform import bson_columns as bc
from lake.transform import curated_parquet as cp
from lake.transform.curated_store import StoredBatch
from lake.transform.enrich import ENTITIES, engagement_score

CatalogueItem = tuple[int, datetime, str, bytes, list[str]]


@dataclass
class CuratedBatch:
    # the documents as the store keeps them (BSON already)
    stored: StoredBatch = field(default_factory=lambda: StoredBatch([], [], frozenset()))
    # (twitter_id, created_at naive UTC, sentiment, list item, companies) per document: the
    # catalogue's rows (companies: those the document is written with)
    items: list[CatalogueItem] = field(default_factory=list)
    parts: dict[tuple[str, str], pa.Table] = field(default_factory=dict)  # Parquet, by (company, month)


def curate_batch(
    rows: pl.DataFrame,
    token_ids: list[list[int]],
    companies: list[list[str]],
    tokenizer: dict[str, Any],
    meta: dict[str, str],
) -> CuratedBatch:
    """``rows``: staged rows (``lake.transform.stage.STAGED_SCHEMA``); ``token_ids`` and
    ``companies``: each row's; ``tokenizer``: its record (``tokenizer_record``); ``meta``: its name
    and vocabulary hash as documents show them."""
    if not rows.height:
        return CuratedBatch()
    texts = rows["text"].to_list()
    entities = {name: [entity(t) for t in texts] for name, entity in ENTITIES.items()}
    frame = _documents(rows, token_ids, companies, entities)
    tids, sentiments = rows["twitter_id"].to_list(), rows["sentiment"].to_list()
    # naive UTC times: the catalogue's DATETIME, and what BSON stores for an aware UTC time alike
    times = rows["created_at"].dt.replace_time_zone(None).to_list()
    items = (j.encode() for j in _list_items(frame))
    token_lists = pa.array(token_ids, pa.list_(pa.int32()))  # the Parquet column and the packed ids
    return CuratedBatch(
        stored=_stored(rows, companies, token_lists, tokenizer),
        items=list(zip(tids, times, sentiments, items, companies, strict=True)),
        parts=_parts(frame, token_lists, meta),
    )


def _documents(
    rows: pl.DataFrame,
    token_ids: list[list[int]],
    companies: list[list[str]],
    entities: dict[str, list[list[str]]],
) -> pl.DataFrame:
    """The batch with every column of a curated document (entities and engagement from Python)."""
    counts = zip(*(rows[c].to_list() for c in ("followers", "friends", "retweet_count")), strict=True)
    engagement = [engagement_score(fo, fr, rt) for fo, fr, rt in counts]
    at = pl.col("created_at")
    return rows.with_columns(
        _lists("companies", companies),
        *(_lists(name, values) for name, values in entities.items()),
        pl.Series("engagement", engagement, pl.Float64),
        pl.Series("token_count", [len(ids) for ids in token_ids], pl.Int16),
        date=at.dt.strftime("%Y-%m-%d"),
        year=at.dt.year().cast(pl.Int16),
        month=at.dt.month().cast(pl.Int8),
        day_of_week=at.dt.weekday().cast(pl.Int8),  # 1 = Monday … 7 = Sunday, as isoweekday
        day_name=at.dt.strftime("%A"),
        hour=at.dt.hour().cast(pl.Int8),
        is_weekend=at.dt.weekday() >= 6,
    )


def _lists(name: str, values: list[list[Any]]) -> pl.Series:
    """A column of lists of strings, through Arrow: polars builds one from Python lists ~20x slower."""
    return _series(name, pa.array(values, pa.list_(pa.string())))


def _series(name: str, array: pa.Array) -> pl.Series:
    series = pl.from_arrow(array)
    assert isinstance(series, pl.Series)
    return series.alias(name)


# The API's document in a list (curated_document's keys in order, no _id or tokens), after its
# twitter_id and created_at: list_item's JSON
_ITEM = (
    "date",
    "year",
    "month",
    "day_of_week",
    "day_name",
    "hour",
    "is_weekend",
    "company",
    "companies",
    "screenname",
    "username",
    "location",
    "followers",
    "friends",
    "retweet_count",
    "text",
    "clean_text",
    "hashtags",
    "mentions",
    "urls",
    "emoji",
    "polarity",
    "sentiment",
    "engagement",
)


def _list_items(frame: pl.DataFrame) -> list[str]:
    """Each document's list item as JSON, the bytes :func:`curated_store.list_item` renders
    (pydantic's encoder and polars' write the same JSON for these types; the tests compare them)."""
    fields = [
        pl.col("twitter_id").cast(pl.Utf8),
        pl.col("created_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        *(pl.col(name) for name in _ITEM),
        pl.struct("run_id", "chunk_id", "raw_key", "record_no").alias("lineage"),
    ]
    return frame.select(pl.struct(fields).struct.json_encode())[:, 0].to_list()


def _stored(
    rows: pl.DataFrame, companies: list[list[str]], token_lists: pa.ListArray, tokenizer: dict[str, Any]
) -> StoredBatch:
    """The stored documents, encoded a column at a time (``lake.transform.bson_columns``): the bytes
    PyMongo makes of ``curated_store.stored_document``'s dict (its keys in its order; ``created_at``
    as the same UTC instant)."""

    def col(name: str) -> pa.Array:
        return rows[name].to_arrow()

    ids = col("twitter_id").cast(pa.string())
    docs = bc.documents(
        [
            bc.string("_id", ids),
            bc.datetime_ms("created_at", rows["created_at"].dt.epoch("ms").to_arrow()),
            bc.string("company", col("company")),
            bc.string_list("companies", pa.array(companies, pa.list_(pa.string()))),
            *(bc.string(name, col(name)) for name in ("screenname", "username", "location")),
            *(bc.integer(name, col(name)) for name in ("followers", "friends", "retweet_count")),
            bc.string("text", col("text")),
            bc.double("polarity", col("polarity")),
            bc.string("sentiment", col("sentiment")),
            bc.binary("tok", bc.packed(token_lists, tokenizer["id_bytes"])),
            bc.string("tokenizer", pa.array([tokenizer["_id"]] * rows.height, pa.string())),
            bc.subdocument(
                "lineage", [bc.string("run_id", col("run_id")), bc.integer("chunk_id", col("chunk_id"))]
            ),
        ]
    )
    lineages = frozenset(rows.select("run_id", "chunk_id").unique().iter_rows())
    return StoredBatch([RawBSONDocument(raw) for raw in docs.to_pylist()], ids.to_pylist(), lineages)


def _parts(
    frame: pl.DataFrame, token_lists: pa.ListArray, meta: dict[str, str]
) -> dict[tuple[str, str], pa.Table]:
    """The batch as Parquet tables of ``curated_parquet.SCHEMA`` per (company, month), each in the
    batch's order (``curated_parquet.partitions``' tables)."""
    frame = frame.with_columns(
        _series("token_ids", token_lists),
        tokenizer=pl.lit(meta["tokenizer"]),
        vocab_sha256=pl.lit(meta["vocab_sha256"]),
        lineage_run_id=pl.col("run_id"),
        lineage_chunk_id=pl.col("chunk_id").cast(pl.Int32),
        lineage_raw_key=pl.col("raw_key"),
        lineage_record_no=pl.col("record_no"),
        _month=pl.col("date").str.slice(0, 7),
    ).sort("company", "_month", maintain_order=True)
    table = frame.select(cp.SCHEMA.names).to_arrow().cast(cp.SCHEMA)
    out: dict[tuple[str, str], pa.Table] = {}
    start = 0
    for company, month, n in frame.group_by("company", "_month", maintain_order=True).len().iter_rows():
        out[company, month] = table.slice(start, n)
        start += n
    return out
