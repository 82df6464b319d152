"""Schedulers: who runs the model for the requests in flight.

:class:`BatchScheduler` is continuous batching: one thread owns one step-level generator; every tick
it admits waiting requests (their prompts are fed by the generator in bounded chunks, between the
steps of the others), applies cancellations, and runs one batched step for every active sequence.
Sequences join and leave between ticks. :class:`ThreadScheduler` is the unbatched baseline: each
request generates alone on a thread of its own, as ``model.stream`` in a thread pool would.

Both hand a request's words to its :class:`Job` (an asyncio queue read by the route); a job cancelled
by its route (client gone) stops at the next tick. Neither holds state beyond the requests in flight.

A job's words reach its route at most once per ``interval`` seconds (its first words and its last at
once): under load a stream then wakes its task and writes to its socket once for several words rather
than once a word, which is most of the server's own cost per word (docs/serving.md, "Measured").
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from nextword.runtime import GenerationConfig, NextWordModel, Update

__all__ = ["BatchScheduler", "Job", "RowUpdate", "Scheduler", "ThreadScheduler", "make_scheduler"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowUpdate:
    """New output of one sequence of a job; ``index`` is the sequence's place in the request
    (prompt-major, ``n`` per prompt)."""

    index: int
    text: str  # text safe to send now; joined over the updates it is model.generate's text
    token: str | None  # the word chosen this tick (None when the sequence ended without one)
    finished: bool
    finish_reason: str | None  # "length" | "stop" | "end" | "cancelled" once finished
    logprob: float | None
    top_logprobs: dict[str, float] | None
    offset: int | None = None  # where the word starts in the sequence's text (runtime Update.offset)


class Job:
    """One request's sequences in a scheduler. Read :meth:`updates` from the event loop that made it."""

    def __init__(
        self, prompts: list[str], config: GenerationConfig, logprobs: int | None, interval: float = 0.0
    ) -> None:
        self.prompts, self.config, self.logprobs = prompts, config, logprobs
        self.interval = interval  # seconds between two hand-overs of words to the route, at least
        self.rows = len(prompts) * config.num_return_sequences
        self.cancelled = threading.Event()
        self.finished = False  # every sequence has finished and been read
        self.words = 0  # words generated so far, over all sequences
        self.created = time.monotonic()
        self.first_word: float | None = None  # seconds from creation to the first word read, once read
        # told those seconds as the first word is read (the server's metrics), not when the job ends: a
        # stream's end comes long after, and a job that ends without a word has no first word to time
        self.on_first_word: Callable[[float], None] | None = None
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[list[RowUpdate] | BaseException] = asyncio.Queue()
        self._on_cancel: Callable[[Job], None] = lambda job: None
        self._held: list[RowUpdate] = []  # updates not handed over yet (scheduler thread only)
        self._handed: float | None = None  # time of the last hand-over

    def cancel(self) -> None:
        """Stop generating for this job (idempotent); its sequences finish at the next tick."""
        if not self.cancelled.is_set():
            self.cancelled.set()
            self._on_cancel(self)

    def cancel_unless_finished(self) -> None:
        if not self.finished:
            self.cancel()

    async def updates(self) -> AsyncIterator[list[RowUpdate]]:
        """The job's updates until every sequence has finished: a list per tick, or the lists of all
        the ticks that arrived since the last read, joined."""
        left = self.rows
        while left:
            items = [await self._queue.get()]
            while not self._queue.empty():  # ticks that came while the reader was busy: one batch
                items.append(self._queue.get_nowait())
            batch: list[RowUpdate] = []
            failed: BaseException | None = None
            for item in items:
                if isinstance(item, BaseException):  # the words handed over before it are read first
                    failed = item
                    break
                batch.extend(item)
            if batch or failed is None:
                left -= sum(u.finished for u in batch)
                self.words += sum(u.token is not None for u in batch)
                if self.first_word is None and self.words:
                    self.first_word = time.monotonic() - self.created
                    if self.on_first_word is not None:
                        self.on_first_word(self.first_word)
                self.finished = not left
                yield batch
            if failed is not None:
                raise failed

    def hold(self, batch: list[RowUpdate], now: float) -> list[RowUpdate] | None:
        """Called from the scheduler's thread with one tick's updates: what to hand over now (the
        updates held so far with these), or None to hold them until ``interval`` has passed since the
        last hand-over. The first updates and those that finish a sequence go at once."""
        if self._held:
            self._held.extend(batch)
            batch = self._held
        waiting = self._handed is not None and now - self._handed < self.interval
        if waiting and not any(u.finished for u in batch):
            self._held = batch
            return None
        self._held, self._handed = [], now
        return batch

    def fail(self, error: BaseException) -> None:
        """Called from the scheduler's thread: end the job with ``error``, after the words held for its
        interval (generated before the failure, they are the client's still)."""
        if self._held:
            self.deliver(self._held)
            self._held = []
        self.deliver(error)

    def deliver(self, batch: list[RowUpdate] | BaseException) -> None:
        """Called from the scheduler's thread."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, batch)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.cancelled.set()


def deliver_all(deliveries: list[tuple[Job, list[RowUpdate]]]) -> None:
    """Hand one tick's updates to their jobs with a single wake-up of each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, list[RowUpdate]]]] = {}
    for job, batch in deliveries:
        by_loop.setdefault(job._loop, []).append((job, batch))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            for job, _ in items:
                job.cancelled.set()


def _put_all(items: list[tuple[Job, list[RowUpdate]]]) -> None:
    for job, batch in items:
        job._queue.put_nowait(batch)


class Scheduler(Protocol):
    def submit(self, job: Job) -> None: ...
    def close(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...


def _row_update(index: int, update: Update, tokens: Sequence[str], eod: int) -> RowUpdate:
    """The runtime's update for generator row ``update.row``, as sequence ``index`` of its job."""
    word = None if update.token is None or update.token == eod else tokens[update.token]
    top = dict(update.top_logprobs) if update.top_logprobs is not None else None
    logprob = update.logprob if word is not None else None
    return RowUpdate(
        index, update.text, word, update.finished, update.finish_reason, logprob, top, update.offset
    )


class BatchScheduler:
    """Continuous batching: one thread, one generator, one batched step per tick for every sequence."""

    def __init__(self, model: NextWordModel, max_batch: int) -> None:
        self._model, self._gen = model, model.generator()
        self._tokens, self._eod = model.tokenizer.table, model.tokenizer.eod_id
        self._max_batch = max_batch
        self._lock = threading.Condition()
        self._waiting: collections.deque[Job] = collections.deque()
        self._cancels: list[Job] = []
        self._rows: dict[int, tuple[Job, int]] = {}  # generator row -> (job, index in the job)
        self._closed = False
        self._failing: list[Job] = []  # jobs a failing tick touched or admitted without rows: told of it
        self.ticks = self.failed_steps = 0
        self._thread = threading.Thread(target=self._run, name="nextword-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        job._on_cancel = self._cancel
        with self._lock:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            self._waiting.append(job)
            self._lock.notify()

    def _cancel(self, job: Job) -> None:
        with self._lock:
            self._cancels.append(job)
            self._lock.notify()

    def close(self) -> None:
        """Cancel what is in flight and stop the thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout=30)

    def stats(self) -> dict[str, Any]:
        """The load as ``/health`` and ``/metrics`` show it. ``waiting`` counts sequences (each waiting
        request's rows, ``n`` per prompt), not requests: a request submitted waits at least until the
        next tick begins, even with room in the batch, and longer while its rows do not fit."""
        with self._lock:  # the batching thread takes jobs out of the deque
            waiting = sum(job.rows for job in self._waiting)
        return {
            "sequences": len(self._rows),
            "waiting": waiting,
            "ticks": self.ticks,
            "failed_steps": self.failed_steps,
        }

    def _run(self) -> None:
        while True:
            try:
                if not self._tick():
                    return
            except Exception as exc:  # a failed step: its sequences end with the error, the rest go on
                logger.exception("a batched model step failed; the sequences in it end with the error")
                self.failed_steps += 1
                self._drop(failure(exc), waiting=False)
                try:
                    self._gen = self._model.generator()  # a failed step leaves its rows' state unknown
                except Exception as again:
                    logger.exception("the batching thread cannot go on")
                    self._close(failure(again))
                    return
            except BaseException as exc:  # the thread itself is ending: nothing will be served
                logger.exception("the batching thread failed")
                self._close(failure(exc))
                return

    def _close(self, error: RuntimeError) -> None:
        """Take no more jobs, and end every one in flight or waiting with ``error``."""
        with self._lock:
            self._closed = True
        self._drop(error, waiting=True)

    def _drop(self, error: RuntimeError, waiting: bool) -> None:
        """End with ``error`` the jobs of the sequences in flight, those the failed tick touched (one may
        have finished there, its last words not yet handed over) or had admitted without rows yet, and
        with ``waiting`` the jobs not admitted. Every sequence of the generator goes: a failure in one
        job's admission ends the others' too."""
        with self._lock:
            jobs = {job for job, _ in self._rows.values()} | set(self._failing)
            if waiting:
                jobs |= set(self._waiting)
                self._waiting.clear()
        self._rows.clear()
        self._failing = []
        for job in jobs:
            job.fail(error)

    def _tick(self) -> bool:
        """Admit, cancel, step once; False when closed and nothing is left in flight."""
        with self._lock:
            while not (self._closed or self._rows or self._waiting or self._cancels):
                self._lock.wait()
            closed, cancels, self._cancels = self._closed, self._cancels, []
            admitted, busy = [], len(self._rows)
            while self._waiting and (closed or not busy or busy + self._waiting[0].rows <= self._max_batch):
                admitted.append(self._waiting.popleft())
                busy += admitted[-1].rows
        stopping = set(cancels)
        for row, (job, _) in self._rows.items():
            if closed or job in stopping:
                self._gen.cancel(row)
        for i, job in enumerate(admitted):
            if closed or job.cancelled.is_set():  # never started: nothing to compute
                job.deliver([RowUpdate(k, "", None, True, "cancelled", None, None) for k in range(job.rows)])
                continue
            try:
                rows = self._gen.add(job.prompts, job.config, logprobs=job.logprobs)
            except ValueError as exc:  # refused (a bad request): that job alone
                job.deliver(exc)
                continue
            except Exception:
                with self._lock:  # the jobs after it start at the next tick
                    self._waiting.extendleft(reversed(admitted[i + 1 :]))
                self._failing.append(job)
                raise
            self._rows.update({row: (job, k) for k, row in enumerate(rows)})
        if not self._rows:
            return not closed
        updates = self._gen.step()  # (rows, 1) in, one token per active row out
        self.ticks += 1
        batches: dict[Job, list[RowUpdate]] = {}
        try:
            for update in updates:
                job, index = self._rows[update.row]
                batches.setdefault(job, []).append(_row_update(index, update, self._tokens, self._eod))
                if update.finished:
                    self._gen.release(update.row)
                    del self._rows[update.row]
            now = time.monotonic()
            held = ((job, job.hold(batch, now)) for job, batch in batches.items())
            ready = [(job, out) for job, out in held if out is not None]
        except Exception:
            self._failing.extend(batches)  # this tick's words were not handed over: they hear of it
            raise
        if ready:
            deliver_all(ready)
        return True


class ThreadScheduler:
    """The unbatched baseline: each job steps a generator of its own on a thread of its own."""

    def __init__(self, model: NextWordModel, max_threads: int) -> None:
        self._model = model
        self._pool = ThreadPoolExecutor(max_threads, thread_name_prefix="nextword-request")
        self._running = 0
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        self._pool.submit(self._generate, job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        return {"sequences": self._running}

    def _generate(self, job: Job) -> None:
        tokens, eod = self._model.tokenizer.table, self._model.tokenizer.eod_id
        try:
            gen = self._model.generator()
            rows = gen.add(job.prompts, job.config, logprobs=job.logprobs)
        except ValueError as exc:  # refused (a bad request)
            job.deliver(exc)
            return
        except Exception as exc:  # in the pool, an exception nobody reads: the job would wait for good
            logger.exception("generation failed")
            job.deliver(failure(exc))
            return
        index = {row: k for k, row in enumerate(rows)}
        with self._lock:
            self._running += len(rows)
        try:
            cancelled = False
            while not gen.done:
                if job.cancelled.is_set() and not cancelled:
                    for row in rows:
                        gen.cancel(row)
                    cancelled = True
                updates = gen.step()
                batch = [_row_update(index[u.row], u, tokens, eod) for u in updates]
                ready = job.hold(batch, time.monotonic()) if batch else None
                if ready is not None:
                    job.deliver(ready)
        except Exception as exc:
            logger.exception("generation failed")
            job.fail(failure(exc))
        finally:
            with self._lock:
                self._running -= len(rows)


def failure(exc: BaseException) -> RuntimeError:
    """What the clients of a failed generation are told: its kind, not its message (which may hold the
    model file's path on this machine); the scheduler logs the whole error."""
    return RuntimeError(f"generation failed ({type(exc).__name__}); see the server's log")


def make_scheduler(model: NextWordModel, batching: bool, max_batch: int, max_streams: int) -> Scheduler:
    """The scheduler a server runs: continuous batching, or one thread per request."""
    if batching:
        return BatchScheduler(model, max_batch)
    return ThreadScheduler(model, max_streams)
