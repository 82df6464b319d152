"""What one server process holds: the model, the scheduler, the caps, and the requests in flight."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from nextword.corpus.files import file_identity
from nextword.runtime import NextWordModel
from nextword.runtime.terminal import escape_surrogates

from .beams import BeamJob, beam_threads
from .config import TAKEN_IN, ServeConfig
from .errors import APIError, model_not_found
from .limits import Slots
from .logs import FORCED_QUIT
from .scheduler import Job, Scheduler

# uvicorn's backstop (its timeout_graceful_shutdown, set by serve/server.py): seconds past shutdown_timeout
# (rounded up) after which it cancels the answers still being sent, to clients that read slowly
BACKSTOP_SECONDS = 5

__all__ = ["ModelFile", "ServerState", "model_summary"]

logger = logging.getLogger(__name__)


SHUTTING_DOWN = "the server is shutting down; retry on another replica"


@dataclass
class ModelFile:
    """The file the served model was loaded from, as the app found it at start: what ``GET /model.onnx``
    offers while the file is still that one."""

    path: Path
    identity: tuple[int, int, int]  # inode, size and modification time: unchanged, the same file
    digest: str  # SHA-256 of its bytes: a file touched or copied over with the same bytes is the same
    # the file last found to hold other bytes: refused again without reading it again
    other: tuple[int, int, int] | None = None

    @classmethod
    def of(cls, path: Path) -> ModelFile | None:
        """The file at ``path`` as it is now; None where there is none."""
        try:
            stat = path.stat()
            return cls(path, file_identity(stat), _digest(path))
        except OSError:
            return None

    def unchanged(self, stat: os.stat_result) -> bool:
        """Whether the file, now ``stat``, still holds the bytes the server loaded (read again only
        where its inode, size or time differ; the same bytes then count as the file from there on, other
        bytes are not read again while the file stays as it is). May read the whole file: call it off the
        event loop."""
        now = file_identity(stat)
        if now == self.identity:
            return True
        if stat.st_size != self.identity[1] or now == self.other:
            return False
        try:
            same = _digest(self.path) == self.digest
        except OSError:
            return False
        if same:
            self.identity = now
        else:
            self.other = now
        return same


def _digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, read a megabyte at a time (a model file may be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ServerState:
    """Shared by the routes of one app. Requests leave nothing behind once they are answered."""

    config: ServeConfig
    model: NextWordModel
    model_id: str  # the id reported: --served-model-name's first, else the file's name without .onnx
    scheduler: Scheduler | None = None
    slots: Slots = field(init=False)
    # the threads beam searches run on, apart from those of suggestions and scores (beams.py)
    beam_threads: anyio.CapacityLimiter = field(init=False)
    jobs: set[Job | BeamJob] = field(default_factory=set)
    draining: bool = False
    # whether a connection accepted now is taken in: False once the drain closed the listener (those
    # accepted before are answered, though they send their request after the drain began)
    accepting: bool = True
    stopped_by: int | None = None  # the signal that began the shutdown
    backstop: bool = False  # run by serve(): uvicorn cuts what still sends BACKSTOP_SECONDS past the drain
    supervisor: int | None = None  # a --workers worker's: serve()'s process, which started it
    started: float = field(default_factory=time.time)  # /v1/models' "created"
    # /health's uptime: a monotonic clock, which a time-of-day correction (NTP, a VM resumed) leaves alone
    started_monotonic: float = field(default_factory=time.monotonic)
    served: int = 0
    words: int = 0  # words generated, over every sequence of every completion answered
    metrics: Any = None  # the app's Metrics (nextword.serve.metrics), where it keeps them
    model_file: ModelFile | None = field(init=False)  # None: the model was not loaded from a file
    # /v1/models' "nextword": the model as loaded, taken once (a file replaced since on disk, by a new
    # export, is not the model served: its size was read at each request, beside the loaded model's figures)
    summary: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.slots = Slots(self.config.max_streams)
        self.beam_threads = anyio.CapacityLimiter(beam_threads(self.config.workers))
        self.model_file = ModelFile.of(Path(self.model.source))
        self.summary = model_summary(self.model)

    @property
    def names(self) -> tuple[str, ...]:
        """The names a request's ``model`` may give: the reported id first, then the other names
        ``--served-model-name`` gave."""
        return tuple(dict.fromkeys((self.model_id, *self.config.served_model_name)))

    def serves(self, name: str) -> bool:
        """Whether a request's ``model`` names the served model (one of :attr:`names`)."""
        return name in self.names

    def check_model(self, name: str | None) -> None:
        """404 ``model_not_found`` for a request whose ``model`` names another model than this one;
        None or "" is left out (as in vLLM)."""
        if name and not self.serves(name):
            raise model_not_found(name, self.names)

    def refuse_if_draining(self, scope: Mapping[str, Any], message: str = SHUTTING_DOWN) -> None:
        """503 ``message`` while shutting down, unless the request came on a connection accepted before
        the drain closed the listener (:data:`~.config.TAKEN_IN`): that one the server took in, and
        answers. With --workers, a worker that uvicorn retires (a SIGHUP's restart) answered such
        requests 503 where its successors would have served them."""
        if self.draining and not scope.get(TAKEN_IN):
            raise APIError(503, message, kind="server_error")

    def stop_listening(self, listeners: Iterable[Any]) -> None:
        """On the event loop's thread, at a drain: close ``listeners`` (uvicorn's servers) now rather than
        at uvicorn's next tick, and take no connection in from now on (:meth:`refuse_if_draining`)."""
        for listener in listeners:
            listener.close()
        self.accepting = False

    def start_job(self, job: Job | BeamJob, scope: Mapping[str, Any]) -> None:
        """Take a slot and hand ``job`` to the scheduler (a beam search runs on a thread of its route's);
        503 while shutting down (for a request ``scope`` the server did not take in before), 429 when
        full."""
        self.refuse_if_draining(scope)
        if self.scheduler is None:
            raise APIError(503, SHUTTING_DOWN, kind="server_error")
        self.slots.acquire()
        if isinstance(job, Job):
            if self.metrics is not None:  # timed as its first word is read, once (scheduler.Job.updates)
                job.on_first_word = self.metrics.first_word.observe
            try:
                self.scheduler.submit(job)
            except RuntimeError as exc:
                self.slots.release()
                raise APIError(503, f"the server cannot generate now: {exc}", kind="server_error") from None
        self.jobs.add(job)

    def end_job(self, job: Job | BeamJob) -> None:
        """Release ``job``'s slot; cancels it if it is still generating (its client went away)."""
        if job in self.jobs:
            self.jobs.discard(job)
            job.cancel_unless_finished()
            self.slots.release()
            self.served += 1
            self.words += job.words

    def begin_shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        """Refuse new generations; cancel those still running after ``shutdown_timeout`` seconds.

        Called from a signal handler: everything runs on the event loop's thread.
        """
        if self.draining:
            return
        self.draining = True
        logger.info(
            "shutting down: %d generation(s) in flight get %g s to finish",
            len(self.jobs),
            self.config.shutdown_timeout,
        )
        loop.call_soon_threadsafe(loop.call_later, self.config.shutdown_timeout, self.cancel_all)
        if self.backstop:  # just before uvicorn's: its cancellations are no failures (no traceback each)
            backstop = math.ceil(self.config.shutdown_timeout) + BACKSTOP_SECONDS - 0.5
            loop.call_soon_threadsafe(loop.call_later, backstop, _backstop)

    def cancel_all(self) -> None:
        if self.jobs:
            logger.warning("cancelling %d generation(s) still in flight", len(self.jobs))
        for job in list(self.jobs):
            job.cancel()


def _backstop() -> None:
    """What the server says as uvicorn's backstop cuts what it still sends; the tasks it cancels then are
    logged without their tracebacks (:class:`~.logs.ForcedQuit`)."""
    FORCED_QUIT.set()
    logger.warning(
        "answers not yet ended (sent to a client that reads slowly, or still being made) are cut now"
    )


def model_summary(model: NextWordModel) -> dict[str, Any]:
    """What ``nextword info --json`` shows of the served model, with the file's name rather than its
    path on the server."""
    return {**model.summary(), "file": escape_surrogates(Path(model.source).name)}
