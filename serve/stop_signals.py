"""What stopped uvicorn: the signals that reached the process while ``uvicorn.run`` ran, and its signal
handlers put back afterwards. uvicorn takes SIGINT and SIGTERM itself, and hides what it took: a Ctrl-C
before the app's lifespan chained its own handler (serve/app.py) was swallowed, and the supervisor of
``--workers`` returns alike after a signal and after a worker that failed to start."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["SignalWatch", "watch_signals"]

# The signals that stop uvicorn's supervisor: Ctrl-C, SIGTERM and, on Windows, Ctrl-Break.
_STOPS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)


_HANGUP = getattr(signal, "SIGHUP", None)  # not on Windows


class SignalWatch:
    """The stop signals (SIGINT, SIGTERM; Windows' SIGBREAK) seen while the block ran, in order of
    arrival, where they could be seen: ``watched`` is False off the main thread, where no signal is
    taken."""

    def __init__(self, on_hangup: Callable[[], None] | None = None) -> None:
        self.seen: list[int] = []
        self.watched = False
        self.on_hangup = on_hangup  # called (on the watching thread) as a SIGHUP arrives

    def saw(self, signum: int) -> bool:
        """Whether ``signum`` reached the process while the block ran."""
        return signum in self.seen


@contextlib.contextmanager
def watch_signals(*, supervisor: bool, on_hangup: Callable[[], None] | None = None) -> Iterator[SignalWatch]:
    """Run the block (``uvicorn.run``) watching for SIGINT and SIGTERM, on the main thread only.

    One process (``supervisor=False``): a SIGINT handler that notes the signal, then does what the one it
    replaces did, is in place until uvicorn installs its own; uvicorn puts it back when it stops and
    hands it the Ctrl-C it took, so one that came before the app's handler is noted too. The
    supervisor of ``--workers`` (``supervisor=True``) runs no event loop, so a wakeup file descriptor
    sees every signal whatever handler uvicorn installs; the handlers it took (any signal's that
    changed) are put back afterwards, and a SIGTERM before uvicorn takes it ends the process by
    ``SystemExit(143)`` (the block's clean-up runs) where it would have killed it outright. The
    supervisor calls ``on_hangup`` as a SIGHUP arrives, on the thread that reads the descriptor: before
    uvicorn, which looks at the signals it took every half second, starts its workers again."""
    watch = SignalWatch(on_hangup)
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    watch.watched = True
    if not supervisor:
        with _noting_sigint(watch):
            yield watch
        return
    handlers = {sig: signal.getsignal(sig) for sig in signal.valid_signals()}
    if handlers[signal.SIGTERM] is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_by_signal)
    read, write = socket.socketpair()  # a socket: what Windows takes as a wakeup descriptor
    write.setblocking(False)
    reader = threading.Thread(target=_note_stops, args=(read, watch), name="nextword-signals", daemon=True)
    reader.start()
    earlier = signal.set_wakeup_fd(write.fileno())
    try:
        yield watch
    finally:
        signal.set_wakeup_fd(earlier)
        write.close()  # the reader reads to the end, then stops
        reader.join(5)
        read.close()
        for sig, handler in handlers.items():  # uvicorn's supervisor never puts back the ones it took
            if handler is not None and signal.getsignal(sig) is not handler:
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(sig, handler)


def _note_stops(read: socket.socket, watch: SignalWatch) -> None:
    """Read the wakeup descriptor as signals arrive (one byte each, whatever the signal: a terminal's
    resizes too, which would fill it), noting the stop signals, until its other end is closed."""
    with contextlib.suppress(OSError):
        while data := read.recv(4096):
            watch.seen += [n for n in data if n in _STOPS]
            if _HANGUP is not None and _HANGUP in data and watch.on_hangup is not None:
                try:
                    watch.on_hangup()
                except Exception:  # the reader must go on: the stops are noted here
                    logging.getLogger(__name__).exception("SIGHUP: could not note the model file")


@contextlib.contextmanager
def _noting_sigint(watch: SignalWatch) -> Iterator[None]:
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored (a background job): nothing to note
        yield
        return

    def noting(signum: int, frame: Any) -> None:
        watch.seen.append(signum)
        previous(signum, frame)

    signal.signal(signal.SIGINT, noting)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is noting:
            signal.signal(signal.SIGINT, previous)


def _exit_by_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # 143 for SIGTERM, as a shell reports a process it killed
