"""A table's bytes as a stream: decompressed by a helper thread, cut into regions of whole lines.

Nothing is unzipped to disk and no table is held in memory: a few chunks of :data:`CHUNK` bytes are in
flight, and a line longer than the cap given to :func:`read_regions` is thrown away as it streams by.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import zipfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["AHEAD", "CHUNK", "Region", "Timing", "open_stream", "read_chunks", "read_regions"]

CHUNK = 1 << 20  # bytes decompressed per read
AHEAD = 4  # chunks decompressed ahead of the parser
# A chunk of more lines than this is cut into pieces of PIECE bytes: what a region costs grows with its
# lines (about 20 bytes each), so a flood of blank lines must not make regions of a million lines.
MAX_REGION_LINES = 1 << 16
PIECE = 1 << 16


@dataclass
class Timing:
    """Where a pass's time went: ``reading``, the helper thread's time in ``read`` (decompressing, and
    waiting for the GIL in between), ``reading_cpu`` the CPU time of it; ``waiting``, the parser's time
    waiting for that thread's next chunk. When ``reading`` is about the whole pass, decompression sets its
    pace."""

    reading: float = 0.0
    reading_cpu: float = 0.0
    waiting: float = 0.0


@dataclass(frozen=True)
class Region:
    """Whole lines of a table, without the last line break. With ``dropped_first``, the first line
    stands for a line longer than the cap whose bytes were thrown away: it is empty here."""

    data: bytes
    dropped_first: bool = False


def read_regions(
    path: Path, max_line_bytes: int, timing: Timing | None = None
) -> Generator[Region, None, None]:
    """The table as regions of whole lines, each about one chunk long (a piece of one, for a chunk of
    very many lines).

    A line that runs over chunks is gathered, up to ``max_line_bytes``: past that its bytes are dropped
    until its line break, and it comes back as an empty first line (:attr:`Region.dropped_first`).
    Memory stays at a chunk plus the cap, time at one look per byte.
    """
    tail: list[bytes] = []  # the start of a line that runs over chunks
    tail_bytes = 0
    dropping = False  # inside a line over the cap: its bytes are thrown away until it ends
    chunks = read_chunks(path, timing)
    try:
        for chunk in _pieces(chunks):
            cut = chunk.rfind(b"\n")
            if cut < 0:  # no line ends in this chunk
                if not dropping:
                    tail.append(chunk)
                    tail_bytes += len(chunk)
                    if tail_bytes > max_line_bytes:
                        tail, tail_bytes, dropping = [], 0, True
                continue
            if dropping:  # the over-long line ends here: an empty line stands for it
                yield Region(chunk[chunk.find(b"\n") : cut], dropped_first=True)
            else:
                yield Region(b"".join((*tail, memoryview(chunk)[:cut])))  # one copy of the chunk
            rest = chunk[cut + 1 :]
            tail, tail_bytes, dropping = [rest], len(rest), len(rest) > max_line_bytes
            if dropping:
                tail, tail_bytes = [], 0
        if dropping:
            yield Region(b"", dropped_first=True)
        elif tail_bytes:
            yield Region(b"".join(tail))
    finally:
        chunks.close()


def _pieces(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks``, each cut into pieces of :data:`PIECE` bytes when it holds over
    :data:`MAX_REGION_LINES` line breaks."""
    for chunk in chunks:
        if chunk.count(b"\n") <= MAX_REGION_LINES:
            yield chunk
        else:
            for start in range(0, len(chunk), PIECE):
                yield chunk[start : start + PIECE]


def read_chunks(path: Path, timing: Timing | None = None) -> Generator[bytes, None, None]:
    """The bytes of the table, :data:`CHUNK` at a time, decompressed by a helper thread at most
    :data:`AHEAD` chunks ahead of the caller (zlib releases the GIL, so decompression and parsing
    overlap). ``timing``, if given, adds up the time spent reading and the time the caller spends
    waiting for the next chunk."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()
    timing = timing or Timing()

    def produce() -> None:
        try:
            with open_stream(path) as stream:
                while not stop.is_set():
                    started, cpu = time.perf_counter(), time.thread_time()
                    chunk = stream.read(CHUNK)
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
def open_stream(path: Path) -> Iterator[IO[bytes]]:
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
    such = f" such as {expected!r}" if expected.lower().endswith(".tsv") else ""
    raise ValueError(f"{path} holds {[info.filename for info in files]}; expected one .tsv table{such}")
