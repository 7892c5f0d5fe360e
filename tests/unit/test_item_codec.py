"""The curated catalogue's list items, compressed with the shipped dictionary (lake.transform.item_codec)."""

from __future__ import annotations

import pytest
import zstandard as zstd
from hypothesis import given
from hypothesis import strategies as st

from lake.transform import item_codec
from lake.transform.curate import curate_batch
from lake.transform.curated_store import tokenizer_record
from tests.unit.test_curate_batch import generated

RECORD = tokenizer_record("bert-base-uncased", "ab" * 32, 30522)
META = {"tokenizer": "bert-base-uncased", "vocab_sha256": "ab" * 32}


def list_items(rows: int, seed: int) -> list[bytes]:
    frame = generated(rows, seed)
    ids = [[101, *range(i % 30), 102] for i in range(frame.height)]
    batch = curate_batch(frame, ids, [[c] for c in frame["company"]], RECORD, META)
    return [item for _, _, _, item, _ in batch.items]


def test_the_shipped_dictionary_is_the_current_one() -> None:
    assert item_codec.dictionary(item_codec.CURRENT).dict_id() == item_codec.CURRENT


def test_generated_list_items_come_back_byte_for_byte_in_a_quarter_of_their_bytes() -> None:
    items = list_items(2000, 77)
    encoder = item_codec.ItemEncoder()
    stored = [encoder.encode(item) for item in items]
    assert [item_codec.decode(s) for s in stored] == items
    assert all(s[:4] == b"\x28\xb5\x2f\xfd" for s in stored)  # zstd frames: never mistaken for JSON
    assert all(zstd.get_frame_parameters(s).dict_id == item_codec.CURRENT for s in stored)
    # the dictionary does its work (no dictionary keeps ≈ 59 % on these items)
    assert sum(map(len, stored)) < 0.35 * sum(map(len, items))


@given(st.binary(max_size=4000))
def test_any_bytes_come_back(data: bytes) -> None:
    assert item_codec.decode(item_codec.ItemEncoder().encode(data)) == data


@given(st.text(max_size=200))
def test_items_written_before_compression_are_served_as_they_are(text: str) -> None:
    item = b"{" + text.encode()
    assert item_codec.decode(item) == item


def test_an_item_of_a_dictionary_not_shipped_is_a_clear_error() -> None:
    samples: list[bytes | bytearray | memoryview] = [*list_items(300, 3)]
    other = zstd.train_dictionary(4096, samples, dict_id=9999)
    frame = zstd.ZstdCompressor(dict_data=other).compress(b'{"twitter_id":"1"}')
    with pytest.raises(item_codec.UnknownDictionary, match="dictionary 9999, which is not shipped"):
        item_codec.decode(frame)


def test_a_trained_dictionary_carries_its_id() -> None:
    trained = zstd.ZstdCompressionDict(item_codec.train(7, rows=1500, seed=5))
    assert trained.dict_id() == 7
    item = list_items(50, 8)[0]
    compressed = zstd.ZstdCompressor(dict_data=trained).compress(item)
    assert zstd.ZstdDecompressor(dict_data=trained).decompress(compressed) == item


def test_the_catalogue_compresses_json_items_and_keeps_compressed_ones() -> None:
    items = list_items(50, 78)
    encoder = item_codec.ItemEncoder()
    stored = [encoder.stored(item) for item in items]
    assert stored == [encoder.encode(item) for item in items]
    assert [encoder.stored(s) for s in stored] == stored  # compressed already by the batch thread
    assert [item_codec.decode(s) for s in stored] == items
