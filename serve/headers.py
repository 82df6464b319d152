"""Security headers, as defence in depth: no response may be read as another type than it says, none
sends the address of the page it came from elsewhere, and the two pages (the page at / and the API
reference at /docs) run only the scripts this server serves, in no other site's frame.

- every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (the page and
  /docs link and fetch nothing of another origin, and nothing of this server reads a ``Referer``) and
  ``X-Frame-Options: DENY`` (``frame-ancestors`` for the browsers that predate CSP);
- the page and /docs: a ``Content-Security-Policy`` of their own (:func:`page_policy`,
  :func:`docs_policy`), set by their routes, which allows scripts from this origin only, plus the
  inline scripts of the HTML served, by their SHA-256 (computed from that HTML, never written down
  here): the page's own module script, the one that adds the slash under ``--root-path``, Swagger UI's
  set-up script. That HTML is built from the package's files and the operator's ``--root-path`` alone,
  never from a request or a model file. The page starts its worker from this origin (``worker-src
  'self'``; onnxruntime-web needs no ``blob:`` there) and may compile WebAssembly (``'wasm-unsafe-eval'``,
  not ``'unsafe-eval'``): chromium holds the worker to the policy of its own script (none), but a
  browser that holds it to the page's needs that to run onnxruntime-web;
- any other HTML answer: a policy that allows nothing (:data:`FALLBACK_POLICY`).

No ``Strict-Transport-Security``: HSTS binds a whole host name, every port and service on it, for as
long as its ``max-age``, which is the decision of whoever runs the host (or the proxy in front), not of
a server that may be answering on a test port with ``--ssl-certfile``.

The middleware sits outside the CORS middleware and the caps, so that CORS preflights and the refusals
(401, 413, 429) carry the headers too. The HTTP protocol's guards (408, 431; serve/http_guard.py)
write :data:`COMMON_HEADERS` into their own answers, as does the 500 of an error raised by a middleware
(Starlette answers it outside every middleware; a route's error is answered inside them, by
``errors.UnexpectedErrors``). One kind of answer carries none: uvicorn's own to a malformed request, a
short text body.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "COMMON_HEADERS",
    "FALLBACK_POLICY",
    "SecurityHeaders",
    "docs_policy",
    "inline_scripts",
    "page_policy",
    "script_hash",
]

COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
CSP = b"content-security-policy"
# for an HTML answer whose route set no policy: nothing may load, run or frame it
FALLBACK_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

# what both pages share, besides default-src 'none' and their scripts: nothing from elsewhere, no
# plugins, no <base>, forms sent here only, no framing
_BOTH = {
    "style-src": ("'self'",),
    "img-src": ("'self'", "data:"),  # the page's empty icon (data:,), Swagger UI's icons in its stylesheet
    "connect-src": ("'self'",),  # the API, model.onnx, the WebAssembly, /openapi.json
    "object-src": ("'none'",),
    "base-uri": ("'none'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}

# an inline script: a <script> element without a src attribute, and what it holds up to its end tag
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)


def script_hash(source: str) -> str:
    """The CSP source expression that allows an inline script: ``'sha256-…'`` of its UTF-8 text,
    exactly as it stands between ``<script>`` and ``</script>``."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def inline_scripts(html: str) -> list[str]:
    """The text of each inline ``<script>`` of ``html``, in order (those with a ``src`` left out)."""
    return [match.group(1) for match in _INLINE_SCRIPT.finditer(html)]


def _policy(html: str, *allowed: str, workers: bool = False) -> str:
    """A page's policy: scripts from this origin, ``allowed`` and the inline scripts of ``html`` by hash
    (each once); its workers from this origin where it has ``workers``; then :data:`_BOTH`."""
    hashes = dict.fromkeys(script_hash(script) for script in inline_scripts(html))
    directives = {"default-src": ("'none'",), "script-src": ("'self'", *allowed, *hashes)}
    if workers:
        directives["worker-src"] = ("'self'",)
    directives.update(_BOTH)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


@functools.lru_cache(maxsize=32)
def page_policy(html: str) -> str:
    """The ``Content-Security-Policy`` of the page at / as served in ``html``: its inline scripts by
    hash, WebAssembly for "run in this browser", its worker from this origin."""
    return _policy(html, "'wasm-unsafe-eval'", workers=True)


@functools.lru_cache(maxsize=32)
def docs_policy(html: str) -> str:
    """The ``Content-Security-Policy`` of the API reference at /docs as served in ``html``: Swagger UI's
    bundle from this origin and its inline set-up script by hash."""
    return _policy(html)


class SecurityHeaders:
    """ASGI middleware: adds :data:`COMMON_HEADERS` to every HTTP response, and :data:`FALLBACK_POLICY`
    to an HTML one without a ``Content-Security-Policy``; a header the app set itself is kept."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message.get("headers") or [])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's raw headers with the common ones it lacks (and the fallback policy for HTML)."""
    headers = list(headers)
    present = {name.lower() for name, _ in headers}
    headers.extend(header for header in COMMON_HEADERS if header[0] not in present)
    if CSP not in present and any(
        name.lower() == b"content-type" and value.lower().startswith(b"text/html") for name, value in headers
    ):
        headers.append((CSP, FALLBACK_POLICY.encode("ascii")))
    return headers
