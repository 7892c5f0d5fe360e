"""What the curated store holds for a tweet, and the API's curated document derived back from it.

FerretDB's cost per stored document grows with its number of BSON elements (docs/pipeline.md has
the measurements), so the store keeps only what cannot be derived cheaply:

- dropped, derived on read: ``twitter_id`` (= ``_id``), the time features (from ``created_at``),
  ``engagement`` (from the three counts), ``clean_text`` (the staged row holds it), the entity
  lists (``hashtags``, ``mentions``, ``urls``, ``emoji``: functions of the text; ≈ 20 % of
  FerretDB's CPU per document), and the token count;
- the token ids packed into one binary value (little-endian, 2 or 4 bytes per id), and the
  tokenizer's name and vocabulary hash once per tokenizer (collection ``tokenizers``), referenced by
  a short key;
- ``lineage`` keeps the run and the chunk (what the curator checks, and what users query by); the
  raw record (``raw_key``, ``record_no``) is the staged row's, read with ``clean_text``: the staged
  row of a tweet comes from the same chunk as its document (≈ 10 % of FerretDB's CPU per document,
  docs/benchmarks.md).

:func:`api_document` rebuilds exactly the document :func:`lake.transform.enrich.curated_document`
made (tests/unit/test_curated_store.py, and an e2e test against answers recorded before), and
passes documents stored whole by earlier versions through unchanged.

:func:`list_item` renders the same document's list form (no tokens) as JSON once, when it is
written: the curated catalogue keeps it beside the document's index entry (migration 007), so a
``/curated`` page is served from MySQL's indexes alone (docs/decisions.md, "the list projection").
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from bson.raw_bson import RawBSONDocument
from pydantic_core import from_json, to_json

from lake.transform.enrich import engagement_score, entities_of, time_features


class StoredBatch(NamedTuple):
    """Documents as the store keeps them, with what their writer checks and looks up without
    decoding them: the curator's are BSON already (``RawBSONDocument``, built a column at a time:
    ``lake.transform.bson_columns``), which PyMongo sends as they are."""

    docs: Sequence[dict[str, Any] | RawBSONDocument]
    ids: Sequence[str]  # each document's _id, in order
    lineages: frozenset[tuple[str, int]]  # the (run_id, chunk_id) of their lineages

    @classmethod
    def of(cls, docs: Sequence[dict[str, Any]]) -> StoredBatch:
        """A batch of documents as dicts (their ids and lineages read from them)."""
        lineages = frozenset((d["lineage"]["run_id"], d["lineage"]["chunk_id"]) for d in docs)
        return cls(docs, [d["_id"] for d in docs], lineages)


class Staged(NamedTuple):
    """What a tweet's staged row adds to its stored document (all None: no staged row)."""

    clean_text: str | None
    raw_key: str | None
    record_no: int | None


NOT_STAGED = Staged(None, None, None)
# The columns of table ``tweets`` (alias ``t``) that make a :class:`Staged`, in its order
STAGED_ADDS = ", ".join(f"t.{name}" for name in Staged._fields)


def tokenizer_record(name: str, vocab_sha256: str, vocab_size: int) -> dict[str, Any]:
    """The ``tokenizers`` collection's document for one tokenizer; ``_id`` is what documents hold."""
    return {
        "_id": f"{name}@{vocab_sha256[:16]}",
        "tokenizer": name,
        "vocab_sha256": vocab_sha256,
        "id_bytes": 2 if vocab_size <= 1 << 16 else 4,
    }


def pack_ids(ids: list[int], id_bytes: int) -> bytes:
    packed = array("H" if id_bytes == 2 else "I", ids)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def unpack_ids(data: bytes, id_bytes: int) -> list[int]:
    ids = array("H" if id_bytes == 2 else "I")
    ids.frombytes(data)
    if sys.byteorder != "little":
        ids.byteswap()
    return ids.tolist()


def stored_document(doc: dict[str, Any], tokenizer: dict[str, Any]) -> dict[str, Any]:
    """The document as stored, from a whole curated document and its tokenizer's record."""
    stored = {
        "_id": doc["_id"],
        "created_at": doc["created_at"],
        "company": doc["company"],
        "companies": doc["companies"],
        "screenname": doc["screenname"],
        "username": doc["username"],
        "location": doc["location"],
        "followers": doc["followers"],
        "friends": doc["friends"],
        "retweet_count": doc["retweet_count"],
        "text": doc["text"],
        "polarity": doc["polarity"],
        "sentiment": doc["sentiment"],
        "tok": pack_ids(doc["tokens"]["ids"], tokenizer["id_bytes"]),
        "tokenizer": tokenizer["_id"],
        "lineage": {"run_id": doc["lineage"]["run_id"], "chunk_id": doc["lineage"]["chunk_id"]},
    }
    return stored


def list_item(doc: dict[str, Any]) -> bytes:
    """The API's JSON of a whole curated document in a list (no ``tokens``): exactly the bytes the
    gateway renders from the stored document with :func:`api_document`."""
    item = doc.copy()  # in C, then two keys out: half the time of a filtering comprehension
    del item["_id"], item["tokens"]
    item["created_at"] = item["created_at"].astimezone(UTC)
    return to_json(item)


def with_companies(item: bytes, companies: list[str]) -> bytes:
    """A list item whose document's ``companies`` changed (the run finaliser's late links)."""
    found = from_json(item)
    found["companies"] = companies
    return to_json(found)


def api_document(
    stored: dict[str, Any],
    staged: Staged,
    tokenizers: dict[str, dict[str, Any]],
    include_tokens: bool,
) -> dict[str, Any]:
    """The curated document as the API shows it (no ``_id``), from what the store holds.

    ``staged``: the staged row's clean text and raw record; ``tokenizers``: records by key (needed
    with tokens only)."""
    if "date" in stored:  # stored whole by an earlier version (never stored since)
        whole = {k: v for k, v in stored.items() if k != "_id"}
        if not include_tokens:
            whole.pop("tokens", None)
        return whole
    created: datetime = stored["created_at"]
    text: str = stored["text"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    doc: dict[str, Any] = {
        "twitter_id": stored["_id"],
        "created_at": created,
        **time_features(created),
        "company": stored["company"],
        "companies": stored["companies"],
        "screenname": stored["screenname"],
        "username": stored["username"],
        "location": stored["location"],
        "followers": stored["followers"],
        "friends": stored["friends"],
        "retweet_count": stored["retweet_count"],
        "text": text,
        "clean_text": staged.clean_text,
        # derived from the text (a document stored by an earlier version may hold them, and
        # left out empty ones: the same values, by the same functions)
        **{name: stored.get(name, derived) for name, derived in entities_of(text).items()},
        "polarity": stored["polarity"],
        "sentiment": stored["sentiment"],
        "engagement": engagement_score(stored["followers"], stored["friends"], stored["retweet_count"]),
    }
    if include_tokens:
        record = tokenizers[stored["tokenizer"]]
        ids = unpack_ids(stored["tok"], record["id_bytes"])
        doc["tokens"] = {
            "ids": ids,
            "count": len(ids),
            "tokenizer": record["tokenizer"],
            "vocab_sha256": record["vocab_sha256"],
        }
    lineage = stored["lineage"]
    if "raw_key" not in lineage:  # stored since the raw record is the staged row's
        lineage = lineage | {"raw_key": staged.raw_key, "record_no": staged.record_no}
    doc["lineage"] = lineage
    return doc
