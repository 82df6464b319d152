"""How a worker of ``nextword serve --workers N`` that cannot start ends.

uvicorn's supervisor asks each worker every half second whether it is alive (a ping that a thread of
the worker answers) and waits for the answer up to ``timeout_worker_healthcheck``: 60 s here
(serve/server.py). A worker that failed as it started ended through the interpreter's teardown, during
which that thread no longer answers: a ping that came then was never answered, and the supervisor,
blocked on it, took no signal for a minute (a Ctrl-C, the SIGTERM of a stop, the SIGHUP that the
worker's own error line asks for) and started no worker. A worker that cannot start now ends with
``os._exit``, its log flushed, so that no teardown leaves a ping unanswered; one whose model file does
not load first waits (answering pings) until the file changes or :data:`RETRY_SECONDS` pass, so that
uvicorn's restarts of it come every few seconds rather than in a loop that fills the log.

A ping can also be on its way as the worker ends: the supervisor sees the worker alive, pings it, and the
worker ends before its thread answers. The supervisor's own copy of the worker's end of the pipe keeps
the pipe open, so that ping too waited its minute (seen once in CI, in the deploy tests). A worker
that ends now does so just after its thread answers a ping (the next comes half a second later at the
soonest), within :data:`ANSWER_SECONDS`; one ended by the supervisor's SIGTERM, which pings it no more,
ends at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, NoReturn

__all__ = ["ANSWER_SECONDS", "RETRY_SECONDS", "end_worker", "retry_later"]

#: how long a worker whose model file does not load waits for the file to change before it ends (and
#: uvicorn starts it again)
RETRY_SECONDS = 5.0
_POLL_SECONDS = 0.2  # how often the wait looks at the file
#: how long a worker that ends waits for a ping to answer first (the supervisor pings every half second)
ANSWER_SECONDS = 2.0


def _is_worker(supervisor: int | None) -> bool:
    """Whether this process is a worker that ``supervisor`` (serve()'s process) started; None, or this
    process itself, is a program or a test that made the app in its own process."""
    return supervisor is not None and supervisor != os.getpid()


class _Answering:
    """The worker's end of uvicorn's ping pipe, which notes each answer sent through it."""

    def __init__(self, conn: Any, answered: threading.Event) -> None:
        self._conn, self._answered = conn, answered

    def send(self, answer: object) -> None:
        self._conn.send(answer)
        self._answered.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _pinged() -> Any:
    """uvicorn's record of this worker (``Process``, uvicorn 0.30 on) whose thread answers the
    supervisor's pings, or None where no such thread runs (uvicorn 0.29, a stand-in worker)."""
    for thread in threading.enumerate():
        target: Any = getattr(thread, "_target", None)
        process = getattr(target, "__self__", None)
        if getattr(target, "__name__", None) == "always_pong" and hasattr(process, "child_conn"):
            return process
    return None


def _after_an_answer(seconds: float) -> None:
    """Return just after this worker's thread answers the supervisor's next ping, or after ``seconds``
    where none comes (or no such thread runs: at once)."""
    process = _pinged()
    if process is None:
        return
    answered = threading.Event()
    # the thread looks the pipe up again to answer: one it holds already is answered through this too
    process.child_conn = _Answering(process.child_conn, answered)
    answered.wait(seconds)


def end_worker(code: int, supervisor: int | None, *, pinged: bool = True) -> NoReturn:
    """End this worker with exit status ``code``, its log and standard streams flushed, without the
    interpreter's teardown, just after it answers a ping where its supervisor still ``pinged`` it (see
    the module's docstring). Outside a worker (``supervisor`` None or this process) raise
    ``SystemExit(code)``: a caller's process is not ended under it."""
    if not _is_worker(supervisor):
        raise SystemExit(code)
    logging.shutdown()  # every handler flushed and closed: the line that says why is not lost
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a stream closed or gone: nothing more to say there
            stream.flush()
    if pinged:
        _after_an_answer(ANSWER_SECONDS)
    os._exit(code)


def _signature(path: str) -> tuple[int, int, int] | None:
    """What tells the file at ``path`` changed: its inode, size and modification time; None if absent."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


def retry_later(path: str, supervisor: int | None, seconds: float = RETRY_SECONDS) -> NoReturn:
    """In a worker whose model file at ``path`` does not load: wait until the file changes (replaced,
    written, removed) or ``seconds`` pass, then end with status 1, which uvicorn answers by starting the
    worker again. A SIGTERM or Ctrl-C meanwhile (a stop, a reload, the supervisor's end) ends it at once.
    Outside a worker, raise ``SystemExit(1)`` at once."""
    if not _is_worker(supervisor):
        raise SystemExit(1)

    def stop(signum: int, _frame: object) -> None:
        # the supervisor's SIGTERM closed its end of the pipe: no ping comes; after a Ctrl-C one may
        end_worker(128 + signum, supervisor, pinged=signum != signal.SIGTERM)

    if threading.current_thread() is threading.main_thread():  # where uvicorn loads the app
        for taken in (signal.SIGTERM, signal.SIGINT):
            signal.signal(taken, stop)  # uvicorn's own handlers only note a signal, for after start-up
    before = _signature(path)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _signature(path) == before:
        time.sleep(_POLL_SECONDS)
    end_worker(1, supervisor)
