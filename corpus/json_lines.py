"""JSON Lines corpora: one object per line, its text in a string field; and what to say of a .json file,
which nextword does not read by its name.

Problems raise :class:`CorpusError` naming the file, the line (and the column, for JSON that does not
parse), what the line must be, and the fix.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nextword.runtime.checks import shown

from .config import CorpusConfig
from .errors import CorpusError
from .lines import MAX_RECORD_LINE_CHARS, bounded_lines

__all__ = ["JSONL_SUFFIXES", "json_document_error", "read_jsonl"]

logger = logging.getLogger(__name__)

JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters of a .json file read to tell JSON Lines from one JSON document: the first record, and the
# start of the second.
_SNIFF_CHARS = 1 << 16
# What JSON calls the values a line may hold, by Python type.
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false"}


def read_jsonl(path: Path, config: CorpusConfig, log: bool) -> Iterator[str]:
    """The text of each record of ``path`` ('' for a record whose field is null or empty). A record
    without text is no document: with ``log``, how many there were is logged; a field empty in every
    record of a file whose records have other fields raises :class:`CorpusError` naming them."""
    field = config.json_field
    records = empty = 0
    others: set[str] = set()
    with path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(bounded_lines(f, path, MAX_RECORD_LINE_CHARS, "a record"), 1):
            if not line.strip():
                continue
            record = _parse(path, line_no, line, field)
            if not isinstance(record, dict):
                raise CorpusError(_not_an_object(path, line_no, record, field))
            if field not in record:
                raise CorpusError(
                    f"{path}, line {line_no}: no field {field!r} (found {sorted(record)}); "
                    "choose the field with `json_field`"
                )
            text = record[field]
            if text is not None and not isinstance(text, str):
                raise CorpusError(_not_a_string(path, line_no, text, field))
            if text and not text.isascii() and (bad := _SURROGATE.search(text)):
                # Only a JSON escape can make one ("\ud800"): the UTF-8 decoder refuses them in the bytes.
                raise CorpusError(
                    f"{path}, line {line_no}: field {field!r} holds {bad.group()!r}, half of a "
                    "UTF-16 surrogate pair escaped on its own, which is not text; fix the \\u escape in "
                    "the file (a character above U+FFFF needs both halves)"
                )
            records += 1
            if not text or text.isspace():
                empty += 1
                others.update(
                    key for key, value in record.items() if isinstance(value, str) and value.strip()
                )
            yield text or ""
    if records and empty == records and others:
        raise CorpusError(
            f"{path}: field {field!r} is null or empty in all {records:,} records; fields that "
            f"hold text are {sorted(others)[:10]}. Choose the field that holds the text with `json_field`"
        )
    if log and empty:
        logger.warning(
            "%s: %s of %s records have no text (their field %r is null or empty) and are left out",
            path,
            f"{empty:,}",
            f"{records:,}",
            field,
        )


def _parse(path: Path, line_no: int, line: str, field: str) -> Any:
    """The JSON value of one line of ``path``, or :class:`CorpusError` saying why it is none."""
    line = line.rstrip("\r\n")  # a string cut short at the end of the line is unterminated, not "\n"
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(_not_json(path, line_no, line, exc)) from None
    except ValueError as exc:  # an integer longer than Python converts
        raise CorpusError(_long_integer(path, line_no, exc, field)) from None
    except RecursionError:
        raise CorpusError(
            f"{path}, line {line_no}: JSON nested too deeply to read; a document is one object "
            f"with its text in a string field ({field!r})"
        ) from None


def _not_json(path: Path, line_no: int, line: str, exc: json.JSONDecodeError) -> str:
    """The message for a line ``json`` could not parse: its reason, whole (``exc.msg`` of some ends
    in "at", the position cut off), with the column, and for a control character which one it is."""
    # "Invalid control character at", "Unterminated string starting at": the position is said before
    reason = exc.msg.removesuffix(" at").removesuffix(" starting")
    if exc.msg.startswith("Invalid control character"):
        reason += (
            f" {line[exc.pos]!r} inside a string, where JSON writes it escaped: \\t for a tab, \\n for a "
            "line break, \\u00XX for the others"
        )
    elif exc.msg.startswith("Unterminated string"):
        reason += ": it starts here, and the line ends before its closing quote"
    elif exc.msg == "Extra data":
        reason += ": more than one JSON value on the line"
    return (
        f"{path}, line {line_no}, column {exc.colno}: not valid JSON ({reason}). Each line of a JSON Lines "
        "file is one JSON object, written on that line: fix the line, or write the file again with a JSON "
        "library"
    )


def _not_an_object(path: Path, line_no: int, value: object, field: str) -> str:
    """The message for a line that holds JSON other than an object (an array, a string, a number)."""
    kind = "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
    fix = ""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        fix = "; this array holds objects: write each of them on a line of its own"
    return (
        f"{path}, line {line_no}: the line holds {kind} ({shown(value)}), not a JSON object; each line of "
        f'a JSON Lines file must be one object with its text in the string field {field!r}, such as {{"'
        f'{field}": "A document."}}{fix}'
    )


def _not_a_string(path: Path, line_no: int, value: object, field: str) -> str:
    """The message for a record whose text field holds a number, array, object or boolean."""
    kind = "an object" if isinstance(value, dict) else _JSON_KINDS.get(type(value), type(value).__name__)
    return (
        f"{path}, line {line_no}: field {field!r} holds {kind} ({shown(value)}), not a string; it must "
        "hold the document's text as a JSON string in double quotes (or null for a record without text). "
        "Write the text as a string, or choose the field that holds it with `json_field`"
    )


def _long_integer(path: Path, line_no: int, exc: ValueError, field: str) -> str:
    """The message for a JSON line whose integer ``json`` refused to convert (``exc``): Python reads
    integers of at most ``sys.get_int_max_str_digits()`` digits."""
    if "digits" not in str(exc):
        return f"{path}, line {line_no}: not valid JSON ({exc})"
    limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
    return (
        f"{path}, line {line_no}: an integer of more than {limit} digits, more than can be read; nextword "
        f"reads only the {field!r} field: write the number in quotes (as a string) or leave it out"
    )


def json_document_error(path: Path) -> CorpusError:
    """The error for a .json file, which nextword does not read by its name: JSON Lines in it is read
    with ``format='jsonl'``; one JSON document (an array of records, say) read as plain text would train
    a model on its brackets and quotes, and read whole it would not stream, so it is written one record
    a line first. The fix offered follows what the file's first characters hold."""
    said = f"{path}: nextword reads JSON Lines, one object per line with its text in `json_field`"
    kind = _json_layout(path)
    if kind == "lines":
        return CorpusError(
            f"{path} holds JSON Lines (one object per line), and nextword reads a file as JSON Lines by its "
            "name only when it ends in .jsonl or .ndjson: pass format='jsonl' to read it as JSON Lines, or "
            "rename it to .jsonl"
        )
    if kind == "array":
        out = shlex.quote(str(path.with_suffix(".jsonl")))
        return CorpusError(
            f"{said}, and this .json file is one JSON array: write each of its objects on a line of its own "
            f"to a .jsonl file (jq -c '.[]' {shlex.quote(str(path))} > {out}, say) and pass that"
        )
    return CorpusError(
        f"{said}, not a single JSON document: write the records one per line to a .jsonl file and pass "
        "that; if this file holds one object per line already, pass format='jsonl'"
    )


def _json_layout(path: Path) -> str:
    """``lines`` when the start of the .json file ``path`` is an object on its first line followed by
    nothing or by another object (JSON Lines), ``array`` when it opens an array, else ``document``
    (pretty-printed, not JSON, a first record longer than :data:`_SNIFF_CHARS`, or unreadable)."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            head = f.read(_SNIFF_CHARS).lstrip()
    except (OSError, UnicodeDecodeError):  # read_documents names these when it reads the file
        return "document"
    if head.startswith("["):
        return "array"
    try:
        first, end = json.JSONDecoder().raw_decode(head)
    except (ValueError, RecursionError):
        return "document"
    # a string holds no raw line break: one in the object means a pretty-printed layout
    if not isinstance(first, dict) or "\n" in head[:end]:
        return "document"
    rest, _, after = head[end:].partition("\n")
    if rest.strip():
        return "document"
    after = after.lstrip()
    return "lines" if not after or after.startswith("{") else "document"
