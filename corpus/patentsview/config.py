"""What to collect from PatentsView (:class:`PatentsViewConfig`), and the report of what was read
(:class:`CollectSummary`, with the malformed rows as :class:`SkippedRow`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date

from nextword.runtime.checks import check_bool, check_iterable, plain_numbers, wrong_type
from nextword.runtime.field_help import with_field_help

__all__ = ["MAX_LISTED", "CollectSummary", "PatentsViewConfig", "SkippedRow"]

logger = logging.getLogger(__name__)

MAX_LISTED = 20  # malformed rows listed one by one in the summary; the rest are only counted


def _since(value: object) -> str:
    """``since`` as YYYY-MM-DD, or the ValueError that says what is wrong. The shape is checked before
    ``date.fromisoformat``, which on Python 3.11 also reads 20240101 and 2024-W01 (3.10 does not)."""
    wrong = f"since must be a date written YYYY-MM-DD, got {value!r}"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value), re.ASCII):
        raise ValueError(wrong)
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError as exc:  # the shape is right: month 13, February 30...
        raise ValueError(f"{wrong} ({exc})") from None


@with_field_help  # help(PatentsViewConfig) lists the fields with their --help
@dataclass(frozen=True)
class PatentsViewConfig:
    """What to collect from the PatentsView bulk files, and where to write it."""

    abstracts: str = field(
        default="",
        metadata={
            "help": "PatentsView g_patent_abstract.tsv.zip (or the unzipped .tsv): patent_id, "
            "patent_abstract",
            "metavar": "FILE",
        },
    )
    patents: str | None = field(
        default=None,
        metadata={
            "help": "PatentsView g_patent.tsv.zip (or .tsv): adds patent_date and patent_title, and matches "
            "the query in titles too; needed by --since",
            "metavar": "FILE",
        },
    )
    query: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "phrase to look for in abstracts and titles, case-insensitively and as whole words "
            "(any whitespace between its words); repeat for more phrases, any one matches",
            "metavar": "PHRASE",
        },
    )
    since: str | None = field(
        default=None,
        metadata={
            "help": "keep patents granted on or after this date (needs --patents)",
            "metavar": "YYYY-MM-DD",
        },
    )
    limit: int | None = field(
        default=None,
        metadata={
            "help": "write at most this many patents, the first in abstract-file order",
            "metavar": "N",
        },
    )
    out: str = field(
        default="",
        metadata={
            "help": "corpus CSV to write (patent_abstract, patent_date, patent_number, patent_title)",
            "metavar": "CSV",
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "replace --out when it exists (without it an existing file is kept)"}
    )
    max_record_bytes: int = field(
        default=1 << 20,
        metadata={
            "help": "skip and report a row longer than this many bytes; memory stays bounded by it, "
            "whatever the input (the longest abstract of the reference corpus has 2,424)",
            "metavar": "BYTES",
        },
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar (only on a terminal)"})

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("overwrite", "progress"):  # overwrite="no" is truthy: it would replace --out
            check_bool(name, getattr(self, name))
        if not isinstance(self.query, str):
            check_iterable("query", self.query, "a phrase or a list of phrases")
        query = (self.query,) if isinstance(self.query, str) else tuple(self.query)
        object.__setattr__(self, "query", query)
        for phrase in query:
            if not isinstance(phrase, str) or not phrase.split():
                raise ValueError(f"each query phrase needs at least one word, got {phrase!r}")
        if self.since is not None:
            object.__setattr__(self, "since", _since(self.since))
            if not self.patents:
                raise ValueError(
                    "since filters on grant dates, which are in g_patent.tsv.zip: pass patents='FILE' "
                    "as well, or leave out `since`"
                )
        for name in ("limit", "max_record_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise wrong_type(name, "a positive integer", value)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def require_inputs(self) -> None:
        """Raise ``ValueError`` naming the options that a collection needs and that are not set."""
        flags = {"abstracts": "abstracts='FILE'", "query": "query='PHRASE'", "out": "out='CSV'"}
        missing = [flag for name, flag in flags.items() if not getattr(self, name)]
        if missing:
            raise ValueError(
                f"missing {', '.join(missing)}: nextword.corpus.patentsview.collect(PatentsViewConfig("
                "abstracts='g_patent_abstract.tsv.zip', query='PHRASE', out='corpus.csv'))"
            )


@dataclass(frozen=True)
class SkippedRow:
    """A malformed input row: the file, the line it starts on (the header is line 1) and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.reason}"


@dataclass
class CollectSummary:
    """What :func:`~nextword.corpus.patentsview.collect` read, matched and wrote."""

    out: str
    rows_scanned: dict[str, int] = field(default_factory=dict)  # data rows read per input file
    matched: int = 0  # distinct patents whose abstract or title matches the query
    matched_by_title_only: int = 0  # of those, matched by their title alone
    excluded_by_since: int = 0  # matches granted before ``since`` (or without a YYYY-MM-DD date)
    without_abstract: int = 0  # title matches with no (or an empty) abstract row
    without_metadata: int = 0  # abstract matches absent from the patents file (date and title left empty)
    duplicates: int = 0  # repeated rows of a patent already written
    written: int = 0
    skipped: int = 0  # malformed rows, all files together
    skipped_rows: list[SkippedRow] = field(default_factory=list)  # the first MAX_LISTED of them

    def describe(self) -> str:
        """The summary as a few lines of text."""
        lines = [f"wrote {self.written:,} patent{'' if self.written == 1 else 's'} to {self.out}"]
        lines += [f"  {name}: {rows:,} rows scanned" for name, rows in self.rows_scanned.items()]
        matched = f"  matched {self.matched:,} patents"
        if self.matched_by_title_only:
            matched += f" ({self.matched_by_title_only:,} by title only)"
        lines.append(matched)
        for count, what in (
            (self.excluded_by_since, "granted before the date asked for, or without a grant date"),
            (self.without_abstract, "title matches without an abstract"),
            (self.without_metadata, "abstract matches missing from the patents file (no date, no title)"),
            (self.duplicates, "duplicate rows of a patent already written"),
        ):
            if count:
                lines.append(f"  {count:,} {what}")
        if self.skipped:
            lines.append(f"  skipped {self.skipped:,} malformed rows:")
            lines += [f"    {row}" for row in self.skipped_rows]
            if self.skipped > len(self.skipped_rows):
                lines.append(f"    ... and {self.skipped - len(self.skipped_rows):,} more")
        return "\n".join(lines)

    def skip(self, file: str, line: int, reason: str) -> None:
        """Count a malformed row, and list it if fewer than :data:`MAX_LISTED` are listed."""
        self.skipped += 1
        if len(self.skipped_rows) < MAX_LISTED:
            row = SkippedRow(file, line, reason)
            self.skipped_rows.append(row)
            logger.debug("skipped %s", row)
