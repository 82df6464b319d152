"""nextword's HTTP server: OpenAI-compatible completions with continuous batching, next-word
suggestions, scoring, and a web page to try the model (``pip install "nextword[serve]"``).

    >>> from nextword.serve import ServeConfig, serve
    >>> serve(ServeConfig(model="small.onnx", port=8000))   # what `nextword serve` runs

or mount :func:`create_app` in any ASGI server. From a notebook, or any program that goes on running while
it serves, :func:`start` serves on a thread of its own until ``stop()``:

    >>> with start(ServeConfig(model="small.onnx", port=0)) as server:
    ...     print(server.url)   # http://127.0.0.1:PORT; stopped as the block ends

and ``await serve_async(config)`` serves in a running event loop until it is cancelled. The framework
(FastAPI, uvicorn) is imported only when an app is created or served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServeConfig, served

if TYPE_CHECKING:
    from fastapi import FastAPI

    from nextword.runtime import NextWordModel

    from .background import RunningServer

__all__ = [
    "INSTALL_HINT",
    "RunningServer",
    "ServeConfig",
    "create_app",
    "require_framework",
    "serve",
    "serve_async",
    "start",
]

# pip's form; require_framework() names the installer of the environment it runs in (pipx, uv)
INSTALL_HINT = 'install the server extra: pip install "nextword[serve]"'


def require_framework() -> None:
    """Raise :class:`~nextword.train.MissingExtraError` naming the server extra when FastAPI, uvicorn or
    prometheus_client does not import (a runtime-only install): a clear message instead of
    ``ModuleNotFoundError``."""
    from nextword.train import install_command, require

    hint = f"install the server extra: {install_command('nextword[serve]')}"
    require("serving", ("fastapi", "uvicorn", "prometheus_client"), hint)


def create_app(config: ServeConfig | None = None, model: NextWordModel | None = None) -> FastAPI:
    """The server as an ASGI app (FastAPI), to run with any ASGI server; ``nextword serve`` runs it
    with uvicorn (:func:`serve`).

    ``config`` None is ``ServeConfig()``. Without ``model``, ``config.model_path`` (``config.model``,
    else ``$NEXTWORD_MODEL``, else the bundled model) is loaded here, on ``config.device``, so that a bad
    file fails before a port is bound; a ``model`` given is served as it is (its own device and session
    options). Raises :class:`~nextword.runtime.errors.WrongTypeError` for a ``config`` that is not a
    :class:`ServeConfig` or a ``model`` that is not a loaded model (a path goes in
    ``ServeConfig(model=path)``); ``ValueError`` for a ``device`` other than ``cpu`` with a ``model``;
    :class:`~nextword.runtime.ModelFileError` (:class:`~nextword.runtime.ModelLimitError` among them)
    for a file that cannot be served; :class:`~nextword.train.MissingExtraError` without the ``serve``
    extra. More: :func:`nextword.serve.app.create_app`."""
    served(config, model)  # a wrong type is said before the framework is imported
    require_framework()
    from .app import create_app as _create_app

    return _create_app(config, model)


def serve(config: ServeConfig | None = None, model: NextWordModel | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM on ``config.host`` and ``config.port`` with uvicorn; then new
    generations are refused and running ones get ``config.shutdown_timeout`` seconds to finish.

    ``config`` and ``model`` as in :func:`create_app`; with ``config.workers > 1`` each worker process
    loads ``config.model_path`` itself. Raises what :func:`create_app` raises, and ``ValueError`` for a
    ``model`` with ``workers > 1`` or TLS files that cannot be used;
    :class:`~nextword.serve.server.AddressUnavailableError` (an ``OSError``) for an address that cannot
    be bound; ``RuntimeError`` inside a running event loop (a notebook: use :func:`start` there). More:
    :func:`nextword.serve.server.serve`."""
    served(config, model)
    require_framework()
    from .server import serve as _serve

    _serve(config, model)


def start(config: ServeConfig | None = None, model: NextWordModel | None = None) -> RunningServer:
    """Serve on a thread of this process and return once the server listens: a
    :class:`~nextword.serve.background.RunningServer` with the ``url`` it answers on, until its
    ``stop()`` or the end of a ``with`` block. For a notebook, or any program that goes on running.

    ``config`` and ``model`` as in :func:`create_app`; one process: ``ValueError`` for ``workers`` other
    than 1. Raises what :func:`serve` raises for a bad setting, a model file or a port in use, here, before
    it returns. More: :func:`nextword.serve.background.start`."""
    served(config, model)
    require_framework()
    from .background import start as _start

    return _start(config, model)


async def serve_async(config: ServeConfig | None = None, model: NextWordModel | None = None) -> None:
    """Serve in the running event loop until cancelled (async code); the cancellation stops the server
    and is raised again once its port is free. ``config`` and ``model`` as in :func:`start`, which raises
    the same errors. More: :func:`nextword.serve.background.serve_async`."""
    served(config, model)
    require_framework()
    from .background import serve_async as _serve_async

    await _serve_async(config, model)


def __getattr__(name: str) -> Any:
    if name == "RunningServer":  # its module imports uvicorn
        require_framework()
        from .background import RunningServer

        return RunningServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
