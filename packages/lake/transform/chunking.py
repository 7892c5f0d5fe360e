"""Cut a raw CSV object into chunks of whole records, each described by a byte range and a checksum."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from lake.schema import RAW_COLUMNS
from lake.transform.csvrecords import iter_records, read_header


class InvalidRawFile(ValueError):
    """The file is not a CSV with the expected header; nothing of it goes downstream."""


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    byte_start: int
    byte_end: int
    first_record: int
    records: int
    sha256: str


@dataclass(slots=True)
class _Open:
    start: int
    first_record: int
    records: int = 0
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)


def check_header(columns: list[str], name: str) -> None:
    missing = [c for c in RAW_COLUMNS if c not in columns]
    if not columns or missing:
        raise InvalidRawFile(
            f"{name}: not a tweets CSV: missing columns {missing or list(RAW_COLUMNS)}; "
            f"found {columns[:20]!r}"
        )


def read_columns(stream: BinaryIO, name: str) -> tuple[list[str], int]:
    """Read and check the header; return the columns and the header's length in bytes."""
    first = stream.readline()
    if not first.strip():
        raise InvalidRawFile(f"{name}: empty file")
    if b"\x00" in first:
        raise InvalidRawFile(f"{name}: binary data where a CSV header was expected")
    try:
        columns = read_header(first)
    except UnicodeDecodeError as exc:
        raise InvalidRawFile(f"{name}: header is not UTF-8 text ({exc.reason})") from exc
    check_header(columns, name)
    return columns, len(first)


def split(stream: BinaryIO, chunk_rows: int, name: str = "input") -> tuple[list[str], Iterator[Chunk]]:
    """Columns of the file, and a lazy iterator of its chunks (the stream is read once, never whole)."""
    columns, offset = read_columns(stream, name)

    def chunks() -> Iterator[Chunk]:
        pos = offset
        current = _Open(start=pos, first_record=1)
        index = 0
        next_record = 1

        def lines() -> Iterator[bytes]:
            for line in stream:
                current.hasher.update(line)
                yield line

        for record in iter_records(lines()):
            pos += record.nbytes
            current.records += 1
            next_record += 1
            if current.records >= chunk_rows:
                yield Chunk(
                    index,
                    current.start,
                    pos,
                    current.first_record,
                    current.records,
                    current.hasher.hexdigest(),
                )
                index += 1
                current = _Open(start=pos, first_record=next_record)
        end = stream.tell()
        if current.records or index == 0:
            yield Chunk(
                index, current.start, end, current.first_record, current.records, current.hasher.hexdigest()
            )

    return columns, chunks()
