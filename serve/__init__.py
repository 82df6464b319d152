"""nextword's HTTP server: OpenAI-compatible completions with continuous batching, next-word
suggestions, scoring, and a web page to try the model (``pip install "nextword[serve]"``).

    >>> from nextword.serve import ServeConfig, serve
    >>> serve(ServeConfig(model="small.onnx", port=8000))   # what `nextword serve` runs

or mount :func:`create_app` in any ASGI server. The framework (FastAPI, uvicorn) is imported only when
an app is created or served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ServeConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

    from nextword.runtime import NextWordModel

__all__ = ["INSTALL_HINT", "ServeConfig", "create_app", "require_framework", "serve"]

INSTALL_HINT = 'install the server extra: pip install "nextword[serve]"'


def require_framework() -> None:
    """Raise :class:`~nextword.train.MissingExtraError` naming the server extra when FastAPI or uvicorn
    does not import (a runtime-only install): a clear message instead of ``ModuleNotFoundError``."""
    from nextword.train import require

    require("serving", ("fastapi", "uvicorn", "prometheus_client"), INSTALL_HINT)


def create_app(config: ServeConfig | None = None, model: NextWordModel | None = None) -> FastAPI:
    """The server as an ASGI app (see :func:`nextword.serve.app.create_app`)."""
    require_framework()
    from .app import create_app as _create_app

    return _create_app(config, model)


def serve(config: ServeConfig | None = None, model: NextWordModel | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM (see :func:`nextword.serve.server.serve`)."""
    require_framework()
    from .server import serve as _serve

    _serve(config, model)
