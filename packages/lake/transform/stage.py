"""Turn the records of one raw chunk into staged rows, company links and quarantined rejects."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from lake.transform.clean import DEFAULT_RULES, Rejection, Rules, hashtags_of, validate
from lake.transform.csvrecords import iter_records


@dataclass
class ChunkRows:
    records: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # first valid occurrence per twitter_id
    links: list[tuple[int, str, int]] = field(default_factory=list)  # every valid record
    rejects: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)
    hashtags: dict[int, list[str]] = field(default_factory=dict)


def stage_records(
    data: bytes,
    columns: list[str],
    first_record: int,
    lineage: dict[str, Any],
    rules: Rules = DEFAULT_RULES,
) -> ChunkRows:
    """Validate and clean every record of ``data`` under ``rules``; ``lineage`` is added to each
    staged row."""
    out = ChunkRows()
    seen: set[int] = set()
    for i, rec in enumerate(iter_records(io.BytesIO(data))):
        out.records += 1
        record_no = first_record + i
        if rec.fields is None:
            out.rejects.append((record_no, "csv_syntax", None, (rec.error or "")[:200]))
            continue
        result = validate(rec.fields, columns, rules)
        if isinstance(result, Rejection):
            out.rejects.append((record_no, result.reason, result.column, result.value))
            continue
        tid = result["twitter_id"]
        out.links.append((tid, result["company"], record_no))
        if tid in seen:
            continue
        seen.add(tid)
        result.update(lineage, record_no=record_no)
        out.rows.append(result)
        out.hashtags[tid] = hashtags_of(result["text"])
    return out


def staged_key(run_id: str, chunk_id: int) -> str:
    """The staging bucket's Parquet object of one chunk's staged rows."""
    return f"tweets/run_id={run_id}/chunk-{chunk_id:05d}.parquet"


def rejected_key(run_id: str, chunk_id: int) -> str:
    """The staging bucket's JSON lines of one chunk's rejected records."""
    return f"rejected/run_id={run_id}/chunk-{chunk_id:05d}.jsonl"
