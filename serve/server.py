"""Running the app: uvicorn, one process or several sharing the port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nextword.runtime import LoadLimits, ModelFileError, NextWordModel
from nextword.runtime.model_check import check_model_file

from .address import AddressUnavailableError, check_address
from .allowed import proxies_checked
from .app import CONFIG_ENV, create_app
from .config import ServeConfig, served
from .logs import uvicorn_log_config
from .main_guard import exit_if_bootstrapping, said_by_workers
from .metrics import MULTIPROCESS_ENV
from .state import BACKSTOP_SECONDS
from .stop_signals import watch_signals
from .worker_settings import WorkerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "AddressUnavailableError",
    "check_address",
    "check_device_in_child",
    "check_tls",
    "checked_app",
    "serve",
    "uvicorn_settings",
]

logger = logging.getLogger(__name__)


PROXIES_ENV = "FORWARDED_ALLOW_IPS"  # uvicorn's, read where forwarded_allow_ips is not set


# Files a server process holds open besides its connections: the model, logs, sockets, the metrics files
OTHER_FILES = 64


def raise_open_files(streams: int) -> int | None:
    """Raise this process's soft limit on open files towards its hard limit (which the workers
    inherit), as servers do; warn where that is still below ``streams`` connections and
    :data:`OTHER_FILES`: the event loop resets a connection past the limit without a log line
    (``ulimit -n 64`` answered 49 of 150 requests, and the rest saw their connection reset). Returns
    the soft limit it replaced, for :func:`serve` to put back, or None. Not on Windows, which has no
    such limit."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite, before = resource.RLIM_INFINITY, None
    wanted = streams + OTHER_FILES
    # macOS refuses a soft limit above kern.maxfilesperproc (10,240 by default), an infinite one too
    for target in (hard, 1 << 20, 10_240):
        if soft == infinite or (hard != infinite and target > hard) or target == infinite or target <= soft:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        before, soft = soft, target
        break
    if soft != infinite and soft < wanted:
        logger.warning(
            "this process may hold %d files open (ulimit -n), fewer than --max-streams %d connections "
            "and the server's own %d need: a connection past the limit is reset without a log line; "
            "raise the limit (ulimit -n %d, or the container's nofile) or lower --max-streams",
            soft,
            streams,
            OTHER_FILES,
            wanted,
        )
    return before


@contextlib.contextmanager
def _open_files_raised(streams: int) -> Iterator[None]:
    """:func:`raise_open_files` for the time of the block; the soft limit it replaced put back after."""
    before = raise_open_files(streams)
    try:
        yield
    finally:
        if before is not None:
            import resource

            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(
                    resource.RLIMIT_NOFILE, (before, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
                )


def check_tls(config: ServeConfig) -> None:
    """Load ``ssl_certfile`` and ``ssl_keyfile`` as uvicorn will, so that a file that is missing, is no
    PEM, holds an encrypted key (OpenSSL would stop to ask for its password) or a key of another
    certificate is one line naming the option before the server starts. Raises ``ValueError``."""
    if config.ssl_certfile is None:
        return
    import ssl

    files = f"ssl_certfile={config.ssl_certfile!r}" + (
        f", ssl_keyfile={config.ssl_keyfile!r}" if config.ssl_keyfile else ""
    )
    for path in filter(None, (config.ssl_certfile, config.ssl_keyfile)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ValueError(f"{files}: {path} cannot be read ({exc.strerror})") from None
    asked = []

    def password() -> bytes:  # called only for an encrypted key: never prompt on the terminal
        asked.append(True)
        return b""

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            config.ssl_certfile, config.ssl_keyfile, password=password
        )
    except ssl.SSLError as exc:
        if asked:
            why = (
                "the private key is encrypted; give an unencrypted copy (openssl pkey -in KEY.pem -out "
                "plain.pem), readable by this user only"
            )
        elif "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            why = "the private key is not the certificate's"
        else:
            why = (
                f"they are not a PEM certificate and its private key ({exc.reason or exc}); the key goes in "
                "`ssl_keyfile`, or after the certificate in `ssl_certfile`"
            )
        raise ValueError(f"{files}: {why}") from None


def serve(config: ServeConfig | None = None, model: NextWordModel | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM; then new generations are refused, running ones get
    ``config.shutdown_timeout`` seconds to finish and are cancelled after that.

    With ``config.workers > 1`` uvicorn starts that many processes on one port, each loading its own
    copy of the model (the model is then always read from ``config.model``). Each worker runs the main
    script again as it starts: a script must call this under ``if __name__ == "__main__":``, else it
    ends with :class:`~.main_guard.UnguardedScriptError` (a ``RuntimeError``).

    uvicorn's lines (its access log too) are written with a time stamp (:mod:`nextword.serve.logs`);
    nextword's own go through the caller's logging configuration, as ``nextword serve`` sets it up.
    While it serves, the process's soft limit on open files is raised towards its hard limit (each
    connection holds a file), and put back when it returns. Inside a running event loop (a notebook) it
    raises ``RuntimeError`` before it starts anything: :func:`~.background.start` serves there.
    """
    _refuse_running_loop()
    config = served(config, model)  # None: ServeConfig(); a dict or a path: WrongTypeError
    # nextword's own serving messages follow --log-level too, debug included, while it serves (a
    # program that called serve() gets its logging back as it was); never louder than a caller that
    # asked for warnings only (-q)
    ours = logging.getLogger("nextword")
    before, asked = ours.level, logging.getLevelName(config.log_level.upper())
    quieted = ours.getEffectiveLevel() > logging.INFO
    ours.setLevel(max(ours.getEffectiveLevel(), asked) if quieted else asked)
    try:
        with _open_files_raised(config.max_streams):  # put back after, as the logging is
            _serve(config, model)
    finally:
        ours.setLevel(before)


def _refuse_running_loop() -> None:
    """uvicorn runs an event loop of its own: in a thread that runs one already (a Jupyter notebook's,
    an async program's) it failed deep inside, "Cannot run the event loop while another loop is
    running", and left coroutines never awaited."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # none running: serve
    raise RuntimeError(
        "serve() runs until the server stops, and cannot run inside an event loop that is already running "
        "(a Jupyter notebook, async code): there, use `server = nextword.serve.start(config)`, which "
        "serves on a thread of its own until `server.stop()`, or `await nextword.serve.serve_async(config)`"
    )


def _serve(config: ServeConfig, model: NextWordModel | None) -> None:
    import uvicorn

    common = uvicorn_settings(config)
    if config.workers == 1:
        app = checked_app(config, model)
        # returns after Ctrl-C too (uvicorn 0.30.3 and later swallow the KeyboardInterrupt it re-raises;
        # from older ones it propagates: `nextword serve: interrupted` all the same)
        with watch_signals(supervisor=False) as watch:
            uvicorn.run(app, **common)
        # the app's handler says which signal began the stop; one that came before it, the watch
        stopped_by = app.state.nextword.stopped_by or next(iter(watch.seen), None)
        if stopped_by == signal.SIGINT:
            raise KeyboardInterrupt  # `nextword serve: interrupted`, status 130, as the other commands
        if stopped_by == signal.SIGTERM and watch.saw(signal.SIGINT):
            # uvicorn hands back the signals it took, the last first: a Ctrl-C's KeyboardInterrupt
            # cut the SIGTERM's turn short, and the process ends by it here instead
            signal.raise_signal(signal.SIGTERM)
        return
    if model is not None:
        raise ValueError("workers > 1 load the model in each process: pass config.model, not model")
    exit_if_bootstrapping()  # a worker re-running a script that lacks `if __name__ == "__main__":`
    with said_by_workers():  # ...stops there, and the error it left is raised here
        _serve_workers(config, common)


def uvicorn_settings(config: ServeConfig) -> dict[str, Any]:
    """uvicorn's settings for ``config`` (``host`` and ``port`` among them), as :func:`serve` runs it:
    its lines written with a time stamp (``log_config``: :func:`~.logs.uvicorn_log_config`)."""
    common: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": None,  # levels set by log_config alone (serve/logs.py: a worker's death at warning)
        "timeout_graceful_shutdown": math.ceil(config.shutdown_timeout) + BACKSTOP_SECONDS,  # past the drain
        # behind a proxy that strips a path prefix: each request's path and root_path carry it again
        "root_path": config.root_path,
        "log_config": uvicorn_log_config(config.log_level),  # time-stamped lines, in each worker too
        "access_log": False,  # written when it starts; the app writes one when it ends (serve/access.py)
        # no route takes a websocket: an upgrade request is an HTTP request (a 404 with its access
        # line), not uvicorn's own "WebSocket PATH?QUERY 403" line, which logged a key sent there
        "ws": "none",
        **_http_protocol(config),
    }
    if config.ssl_certfile is not None:
        common["ssl_certfile"], common["ssl_keyfile"] = config.ssl_certfile, config.ssl_keyfile
    if config.forwarded_allow_ips is not None:  # else uvicorn's: $FORWARDED_ALLOW_IPS, else loopback
        common["forwarded_allow_ips"] = list(config.forwarded_allow_ips)
    elif os.environ.get(PROXIES_ENV, "").strip():  # checked, and read, as the flag is: uvicorn takes any
        # text, and reads "*" only alone ("10.0.0.1, *" trusted only 10.0.0.1 there)
        checked = proxies_checked(os.environ[PROXIES_ENV], f"${PROXIES_ENV}")
        common["forwarded_allow_ips"] = list(checked or ())
    return common


def checked_app(config: ServeConfig, model: NextWordModel | None) -> FastAPI:
    """The app of one server process, checked as :func:`serve` checks it before uvicorn starts: a bad
    model file first (loaded here), whatever the port, then the TLS files and the address."""
    app = create_app(config, model)
    app.state.nextword.backstop = True  # uvicorn's timeout_graceful_shutdown (uvicorn_settings)
    check_tls(config)
    check_address(config.host, config.port, in_python=True)  # one line, not uvicorn's shutdown log
    _warn_if_public(config)
    return app


def _serve_workers(config: ServeConfig, common: dict[str, Any]) -> None:
    """``workers > 1``: check what every worker would fail on, once, then run uvicorn's supervisor."""
    import uvicorn

    # A bad file fails once, here, rather than in every worker; the check runs no session, so this
    # supervising process does not keep a copy of the model.
    try:
        check_model_file(config.model_path, config.load_limits)
    except ModelFileError as exc:
        raise config.explained(exc) from None
    if config.device != "cpu":
        check_device_in_child(config.model_path, config.device, config.load_limits)
    config.keys  # noqa: B018 ($NEXTWORD_API_KEY checked here: every worker would fail on it, forever)
    check_tls(config)
    check_address(config.host, config.port, in_python=True)
    _warn_if_public(config)
    level = logging.getLogger("nextword").getEffectiveLevel()
    workers = WorkerSettings(
        CONFIG_ENV,
        {
            **dataclasses.asdict(config),
            "_log_level": level,
            "_backstop": True,
            # the server's start, one for every worker (/v1/models' "created", /health's uptime): a
            # worker's own start differed from worker to worker, and moved when uvicorn replaced one
            "_started": time.time(),
            "_started_monotonic": time.monotonic(),  # one clock for every process of the machine
            "_supervisor": os.getpid(),  # a worker ends when this process does (serve/app.py)
        },
        config.model_path,
    )
    workers.start()  # the workers' settings, for their time: the caller's come back
    try:
        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:  # uvicorn 0.37+
            # a worker loads and probes the model before it is ready: a large one takes longer than
            # uvicorn's 5 s, and a SIGHUP reload (0.51+) then kept the old model ("was not ready in time")
            common["timeout_worker_healthcheck"] = WORKER_READY_SECONDS
        with (
            watch_signals(supervisor=True, on_hangup=workers.approve_the_file) as watch,
            _shared_metrics_folder(config.workers),
        ):
            uvicorn.run(
                "nextword.serve.app:app_from_environment", factory=True, workers=config.workers, **common
            )
        if watch.watched and not watch.seen:  # uvicorn's supervisor stopped by itself
            raise RuntimeError(
                "a worker failed to start, and uvicorn stopped the server: the log above says why"
            )
    finally:
        workers.end()


def _http_protocol(config: ServeConfig) -> dict[str, Any]:
    """uvicorn's settings for the HTTP protocol: httptools with nextword's guards against slow and
    greedy clients (serve/http_guard.py); without httptools, uvicorn's h11, which caps the request's
    head itself but has no deadlines."""
    try:
        from .http_guard import GuardedHttpToolsProtocol
    except ImportError:
        logger.warning(
            "httptools is not installed: serving with uvicorn's h11, without --request-timeout and "
            "--send-timeout (pip install httptools)"
        )
        return {"http": "h11", "h11_max_incomplete_event_size": config.max_header_bytes}
    return {"http": GuardedHttpToolsProtocol}


def check_device_in_child(path: str, device: str, limits: LoadLimits | None = None) -> None:
    """Load ``path`` on ``device`` in a child process and let it go, for ``--workers`` above 1: a GPU
    that onnxruntime lacks or cannot start is then one error here, before the port is bound, instead of
    workers that fail at start, one after another, as uvicorn starts them again. A child, so that this
    supervising process holds no GPU memory."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from nextword.runtime.sessions import device_providers

    device_providers(device)  # no CUDA provider at all: said without starting a process
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_load_on_device, path, device, limits).result()


def _load_on_device(path: str, device: str, limits: LoadLimits | None) -> None:
    from nextword.runtime import load

    load(path, device=device, limits=limits)


# a --workers worker's start (its model loaded and probed) before uvicorn gives up on it, and how long a
# worker may not answer uvicorn's ping before it is killed as hung (a stop waits that long for one)
WORKER_READY_SECONDS = 60

# the room a worker's metrics take in the shared folder, with a margin: prometheus_client maps four files
# of 64 KiB a worker and doubles one when its series outgrow it
METRICS_ROOM_PER_WORKER = 1 << 20


def _check_room(folder: str, workers: int, given: bool) -> None:
    """Refuse a metrics folder without room for ``workers`` at the start (``given``: the caller's
    ``$PROMETHEUS_MULTIPROC_DIR``, else one the server made in the temporary folder): prometheus_client
    maps its files, and a worker that writes a page the disk has no room for dies of SIGBUS, unseen,
    started again by uvicorn, forever."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # not measurable here: the workers' own errors say what is wrong
    if free < workers * METRICS_ROOM_PER_WORKER:
        where = f"${MULTIPROCESS_ENV} {folder}" if given else f"the temporary folder {tempfile.gettempdir()}"
        elsewhere = f"${MULTIPROCESS_ENV}" if given else "TMPDIR"
        raise ValueError(
            f"{where} has {free:,} bytes free, and --workers {workers} keep their metrics there (they "
            f"need {workers * METRICS_ROOM_PER_WORKER:,} to start, more as they run): free some space, "
            f"or point {elsewhere} at a disk with room"
        )


@contextlib.contextmanager
def _shared_metrics_folder(workers: int) -> Iterator[None]:
    """``$PROMETHEUS_MULTIPROC_DIR`` for the workers (each writes its metrics there, a scrape reads them
    all): a fresh folder, removed when the server stops. A folder the caller set is used as it is."""
    if os.environ.get(MULTIPROCESS_ENV):
        given = os.environ[MULTIPROCESS_ENV]
        # each worker writes there as it starts: a folder it cannot write made every worker fail, and
        # uvicorn start it again, forever, with a traceback each time
        if not os.path.isdir(given) or not os.access(given, os.W_OK | os.X_OK):
            why = "is not a folder" if not os.path.isdir(given) else "is a folder this user cannot write"
            raise ValueError(
                f"${MULTIPROCESS_ENV} {given} {why}, and --workers keep their metrics there: create it, "
                "point it at a writable folder, or unset it (the server then makes its own)"
            )
        _check_room(given, workers, given=True)
        logger.info("the workers' metrics are kept in $%s: %s", MULTIPROCESS_ENV, given)
        yield
        return
    folder = tempfile.mkdtemp(prefix="nextword-metrics-")
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        _check_room(folder, workers, given=False)
        logger.info("the workers' metrics are kept in %s until the server stops", folder)
        yield
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _warn_if_public(config: ServeConfig) -> None:
    if config.loopback:
        return
    where = f"[{config.host}]" if ":" in config.host else config.host  # [::], as a URL writes it
    if config.keys and config.ssl_certfile is not None:
        logger.warning("listening on %s: the server is reachable from the network", where)
    elif config.keys:
        logger.warning(
            "listening on %s: the server is reachable from the network, over plain HTTP, where its API "
            "key travels in clear text; serve HTTPS (--ssl-certfile, --ssl-keyfile) or behind a proxy "
            "that does",
            where,
        )
    else:
        logger.warning(
            "listening on %s: the server is reachable from the network, and anyone who reaches it can "
            "use the model; ask for a key with --api-key (or $NEXTWORD_API_KEY), or put the server "
            "behind a proxy that authenticates",
            where,
        )
