"""A small, strictly bounds-checked reader of the protobuf wire format.

Enough of https://protobuf.dev/programming-guides/encoding/ to walk an ONNX file without the
``protobuf`` package: varints of at most 10 bytes, length-delimited fields that must end inside their
message, fixed-width fields skipped by size. Groups (wire types 3 and 4), unknown wire types, field
number 0 and a known field with an unexpected wire type are errors. A :class:`Budget` counts the
fields visited across a whole file, so a hostile file cannot make a walk slow.

Nothing here knows ONNX: :mod:`nextword.runtime.onnx_proto` says which fields to read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "I32",
    "I64",
    "LEN",
    "MAX_FIELDS",
    "VARINT",
    "Budget",
    "WireError",
    "count_varints",
    "fields",
    "packed_fixed",
    "packed_varints",
    "signed64",
    "varint",
]

MAX_FIELDS = 2_000_000  # fields visited per file; a nextword file has a few thousand

# Wire types.
VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
_FIXED_SIZE = {I64: 8, I32: 4}
_TERMINATORS = bytes(range(128, 256))  # deleted by translate(): what is left is one byte per varint


class WireError(Exception):
    """The bytes do not follow the protobuf wire format (or exceed the reader's bounds)."""


class Budget:
    """Counts fields visited across a whole file; :data:`MAX_FIELDS` is read when one is created."""

    def __init__(self) -> None:
        self.fields = 0
        self.limit = MAX_FIELDS

    def spend(self, count: int = 1) -> None:
        self.fields += count
        if self.fields > self.limit:
            raise WireError(f"more than {self.limit:,} protobuf fields")


def varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value as unsigned 64-bit, next position)."""
    value = shift = 0
    for i in range(10):
        if pos + i >= end:
            raise WireError(f"varint runs past the end of its message at byte {pos}")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, pos + i + 1
        shift += 7
    raise WireError(f"varint longer than 10 bytes at byte {pos}")


def signed64(value: int) -> int:
    """An unsigned 64-bit varint value read as the two's-complement ``int64`` protobuf stores."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(
    data: bytes, start: int, end: int, budget: Budget, expected: Mapping[int, frozenset[int]], kind: str
) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, a, b) for each field of the message in ``data[start:end]``.

    For varints ``a`` is the value; for length-delimited fields ``data[a:b]`` is the payload; for
    fixed-width fields ``data[a:b]`` holds the bytes. ``expected`` maps the field numbers the caller
    reads to the wire types they may have (a repeated number may come packed or one by one); any other
    number is skipped. ``kind`` names the message in errors.
    """
    pos = start
    while pos < end:
        budget.spend()
        key, pos = varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 0x1FFF_FFFF:
            raise WireError(f"invalid field number {number} at byte {pos}")
        if wire == VARINT:
            value, pos = varint(data, pos, end)
            item = (number, wire, value, 0)
        elif wire == LEN:
            length, pos = varint(data, pos, end)
            if length > end - pos:
                raise WireError(f"field {number} of {length:,} bytes runs past the end at byte {pos}")
            item = (number, wire, pos, pos + length)
            pos += length
        elif wire in _FIXED_SIZE:
            size = _FIXED_SIZE[wire]
            if size > end - pos:
                raise WireError(f"fixed-width field {number} runs past the end at byte {pos}")
            item = (number, wire, pos, pos + size)
            pos += size
        elif wire in (SGROUP, EGROUP):
            raise WireError(f"field {number} uses protobuf groups (wire type {wire}), which ONNX never does")
        else:
            raise WireError(f"field {number} has invalid wire type {wire}")
        allowed = expected.get(number)
        if allowed is not None and wire not in allowed:
            raise WireError(f"{kind} field {number} has wire type {wire}, expected {min(allowed)}")
        yield item


def count_varints(data: bytes, start: int, end: int) -> int:
    """How many varints a packed field holds, without decoding them (every varint ends in one byte
    below 0x80). A field that does not end on a varint boundary is an error."""
    if start < end and data[end - 1] & 0x80:
        raise WireError(f"packed varints run past the end of their field at byte {end}")
    return len(data[start:end].translate(None, _TERMINATORS))


def packed_varints(data: bytes, start: int, end: int) -> list[int]:
    """Decode a packed field of varints (callers bound its size first)."""
    values, pos = [], start
    while pos < end:
        value, pos = varint(data, pos, end)
        values.append(value)
    return values


def packed_fixed(data: bytes, start: int, end: int, fmt: str) -> list[Any]:
    """Decode a packed field of fixed-width little-endian values (``fmt`` is a struct code: f, d, q)."""
    size = struct.calcsize(fmt)
    if (end - start) % size:
        raise WireError(f"packed field of {end - start} bytes is not a whole number of {size}-byte values")
    return list(struct.unpack_from(f"<{(end - start) // size}{fmt}", data, start))
