"""The stager's column checks (``lake.transform.stage``) give what ``validate``, record by record,
gives: the same staged rows, links, rejects and hashtags, on generated chunks and on records built
from the values each rule is most likely to get wrong."""

from __future__ import annotations

import csv
import io
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.schema import RAW_COLUMNS
from lake.transform.clean import DEFAULT_RULES, Rejection, Rules, hashtags_of, validate
from lake.transform.csvrecords import iter_records
from lake.transform.generate import write_csv
from lake.transform.stage import _PY_SPACE, stage_records
from tests.unit.test_clean import fields

LINEAGE = {"run_id": "r1", "chunk_id": 3, "raw_key": "runs/r1/x.csv"}
COLUMNS = list(RAW_COLUMNS)


def by_record(data: bytes, columns: list[str], first_record: int, rules: Rules) -> dict[str, Any]:
    """What staging a chunk gave when every record went through ``validate`` (the reference)."""
    rows: list[dict[str, Any]] = []
    links: list[tuple[int, str, int]] = []
    rejects: list[tuple[int, str, str | None, str | None]] = []
    hashtags: dict[int, list[str]] = {}
    seen: set[int] = set()
    for i, rec in enumerate(iter_records(io.BytesIO(data))):
        no = first_record + i
        if rec.fields is None:
            rejects.append((no, "csv_syntax", None, (rec.error or "")[:200]))
            continue
        result = validate(rec.fields, columns, rules)
        if isinstance(result, Rejection):
            rejects.append((no, result.reason, result.column, result.value))
            continue
        tid = result["twitter_id"]
        links.append((tid, result["company"], no))
        if tid in seen:
            continue
        seen.add(tid)
        rows.append(result | LINEAGE | {"record_no": no})
        if tags := hashtags_of(result["text"]):
            hashtags[tid] = tags
    return {"rows": rows, "links": links, "rejects": rejects, "hashtags": hashtags}


def staged(
    data: bytes, columns: list[str] = COLUMNS, first: int = 1, rules: Rules = DEFAULT_RULES
) -> dict[str, Any]:
    out = stage_records(data, columns, first, LINEAGE, rules)
    return {"rows": out.rows, "links": out.links, "rejects": out.rejects, "hashtags": out.hashtags}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_generated_chunk_with_many_malformed_records_stages_as_record_by_record(seed: int) -> None:
    buf = io.BytesIO()
    write_csv(buf, 3000, seed=seed, malformed_share=0.1)
    data = buf.getvalue().split(b"\n", 1)[1]  # records only
    got, want = staged(data, first=7), by_record(data, COLUMNS, 7, Rules())
    assert got == want
    assert len(want["rejects"]) > 100 and len(want["rows"]) > 2000  # both paths were exercised


def test_the_setting_rules_apply_as_record_by_record() -> None:
    buf = io.BytesIO()
    write_csv(buf, 2000, seed=3, malformed_share=0.01)
    data = buf.getvalue().split(b"\n", 1)[1]
    rules = Rules(sentiment_positive=0.3, sentiment_negative=-0.2, min_clean_text_chars=60)
    got, want = staged(data, rules=rules), by_record(data, COLUMNS, 1, rules)
    assert got == want
    assert any(r[1] == "clean_text_too_short" for r in want["rejects"])


def test_columns_in_another_order_stage_the_same() -> None:
    buf = io.BytesIO()
    write_csv(buf, 500, seed=4, malformed_share=0.05)
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8", "surrogateescape"))))[1:]
    order = sorted(range(len(COLUMNS)), key=lambda i: COLUMNS[i][::-1])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [[r[i] for i in order] if len(r) == len(COLUMNS) else r for r in rows]
    )
    data, columns = out.getvalue().encode("utf-8", "surrogateescape"), [COLUMNS[i] for i in order]
    assert staged(data, columns) == by_record(data, columns, 1, Rules())


def test_pythons_whitespace_is_polars_whitespace_and_the_four_separators() -> None:
    """The column checks strip and test blankness with polars; every code point agrees with Python."""
    cps = [c for c in range(0x3100) if not 0xD800 <= c <= 0xDFFF] + [0xFEFF, 0x1F600]
    chars = pl.Series([chr(c) for c in cps])
    assert chars.str.contains(f"^{_PY_SPACE}$").to_list() == [chr(c).isspace() for c in cps]


SPACES = st.sampled_from([" ", "\t", "\x1c", "\u00a0", "\u2003", "\u3000", "\x85", ""])
DIGITS = st.sampled_from(["0", "1", "7", "٣", "²", "９"])


def tricky(column: str) -> st.SearchStrategy[str]:
    """Values near each rule's edges: Unicode digits and spaces, signs, exponents, overflow…"""
    spaced = st.builds(lambda a, v, b: a + v + b, SPACES, st.sampled_from(["", "x"]), SPACES)
    numbers = st.one_of(
        st.integers(-5, 2**64).map(str),
        st.lists(DIGITS, min_size=1, max_size=21).map("".join),
        st.sampled_from(["", "-0", "+1", "1e3", "0x1f", "1_000", "00", "4294967295", "4294967296"]),
    )
    spaced_numbers = st.builds(lambda a, v, b: a + v + b, SPACES, numbers, SPACES)
    if column in ("twitter_id", "followers", "friends", "retweet_count"):
        return st.one_of(numbers, spaced_numbers)
    if column == "polarity":
        return st.one_of(
            st.floats(-1.5, 1.5).map(repr),
            st.floats(-1, 1).map(lambda f: f"{f:.5f}"),
            st.sampled_from(
                [
                    "nan",
                    "inf",
                    "-inf",
                    "1",
                    "-1",
                    "1.0000",
                    "-0.0",
                    ".5",
                    "5.",
                    " 0.5",
                    "1e-3",
                    "0.00005",
                    "-0.00005",
                    "0.050000000000000003",
                    "0.12345",
                    "-0.99995",
                ]
            ),
        )
    if column == "created_at":
        return st.one_of(
            st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
            st.sampled_from(
                [
                    "2020-02-30 10:00:00",
                    "2020-02-29 23:59:59",
                    "2021-02-29 00:00:00",
                    "0000-01-01 00:00:00",
                    "2020-07-12 24:00:00",
                    "2020-07-12 10:00:60",
                    " 2020-07-12 10:00:00",
                    "2020-07-12T10:00:00",
                    "2020-7-12 10:00:00",
                    "２020-07-12 10:00:00",
                    "2020-07-12 10:00:00\x1c",
                ]
            ),
        )
    if column == "text":
        return st.one_of(
            spaced, st.text(max_size=30), st.sampled_from(["@a #b https://x.y &amp; 😀", "x" * 4001])
        )
    return st.one_of(spaced, st.text(max_size=10), st.sampled_from(["Apple", "x" * 256]))


BASE = dict(zip(COLUMNS, fields(), strict=True))  # test_clean's valid record
# a valid record with one to three of its values replaced by tricky ones (so that most records sit
# right at a rule's edge, where the column checks and validate could part)
RECORD = st.dictionaries(st.sampled_from(COLUMNS), st.none(), min_size=1, max_size=3).flatmap(
    lambda changed: st.tuples(*(tricky(c) if c in changed else st.just(BASE[c]) for c in COLUMNS))
)


@settings(max_examples=300, deadline=None)
@given(st.lists(RECORD, min_size=1, max_size=12))
def test_records_at_each_rules_edges_stage_as_record_by_record(records: list[tuple[str, ...]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records)
    data = out.getvalue().encode("utf-8", "surrogatepass")
    assert staged(data) == by_record(data, COLUMNS, 1, Rules())
