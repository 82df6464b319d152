"""The caps that are not about one parameter: request body size and generation requests in flight."""

from __future__ import annotations

import threading
from typing import Any

from .errors import APIError, send_error

__all__ = ["BodySizeLimit", "Slots"]


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is read in full.

    The declared ``Content-Length`` is checked before anything is read; a body sent in chunks (no
    declared length) is read up to the cap and refused as soon as it passes it. ``send`` is passed
    through untouched: it carries every event of a stream.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        if declared is not None or scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)  # the server holds the body to its declared length
            return
        # A body sent in chunks, of unknown length: read it up to the cap, then hand it on.
        messages, seen = [], 0
        while True:
            message = await receive()
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
        await send_error(send, 413, message)


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
