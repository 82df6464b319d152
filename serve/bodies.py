"""Reading a request's JSON body: UTF-8 only, and a body that cannot be read says why.

``json.loads`` of bytes guesses UTF-16 and UTF-32 too, and its other failures (an integer past
Python's limit on digits, nesting past its recursion limit) came out as "could not be read". The
routes with a JSON body read it through :class:`JSONRoute` instead: UTF-8 (a UTF-8 byte order mark in
front is ignored, as RFC 8259 lets a parser do), each failure a :class:`BodyUnreadable` that names it.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

__all__ = ["BodyUnreadable", "JSONRoute", "json_content", "not_json_content", "read_json"]

# Byte order marks of the encodings json.loads would guess, longest first (UTF-32's starts as UTF-16's)
_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SEND = "; send the body as UTF-8 JSON"


class BodyUnreadable(ValueError):
    """A body the server does not read, with what is wrong and what to send; ``code`` is the answer's
    ``error.code`` (one of ``nextword.serve.errors.CODES``)."""

    def __init__(self, message: str, code: str = "invalid_json") -> None:
        super().__init__(message)
        self.code = code


def read_json(body: bytes) -> Any:
    """The JSON value of ``body``: UTF-8 text, a UTF-8 byte order mark in front ignored. Raises
    :class:`BodyUnreadable` for a body that is not UTF-8 or that Python cannot hold, and
    ``json.JSONDecodeError`` (with its position) for one that is not JSON."""
    for mark, encoding in _MARKS:
        if body.startswith(mark):
            raise BodyUnreadable(
                f"the request body is {encoding} (it starts with {encoding}'s byte order mark){_SEND}"
            )
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise BodyUnreadable(
            f"the request body is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start} "
            f"({exc.reason}; Latin-1 or another encoding?){_SEND}"
        ) from None
    if "\x00" in text:  # JSON allows no NUL, in a string or out of one; UTF-16 and UTF-32 are full of them
        raise BodyUnreadable(
            f"the request body holds a NUL byte (offset {body.index(0)}), which JSON does not allow (UTF-16 "
            f"and UTF-32 text without a byte order mark has them){_SEND}"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise  # FastAPI answers it as invalid JSON, at its position
    except ValueError:  # json.loads' other one: an integer past int()'s limit on digits
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        raise BodyUnreadable(
            f"the request body holds an integer of more than {limit:,} digits, more than the server reads "
            "(Python's limit on an integer's digits); no parameter takes a number that long",
            "invalid_value",
        ) from None
    except RecursionError:
        raise BodyUnreadable(
            "the request body nests arrays or objects deeper than the server reads (Python's recursion "
            "limit); no parameter takes more than a list of strings or an object of values"
        ) from None


def json_content(request: Request) -> bool:
    """Whether ``request`` says its body is JSON (``application/json``, or an ``application/...+json``
    type), as FastAPI reads it."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def not_json_content(request: Request) -> BodyUnreadable:
    """The refusal of a body sent as something other than JSON."""
    given = request.headers.get("content-type") or "none"
    given = given if len(given) <= 80 else given[:80] + "..."  # as other values a client sent are cut
    return BodyUnreadable(
        f"send the request body as JSON with content-type: application/json (got {given})",
        "unsupported_content_type",
    )


class _UTF8Request(Request):
    async def json(self) -> Any:
        # FastAPI before 0.132 read a body sent without a content type as JSON, which a page on any site
        # may send without asking CORS first (a fetch of a Blob or an ArrayBuffer): refused here too
        if not json_content(self):
            raise not_json_content(self)
        encoding = self.headers.get("content-encoding", "").strip()
        if encoding.lower() not in ("", "identity"):  # never inflated: a small body may inflate to gigabytes
            shown_as = encoding if len(encoding) <= 40 else encoding[:40] + "..."
            raise BodyUnreadable(
                f"the request body is compressed (content-encoding: {shown_as}), which this server does "
                "not read: send it uncompressed",
                "unsupported_content_encoding",
            )
        if not hasattr(self, "_json"):
            self._json = read_json(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A route whose JSON body is read by :func:`read_json`; FastAPI answers its failure with an
    ``HTTPException`` caused by the :class:`BodyUnreadable` (``nextword.serve.errors`` answers it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_as_utf8(request: Request) -> Response:
            return await handler(_UTF8Request(request.scope, request.receive))

        return read_as_utf8
