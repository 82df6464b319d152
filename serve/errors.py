"""Error answers: one JSON shape (OpenAI's) for bad values, bad types, caps and server states."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .schemas import error_body

__all__ = ["APIError", "install_error_handlers"]

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error answer: HTTP ``status``, a message that says what to change, and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.message, self.kind, self.param), status_code=self.status)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with :func:`error_body` JSON instead of the framework's own shapes."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        return APIError(422, _describe(first), _param(first)).response()

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return APIError(exc.status_code, str(exc.detail)).response()


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "function-after", "function-before"}


def _param(error: dict[str, Any]) -> str | None:
    # loc is ("body", "temperature") or ("body", "prompt", 2); the body itself is ("body",)
    # a union adds the member it tried: ("body", "prompt", "list[str]")
    loc = [str(part) for part in error.get("loc", ()) if part != "body" and str(part) not in _TYPE_TAGS]
    loc = [part for part in loc if "[" not in part]
    return ".".join(loc) or None


def _describe(error: dict[str, Any]) -> str:
    """One sentence from a pydantic error: the parameter, what it must be, and what it got."""
    param = _param(error)
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown parameter {param!r}; see /docs for the parameters this endpoint takes"
    if kind == "missing":
        return f"{param} is required"
    if kind in ("json_invalid", "model_attributes_type", "dict_type") or param is None:
        return f"the request body must be a JSON object ({error.get('msg', 'invalid')})"
    value = error.get("input")
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."
    return f"{param}: {error.get('msg', 'invalid value').lower()}, got {shown}"
