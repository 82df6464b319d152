"""Reading documents from corpus files: CSV, JSON Lines and plain text.

One document is in memory at a time (:func:`read_documents`, :func:`read_corpus`), or all of them for
small corpora (:func:`load_documents`). Problems with a file raise :class:`CorpusError` naming the file,
and the line where there is one.
"""

from __future__ import annotations

import codecs
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from nextword.runtime.checks import as_path

from .config import MAX_DOCUMENT_CHARS, CorpusConfig, corpus_config, corpus_paths
from .csv_files import TSV_SUFFIXES, read_csv
from .errors import CorpusError, os_error
from .html_references import decode_references
from .json_lines import JSONL_SUFFIXES, json_document_error, read_jsonl
from .lines import MAX_TEXT_LINE_CHARS, bounded_lines
from .sniffing import BINARY, HEAD_BYTES, check_is_utf8_text, not_text

__all__ = [
    "BINARY",
    "CORPUS_SUFFIXES",
    "HEAD_BYTES",
    "MAX_DOCUMENT_CHARS",
    "check_file",
    "check_options",
    "count_documents",
    "detect_format",
    "load_documents",
    "no_documents",
    "not_text",
    "read_corpus",
    "read_documents",
]

logger = logging.getLogger(__name__)

# Names that say "a corpus": what detect_format reads as CSV or JSON Lines, JSON it refuses, plain text.
CORPUS_SUFFIXES = frozenset({".csv", *TSV_SUFFIXES, *JSONL_SUFFIXES, ".json", ".txt"})
# More lines than this per paragraph on average: the file looks like one document per line, with a few
# stray blank lines, rather than paragraphs (a page of prose wraps a paragraph in a few lines).
_LINES_PER_PARAGRAPH = 50
_DEFAULTS = CorpusConfig()
_FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSON Lines", "text": "plain text", "lines": "lines of text"}
# The options that say where a format's text is: (option, the format it applies to, what it chooses).
_OPTIONS = (("text_column", "csv", "column"), ("json_field", "jsonl", "field"))


def detect_format(path: str | os.PathLike[str]) -> str:
    """``csv`` for .csv and .tsv/.tab (read with tabs between fields), ``jsonl`` for .jsonl/.ndjson,
    ``text`` for anything else but .json, which raises :class:`CorpusError`: a JSON document (an array
    of records, say) read as plain text would train a model on its brackets and quotes, and read whole
    it would not stream; the error offers ``format='jsonl'`` for a .json file that holds JSON Lines
    (:func:`~nextword.corpus.json_lines.json_document_error`). ``path``: a ``str`` or ``os.PathLike``
    (:class:`~pathlib.Path`)."""
    path = Path(as_path("path", path))
    suffix = path.suffix.lower()
    if suffix == ".csv" or suffix in TSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix == ".json":
        raise json_document_error(path)
    return "text"


def read_documents(path: str | Path, config: CorpusConfig, log: bool = True) -> Iterator[str]:
    """Yield the non-empty documents of one file, in file order.

    CSV: one row is one document, its text in ``config.text_column`` (``auto``: the only column, else
    the first of :data:`~nextword.corpus.config.TEXT_COLUMNS` the file has, in any case; with ``log``,
    the column chosen is logged). Fields are separated by commas, by tabs in a .tsv/.tab file, and by
    semicolons or tabs when the header line has no comma but those (as spreadsheets write CSV in some
    locales). JSON Lines: one object per line, its text in ``config.json_field``. Plain text:
    paragraphs separated by blank lines. Lines: each line a document. Files must be UTF-8 (a
    byte-order mark is skipped): compressed, UTF-16 and other binary files are refused saying what they
    are, and so is a document holding a NUL character or more than :data:`MAX_DOCUMENT_CHARS`
    characters (as written, before any decoding). With ``config.decode_html``, HTML character
    references are read as their characters (:mod:`~nextword.corpus.html_references`).
    """
    path, config = Path(as_path("path", path, empty=False)), corpus_config("config", config)
    fmt = check_file(path, config)
    if log and config.format != "auto":
        _note_forced_format(path, fmt)
    try:
        if fmt == "csv":
            documents = read_csv(path, config, log)
        elif fmt == "text":
            documents = _read_text(path, log)
        elif fmt == "jsonl":
            documents = read_jsonl(path, config, log)
        else:
            documents = _read_lines(path, config)
        for n, document in enumerate(documents, 1):
            # counted as written: decoding only shortens a document
            if len(document) > MAX_DOCUMENT_CHARS and len(document.strip()) > MAX_DOCUMENT_CHARS:
                raise _too_long(path, f"document {n:,}", len(document.strip()), fmt)
            document = (decode_references(document) if config.decode_html else document).strip()
            if "\x00" in document:
                raise CorpusError(
                    f"{path}: document {n:,} holds a NUL character (a zero byte), which text does not; the "
                    "file may be damaged or binary: remove the zero bytes (tr -d '\\000') or re-save it"
                )
            if document:
                yield document
    except UnicodeDecodeError as exc:
        line = _line_of_bad_bytes(path)
        where = line if isinstance(line, str) else f"{line:,}"
        raise CorpusError(
            f"{path}, line {where}: bytes that are not UTF-8 ({exc.reason}); re-save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise os_error(exc, "read", path) from None


def check_file(path: str | Path, config: CorpusConfig) -> str:
    """The format ``path`` is read in, once the checks that read none of its documents pass: it is a
    regular file (not a folder, device or pipe), and its first bytes are not those of a compressed,
    UTF-16 or binary file (:class:`CorpusError` naming the problem)."""
    path, config = Path(as_path("path", path, empty=False)), corpus_config("config", config)
    if path.is_dir():
        pattern = path / "*.txt"  # a POSIX shell expands it; cmd and PowerShell pass it on as it is
        raise CorpusError(
            f"corpus file {path} is a folder; pass the files in it, each by name (several may be given): "
            f"{pattern} in a POSIX shell; cmd and PowerShell do not expand `*`, so list them there, or in "
            f"PowerShell pass (Get-ChildItem {pattern}).FullName"
        )
    if path.exists() and not path.is_file():  # /dev/zero, a FIFO, <(zcat ...): read once, or never ends
        raise CorpusError(
            f"corpus file {path} is a device or pipe, not a regular file, and a corpus is read more than "
            "once: save the text to a file and pass that"
        )
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist (or is not a file)")
    try:  # first: a compressed .json is refused as compressed, not for its name
        check_is_utf8_text(path)
    except OSError as exc:
        raise os_error(exc, "read", path) from None
    return detect_format(path) if config.format == "auto" else config.format


def _note_forced_format(path: Path, fmt: str) -> None:
    """Warn that ``path`` is read as ``fmt``, a format chosen, where its name says CSV, JSON Lines or
    JSON: a CSV header line read as lines of text is a document, JSON's braces become words. A name
    that says plain text (or nothing) is read as whatever format is chosen without a word."""
    named = "json" if path.suffix.lower() == ".json" else detect_format(path)
    if named in ("text", fmt) or (named, fmt) == ("json", "jsonl"):
        return
    said = {"csv": "CSV", "jsonl": "JSON Lines", "json": "JSON"}[named]
    effect = ""
    if fmt in ("text", "lines"):
        effect = (
            ": its header line and the separators between its fields are read as text"
            if named == "csv"
            else ": its braces, quotes and field names are read as text"
        )
    fix = "to read it by its name, pass format='auto'"
    if named == "json":
        fix = "if it holds one JSON object per line, pass format='jsonl'"
    logger.warning(
        "%s: read as %s (format=%r), though its name says %s%s; %s",
        path,
        _FORMAT_NAMES[fmt],
        fmt,
        said,
        effect,
        fix,
    )


def read_corpus(config: CorpusConfig, log: bool = True) -> Iterator[str]:
    """Every document of ``config.paths``, in order, one at a time; with ``log``, the number of
    documents of each file is logged once it is read. Every file is checked (:func:`check_file`)
    before the first is read: a missing last file is not found after the others' work."""
    config = corpus_config("config", config)
    for path in config.paths:
        check_file(path, config)
    for path in config.paths:
        n = 0
        for document in read_documents(path, config, log):
            n += 1
            yield document
        if log:
            logger.info("%s: %d document%s", path, n, "" if n == 1 else "s")


def load_documents(paths: Sequence[str | Path], config: CorpusConfig) -> list[str]:
    """All documents of all ``paths``, in order (``config.paths`` is ignored). Raises :class:`CorpusError`
    when there are none, and for an option of ``config`` that applies to none (:func:`check_options`)."""
    paths, config = corpus_paths(paths), corpus_config("config", config)
    if not paths:
        raise CorpusError("no corpus files given")
    check_options(paths, config)
    for path in paths:
        check_file(path, config)
    documents: list[str] = []
    for path in paths:
        before = len(documents)
        documents.extend(read_documents(path, config))
        logger.info("%s: %d documents", path, len(documents) - before)
    if not documents:
        raise no_documents(paths, config)
    return documents


def count_documents(paths: Sequence[str | Path], config: CorpusConfig) -> int:
    """Read all ``paths`` once and count their documents, holding none of them.

    Any problem with a file (missing, wrong column, bad JSON or bytes) surfaces here. Raises
    :class:`CorpusError` when there are no files or no documents.
    """
    paths, config = corpus_paths(paths), corpus_config("config", config)
    if not paths:
        raise CorpusError("no corpus files given")
    for path in paths:
        check_file(path, config)
    total = 0
    for path in paths:
        n = sum(1 for _ in read_documents(path, config))
        logger.info("%s: %d documents", path, n)
        total += n
    if not total:
        raise no_documents(paths, config)
    return total


def no_documents(paths: Sequence[str | Path], config: CorpusConfig) -> CorpusError:
    """The error for corpus files ``paths`` (each passed by :func:`check_file`) that hold no document
    at all: the files by name, what each format found empty, and the fix."""
    column = f" ({config.text_column!r})" if config.text_column != "auto" else ""
    empty = {
        "csv": f"has no row with text in its text column{column}",
        "jsonl": f"has no record with text in its field {config.json_field!r}",
        "text": "is empty or holds only blank lines",
        "lines": "is empty or holds only blank lines",
    }
    found = sorted(
        {empty[detect_format(Path(p)) if config.format == "auto" else config.format] for p in paths}
    )
    if len(paths) == 1:
        return CorpusError(
            f"the corpus file {paths[0]} holds no non-empty documents: it {found[0]}; give a file that "
            "holds text"
        )
    listed = ", ".join(map(str, paths[:5])) + (f" and {len(paths) - 5:,} more" if len(paths) > 5 else "")
    return CorpusError(
        f"none of the corpus files {listed} holds a non-empty document: each {' or '.join(found)}; give "
        "files that hold text"
    )


def check_options(paths: Sequence[str | Path], config: CorpusConfig) -> None:
    """Raise :class:`CorpusError` when ``config.text_column`` or ``config.json_field`` is set away from
    its default and none of ``paths`` is read in the format it applies to (CSV, JSON Lines): it would
    be ignored without a word, and each file read from its default column or field. With files of
    several formats each option applies to its own files. Paths that are not files, or not a format
    nextword reads, are left to :func:`read_documents`, which names their problem."""
    paths, config = corpus_paths(paths), corpus_config("config", config)
    formats: dict[str, str] = {}
    for path in map(Path, paths):
        if not path.is_file():
            return
        try:
            formats[str(path)] = detect_format(path) if config.format == "auto" else config.format
        except CorpusError:
            return
    for name, fmt, chooses in _OPTIONS:
        value = getattr(config, name)
        if formats and value != getattr(_DEFAULTS, name) and fmt not in formats.values():
            said = [_files_are(kind, files, config.format) for kind, files in _by_format(formats).items()]
            fix = ""
            if {"text", "lines"} & set(formats.values()):
                fix = f". Leave `{name}` out, or pass format={fmt!r} to read a file as {_FORMAT_NAMES[fmt]}"
            raise CorpusError(
                f"{name}={value!r} chooses the {chooses} of a {_FORMAT_NAMES[fmt]} file that holds the text, "
                f"and none of the files given is read as {_FORMAT_NAMES[fmt]}: {'; '.join(said)}{fix}"
            )


def _by_format(formats: dict[str, str]) -> dict[str, list[str]]:
    """``{format: [paths read in it]}`` for ``{path: format}``."""
    grouped: dict[str, list[str]] = {}
    for path, fmt in formats.items():
        grouped.setdefault(fmt, []).append(path)
    return grouped


def _files_are(fmt: str, files: list[str], chosen: str) -> str:
    """What the message of :func:`check_options` says of ``files``, read as ``fmt``."""
    listed = ", ".join(files[:3]) + (f" and {len(files) - 3:,} more" if len(files) > 3 else "")
    verb = "is" if len(files) == 1 else "are"
    said = f"{listed} {verb} {_FORMAT_NAMES[fmt]}"
    if chosen != "auto":
        said = f"{listed} {verb} read as {_FORMAT_NAMES[fmt]} (format={fmt!r})"
    other = next(((name, chooses) for name, of, chooses in _OPTIONS if of == fmt), None)
    if other is not None:
        return f"{said}, where `{other[0]}` chooses the {other[1]} that holds the text"
    return f"{said}, which has no columns or fields"


def _read_text(path: Path, log: bool) -> Iterator[str]:
    paragraph: list[str] = []
    documents = lines = size = 0
    with path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(bounded_lines(f, path, MAX_TEXT_LINE_CHARS, "a line of text"), 1):
            if stripped := line.strip():
                size += len(stripped) + bool(paragraph)  # the document's length once joined
                paragraph.append(stripped)
                lines += 1
                if size > MAX_DOCUMENT_CHARS:  # refused as it grows, not once a gigabyte is held
                    where = f"document {documents + 1:,} (lines {line_no - len(paragraph) + 1:,} on)"
                    raise _too_long(path, where, size, "text")
            elif paragraph:
                documents += 1
                yield " ".join(paragraph)
                paragraph, size = [], 0
    if paragraph:
        documents += 1
        yield " ".join(paragraph)
    if log and documents and lines / documents > _LINES_PER_PARAGRAPH:
        logger.warning(
            "%s: %s document(s) of %s lines on average (in plain text a blank line ends a document); if "
            "each line is a document, pass format='lines'",
            path,
            f"{documents:,}",
            f"{lines / documents:,.0f}",
        )


def _too_long(path: Path, where: str, chars: int, fmt: str) -> CorpusError:
    """The error for a document of more than :data:`MAX_DOCUMENT_CHARS` characters."""
    if fmt == "text":
        return CorpusError(
            f"{path}: {where} holds more than {MAX_DOCUMENT_CHARS:,} characters, the most a document may "
            "hold. In plain text a blank line ends a document, so a file without blank lines is one "
            "document: put a blank line between documents, or pass format='lines' if each line is one"
        )
    return CorpusError(
        f"{path}: {where} holds {chars:,} characters, more than the {MAX_DOCUMENT_CHARS:,} a document "
        "may hold; cut it into documents"
    )


def _read_lines(path: Path, config: CorpusConfig) -> Iterator[str]:
    with path.open(encoding="utf-8-sig") as f:  # read_documents strips each and skips the empty ones
        yield from bounded_lines(f, path, MAX_TEXT_LINE_CHARS, "a line of text")


def _line_of_bad_bytes(path: Path) -> int | str:
    """Line number of the first line of ``path`` that is not UTF-8 (the decoder reports a buffer
    offset), read a MiB at a time: a file without line breaks is not held whole to find it."""
    decoder, line_no = codecs.getincrementaldecoder("utf-8")(), 1
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            kept = len(decoder.getstate()[0])  # bytes of a character the chunk before cut short
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:  # its offset counts those kept bytes too
                return line_no + chunk.count(b"\n", 0, max(exc.start - kept, 0))
            line_no += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:  # a character cut short at the end
        return line_no
    return "?"
