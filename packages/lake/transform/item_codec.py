"""The curated catalogue's list items as MySQL keeps them: zstd frames made with a dictionary.

A list item (:func:`lake.transform.curated_store.list_item`) is a document's JSON, ≈ 0.9-1 KB, and
most of it is the same from one document to the next: the keys, the companies, the day names, the
lineage's run and raw key. Compressed one by one without help, an item keeps ≈ 59 % of its bytes;
with a dictionary of what items share, ≈ 20-30 % (docs/benchmarks.md). MariaDB's cost for a
catalogue row grows with its bytes (parsing, copying into pages, redo log, page splits): the items
were ≈ 20 µs of its CPU per tweet and 1 GB of its buffer pool at 1.13M tweets.

- The curator compresses (≈ 4 µs per item), the gateway decompresses what it serves (≈ 2 µs).
- Every frame names its dictionary (zstd's dictionary id), so a newer dictionary can be added
  beside the old ones: a frame is always read with the dictionary it was made with. The
  dictionaries ship with the package (``lake/dictionaries/items-<id>.zdict``) and must never change
  or be removed once items were written with them; a gateway older than the curators that wrote
  an item with a newer one answers :class:`UnknownDictionary` (deploy gateways first).
- An item that starts with ``{`` is JSON as written before the items were compressed, and is served
  as it is: nothing has to be rewritten.
- ``python -m lake.transform.item_codec train OUT`` trains a dictionary on generated items (see
  :func:`train`); a new one needs a new id and ``CURRENT`` moved to it.
"""

from __future__ import annotations

import argparse
import functools
import io
from importlib import resources

import zstandard as zstd

CURRENT = 1  # the dictionary new items are compressed with
LEVEL = 1  # measured: 3 saves ≈ 4 % more bytes for ≈ 30 % more time (docs/benchmarks.md)
DICTIONARY_BYTES = 32 * 1024


class UnknownDictionary(ValueError):
    """An item was compressed with a dictionary this version does not ship."""


@functools.cache
def dictionary(dict_id: int) -> zstd.ZstdCompressionDict:
    path = resources.files("lake") / "dictionaries" / f"items-{dict_id}.zdict"
    if not path.is_file():
        raise UnknownDictionary(f"list item compressed with dictionary {dict_id}, which is not shipped")
    found = zstd.ZstdCompressionDict(path.read_bytes())
    if found.dict_id() != dict_id:
        raise UnknownDictionary(f"{path.name} holds dictionary {found.dict_id()}, not {dict_id}")
    found.precompute_compress(level=LEVEL)  # else zstd digests the dictionary for every item
    return found


@functools.cache
def _decompressor(dict_id: int) -> zstd.ZstdDecompressor:
    return zstd.ZstdDecompressor(dict_data=dictionary(dict_id))


class ItemEncoder:
    """Compresses list items with the current dictionary; one per thread (zstd's contexts are not
    shared between threads)."""

    def __init__(self, dict_id: int = CURRENT) -> None:
        self._compressor = zstd.ZstdCompressor(
            level=LEVEL, dict_data=dictionary(dict_id), write_checksum=False, write_content_size=True
        )

    def encode(self, item: bytes) -> bytes:
        return self._compressor.compress(item)

    def stored(self, item: bytes) -> bytes:
        """The item as the catalogue stores it: JSON is compressed, an item compressed already (by
        the curator's batch thread) is kept as it is (:func:`decode` tells them apart)."""
        return self._compressor.compress(item) if item[:1] == b"{" else item


def decode(stored: bytes) -> bytes:
    """The item's JSON from what the catalogue holds: a zstd frame, or JSON written before."""
    if stored[:1] == b"{":
        return stored
    dict_id = zstd.get_frame_parameters(stored).dict_id
    return _decompressor(dict_id).decompress(stored)


def train(dict_id: int, rows: int = 20_000, seed: int = 2024) -> bytes:
    """A dictionary trained on the list items of ``rows`` generated tweets (``seed`` differs from
    the benchmark's, so the benchmark does not measure on what it was trained on)."""
    from lake.schema import RAW_COLUMNS
    from lake.transform.curate import curate_batch
    from lake.transform.curated_store import tokenizer_record
    from lake.transform.generate import write_csv
    from lake.transform.stage import stage_records

    buf = io.BytesIO()
    write_csv(buf, rows, seed=seed)
    data = buf.getvalue().split(b"\n", 1)[1]
    run_id = "20200101T000000Z-00000000"  # the form of lake.runs.new_run_id
    lineage = {"run_id": run_id, "chunk_id": 0, "raw_key": f"runs/{run_id}/TweetsFromAPI.csv"}
    frame = stage_records(data, list(RAW_COLUMNS), 1, lineage).frame
    record = tokenizer_record("bert-base-uncased", "0" * 64, 30522)
    meta = {"tokenizer": record["tokenizer"], "vocab_sha256": record["vocab_sha256"]}
    no_ids: list[list[int]] = [[] for _ in range(frame.height)]  # items hold no tokens
    batch = curate_batch(frame, no_ids, [[c] for c in frame["company"]], record, meta)
    samples: list[bytes | bytearray | memoryview] = [item for _, _, _, item, _ in batch.items]
    return zstd.train_dictionary(DICTIONARY_BYTES, samples, dict_id=dict_id, level=LEVEL).as_bytes()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lake.transform.item_codec")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cmd = sub.add_parser("train", help="train a list-item dictionary on generated tweets")
    cmd.add_argument("out", help="the .zdict file to write")
    cmd.add_argument("--id", type=int, default=CURRENT, help="its dictionary id (a new one for a new file)")
    args = parser.parse_args(argv)
    with open(args.out, "wb") as f:
        f.write(train(args.id))


if __name__ == "__main__":
    main()
