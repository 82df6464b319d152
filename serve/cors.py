"""CORS (``--cors-origin``): Starlette's middleware, with its refusals of a preflight in the shape of
every other error answer (OpenAI's JSON, a ``code``) and a message that says what to change."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from nextword.runtime.errors import shorten

from .errors import APIError

__all__ = ["ALLOWED_METHODS", "Cors"]

ALLOWED_METHODS = ("GET", "HEAD", "POST")


class Cors(CORSMiddleware):
    """Starlette's ``CORSMiddleware`` for ``origins``, the methods the server's routes take, any
    header (the ``Authorization`` OpenAI's clients send), exposing ``Retry-After`` and ``X-Request-ID``.

    A preflight it refuses got Starlette's plain text (``Disallowed CORS origin``); it gets a 400
    ``cors_refused`` whose message names the origin or the method and the flag or list that allows them
    (a browser does not show it to the page; a developer reading the network panel sees the reason).
    An allowed origin's page may call from a public address to this server on a private one.
    """

    def __init__(self, app: Any, origins: list[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=list(ALLOWED_METHODS),
            allow_headers=["*"],
            expose_headers=["Retry-After", "X-Request-ID"],  # X-Request-ID: the access line's id
        )
        # A page on a public address calling a server on a private one (loopback, the LAN) asks first
        # (Private Network Access, Chrome); an origin listed in --cors-origin is one its operator chose,
        # so it may. Set here, not passed: Starlette's older releases take no such argument.
        self.allow_private_network = True

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        reasons = []
        if not self.is_allowed_origin(origin=request_headers["origin"]):
            origin = shorten(request_headers["origin"])
            reasons.append(f"origin {origin} is not one this server allows (nextword serve --cors-origin)")
        method = request_headers["access-control-request-method"]
        if method not in self.allow_methods:
            reasons.append(f"method {shorten(method)} is not one it takes ({', '.join(ALLOWED_METHODS)})")
        message = "CORS preflight refused: " + "; ".join(reasons or ["the request is not allowed"])
        kept = {k: v for k, v in answer.headers.items() if k not in ("content-type", "content-length")}
        return APIError(400, message, headers=kept, code="cors_refused").response()
