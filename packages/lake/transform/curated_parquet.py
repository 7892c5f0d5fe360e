"""The curated layer as Parquet: one fixed schema, partitioned by company and month.

A chunk's documents are first written as per-chunk part files under
``_chunks/run_id=<run>/company=<c>/year_month=<YYYY-MM>/chunk-NNNNN.arrow``; when the run's last chunk
is curated they are compacted into ``tweets/company=<c>/year_month=<YYYY-MM>/<run>-part-NNNNN.parquet``
(``max_rows`` rows per file, so only a partition's last file of a run is smaller). The parts are
read once, by the compaction, and never by a user: they are Arrow IPC files (LZ4), which cost a
third of Parquet's CPU to write and a sixth to read (:func:`part_bytes`). Names are
deterministic, so a replay overwrites instead of adding. The schema is fixed (not inferred per
chunk), so every part of a partition concatenates without casts.
"""

from __future__ import annotations

import io
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("twitter_id", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("date", pa.string()),
        ("year", pa.int16()),
        ("month", pa.int8()),
        ("day_of_week", pa.int8()),
        ("day_name", pa.string()),
        ("hour", pa.int8()),
        ("is_weekend", pa.bool_()),
        ("company", pa.string()),
        ("companies", pa.list_(pa.string())),
        ("screenname", pa.string()),
        ("username", pa.string()),
        ("location", pa.string()),
        ("followers", pa.int64()),
        ("friends", pa.int64()),
        ("retweet_count", pa.int64()),
        ("text", pa.string()),
        ("clean_text", pa.string()),
        ("hashtags", pa.list_(pa.string())),
        ("mentions", pa.list_(pa.string())),
        ("urls", pa.list_(pa.string())),
        ("emoji", pa.list_(pa.string())),
        ("polarity", pa.float64()),
        ("sentiment", pa.string()),
        ("engagement", pa.float64()),
        ("token_ids", pa.list_(pa.int32())),
        ("token_count", pa.int16()),
        ("tokenizer", pa.string()),
        ("vocab_sha256", pa.string()),
        ("lineage_run_id", pa.string()),
        ("lineage_chunk_id", pa.int32()),
        ("lineage_raw_key", pa.string()),
        ("lineage_record_no", pa.int64()),
    ]
)
COMPRESSION = "zstd"
ROW_GROUP_ROWS = 50_000
PART_COMPRESSION = "lz4"  # the per-chunk parts' (Arrow IPC's codecs: lz4, zstd)


def chunk_prefix(run_id: str) -> str:
    return f"_chunks/run_id={run_id}/"


def chunk_part_key(run_id: str, company: str, month: str, chunk_id: int) -> str:
    return f"{chunk_prefix(run_id)}company={company}/year_month={month}/chunk-{chunk_id:05d}.arrow"


def final_key(company: str, month: str, run_id: str, part: int) -> str:
    return f"tweets/company={company}/year_month={month}/{run_id}-part-{part:05d}.parquet"


def current_parts(keys: list[str]) -> list[str]:
    """The part keys to compact, sorted: one per chunk and partition. A chunk curated before the
    IPC parts and again after them (a redelivery, a redrive across the upgrade) left both its
    ``.parquet`` and its ``.arrow`` part; the ``.arrow`` one is the later."""
    chosen: dict[str, str] = {}
    for key in keys:
        stem = key.rsplit(".", 1)[0]
        if stem not in chosen or key.endswith(".arrow"):
            chosen[stem] = key
    return sorted(chosen.values())


def partition_of_key(key: str) -> tuple[str, str]:
    """``(company, month)`` of a per-chunk part key."""
    fields = dict(p.split("=", 1) for p in key.split("/") if "=" in p)
    return fields["company"], fields["year_month"]


def flat_row(doc: dict[str, Any]) -> dict[str, Any]:
    """A curated document as one Parquet row (tokens and lineage flattened)."""
    row = {k: v for k, v in doc.items() if k not in ("_id", "tokens", "lineage")}
    row["twitter_id"] = int(doc["_id"])
    row["token_ids"] = doc["tokens"]["ids"]
    row["token_count"] = doc["tokens"]["count"]
    row["tokenizer"] = doc["tokens"]["tokenizer"]
    row["vocab_sha256"] = doc["tokens"]["vocab_sha256"]
    row.update({f"lineage_{k}": v for k, v in doc["lineage"].items()})
    return row


def partitions(docs: Iterable[dict[str, Any]]) -> dict[tuple[str, str], pa.Table]:
    """The documents grouped by (company, month) as tables of :data:`SCHEMA`, in their order.

    The documents are put in group order, made into one table, and each group is a slice of it
    (no copy): a batch spans ≈ 15 partitions, and building each partition's table column by column
    from Python values cost 3x the CPU of one table (34 columns of 15 small arrays)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        groups[d["company"], d["date"][:7]].append(d)
    ordered = sorted(groups.items())
    table = table_of([d for _, group in ordered for d in group])
    out: dict[tuple[str, str], pa.Table] = {}
    start = 0
    for part, group in ordered:
        out[part] = table.slice(start, len(group))
        start += len(group)
    return out


def table_of(docs: list[dict[str, Any]]) -> pa.Table:
    """Documents as a table of :data:`SCHEMA`, built column by column: the same table as
    ``pa.Table.from_pylist([flat_row(d) for d in docs], schema=SCHEMA)``, with no dict per row:
    8.5 µs of CPU per document against 21 (20k documents, tests/unit/test_curated_parquet.py)."""
    tokens = [d["tokens"] for d in docs]
    lineage = [d["lineage"] for d in docs]
    arrays = []
    for field in SCHEMA:
        name = field.name
        if name == "twitter_id":
            values = [int(d["_id"]) for d in docs]
        elif name == "token_ids":
            values = [t["ids"] for t in tokens]
        elif name == "token_count":
            values = [t["count"] for t in tokens]
        elif name in ("tokenizer", "vocab_sha256"):
            values = [t[name] for t in tokens]
        elif name.startswith("lineage_"):
            key = name.removeprefix("lineage_")
            values = [x[key] for x in lineage]
        else:
            values = [d[name] for d in docs]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def part_bytes(table: pa.Table) -> bytes:
    """``table`` as a per-chunk part: an Arrow IPC file, one record batch, LZ4-compressed buffers.

    Its columns are made contiguous first (a chunk's part is the concatenation of its batches'
    slices: dozens of chunks per column). Offline on a 50,000-row chunk (40 parts), against a
    zstd Parquet part: writing ≈ 4 against ≈ 9 µs per row, reading ≈ 1 against ≈ 6, ≈ 300 against
    ≈ 160 bytes per row (docs/benchmarks.md)."""
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=PART_COMPRESSION)
    with ipc.new_file(sink, SCHEMA, options=options) as writer:
        writer.write_table(table.combine_chunks())
    return bytes(sink.getvalue())


def read_part(data: bytes) -> pa.Table:
    """A per-chunk part as a table of :data:`SCHEMA`: an Arrow IPC file, or a Parquet file (the
    parts' format before the IPC parts: a run in flight across an upgrade compacts both)."""
    if data[:4] == b"PAR1":
        return pq.read_table(io.BytesIO(data), schema=SCHEMA)
    return ipc.open_file(pa.py_buffer(data)).read_all().cast(SCHEMA)


def compact(
    sources: Sequence[bytes | Callable[[], bytes]],
    max_rows: int,
    upload: Callable[[int, Path], None],
    tmp_dir: Path | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> list[int]:
    """Concatenate per-chunk parts into Parquet files of at most ``max_rows`` rows, streaming.

    ``sources`` are part files (:func:`read_part`: bytes, or callables returning them, read one at a
    time); each output file is written to a temporary file and handed to
    ``upload(part_number, path)``. Memory holds at most one row group (``row_group_rows``) plus one
    source part, whatever the partition's size. Returns the rows of each output file.
    """
    written: list[int] = []
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        path = Path(tmp) / "part.parquet"
        writer: pq.ParquetWriter | None = None
        pending: list[pa.Table] = []
        pending_rows = 0
        rows_in_file = 0

        def flush_group() -> None:
            nonlocal writer, pending, pending_rows
            if not pending_rows:
                return
            if writer is None:
                writer = pq.ParquetWriter(path, SCHEMA, compression=COMPRESSION)
            writer.write_table(pa.concat_tables(pending), row_group_size=pending_rows)
            pending, pending_rows = [], 0

        def close_file() -> None:
            nonlocal writer, rows_in_file
            flush_group()
            if writer is not None:
                writer.close()
                upload(len(written), path)
                written.append(rows_in_file)
                writer, rows_in_file = None, 0

        for source in sources:
            data = source() if callable(source) else source
            table = read_part(data)
            offset = 0
            while offset < table.num_rows:
                take = min(max_rows - rows_in_file, row_group_rows - pending_rows, table.num_rows - offset)
                pending.append(table.slice(offset, take))
                pending_rows += take
                rows_in_file += take
                offset += take
                if rows_in_file >= max_rows:
                    close_file()
                elif pending_rows >= row_group_rows:
                    flush_group()
        close_file()
    return written
