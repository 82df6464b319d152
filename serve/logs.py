"""The server's log lines: one format, with a time stamp, for uvicorn's lines (its messages and its
access log) and nextword's own, in the one server process and in each of ``--workers``.

uvicorn applies the logging config it is given in every process it starts, before the app is built,
so the same :func:`uvicorn_log_config` reaches its workers; nextword's own lines go through the root
logger, whose handler ``nextword serve`` (and each worker) formats with :class:`ServerFormatter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import logging
import os
import re
import sys
import threading
from typing import Any

from nextword.corpus.errors import OUT_OF_ROOM
from nextword.runtime.terminal import SafeFormatter, safe

from .access import ACCESS

__all__ = ["FORMAT", "OutputHandler", "ServerFormatter", "use_server_format", "uvicorn_log_config"]

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class ServerFormatter(SafeFormatter):
    """``2026-01-31T14:05:09.123+00:00 INFO [4242] nextword.serve.app: serving …``: the local time with
    its UTC offset (unambiguous in a log read elsewhere), the level, the id of the process that wrote
    the line (the lines of ``--workers`` interleave; one process too, so the format does not change
    with the flag), the logger and the message made safe to print on a terminal (a message may quote a
    file, an access line a request's path). uvicorn's ``uvicorn.error`` logger, which writes its
    start-up and shutdown messages, is named ``uvicorn``."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "uvicorn.error":  # a copy: the record may go to other handlers too
            record = logging.makeLogRecord({**record.__dict__, "name": "uvicorn"})
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One line: a message may quote what a client sent (an exception's text), and a line break in it
        # would start a line that reads as a record of its own. uvicorn ends some messages with one.
        record.message = safe(record.message.rstrip("\n"))
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _marked(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _marked(super().formatStack(stack_info))


def _marked(text: str) -> str:
    """A traceback's lines, each after ``  | ``: none can read as a record, whatever its exception's
    message holds."""
    return "\n".join(f"  | {line}" for line in text.splitlines())


# Set by the app when a second Ctrl-C makes uvicorn quit at once (the app has said what it cuts).
FORCED_QUIT = threading.Event()


class ForcedQuit(logging.Filter):
    """Once :data:`FORCED_QUIT` is set, drops uvicorn's tracebacks of the tasks the quit cancels: one
    per request in flight and one for the app's lifespan, 80 lines each. A task cancelled before then
    is logged as any failure is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not FORCED_QUIT.is_set():
            return True
        cancelled = record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError)
        # Starlette hands uvicorn the lifespan's traceback as the text of its "shutdown failed" message
        return not (cancelled or "CancelledError" in record.getMessage())


# errors writing the access log that stop it: its reader gone, or no room (OUT_OF_ROOM)
_GONE = (errno.EPIPE, errno.EIO, errno.ECONNRESET)


class OutputHandler(logging.StreamHandler):
    """The access log's handler, on standard output: once that output's reader has gone (``nextword
    serve | tee log`` with tee killed, a log shipper that died) or its file's disk is full, it says so
    once on standard error and drops the lines that follow, rather than a 50-line "--- Logging error
    ---" traceback for each request; standard output then points at the null device, so the exit's
    flush cannot fail either."""

    gone = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.gone:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        failure = sys.exc_info()[1]
        if not (isinstance(failure, OSError) and failure.errno in (*_GONE, *OUT_OF_ROOM)):
            super().handleError(record)
            return
        self.gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a stream without a descriptor
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        why = "its reader went away" if failure.errno in _GONE else "its file's disk is full"
        logging.getLogger(__name__).warning(
            "the access log's output cannot be written (%s: %s); access lines are dropped from now on "
            "(the server goes on; restart it to log them again)",
            failure.strerror or failure,
            why,
        )


_WORKER_DIED = re.compile(r"Child process \[(\d+)\] died")


class WorkerDied(logging.Filter):
    """uvicorn's line for a ``--workers`` worker that died and was started again (``Child process [N]
    died``, at INFO, with no cause) becomes a warning that names the usual cause; the worker's gauges
    leave /metrics' sums at the next scrape (serve/metrics.py's ``forget_dead_workers``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        match = _WORKER_DIED.fullmatch(record.getMessage())
        if match is not None:
            record.msg = (
                "worker process %s died and was started again, its requests in flight cut off; a worker "
                "that dies again and again is most often out of memory (each holds its own copy of the "
                "model: the kernel's log, dmesg, says what killed it), or one that answered no ping for "
                "60 s was stopped as hung, or one that could not load the model file (a line above says so)"
            )
            record.args = (match.group(1),)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's ``log_config``: its default (messages to standard error, the access log to standard
    output) written with :class:`ServerFormatter`, at ``level``, and the app's own access log
    (:mod:`.access`) to standard output, on at ``level`` info or below. uvicorn is given no
    ``log_level`` of its own (``serve`` passes None): its loggers stay at info and the messages handler
    holds ``level``, so that a record :class:`WorkerDied` raises to a warning is written at ``warning``
    too (uvicorn's own level would have dropped its info line before any filter saw it). A new dict
    each call: uvicorn may change the one it is given."""
    access_level = "INFO" if level.lower() in ("trace", "debug", "info") else level.upper()
    lowest = "DEBUG" if level.lower() in ("trace", "debug") else "INFO"
    handler = {"class": "logging.StreamHandler", "formatter": "server", "filters": ["forced_quit"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,  # nextword's loggers, created at import, keep working
        "formatters": {"server": {"()": ServerFormatter}},
        "filters": {"forced_quit": {"()": ForcedQuit}, "worker_died": {"()": WorkerDied}},
        "handlers": {
            "default": {**handler, "stream": "ext://sys.stderr", "level": level.upper()},
            "access": {
                "()": OutputHandler,
                "formatter": "server",
                "filters": ["forced_quit"],
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": lowest, "propagate": False},
            "uvicorn.error": {"level": lowest, "filters": ["worker_died"]},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            ACCESS.name: {"handlers": ["access"], "level": access_level, "propagate": False},
        },
    }


def use_server_format(level: int = logging.INFO) -> None:
    """Write the root logger's lines (nextword's own) in the server's format: each handler that the
    command line set up (a :class:`SafeFormatter`'s) gets :class:`ServerFormatter`; a process with no
    handler yet (a worker) gets one on standard error, at ``level``. Others' handlers are left alone."""
    root = logging.getLogger()
    if not root.handlers:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(ServerFormatter())
        logging.basicConfig(level=level, handlers=[handler])
        return
    for handler in root.handlers:
        if type(handler.formatter) is SafeFormatter:
            handler.setFormatter(ServerFormatter())
