"""Parsing one record of a PatentsView table, and the reasons a record is malformed.

Fields are separated by tabs; a field is quoted (``"..."``, a quote inside doubled) or bare (no quote,
no tab). Bytes that are not UTF-8 arrive as lone surrogates (``surrogateescape``).
"""

from __future__ import annotations

import re

__all__ = [
    "BAD_QUOTING",
    "HOLDS_NUL",
    "SURROGATE",
    "UNCLOSED",
    "not_utf8",
    "parse_record",
    "split_fields",
    "too_long",
]

# One field of a record: quoted (doubled quotes inside) or bare (no quote, no tab), then a tab or the end.
_FIELD = re.compile(r'"([^"]*(?:""[^"]*)*)"(?=\t|\Z)|([^\t"]*)(?=\t|\Z)')
SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as decoded by surrogateescape
BAD_QUOTING = "bad quoting: a quote inside a bare field, or text after a closing quote"
UNCLOSED = "a quoted field that is never closed"
# A corpus file with a NUL is refused by the corpus readers (and csv before Python 3.11 cannot write one).
HOLDS_NUL = (
    "a NUL character (a zero byte) in a field nextword takes; corpus readers refuse a file holding one"
)


def too_long(max_record_bytes: int) -> str:
    """Why a record over the cap is skipped."""
    return f"longer than {max_record_bytes:,} bytes (--max-record-bytes, max_record_bytes)"


def parse_record(record: str, ncols: int, idx: tuple[int, ...]) -> tuple[str, ...] | str:
    """The wanted values of one record, or the reason it is malformed."""
    values = _wanted_values(record, ncols, idx)
    # the record's own check first: a few ns, where the fields' cost a quarter of a parse
    if "\x00" in record and isinstance(values, tuple) and any("\x00" in value for value in values):
        return HOLDS_NUL
    return values


def _wanted_values(record: str, ncols: int, idx: tuple[int, ...]) -> tuple[str, ...] | str:
    if record[-1:] == "\r":
        record = record[:-1]
    if not record.isascii() and SURROGATE.search(record):
        if "\n" in record and split_fields(record) is None:
            return BAD_QUOTING  # lines joined after a stray quote: they will be read again
        return not_utf8(record)
    cells = record.split("\t")
    if len(cells) == ncols:  # the common case: wanted fields without tabs or doubled quotes
        values = []
        for k in idx:
            value = cells[k]
            if value[:1] == '"' and value[-1:] == '"' and len(value) > 1:
                value = value[1:-1]
            if '"' in value:
                break
            values.append(value)
        else:
            return tuple(values)
    fields = split_fields(record)
    if fields is None:
        return BAD_QUOTING
    if len(fields) != ncols:
        return f"{len(fields)} field(s), expected {ncols}"
    return tuple(fields[k] for k in idx)


def split_fields(record: str) -> list[str] | None:
    """The fields of one record, quotes removed and doubled quotes undone; None if it is badly quoted."""
    fields = []
    position, end = 0, len(record)
    while True:
        match = _FIELD.match(record, position)
        if match is None:
            return None
        quoted = match.group(1)
        fields.append(quoted.replace('""', '"') if quoted is not None else match.group(2))
        position = match.end()
        if position == end:
            return fields
        position += 1  # the tab


def not_utf8(record: str) -> str:
    """Why a record decoded with surrogateescape was not UTF-8, with the offending byte's position."""
    try:
        record.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"bytes that are not UTF-8 ({exc.reason} at byte {exc.start} of the row)"
    return "bytes that are not UTF-8"
