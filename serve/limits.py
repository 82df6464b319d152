"""The caps that are not about one parameter: request body size and generation requests in flight."""

from __future__ import annotations

import json
import threading
from typing import Any

from .errors import APIError
from .schemas import error_body

__all__ = ["BodySizeLimit", "Slots"]


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is read in full.

    The declared ``Content-Length`` is checked first; a body sent in chunks is counted as it arrives.
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
        seen = 0
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(seen)
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge as exc:
            if not started:
                await self._refuse(send, exc.size)

    async def _refuse(self, send: Any, size: int) -> None:
        message = (
            f"the request body has {size} bytes or more; this server takes at most {self.max_bytes} "
            "(nextword serve --max-body-bytes)"
        )
        body = json.dumps(error_body(message, "invalid_request_error")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class Slots:
    """A count of generation requests in flight, capped at ``limit`` (``--max-streams``)."""

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
                    f"this server is already generating for {self.limit} requests, its cap "
                    "(nextword serve --max-streams); retry shortly",
                    kind="rate_limit_error",
                )
            self.used += 1

    def release(self) -> None:
        with self._lock:
            self.used -= 1
