"""Reading a corpus file's lines with a bound on each: a file with no line breaks (a dump of one huge
record, a binary file that passes for text) is refused once a line runs past the bound, before the rest
of it is read into memory, not after."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from .config import MAX_DOCUMENT_CHARS
from .errors import CorpusError

__all__ = ["MAX_RECORD_LINE_CHARS", "MAX_TEXT_LINE_CHARS", "bounded_lines"]

# A line of plain text is at most one document, with room for the whitespace around it.
MAX_TEXT_LINE_CHARS = 2 * MAX_DOCUMENT_CHARS
# A line of JSON Lines or CSV also holds the escapes, quotes and other fields around its text (a JSON
# escape writes a character in up to 12: a surrogate pair, "\ud83d\ude00").
MAX_RECORD_LINE_CHARS = 12 * MAX_DOCUMENT_CHARS


def bounded_lines(f: TextIO, path: Path, limit: int, what: str) -> Iterator[str]:
    """The lines of ``f`` as ``for line in f`` yields them, each read ``limit`` characters at most:
    a longer one raises :class:`CorpusError` naming its line number and ``what`` the file holds ("a
    document", "a record"), with the fix."""
    for line_no in itertools.count(1):
        line = f.readline(limit + 2)  # room for "\r\n" (a CSV file, read with newline="")
        if not line:
            return
        if len(line.rstrip("\r\n")) > limit:
            raise CorpusError(
                f"{path}, line {line_no:,}: more than {limit:,} characters without a line break, longer "
                f"than {what} may be (a document holds at most {MAX_DOCUMENT_CHARS:,} characters); is it "
                "the file you meant? Cut the text into lines, with one document per line or paragraph"
            )
        yield line
