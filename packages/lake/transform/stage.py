"""Turn the records of one raw chunk into staged rows, company links and quarantined rejects.

The rules are :func:`lake.transform.clean.validate`'s, one record at a time. Checking them per record
in Python was most of the stager's CPU (docs/benchmarks.md), so a chunk is checked by column first:
:func:`_checked` types every record in polars with checks that are *at least as strict* as
``validate``'s (ASCII digits only, no surrounding whitespace, dates in range, …) and produce the
same values for what they accept. What they do not accept (rejects, and the rare valid record the
columns could not vouch for) goes through ``validate`` itself, so every reject keeps exactly its
reason, column and value, and no valid record is lost. Only the text cleaning stays per row
(``clean_text``: its patterns need look-behinds that polars' regex engine does not have).
``tests/unit/test_stage_columns.py`` compares the whole with ``validate`` record by record.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from lake.schema import COUNT_MAX, MAX_LEN, RAW_COLUMNS, STAGED_ROW, TWITTER_ID_MAX, TWITTER_ID_MIN
from lake.transform.clean import DEFAULT_RULES, Rejection, Rules, clean_text, hashtags_of, validate
from lake.transform.csvrecords import Record, iter_records

POLARS_OF_KIND: dict[str, pl.DataType | type[pl.DataType]] = {
    "id": pl.Int64,
    "time": pl.Datetime("us", "UTC"),
    "text": pl.Utf8,
    "text?": pl.Utf8,
    "count": pl.Int64,
    "int": pl.Int64,
    "polarity": pl.Float64,
}
# A chunk's staged rows (and the staged Parquet copy): the staged row's columns
# (lake.schema.STAGED_ROW) but the load time
STAGED_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    name: POLARS_OF_KIND[kind] for name, kind in STAGED_ROW if kind != "stamp"
}
_CSV_TIME = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
# Python's whitespace (str.strip, str.isspace) is Unicode's White_Space, polars' ``\s``, plus the
# four information separators U+001C-U+001F
_PY_SPACE = r"[\s\x1c-\x1f]"
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, as surrogateescape reads it


@dataclass
class ChunkRows:
    records: int = 0
    # first valid occurrence per twitter_id, in record order, STAGED_SCHEMA's columns
    frame: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=STAGED_SCHEMA))
    links: list[tuple[int, str, int]] = field(default_factory=list)  # every valid record
    rejects: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)
    hashtags: dict[int, list[str]] = field(default_factory=dict)  # only tweets that have some

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The staged rows as dicts (for tests and small callers; the stager keeps the frame)."""
        return self.frame.to_dicts()


def staged_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Staged rows (dicts with STAGED_SCHEMA's keys) as the frame :class:`ChunkRows` holds."""
    return pl.DataFrame(rows, schema=STAGED_SCHEMA) if rows else pl.DataFrame(schema=STAGED_SCHEMA)


def stage_records(
    data: bytes,
    columns: list[str],
    first_record: int,
    lineage: dict[str, Any],
    rules: Rules = DEFAULT_RULES,
) -> ChunkRows:
    """Validate and clean every record of ``data`` under ``rules``; ``lineage`` (``run_id``,
    ``chunk_id``, ``raw_key``) is added to each staged row."""
    records = list(iter_records(io.BytesIO(data)))
    out = ChunkRows(records=len(records))
    typed, passed = _checked(records, columns, _is_utf8(data), rules)
    staged: list[pl.DataFrame] = []
    if typed.height:
        staged.append(typed)
    by_row: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        if i in passed:
            continue
        record_no = first_record + i
        if rec.fields is None:
            out.rejects.append((record_no, "csv_syntax", None, (rec.error or "")[:200]))
            continue
        result = validate(rec.fields, columns, rules)
        if isinstance(result, Rejection):
            out.rejects.append((record_no, result.reason, result.column, result.value))
        else:
            by_row.append(result | {"record_no": i})
    if by_row:
        staged.append(pl.DataFrame(by_row, schema=typed.schema))
    valid = pl.concat(staged).sort("record_no") if staged else typed
    valid = valid.with_columns(pl.col("record_no") + first_record)
    ids, companies, nos = (valid[c].to_list() for c in ("twitter_id", "company", "record_no"))
    out.links = list(zip(ids, companies, nos, strict=True))
    first = valid.unique("twitter_id", keep="first", maintain_order=True)
    out.frame = first.with_columns(
        run_id=pl.lit(lineage.get("run_id"), pl.Utf8),
        chunk_id=pl.lit(lineage.get("chunk_id"), pl.Int64),
        raw_key=pl.lit(lineage.get("raw_key"), pl.Utf8),
    ).select(list(STAGED_SCHEMA))
    for tid, text in zip(first["twitter_id"], first["text"], strict=True):
        if "#" in text and (tags := hashtags_of(text)):
            out.hashtags[tid] = tags
    return out


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _checked(
    records: list[Record], columns: list[str], utf8: bool, rules: Rules
) -> tuple[pl.DataFrame, set[int]]:
    """The records the column checks accept, typed and cleaned (``record_no``: the index in
    ``records``), and the set of those indexes; every other record is ``validate``'s to judge.

    In a chunk that is not valid UTF-8 as a whole, the records holding bytes that are not (as
    surrogate escapes, which cannot enter polars) are left to ``validate``."""
    width = len(columns)
    index = [i for i, r in enumerate(records) if r.fields is not None and len(r.fields) == width]
    if not utf8:
        index = [i for i in index if not _ESCAPED_BYTE.search("".join(records[i].fields or ()))]
    if not index or sorted(columns) != sorted(RAW_COLUMNS):
        return _empty_typed(), set()
    values = list(zip(*(records[i].fields or () for i in index), strict=True))
    raw = pl.DataFrame(
        [pl.Series(name, col, pl.Utf8) for name, col in zip(columns, values, strict=True)]
        + [pl.Series("record_no", index, pl.Int64)]
    )
    typed = raw.select(
        pl.col("record_no"),
        _ok(columns).alias("ok"),
        pl.col("twitter_id").cast(pl.Int64, strict=False),
        pl.col("created_at").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC", strict=False),
        _company().alias("company"),
        *(pl.col(c).cast(pl.Int64, strict=False) for c in ("followers", "friends", "retweet_count")),
        _nonblank("location").alias("location"),
        "screenname",
        "username",
        "search_query",
        "text",
        pl.col("polarity").cast(pl.Float64, strict=False),
    ).filter(pl.col("ok") & pl.col("created_at").is_not_null())
    # the text cleaning and the rounding of the polarity stay Python's, value by value (same results)
    cleaned = [clean_text(t) for t in typed["text"]]
    rounded = [round(p, 4) for p in typed["polarity"]]
    typed = typed.with_columns(
        pl.Series("clean_text", cleaned, pl.Utf8), pl.Series("polarity", rounded, pl.Float64)
    ).filter(pl.col("clean_text").str.len_chars() >= rules.min_clean_text_chars)
    typed = typed.with_columns(
        sentiment=pl.when(pl.col("polarity") >= rules.sentiment_positive)
        .then(pl.lit("positive"))
        .when(pl.col("polarity") <= rules.sentiment_negative)
        .then(pl.lit("negative"))
        .otherwise(pl.lit("neutral"))
    ).select(_TYPED)
    return typed, set(typed["record_no"].to_list())


_TYPED = [
    "twitter_id",
    "created_at",
    "company",
    "followers",
    "friends",
    "retweet_count",
    "location",
    "screenname",
    "username",
    "search_query",
    "text",
    "clean_text",
    "polarity",
    "sentiment",
    "record_no",
]


def _empty_typed() -> pl.DataFrame:
    return pl.DataFrame(schema={c: STAGED_SCHEMA[c] for c in _TYPED})


def _nonblank(column: str) -> pl.Expr:
    """``value.strip() or None`` (polars strips White_Space; the checks send any value holding
    U+001C-U+001F, the rest of Python's whitespace, to ``validate``)."""
    value = pl.col(column).str.strip_chars()
    return pl.when(value != "").then(value)


def _company() -> pl.Expr:
    """``validate``'s company: the first of these columns that is not blank."""
    return pl.coalesce(*(_nonblank(c) for c in ("group_name", "partition_1", "file_name")))


def _ok(columns: list[str]) -> pl.Expr:
    """True where a record passes every rule the columns can vouch for (stricter than ``validate``)."""
    checks = [pl.col(c).str.len_chars() <= limit for c, limit in MAX_LEN.items() if c in columns] + [
        ~pl.col(c).str.contains(r"[\x1c-\x1f]") for c in columns if c != "text"
    ]
    digits = pl.col("twitter_id").str.contains(r"^[0-9]{1,19}$")
    tid = pl.col("twitter_id").cast(pl.Int64, strict=False)
    checks += [digits, tid.is_between(TWITTER_ID_MIN, TWITTER_ID_MAX)]
    checks.append(
        pl.col("created_at").str.contains(f"^{_CSV_TIME}$") & ~pl.col("created_at").str.starts_with("0000")
    )
    for name in ("followers", "friends", "retweet_count"):
        n = pl.col(name).cast(pl.Int64, strict=False)
        checks += [pl.col(name).str.contains(r"^[0-9]{1,10}$"), n.is_between(0, COUNT_MAX)]
    polarity = pl.col("polarity").cast(pl.Float64, strict=False)
    checks += [
        pl.col("polarity").str.contains(r"^-?[0-9]{1,3}(\.[0-9]{1,17})?$"),
        polarity.is_between(-1.0, 1.0),
    ]
    checks.append(pl.col("text").str.contains(f"[^{_PY_SPACE[1:-1]}]"))  # not blank, as str.strip
    checks.append(_company().is_not_null())
    return pl.all_horizontal(checks).fill_null(False)


def staged_key(run_id: str, chunk_id: int) -> str:
    """The staging bucket's Parquet object of one chunk's staged rows."""
    return f"tweets/run_id={run_id}/chunk-{chunk_id:05d}.parquet"


def rejected_key(run_id: str, chunk_id: int) -> str:
    """The staging bucket's JSON lines of one chunk's rejected records."""
    return f"rejected/run_id={run_id}/chunk-{chunk_id:05d}.jsonl"
