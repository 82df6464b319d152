"""Error answers: one JSON shape (OpenAI's) for bad values, bad types, caps and server states.

A request the server cannot take as sent (a value, a type, a parameter's name, a body that is not a
JSON object) gets 400 ``invalid_request_error``, as OpenAI's API answers it, so that OpenAI's clients
raise ``BadRequestError`` for all of them; ``code`` says which kind of mistake it is (:data:`CODES`).
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import typing
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from nextword.runtime.errors import ModelRunError, shorten
from nextword.runtime.terminal import safe_json

from .access import REQUEST_ID, request_line
from .bodies import BodyUnreadable, json_content, not_json_content
from .headers import COMMON_HEADERS
from .schemas import CompletionRequest, ScoreRequest, SuggestRequest, error_body

__all__ = [
    "CODES",
    "APIError",
    "UnexpectedErrors",
    "install_error_handlers",
    "model_not_found",
    "refusal",
    "send_error",
    "server_error",
]

logger = logging.getLogger(__name__)

CODES = {
    "invalid_value": "a value out of its range, over one of the server's caps, or else not one the "
    "parameter takes; or an integer of more digits than the server reads (Python's limit: 4,300 by default)",
    "unsupported_value": "a value OpenAI's API takes that this server does not support (presence_penalty, "
    "frequency_penalty, best_of, logit_bias, suffix other than their neutral values; token ids as the "
    "prompt)",
    "invalid_type": "a value of the wrong JSON type (JSON's types are not converted)",
    "unknown_parameter": "a parameter this endpoint does not take (a misspelt name, say)",
    "missing_required_parameter": "a parameter the endpoint needs is missing",
    "invalid_json": "the body is empty, is not UTF-8 JSON (a UTF-16 or UTF-32 body included), or is not a "
    "JSON object",
    "unsupported_content_type": "the body was not sent as content-type: application/json",
    "unsupported_content_encoding": "the body was sent compressed (a content-encoding such as gzip), "
    "which the server does not read",
    "invalid_api_key": "401: the request carries no API key, or not one this server takes (nextword "
    "serve --api-key); send Authorization: Bearer KEY",
    "model_not_found": "the request names a model this server does not serve",
    "rate_limit_exceeded": "every --max-streams slot is taken; retry after Retry-After seconds",
    "body_too_large": "413: the body is over the server's cap (nextword serve --max-body-bytes)",
    "request_timeout": "408: the request's head or body did not arrive in time (--request-timeout)",
    "headers_too_large": "431: the request line and headers are over the cap (--max-header-bytes)",
    "invalid_http": "400: the bytes sent are not HTTP/1.1 or 1.0",
    "cors_refused": "400: a CORS preflight from an origin (or for a method) the server does not allow",
    "host_not_allowed": "400: the request's Host is not a name this server answers for (nextword serve "
    "--allowed-host; against DNS rebinding)",
    "model_file_changed": "409: GET /model.onnx, when the file on disk no longer holds the bytes the "
    "server loaded (restart the server to serve it)",
    "model_download_off": "404: GET /model.onnx of a server started with --no-model-download",
}
"""The ``error.code`` of each answer that has one, and what it means (``null`` for the rest)."""
_STATUS_CODES = {400: "invalid_value", 429: "rate_limit_exceeded"}
# What a client is told of a model step that failed on this server: the details are in its log.
FAILED = "the model failed on this request (ModelRunError); see the server's log"


class APIError(Exception):
    """An error answer: HTTP ``status``, a message that says what to change, and the parameter at fault.

    ``code`` is one of :data:`CODES`; left out, it is the one of the status (a 400 is an
    ``invalid_value``, a 429 ``rate_limit_exceeded``), else null.
    """

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")
        self.headers = headers  # e.g. a 429's Retry-After
        self.code = code or _STATUS_CODES.get(status)

    def response(self) -> JSONResponse:
        body = error_body(self.message, self.kind, self.param, self.code)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


async def send_error(
    send: Any, status: int, message: str, code: str | None = None, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with an ``invalid_request_error`` straight through ASGI's ``send``: for middleware, which
    answers before any route (or FastAPI's handlers) is reached."""
    body = json.dumps(
        error_body(message, "invalid_request_error", None, code), separators=(",", ":")
    ).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def refusal(exc: ValueError, param: str | None = None) -> APIError:
    """The answer to a ``ValueError`` from the runtime: a 400 naming the problem, for a request it
    refused; but a model that failed while running (:class:`ModelRunError`, whose message starts with
    the file's path on this machine) is the server's fault: logged here, a 500 naming no path."""
    if isinstance(exc, ModelRunError):
        logger.error("the model failed on a request: %s", exc, exc_info=exc)
        return APIError(500, FAILED)
    return APIError(400, str(exc), param)


def model_not_found(asked: str, served: Sequence[str]) -> APIError:
    """The 404 for a request that names a model other than the one this server holds, by any of its
    names ``served`` (the reported id first), as vLLM and OpenAI answer it: code ``model_not_found``."""
    also = f", also accepted as {', '.join(map(repr, served[1:]))}" if len(served) > 1 else ""
    return APIError(
        404,
        f"model {shorten(asked)} is not served here: this server holds one model, {served[0]!r}{also} "
        "(GET /v1/models)",
        "model",
        code="model_not_found",
    )


def server_error(exc: BaseException) -> APIError:
    """The 500 of an error no handler expected: its type, none of its text (which may hold a path or
    a value of this machine); the details are in the server's log."""
    return APIError(500, f"the server failed on this request ({type(exc).__name__}); see the server's log")


class UnexpectedErrors:
    """ASGI middleware, the innermost: an error of a route that no handler expected becomes the 500 of
    :func:`server_error` here, inside the other middleware, so that it carries their headers (CORS, the
    security headers) and is counted like any answer; logged with its traceback. One raised after the
    answer began (a stream's) is raised on: the ASGI server closes the connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal began
            began = began or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if began:
                raise
            logger.exception("%s failed", request_line(scope))
            await server_error(exc).response()(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with :func:`error_body` JSON instead of the framework's own shapes."""

    _schema_without_framework_errors(app)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        taken = _parameters(getattr(request.scope.get("route"), "path", ""))
        first = _first(exc.errors(), taken)
        if _body_error(first) and not json_content(request):
            refused = not_json_content(request)
            return APIError(400, str(refused), code=refused.code).response()
        alike = [e for e in exc.errors() if _param(e) == _param(first)]
        unknown = [_param(e) or "" for e in exc.errors() if e.get("type") == "extra_forbidden"]
        message = _describe(first, alike, taken, unknown)
        return APIError(400, message, _param(first), code=_code(first)).response()

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _PARSE_FAILED:  # FastAPI could not decode the body
            if isinstance(exc.__cause__, BodyUnreadable):  # what the routes' body reader (bodies.py) refused
                return APIError(400, str(exc.__cause__), code=exc.__cause__.code).response()
            message = "the request body could not be read as JSON; send UTF-8 JSON (an object of parameters)"
            return APIError(400, message, code="invalid_json").response()
        message = str(exc.detail)
        path = _cut(request.url.path)  # a client's path, echoed: at most 80 characters of it
        if exc.status_code == 404 and message == "Not Found":  # no route: say which ones there are
            message = f"no {path} on this server; {ENDPOINTS}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and "Allow" in headers:
            headers["Allow"] = _allowed(headers["Allow"])
            message = f"{_cut(request.method)} is not allowed on {path}; use {headers['Allow']}"
        response = APIError(exc.status_code, message).response()
        response.headers.update(headers)  # a 405's Allow, for one
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # An error in a middleware itself (a route's reaches UnexpectedErrors first): Starlette answers
        # it outside every middleware, so the common headers are written here. Logged with its
        # traceback by the ASGI server, to which Starlette raises it again.
        logger.error("%s %s failed: %r", request.method, request.url.path, exc)
        response = server_error(exc).response()
        response.headers.update({name.decode(): value.decode() for name, value in COMMON_HEADERS})
        named = request.scope.get("state", {}).get(REQUEST_ID)  # given by RequestMetrics, if it ran
        if isinstance(named, str):
            response.headers["x-request-id"] = named
        return response


def _allowed(said: str) -> str:
    """A 405's ``Allow`` with HEAD beside GET: Starlette's (``said``) names the methods of the first
    route at the path, and the HEAD of a GET route of routes.py is a route of its own, so ``PUT
    /health`` was told ``GET`` alone. Every GET route here answers HEAD (routes.py's, web_assets' and
    Starlette's own), and RFC 9110's Allow lists every method the path takes."""
    methods = [method.strip() for method in said.split(",") if method.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return ", ".join(methods)


def _schema_without_framework_errors(app: FastAPI) -> None:
    """Drop from the OpenAPI schema the 422 that FastAPI lists for every route with parameters, in its
    own error shape: the handlers here answer a bad body with a 400 in :func:`error_body`'s shape (the
    routes that take one list it), and a path parameter (a model's id) cannot fail its type check."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = make()  # FastAPI's: builds the schema and keeps it as app.openapi_schema
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    answer = operation.get("responses", {}).get("422", {})
                    ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
                    if ref == "#/components/schemas/HTTPValidationError":
                        del operation["responses"]["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_PARSE_FAILED = "There was an error parsing the body"  # FastAPI's HTTPException detail
ENDPOINTS = (
    "it answers POST /v1/completions, /v1/suggest and /v1/score, and GET /v1/models, /health, /metrics, "
    "/ (a page), /docs (the API reference) and /model.onnx (the model file)"
)
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "function-after", "function-before"}


def _first(errors: Sequence[Any], taken: Sequence[str] = ()) -> dict[str, Any]:
    """The error to answer with: the first, or where a union's members all failed (``prompt`` is a
    string or a list of strings), the one that names an item (``prompt.1``: the list the client meant);
    for a missing parameter that an unknown one misspells (``promt``), the unknown one. ``taken``: the
    parameters of the endpoint asked."""
    if not errors:
        return {}
    if errors[0].get("type") == "missing":  # {"promt": ...}: the misspelt key says more than "required"
        missing = _param(errors[0])
        misspelt = [e for e in errors if e.get("type") == "extra_forbidden" and _meant(e, taken) == missing]
        if misspelt:
            return misspelt[0]
    first, head = errors[0], _param(errors[0])
    deeper = [e for e in errors if head and (_param(e) or "").startswith(head + ".")]
    return deeper[0] if deeper else first


# OpenAI's chat parameters that a client sends to /v1/completions, and what this server takes in their place
_CHAT_NAMES = {"messages": "prompt", "max_completion_tokens": "max_tokens"}

# the body each endpoint takes, for what an unknown parameter most likely meant
_BODIES: dict[str, type[BaseModel]] = {
    "/v1/completions": CompletionRequest,
    "/v1/suggest": SuggestRequest,
    "/v1/score": ScoreRequest,
}


@functools.cache
def _parameters(route: str) -> tuple[str, ...]:
    """The parameters the endpoint at path ``route`` (the route's own, not under ``--root-path``) takes,
    those of an object parameter written ``stream_options.include_usage``; none for another path."""
    body = _BODIES.get(route)
    return tuple(_fields(body)) if body else ()


def _fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The fields of ``model``, and of the models a field may hold (``StreamOptions | None``), dotted."""
    names = []
    for name, info in model.model_fields.items():
        names.append(prefix + name)
        for inner in typing.get_args(info.annotation) or (info.annotation,):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                names.extend(_fields(inner, f"{prefix}{name}."))
    return names


def _meant(error: dict[str, Any], taken: Sequence[str]) -> str | None:
    """The parameter of ``taken`` an unknown one most likely misspells (``promt``: ``prompt``), if one is
    close; one inside an object parameter (``stream_options.include_usages``) among that object's."""
    param = _param(error)
    if not param:
        return None
    parent = param.rpartition(".")[0]
    siblings = [t for t in taken if t != param and t.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(param, siblings, n=1, cutoff=0.8)
    return close[0] if close else None


def _unknown(error: dict[str, Any], taken: Sequence[str]) -> str:
    """What to say of a parameter this endpoint does not take: the endpoints that take it, else the one
    it most likely misspells."""
    param = _param(error)
    elsewhere = [route for route, body in _BODIES.items() if param in body.model_fields]
    if elsewhere:
        return f" (a parameter of {' and '.join(elsewhere)}, not of this endpoint)"
    if (ours := _CHAT_NAMES.get(param or "")) in taken:  # max_completion_tokens: max_tokens
        return f" (a parameter of chat completions, which this server does not serve; send {ours!r})"
    meant = _meant(error, taken)
    return f" (did you mean {meant!r}?)" if meant else ""


def _sent_instead(missing: str, unknown: Sequence[str]) -> str:
    """What follows "``missing`` is required" where the body holds, in its place, chat's ``messages`` or
    the text another endpoint requires (``text`` sent to /v1/suggest): what it is, and what to send."""
    for name in unknown:
        routes = [route for route, body in _BODIES.items() if name in body.model_fields]
        if _CHAT_NAMES.get(name) == missing:
            said = "a parameter of chat completions, which this server does not serve (it continues text)"
        elif routes and all(_BODIES[route].model_fields[name].is_required() for route in routes):
            said = f"the text of {' and '.join(routes)}, not of this endpoint"
        else:
            continue
        return f"; {name!r} is {said}: send the text as {missing}"
    return ""


def _param(error: dict[str, Any]) -> str | None:
    # loc is ("body", "temperature") or ("body", "prompt", 2); the body itself is ("body",)
    # a union adds the member it tried: ("body", "prompt", "list[str]")
    if error.get("type") == "json_invalid":  # ("body", character offset)
        return None
    loc = [str(part) for part in error.get("loc", ()) if part != "body" and str(part) not in _TYPE_TAGS]
    loc = [part for part in loc if "[" not in part]
    return _cut(".".join(loc)) or None  # a parameter's name may be a client's key of any length


def _cut(text: str, limit: int = 80) -> str:
    """``text`` (a client's) as an error answer echoes it: at most ``limit`` characters, then "..."."""
    return text if len(text) <= limit else text[:limit] + "..."


def _code(error: dict[str, Any]) -> str:
    """The ``error.code`` (one of :data:`CODES`) of an answer to pydantic's ``error``."""
    kind, param = error.get("type", ""), _param(error)
    if kind == "json_invalid" or (param is None and (kind == "missing" or _body_error(error))):
        return "invalid_json"  # unparsable, empty, or not an object
    if kind == "extra_forbidden":
        return "unknown_parameter"
    if kind == "missing":
        return "missing_required_parameter"
    if kind == "unsupported_value":  # a validator's own PydanticCustomError (token ids as the prompt)
        return kind
    return "invalid_type" if kind.endswith("_type") else "invalid_value"


def _body_error(error: dict[str, Any]) -> bool:
    """Whether pydantic's ``error`` is about the body as a whole (empty, or not an object)."""
    return _param(error) is None and error.get("type") in ("model_attributes_type", "dict_type")


def _describe(
    error: dict[str, Any],
    alike: Sequence[dict[str, Any]] = (),
    taken: Sequence[str] = (),
    unknown: Sequence[str] = (),
) -> str:
    """One sentence from a pydantic error: the parameter, what it must be, and what it got. ``alike``:
    the errors about the same parameter (a union's members: each says what it would have taken);
    ``taken``: the parameters of the endpoint asked; ``unknown``: those the body holds that it does
    not take (chat's ``messages`` in place of a missing ``prompt`` is named)."""
    param = _param(error)
    kind = error.get("type", "")
    if kind == "json_invalid":  # loc is ("body", character offset)
        offset = next((part for part in error.get("loc", ()) if isinstance(part, int)), None)
        where = f" at character {offset}" if offset is not None else ""
        # Python's json leaves some reasons ending in " at" ("Invalid control character at")
        reason = str((error.get("ctx") or {}).get("error", "invalid JSON")).removesuffix(" at")
        return f"the request body is not valid JSON: {reason}{where}"
    if kind == "missing" and param is None:
        return "the request body is empty; send a JSON object of parameters (see /docs)"
    if kind == "extra_forbidden":
        guess = _unknown(error, taken)
        return f"unknown parameter {param!r}{guess}; see /docs for the parameters this endpoint takes"
    if kind == "missing":
        return f"{param} is required{_sent_instead(param or '', unknown)}"
    if kind == "value_error" and param is None:  # a check of the body as a whole (its keys)
        return "the request body's " + str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if param is None:
        return f"the request body must be a JSON object ({error.get('msg', 'invalid')})"
    value = error.get("input")
    shown = _cut(_shown(value))
    if kind in ("model_attributes_type", "dict_type"):  # logit_bias, stream_options: "x", [1]
        return f'{param} must be a JSON object ({{"name": value, ...}}) or null, got {shown}'
    wants = [str(e.get("msg", "invalid value")).removeprefix("Value error, ") for e in alike or [error]]
    if len(wants) > 1 and all(w.startswith("Input should be ") for w in wants):
        wants = [wants[0], *(w.removeprefix("Input should be ") for w in wants[1:])]
    message = " or ".join(dict.fromkeys(wants))
    return f"{param}: {message[:1].lower() + message[1:]}, got {shown}"


_JSON_WORDS = {True: "true", False: "false", None: "null"}


def _shown(value: Any) -> str:
    """A value of the body as a message shows it: a list or an object as JSON, as the client wrote it
    (``{"x": true}``, ``[NaN]``; controls, bidirectional marks and lone surrogates escaped, as
    ``\\u202e``), ``true``/``false``/``null`` so, and a string or a number as the runtime's messages
    show them (``'x'``, ``1.5``)."""
    if isinstance(value, list | dict):
        return safe_json(json.dumps(value, ensure_ascii=False))
    return _JSON_WORDS[value] if isinstance(value, bool | None) else repr(value)
