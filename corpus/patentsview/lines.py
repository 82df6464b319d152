"""The lines of one region of a table, measured with numpy without making a string of each line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .scratch import Scratch

__all__ = ["Lines"]


class Lines:
    """The lines of a region of bytes (whole lines, no final line break), decoded one at a time when
    asked for: ``lines[i]`` is line ``i`` as text (bytes that are not UTF-8 as lone surrogates, as
    ``surrogateescape`` decodes them), ``lines[i:j]`` a list of them.

    One numpy scan finds what a pass needs to know about every line: its numbers of tabs and quotes,
    whether it is blank (empty, or a lone ``\\r``), longer than ``max_line_bytes`` (or stands for a line
    that was, listed in ``dropped``), has non-ASCII bytes, and which lines hold given offsets. Only the
    lines that need a look are ever decoded.
    """

    def __init__(
        self, data: bytes, scratch: Scratch, max_line_bytes: int, dropped: Sequence[int] = ()
    ) -> None:
        self.data = data
        self._bytes = np.frombuffer(data, dtype=np.uint8)
        self._mask, other = scratch.take(len(data))[2:4]  # reused, not allocated
        np.equal(self._bytes, 10, out=self._mask)  # the bytes that shape the rows: line breaks, tabs, quotes
        for byte in (9, 34):
            np.logical_or(self._mask, np.equal(self._bytes, byte, out=other), out=self._mask)
        # Offsets and line indices fit in int32 (a region is a few MiB): 4 bytes a line, not 8, which
        # matters for a region of a million blank lines.
        where = np.flatnonzero(self._mask).astype(np.int32)
        kind = self._bytes[where]
        breaks = where[kind == 10]  # (n - 1,) offsets of the line breaks
        self.starts = np.concatenate((np.zeros(1, np.int32), breaks + 1))  # (n,) first byte of each line
        self.stops = np.append(breaks, np.int32(len(data)))  # (n,) one past its last byte
        del breaks
        n = len(self.starts)
        self._found = {byte: where[kind == byte] for byte in (9, 34)}  # offsets of the tabs, the quotes
        del where, kind
        lengths = self.stops - self.starts
        last = self._bytes[np.maximum(self.stops - 1, 0)] if len(data) else np.zeros(n, dtype=np.uint8)
        self.blank = (lengths == 0) | ((lengths == 1) & (last == 13))  # (n,)
        self.long = lengths > max_line_bytes  # (n,)
        del lengths, last
        self.long[list(dropped)] = True
        self.blank &= ~self.long
        self._nonblank_before = np.concatenate(
            (np.zeros(1, np.int32), np.cumsum(~self.blank, dtype=np.int32))
        )
        # Parity of the quotes before each line: a quoted field opened on line i ends on the first line j
        # after it with parity[j + 1] == parity[i] (the quotes of lines i..j balance).
        quotes = np.cumsum(self._count_per_line(34), dtype=np.int32)
        self._parity = np.concatenate((np.zeros(1, np.int8), (quotes & 1).astype(np.int8)))  # (n + 1,)
        del quotes
        self._balanced = [np.flatnonzero(self._parity == p).astype(np.int32) for p in (0, 1)]  # positions
        self.flagged = np.empty(0, dtype=np.int64)  # lines where a match may be (set by the reader)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        return self.data[self.starts[index] : self.stops[index]].decode("utf-8", "surrogateescape")

    def nonblank(self, start: int, stop: int) -> int:
        """How many of the lines ``start`` to ``stop - 1`` are not blank."""
        return int(self._nonblank_before[stop] - self._nonblank_before[start])

    def record_end(self, start: int) -> int | None:
        """One past the last line of the record that starts on line ``start``: the first line after which
        its quotes balance; ``None`` if they do not within this region."""
        positions = self._balanced[self._parity[start]]
        k = np.searchsorted(positions, start, side="right")
        return int(positions[k]) if k < len(positions) else None

    def bytes_of(self, start: int, stop: int) -> int:
        """The size of lines ``start`` to ``stop - 1`` joined by line breaks."""
        return int(self.stops[stop - 1] - self.starts[start])

    def any_long(self, start: int, stop: int) -> bool:
        """Whether one of the lines ``start`` to ``stop - 1`` is over the cap."""
        return bool(self.long[start:stop].any())

    def line_of(self, offsets: Sequence[int] | np.ndarray) -> np.ndarray:
        """The sorted, distinct indices of the lines that hold the bytes at ``offsets``."""
        return np.unique(np.searchsorted(self.stops, np.asarray(offsets, dtype=np.int64)))

    def every_line(self) -> np.ndarray:
        """Sorted indices of the lines that are not blank: every row of the region."""
        return np.flatnonzero(~self.blank)

    def _count_per_line(self, byte: int) -> np.ndarray:
        counts = np.bincount(np.searchsorted(self.stops, self._found[byte]), minlength=len(self))
        return counts.astype(np.int32)

    def candidates(self, tabs: int) -> np.ndarray:
        """Sorted indices of the lines that need a look: flagged, with non-ASCII bytes, an odd number
        of quotes, not ``tabs`` tabs, or over the cap. Blank lines never do."""
        irregular = (self._count_per_line(9) != tabs) | (self._count_per_line(34) & 1).astype(bool)
        parts = [np.flatnonzero(irregular & ~self.blank), self.flagged, np.flatnonzero(self.long)]
        if not self.data.isascii():
            parts.append(self.line_of(np.flatnonzero(np.greater_equal(self._bytes, 0x80, out=self._mask))))
        return np.unique(np.concatenate(parts))

    def with_first_cell_in(self, wanted: set[bytes]) -> np.ndarray:
        """Indices of the non-blank lines whose first field (quotes removed) is one of ``wanted`` (UTF-8)."""
        data, found = self.data, []
        rows = self.every_line()
        for k, start, stop in zip(
            rows.tolist(), self.starts[rows].tolist(), self.stops[rows].tolist(), strict=True
        ):
            tab = data.find(b"\t", start, stop)
            cell = data[start : stop if tab < 0 else tab]
            if cell[:1] == b'"':
                cell = cell[1:-1]
            if cell in wanted:
                found.append(k)
        return np.asarray(found, dtype=np.int64)
