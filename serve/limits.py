"""The caps that are not about one parameter: request body size and time, generation requests in flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from .access import REFUSALS_STATE_KEY
from .config import ACCEPTING_STATE_KEY, GUARD_STATE_KEY, GuardSettings
from .errors import APIError, send_error

__all__ = ["BodySizeLimit", "PublishGuard", "Slots"]


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is read in full, and one
    that has not arrived in full ``timeout`` seconds after its headers gets 408.

    The declared ``Content-Length`` is checked before anything is read; a body sent in chunks (no
    declared length) is refused as soon as it passes the cap. The body is read here, then handed on
    (it is at most ``max_bytes``), so that no route waits on a client that sends it slowly or never.
    ``send`` is passed through untouched: it carries every event of a stream.
    """

    def __init__(self, app: Any, max_bytes: int, timeout: float = 30.0) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        messages, seen = [], 0
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0))
            except asyncio.TimeoutError:
                await send_error(
                    send,
                    408,
                    f"the request body did not arrive within {self.timeout:g} s (nextword serve "
                    "--request-timeout)",
                    code="request_timeout",
                    headers=[(b"connection", b"close")],  # the rest of a slow body is not waited for
                )
                return
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._refuse(send, seen)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, size: int) -> None:
        message = (
            f"the request body has {size} bytes or more; this server takes at most {self.max_bytes} "
            "(nextword serve --max-body-bytes)"
        )
        await send_error(send, 413, message, "body_too_large")


class PublishGuard:
    """ASGI middleware: at start-up, puts the HTTP protocol's guard settings (``ServeConfig.guard``) in
    the lifespan state, which uvicorn hands to every connection (serve/http_guard.py), with ``refused``,
    what counts the requests the protocol refuses (``Metrics.refused``); everything else passes
    through."""

    def __init__(
        self,
        app: Any,
        settings: GuardSettings,
        refused: Callable[[int], None] | None = None,
        accepting: Callable[[], bool] | None = None,
    ) -> None:
        self.app, self.settings, self.refused, self.accepting = app, settings, refused, accepting

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and isinstance(scope.get("state"), dict):
            scope["state"][GUARD_STATE_KEY] = self.settings
            if self.refused is not None:
                scope["state"][REFUSALS_STATE_KEY] = self.refused
            if self.accepting is not None:
                scope["state"][ACCEPTING_STATE_KEY] = self.accepting
        await self.app(scope, receive, send)


class Slots:
    """A count of requests in flight that run the model (completions, suggestions, scores), capped at
    ``limit`` (``--max-streams``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take a slot; raises 429 when all are taken."""
        with self._lock:
            if self.used >= self.limit:
                raise APIError(
                    429,
                    f"this server already has {self.limit} requests in flight, its cap (nextword serve "
                    "--max-streams); retry shortly",
                    kind="rate_limit_error",
                    headers={"Retry-After": "1"},
                )
            self.used += 1

    def release(self) -> None:
        with self._lock:
            self.used -= 1
