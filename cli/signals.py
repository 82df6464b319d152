"""SIGTERM as the command line takes it: raised as :class:`Terminated` where Python next runs code, as
Ctrl-C raises ``KeyboardInterrupt``; and the last line that says how a command ended. Imports nothing
but the standard library, so the entry point installs it before the command line's modules load."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

__all__ = ["OUT_OF_MEMORY", "SIGNALLED", "Terminated", "drop_stream", "say", "terminate"]

# What a command that ran out of memory says, after "failed: " (a MemoryError: while it loads its
# libraries, cli/entry.py; while it runs, cli/main.py)
OUT_OF_MEMORY = (
    "out of memory: free memory, or raise this process's limit (ulimit -v; a container's memory limit)"
)

# Whether a SIGTERM reached terminate(): `nextword serve` as process 1 ends with 143 after a drain that
# uvicorn began on it. uvicorn hands the signal back to terminate() once it has drained; 0.30.3 and
# later swallow what that raises (serve() returns, and this list says why), older ones let it through
# (`nextword serve: terminated`, 143 as well).
SIGNALLED: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python next runs code, as Ctrl-C raises KeyboardInterrupt."""


def terminate(signum: int, frame: object) -> None:
    """The command line's SIGTERM handler: raises :class:`Terminated`."""
    SIGNALLED.append(signum)
    raise Terminated


def say(line: str) -> None:
    """``line`` on standard error. Where it cannot be written (its reader gone: ``2>&1 | head -1``),
    standard error is pointed at /dev/null (:func:`drop_stream`): the exit status still says how the
    command ended, and the interpreter's final flush of the line left in its buffer does not fail
    again (which made the status 120)."""
    if sys.stderr is None:  # started with `2>&-`
        return
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        drop_stream(sys.stderr)


def drop_stream(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null, so that what is left in its buffer is flushed
    there at exit, not where writing failed."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
