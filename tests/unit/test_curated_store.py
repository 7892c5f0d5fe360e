"""The stored curated document is slimmer, and the API's document derived back from it is exactly the
one the curator built (tokens, time features, engagement, entities, lineage)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lake.transform.curated_store import api_document, pack_ids, stored_document, tokenizer_record, unpack_ids
from lake.transform.enrich import curated_document
from tests.unit.test_stage_and_enrich import staged_row

TOKENIZER = tokenizer_record("bert-base-uncased", "0f052197aac305fe" + "0" * 48, 30_522)


def elements(value: Any) -> int:
    """BSON elements, as FerretDB converts them: every field and every list item, nested."""
    if isinstance(value, dict):
        return sum(1 + elements(v) for v in value.values())
    if isinstance(value, list):
        return sum(1 + elements(v) for v in value)
    return 0


@pytest.mark.parametrize(
    "kw",
    [
        {"created_at": datetime(2020, 9, 19, 23, 59, 59)},  # naive: read as UTC
        {"text": "no entities at all", "clean_text": "no entities at all", "location": "Paris, France"},
        {"created_at": datetime(2020, 7, 12, 0, 0, tzinfo=UTC), "followers": 13_800_000, "retweet_count": 0},
    ],
)
def test_the_api_document_derived_from_the_stored_one_is_the_curators(kw: dict[str, Any]):
    r = staged_row(**kw)
    meta = {"tokenizer": TOKENIZER["tokenizer"], "vocab_sha256": TOKENIZER["vocab_sha256"]}
    ids = [101, *range(2000, 2030), 30_521, 102]  # a typical tweet: about 30 word pieces
    whole = curated_document(r, ids, ["Apple", "Google"], meta)
    stored = stored_document(whole, TOKENIZER)
    assert elements(stored) <= elements(whole) * 0.4  # far fewer elements to convert and store
    assert not any(isinstance(v, list) and not v for v in stored.values())  # no empty lists
    api = api_document(stored, r["clean_text"], {TOKENIZER["_id"]: TOKENIZER}, include_tokens=True)
    expected = {k: v for k, v in whole.items() if k != "_id"}
    assert api == expected and list(api) == list(expected)  # same values, same field order
    projected = {k: v for k, v in stored.items() if k != "tok"}  # as read without tokens
    without = api_document(projected, r["clean_text"], {}, include_tokens=False)
    assert without == {k: v for k, v in expected.items() if k != "tokens"}


def test_documents_stored_whole_by_earlier_versions_pass_through():
    meta = {"tokenizer": "bert-base-uncased", "vocab_sha256": "abc"}
    whole = curated_document(staged_row(), [101, 102], ["Apple"], meta)
    assert api_document(whole, None, {}, include_tokens=True) == {
        k: v for k, v in whole.items() if k != "_id"
    }
    assert "tokens" not in api_document(whole, None, {}, include_tokens=False)


@pytest.mark.parametrize("width,ids", [(2, [0, 101, 65_535]), (4, [0, 101, 65_536, 250_000])])
def test_token_ids_pack_little_endian_and_back(width: int, ids: list[int]):
    packed = pack_ids(ids, width)
    assert len(packed) == width * len(ids) and packed[:width] == b"\0" * width
    assert packed[width : 2 * width] == (101).to_bytes(width, "little")
    assert unpack_ids(packed, width) == ids
    assert tokenizer_record("big", "f" * 64, 250_002)["id_bytes"] == 4
