"""The API keys' middleware: with ``--api-key`` (or ``$NEXTWORD_API_KEY``), the model's endpoints answer
only requests that carry one of the keys as OpenAI's clients send it, ``Authorization: Bearer KEY``.

What the keys guard is everything that runs or hands out the model: ``/v1/...`` (completions,
suggestions, scores, the model list) and ``/model.onnx``. ``/health`` stays open for load balancers and
process managers, and the page, its static files and the API reference hold nothing of the model (the
page asks for the key and sends it). A CORS preflight (``OPTIONS``) never carries credentials, so it is
let through to the CORS middleware, which answers it.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from typing import Any

from .errors import send_error
from .keys import guarded, route_path

__all__ = ["ApiKeys", "document_keys"]

_BEARER = re.compile(rb"bearer[ \t]+(\S+)[ \t]*", re.IGNORECASE)
_CHALLENGE = 'Bearer realm="nextword"'  # a 401's WWW-Authenticate: the scheme its clients send
_CHALLENGE_HEADER = {
    "description": f"the scheme to send the key with: {_CHALLENGE}",
    "required": True,
    "schema": {"type": "string"},
}


class ApiKeys:
    """ASGI middleware: a request for a guarded path without one of ``keys`` gets 401 with OpenAI's error
    shape (code ``invalid_api_key``) and ``WWW-Authenticate: Bearer``, before its body is read."""

    def __init__(self, app: Any, keys: Sequence[str]) -> None:
        self.app = app
        self.keys = [key.encode("ascii") for key in keys]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS" or not guarded(route_path(scope)):
            await self.app(scope, receive, send)
            return
        sent = None
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                sent = value
                break
        if sent is None:
            await _refuse(
                send,
                "this server needs an API key: send it as the header Authorization: Bearer KEY (OpenAI's "
                "clients: api_key=KEY, or $OPENAI_API_KEY); the page at / asks for it",
            )
            return
        match = _BEARER.fullmatch(sent)
        token = match.group(1) if match else b""
        # every key compared, each in constant time: neither the time nor the answer tells which came close
        accepted = [hmac.compare_digest(token, key) for key in self.keys]
        if not match or not any(accepted):
            why = (
                "the API key sent is not one this server takes"
                if match
                else "the Authorization header is not of the form Bearer KEY"
            )
            await _refuse(
                send,
                f"{why}: send Authorization: Bearer KEY with a key `nextword serve` was given (--api-key, "
                "else $NEXTWORD_API_KEY)",
            )
            return
        await self.app(scope, receive, send)


def document_keys(app: Any, required: bool = True) -> None:
    """Say in the app's OpenAPI schema that the guarded paths take a key (a bearer token) and answer 401
    without one: /docs then has an Authorize button, and its "Try it out" sends the key. Without
    ``required`` (a server started with no key) the key is optional there: a client generated from
    either server's schema has the same functions, and knows the 401 a keyed server gives."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "the key `nextword serve` was given (--api-key or $NEXTWORD_API_KEY)",
            }
            for path, operations in schema.get("paths", {}).items():
                if not guarded(path):
                    continue
                for operation in operations.values():
                    operation["security"] = [{"apiKey": []}] if required else [{}, {"apiKey": []}]
                    operation.setdefault("responses", {})["401"] = {
                        "description": "no API key, or not one this server takes (code invalid_api_key)"
                        + ("" if required else "; only from a server started with a key"),
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                        },
                        "headers": {"WWW-Authenticate": dict(_CHALLENGE_HEADER)},
                    }
        return app.openapi_schema

    app.openapi = openapi


async def _refuse(send: Any, message: str) -> None:
    await send_error(send, 401, message, "invalid_api_key", [(b"www-authenticate", _CHALLENGE.encode())])
