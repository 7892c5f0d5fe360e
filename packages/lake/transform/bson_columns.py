"""BSON documents built a column at a time, with Arrow's compute functions.

The curator stores each tweet as a small BSON document (``curated_store.stored_document``). Built
as one Python dict per tweet and encoded by PyMongo, a batch of 5,000 cost 17.6 to 21.0 µs per
document; encoded here, 9.6 to 13.3 (docs/benchmarks.md, "… stored documents encoded by column …").
Here every field of the batch is encoded at once: a BSON element is its type byte, its key, then
its value's bytes, so a column of elements is a handful of Arrow kernels (lengths, little-endian
integers viewed from Arrow's own buffers, byte strings joined element-wise), and a column of
documents is its elements joined and framed by their length.
PyMongo sends the bytes as they are (``RawBSONDocument``). ``tests/unit/test_bson_columns.py``
checks the bytes equal PyMongo's encoding of the same values, nulls, large integers and
non-ASCII text included.

Arrow's buffers are read as the machine's byte order, and BSON is little-endian: on a big-endian
machine :func:`documents` refuses to run rather than write wrong bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

_INT32 = (-(1 << 31), (1 << 31) - 1)
_NULL, _STRING, _INT32_T, _INT64_T, _DOUBLE, _DATETIME, _BINARY, _DOC, _ARRAY = (
    b"\x0a",
    b"\x02",
    b"\x10",
    b"\x12",
    b"\x01",
    b"\x09",
    b"\x05",
    b"\x03",
    b"\x04",
)


def _join(*parts: pa.Array | bytes) -> pa.Array:
    return pc.binary_join_element_wise(*parts, b"")


def _fixed(values: pa.Array, width: int) -> pa.Array:
    """Each value's bytes in memory (``width`` bytes each, no nulls), as a binary column."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(values), [None, values.buffers()[1]], offset=values.offset
    )
    return fixed.cast(pa.binary())


def _le32(values: pa.Array) -> pa.Array:
    return _fixed(values.cast(pa.int32()), 4)


def _name(kind: bytes, key: str) -> bytes:
    return kind + key.encode() + b"\x00"


def _or_null(key: str, values: pa.Array, encoded: pa.Array) -> pa.Array:
    """``encoded`` where ``values`` has a value, a BSON null element where it is null."""
    if not values.null_count:
        return encoded
    return pc.if_else(pc.is_valid(values), encoded, pa.scalar(_name(_NULL, key), pa.binary()))


def string(key: str, values: pa.Array) -> pa.Array:
    """UTF-8 strings: int32 length (with the trailing NUL), the bytes, NUL."""
    data = pc.fill_null(values, "").cast(pa.binary())
    encoded = _join(_name(_STRING, key), _le32(pc.add(pc.binary_length(data), 1)), data, b"\x00")
    return _or_null(key, values, encoded)


def integer(key: str, values: pa.Array) -> pa.Array:
    """int32 where the value fits, else int64: what PyMongo writes for a Python int."""
    if not pa.types.is_integer(values.type):  # a bool is BSON's bool, not an integer
        raise TypeError(f"{key}: integers expected, not {values.type}")
    wide = pc.fill_null(values.cast(pa.int64()), 0)
    low, high = (s.as_py() for s in pc.min_max(wide).values()) if len(wide) else (0, 0)
    if _INT32[0] <= low and high <= _INT32[1]:
        encoded = _join(_name(_INT32_T, key), _le32(wide))
    else:
        fits = pc.and_(pc.greater_equal(wide, _INT32[0]), pc.less_equal(wide, _INT32[1]))
        small = _join(_name(_INT32_T, key), _le32(pc.if_else(fits, wide, 0)))
        encoded = pc.if_else(fits, small, _join(_name(_INT64_T, key), _fixed(wide, 8)))
    return _or_null(key, values, encoded)


def double(key: str, values: pa.Array) -> pa.Array:
    data = pc.fill_null(values.cast(pa.float64()), 0.0)
    return _or_null(key, values, _join(_name(_DOUBLE, key), _fixed(data, 8)))


def datetime_ms(key: str, epoch_ms: pa.Array) -> pa.Array:
    """UTC datetimes given as milliseconds since the epoch (int64)."""
    data = pc.fill_null(epoch_ms.cast(pa.int64()), 0)
    return _or_null(key, epoch_ms, _join(_name(_DATETIME, key), _fixed(data, 8)))


def binary(key: str, values: pa.Array) -> pa.Array:
    """Binary values of the generic subtype (0)."""
    data = pc.fill_null(values, b"")
    encoded = _join(_name(_BINARY, key), _le32(pc.binary_length(data)), b"\x00", data)
    return _or_null(key, values, encoded)


def string_list(key: str, lists: pa.ListArray) -> pa.Array:
    """Lists of strings, as BSON arrays (documents keyed "0", "1", …); no null lists or items."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    flat = lists.flatten().cast(pa.binary())  # the items of these rows only, even of a slice
    if lists.null_count or flat.null_count:
        raise ValueError(f"{key}: null lists or items cannot be encoded as arrays of strings")
    # a slice's offsets keep their place in the arrays it was cut from: made to count from 0
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    firsts = pc.take(offsets, pc.list_parent_indices(lists)).cast(pa.int64())
    positions = pc.subtract(pa.array(range(len(flat)), pa.int64()), firsts)
    keys = positions.cast(pa.string()).cast(pa.binary())
    items = _join(_STRING, keys, b"\x00", _le32(pc.add(pc.binary_length(flat), 1)), flat, b"\x00")
    bodies = pc.binary_join(pa.ListArray.from_arrays(offsets, items), b"")
    return _join(_name(_ARRAY, key), _framed(bodies))


def subdocument(key: str, elements: Sequence[pa.Array]) -> pa.Array:
    return _join(_name(_DOC, key), documents(elements))


def _framed(bodies: pa.Array) -> pa.Array:
    """Elements made a document: int32 total length, the elements, NUL."""
    return _join(_le32(pc.add(pc.binary_length(bodies), 5)), bodies, b"\x00")


def documents(elements: Sequence[pa.Array]) -> pa.Array:
    """One BSON document per row, its elements in the order given."""
    if sys.byteorder != "little":
        raise RuntimeError("lake.transform.bson_columns reads Arrow's buffers as little-endian BSON")
    return _framed(_join(*elements))


def packed(lists: pa.ListArray, id_bytes: int) -> pa.Array:
    """Each list of ids as one binary value, ``id_bytes`` little-endian bytes per id (what
    ``curated_store.pack_ids`` makes of one list), from the Arrow buffers of the lists."""
    if id_bytes not in (2, 4):
        raise ValueError(f"ids are packed in 2 or 4 bytes, not {id_bytes}")
    if lists.null_count:
        raise ValueError("null lists of ids cannot be packed")
    values = lists.flatten().cast(pa.uint16() if id_bytes == 2 else pa.uint32())  # raises beyond
    offsets = pc.multiply(pc.subtract(lists.offsets, lists.offsets[0]), id_bytes).cast(pa.int32())
    data = values.buffers()[1] if len(values) else pa.py_buffer(b"")
    return pa.BinaryArray.from_buffers(pa.binary(), len(lists), [None, offsets.buffers()[1], data])
