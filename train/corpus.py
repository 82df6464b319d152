"""Reading documents from corpus files and splitting them into training and validation sets.

The split is defined by document index (:func:`validation_indices`), so it can be applied to a list
(:func:`split_documents`) or to a stream of documents read again from the files
(:func:`count_documents`, then :func:`read_split`) without holding the corpus in memory.

Pure Python: ``nextword evaluate`` reads corpora with this module and needs no TensorFlow.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .config import CorpusConfig

__all__ = [
    "CorpusError",
    "count_documents",
    "detect_format",
    "load_documents",
    "read_documents",
    "read_split",
    "split_documents",
    "validation_indices",
]

logger = logging.getLogger(__name__)

_JSONL_SUFFIXES = {".jsonl", ".ndjson"}


class CorpusError(ValueError):
    """A corpus file cannot be read as asked; the message names the file, the problem and the fix."""


def detect_format(path: Path) -> str:
    """``csv`` for .csv, ``jsonl`` for .jsonl/.ndjson, ``text`` for anything else."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    return "text"


def read_documents(path: str | Path, config: CorpusConfig) -> Iterator[str]:
    """Yield the non-empty documents of one file, in file order.

    CSV: one row is one document, its text in ``config.text_column``. JSON Lines: one object per line,
    its text in ``config.json_field``. Plain text: paragraphs separated by blank lines.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist (or is not a file)")
    fmt = detect_format(path) if config.format == "auto" else config.format
    readers = {"csv": _read_csv, "jsonl": _read_jsonl, "text": _read_text}
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

    The first pass of streamed training: the split (:func:`validation_indices`) needs the count. Any
    problem with a file (missing, wrong column, bad JSON or bytes) surfaces here, before anything is
    written. Raises :class:`CorpusError` when there are no files or no documents.
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


def validation_indices(n_documents: int, val_fraction: float, seed: int) -> np.ndarray:
    """Indices (sorted, int64) of the documents held out for validation among ``n_documents``.

    A seeded permutation of the document indices; its first ``val_fraction`` (at least one document,
    never all) are held out. This defines the split of :func:`split_documents` and of streamed
    training alike. Memory is 8 bytes per document. Raises :class:`CorpusError` under 2 documents.
    """
    if n_documents < 2:
        raise CorpusError(
            f"the corpus has {n_documents} document(s); at least 2 are needed to hold one out for "
            "validation (plain-text files separate documents with blank lines)"
        )
    order = np.random.default_rng(seed).permutation(n_documents)
    n_val = min(max(1, round(n_documents * val_fraction)), n_documents - 1)
    return np.sort(order[:n_val])


def read_split(
    paths: Sequence[str | Path], config: CorpusConfig, n_documents: int, val_indices: np.ndarray
) -> Iterator[tuple[bool, str]]:
    """Yield ``(is_validation, document)`` for every document of ``paths``, in file order.

    ``n_documents`` is the count :func:`count_documents` found and ``val_indices`` the split from
    :func:`validation_indices`; one document is in memory at a time. Raises :class:`CorpusError` if
    the files no longer hold ``n_documents`` documents (they changed between passes).
    """
    is_val = np.zeros(n_documents, dtype=bool)
    is_val[val_indices] = True
    index = 0
    for path in paths:
        for document in read_documents(path, config):
            if index == n_documents:
                raise _changed(paths, n_documents, "more")
            yield bool(is_val[index]), document
            index += 1
    if index != n_documents:
        raise _changed(paths, n_documents, str(index))


def _changed(paths: Sequence[str | Path], expected: int, found: str) -> CorpusError:
    return CorpusError(
        f"the corpus {[str(p) for p in paths]} changed while it was read: it held {expected} documents, "
        f"then {found}; leave the files unchanged during training and start again"
    )


def split_documents(documents: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle whole documents with ``seed`` and hold out ``val_fraction`` of them (at least one).

    The split is by document, never by window, so no validation text is seen in training. The held-out
    documents are those at :func:`validation_indices`, kept in corpus order.
    """
    val_idx = set(validation_indices(len(documents), val_fraction, seed).tolist())
    train = [d for i, d in enumerate(documents) if i not in val_idx]
    val = [d for i, d in enumerate(documents) if i in val_idx]
    return train, val


def _read_csv(path: Path, config: CorpusConfig) -> Iterator[str]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # abstracts can exceed the 128 KiB default
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if config.text_column not in columns:
            raise CorpusError(
                f"{path} has no column {config.text_column!r}; its columns are {columns}. "
                "Choose one with --text-column"
            )
        for row in reader:
            yield row[config.text_column] or ""


def _read_jsonl(path: Path, config: CorpusConfig) -> Iterator[str]:
    with path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}, line {line_no}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or config.json_field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise CorpusError(
                    f"{path}, line {line_no}: no field {config.json_field!r} (found {keys}); "
                    "choose the field with --json-field"
                )
            text = record[config.json_field]
            if text is not None and not isinstance(text, str):
                raise CorpusError(f"{path}, line {line_no}: field {config.json_field!r} is not a string")
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


def _line_of_bad_bytes(path: Path) -> int | str:
    """Line number of the first line of ``path`` that is not UTF-8 (the decoder reports a buffer offset)."""
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return line_no
    return "?"
