"""Rows of a CSV file that a stray quote joined into one: a quote that opens a field on one row and is
closed, as CSV allows, on a later one makes the rows between part of that field.

csv reads that without complaint, and a field may span lines (an abstract with paragraphs), so only a
row whose lines mostly look like rows of the file is suspected: each such line holds the delimiter, and
the fields beside the one that spans lines (an id, a date, a number) have the same form in it as in the
row itself, as the rows it swallowed do and the lines of a paragraph do not.

Two rows joined have one line to compare where the row's own fields are on one side of its text only
(``id,text``; ``text,date,number``), and that line alone is taken as evidence. A line of prose rarely
starts as a row of ``id,text`` does (``3,A``: digits, the delimiter, no space) or ends as one of
``text,date,number`` does: in a million lines of documentation read as two-line fields, only a few of
machine data did, which the rule for longer rows warns of too.
"""

from __future__ import annotations

import contextlib
import csv
import re
from dataclasses import dataclass

__all__ = ["MergedRows", "merged_rows"]

_LINE_BREAK = re.compile("\r\n|\r|\n")
# The forms of a field that tell one row's field from a line of prose: digits, a decimal number, a date,
# an identifier with a digit in it (US1234567, A61B-5/00). Text with spaces in it has none.
_FORMS = (
    ("integer", re.compile(r"[+-]?\d+")),
    ("number", re.compile(r"[+-]?\d*[.,]\d+(?:[eE][+-]?\d+)?")),
    ("date", re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:[ T][\d:.]+)?|\d{1,2}/\d{1,2}/\d{2,4}")),
    ("identifier", re.compile(r"(?=[^\s]*\d)[\w./-]+")),
)
# A field spanning lines is suspected when at least this many of its lines compared look like rows, and
# they are at least half of them: a paragraph that starts with "12, " once is not a row. A row of two
# lines with its own fields on one side only has one line to compare: that one must look like a row.
MIN_ROW_LINES = 2


@dataclass(frozen=True)
class MergedRows:
    """A row that looks like several rows joined by a quote: its first and last line in the file
    (1-based), how many of its lines look like rows of their own, and the first of them (its line
    number and text)."""

    first_line: int
    last_line: int
    row_lines: int
    example_line: int
    example: str


def merged_rows(lines: list[str], row: list[str], last_line: int, delimiter: str) -> MergedRows | None:
    """A :class:`MergedRows` when ``row``, which csv read from the raw ``lines`` (ending on line
    ``last_line`` of the file), has a field that spans lines of which at least :data:`MIN_ROW_LINES`
    (or every one compared, where fewer are), and half or more, look like rows of the file
    (:func:`_looks_like_row`); None otherwise, and for a row of a single field, which has nothing to
    compare."""
    spanning = [i for i, field in enumerate(row) if _LINE_BREAK.search(field)]
    if len(lines) < 2 or len(row) < 2 or not spanning:
        return None
    # The fields before the first field that spans lines come from the row's first line, those after the
    # last one from its last line: both are the row's own, to compare the lines in between with.
    before = [_form(field) for field in row[: spanning[0]]]
    after = [_form(field) for field in row[spanning[-1] + 1 :]]
    if not _telling(before):
        before = []
    if not _telling(after):
        after = []
    if not before and not after:  # only text beside it: nothing to recognise a row by
        return None
    # The first line holds the row's own first fields and the last line its last ones: each is a row by
    # those whatever it is, so the first line is compared by its last fields only, the last line by its
    # first fields only (and not counted where those tell nothing).
    first, end = last_line - len(lines) + 1, len(lines) - 1
    rowlike, compared = [], 0
    for i, line in enumerate(line.rstrip("\r\n") for line in lines):
        heads, tails = before if i > 0 else [], after if i < end else []
        compared += bool(heads or tails)
        if (heads or tails) and _looks_like_row(line, delimiter, len(row), heads, tails):
            rowlike.append((first + i, line))
    # min(): two rows joined, with the row's own fields on one side of its text, leave one line to compare
    if len(rowlike) < min(MIN_ROW_LINES, compared) or 2 * len(rowlike) < compared:
        return None
    return MergedRows(first, last_line, len(rowlike), *rowlike[0])


def _looks_like_row(
    line: str, delimiter: str, width: int, before: list[str | None], after: list[str | None]
) -> bool:
    """Whether ``line`` could be a row of ``width`` fields whose first fields have the forms
    ``before``, or whose last fields have the forms ``after`` (each empty, or with a form other than
    text in it: :func:`_telling`). The line is split as csv reads it, and at every delimiter too: a
    line with a stray quote in it throws csv's reading off."""
    readings = [line.split(delimiter)]
    with contextlib.suppress(csv.Error):  # a NUL byte before Python 3.11
        readings.append(next(csv.reader([line], delimiter=delimiter), []))
    for fields in readings:
        if len(fields) < width:
            continue
        n, k = len(before), len(fields) - len(after)
        # the field after the first ones starts right after its delimiter, as a row's does where a quote
        # opened right after one (a quote after a space opens no field); prose puts a space there
        if (
            before
            and _forms(fields[:n]) == before
            and _apart(fields[n - 1], fields[n])
            and not fields[n][:1].isspace()
        ):
            return True
        if after and _forms(fields[k:]) == after and _apart(fields[k - 1], fields[k]):
            return True
    return False


def _forms(fields: list[str]) -> list[str | None]:
    """The form of each of ``fields`` (:func:`_form`)."""
    return [_form(field) for field in fields]


def _apart(left: str, right: str) -> bool:
    """Whether a delimiter between ``left`` and ``right`` can part two fields: not with a digit on both
    sides, a number written with a thousands separator or a decimal comma (1,000 or 0,5)."""
    return not (left[-1:].isdigit() and right[:1].isdigit())


def _telling(forms: list[str | None]) -> bool:
    """Whether ``forms`` holds one that tells a row from prose: not text (None), not an empty field."""
    return any(form not in (None, "empty") for form in forms)


def _form(field: str) -> str | None:
    """What kind of value ``field`` is (``integer``, ``number``, ``date``, ``identifier``), with a
    space on the side where it has whitespace (prose writes ", 42", a CSV writer ",42"); ``empty`` for
    a blank field, None for text."""
    value = field.strip()
    if not value:
        return "empty"
    kind = next((name for name, form in _FORMS if form.fullmatch(value)), None)
    if kind is None:
        return None
    return (" " if field[:1].isspace() else "") + kind + (" " if field[-1:].isspace() else "")
