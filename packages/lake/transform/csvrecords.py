"""Split a CSV byte stream into whole records, with the byte span of each.

The ingestor and the stager use the same function, so a chunk boundary found by one is a record
boundary for the other. Lines are split on ``\\n`` only; quoted fields may hold commas, quotes, CR,
LF and any Unicode line separator. Bytes that are not UTF-8 survive as surrogate escapes so the
stager can quarantine the record that holds them instead of failing the chunk.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"
FIELD_SIZE_LIMIT = 1_000_000

csv.field_size_limit(FIELD_SIZE_LIMIT)


@dataclass(frozen=True, slots=True)
class Record:
    """One CSV record: its fields (``None`` when it could not be parsed), its size in bytes, the error."""

    fields: list[str] | None
    nbytes: int
    error: str | None = None


def iter_records(lines: Iterable[bytes]) -> Iterator[Record]:
    """Yield the records of ``lines`` (bytes, each ending in ``\\n`` except maybe the last)."""
    consumed = 0
    source = iter(lines)

    def text_lines() -> Iterator[str]:
        nonlocal consumed
        for raw in source:
            consumed += len(raw)
            yield raw.decode("utf-8", "surrogateescape")

    reader = csv.reader(text_lines(), strict=False)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader resets at the next line; the lines it consumed form one malformed record.
            yield Record(None, consumed, f"csv_syntax: {exc}")
            consumed = 0
            continue
        if not fields:  # a blank line is not a record; its bytes go with the next record
            continue
        n, consumed = consumed, 0
        yield Record(fields, n)


def read_header(first_line: bytes) -> list[str]:
    """The column names of a CSV header line (BOM and surrounding whitespace removed)."""
    text = first_line.removeprefix(BOM).decode("utf-8", "strict")
    row = next(csv.reader([text]), [])
    return [c.strip() for c in row]
