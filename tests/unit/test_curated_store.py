"""The stored curated document is slimmer, and the API's document derived back from it is exactly the
one the curator built (tokens, time features, engagement, entities, lineage)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic_core import from_json, to_json

from lake.transform.curated_store import (
    NOT_STAGED,
    Staged,
    api_document,
    list_item,
    pack_ids,
    stored_document,
    tokenizer_record,
    unpack_ids,
    with_companies,
)
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
    assert not {"hashtags", "mentions", "urls", "emoji"} & stored.keys()  # derived from the text
    assert stored["lineage"] == {"run_id": r["run_id"], "chunk_id": r["chunk_id"]}  # the raw record: staged
    adds = Staged(r["clean_text"], r["raw_key"], r["record_no"])
    api = api_document(stored, adds, {TOKENIZER["_id"]: TOKENIZER}, include_tokens=True)
    expected = {k: v for k, v in whole.items() if k != "_id"}
    assert api == expected and list(api) == list(expected)  # same values, same field order
    projected = {k: v for k, v in stored.items() if k != "tok"}  # as read without tokens
    without = api_document(projected, adds, {}, include_tokens=False)
    assert without == {k: v for k, v in expected.items() if k != "tokens"}


@pytest.mark.parametrize(
    "kw",
    [
        {"created_at": datetime(2020, 9, 19, 23, 59, 59)},
        {"text": "no entities at all 😀 café", "clean_text": "no entities at all café", "location": None},
        {"created_at": datetime(2020, 7, 12, 0, 0, tzinfo=UTC), "polarity": -0.123456789, "followers": 0},
    ],
)
def test_the_list_item_is_the_json_the_gateway_renders_from_the_stored_document(kw: dict[str, Any]):
    r = staged_row(**kw)
    meta = {"tokenizer": TOKENIZER["tokenizer"], "vocab_sha256": TOKENIZER["vocab_sha256"]}
    whole = curated_document(r, [101, 2000, 102], ["Apple", "Google"], meta)
    # what a page rendered from the document store (the gateway's path without the projection)
    adds = Staged(r["clean_text"], r["raw_key"], r["record_no"])
    from_store = to_json(api_document(stored_document(whole, TOKENIZER), adds, {}, False))
    assert list_item(whole) == from_store  # byte for byte: same fields, order, number formatting


def test_new_companies_change_only_the_items_companies():
    meta = {"tokenizer": TOKENIZER["tokenizer"], "vocab_sha256": TOKENIZER["vocab_sha256"]}
    whole = curated_document(staged_row(), [101, 102], ["Apple"], meta)
    changed = with_companies(list_item(whole), ["Apple", "Microsoft"])
    assert changed == list_item({**whole, "companies": ["Apple", "Microsoft"]})
    assert {k: v for k, v in from_json(changed).items() if k != "companies"} == {
        k: v for k, v in from_json(list_item(whole)).items() if k != "companies"
    }


def test_documents_stored_whole_by_earlier_versions_pass_through():
    meta = {"tokenizer": "bert-base-uncased", "vocab_sha256": "abc"}
    whole = curated_document(staged_row(), [101, 102], ["Apple"], meta)
    assert api_document(whole, NOT_STAGED, {}, include_tokens=True) == {
        k: v for k, v in whole.items() if k != "_id"
    }
    assert "tokens" not in api_document(whole, NOT_STAGED, {}, include_tokens=False)


@pytest.mark.parametrize("width,ids", [(2, [0, 101, 65_535]), (4, [0, 101, 65_536, 250_000])])
def test_token_ids_pack_little_endian_and_back(width: int, ids: list[int]):
    packed = pack_ids(ids, width)
    assert len(packed) == width * len(ids) and packed[:width] == b"\0" * width
    assert packed[width : 2 * width] == (101).to_bytes(width, "little")
    assert unpack_ids(packed, width) == ids
    assert tokenizer_record("big", "f" * 64, 250_002)["id_bytes"] == 4


def test_entities_a_document_stored_by_an_earlier_version_holds_are_shown_as_stored():
    """Documents stored before the entities were derived hold their non-empty entity lists; those
    are shown as stored, the missing (empty) ones derived from the text: the same document."""
    meta = {"tokenizer": TOKENIZER["tokenizer"], "vocab_sha256": TOKENIZER["vocab_sha256"]}
    r = staged_row(text="#Apple and @tim at https://x.co 😀", clean_text="apple and @user at")
    whole = curated_document(r, [101, 102], ["Apple"], meta)
    assert whole["hashtags"] == ["apple"] and whole["emoji"] == ["😀"] and whole["urls"]
    earlier = stored_document(whole, TOKENIZER) | {"hashtags": ["apple"], "emoji": ["😀"]}
    adds = Staged(r["clean_text"], r["raw_key"], r["record_no"])
    api = api_document(earlier, adds, {}, include_tokens=False)
    assert api == {k: v for k, v in whole.items() if k not in ("_id", "tokens")}
    kept = api_document(earlier | {"hashtags": ["as-stored"]}, adds, {}, include_tokens=False)
    assert kept["hashtags"] == ["as-stored"]  # what the store holds wins
    assert api == api_document(stored_document(whole, TOKENIZER), adds, {}, include_tokens=False)
