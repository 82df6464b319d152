"""The ASGI application: routes, error answers, the body-size cap, the page's files, and a lifespan that
starts the scheduler and drains generations on Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from nextword.runtime import ModelFileError, NextWordModel, __version__, load
from nextword.runtime.terminal import escape_surrogates

from . import completions, routes, web_assets
from .auth import ApiKeys, document_keys
from .config import ServeConfig, served
from .cors import Cors
from .errors import UnexpectedErrors, install_error_handlers
from .headers import SecurityHeaders
from .hosts import HostCheck
from .limits import BodySizeLimit, PublishGuard
from .logs import FORCED_QUIT, use_server_format
from .main_guard import STARTUP_FAILURE
from .metrics import MULTIPROCESS_ENV, Metrics, RequestMetrics
from .options import defaults_over_caps
from .scheduler import make_scheduler
from .schema_limits import document_caps
from .state import ServerState
from .worker_exit import end_worker, retry_later

__all__ = ["CONFIG_ENV", "app_from_environment", "create_app"]

logger = logging.getLogger(__name__)

CONFIG_ENV = "NEXTWORD_SERVE_CONFIG"  # JSON of a ServeConfig: how worker processes get their settings


def create_app(config: ServeConfig | None = None, model: NextWordModel | None = None) -> FastAPI:
    """The server as an ASGI app; run it with any ASGI server (``nextword serve`` uses uvicorn).

    ``model`` defaults to ``config.model``, else ``$NEXTWORD_MODEL``, else the bundled model, loaded
    here as ``config.session_settings`` says (so a bad file fails before the server binds
    its port); a ``model`` given is served with its own session options.
    """
    config = served(config, model)  # None: ServeConfig(); a dict or a path: WrongTypeError
    if model is not None and config.device != "cpu":
        raise ValueError(
            f"device {config.device!r} is for the model the server loads: a model given runs where load() "
            "put it (load(path, device=...))"
        )
    settings = config.session_settings if model is None else {}  # made once: it builds session options
    planned = model is None and not settings  # load()'s own sessions (--no-batching)
    if model is None:
        try:
            model = load(config.model_path, **settings, device=config.device, limits=config.load_limits)
        except ModelFileError as exc:
            raise config.explained(exc) from None
    # the id clients see and send: --served-model-name (the first), else the file's name without .onnx
    # (a name whose bytes are not UTF-8 escaped, \xe9: an id is text that JSON answers can carry)
    model_id = next(iter(config.served_model_name), None) or escape_surrogates(Path(model.source).stem)
    model_id = model_id or "nextword"
    state = ServerState(config=config, model=model, model_id=model_id)
    # one of --workers' processes, with the directory where they keep their metrics (serve() makes it)
    state.metrics = Metrics(state, shared=config.workers > 1 and bool(os.environ.get(MULTIPROCESS_ENV)))
    keys = config.keys  # --api-key, else $NEXTWORD_API_KEY: a bad one is refused before the port is bound

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            state.scheduler = make_scheduler(model, config.batching, config.max_batch, config.max_streams)
        except Exception:
            if state.supervisor is None:
                raise  # uvicorn says the start-up failed, and why
            # a worker: uvicorn's exit for it would leave its supervisor waiting (serve/worker_exit.py)
            logger.exception("this worker cannot start; uvicorn stops the server")
            end_worker(STARTUP_FAILURE, state.supervisor)
        restore = _drain_on_signals(state, asyncio.get_running_loop())
        FORCED_QUIT.clear()  # an earlier app's quit in this process (a notebook, tests) is not this one's
        threads = model.session.get_session_options().intra_op_num_threads
        logger.info(
            "serving %s (%s) with %s on %s, %s",
            model.source,
            state.model_id,
            "continuous batching" if config.batching else "one thread per request",
            " + ".join(model.providers),
            "onnxruntime threads per step as load() chooses them (1, or 2 for a step alone or a large int8 "
            "batch)"
            if planned
            else f"{threads} onnxruntime thread(s) per step",
        )
        logger.info(
            "nextword %s; caps: %d streams, %d sequences a step, %d rows a request, %d words, %d "
            "suggestions, %d prompt characters, %d body bytes, %d header bytes; %g s to send a request, %g s "
            "to read an answer; a stream's writes %g s apart at least; %g s to drain at shutdown",
            __version__,
            config.max_streams,
            config.max_batch,
            config.max_rows,
            config.max_words,
            config.max_suggestions,
            config.max_prompt_chars,
            config.max_body_bytes,
            config.max_header_bytes,
            config.request_timeout,
            config.send_timeout,
            config.stream_interval,
            config.shutdown_timeout,
        )
        for warning in defaults_over_caps(model.info.generation, config):
            logger.warning("%s", warning)
        if keys:
            logger.info("/v1/... and /model.onnx need an API key (%d accepted)", len(keys))
        # a worker's load reaches the scrapes the other workers answer
        publishing = (
            asyncio.create_task(_publish_every_second(state.metrics)) if state.metrics.shared else None
        )
        try:
            yield
        finally:
            restore()
            state.cancel_all()
            scheduler, state.scheduler = state.scheduler, None
            await asyncio.to_thread(scheduler.close)
            if publishing is not None:
                publishing.cancel()
                state.metrics.retire()

    app = FastAPI(
        title="nextword",
        version=__version__,
        summary="Word-level LSTM next-word model: OpenAI-compatible completions, suggestions, scores.",
        lifespan=lifespan,
        docs_url=None,  # web_assets serves /docs with Swagger UI's files from the package
        redoc_url=None,  # ReDoc, too, would come from a CDN
    )
    app.state.nextword = state
    install_error_handlers(app)
    app.include_router(completions.router)
    app.include_router(routes.router)
    app.include_router(web_assets.router)  # before /static: it answers for the compressed .wasm
    app.mount("/static", web_assets.RangedStaticFiles(directory=str(routes.STATIC)), name="static")
    # innermost: a route's unexpected error becomes a 500 that the middleware below add their headers to
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes, timeout=config.request_timeout)
    if keys:  # outside the body cap: a request without a key is refused before its body is read
        app.add_middleware(ApiKeys, keys=keys)
    document_keys(app, required=bool(keys))  # the schema names the key either way (optional without)
    document_caps(app, config, model.vocab_size)  # this server's caps, as the schema's maximum values
    if config.cors_origins:  # outside the caps and the key check: refusals (413, 429) carry its headers too
        app.add_middleware(Cors, origins=list(config.cors_origins))
    if config.allowed_hosts != ("*",):  # outside CORS: a rebound page's preflight is refused too
        app.add_middleware(HostCheck, names=config.allowed_hosts, always=bool(config.allowed_hosts))
    # added last, so outermost: every request is counted and has its access line, the refusals of the
    # caps and the key check (413, 401) under the route asked for, and the preflights CORS answers itself;
    # labelled by the routers' routes and the app's own (/openapi.json)
    own = [route for route in app.router.routes if isinstance(route, Route)]
    every = [*completions.router.routes, *routes.router.routes, *web_assets.router.routes, *own]
    app.add_middleware(RequestMetrics, metrics=state.metrics, routes=every)
    # for the HTTP protocol (http_guard.py): its settings, and the count of the requests it refuses itself
    app.add_middleware(
        PublishGuard,
        settings=config.guard,
        refused=state.metrics.refused,
        accepting=lambda: state.accepting,
    )
    # outermost: nosniff, Referrer-Policy, X-Frame-Options on every answer, CORS preflights and refusals
    # too; the pages' own Content-Security-Policy comes from their routes (headers.py)
    app.add_middleware(SecurityHeaders)
    return app


async def _publish_every_second(metrics: Metrics) -> None:
    failing = False  # said once a failure streak, not each second
    while True:
        try:
            metrics.publish()
        except Exception as error:  # a full disk under the metrics folder, say: tried again each second
            if not failing:
                logger.warning("this worker's load could not be written for /metrics: %s", error)
            failing = True
        else:
            if failing:
                logger.info("this worker's load is written for /metrics again")
            failing = False
        await asyncio.sleep(1.0)


def app_from_environment() -> FastAPI:
    """The app of a worker process, configured by ``$NEXTWORD_SERVE_CONFIG`` (see :func:`serve`)."""
    settings = json.loads(os.environ[CONFIG_ENV])
    # a worker is a fresh process: nextword's lines in it look like uvicorn's (logs.py), at the level
    # of the command that started it
    use_server_format(settings.pop("_log_level", logging.INFO))
    backstop = bool(settings.pop("_backstop", False))  # uvicorn's, set by serve() (serve/state.py)
    started = settings.pop("_started", None), settings.pop("_started_monotonic", None)  # serve()'s
    approved = settings.pop("_model_digest", None)  # the file's bytes at start, or at the last SIGHUP
    supervisor = settings.pop("_supervisor", None)
    _end_with(supervisor)
    config = ServeConfig(**settings)
    try:
        app = create_app(config)
    except ModelFileError as exc:
        # a worker started again (after one died) finds the file replaced by one that does not load:
        # one line, not multiprocessing's traceback, and the way out (uvicorn starts it again: it
        # waits for the file to change first, a few seconds at most, serve/worker_exit.py)
        logger.error(
            "this worker cannot start: %s; the other workers serve on. Put back a model file that loads "
            "(nextword info %s says why this one does not), then send SIGHUP to reload every worker",
            config.explained(exc),
            config.model_path,
        )
        retry_later(config.model_path, supervisor)
    state = app.state.nextword
    state.supervisor = supervisor
    if approved is not None and state.model_file is not None and state.model_file.digest != approved:
        logger.warning(
            "%s holds other bytes than the file the other workers loaded (it changed on disk since the "
            "server started, or since its last SIGHUP): this worker, started again after one died, "
            "serves the new file and they the old one until SIGHUP reloads every worker",
            state.model_file.path,
        )
    state.backstop = backstop
    if None not in started:
        state.started, state.started_monotonic = started
    return app


def _end_with(supervisor: int | None) -> None:
    """Have the kernel send this worker SIGTERM (a drain) when ``supervisor``, the process that started
    it, ends: a supervisor killed outright (SIGKILL, a process manager that signals it alone) left its
    workers serving, and holding the port, for good. Linux only (``prctl``); elsewhere nothing."""
    if supervisor is None or supervisor == os.getpid() or not sys.platform.startswith("linux"):
        return  # not a worker: the supervising process itself (a test, a program of its own) made this app
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no libc prctl to be found (a static build): nothing to ask
        return
    if os.getppid() != supervisor:  # it ended before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _said_again(signum: int, first: int, in_flight: int, worker: bool) -> None:
    """Log what a signal does to a server already shutting down (uvicorn's handling): a Ctrl-C quits at
    once, whatever came first; a SIGTERM after a SIGTERM waits on. A worker of ``--workers`` says
    nothing of a second SIGTERM: uvicorn's supervisor sends one to every worker it stops."""
    if signum == signal.SIGINT:
        FORCED_QUIT.set()  # the tasks cancelled now are not failures: their tracebacks are not logged
        logger.warning("Ctrl-C again: quitting at once, cutting %d generation(s) in flight", in_flight)
    elif signum == signal.SIGTERM and first == signal.SIGTERM and not worker:
        logger.warning(
            "SIGTERM again: already shutting down, %d generation(s) in flight (Ctrl-C twice quits at once)",
            in_flight,
        )


def _drain_on_signals(state: ServerState, loop: asyncio.AbstractEventLoop) -> Any:
    """Chain a drain step before the ASGI server's own Ctrl-C / SIGTERM handlers: new generations are
    refused at once and running ones get ``shutdown_timeout`` seconds. A SIGHUP that nothing handles
    does the same (rather than kill the process mid-stream). Returns the undo function.
    Signals can only be handled on the main thread; elsewhere (a test client) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    hangup = getattr(signal, "SIGHUP", None)  # not on Windows
    if (
        hangup is not None
        and signal.getsignal(hangup) is signal.SIG_DFL
        and callable(terminate := signal.getsignal(signal.SIGTERM))
    ):
        # Nobody handles SIGHUP (uvicorn's one process, or one of its workers): by default it would
        # kill the process mid-stream. It drains and stops as SIGTERM does; a process manager's
        # "reload" restarts the server (with --workers, uvicorn's supervisor restarts the workers).

        def hung_up(signum: int, frame: Any, terminate: Any = terminate) -> None:
            logger.info("SIGHUP: shutting down as for SIGTERM (a new model file needs a restart)")
            state.begin_shutdown(loop)
            terminate(signal.SIGTERM, frame)
            _stop_accepting(terminate, loop, state)

        previous[hangup] = signal.signal(hangup, hung_up)
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if not callable(handler):
            continue

        def chained(signum: int, frame: Any, handler: Any = handler) -> None:
            if state.draining:
                _said_again(signum, state.stopped_by or signum, len(state.jobs), state.config.workers > 1)
            else:
                state.stopped_by = signum
            state.begin_shutdown(loop)
            handler(signum, frame)
            _stop_accepting(handler, loop, state)

        previous[sig] = signal.signal(sig, chained)

    installed = {sig: signal.getsignal(sig) for sig in previous}

    def restore() -> None:
        # only where ours is still in place: after a forced quit uvicorn has put back the handlers it
        # found before this lifespan ran, and its own, written back here, would outlive the server
        for sig, handler in previous.items():
            if signal.getsignal(sig) is installed[sig]:
                with contextlib.suppress(ValueError):
                    signal.signal(sig, handler)

    return restore


def _stop_accepting(handler: Any, loop: asyncio.AbstractEventLoop, state: ServerState) -> None:
    """Close the listening sockets of the uvicorn server whose signal ``handler`` this is, now rather than
    at its next tick (up to 0.1 s on): with --workers, a worker that uvicorn retires (a SIGHUP's restart)
    went on accepting connections meanwhile and answered them 503, where the other workers, sharing the
    socket, would have served them. Those it accepted before are answered (:meth:`ServerState.
    refuse_if_draining`). For another server's handler, no listener is closed."""
    owner = getattr(handler, "__self__", None)
    servers = getattr(owner, "servers", None) if type(owner).__module__.startswith("uvicorn.") else None
    listeners = [each for each in servers or () if callable(getattr(each, "close", None))]
    loop.call_soon_threadsafe(state.stop_listening, listeners)  # a signal handler: the loop's thread closes
