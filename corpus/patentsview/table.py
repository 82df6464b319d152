"""One PatentsView table: its header, checked when it is opened, and the rows of a pass over it.

How rows are read, what makes one malformed and how memory stays bounded: docs/patentsview.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from ..sniffing import HEAD_BYTES, not_text
from .config import CollectSummary
from .lines import Lines
from .scratch import Scratch
from .stream import Timing, read_regions
from .tsv import BAD_QUOTING, SURROGATE, UNCLOSED, parse_record, split_fields, too_long

__all__ = ["DOWNLOAD_PAGE", "MAX_RECORD_LINES", "Table"]

logger = logging.getLogger(__name__)

DOWNLOAD_PAGE = "https://patentsview.org/download/data-download-tables"
MAX_RECORD_LINES = 500  # a quoted field may span lines; past this, its opening quote is taken as stray

Row = tuple[int, tuple[str, ...]]  # (line number, values of the wanted columns)


class Progress(Protocol):
    """What a pass reports its progress to (:class:`~nextword.corpus.patentsview.progress.Progress`)."""

    def update(self, rows: int) -> None: ...


class Table:
    """One PatentsView table (zipped or plain TSV); checks the file and its header on creation.

    ``max_record_bytes`` caps a row (see :class:`~nextword.corpus.patentsview.PatentsViewConfig`).
    """

    def __init__(
        self, path: str, role: str, required: tuple[str, ...], download: str, max_record_bytes: int
    ) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.max_record_bytes = max_record_bytes
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{role} file {self.path} does not exist (or is not a file); download {download} from "
                f"{DOWNLOAD_PAGE}"
            )
        if self.path.suffix.lower() != ".zip":  # a zip is read as one; anything else must be the TSV
            with self.path.open("rb") as f:
                found = not_text(f.read(HEAD_BYTES))
            if found is not None:
                raise ValueError(
                    f"{self.path}: the file is {found[0]}, not the tab-separated table {download}; pass the "
                    f".zip as downloaded (named .zip), or {found[1]}"
                )
        regions = read_regions(self.path, max_record_bytes)
        try:
            first = next(regions, None)
        finally:
            regions.close()
        if first is None:
            raise ValueError(f"{self.path} is empty; expected the PatentsView table {download}")
        header = first.data.partition(b"\n")[0].decode("utf-8", "surrogateescape")
        header = header.removeprefix("\ufeff").removesuffix("\r")
        fields = None if first.dropped_first or SURROGATE.search(header) else split_fields(header)
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
        progress: Progress,
        *,
        find: Callable[[bytes], list[int]] | None = None,
        ids: set[str] | None = None,
    ) -> Generator[Row, None, None]:
        """Yield ``(line number, values of the wanted columns)`` for well-formed rows.

        Without ``find`` and ``ids``, every well-formed row is yielded. With them, only candidates are:
        rows on a line where ``find`` flags a possible match (it gets a region of whole lines as bytes and
        returns offsets into it, see :meth:`PhraseMatcher.byte_offsets`), rows whose ``patent_id`` is in
        ``ids``, rows with non-ASCII bytes, and any row that is not plainly regular; the caller still
        tests each row it gets. Malformed rows are skipped; with a ``summary`` they are counted and
        listed there, and ``summary.rows_scanned`` gets the rows read.
        """
        reader = _Pass(self, wanted, summary, progress, find, ids)
        try:
            yield from reader.rows()
        finally:
            reader.close()


class _Regions:
    """The lines of a table, a region (about one chunk of whole lines) at a time.

    ``lines`` is the current region (:class:`Lines`); ``base`` the number of lines before it. Its
    ``flagged`` lines are those where ``find`` reported a possible match.
    """

    def __init__(self, path: Path, find: Callable[[bytes], list[int]] | None, max_line_bytes: int) -> None:
        self.timing = Timing()
        self._regions = read_regions(path, max_line_bytes, self.timing)
        self._find = find
        self._scratch = Scratch()
        self._cap = max_line_bytes
        self._empty = Lines(b"", self._scratch, max_line_bytes)
        self.lines = self._empty
        self._dropped: list[int] = []  # lines of the current region that stand for dropped over-long lines
        self.base = 0

    def load(self, keep: int) -> bool:
        """Move on to the next region, keeping the current lines from index ``keep`` in front of it."""
        region = next(self._regions, None)
        if region is None:
            return False
        data, dropped = region.data, [0] if region.dropped_first else []
        old, self.lines = self.lines, self._empty  # let go of the old region before the new one is measured
        if keep < len(old) and old.data:
            kept = len(old) - keep
            data = old.data[old.starts[keep] :] + b"\n" + data
            dropped = [k - keep for k in self._dropped if k >= keep] + [kept + k for k in dropped]
        del old
        lines = Lines(data, self._scratch, self._cap, dropped)
        if self._find is not None:
            lines.flagged = lines.line_of(self._find(data))
        self.base += keep
        self.lines, self._dropped = lines, dropped
        return True

    def close(self) -> None:
        self._regions.close()


class _Pass:
    """One pass over a table's rows (see :meth:`Table.rows`): the state the pass keeps between regions."""

    def __init__(
        self,
        table: Table,
        wanted: tuple[str, ...],
        summary: CollectSummary | None,
        progress: Progress,
        find: Callable[[bytes], list[int]] | None,
        ids: set[str] | None,
    ) -> None:
        self.table, self.summary, self.progress = table, summary, progress
        self.idx = tuple(table.index[c] for c in wanted)
        self.ncols = len(table.columns)
        self.too_long = too_long(table.max_record_bytes)
        # The wanted ids as bytes, when the id is the first field and can be cut off cheaply; without
        # that, the wanted ids cannot be told without parsing, and every row is parsed.
        self.first_ids = None
        if ids is not None and table.index.get("patent_id") == 0:
            self.first_ids = {i.encode("utf-8", "surrogateescape") for i in ids}  # once per pass
        self.selective = find is not None or self.first_ids is not None
        self.source = _Regions(table.path, find, table.max_record_bytes)
        self.records = 0  # rows read so far (blank lines are no rows)
        self.started = time.perf_counter()

    def rows(self) -> Iterator[Row]:
        source = self.source
        if not source.load(0):
            return
        i = 1  # line 1 is the header
        while True:
            if i >= len(source.lines):
                self.progress.update(self.records)
                if not source.load(len(source.lines)):
                    return
                i = 0
            i = yield from self._region_rows(i)

    def _region_rows(self, i: int) -> Generator[Row, None, int]:
        """The rows of the current region from line ``i`` on; returns the line to go on from: the end of
        the region, or the end of a row that ran into the next region (which is then the current one)."""
        lines = self.source.lines
        for candidate in self._todo(i):
            if candidate < i:
                continue  # a line of a row read already
            self.records += lines.nonblank(i, candidate)  # regular rows of no interest
            i, row = self._row_at(candidate)
            if row is not None:
                yield row
            if self.source.lines is not lines:  # the row ran into the next region, now merged in
                return i
        self.records += lines.nonblank(i, len(lines))
        return len(lines)

    def _todo(self, start: int) -> list[int]:
        """Indices (from ``start`` on) of the lines of the current region that need a look: all rows, or,
        in a selective pass, those flagged by the query, holding non-ASCII bytes or a wanted id, over
        the cap, or not plainly regular (an odd number of quotes, or not one tab fewer than columns)."""
        lines = self.source.lines
        if not self.selective:
            todo = lines.every_line()
        else:
            todo = lines.candidates(self.ncols - 1)
            if self.first_ids is not None:
                todo = np.union1d(todo, lines.with_first_cell_in(self.first_ids))
        return todo[np.searchsorted(todo, start) :].tolist()

    def _row_at(self, i: int) -> tuple[int, Row | None]:
        """Read the row that starts on line ``i``: ``(line after it, the row or None if malformed)``.
        A row that runs into the next region merges it in first; its lines are then renumbered."""
        self.records += 1
        start, end, problem = self._extent(i)
        lines = self.source.lines
        number = self.source.base + start + 1
        if problem is not None:
            self._skip(number, problem)
            return start + 1, None  # the opening quote taken as stray: the next lines are read again
        record = lines[start] if end == start + 1 else "\n".join(lines[start:end])
        values = parse_record(record, self.ncols, self.idx)
        if isinstance(values, str):
            self._skip(number, values)
            # After bad quoting, lines that were joined are read again as rows of their own.
            return (start + 1 if values is BAD_QUOTING else end), None
        return end, (number, values)

    def _extent(self, i: int) -> tuple[int, int, str | None]:
        """``(start, end, problem)``: the lines ``[start, end)`` of the row that starts on line ``i``
        (``start`` is 0 once the next region was merged in behind it), and why it cannot be read, if so:
        over the cap, or a quoted field not closed within ``MAX_RECORD_LINES`` lines."""
        cap = self.table.max_record_bytes
        while True:
            lines = self.source.lines
            if lines.long[i]:
                return i, i + 1, self.too_long
            end = lines.record_end(i)
            last = len(lines) if end is None else end
            if lines.any_long(i, last) or lines.bytes_of(i, last) > cap:
                return i, i + 1, self.too_long
            if end is not None:
                return (i, end, None) if end - i <= MAX_RECORD_LINES else (i, i + 1, UNCLOSED)
            if last - i >= MAX_RECORD_LINES or not self.source.load(i):
                return i, i + 1, UNCLOSED
            i = 0  # the row's first line now opens the merged region

    def _skip(self, line: int, reason: str) -> None:
        if self.summary is not None:
            self.summary.skip(self.table.name, line, reason)

    def close(self) -> None:
        source = self.source
        source.close()
        self.progress.update(self.records)
        if self.summary is not None:
            self.summary.rows_scanned[self.table.name] = self.records
        logger.debug(
            "%s: %d rows in %.2f s; decompressing took %.2f s (%.2f s CPU) in the helper thread, "
            "waiting for it %.2f s",
            self.table.name,
            self.records,
            time.perf_counter() - self.started,
            source.timing.reading,
            source.timing.reading_cpu,
            source.timing.waiting,
        )
