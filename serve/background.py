"""Serving from a program that goes on running: a Jupyter notebook, a test, an app with an event loop of
its own. :func:`~nextword.serve.serve` blocks until Ctrl-C and runs uvicorn's own event loop, which
cannot run where one runs already (a notebook's cell); here :func:`start` serves on a thread of its own,
with its own loop, and returns once the server listens; :func:`serve_async` serves in the caller's loop
until cancelled.

Both serve as ``serve()`` does with one process: the same app, checked the same way before uvicorn
starts (:func:`~.server.checked_app`), with the same uvicorn settings. They leave the program's own
settings alone: no signal handler is installed (``stop()``, or a cancellation, stops the server), the
logging configuration is the program's (uvicorn's and nextword's lines, the access log too, go to the
root logger's handlers; ``log_level`` is not applied), and so is the limit on open files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

from nextword.runtime.checks import check_real

from .address import check_address
from .config import ServeConfig, served
from .server import checked_app, uvicorn_settings
from .state import BACKSTOP_SECONDS, ServerState

if TYPE_CHECKING:
    from fastapi import FastAPI

    from nextword.runtime import NextWordModel

__all__ = ["RunningServer", "serve_async", "start"]

logger = logging.getLogger(__name__)

# How long start() waits for the server to listen once the model is loaded (the app's start-up and the
# bind take milliseconds); and how long stop() waits past uvicorn's own bound on a stop (its backstop)
STARTUP_SECONDS = 60.0
STOP_MARGIN_SECONDS = 10.0


def start(config: ServeConfig | None = None, model: NextWordModel | None = None) -> RunningServer:
    """Serve on a thread of this process, with an event loop of its own, and return once the server
    listens: a :class:`RunningServer`, whose ``url`` it answers on, until its ``stop()`` (or the end of
    a ``with`` block). For a notebook, or any program that goes on running while it serves.

    ``config`` and ``model`` as in :func:`~nextword.serve.create_app`; one process only. Raises what
    :func:`~nextword.serve.serve` raises before it serves, here in the caller: ``ValueError`` for
    ``workers`` other than 1, :class:`~.address.AddressUnavailableError` for a port in use (another
    server, one that an earlier ``start()`` returned), a bad model file or bad TLS files as ``serve``
    does; ``RuntimeError`` if the server fails as it starts, ``TimeoutError`` if it does not listen
    within :data:`STARTUP_SECONDS`."""
    config = _one_process(served(config, model), "start()")
    server = RunningServer(config, checked_app(config, model))
    server._start()
    return server


class RunningServer:
    """A server that :func:`start` runs on a thread of this process, until :meth:`stop`; a context
    manager that stops it as its block ends."""

    def __init__(self, config: ServeConfig, app: FastAPI) -> None:  # made by start()
        self.config = config
        self.app = app  # the FastAPI app it serves (app.state.nextword: its state)
        self.port = config.port  # the port it listens on (the one chosen for port 0, once started)
        self.url = _url(config, self.port)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = _EmbeddedServer(uvicorn.Config(app, **_settings(config)), self._listening)
        self._thread = threading.Thread(target=self._run, name="nextword-serve", daemon=True)

    @property
    def running(self) -> bool:
        """Whether the server still runs (it has not stopped, nor failed)."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving, and return once the server has stopped: its port is free and its thread has
        ended. New connections are refused at once (a request on one accepted before is answered:
        :mod:`nextword.serve.http_guard`); generations in flight get ``timeout`` seconds to finish
        (None: ``config.shutdown_timeout``, at most that in any case), then they are cancelled.
        Stopping a server that has stopped does nothing. Raises ``TimeoutError`` if it still runs
        ``shutdown_timeout`` + 15 s later (an answer sent to a client that reads nothing holds it until
        uvicorn cuts it, ``shutdown_timeout`` + 5 s after the stop)."""
        drain = self.config.shutdown_timeout
        if timeout is not None:
            check_real("timeout", timeout, low=0.0, low_open=False, wanted="a number of seconds >= 0")
            drain = min(timeout, drain)
        loop = self._loop
        if loop is None:  # still starting: uvicorn stops as soon as it has
            self._server.should_exit = True
        elif self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop closed: it stopped just now
                loop.call_soon_threadsafe(_begin_stop, self._server, self.app.state.nextword, drain)
        if not self._thread.is_alive():
            return
        bound = _stop_bound(self.config)
        self._thread.join(bound)
        if self._thread.is_alive():
            raise TimeoutError(
                f"the server on {self.url} still runs {bound:g} s after it was told to stop (a client that "
                "reads nothing holds an answer open): call stop() again, or end the program"
            )

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url} {'running' if self.running else 'stopped'}>"

    def _start(self) -> None:
        """Start the thread and wait until the server listens; raise what stopped it otherwise."""
        self._thread.start()
        try:
            ready = self._ready.wait(STARTUP_SECONDS)
        except BaseException:  # an interrupt (a notebook's): no server left running without its handle
            self.stop(timeout=0)
            raise
        if not ready:
            self.stop(timeout=0)
            raise TimeoutError(
                f"the server on {self.url} did not listen within {STARTUP_SECONDS:g} s of its start; it "
                "was stopped (the log says what it was doing)"
            )
        if self._failure is not None:
            self._thread.join(_stop_bound(self.config))
            raise self._failure

    def _listening(self, port: int) -> None:
        """On the server's thread, once it listens on ``port``."""
        self.port, self.url = port, _url(self.config, port)
        logger.info("serving on %s until stop()", self.url)
        self._ready.set()

    def _run(self) -> None:
        """The server's thread: its own event loop (uvicorn's choice, uvloop where installed), serving
        until stopped; a failure is kept for :meth:`_start`, or logged once the server ran."""
        try:
            _run_loop(self._serve(), self._server.config)
        except BaseException as exc:  # any, SystemExit too: raised again in the caller
            if self._ready.is_set():
                logger.error("the server on %s stopped: %s", self.url, exc, exc_info=exc)
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await _serve_until_stopped(self._server)


async def serve_async(config: ServeConfig | None = None, model: NextWordModel | None = None) -> None:
    """Serve in the running event loop until cancelled, for async code (``asyncio.create_task``, or
    ``async with asyncio.timeout(...)`` around it); a cancellation stops the server as ``stop()`` does:
    new generations are refused, those in flight get ``config.shutdown_timeout`` seconds (a second
    cancellation cuts them at once), and the port is free once the ``CancelledError`` is raised again.

    ``config`` and ``model`` as in :func:`~nextword.serve.create_app`, one process only; the model is
    loaded on a thread, off the loop. Raises what :func:`start` raises."""
    config = _one_process(served(config, model), "serve_async()")
    app = await asyncio.to_thread(checked_app, config, model)
    state: ServerState = app.state.nextword

    def listening(port: int) -> None:
        logger.info("serving on %s until cancelled", _url(config, port))

    server = _EmbeddedServer(uvicorn.Config(app, **_settings(config)), listening)
    serving = asyncio.ensure_future(_serve_until_stopped(server))
    try:
        await asyncio.shield(serving)  # a cancellation of the caller reaches the server below
    except asyncio.CancelledError:
        if serving.done():
            raise
        _begin_stop(server, state, config.shutdown_timeout)
        while not serving.done():
            try:
                await asyncio.shield(serving)
            except asyncio.CancelledError:
                state.cancel_all()  # cancelled again: the generations in flight end now
        raise


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server without signal handlers: the program keeps its own (stop() and a cancellation
    stop this server). Calls ``listening`` with its port once it listens."""

    def __init__(self, config: uvicorn.Config, listening: Callable[[int], None]) -> None:
        super().__init__(config)
        self._listening = listening
        self.shut_down = False  # whether uvicorn's shutdown ran (see _serve_until_stopped)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn's own: none here
        yield

    async def startup(self, sockets: Any = None) -> None:
        # on the main thread (serve_async) the app's lifespan chains a drain before the program's
        # handlers, which an interrupt meant for the program (a notebook's other cell) would begin: put
        # back as they were
        before = _signal_handlers()
        await super().startup(sockets=sockets)
        for sig, handler in before.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        servers = getattr(self, "servers", None)  # uvicorn 0.29 has none where the app's lifespan failed
        if servers:
            self._listening(servers[0].sockets[0].getsockname()[1])

    async def shutdown(self, sockets: Any = None) -> None:
        self.shut_down = True
        await super().shutdown(sockets=sockets)


async def _serve_until_stopped(server: _EmbeddedServer) -> None:
    """``server.serve()``; uvicorn's ``sys.exit`` where it cannot start (its log line says why) becomes
    an exception: a ``SystemExit`` out of a task stops the whole event loop, the program's own."""
    try:
        await server.serve()
        if not server.started and getattr(getattr(server, "lifespan", None), "should_exit", False):
            raise SystemExit(3)  # the app's lifespan failed: uvicorn 0.29 returns where later ones exit
        if server.started and not server.shut_down:
            # uvicorn 0.29 returns without its shutdown where a stop came while it started: the port
            # stayed bound, with nothing left to close it, and the app's lifespan never ended
            await server.shutdown()
    except SystemExit:
        if server.started:
            raise RuntimeError("the server stopped itself: uvicorn's log says why") from None
        config = server.config
        check_address(config.host, config.port, in_python=True)  # taken since the check: say so
        raise RuntimeError(
            f"the server could not start on {config.host}:{config.port}: uvicorn's log (logger "
            "uvicorn.error) says why"
        ) from None


def _begin_stop(server: uvicorn.Server, state: ServerState, drain: float) -> None:
    """On the server's loop: refuse new generations, cancel those still running after ``drain``
    seconds, and let uvicorn stop (as a SIGTERM does to ``nextword serve``)."""
    loop = asyncio.get_running_loop()
    state.begin_shutdown(loop)  # cancels them after shutdown_timeout
    state.stop_listening(getattr(server, "servers", ()))  # now, not at uvicorn's tick (none before start)
    if drain < state.config.shutdown_timeout:
        loop.call_later(drain, state.cancel_all)
    server.should_exit = True


def _one_process(config: ServeConfig, call: str) -> ServeConfig:
    if config.workers != 1:
        raise ValueError(
            f"{call} serves in this process, so workers must be 1, got {config.workers}: for several "
            f"worker processes run `nextword serve --workers {config.workers}`, or serve() in a script of "
            "its own"
        )
    return config


def _settings(config: ServeConfig) -> dict[str, Any]:
    """``serve()``'s uvicorn settings, but with the program's logging as it is (no ``log_config``)."""
    return {**uvicorn_settings(config), "log_config": None}


def _stop_bound(config: ServeConfig) -> float:
    """How long a stop may take: uvicorn's backstop (``shutdown_timeout``, rounded up, and
    ``BACKSTOP_SECONDS``), then the app's own shutdown."""
    return math.ceil(config.shutdown_timeout) + BACKSTOP_SECONDS + STOP_MARGIN_SECONDS


def _url(config: ServeConfig, port: int) -> str:
    """Where this machine reaches the server: a loopback address for a server on every address."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.host, config.host)
    scheme = "https" if config.ssl_certfile is not None else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _run_loop(main: Coroutine[Any, Any, None], config: uvicorn.Config) -> None:
    """Run ``main`` in a new event loop of the kind uvicorn would make (uvicorn 0.36 and later, Python
    3.11 and later; else asyncio's), as ``asyncio.run`` does."""
    make = getattr(config, "get_loop_factory", None)
    factory = make() if callable(make) else None
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main)
    else:
        asyncio.run(main)


def _signal_handlers() -> dict[int, Any]:
    """This thread's handlers of the signals a server takes: none off the main thread (none can be set
    there)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    found = (getattr(signal, name, None) for name in ("SIGINT", "SIGTERM", "SIGHUP"))  # no SIGHUP: Windows
    return {sig: signal.getsignal(sig) for sig in found if sig is not None}
