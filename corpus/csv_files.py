"""CSV corpora: what separates the fields, which column holds the text, and the rows, checked.

One row is one document. Problems raise :class:`CorpusError` naming the file and the line.
"""

from __future__ import annotations

import csv
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from nextword.runtime.checks import shown

from .config import AUTO_COLUMN, MAX_DOCUMENT_CHARS, TEXT_COLUMNS, CorpusConfig
from .csv_merged_rows import MergedRows, merged_rows
from .errors import CorpusError
from .lines import MAX_RECORD_LINE_CHARS, bounded_lines

__all__ = ["TSV_SUFFIXES", "read_csv"]

logger = logging.getLogger(__name__)

TSV_SUFFIXES = {".tsv", ".tab"}  # read with tabs between the fields
_LINE_BREAK = re.compile("\r\n|\r|\n")  # the line ends a file read with newline="" splits at
_QUOTED = re.compile(r'"[^"]*(?:""[^"]*)*"')  # a quoted field, its quotes doubled inside
# A single-column CSV's header that looks like a document rather than a column name.
_HEADER_MAX_WORDS, _HEADER_MAX_CHARS = 5, 60


_LINE_COST = 64  # characters a line counts for at least, in a row's bound: about what a str costs


class _Lines:
    """The lines of a text file for :func:`csv.reader`, noting when they run out (a row the reader
    returns after that ended inside a quoted field: the reader returns it all the same) and keeping
    those read since :meth:`take` (csv reads no further than the end of the row it returns)."""

    def __init__(self, f: TextIO, path: Path) -> None:
        self._f, self._path = f, path
        self.ended = False
        self._read: list[str] = []
        self._chars = 0  # in the lines read since take()

    def __iter__(self) -> Iterator[str]:
        for line_no, line in enumerate(bounded_lines(self._f, self._path, MAX_RECORD_LINE_CHARS, "a row"), 1):
            self._read.append(line)
            # a line costs its text, and at least what holding it costs (a quote left open before
            # millions of short or blank lines)
            self._chars += max(len(line.rstrip("\r\n")), _LINE_COST)
            if self._chars > MAX_RECORD_LINE_CHARS:  # a quoted field that runs on over many lines
                raise CorpusError(
                    f"{self._path}, lines {line_no - len(self._read) + 1:,} to {line_no:,}: one row of more "
                    f"than {MAX_RECORD_LINE_CHARS:,} characters, and a document may hold "
                    f"{MAX_DOCUMENT_CHARS:,}; a quote that opens a field and never closes makes the rest of "
                    "the file one field: close it, or cut the text into documents"
                )
            yield line
        self.ended = True

    def take(self) -> list[str]:
        """The lines read since the last call: those of the row the reader returned last."""
        read, self._read, self._chars = self._read, [], 0
        return read


def read_csv(path: Path, config: CorpusConfig, log: bool) -> Iterator[str]:
    """The text of each row of the CSV file ``path`` ('' for a row without it), in file order: the
    column :func:`_text_column` chooses, fields separated as :func:`_delimiter` finds. With ``log``,
    the choices are logged (the first pass over a corpus; the later ones say nothing), and so is how
    many rows had no text, once the file is read: a row without text is no document. Raises
    :class:`CorpusError` naming the line of an open quote, of a row with more fields than the header
    names, or of bytes csv cannot read, and for a text column empty in every row."""
    # abstracts can exceed the 128 KiB default. csv's limit is the process's: it stays high (another
    # column, or the caller's own CSV, may hold more than a document), and read_documents holds the
    # text to MAX_DOCUMENT_CHARS
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    with path.open(newline="", encoding="utf-8-sig") as f:
        delimiter = _delimiter(path, f.readline(MAX_RECORD_LINE_CHARS), log)
        f.seek(0)  # the decoder starts again, and skips a byte-order mark again
        lines = _Lines(f, path)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is not None and lines.ended:
                _refuse_open_quote(path, reader.line_num, header)
            lines.take()
            columns = header or []
            column = _text_column(path, columns, config.text_column, log)
            index, width = columns.index(column), len(columns)
            rows = texts = merged = 0
            for row in reader:
                if lines.ended:
                    _refuse_open_quote(path, reader.line_num, row)
                if len(read := lines.take()) > 1:  # a quoted field holds a line break
                    _check_quotes_close(path, reader.line_num, "".join(read), delimiter)
                    if log and (found := merged_rows(read, row, reader.line_num, delimiter)) is not None:
                        merged += 1
                        if merged == 1:
                            _warn_merged(path, found)
                if len(row) > width and any(field.strip() for field in row[width:]):
                    _refuse_extra_fields(path, reader.line_num, row, columns, delimiter)
                text = row[index] if index < len(row) else ""  # a short row has no text
                rows += 1
                texts += bool(text.strip())
                yield text
            if rows and not texts and width > 1:
                others = [c for c in columns if c != column]
                raise CorpusError(
                    f"{path}: column {column!r} is empty in all {rows:,} rows; the other columns are "
                    f"{_named(others)}. Choose the column that holds the text with `text_column`"
                )
            if merged > 1:
                logger.warning(
                    "%s: %s rows in all look like rows joined by a quote (the first is warned about above)",
                    path,
                    f"{merged:,}",
                )
            if log and rows > texts:  # as JSON Lines records without text are (json_lines.read_jsonl)
                logger.warning(
                    "%s: %s of %s rows have no text (their column %r is empty or blank) and are left out",
                    path,
                    f"{rows - texts:,}",
                    f"{rows:,}",
                    column,
                )
        except csv.Error as exc:  # a NUL byte before Python 3.11, a field over the size limit
            if "field larger than field limit" in str(exc):
                raise CorpusError(
                    f"{path}, line {reader.line_num}: a field of more than {csv.field_size_limit():,} "
                    f"characters, and a document may hold {MAX_DOCUMENT_CHARS:,}; cut it into documents"
                ) from None
            raise CorpusError(
                f"{path}, line {reader.line_num}: not valid CSV ({exc}); fix that line or re-save the file "
                "as CSV"
            ) from None


def _delimiter(path: Path, header: str, log: bool) -> str:
    """What separates the fields of ``path``: a tab in a .tsv/.tab file; otherwise a comma, unless the
    header line ``header`` has none but has semicolons or tabs between names that look like column
    names (not a document on a header-less file's first line), as spreadsheets write CSV in locales
    where the comma is the decimal mark."""
    if path.suffix.lower() in TSV_SUFFIXES:
        return "\t"
    header = header.rstrip("\r\n")
    if "," in header:
        return ","
    for delimiter, name in (("\t", "tabs"), (";", "semicolons")):
        names = next(csv.reader([header], delimiter=delimiter), [])
        if len(names) > 1 and not any(_looks_like_text(n) for n in names):
            if log:
                logger.info(
                    "%s: the header line has %s between its names and no comma: reading them so", path, name
                )
            return delimiter
    return ","


def _refuse_extra_fields(
    path: Path, last_line: int, row: list[str], columns: list[str], delimiter: str
) -> None:
    """Raise for ``row``, which has more (non-empty) fields than the header names: a field holding the
    delimiter without quotes around it, or a stray quote that joined lines. Its text column would hold
    only the part before the first delimiter, and the rest would be lost without a word."""
    lines = sum(len(_LINE_BREAK.findall(field)) for field in row)  # the lines the row spans, less one
    shown_delimiter = {"\t": "a tab", ",": "a comma", ";": "a semicolon"}.get(delimiter, repr(delimiter))
    raise CorpusError(
        f"{path}, line {last_line - lines}: {len(row)} fields where the header names {len(columns)} "
        f"({_named(columns)}), so this row's text would be cut at {shown_delimiter}. Put quotes around a "
        f'field that holds {shown_delimiter} (and write a quote inside it twice: ""); for a file of one '
        "document per line without columns, pass format='lines'"
    )


def _warn_merged(path: Path, found: MergedRows) -> None:
    """Warn of a row that looks like several rows a quote joined (:func:`merged_rows`); csv reads it as
    one, and a field may span lines, so it is read as it is."""
    alike = (
        "1 of them looking like a row of its own"
        if found.row_lines == 1
        else f"{found.row_lines:,} of them looking like rows of their own"
    )
    logger.warning(
        "%s, lines %s-%s: one row, whose quoted field runs over %s lines, %s (line %s: %s); a quote that "
        "opens a field on line %s and is not closed there joins them into one document. If so, close that "
        'quote (a quote inside a quoted field is written twice: ""); the row is read as it is',
        path,
        f"{found.first_line:,}",
        f"{found.last_line:,}",
        f"{found.last_line - found.first_line + 1:,}",
        alike,
        f"{found.example_line:,}",
        shown(found.example),
        f"{found.first_line:,}",
    )


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


def _check_quotes_close(path: Path, last_line: int, text: str, delimiter: str) -> None:
    """Raise for the row ``text`` (the raw lines of one row, ending on line ``last_line``) when a
    quoted field in it spans lines and its closing quote is followed by more text rather than by a
    delimiter, a space or the end of the line. No CSV writer makes that; a quote left open does: it
    pairs with a quote of a following row, whose lines become part of the field, and csv reads on from
    there. A field that spans lines and closes as CSV does is left alone, as is a stray quote on one
    line. Only rows that span lines come here, so a file without them costs nothing more."""
    ends = re.compile(f"[{re.escape(delimiter)}\r\n]")
    at = 0
    while at < len(text):
        if text[at] == '"':
            quoted = _QUOTED.match(text, at)
            if quoted is None:  # open to the end of the file: _refuse_open_quote says so
                return
            after = quoted.end()
            follows = text[after : after + 1]
            if (
                follows
                and not ends.match(follows)
                and not follows.isspace()
                and _LINE_BREAK.search(quoted[0])
            ):
                ended = text.endswith(("\n", "\r"))  # the last line has its line break
                start = last_line - len(_LINE_BREAK.findall(text, at)) + ended
                close = last_line - len(_LINE_BREAK.findall(text, after)) + ended
                tail = _LINE_BREAK.split(text[after:], 1)[0]
                raise CorpusError(
                    f"{path}, line {start}: a quoted field starts here and its quote closes only on line "
                    f"{close}, where more text follows it ({tail[:40]!r}), so lines {start}-{close} would be "
                    f"read as one field: a quote on line {start} is probably never closed. Close it (a quote "
                    'inside a quoted field is written twice: "")'
                )
            at = after
        found = ends.search(text, at)
        if found is None or found[0] != delimiter:
            return
        at = found.end()


def _named(columns: list[str], most: int = 10) -> str:
    """A header's column names for a message, as a list: at most ``most`` of them, each cut to 60
    characters, then how many more (a header of 200,000 names made a message of two million characters)."""
    listed = ", ".join(shown(column) for column in columns[:most])
    more = f", and {len(columns) - most:,} more" if len(columns) > most else ""
    return f"[{listed}{more}]"


def _text_column(path: Path, columns: list[str], wanted: str, log: bool) -> str:
    """The column of ``path`` that holds the text: ``wanted``, or for ``auto`` the only column, else the
    first of :data:`TEXT_COLUMNS` the file has; with ``log``, an ``auto`` choice is logged, as a warning
    when the only column's name looks like a document (a file without a header line)."""
    if not columns:
        raise CorpusError(f"{path} is empty: a CSV corpus starts with a header line naming its columns")
    if wanted != AUTO_COLUMN:
        if wanted not in columns:
            raise CorpusError(
                f"{path} has no column {shown(wanted)}; its columns are {_named(columns)}. Choose one with "
                "`text_column`"
            )
        column = wanted
    elif len(columns) == 1:
        column = columns[0]
    else:
        folded = [c.strip().casefold() for c in columns]  # Text, " text"
        found = next((columns[folded.index(c)] for c in TEXT_COLUMNS if c in folded), None)
        if found is None:
            headerless = (
                " If the first line is a document rather than a header, add a header line naming the columns"
                if any(_looks_like_text(c) for c in columns)
                else ""
            )
            raise CorpusError(
                f"{path}: which column holds the text? Its columns are {_named(columns)}, none of them named "
                f"{' or '.join(map(repr, TEXT_COLUMNS))}. Choose one with `text_column`.{headerless}"
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
