"""Curated Parquet: fixed schema, partition keys, streaming compaction into bounded files."""

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from lake.transform import curated_parquet as cp
from lake.transform.enrich import curated_document


def _docs(n: int, start: int = 0, company: str = "Apple") -> list[dict[str, Any]]:
    meta = {"tokenizer": "bert-base-uncased", "vocab_sha256": "abc"}
    out = []
    for i in range(start, start + n):
        row = {
            "twitter_id": 1_300_000_000_000_000_000 + i,
            "created_at": datetime(2020, 9, 1 + i % 28, 12, tzinfo=UTC),
            "company": company,
            "screenname": "s",
            "username": "u",
            "location": None,
            "followers": i,
            "friends": 1,
            "retweet_count": 0,
            "text": f"#{company} tweet {i} 🔥",
            "clean_text": f"{company} tweet {i} fire",
            "polarity": 0.5,
            "sentiment": "positive",
            "run_id": "r1",
            "chunk_id": 0,
            "raw_key": "runs/r1/x.csv",
            "record_no": i + 1,
        }
        out.append(curated_document(row, [101, i % 30000, 102], [company], meta))
    return out


def ipc_part(table: pa.Table) -> bytes:
    """A part of one partition as curators wrote them before the chunk files (one LZ4 Arrow IPC
    batch under ``chunk_part_key``): what a run in flight across the upgrade left to compact."""
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=cp.PART_COMPRESSION)
    with ipc.new_file(sink, cp.SCHEMA, options=options) as writer:
        writer.write_table(table.combine_chunks())
    return bytes(sink.getvalue())


def test_documents_become_partitions_of_the_fixed_schema():
    tables = cp.partitions(_docs(3) + _docs(2, 10, "Tesla"))
    assert sorted(tables) == [("Apple", "2020-09"), ("Tesla", "2020-09")]
    apple = tables["Apple", "2020-09"]
    assert apple.schema == cp.SCHEMA and apple.num_rows == 3
    assert apple.column("twitter_id").to_pylist()[0] == 1_300_000_000_000_000_000
    assert apple.column("token_ids").to_pylist()[1] == [101, 1, 102]
    assert apple.column("location").null_count == 3


def test_the_columnar_table_equals_the_row_by_row_one():
    docs = _docs(40) + _docs(5, 100, "Tesla")
    docs[3]["hashtags"], docs[4]["companies"] = [], ["Apple", "Tesla"]
    expected = pa.Table.from_pylist([cp.flat_row(d) for d in docs], schema=cp.SCHEMA)
    assert cp.table_of(docs).equals(expected)


def test_each_partition_holds_its_documents_in_order_as_built_alone():
    # interleaved companies and two months: each group is a slice of one table of the batch
    docs = [d for pair in zip(_docs(30), _docs(30, 200, "Tesla"), strict=True) for d in pair]
    for d in docs[::7]:
        d["date"] = "2020-10" + d["date"][7:]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in docs:
        groups.setdefault((d["company"], d["date"][:7]), []).append(d)
    tables = cp.partitions(docs)
    assert list(tables) == sorted(groups) and len(tables) == 4
    for part, group in groups.items():
        assert tables[part].equals(cp.table_of(group))
        assert cp.read_part(ipc_part(tables[part])).equals(cp.table_of(group))


def test_part_keys_are_deterministic_and_carry_the_partition():
    key = cp.chunk_part_key("r1", "Apple", "2020-09", 7)
    assert key == "_chunks/run_id=r1/company=Apple/year_month=2020-09/chunk-00007.arrow"
    assert cp.partition_of_key(key) == ("Apple", "2020-09")
    assert (
        cp.final_key("Apple", "2020-09", "r1", 2)
        == "tweets/company=Apple/year_month=2020-09/r1-part-00002.parquet"
    )


def test_compaction_streams_parts_into_files_of_at_most_max_rows(tmp_path: Path):
    sources = [
        ipc_part(cp.partitions(_docs(n, start))["Apple", "2020-09"])
        for n, start in ((700, 0), (500, 700), (900, 1200))
    ]
    sources[1] = _parquet_part(cp.read_part(sources[1]))  # a part written before the IPC parts
    uploaded: dict[int, list[int]] = {}

    def upload(n: int, path: Path) -> None:
        pf = pq.ParquetFile(path)
        assert pf.schema_arrow == cp.SCHEMA
        uploaded[n] = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
        ids = pf.read(columns=["twitter_id"]).column(0).to_pylist()
        assert ids == sorted(ids)  # order of the parts kept

    tables = map(cp.read_part, sources)
    rows = cp.compact(tables, max_rows=1000, upload=upload, tmp_dir=tmp_path, row_group_rows=400)
    assert rows == [1000, 1000, 100]
    assert uploaded == {0: [400, 400, 200], 1: [400, 400, 200], 2: [100]}
    assert list(tmp_path.iterdir()) == []  # temporary files removed


def _parquet_part(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def test_a_part_is_one_compressed_arrow_batch_and_parquet_parts_still_read():
    table = cp.partitions(_docs(300))["Apple", "2020-09"]
    data = ipc_part(pa.concat_tables([table.slice(0, 100), table.slice(100)]))
    reader = ipc.open_file(pa.py_buffer(data))
    assert data[:6] == b"ARROW1" and reader.num_record_batches == 1 and reader.schema == cp.SCHEMA
    assert len(data) < table.nbytes / 2  # LZ4-compressed buffers
    assert cp.read_part(data).equals(table)
    assert cp.read_part(_parquet_part(table)).equals(table)


def test_a_chunk_is_read_from_its_file_or_else_from_its_latest_parts():
    # chunk 1: parts in both earlier formats; 3: parts and, curated again, its file; 10: its file
    legacy = [cp.chunk_part_key("r1", c, "2020-09", 1) for c in ("Tesla", "Apple")]
    keys = [
        cp.chunk_key("r1", 10),
        legacy[0],
        legacy[0].replace(".arrow", ".parquet"),
        legacy[1].replace(".arrow", ".parquet"),
        cp.chunk_part_key("r1", "Apple", "2020-09", 3),
        cp.chunk_key("r1", 3),
        "_chunks/run_id=r1/README.txt",
    ]
    assert cp.chunk_sources(keys) == [
        legacy[1].replace(".arrow", ".parquet"),
        legacy[0],
        cp.chunk_key("r1", 3),
        cp.chunk_key("r1", 10),
    ]
    assert cp.chunk_key("r1", 3) == "_chunks/run_id=r1/chunk-00003.arrow"
    assert cp.chunk_sources([]) == []


def _two_partitions(n: int, start: int) -> dict[tuple[str, str], pa.Table]:
    docs = [d for pair in zip(_docs(n, start), _docs(n, start, "Tesla"), strict=True) for d in pair]
    return cp.partitions(docs)


def test_a_chunk_file_holds_each_partition_as_one_named_compressed_batch(tmp_path: Path):
    # a chunk's partitions as its batches' slices, given in no particular order
    first, second = _two_partitions(300, 0), _two_partitions(200, 300)
    parts = {p: [first[p], second[p]] for p in reversed(sorted(first))}
    cp.write_chunk_file(parts, tmp_path / "chunk.arrow")
    data = (tmp_path / "chunk.arrow").read_bytes()
    reader = ipc.open_file(pa.py_buffer(data))
    assert data[:6] == b"ARROW1" and reader.num_record_batches == 2 and reader.schema == cp.SCHEMA
    assert len(data) < sum(t.nbytes for p in parts.values() for t in p) / 2  # LZ4-compressed buffers
    read = list(cp.chunk_partitions(tmp_path / "chunk.arrow"))
    assert [p for p, _ in read] == [("Apple", "2020-09"), ("Tesla", "2020-09")]
    for part, table in read:
        assert table.equals(pa.concat_tables(parts[part]))
    cp.write_chunk_file({}, tmp_path / "empty.arrow")  # a chunk with no documents
    assert list(cp.chunk_partitions(tmp_path / "empty.arrow")) == []
    assert cp.is_chunk_file(cp.chunk_key("r1", 0))
    assert not cp.is_chunk_file(cp.chunk_part_key("r1", "Tesla", "2020-09", 0))


def spill_all(spill: cp.PartitionSpill, chunks: list[dict[tuple[str, str], pa.Table]]) -> None:
    """Every chunk's partitions into ``spill``, chunk after chunk, as the finaliser adds them."""
    for chunk in chunks:
        for part, table in chunk.items():
            spill.add(part, table)


def test_the_spill_gives_back_each_partitions_tables_in_order_and_leaves_no_file(tmp_path: Path):
    chunks = [_two_partitions(n, start) for n, start in ((30, 0), (10, 100), (20, 200))]
    with cp.PartitionSpill(tmp_path) as spill:
        spill_all(spill, chunks)
        assert spill.partitions() == [("Apple", "2020-09"), ("Tesla", "2020-09")]
        for part in spill.partitions():
            rows = cp.compact(spill.tables(part), 45, lambda n, p: None, tmp_path)
            assert rows == [45, 15]
        assert list(spill.tables(("Apple", "2020-09"))) == [] and spill.partitions() == []  # once
        assert [len(list(d.iterdir())) for d in tmp_path.iterdir()] == [0]
    assert list(tmp_path.iterdir()) == []


def test_a_table_spilled_after_a_partition_was_read_overwrites_no_other(tmp_path: Path):
    chunks = [_two_partitions(n, start) for n, start in ((30, 0), (10, 100), (20, 200))]
    with cp.PartitionSpill(tmp_path) as spill:
        spill_all(spill, chunks)
        assert [t.num_rows for t in spill.tables(("Apple", "2020-09"))] == [30, 10, 20]
        spill.add(("Apple", "2020-10"), chunks[0]["Apple", "2020-09"])
        assert [t.num_rows for t in spill.tables(("Tesla", "2020-09"))] == [30, 10, 20]
        assert [t.num_rows for t in spill.tables(("Apple", "2020-10"))] == [30]


def test_a_spilled_partition_compacts_to_the_rows_of_its_chunks_in_order(tmp_path: Path):
    chunks = [_two_partitions(n, start) for n, start in ((300, 0), (200, 300))]
    with cp.PartitionSpill(tmp_path) as spill:
        spill_all(spill, chunks)
        files: list[pa.Table] = []
        cp.compact(
            spill.tables(("Tesla", "2020-09")), 1000, lambda n, p: files.append(pq.read_table(p)), tmp_path
        )
    expected = pa.concat_tables([c["Tesla", "2020-09"] for c in chunks])
    assert len(files) == 1 and files[0].equals(expected)


def test_compaction_of_nothing_writes_nothing(tmp_path: Path):
    assert cp.compact([], 10, lambda n, p: None, tmp_path) == []
