"""The curated layer as Parquet: one fixed schema, partitioned by company and month.

A curated chunk's rows are first written as one file, ``_chunks/run_id=<run>/chunk-NNNNN.arrow``
(:func:`write_chunk_file`): Arrow IPC (LZ4), a record batch per partition, each naming its partition.
When the run's last chunk is curated the files are compacted into
``tweets/company=<c>/year_month=<YYYY-MM>/<run>-part-NNNNN.parquet`` (``max_rows`` rows per file, so
only a partition's last file of a run is smaller): each chunk file is read once and its partitions
spilled to local files (:class:`PartitionSpill`), then each partition is written from them. The
files are read once, by the compaction, and never by a user: Arrow IPC costs a third of Parquet's
CPU to write and a sixth to read, and one object per chunk instead of one per chunk and partition
spares the S3 server and client ≈ 20 ms of CPU per object (docs/benchmarks.md). Names are
deterministic, so a replay overwrites instead of adding. The schema is fixed (not inferred per
chunk), so every part of a partition concatenates without casts.

Runs in flight across an upgrade left the earlier form, which compacts too: one object per chunk
and partition, ``_chunks/run_id=<run>/company=<c>/year_month=<YYYY-MM>/chunk-NNNNN.arrow`` (or
``.parquet`` before the IPC parts). A chunk curated in both forms is read from its chunk file.
"""

from __future__ import annotations

import io
import itertools
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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


def chunk_key(run_id: str, chunk_id: int) -> str:
    """A curated chunk's file of rows (:func:`write_chunk_file`), all its partitions."""
    return f"{chunk_prefix(run_id)}chunk-{chunk_id:05d}.arrow"


def chunk_part_key(run_id: str, company: str, month: str, chunk_id: int) -> str:
    """A chunk's part of one partition, as curators wrote them before :func:`chunk_key`."""
    return f"{chunk_prefix(run_id)}company={company}/year_month={month}/chunk-{chunk_id:05d}.arrow"


def final_key(company: str, month: str, run_id: str, part: int) -> str:
    return f"tweets/company={company}/year_month={month}/{run_id}-part-{part:05d}.parquet"


_CHUNK_NO = re.compile(r"/chunk-(\d+)\.(?:arrow|parquet)$")


def chunk_sources(keys: Iterable[str]) -> list[str]:
    """The objects to compact, in chunk order: a chunk's file (:func:`chunk_key`) when it has one,
    else its parts of each partition, sorted (written before the chunk files; of a part in both
    of their formats, the ``.arrow`` one, the later). A chunk curated before and after the chunk
    files (a redelivery, a redrive across the upgrade) is read from its chunk file alone."""
    whole: dict[int, str] = {}
    parts: dict[int, dict[str, str]] = defaultdict(dict)
    for key in keys:
        found = _CHUNK_NO.search(key)
        if found is None:
            continue
        chunk = int(found.group(1))
        if is_chunk_file(key):
            whole[chunk] = key
            continue
        stem = key.rsplit(".", 1)[0]
        if stem not in parts[chunk] or key.endswith(".arrow"):
            parts[chunk][stem] = key
    out: list[str] = []
    for chunk in sorted(whole.keys() | parts.keys()):
        out += [whole[chunk]] if chunk in whole else sorted(parts[chunk].values())
    return out


def partition_of_key(key: str) -> tuple[str, str]:
    """``(company, month)`` of a per-chunk part key."""
    fields = dict(p.split("=", 1) for p in key.split("/") if "=" in p)
    return fields["company"], fields["year_month"]


def is_chunk_file(key: str) -> bool:
    """A key of :func:`chunk_sources`: a chunk's file (:func:`chunk_key`), or else a part of one
    partition (its key names it: :func:`partition_of_key`)."""
    return "/company=" not in key


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


def write_chunk_file(parts: Mapping[tuple[str, str], Sequence[pa.Table]], path: Path) -> None:
    """A chunk's rows as one Arrow IPC file (LZ4 buffers): a record batch per partition, in the
    partitions' order, its rows in the chunk's order; each batch's metadata names its partition.
    ``parts``: each partition's tables (a chunk's batches' slices), concatenated here. Written to
    a local file, a partition at a time, so the chunk's compressed bytes are never in memory."""
    options = ipc.IpcWriteOptions(compression=PART_COMPRESSION)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, SCHEMA, options=options) as writer:
        for (company, month), tables in sorted(parts.items()):
            named = {"company": company, "year_month": month}
            for batch in pa.concat_tables(tables).combine_chunks().to_batches():
                writer.write_batch(batch, custom_metadata=named)


@contextmanager
def local_chunk_file(work_dir: Path) -> Iterator[Path]:
    """A path for a chunk file in a folder of its own under ``work_dir`` (made if missing), the
    folder removed on exit: the curator writes a chunk file there to upload it. (The compaction
    downloads chunk files into its spill's folder instead, :meth:`PartitionSpill.scratch_path`: a
    download outlives the thread that made it.)"""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="chunk-") as tmp:
        yield Path(tmp) / "chunk.arrow"


def chunk_partitions(path: Path) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """A chunk file's partitions (:func:`write_chunk_file`), in its order, read a record batch at a
    time."""
    with pa.OSFile(str(path)) as source:
        reader = ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch, named = reader.get_batch_with_custom_metadata(i)
            part = (named[b"company"].decode(), named[b"year_month"].decode())
            yield part, pa.Table.from_batches([batch]).cast(SCHEMA)


class PartitionSpill:
    """Each partition's tables, in the order added, in local Arrow IPC files: uncompressed, ≈ 0.66
    KB per row, 1.5 µs per row to write and read back where LZ4 took 5.8 (docs/benchmarks.md).

    The compaction reads each chunk file once and spills its partitions here, then writes each
    partition from its files, one table in memory at a time. A file per (partition, table), so
    none stays open whatever the number of partitions; the folder is removed on exit."""

    def __init__(self, tmp_dir: Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(dir=tmp_dir, prefix="spill-")
        self._files: dict[tuple[str, str], list[Path]] = defaultdict(list)
        self._names = itertools.count()  # never reused, even after a partition was read

    def __enter__(self) -> PartitionSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    def add(self, partition: tuple[str, str], table: pa.Table) -> None:
        path = Path(self._tmp.name) / f"{next(self._names):08d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(table)
        self._files[partition].append(path)

    def scratch_path(self) -> Path:
        """A path for a file of the caller's in the spill's folder (removed with it)."""
        return Path(self._tmp.name) / f"{next(self._names):08d}.scratch"

    def partitions(self) -> list[tuple[str, str]]:
        return sorted(self._files)

    def tables(self, partition: tuple[str, str]) -> Iterator[pa.Table]:
        """The partition's tables in the order added, once: each file is deleted once read. Two
        partitions may be read at once, from two threads."""
        for path in self._files.pop(partition, []):
            with pa.OSFile(str(path)) as source:
                table = ipc.open_file(source).read_all()
            yield table
            path.unlink()


def read_part(data: bytes) -> pa.Table:
    """A per-chunk part as a table of :data:`SCHEMA`: an Arrow IPC file, or a Parquet file (the
    parts' format before the IPC parts: a run in flight across an upgrade compacts both)."""
    if data[:4] == b"PAR1":
        return pq.read_table(io.BytesIO(data), schema=SCHEMA)
    return ipc.open_file(pa.py_buffer(data)).read_all().cast(SCHEMA)


def compact(
    sources: Iterable[pa.Table],
    max_rows: int,
    upload: Callable[[int, Path], None],
    tmp_dir: Path | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> list[int]:
    """Concatenate a partition's tables into Parquet files of at most ``max_rows`` rows, streaming.

    ``sources``: tables of :data:`SCHEMA` (:meth:`PartitionSpill.tables`), taken one at a time;
    each output file is written to a temporary file and handed to ``upload(part_number, path)``.
    Memory holds at most one row group (``row_group_rows``) plus one source table, whatever the
    partition's size. Returns the rows of each output file.
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

        for table in sources:
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
