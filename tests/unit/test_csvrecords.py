"""Record splitting and chunking: the ingestor's chunk ranges are exactly the stager's records."""

import io

import pytest

from lake.schema import RAW_COLUMNS
from lake.transform.chunking import InvalidRawFile, split
from lake.transform.csvrecords import iter_records

HEADER = ",".join(RAW_COLUMNS).encode()


def row(text: str, tid: int = 1282000000000000001) -> list[str]:
    return [
        "2020-07-12 10:00:00",
        "Apple",
        "1",
        "2",
        "Apple",
        "",
        "0",
        "s",
        "#Apple",
        text,
        str(tid),
        "u",
        "0.1",
        "Technology",
        "Apple",
    ]


def csv_bytes(rows: list[list[str]], newline: bytes = b"\n", bom: bool = False) -> bytes:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline.decode()).writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + HEADER + newline + buf.getvalue().encode()


def test_quoted_commas_quotes_and_newlines_stay_in_one_record():
    tricky = 'a, "quoted" word\nsecond line\r\nthird \u2028 line'
    data = csv_bytes([row(tricky), row("plain", 2)])
    records = list(iter_records(io.BytesIO(data.split(b"\n", 1)[1])))
    assert [r.fields[9] for r in records if r.fields] == [tricky, "plain"]
    assert sum(r.nbytes for r in records) == len(data.split(b"\n", 1)[1])


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("bom", [False, True])
def test_chunks_cover_every_record_once_and_reassemble_the_file(newline, bom):
    rows = [row(f"tweet {i}, with\nnewline" if i % 3 == 0 else f"tweet {i}", 10**18 + i) for i in range(23)]
    data = csv_bytes(rows, newline, bom)
    columns, lazy = split(io.BytesIO(data), chunk_rows=5)
    chunks = list(lazy)
    assert columns == list(RAW_COLUMNS)
    assert [c.records for c in chunks] == [5, 5, 5, 5, 3]
    assert [c.first_record for c in chunks] == [1, 6, 11, 16, 21]
    body = b"".join(data[c.byte_start : c.byte_end] for c in chunks)
    assert data.endswith(body) and len(body) + chunks[0].byte_start == len(data)
    texts = [
        (r.fields or [])[9] for c in chunks for r in iter_records(io.BytesIO(data[c.byte_start : c.byte_end]))
    ]
    assert texts == [r[9] for r in rows]


def test_chunk_checksum_is_the_sha256_of_its_byte_range():
    import hashlib

    data = csv_bytes([row(f"t{i}", i + 1) for i in range(7)])
    _, chunks = split(io.BytesIO(data), chunk_rows=3)
    for c in chunks:
        assert c.sha256 == hashlib.sha256(data[c.byte_start : c.byte_end]).hexdigest()


def test_blank_lines_are_not_records_but_their_bytes_stay_in_a_range():
    data = csv_bytes([row("a", 1)]) + b"\n\n" + csv_bytes([row("b", 2)]).split(b"\n", 1)[1]
    _, chunks = split(io.BytesIO(data), chunk_rows=100)
    (chunk,) = list(chunks)
    assert chunk.records == 2
    assert chunk.byte_end == len(data)


def test_a_header_with_columns_in_another_order_is_accepted():
    cols = list(reversed(RAW_COLUMNS))
    data = (",".join(cols) + "\n" + ",".join(reversed(row("x")))).encode()
    columns, chunks = split(io.BytesIO(data), 10)
    assert columns == cols and sum(c.records for c in chunks) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\x00\x01\x02binary\n", "binary"),
        (b"a,b,c\n1,2,3\n", "missing columns"),
        (b"\xff\xfe" + HEADER + b"\n", "not UTF-8"),
    ],
)
def test_a_file_that_is_not_a_tweets_csv_is_refused_with_a_clear_error(data, message):
    with pytest.raises(InvalidRawFile, match=message):
        split(io.BytesIO(data), 10, "input.csv")


def test_undecodable_bytes_survive_parsing_as_surrogates():
    line = b"2020-07-12 10:00:00,Apple,1,2,Apple,,0,s,#Apple,bad \xff bytes,1,u,0.1,Technology,Apple\n"
    (record,) = list(iter_records(io.BytesIO(line)))
    assert record.fields is not None and "\udcff" in record.fields[9]
