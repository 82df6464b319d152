"""API keys, checked without the web framework (``ServeConfig`` imports this, and runs where FastAPI is
not installed): what a key may be, and which paths need one. :mod:`nextword.serve.auth` enforces them."""

from __future__ import annotations

import re
from typing import Any

from nextword.runtime.errors import WrongTypeError

__all__ = ["ENV_KEY", "MAX_KEY_CHARS", "check_keys", "guarded", "route_path"]

ENV_KEY = "NEXTWORD_API_KEY"  # one key, read when the config gives none (kept out of `ps` and shell history)
MAX_KEY_CHARS = 1024
_KEY = re.compile(r"[\x21-\x7e]+", re.ASCII)  # what an HTTP header carries as it is: visible ASCII, no space


def check_keys(value: object, origin: str = "api_keys") -> tuple[str, ...]:
    """The keys checked: a key, or a list or tuple of them, each 1 to 1024 visible ASCII characters (a
    header carries no space and nothing else); ``()`` for none. ``origin`` names where they came from in
    the message (``$NEXTWORD_API_KEY``). A key that is not a ``str``, or ``value`` that is neither a key
    nor a list or tuple, is a :class:`~nextword.runtime.errors.WrongTypeError`."""
    keys = [value] if isinstance(value, str) else value
    if not isinstance(keys, (list, tuple)):
        raise WrongTypeError(f"{origin} must be an API key or a list of them, got {type(value).__name__}")
    for key in keys:
        if not (isinstance(key, str) and len(key) <= MAX_KEY_CHARS and _KEY.fullmatch(key)):
            # the key itself is never shown: it is a secret, and may sit in a log
            shown = f"{len(key)} characters" if isinstance(key, str) else type(key).__name__
            raise (ValueError if isinstance(key, str) else WrongTypeError)(
                f"{origin} has a key that is not 1 to {MAX_KEY_CHARS} visible ASCII characters ({shown}): "
                "a key travels in an HTTP header (Authorization: Bearer KEY), which carries no spaces, "
                'line breaks or other characters; generate one with: python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"'
            )
    return tuple(dict.fromkeys(keys))


def guarded(path: str) -> bool:
    """Whether a request for ``path`` (after the root path) needs a key."""
    return path == "/model.onnx" or path == "/v1" or path.startswith("/v1/")


def route_path(scope: dict[str, Any]) -> str:
    """The request's path without the root path, as routing sees it (uvicorn puts the prefix a proxy
    stripped, ``--root-path``, in front of the path)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path
