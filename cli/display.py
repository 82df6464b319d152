"""What the command line prints: text from files made safe for a terminal (:func:`safe`, from
:mod:`nextword.runtime.terminal`, which the server's logs use too), ``--json`` output with the same
characters as JSON escapes (:func:`json_text`), commands to copy (:func:`shown_command`), and figures.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import functools
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from nextword.corpus.errors import OUT_OF_ROOM
from nextword.runtime.terminal import SafeFormatter, safe, safe_json

__all__ = [
    "ProgressStream",
    "SafeFormatter",
    "figure",
    "json_text",
    "printing_result",
    "progress_stream",
    "replaced_note",
    "safe",
    "shown_command",
    "writes_what_it_can",
]

_BYTES_ELSE_REPLACE = "nextword.bytes-else-replace"


def shown_command(words: Sequence[str]) -> str:
    """A command line shown to the user, to copy and run: quoted for cmd.exe on Windows
    (``subprocess.list2cmdline``: ``nextword export "runs\\my run"``, which PowerShell reads the same),
    for a POSIX shell elsewhere (``shlex.join``: ``'runs/my run'``; cmd.exe passes single quotes on as
    part of the word). The ``command_line`` recorded with a run stays POSIX-quoted on every platform:
    provenance splits it again with shlex."""
    return subprocess.list2cmdline(words) if os.name == "nt" else shlex.join(words)


def writes_what_it_can(stream: Any) -> None:
    """Let ``stream`` (standard output or error) write any text: a character its encoding lacks (a
    prompt's, a generated word's) as ``?`` (:data:`REPLACED` notes it), rather than failing. A byte of a
    file name that Python read as a lone surrogate (PEP 383) goes out as that byte where the stream is
    not UTF-8 (a locale that is not UTF-8 read it so), as Python itself writes it there, so that a path
    in a message (``nextword export 'runs/rün'``) can be copied and run; on a UTF-8 stream, whose output
    must stay UTF-8, bytes that make UTF-8 as they are and another as ``\\xff``, the escape the model
    file records. Bytes that would steer a terminal (a C1 control, a bidirectional override) are
    written escaped either way."""
    # one handler for each stream encoding, which :data:`REPLACED` names: the encoder's own name is
    # "charmap" for cp1252 and the other 8-bit code pages
    encoding = str(getattr(stream, "encoding", None) or "")
    handler = f"{_BYTES_ELSE_REPLACE}.{encoding}"
    try:
        codecs.lookup_error(handler)
    except LookupError:
        codecs.register_error(handler, functools.partial(_bytes_else_replace, stream_encoding=encoding))
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors=handler)


REPLACED: set[str] = set()  # the encodings that wrote a character as "?" (said once, at the end)


def replaced_note() -> str | None:
    """What to say once a command is done where some of its text went out as ``?``: which encoding
    lacked the characters and how to see them (None where nothing was replaced)."""
    if not REPLACED:
        return None
    encodings = ", ".join(sorted(REPLACED))
    how = (
        "run `set PYTHONUTF8=1` in cmd (in PowerShell: `$env:PYTHONUTF8=1`) before the command"
        if os.name == "nt"
        else "run with PYTHONIOENCODING=utf-8, or in a UTF-8 locale (LANG=C.UTF-8)"
    )
    return (
        f"some characters could not be written in this terminal's encoding ({encodings}) and were written "
        f"as ?: {how}, to see them"
    )


def _bytes_else_replace(error: UnicodeError, stream_encoding: str = "") -> tuple[str | bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    char = error.object[error.start]
    if "\udc80" <= char <= "\udcff":  # the byte it stands for
        byte = ord(char) - 0xDC00
        if _writes_unicode(error.encoding):
            # bytes that make UTF-8 (a name made under a locale that is not UTF-8) as the text they
            # are, on a UTF-8 stream: as those bytes (a handler's text must be ASCII there)
            run = error.object[error.start : error.end]
            with contextlib.suppress(ValueError):  # not all surrogate escapes, or not UTF-8
                raw = bytes(ord(c) - 0xDC00 for c in run)
                text = raw.decode("utf-8")
                # text that steers a terminal (a C1 control, a bidirectional override) stays escaped
                if codecs.lookup(error.encoding).name == "utf-8" and safe(text) == text:
                    return raw, error.end
            return f"\\x{byte:02x}", error.start + 1
        if byte < 0xA0:  # a C1 control in an 8-bit terminal's encoding (0x9b: CSI): written escaped
            return f"\\x{byte:02x}", error.start + 1
        return bytes([byte]), error.start + 1
    REPLACED.add(stream_encoding or error.encoding)
    return "?", error.start + 1


def json_text(data: Any) -> str:
    """``data`` as indented JSON (non-ASCII text kept readable), safe to print on a terminal. A number
    that is not finite (the perplexity of a diverged model) is null, as the server writes it: JSON has
    no Infinity or NaN, and parsers refuse them. Where standard output is not UTF-8 (PYTHONIOENCODING,
    a Windows console), every non-ASCII character is escaped: written as it is, one the encoding lacks
    would become "?" in the data."""
    plain = not _writes_unicode(getattr(sys.stdout, "encoding", None))
    text = json.dumps(_finite(data), indent=2, ensure_ascii=plain, allow_nan=False)
    return safe_json(text)


def _writes_unicode(encoding: str | None) -> bool:
    try:
        return encoding is None or codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        return False


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def figure(value: float, spec: str) -> str:
    """``value`` formatted with ``spec`` (e.g. ``".2f"``), or in three significant digits with an exponent
    where fixed-point would run past a dozen digits (the perplexity of a diverged model: ``1.23e+174``)."""
    if spec.endswith("f") and abs(value) >= 1e9:
        return format(value, ".3g")
    return format(value, spec)


_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # SGR: colour and bold; the cursor moves stay


# errors writing the progress display that end it, not the work: no room (a full disk or quota, a
# file-size limit), an output gone (a reader that quit, a terminal closed)
_GONE = (*OUT_OF_ROOM, errno.EPIPE, errno.EIO)


class ProgressStream:
    """The progress display's stream: ``stream`` (standard error), without colour codes when
    ``uncoloured`` (Keras's progress bar colours itself on a terminal, which ``NO_COLOR``, no-color.org,
    asks a program not to do). A display that cannot be written (standard error on a full disk, its
    reader gone) stops, and the training goes on: a failed write of progress ended a run, or one not yet
    at its first checkpoint was removed."""

    def __init__(self, stream: TextIO, uncoloured: bool = True) -> None:
        self._stream, self._uncoloured = stream, uncoloured
        self.stopped = False

    def write(self, text: str) -> int:
        if not self.stopped:
            self._guarded(self._stream.write, _COLOUR.sub("", text) if self._uncoloured else text)
        return len(text)

    def flush(self) -> None:
        if not self.stopped:
            self._guarded(self._stream.flush)

    def _guarded(self, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            self.stopped = True

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's own
        return getattr(self._stream, name)


def progress_stream() -> ProgressStream:
    """Where the command line writes progress: standard error, without colour under ``NO_COLOR`` (set
    and not empty); the progress stops, not the work, where it cannot be written."""
    return ProgressStream(sys.stderr, uncoloured=bool(os.environ.get("NO_COLOR")))


@contextlib.contextmanager
def printing_result(done: str) -> Iterator[None]:
    """Around the lines a command prints once its work is done (``done``: what it did, "model.onnx
    was written"): a failure to write them (standard output on a full disk) is said as standard output's,
    with what was done, rather than as a bare "No space left on device" that read as the work's."""
    try:
        yield
        if sys.stdout is not None:  # started with `>&-`: print() dropped it all, as before
            sys.stdout.flush()  # a file's buffer is written at exit otherwise, where nothing can say so
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        reason = f"{exc.strerror or exc}, so the result was not shown ({done})"
        full = exc.errno in OUT_OF_ROOM
        error = OSError(
            exc.errno, reason + ("; redirect it where there is room" if full else ""), "standard output"
        )
        error.advised = full  # type: ignore[attr-defined]  # then no advice on files (cli/main.py)
        raise error from None
