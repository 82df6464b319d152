"""Reading documents from corpus files: CSV, JSON Lines and plain text.

One document is in memory at a time (:func:`read_documents`, :func:`read_corpus`), or all of them for
small corpora (:func:`load_documents`). Problems with a file raise :class:`CorpusError` naming the file,
and the line where there is one.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from .config import AUTO_COLUMN, TEXT_COLUMNS, CorpusConfig
from .errors import CorpusError, os_error

__all__ = [
    "count_documents",
    "detect_format",
    "load_documents",
    "not_text",
    "read_corpus",
    "read_documents",
]

logger = logging.getLogger(__name__)

_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK = re.compile("\r\n|\r|\n")  # the line ends a file read with newline="" splits at
# The first bytes of files that are not UTF-8 text, what they are, and how to make text of them. None of
# them starts a UTF-8 text file (the UTF-32 BE mark and "PK\x03\x04" only in theory); a UTF-8
# byte-order mark (EF BB BF) is skipped by the readers.
_NOT_UTF8 = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip) and pass the decompressed file"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz) and pass the decompressed file"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd) and pass the decompressed file"),
    (
        b"PK\x03\x04",
        "a ZIP archive (as .xlsx workbooks are)",
        "extract the text file from it (unzip), or save a spreadsheet as CSV UTF-8",
    ),
    (
        b"\xff\xfe\x00\x00",
        "UTF-32 text (it starts with a UTF-32 byte-order mark)",
        "re-save the file as UTF-8",
    ),
    (
        b"\x00\x00\xfe\xff",
        "UTF-32 text (it starts with a UTF-32 byte-order mark)",
        "re-save the file as UTF-8",
    ),
    (b"\xff\xfe", "UTF-16 text (it starts with a UTF-16 byte-order mark)", "re-save the file as UTF-8"),
    (b"\xfe\xff", "UTF-16 text (it starts with a UTF-16 byte-order mark)", "re-save the file as UTF-8"),
)
# A single-column CSV's header that looks like a document rather than a column name.
_HEADER_MAX_WORDS, _HEADER_MAX_CHARS = 5, 60


def detect_format(path: Path) -> str:
    """``csv`` for .csv, ``jsonl`` for .jsonl/.ndjson, ``text`` for anything else but .json, which
    raises :class:`CorpusError`: a JSON document (an array of records, say) read as plain text would
    train a model on its brackets and quotes, and read whole it would not stream."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    if suffix == ".json":
        raise CorpusError(
            f"{path}: nextword reads JSON Lines, one object per line with its text in --json-field, not a "
            "single JSON document; write the records one per line to a .jsonl file, or pass "
            "--corpus-format text to read the file as plain text"
        )
    return "text"


def read_documents(path: str | Path, config: CorpusConfig, log: bool = True) -> Iterator[str]:
    """Yield the non-empty documents of one file, in file order.

    CSV: one row is one document, its text in ``config.text_column`` (``auto``: the only column, else
    the first of :data:`~nextword.corpus.config.TEXT_COLUMNS` the file has; with ``log``, the column
    chosen is logged). JSON Lines: one object per line, its text in ``config.json_field``. Plain text:
    paragraphs separated by blank lines. Lines: each line a document. Files must be UTF-8 (a
    byte-order mark is skipped): compressed and UTF-16 files are refused saying what they are.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist (or is not a file)")
    fmt = detect_format(path) if config.format == "auto" else config.format
    try:
        _check_is_utf8_text(path)
        if fmt == "csv":
            documents = _read_csv(path, config, log)
        else:
            documents = {"jsonl": _read_jsonl, "text": _read_text, "lines": _read_lines}[fmt](path, config)
        for document in documents:
            document = document.strip()
            if document:
                yield document
    except UnicodeDecodeError as exc:
        line = _line_of_bad_bytes(path)
        raise CorpusError(
            f"{path}, line {line}: bytes that are not UTF-8 ({exc.reason}); re-save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise os_error(exc, "read", path) from None


def read_corpus(config: CorpusConfig, log: bool = True) -> Iterator[str]:
    """Every document of ``config.paths``, in order, one at a time; with ``log``, the number of
    documents of each file is logged once it is read."""
    for path in config.paths:
        n = 0
        for document in read_documents(path, config, log):
            n += 1
            yield document
        if log:
            logger.info("%s: %d documents", path, n)


def load_documents(paths: Sequence[str | Path], config: CorpusConfig) -> list[str]:
    """All documents of all ``paths``, in order. Raises :class:`CorpusError` when there are none."""
    if not paths:
        raise CorpusError("no corpus files given")
    documents: list[str] = []
    for path in paths:
        before = len(documents)
        documents.extend(read_documents(path, config))
        logger.info("%s: %d documents", path, len(documents) - before)
    if not documents:
        raise CorpusError(f"the corpus {[str(p) for p in paths]} holds no non-empty documents")
    return documents


def count_documents(paths: Sequence[str | Path], config: CorpusConfig) -> int:
    """Read all ``paths`` once and count their documents, holding none of them.

    Any problem with a file (missing, wrong column, bad JSON or bytes) surfaces here. Raises
    :class:`CorpusError` when there are no files or no documents.
    """
    if not paths:
        raise CorpusError("no corpus files given")
    total = 0
    for path in paths:
        n = sum(1 for _ in read_documents(path, config))
        logger.info("%s: %d documents", path, n)
        total += n
    if not total:
        raise CorpusError(f"the corpus {[str(p) for p in paths]} holds no non-empty documents")
    return total


def not_text(head: bytes) -> tuple[str, str] | None:
    """``(what the file is, how to make UTF-8 text of it)`` when a file's first bytes ``head`` say it is
    compressed, an archive, or UTF-16/32 text; None otherwise. Corpora and word-vector files use it."""
    return next(((what, fix) for magic, what, fix in _NOT_UTF8 if head.startswith(magic)), None)


def _check_is_utf8_text(path: Path) -> None:
    """Refuse ``path`` if its first bytes say it is compressed, an archive, or UTF-16/32 text: read as
    UTF-8 it would fail on line 1 with nothing said about what the file is."""
    with path.open("rb") as f:
        found = not_text(f.read(6))
    if found is not None:
        raise CorpusError(f"{path}: the file is {found[0]}, and nextword reads UTF-8 text; {found[1]}")


class _Lines:
    """The lines of a text file for :func:`csv.reader`, noting when they run out: a row the reader
    returns after that ended inside a quoted field (the reader returns it all the same)."""

    def __init__(self, f: TextIO) -> None:
        self._f = f
        self.ended = False

    def __iter__(self) -> Iterator[str]:
        yield from self._f
        self.ended = True


def _read_csv(path: Path, config: CorpusConfig, log: bool) -> Iterator[str]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # abstracts can exceed the 128 KiB default
    with path.open(newline="", encoding="utf-8-sig") as f:
        lines = _Lines(f)
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
            if header is not None and lines.ended:
                _refuse_open_quote(path, reader.line_num, header)
            columns = header or []
            column = _text_column(path, columns, config.text_column, log)
            index = columns.index(column)
            for row in reader:
                if lines.ended:
                    _refuse_open_quote(path, reader.line_num, row)
                yield row[index] if index < len(row) else ""  # a short row has no text
        except csv.Error as exc:  # a NUL byte before Python 3.11, a field over the size limit
            raise CorpusError(
                f"{path}, line {reader.line_num}: not valid CSV ({exc}); fix that line or re-save the file "
                "as CSV"
            ) from None


def _refuse_open_quote(path: Path, last_line: int, row: list[str]) -> None:
    """Raise for ``row``, which the file ended in: its last field opened a quote that never closed,
    so csv read the rest of the file into it. The error names the line where that field starts."""
    field = row[-1] if row else ""
    breaks = len(_LINE_BREAK.findall(field))
    lines = breaks if field.endswith(("\n", "\r")) else breaks + 1  # the lines the field spans
    raise CorpusError(
        f"{path}, line {last_line - lines + 1}: a quoted field starts here whose closing quote never "
        "comes, so the rest of the file would be read as one field; close the quote (a quote inside a "
        'quoted field is written twice: "")'
    )


def _text_column(path: Path, columns: list[str], wanted: str, log: bool) -> str:
    """The column of ``path`` that holds the text: ``wanted``, or for ``auto`` the only column, else the
    first of :data:`TEXT_COLUMNS` the file has; with ``log``, an ``auto`` choice is logged, as a warning
    when the only column's name looks like a document (a file without a header line)."""
    if not columns:
        raise CorpusError(f"{path} is empty: a CSV corpus starts with a header line naming its columns")
    if wanted != AUTO_COLUMN:
        if wanted not in columns:
            raise CorpusError(
                f"{path} has no column {wanted!r}; its columns are {columns}. Choose one with --text-column"
            )
        column = wanted
    elif len(columns) == 1:
        column = columns[0]
    else:
        found = next((c for c in TEXT_COLUMNS if c in columns), None)
        if found is None:
            raise CorpusError(
                f"{path}: which column holds the text? Its columns are {columns}, none of them named "
                f"{' or '.join(map(repr, TEXT_COLUMNS))}. Choose one with --text-column"
            )
        column = found
    if (n := columns.count(column)) > 1:
        raise CorpusError(
            f"{path}: the header names column {column!r} {n} times, so which one holds the text is unclear; "
            "rename all but one of them in the first line of the file"
        )
    if not log or wanted != AUTO_COLUMN:
        return column
    if len(columns) > 1:
        logger.info("%s: reading column %r of %s (the first line is the header)", path, column, columns)
    elif _looks_like_text(column):
        logger.warning(
            "%s: reading column %r, the file's only column, taking the first line as its header; it looks "
            "like text rather than a column name, and it is not read as a document. If the file has no "
            "header, add a header line (text, say) before the first document",
            path,
            column,
        )
    else:
        logger.info("%s: reading column %r, its only column (the first line is the header)", path, column)
    return column


def _looks_like_text(name: str) -> bool:
    """Whether a column name looks like a sentence: a document taken for the header."""
    return len(name.split()) > _HEADER_MAX_WORDS or len(name) > _HEADER_MAX_CHARS


def _read_jsonl(path: Path, config: CorpusConfig) -> Iterator[str]:
    with path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}, line {line_no}: not valid JSON ({exc.msg})") from None
            except ValueError as exc:  # an integer longer than Python converts
                raise CorpusError(_long_integer(path, line_no, exc, config.json_field)) from None
            except RecursionError:
                raise CorpusError(
                    f"{path}, line {line_no}: JSON nested too deeply to read; a document is one object "
                    f"with its text in a string field ({config.json_field!r})"
                ) from None
            if not isinstance(record, dict) or config.json_field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise CorpusError(
                    f"{path}, line {line_no}: no field {config.json_field!r} (found {keys}); "
                    "choose the field with --json-field"
                )
            text = record[config.json_field]
            if text is not None and not isinstance(text, str):
                raise CorpusError(f"{path}, line {line_no}: field {config.json_field!r} is not a string")
            if text and not text.isascii() and (bad := _SURROGATE.search(text)):
                # Only a JSON escape can make one ("\ud800"): the UTF-8 decoder refuses them in the bytes.
                raise CorpusError(
                    f"{path}, line {line_no}: field {config.json_field!r} holds {bad.group()!r}, half of a "
                    "UTF-16 surrogate pair escaped on its own, which is not text; fix the \\u escape in "
                    "the file (a character above U+FFFF needs both halves)"
                )
            yield text or ""


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


def _read_text(path: Path, config: CorpusConfig) -> Iterator[str]:
    paragraph: list[str] = []
    with path.open(encoding="utf-8-sig") as f:
        for line in f:
            if line.strip():
                paragraph.append(line.strip())
            elif paragraph:
                yield " ".join(paragraph)
                paragraph = []
    if paragraph:
        yield " ".join(paragraph)


def _read_lines(path: Path, config: CorpusConfig) -> Iterator[str]:
    with path.open(encoding="utf-8-sig") as f:
        yield from f  # read_documents strips each and skips the empty ones


def _line_of_bad_bytes(path: Path) -> int | str:
    """Line number of the first line of ``path`` that is not UTF-8 (the decoder reports a buffer offset)."""
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return line_no
    return "?"
