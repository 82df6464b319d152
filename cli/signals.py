"""SIGTERM and SIGHUP as the command line takes them: raised as :class:`Terminated` (:class:`HungUp`)
where Python next runs code, as Ctrl-C raises ``KeyboardInterrupt``; and the last line that says how a
command ended. Imports nothing but the standard library, so the entry point installs it before the
command line's modules load."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = [
    "OUT_OF_MEMORY",
    "SIGNALLED",
    "HungUp",
    "Terminated",
    "drop_stream",
    "hangup_handled",
    "how_ended",
    "say",
    "terminate",
]

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


class HungUp(Terminated):
    """SIGHUP (a terminal closed, an ssh session dropped), raised as :class:`Terminated` is."""


# SIGHUP, where the platform has it (Windows has not)
_HANGUP = getattr(signal, "SIGHUP", None)
_OUTLIVES = "nohup, tmux or screen keep a command running past that"


def terminate(signum: int, frame: object) -> None:
    """The command line's SIGTERM and SIGHUP handler: raises :class:`Terminated` (:class:`HungUp`)."""
    SIGNALLED.append(signum)
    raise HungUp if _HANGUP is not None and signum == _HANGUP else Terminated


def how_ended(stop: KeyboardInterrupt) -> tuple[str, int]:
    """What a command that ``stop`` ended says of it, and its exit status: 128 + the signal, as a shell
    reports a command the signal killed (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    if isinstance(stop, HungUp):  # said where it can still be read: a log that standard error goes to
        return f"hung up (SIGHUP: its terminal or session closed; {_OUTLIVES})", 129
    if isinstance(stop, Terminated):
        return "terminated", 143
    return "interrupted", 130


@contextlib.contextmanager
def hangup_handled() -> Iterator[None]:
    """SIGHUP ends the command while the block runs as SIGTERM does (:func:`terminate`), with its
    message and its clean-up, rather than killing it on the spot without a word (status 129). A SIGHUP
    that is ignored (``nohup``) stays ignored; off the main thread, which takes no signals, and on a
    platform without SIGHUP (Windows), nothing changes."""
    main_thread = threading.current_thread() is threading.main_thread()
    if _HANGUP is None or not main_thread or signal.getsignal(_HANGUP) is signal.SIG_IGN:
        yield
        return
    before = signal.signal(_HANGUP, terminate)
    try:
        yield
    finally:
        signal.signal(_HANGUP, signal.SIG_DFL if before is None else before)


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
