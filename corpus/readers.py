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

from .config import AUTO_COLUMN, TEXT_COLUMNS, CorpusConfig
from .errors import CorpusError, os_error

__all__ = ["count_documents", "detect_format", "load_documents", "read_corpus", "read_documents"]

logger = logging.getLogger(__name__)

_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def read_documents(path: str | Path, config: CorpusConfig) -> Iterator[str]:
    """Yield the non-empty documents of one file, in file order.

    CSV: one row is one document, its text in ``config.text_column`` (``auto``: the only column, else
    the first of :data:`~nextword.corpus.config.TEXT_COLUMNS` the file has). JSON Lines: one object
    per line, its text in ``config.json_field``. Plain text: paragraphs separated by blank lines.
    Lines: each line a document.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist (or is not a file)")
    fmt = detect_format(path) if config.format == "auto" else config.format
    readers = {"csv": _read_csv, "jsonl": _read_jsonl, "text": _read_text, "lines": _read_lines}
    try:
        for document in readers[fmt](path, config):
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
        for document in read_documents(path, config):
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


def _read_csv(path: Path, config: CorpusConfig) -> Iterator[str]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # abstracts can exceed the 128 KiB default
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        column = _text_column(path, columns, config.text_column)
        for row in reader:
            yield row[column] or ""


def _text_column(path: Path, columns: list[str], wanted: str) -> str:
    """The column of ``path`` that holds the text: ``wanted``, or for ``auto`` the only column, else the
    first of :data:`TEXT_COLUMNS` the file has."""
    if wanted != AUTO_COLUMN:
        if wanted not in columns:
            raise CorpusError(
                f"{path} has no column {wanted!r}; its columns are {columns}. Choose one with --text-column"
            )
        return wanted
    if len(columns) == 1:
        return columns[0]
    found = next((c for c in TEXT_COLUMNS if c in columns), None)
    if found is None:
        raise CorpusError(
            f"{path}: which column holds the text? Its columns are {columns}, none of them named "
            f"{' or '.join(map(repr, TEXT_COLUMNS))}. Choose one with --text-column"
        )
    return found


def _read_jsonl(path: Path, config: CorpusConfig) -> Iterator[str]:
    with path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}, line {line_no}: not valid JSON ({exc.msg})") from None
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
