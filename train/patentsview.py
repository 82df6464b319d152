"""Collect a corpus of patent abstracts from the PatentsView bulk downloads.

``collect`` streams the zipped tab-separated tables straight out of their zip archives (or plain ``.tsv``
files), keeps the patents whose abstract or title contains one of the query phrases, and writes them as
a CSV with the columns of the reference corpus: ``patent_abstract, patent_date, patent_number,
patent_title`` (``patent_number`` is PatentsView's ``patent_id``).

The files (https://patentsview.org/download/data-download-tables)
------------------------------------------------------------------
What the reader expects, and where it was checked:

- ``g_patent_abstract.tsv.zip`` holds one member ``g_patent_abstract.tsv`` with the columns
  ``patent_id, patent_abstract``; ``g_patent.tsv.zip`` holds ``g_patent.tsv`` with ``patent_id,
  patent_type, patent_date, patent_title, wipo_kind, num_claims, withdrawn, filename`` (PatentsView
  data dictionary, as quoted in PatentsView/PatentsView-Code-Snippets,
  ``data-downloads/0-getting-started.ipynb``). Columns are found by name, so their order and extra
  columns do not matter.
- Fields are separated by tabs, and "the double-quote character is used to enclose the contents of
  non-numeric fields", the header included; numbers are bare. The same notebook shows the first two lines
  of ``g_patent.tsv`` (tabs shown as two spaces)::

      "patent_id"  "patent_type"  "patent_date"  "patent_title"  "wipo_kind"  "num_claims"  ...
      "10000000"  "utility"  "2018-06-19"  "Coherent LADAR using intra-pixel ..."  "B2"  20  0  ...

- PatentsView's own read-in scripts (``03_bulk_download_read_in/Python Scripts/*.py``, same repository)
  read the tables with ``pandas.read_csv(zf.open(name), delimiter="\\t", quoting=csv.QUOTE_NONNUMERIC)``:
  CSV quoting with a tab as separator, so a quote inside a field is doubled (``""``) and a quoted field
  may hold tabs and line breaks. The notes of PatentsView-DB release 2020.03.22v1 say line breaks are now
  kept in long text (claims, summaries, descriptions); nothing promises abstracts are free of them, so
  they are read wherever they occur. Quotes do occur in abstracts and titles (our reference corpus, from
  PatentsView: ``"Barometer" neuron for a neural network``).
- Patent ids are strings (``10000000``; ``D825579`` for a design patent); dates are ``YYYY-MM-DD``. Text
  is UTF-8. Lines end in ``\\n``; in a 2017 PatentsView forum thread ("Data Download: Encoding,
  Encapsulation, Escaping", patentsview.org/forum/7/topic/70) a user reports ``\\r\\n`` in some copies of
  a file and badly quoted fields in an old release, so both line ends are read and bad rows are skipped
  rather than fatal. Scripts that split lines on tabs and strip the quotes (common in public
  repositories) break on all of the above.

Reading
-------
A member is decompressed as a stream, 1 MiB at a time, by a helper thread (zlib releases the GIL, so
decompression and parsing overlap), and read a region of whole lines at a time; nothing is unzipped to
disk and no table is held in memory. A line with an odd number of quotes opens a quoted field that goes
on over the next lines: up to ``MAX_RECORD_LINES`` lines are joined until the quotes balance.

A row is *malformed*, skipped, counted and listed with its file and line number (the header is line 1)
when it has bytes that are not UTF-8, a quoted field that is never closed, the wrong number of fields, or
bad quoting (a quote inside a bare field, text after a closing quote). When a joined row turns out badly
quoted, only its first line is dropped and the lines after it are read again as rows of their own, so
one stray quote costs one row.

Speed: a region stays bytes, and a pass decodes and parses in full only its *candidate* rows: those on a
line that may hold a match (:meth:`PhraseMatcher.byte_offsets`: each phrase looked for in the region
folded to lower case, and any whitespace between words other than single spaces), those whose
``patent_id`` the pass looks for, those with any non-ASCII byte (which covers text that ASCII case folding
misses and bytes that are not UTF-8), and any row that does not look regular. Every other row is only
checked, with numpy over the region's bytes, for its quote balance and its number of tabs; so a badly
quoted row that balances its quotes, has the right number of tabs and is of no use to the pass is not
reported. The numpy work reuses its buffers from region to region and lets go of the GIL, so the helper
thread keeps decompressing meanwhile. On synthetic PatentsView files that thread is busy for about 90% of
a pass, and a pass reads rows as fast as decompressing and splitting lines alone does
(``benchmarks/patentsview_filter.py``, docs/scale.md).

Passes and memory
-----------------
Without ``patents``: one pass over the abstracts; each matching row is written at once. Memory: the ids
written (to drop duplicate rows).

With ``patents``, three streaming passes:

1. abstracts: the ids of the patents whose abstract matches (a set of ids);
2. patents: the date and title of those patents, and of the patents whose *title* matches; ``since``
   applies here (a dict of id -> date, title);
3. abstracts again: the rows of the kept ids, abstracts of title-only matches included, written to the
   output as they stream by, in abstract-file order.

Memory is therefore bounded by the number of matches (ids, dates, titles; never abstracts), not by the
size of the input: a few MiB of decompressed data in flight, plus the matches. ``limit`` keeps the first
N patents in abstract-file order.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import queue
import re
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .files import atomic_path

__all__ = [
    "CORPUS_COLUMNS",
    "CollectSummary",
    "PatentsViewConfig",
    "PhraseMatcher",
    "SkippedRow",
    "collect",
]

logger = logging.getLogger(__name__)

CORPUS_COLUMNS = ("patent_abstract", "patent_date", "patent_number", "patent_title")
ABSTRACT_COLUMNS = ("patent_id", "patent_abstract")
PATENT_COLUMNS = ("patent_id", "patent_date", "patent_title")
DOWNLOAD_PAGE = "https://patentsview.org/download/data-download-tables"

MAX_LISTED = 20  # malformed rows listed one by one in the summary; the rest are only counted
MAX_RECORD_LINES = 500  # a quoted field may span lines; past this, its opening quote is taken as stray
_CHUNK = 1 << 20  # bytes decompressed per read
_AHEAD = 4  # chunks decompressed ahead of the parser
_TICK = 1 << 14  # rows between progress-bar updates

# One field of a record: quoted (doubled quotes inside) or bare (no quote, no tab), then a tab or the end.
_FIELD = re.compile(r'"([^"]*(?:""[^"]*)*)"(?=\t|\Z)|([^\t"]*)(?=\t|\Z)')
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as decoded by surrogateescape
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_BAD_QUOTING = "bad quoting: a quote inside a bare field, or text after a closing quote"
_UNCLOSED = "a quoted field that is never closed"


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
    progress: bool = field(default=True, metadata={"help": "show a progress bar (only on a terminal)"})

    def __post_init__(self) -> None:
        query = (self.query,) if isinstance(self.query, str) else tuple(self.query)
        object.__setattr__(self, "query", query)
        for phrase in query:
            if not isinstance(phrase, str) or not phrase.split():
                raise ValueError(f"each query phrase needs at least one word, got {phrase!r}")
        if self.since is not None:
            try:
                since = date.fromisoformat(str(self.since))
            except ValueError:
                raise ValueError(f"since must be a date written YYYY-MM-DD, got {self.since!r}") from None
            object.__setattr__(self, "since", since.isoformat())
            if not self.patents:
                raise ValueError(
                    "--since filters on grant dates, which are in g_patent.tsv.zip: pass --patents FILE "
                    "as well, or leave out --since"
                )
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise ValueError(f"limit must be a positive integer, got {self.limit!r}")

    def require_inputs(self) -> None:
        """Raise ``ValueError`` naming the options that a collection needs and that are not set."""
        flags = {"abstracts": "--abstracts FILE", "query": "--query PHRASE", "out": "--out CSV"}
        missing = [flag for name, flag in flags.items() if not getattr(self, name)]
        if missing:
            raise ValueError(
                f"missing {', '.join(missing)}: nextword corpus patentsview --abstracts "
                "g_patent_abstract.tsv.zip --query PHRASE --out corpus.csv"
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
    """What :func:`collect` read, matched and wrote."""

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
        lines = [f"wrote {self.written:,} patents to {self.out}"]
        lines += [f"  {name}: {rows:,} rows scanned" for name, rows in self.rows_scanned.items()]
        matched = f"  matched {self.matched:,} patents"
        if self.matched_by_title_only:
            matched += f" ({self.matched_by_title_only:,} by title only)"
        lines.append(matched)
        for count, what in (
            (self.excluded_by_since, "granted before --since, or without a grant date"),
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

    def _skip(self, file: str, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_rows) < MAX_LISTED:
            row = SkippedRow(file, line, reason)
            self.skipped_rows.append(row)
            logger.debug("skipped %s", row)


class PhraseMatcher:
    """Does a text contain one of the query phrases?

    Matching ignores case (both sides are lowercased), needs word boundaries on both sides (``"neural
    network"`` matches neither "neural networks" nor "artificialneural network") and takes any run of
    whitespace, line breaks included, between the words of a phrase.
    """

    def __init__(self, phrases: Sequence[str]) -> None:
        words = [tuple(phrase.lower().split()) for phrase in phrases]
        if not words or not all(words):
            raise ValueError(f"each query phrase needs at least one word, got {list(phrases)!r}")
        # Per phrase: its longest word (a cheap necessary condition) and a regex that starts with a literal,
        # so that re skips ahead fast; the word boundary in front is checked by hand, since a lookbehind at
        # the start of a pattern makes re try every position of the text.
        self._checks = [
            (max(w, key=len), re.compile(r"\s+".join(map(re.escape, w)) + r"(?!\w)"))
            for w in dict.fromkeys(words)
        ]
        # For scanning raw bytes: each phrase written in ASCII, its words one space apart, with every byte
        # folded as `byte | 0x20` folds the text (see byte_offsets). Other phrases can only match on lines
        # with non-ASCII bytes, which are looked at anyway.
        self._needles = [
            bytes(c | 0x20 for c in " ".join(w).encode("ascii"))
            for w in dict.fromkeys(words)
            if all(x.isascii() for x in w)
        ]
        self._scratch = _Scratch()

    def __call__(self, text: str) -> bool:
        lowered = text.lower()
        for key, regex in self._checks:
            if key in lowered:
                found = regex.search(lowered)
                while found is not None:
                    start = found.start()
                    if start == 0 or not _is_word(lowered[start - 1]):
                        return True
                    found = regex.search(lowered, start + 1)
        return False

    def byte_offsets(self, data: bytes) -> list[int]:
        """Offsets in ``data`` (UTF-8) that flag the lines where a match may be: every match on a line of
        ASCII text whose words are apart by anything but a tab or a line break starts at or holds one.

        Such a match has its words one space apart, or other whitespace between them: two or more spaces
        in a row, or a control byte that ``\\s`` matches (``\\r``, except one that ends a line,
        ``\\v \\f \\x1c-\\x1f``). The offsets are those of each phrase written with single spaces in the
        text folded to lower case (each byte OR 0x20: that lowercases ASCII letters and can only add false
        alarms), and those of the other whitespace, all found with numpy.
        Word boundaries are not checked. Lines with non-ASCII bytes are not covered, nor words apart by
        a tab or a line break: the reader looks at those lines anyway.
        """
        if not self._needles or not data:
            return []
        n = len(data)
        folded, fold, hits, mask, pair = self._scratch.take(n)
        raw = np.frombuffer(data, dtype=np.uint8)
        np.bitwise_or(raw, 0x20, out=fold)
        # Where some needle has its first, middle and last bytes in place (numpy, which lets go of the GIL,
        # so the thread that decompresses gets it back sooner than during a bytes.find); then check those.
        hits[:] = False
        for needle in self._needles:
            size = len(needle)
            k = n - size + 1
            if k > 0:
                middle = size // 2
                found = np.equal(fold[:k], needle[0], out=mask[:k])
                np.logical_and(found, np.equal(fold[size - 1 :], needle[-1], out=pair[:k]), out=found)
                np.logical_and(
                    found, np.equal(fold[middle : middle + k], needle[middle], out=pair[:k]), out=found
                )
                np.logical_or(hits[:k], found, out=hits[:k])
        offsets = [
            at
            for at in np.flatnonzero(hits).tolist()
            if any(folded.startswith(needle, at) for needle in self._needles)
        ]
        # Two spaces in a row (the fold makes a NUL a space too: a false alarm at worst).
        space = np.equal(fold, 0x20, out=mask)
        if n > 1 and np.logical_and(space[1:], space[:-1], out=pair[1:]).any():
            offsets += np.flatnonzero(pair[1:]).tolist()
        # Control bytes other than tabs, line breaks and a \r that ends a line; counted first, since most
        # regions have none but tabs and line breaks.
        tabs_and_breaks = sum(np.count_nonzero(np.equal(raw, byte, out=mask)) for byte in (9, 10))
        if np.count_nonzero(np.less(raw, 0x20, out=mask)) > tabs_and_breaks:
            control = np.flatnonzero(np.less(raw, 0x20, out=mask))
            kind = raw[control]
            line_end = (control + 1 == n) | (raw[np.minimum(control + 1, n - 1)] == 10)
            other = (kind != 9) & (kind != 10) & ((kind != 13) | ~line_end)
            offsets += control[other].tolist()
        return offsets


class _Scratch(threading.local):
    """Buffers reused from one region to the next, so that scanning a region allocates (and faults in) no
    fresh pages: a bytearray with a uint8 view of it and three boolean masks, all at least ``n`` long."""

    def __init__(self) -> None:
        self._size = -1

    def take(self, n: int) -> tuple[bytearray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(bytearray, its first n bytes as uint8, and three bool masks of n)``."""
        if n > self._size:
            self._size = max(n, 2 * self._size, 1 << 16)
            self._bytes = bytearray(self._size)
            self._view = np.frombuffer(self._bytes, dtype=np.uint8)
            self._masks = np.empty((3, self._size), dtype=bool)
        return self._bytes, self._view[:n], self._masks[0, :n], self._masks[1, :n], self._masks[2, :n]


def _is_word(char: str) -> bool:
    """What ``\\w`` matches in a str pattern: letters and digits (``str.isalnum``) and the underscore."""
    return char.isalnum() or char == "_"


def collect(config: PatentsViewConfig) -> CollectSummary:
    """Write the patents matching ``config.query`` to ``config.out`` as a corpus CSV; see the module doc.

    Raises ``FileNotFoundError`` for a missing input and ``ValueError`` for an input that is not the
    PatentsView table it should be (the message names the file and the columns it has) or a damaged zip.
    Malformed rows are skipped and counted, never fatal. The output is written atomically: on any error
    it is left as it was.
    """
    config.require_inputs()
    abstracts = _Table(config.abstracts, "abstracts", ABSTRACT_COLUMNS, "g_patent_abstract.tsv.zip")
    patents = None
    if config.patents:
        patents = _Table(config.patents, "patents", PATENT_COLUMNS, "g_patent.tsv.zip")
    out = Path(config.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the path of the CSV file to write")
    matches = PhraseMatcher(config.query)
    summary = CollectSummary(out=str(out))
    show_progress = config.progress and sys.stderr.isatty()
    phrases = " or ".join(map(repr, config.query))
    logger.info("collecting patents matching %s from %s", phrases, abstracts.path)

    with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CORPUS_COLUMNS)
        if patents is None:
            _one_pass(abstracts, matches, config.limit, writer, summary, show_progress)
        else:
            _three_passes(abstracts, patents, matches, config, writer, summary, show_progress)

    if summary.skipped:
        logger.warning("skipped %d malformed rows; the first: %s", summary.skipped, summary.skipped_rows[0])
    logger.info("wrote %d of %d matching patents to %s", summary.written, summary.matched, out)
    return summary


def _one_pass(
    abstracts: _Table,
    matches: PhraseMatcher,
    limit: int | None,
    writer: Any,
    summary: CollectSummary,
    show_progress: bool,
) -> None:
    """No patents file: every matching abstract is written as it is read."""
    written: set[str] = set()
    with _Progress(show_progress, "abstracts") as progress:
        rows = abstracts.rows(ABSTRACT_COLUMNS, summary, progress, find=matches.byte_offsets)
        with contextlib.closing(rows):
            for _, (patent_id, abstract) in rows:
                if not matches(abstract):
                    continue
                if patent_id in written:
                    summary.duplicates += 1
                    continue
                written.add(patent_id)
                writer.writerow((abstract, "", patent_id, ""))
                progress.matched = len(written)
                if limit is not None and len(written) >= limit:
                    break
    summary.matched = summary.written = len(written)


def _three_passes(
    abstracts: _Table,
    patents: _Table,
    matches: PhraseMatcher,
    config: PatentsViewConfig,
    writer: Any,
    summary: CollectSummary,
    show_progress: bool,
) -> None:
    """Abstract matches (ids), then dates and titles (and title matches), then the abstracts to write."""
    # Pass 1: ids of the patents whose abstract matches.
    hits: set[str] = set()
    with _Progress(show_progress, "1/3 abstracts") as progress:
        for _, (patent_id, abstract) in abstracts.rows(
            ABSTRACT_COLUMNS, summary, progress, find=matches.byte_offsets
        ):
            if matches(abstract):
                hits.add(patent_id)
                progress.matched = len(hits)
    logger.info("pass 1/3: %d abstracts match", len(hits))

    # Pass 2: date and title of every hit, and of every patent whose title matches; --since applies.
    meta: dict[str, tuple[str, str]] = {}
    title_only: set[str] = set()
    excluded: set[str] = set()
    since = config.since
    with _Progress(show_progress, "2/3 patents") as progress:
        rows = patents.rows(PATENT_COLUMNS, summary, progress, find=matches.byte_offsets, ids=hits)
        for _, (patent_id, patent_date, title) in rows:
            if patent_id in meta or patent_id in excluded:
                continue  # a repeated row: the first one counts
            if patent_id not in hits:
                if not matches(title):
                    continue
                title_only.add(patent_id)
            if since is not None and not (_ISO_DATE.match(patent_date) and patent_date >= since):
                excluded.add(patent_id)
                continue
            meta[patent_id] = (patent_date, title)
            progress.matched = len(meta)
    without_metadata = hits - meta.keys() - excluded
    summary.matched = len(hits) + len(title_only)
    summary.matched_by_title_only = len(title_only)
    summary.excluded_by_since = len(excluded) + (len(without_metadata) if since is not None else 0)
    summary.without_metadata = 0 if since is not None else len(without_metadata)
    logger.info("pass 2/3: %d more patents match by title; %d kept", len(title_only), len(meta))

    # Pass 3: the abstracts of the kept patents, written in abstract-file order.
    keep = set(meta) if since is not None else set(meta) | without_metadata
    written: set[str] = set()
    empty = 0
    limit = config.limit
    with _Progress(show_progress, "3/3 abstracts") as progress:
        # Malformed rows were counted in pass 1: no summary this time.
        rows = abstracts.rows(ABSTRACT_COLUMNS, None, progress, ids=keep)
        with contextlib.closing(rows):
            for _, (patent_id, abstract) in rows:
                if patent_id not in keep:
                    continue
                if patent_id in written:
                    summary.duplicates += 1
                    continue
                if not abstract.strip():
                    empty += 1
                    continue
                written.add(patent_id)
                patent_date, title = meta.get(patent_id, ("", ""))
                writer.writerow((abstract, patent_date, patent_id, title))
                progress.matched = len(written)
                if limit is not None and len(written) >= limit:
                    break
    summary.written = len(written)
    if limit is None or len(written) < limit:  # the whole file was read: absent title matches are known
        summary.without_abstract = len(title_only & keep) - len(title_only & written)
    else:
        summary.without_abstract = empty


class _Progress:
    """A tqdm bar of rows scanned and matched, or nothing (not a terminal, or turned off)."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.matched = 0
        self._bar: Any = None
        self._shown = 0
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            logger.warning('no progress bar: tqdm is not installed (pip install "nextword[train]")')
            return
        self._bar = tqdm(desc=desc, unit=" rows", unit_scale=True, mininterval=0.5, dynamic_ncols=True)

    def update(self, rows: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"matched {self.matched:,}", refresh=False)
            self._bar.update(rows - self._shown)
            self._shown = rows

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"matched {self.matched:,}", refresh=False)
            self._bar.close()


class _Table:
    """One PatentsView table (zipped or plain TSV); checks the file and its header on creation."""

    def __init__(self, path: str, role: str, required: tuple[str, ...], download: str) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{role} file {self.path} does not exist (or is not a file); download {download} from "
                f"{DOWNLOAD_PAGE}"
            )
        regions = _read_regions(self.path)
        try:
            first = next(regions, None)
        finally:
            regions.close()
        if first is None:
            raise ValueError(f"{self.path} is empty; expected the PatentsView table {download}")
        header = first.partition(b"\n")[0].decode("utf-8", "surrogateescape")
        header = header.removeprefix("\ufeff").removesuffix("\r")
        fields = None if _SURROGATE.search(header) else _split_fields(header)
        if fields is None:
            raise ValueError(
                f"{self.path}: the first line is not a tab-separated header ({header[:120]!r}); "
                f"expected the PatentsView table {download}"
            )
        self.columns = [f.strip() for f in fields]
        missing = [c for c in required if c not in self.columns]
        if missing:
            raise ValueError(
                f"{self.path} has no column {', '.join(map(repr, missing))}; its columns are {self.columns}. "
                f"Pass the PatentsView table {download} as the {role} file"
            )
        self.index = {c: i for i, c in reversed(list(enumerate(self.columns)))}  # the first of a repeat

    def rows(
        self,
        wanted: tuple[str, ...],
        summary: CollectSummary | None,
        progress: _Progress,
        *,
        find: Callable[[bytes], list[int]] | None = None,
        ids: set[str] | None = None,
    ) -> Iterator[tuple[int, tuple[str, ...]]]:
        """Yield ``(line number, values of the wanted columns)`` for well-formed rows.

        Without ``find`` and ``ids``, every well-formed row is yielded. With them, only candidates are:
        rows on a line where ``find`` flags a possible match (it gets a region of whole lines as bytes and
        returns offsets into it, see :meth:`PhraseMatcher.byte_offsets`), rows whose ``patent_id`` is in
        ``ids``, rows with non-ASCII bytes, and any row that is not plainly regular; the caller still
        tests each row it gets. Malformed rows are skipped; with a
        ``summary`` they are counted and listed there, and ``summary.rows_scanned`` gets the rows read.
        """
        idx = tuple(self.index[c] for c in wanted)
        ncols = len(self.columns)
        name = self.name
        skip = (lambda line, reason: summary._skip(name, line, reason)) if summary else (lambda *_: None)
        selective = find is not None or ids is not None
        first_ids = None  # the wanted ids as bytes, when the id is the first field and can be cut off cheaply
        if ids is not None and self.index.get("patent_id") == 0:
            first_ids = {i.encode("utf-8", "surrogateescape") for i in ids}  # once per pass, not per region
        if ids is not None and first_ids is None:
            selective = False  # the wanted ids cannot be told without parsing: parse every row
        source = _Regions(self.path, find)
        records = 0
        started = time.perf_counter()
        try:
            if not source.load(0):
                return
            i = 1  # line 1 is the header
            while True:
                lines = source.lines
                if i >= len(lines):
                    progress.update(records)
                    if not source.load(len(lines)):
                        break
                    i = 0
                    continue
                # The lines from i on that need a look; the others are regular rows of no interest.
                todo = _candidates(source, i, ncols - 1, first_ids) if selective else None
                merged = False  # a row ran into the next region, which was appended: recompute todo
                for candidate in todo if todo is not None else range(i, len(lines)):
                    if candidate < i:
                        continue  # a line of a row read already
                    records += candidate - i
                    i = candidate
                    line = lines[i]
                    if not line or line == "\r":
                        i += 1
                        continue  # a blank line
                    records += 1
                    quotes = line.count('"')
                    end = i + 1
                    if quotes & 1:
                        # A quoted field goes on over the next lines: join them until the quotes balance.
                        while quotes & 1 and end - i < MAX_RECORD_LINES:
                            if end >= len(lines):
                                if not source.load(i):
                                    break
                                lines, end, i, merged = source.lines, end - i, 0, True
                                continue
                            quotes += lines[end].count('"')
                            end += 1
                        if quotes & 1:
                            skip(source.base + i + 1, _UNCLOSED)
                            i += 1  # take the opening quote as stray and read the next lines again
                            if merged:
                                break
                            continue
                        record = "\n".join(lines[i:end])
                    else:
                        record = line
                    number = source.base + i + 1
                    values = _parse(record, ncols, idx)
                    if isinstance(values, str):
                        skip(number, values)
                        # After bad quoting, lines that were joined are read again as rows of their own.
                        i = i + 1 if values is _BAD_QUOTING else end
                    else:
                        i = end
                        yield number, values
                    if merged:
                        break
                else:
                    records += len(lines) - i
                    i = len(lines)
        finally:
            source.close()
            progress.update(records)
            if summary is not None:
                summary.rows_scanned[name] = records
            logger.debug(
                "%s: %d rows in %.2f s; decompressing took %.2f s (%.2f s CPU) in the helper thread, "
                "waiting for it %.2f s",
                name,
                records,
                time.perf_counter() - started,
                source.timing.reading,
                source.timing.reading_cpu,
                source.timing.waiting,
            )


def _candidates(source: _Regions, start: int, tabs: int, ids: set[bytes] | None) -> list[int]:
    """Indices (from ``start`` on) of the lines of the current region that need a look: flagged by the
    query, holding non-ASCII bytes, holding a wanted id, or not plainly regular (an odd number of
    quotes, or not ``tabs`` tabs)."""
    lines = source.lines
    todo = lines.candidates(tabs)
    if ids is not None:
        todo = np.union1d(todo, lines.with_first_cell_in(ids))
    return todo[np.searchsorted(todo, start) :].tolist()


def _parse(record: str, ncols: int, idx: tuple[int, ...]) -> tuple[str, ...] | str:
    """The wanted values of one record, or the reason it is malformed."""
    if record[-1:] == "\r":
        record = record[:-1]
    if not record.isascii() and _SURROGATE.search(record):
        if "\n" in record and _split_fields(record) is None:
            return _BAD_QUOTING  # lines joined after a stray quote: they will be read again
        return _not_utf8(record)
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
    fields = _split_fields(record)
    if fields is None:
        return _BAD_QUOTING
    if len(fields) != ncols:
        return f"{len(fields)} field(s), expected {ncols}"
    return tuple(fields[k] for k in idx)


class _Lines:
    """The lines of a region of bytes (whole lines, no final line break), decoded one at a time when
    asked for: ``lines[i]`` is line ``i`` as text (bytes that are not UTF-8 as lone surrogates, as
    ``surrogateescape`` decodes them), ``lines[i:j]`` a list of them.

    What a pass needs to know about every line is found with numpy over the bytes, without making a
    string of each line: its number of tabs and of quotes, whether it has non-ASCII bytes, and which
    lines hold given offsets. Only the lines that need a look are ever decoded.
    """

    def __init__(self, data: bytes, scratch: _Scratch | None = None) -> None:
        self.data = data
        self._bytes = np.frombuffer(data, dtype=np.uint8)
        self._mask, other = (scratch or _Scratch()).take(len(data))[2:4]  # reused, not allocated
        # One scan finds the bytes that shape the rows: line breaks, tabs and quotes.
        np.equal(self._bytes, 10, out=self._mask)
        for byte in (9, 34):
            np.logical_or(self._mask, np.equal(self._bytes, byte, out=other), out=self._mask)
        where = np.flatnonzero(self._mask)
        kind = self._bytes[where]
        self._found = {byte: where[kind == byte] for byte in (9, 34)}  # offsets of the tabs, the quotes
        breaks = where[kind == 10]  # (n - 1,) offsets of the line breaks
        self.starts = np.concatenate(([0], breaks + 1))  # (n,) first byte of each line
        self.stops = np.append(breaks, len(data))  # (n,) one past its last byte
        self.flagged = np.empty(0, dtype=np.int64)  # lines where a match may be (set by the reader)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        return self.data[self.starts[index] : self.stops[index]].decode("utf-8", "surrogateescape")

    def line_of(self, offsets: Sequence[int] | np.ndarray) -> np.ndarray:
        """The sorted, distinct indices of the lines that hold the bytes at ``offsets``."""
        return np.unique(np.searchsorted(self.stops, np.asarray(offsets, dtype=np.int64)))

    def _where(self, compare: np.ufunc, byte: int) -> np.ndarray:
        """Offsets of the bytes for which ``compare(b, byte)`` holds, found without a fresh mask."""
        return np.flatnonzero(compare(self._bytes, byte, out=self._mask))

    def _count_per_line(self, byte: int) -> np.ndarray:
        return np.bincount(np.searchsorted(self.stops, self._found[byte]), minlength=len(self))

    def candidates(self, tabs: int) -> np.ndarray:
        """Sorted indices of the lines that need a look: flagged, with non-ASCII bytes, an odd number
        of quotes or not ``tabs`` tabs."""
        irregular = (self._count_per_line(9) != tabs) | (self._count_per_line(34) & 1).astype(bool)
        parts = [np.flatnonzero(irregular), self.flagged]
        if not self.data.isascii():
            parts.append(self.line_of(self._where(np.greater_equal, 0x80)))
        return np.unique(np.concatenate(parts))

    def with_first_cell_in(self, wanted: set[bytes]) -> np.ndarray:
        """Indices of the lines whose first field (quotes removed) is one of ``wanted`` (UTF-8)."""
        data, found = self.data, []
        for k, (start, stop) in enumerate(zip(self.starts.tolist(), self.stops.tolist(), strict=True)):
            tab = data.find(b"\t", start, stop)
            cell = data[start : stop if tab < 0 else tab]
            if cell[:1] == b'"':
                cell = cell[1:-1]
            if cell in wanted:
                found.append(k)
        return np.asarray(found, dtype=np.int64)


class _Regions:
    """The lines of a table, a region (about 1 MiB of whole lines) at a time.

    ``lines`` is the current region (:class:`_Lines`); ``base`` the number of lines before it. Its
    ``flagged`` lines are those where ``find`` reported a possible match.
    """

    def __init__(self, path: Path, find: Callable[[bytes], list[int]] | None) -> None:
        self.timing = _Timing()
        self._regions = _read_regions(path, self.timing)
        self._find = find
        self._scratch = _Scratch()
        self.lines = _Lines(b"", self._scratch)
        self.base = 0

    def load(self, keep: int) -> bool:
        """Move on to the next region, keeping the current lines from index ``keep`` in front of it."""
        region = next(self._regions, None)
        if region is None:
            return False
        if keep < len(self.lines) and self.lines.data:
            region = self.lines.data[self.lines.starts[keep] :] + b"\n" + region
        lines = _Lines(region, self._scratch)
        if self._find is not None:
            lines.flagged = lines.line_of(self._find(region))
        self.base += keep
        self.lines = lines
        return True

    def close(self) -> None:
        self._regions.close()


def _split_fields(record: str) -> list[str] | None:
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


def _not_utf8(record: str) -> str:
    """Why a record decoded with surrogateescape was not UTF-8, with the offending byte's position."""
    try:
        record.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"bytes that are not UTF-8 ({exc.reason} at byte {exc.start} of the row)"
    return "bytes that are not UTF-8"


@dataclass
class _Timing:
    """Where a pass's time went: ``reading``, the helper thread's time in ``read`` (decompressing, and
    waiting for the GIL in between), ``reading_cpu`` the CPU time of it; ``waiting``, the parser's time
    waiting for that thread's next chunk. When ``reading`` is about the whole pass, decompression sets its
    pace."""

    reading: float = 0.0
    reading_cpu: float = 0.0
    waiting: float = 0.0


def _read_regions(path: Path, timing: _Timing | None = None) -> Iterator[bytes]:
    """The table as regions of whole lines (bytes, without the last line break)."""
    tail = b""
    chunks = _read_chunks(path, timing)
    try:
        for chunk in chunks:
            cut = chunk.rfind(b"\n")
            if cut < 0:
                tail += chunk
                continue
            yield b"".join((tail, memoryview(chunk)[:cut]))  # one copy of the chunk, not two
            tail = chunk[cut + 1 :]
        if tail:
            yield tail
    finally:
        chunks.close()


def _read_chunks(path: Path, timing: _Timing | None = None) -> Iterator[bytes]:
    """The bytes of the table, 1 MiB at a time, decompressed by a helper thread at most ``_AHEAD`` chunks
    ahead of the caller (zlib releases the GIL, so decompression and parsing overlap). ``timing``, if given,
    adds up the time spent reading and the time the caller spends waiting for the next chunk."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()
    timing = timing or _Timing()

    def produce() -> None:
        try:
            with _open_stream(path) as stream:
                while not stop.is_set():
                    started, cpu = time.perf_counter(), time.thread_time()
                    chunk = stream.read(_CHUNK)
                    timing.reading += time.perf_counter() - started
                    timing.reading_cpu += time.thread_time() - cpu
                    if not chunk:
                        break
                    _put(chunks, chunk, stop)
        except BaseException as exc:  # handed over to the caller, which raises it
            _put(chunks, exc, stop)
        else:
            _put(chunks, None, stop)

    worker = threading.Thread(target=produce, name=f"read {path.name}", daemon=True)
    worker.start()
    try:
        while True:
            started = time.perf_counter()
            chunk = chunks.get()
            timing.waiting += time.perf_counter() - started
            if chunk is None:
                return
            if isinstance(chunk, (zipfile.BadZipFile, zlib.error, EOFError)):
                raise ValueError(f"{path} is damaged ({chunk}); download it again")
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk
    finally:
        stop.set()
        worker.join()


def _put(chunks: queue.Queue, item: object, stop: threading.Event) -> None:
    """Put ``item`` on the queue unless the reader has stopped listening."""
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[BinaryIO]:
    """The table's bytes: the .tsv member of a zip, decompressed as it is read, or the plain file."""
    if path.suffix.lower() != ".zip":
        with path.open("rb") as f:
            yield f
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path} is not a readable zip file ({exc}); download it again") from None
    with archive, archive.open(_member(archive, path)) as member:
        yield member


def _member(archive: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    """The member holding the table: the one named like the archive (g_patent.tsv), or the only .tsv."""
    files = [info for info in archive.infolist() if not info.is_dir()]
    tables = [info for info in files if info.filename.lower().endswith(".tsv")]
    expected = path.name[: -len(".zip")]
    for info in tables:
        if Path(info.filename).name == expected:
            return info
    if len(tables) == 1:
        return tables[0]
    if len(files) == 1:
        return files[0]
    raise ValueError(
        f"{path} holds {[info.filename for info in files]}; expected one .tsv table such as {expected!r}"
    )
