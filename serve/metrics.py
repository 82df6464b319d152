"""Prometheus metrics at ``GET /metrics``: requests by route and status, their durations, the time to a
completion's first word, how streams ended, words generated, and the server's load as ``/health``
reports it.

Each app has a registry of its own (two apps in one process, as tests make them, count apart). With
``--workers N`` the workers share their metrics through prometheus_client's multiprocess mode: ``nextword
serve`` gives them a fresh ``$PROMETHEUS_MULTIPROC_DIR``, each worker's counters and histograms live in
files there, each worker writes its load there too (at every scrape it answers and once a second), and
a scrape, whichever worker the kernel hands it to, adds up every worker's.

A scrape's text is made at most once a second in each process and answered again until then
(:data:`SCRAPE_MAX_AGE`): a flood of scrapes, each made on the event loop (and with ``--workers``
reading every worker's files), held up every other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from starlette.routing import Match

from nextword.runtime import __version__

from .access import (
    ACCESS,
    ANSWERED,
    CLIENT_LEFT,
    REQUEST_ID,
    STREAM_END,
    access_line,
    new_request_id,
    request_line,
)
from .keys import route_path

if TYPE_CHECKING:
    from .state import ServerState

__all__ = ["CONTENT_TYPE", "MULTIPROCESS_ENV", "SCRAPE_MAX_AGE", "STREAM_ENDS", "Metrics", "RequestMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# prometheus_client's: the directory where the processes of a multiprocess server keep their metrics,
# read when prometheus_client is imported (a worker process inherits it from nextword serve)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# seconds: a suggestion takes milliseconds, a long stream minutes
_DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# the label values a request's method may take: any other (a client may send any token) counts as "other",
# so that no client can grow the registry without bound
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FIRST_WORD = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# How a stream ends (serve/completions.py): ran to its end; an error event after the 200 (a failed model
# step, a refusal by the runtime); the client went away (or was dropped for reading nothing for
# --send-timeout); the shutdown's drain cancelled it past --shutdown-timeout (its choices end "cancelled");
# a forced quit (Ctrl-C twice, uvicorn's backstop) cut it
STREAM_ENDS = ("done", "error", "client_left", "cancelled", "server_quit")
# seconds a scrape's text is answered again before it is made anew: the load it shows is about as old
# (a worker writes its own once a second), and Prometheus scrapes every few seconds at most
SCRAPE_MAX_AGE = 1.0


class Metrics:
    """The metrics of one app: counters and histograms updated as requests are answered, and the
    server's state read at each scrape.

    ``shared``: the app is one of several worker processes whose metrics prometheus_client keeps in
    ``$PROMETHEUS_MULTIPROC_DIR``; a scrape then answers for all of them (see the module docstring)."""

    def __init__(self, state: ServerState, *, shared: bool = False) -> None:
        self.shared = shared
        self._state = state
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nextword_http_requests",
            "HTTP requests answered, by route (the path template, /static for the page's files, "
            "unmatched for a path the server does not have or a request refused unread), method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "nextword_http_request_duration_seconds",
            "from a request's arrival to the end of its answer (a stream's last event), by route and "
            "status class (2xx, 4xx...: the answers' quantiles without the fast refusals, 429s among them)",
            ["route", "status_class"],
            buckets=_DURATIONS,
            registry=self.registry,
        )
        self.first_word = Histogram(
            "nextword_time_to_first_word_seconds",
            "from a sampled completion's start to its first word reaching the route (beam searches, "
            "answered whole, are not counted)",
            buckets=_FIRST_WORD,
            registry=self.registry,
        )
        self.stream_ends = Counter(
            "nextword_stream_ends",
            "completion streams ended, by how: done, error (an error event after the 200 sent), "
            "client_left, cancelled (by the shutdown's drain), server_quit (cut by a forced quit)",
            ["reason"],
            registry=self.registry,
        )
        for reason in STREAM_ENDS:  # each at 0 from the start: a rate of errors needs no first error
            self.stream_ends.labels(reason)
        self.max_age = SCRAPE_MAX_AGE  # seconds a scrape's text is answered again (0: made each time)
        self.clock = time.monotonic  # what that age is measured with
        self._scraped: tuple[float, bytes] | None = None  # when the last text was made, and the text
        self._scraping = threading.Lock()  # scrape() may be called from several threads
        self._load = _SharedLoad(state, self.registry) if shared else None
        if self._load is None:
            self.registry.register(_Load(state))

    def scrape(self) -> bytes:
        """The text exposition format of every metric (every worker's, when shared), as made at most
        :attr:`max_age` seconds before in this process."""
        with self._scraping:  # a scrape that comes while another makes the text waits for that text
            now = self.clock()
            if self._scraped is None or now - self._scraped[0] >= self.max_age:
                self._scraped = (now, self._render())
            return self._scraped[1]

    def _render(self) -> bytes:
        if self._load is None:
            return generate_latest(self.registry)
        self._load.publish()  # this worker's load as it is now; the others' from their last second
        forget_dead_workers()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_Info(self._state))
        return generate_latest(registry)

    def stream_ended(self, reason: str) -> None:
        """Count a completion stream that ended, ``reason`` being one of :data:`STREAM_ENDS`."""
        assert reason in STREAM_ENDS, reason  # a label of a few values, never one a client chose
        self.stream_ends.labels(reason).inc()

    def refused(self, status: int) -> None:
        """Count a request the HTTP protocol refused before it reached the app (serve/http_guard.py: bytes
        that are not HTTP, a head too slow or too large), whose path and method were never read."""
        self.requests.labels("unmatched", "other", str(status)).inc()

    def publish(self) -> None:
        """Write this worker's load where the other workers' scrapes read it (shared only)."""
        if self._load is not None:
            self._load.publish()

    def retire(self) -> None:
        """At a shared worker's exit: its last counts stay, its gauges leave the sums."""
        if self._load is not None:
            self._load.publish()
            multiprocess.mark_process_dead(os.getpid())


def forget_dead_workers(folder: str | None = None) -> None:
    """Take the gauges of workers that are gone out of the shared sums: a worker killed (by the
    out-of-memory killer, say) never ran its own exit (:meth:`Metrics.retire`), and its last load, the
    streams it held among them, was counted in every scrape after it. ``folder``: the shared metrics
    folder, by default ``$PROMETHEUS_MULTIPROC_DIR``."""
    folder = folder or os.environ.get(MULTIPROCESS_ENV)
    if not folder:
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    pids = {int(m.group(1)) for name in names if (m := _LIVE_GAUGE.fullmatch(name))}
    for pid in pids - {os.getpid()}:
        if not _alive(pid):
            with contextlib.suppress(FileNotFoundError):  # another worker's scrape removed them first
                multiprocess.mark_process_dead(pid, folder)


_LIVE_GAUGE = re.compile(r"gauge_live\w+_(\d+)\.db")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on Windows, taken as yes: ``os.kill(pid, 0)`` there sends a
    Ctrl-C to the console's processes, ``CTRL_C_EVENT`` being 0)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (a pid taken again): not ours to judge
        return True
    return True


# How the workers' values of a gauge combine (prometheus_client's multiprocess modes used here)
_Combine = Literal["livesum", "livemax"]


def _load_values(
    state: ServerState,
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, float, _Combine]]]:
    """The server's state as (name, documentation, value) counters and (name, documentation, value,
    how the workers' values combine) gauges: what ``/health`` shows."""
    stats: dict[str, Any] = state.scheduler.stats() if state.scheduler else {}
    counters = [
        ("nextword_generations", "completions answered (sampled or beam), whole or cancelled", state.served),
        ("nextword_generated_words", "words generated, over every sequence of every completion", state.words),
    ]
    if "ticks" in stats:
        counters.append(("nextword_batch_steps", "batched model steps run", stats["ticks"]))
    if "failed_steps" in stats:
        failed = "batched model steps that failed (their sequences ended with an error)"
        counters.append(("nextword_failed_steps", failed, stats["failed_steps"]))
    slots = state.slots
    gauges: list[tuple[str, str, float | None, _Combine]] = [
        ("nextword_generations_in_flight", "completions being generated now", len(state.jobs), "livesum"),
        (
            "nextword_slots_used",
            "requests running the model now (completions, suggestions, scores)",
            slots.used,
            "livesum",
        ),
        (
            "nextword_slots_limit",
            "the cap on those requests (--max-streams, in each of --workers); more get 429",
            slots.limit,
            "livesum",
        ),
        (
            "nextword_slots_used_ratio",
            "slots used over the cap (1: more get 429); with --workers, the fullest worker's",
            slots.used / max(slots.limit, 1),
            "livemax",  # the sums above hide one worker that is full while the others idle
        ),
        ("nextword_draining", "1 once the server is shutting down", int(state.draining), "livemax"),
        ("nextword_sequences", "sequences in the batch being stepped now", stats.get("sequences"), "livesum"),
        (
            "nextword_sequences_waiting",
            "sequences waiting to join the batch: every row (n per prompt) of each request waiting, "
            "which waits for the step under way to end at least",
            stats.get("waiting"),
            "livesum",
        ),
    ]
    # the unbatched scheduler has no waiting room
    return counters, [(name, doc, value, mode) for name, doc, value, mode in gauges if value is not None]


class _Info:
    """The served model's id and nextword's version, as an info metric."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the names are fixed and unique

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("nextword_server", "the served model's id and nextword's version")
        info.add_metric([], {"model": self.state.model_id, "version": __version__})
        yield info


class _Load(_Info):
    """The server's state, read when scraped: what ``/health`` shows, as metrics."""

    def collect(self) -> Iterator[Metric]:
        yield from super().collect()
        counters, gauges = _load_values(self.state)
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value)
        for name, documentation, level, _ in gauges:
            yield GaugeMetricFamily(name, documentation, value=level)


class _SharedLoad:
    """A worker's load written to prometheus_client's multiprocess files: its counters grow by what this
    worker counted since it last wrote, its gauges take their values now (summed over the live workers;
    ``nextword_draining`` and ``nextword_slots_used_ratio``: the largest)."""

    def __init__(self, state: ServerState, registry: CollectorRegistry) -> None:
        self.state, self.registry = state, registry
        self.counters: dict[str, Counter] = {}  # made at their first value
        self.gauges: dict[str, Gauge] = {}
        self.written: dict[str, int] = {}  # each counter's value written so far
        self.lock = threading.Lock()  # a scrape and the once-a-second writer

    def publish(self) -> None:
        counters, gauges = _load_values(self.state)
        with self.lock:
            for name, documentation, value in counters:
                if name not in self.counters:
                    self.counters[name] = Counter(name, documentation, registry=self.registry)
                self.counters[name].inc(value - self.written.get(name, 0))
                self.written[name] = value
            for name, documentation, level, mode in gauges:
                if name not in self.gauges:
                    self.gauges[name] = Gauge(
                        name, documentation, multiprocess_mode=mode, registry=self.registry
                    )
                self.gauges[name].set(level)


class RequestMetrics:
    """ASGI middleware: counts each HTTP request by route, method and status, times it to the end of
    its answer, and writes its access line then (:func:`~.access.access_line`); the answer carries the
    request's id as ``X-Request-ID``, the last field of that line. A request whose client
    went away before an answer began counts with status 499, as does one whose route answered after
    the HTTP protocol heard the client leave (serve/http_guard.py). ``routes``: the app's routes, to
    label a request refused before routing (a 401, a 413) with the route it asked for."""

    def __init__(self, app: Any, metrics: Metrics, routes: Sequence[Any] = ()) -> None:
        self.app, self.metrics, self.routes = app, metrics, list(routes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = self._route(scope)  # before routing, which rewrites the scope's path and root path
        request = request_line(scope)
        said = scope.setdefault("state", {})  # shared with the routes' scopes: where they name answers
        said[REQUEST_ID] = new_request_id()  # a completion's route puts its own id in its place
        status = 499
        answered = False  # whether the answer has begun

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                answered = True
                status = 499 if said.get(CLIENT_LEFT) else message["status"]
                named = (b"x-request-id", str(said[REQUEST_ID]).encode("ascii"))
                message["headers"] = [*(message.get("headers") or []), named]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = 500
            raise
        except asyncio.CancelledError:  # the server quit under it (Ctrl-C twice, or uvicorn's backstop)
            said.setdefault(STREAM_END, "answer cut: the server quit")
            if not answered and not said.get(CLIENT_LEFT):
                status = 500  # what uvicorn answers for a task cancelled before its answer began
            raise
        finally:
            if isinstance(said.get(ANSWERED), tuple):  # the HTTP protocol answered it (serve/http_guard.py)
                status, why = said[ANSWERED]
                said.setdefault(STREAM_END, why)
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"  # a client's made-up verbs: one label
            took = time.perf_counter() - started
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.durations.labels(route, status_class(status)).observe(took)
            if ACCESS.isEnabledFor(logging.INFO):
                ACCESS.info("%s", access_line(request, scope, status, took))

    def _route(self, scope: dict[str, Any]) -> str:
        """A label of few values: the path template of the route the request matches (a 401 or a 413,
        refused before routing, too), /static for the static files, else "unmatched"."""
        partial = None
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                return str(candidate.path)
            if match == Match.PARTIAL and partial is None:  # the path, another method: a 405
                partial = str(candidate.path)
        if partial is None and route_path(scope).startswith("/static/"):
            return "/static"
        return partial or "unmatched"


def status_class(status: int) -> str:
    """A status's class as a label of five values (``2xx``; 499, a client that left, is ``4xx``)."""
    # a status outside HTTP's range (no route sends one) counts with the server's errors: still 5 values
    return f"{status // 100}xx" if 100 <= status <= 599 else "5xx"
