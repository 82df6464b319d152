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
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import NoReturn

__all__ = ["RETRY_SECONDS", "end_worker", "retry_later"]

#: how long a worker whose model file does not load waits for the file to change before it ends (and
#: uvicorn starts it again)
RETRY_SECONDS = 5.0
_POLL_SECONDS = 0.2  # how often the wait looks at the file


def _is_worker(supervisor: int | None) -> bool:
    """Whether this process is a worker that ``supervisor`` (serve()'s process) started; None, or this
    process itself, is a program or a test that made the app in its own process."""
    return supervisor is not None and supervisor != os.getpid()


def end_worker(code: int, supervisor: int | None) -> NoReturn:
    """End this worker now with exit status ``code``, its log and standard streams flushed, without the
    interpreter's teardown (see the module's docstring). Outside a worker (``supervisor`` None or this
    process) raise ``SystemExit(code)``: a caller's process is not ended under it."""
    if not _is_worker(supervisor):
        raise SystemExit(code)
    logging.shutdown()  # every handler flushed and closed: the line that says why is not lost
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a stream closed or gone: nothing more to say there
            stream.flush()
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
        end_worker(128 + signum, supervisor)

    if threading.current_thread() is threading.main_thread():  # where uvicorn loads the app
        for taken in (signal.SIGTERM, signal.SIGINT):
            signal.signal(taken, stop)  # uvicorn's own handlers only note a signal, for after start-up
    before = _signature(path)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _signature(path) == before:
        time.sleep(_POLL_SECONDS)
    end_worker(1, supervisor)
