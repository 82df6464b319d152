"""The server's access log: one line per request, written when its answer has ended, so that it holds
the status the client got (499: it went away before an answer began) and the time the answer took.

uvicorn's own access line is written when the answer *starts*: a stream's shows 200 and no duration,
and a whole completion whose client left is not logged at all. ``nextword serve`` turns that one off
and writes this one, under its own logger (``nextword.serve.access``: standard output, dropped at
``--log-level warning``)::

    203.0.113.9 - "POST /v1/completions HTTP/1.1" 200 1234.5 ms cmpl-0c5e...

The last field is the answer's id, also sent to the client as ``X-Request-ID`` (as OpenAI's API does;
its clients show it as ``request_id``): a completion's own id, else ``req-`` and 32 hex digits made
for the request (:func:`new_request_id`), so a client's report of a failure finds its line.

Nothing a client sends reaches the line unchecked: a client address that is not an IP address
(``X-Forwarded-For`` from a trusted proxy can say anything) is percent-encoded, so it holds no quote or
space to forge the rest of a line, and a query string (which no endpoint takes) is written ``?...``,
so a key sent there, as a value or as a name, stays out.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from typing import Any
from urllib.parse import quote

__all__ = [
    "ACCESS",
    "ANSWERED",
    "CLIENT_LEFT",
    "REFUSALS_STATE_KEY",
    "REQUEST_ID",
    "STREAM_END",
    "access_line",
    "new_request_id",
    "refused_line",
    "request_line",
]

ACCESS = logging.getLogger("nextword.serve.access")
REQUEST_ID = (
    "nextword_request_id"  # the key of scope["state"] naming the answer (req-..., or a route's cmpl-...)
)
STREAM_END = "nextword_stream_end"  # and to say how a stream that did not run to its end stopped
CLIENT_LEFT = "nextword_client_left"  # set by the HTTP protocol (serve/http_guard.py) once the client left
# set by the HTTP protocol when it answered a request the app was running itself (a malformed chunked
# body: 400), as (status, why): the status the client got, and the app's own answer went nowhere
ANSWERED = "nextword_answered"
# Where create_app's lifespan puts the function that counts the requests the HTTP protocol refuses before
# they reach the app (serve/http_guard.py; its argument: the status), in the state uvicorn hands to every
# connection: those requests pass no middleware, yet have their access line (refused_line) and their count
REFUSALS_STATE_KEY = "nextword.refusals"


def new_request_id() -> str:
    """A request's id until its route names the answer otherwise: ``req-`` and 32 hex digits."""
    return f"req-{uuid.uuid4().hex}"


def request_line(scope: dict[str, Any]) -> str:
    """``client - "METHOD PATH HTTP/1.1"`` of ``scope``, read before routing rewrites its path."""
    path = scope.get("raw_path", b"").decode("latin-1") or scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        path += "?..."
    method, version = scope.get("method", "?"), scope.get("http_version", "1.1")
    return f'{_client(scope.get("client"))} - "{method} {path.replace(chr(34), "%22")} HTTP/{version}"'


def access_line(request: str, scope: dict[str, Any], status: int, seconds: float) -> str:
    """The line of a request (:func:`request_line`) whose answer ended with ``status`` after ``seconds``;
    the answer's id, and how a stream that did not run to its end stopped (its status is the 200 sent
    when it began)."""
    parts = [f"{request} {status} {seconds * 1000:.1f} ms"]
    state = scope.get("state")
    said = state if isinstance(state, dict) else {}
    if isinstance(said.get(REQUEST_ID), str):
        parts.append(said[REQUEST_ID])
    if isinstance(said.get(STREAM_END), str):
        parts.append(f"({said[STREAM_END]})")
    return " ".join(parts)


def refused_line(client: Any, status: int, why: str) -> str:
    """The line of a connection refused before a request was read whole (serve/http_guard.py: a head
    over the cap or too slow), which never reached the app."""
    return f'{_client(client)} - "(request not read)" {status} ({why})'


def _client(client: Any) -> str:
    """``host`` or ``host:port`` (a forwarded client has port 0: the host alone), the host percent-encoded
    in ``(not an address: ...)`` when it is not an IP address; ``-`` when there is none (a Unix socket)."""
    if not client:
        return "-"
    host, port = str(client[0]), client[1] if len(client) > 1 else 0
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"(not an address: {quote(host[:64], safe='')})"  # percent-encoded: no quote, no space
    shown = f"[{address}]" if address.version == 6 and port else str(address)
    return f"{shown}:{port}" if port else shown
