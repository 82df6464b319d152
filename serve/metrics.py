"""Prometheus metrics at ``GET /metrics``: requests by route and status, their durations, the time to a
completion's first word, words generated, and the server's load as ``/health`` reports it.

Each app has a registry of its own (two apps in one process, as tests make them, count apart). With
``--workers N`` each process counts its own requests, and a scrape is answered by whichever worker the
kernel hands the connection to: docs/serving.md says how to scrape such a server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from starlette.routing import Match

from nextword.runtime import __version__

from .keys import route_path

if TYPE_CHECKING:
    from .state import ServerState

__all__ = ["CONTENT_TYPE", "Metrics", "RequestMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# seconds: a suggestion takes milliseconds, a long stream minutes
_DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# the label values a request's method may take: any other (a client may send any token) counts as "other",
# so that no client can grow the registry without bound
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FIRST_WORD = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The metrics of one app: counters and histograms updated as requests are answered, and the
    server's state read at each scrape."""

    def __init__(self, state: ServerState) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nextword_http_requests",
            "HTTP requests answered, by route (the path template, /static for the page's files, "
            "unmatched for a path the server does not have), method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "nextword_http_request_duration_seconds",
            "from a request's arrival to the end of its answer (a stream's last event), by route",
            ["route"],
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
        self.registry.register(_Load(state))

    def scrape(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)


class _Load:
    """The server's state, read when scraped: what ``/health`` shows, as metrics."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the names are fixed and unique

    def collect(self) -> Iterator[Metric]:
        state = self.state
        info = InfoMetricFamily("nextword_server", "the served model's id and nextword's version")
        info.add_metric([], {"model": state.model_id, "version": __version__})
        yield info
        yield CounterMetricFamily(
            "nextword_generations", "completions answered (sampled or beam), whole or cancelled", state.served
        )
        yield CounterMetricFamily(
            "nextword_generated_words",
            "words generated, over every sequence of every completion",
            state.words,
        )
        stats: dict[str, Any] = state.scheduler.stats() if state.scheduler else {}
        gauges = [
            ("nextword_generations_in_flight", "completions being generated now", len(state.jobs)),
            (
                "nextword_slots_used",
                "requests running the model now (completions, suggestions, scores)",
                state.slots.used,
            ),
            (
                "nextword_slots_limit",
                "the cap on those requests (--max-streams); more get 429",
                state.slots.limit,
            ),
            ("nextword_draining", "1 once the server is shutting down", int(state.draining)),
            ("nextword_sequences", "sequences in the batch being stepped now", stats.get("sequences")),
            ("nextword_sequences_waiting", "sequences waiting for room in the batch", stats.get("waiting")),
        ]
        for name, documentation, value in gauges:
            if value is not None:  # the unbatched scheduler has no waiting room
                yield GaugeMetricFamily(name, documentation, value=value)
        if "ticks" in stats:
            yield CounterMetricFamily("nextword_batch_steps", "batched model steps run", stats["ticks"])


class RequestMetrics:
    """ASGI middleware: counts each HTTP request by route, method and status, and times it to the end of
    its answer. A request whose client went away before an answer began counts with status 499.
    ``routes``: the app's routes, to label a request refused before routing (a 401, a 413) with the
    route it asked for."""

    def __init__(self, app: Any, metrics: Metrics, routes: Sequence[Any] = ()) -> None:
        self.app, self.metrics, self.routes = app, metrics, list(routes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = self._route(scope)  # before routing, which rewrites the scope's path and root path
        status = 499

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = 500
            raise
        finally:
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"  # a client's made-up verbs: one label
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.durations.labels(route).observe(time.perf_counter() - started)

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
