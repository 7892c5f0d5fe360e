"""``lake.transform.bson_columns``: BSON documents built a column at a time are, byte for byte, what
PyMongo encodes from the same values as Python dicts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.transform import bson_columns as bc
from lake.transform.curated_store import pack_ids

INT64 = (-(2**63), 2**63 - 1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


PAD: dict[str, Any] = {"s": None, "n": None, "x": None, "at": None, "tags": [], "ids": []}


def encoded(rows: list[dict[str, Any]], id_bytes: int = 2) -> list[bytes]:
    """The rows (keys s, n, x, at, tags, ids, sub) encoded by the column encoders, each column a
    slice of a longer array (a batch is a slice of its chunk), with rows of nulls around it."""
    whole = [PAD, *rows, PAD, PAD]

    def column(values: list[Any], kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).slice(1, len(rows))

    n = column([r["n"] for r in whole], pa.int64())
    at = column([None if r["at"] is None else _ms(r["at"]) for r in whole], pa.int64())
    ids = bc.packed(pa.array([r["ids"] for r in whole], pa.list_(pa.int64())), id_bytes).slice(1, len(rows))
    docs = bc.documents(
        [
            bc.string("s", column([r["s"] for r in whole], pa.string())),
            bc.integer("n", n),
            bc.double("x", column([r["x"] for r in whole], pa.float64())),
            bc.datetime_ms("at", at),
            bc.string_list("tags", column([r["tags"] for r in whole], pa.list_(pa.string()))),
            bc.binary("ids", ids),
            bc.subdocument(
                "sub",
                [bc.string("run", column([r["s"] or "" for r in whole], pa.string())), bc.integer("k", n)],
            ),
        ]
    )
    return [bytes(raw) for raw in docs.to_pylist()]


def by_pymongo(rows: list[dict[str, Any]], id_bytes: int = 2) -> list[bytes]:
    return [
        bson.encode(
            {
                "s": r["s"],
                "n": r["n"],
                "x": r["x"],
                "at": r["at"],
                "tags": r["tags"],
                "ids": pack_ids(r["ids"], id_bytes),
                "sub": {"run": r["s"] or "", "k": r["n"]},
            }
        )
        for r in rows
    ]


def _ms(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
ROW = st.fixed_dictionaries(
    {
        "s": st.none() | TEXT,
        "n": st.none() | st.integers(*INT64) | st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 0]),
        "x": st.none() | st.floats() | st.sampled_from([-0.0, 0.6369, float("inf"), float("nan")]),
        "at": st.none()
        | st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
        ),
        "tags": st.lists(TEXT, max_size=12),
        "ids": st.lists(st.integers(0, 2**32 - 1), max_size=20),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=12))
def test_any_values_encode_as_pymongo_encodes_them(rows: list[dict[str, Any]]) -> None:
    assert encoded(rows, 4) == by_pymongo(rows, 4)  # NaN too: the same bytes, whatever its payload
    narrow = [r | {"ids": [i % 2**16 for i in r["ids"]]} for r in rows]
    assert encoded(narrow, 2) == by_pymongo(narrow, 2)


def test_a_list_longer_than_any_tweet_holds_keeps_every_index_key() -> None:
    tags = [f"t{i}" for i in range(12_000)]
    got = bc.documents([bc.string_list("tags", pa.array([tags, ["x"]], pa.list_(pa.string())))])
    assert got.to_pylist() == [bson.encode({"tags": tags}), bson.encode({"tags": ["x"]})]


def test_a_null_outside_a_slice_of_lists_does_not_matter_one_inside_is_refused() -> None:
    lists = pa.array([["a", None], ["b"], ["c", "d"], None], pa.list_(pa.string()))
    got = bc.documents([bc.string_list("tags", lists.slice(1, 2))]).to_pylist()
    assert got == [bson.encode({"tags": ["b"]}), bson.encode({"tags": ["c", "d"]})]
    with pytest.raises(ValueError, match="tags"):
        bc.string_list("tags", lists.slice(0, 2))
    with pytest.raises(ValueError, match="tags"):
        bc.string_list("tags", lists.slice(2, 2))


def test_columns_in_chunks_encode_as_one() -> None:
    chunked = pa.chunked_array([pa.array([1, 2**40]), pa.array([3])])
    strings = pa.chunked_array([pa.array(["a"]), pa.array(["b", "c"])])
    got = bc.documents([bc.integer("n", chunked), bc.string("s", strings.combine_chunks())]).to_pylist()
    assert got == [bson.encode({"n": n, "s": s}) for n, s in ((1, "a"), (2**40, "b"), (3, "c"))]


def test_what_the_encoders_do_not_write_as_pymongo_would_is_refused() -> None:
    with pytest.raises(TypeError, match="flag"):
        bc.integer("flag", pa.array([True, False]))  # PyMongo writes BSON booleans
    with pytest.raises(ValueError, match="2 or 4"):
        bc.packed(pa.array([[1]], pa.list_(pa.int32())), 3)


def test_arrays_that_start_at_an_offset_encode_their_own_rows() -> None:
    values = pa.array([f"t{i}é" for i in range(100)])
    numbers = pa.array(range(100), pa.int64())
    got = bc.documents(
        [bc.string("s", values.slice(40, 7)), bc.integer("n", numbers.slice(40, 7))]
    ).to_pylist()
    assert got == [bson.encode({"s": f"t{i}é", "n": i}) for i in range(40, 47)]


@pytest.mark.parametrize("id_bytes", [2, 4])
def test_packed_ids_are_pack_ids_of_each_list(id_bytes: int) -> None:
    top = 2**16 - 1 if id_bytes == 2 else 70_000
    lists = [[101, 2_000, top, 102], [], [0], list(range(50))]
    arrays = pa.array([[7], *lists], pa.list_(pa.int32())).slice(1)  # a slice, as a batch's may be
    assert bc.packed(arrays, id_bytes).to_pylist() == [pack_ids(ids, id_bytes) for ids in lists]


def test_a_list_with_a_null_is_refused_not_encoded_wrong() -> None:
    with pytest.raises(ValueError, match="tags"):
        bc.string_list("tags", pa.array([["a", None]], pa.list_(pa.string())))
