"""The server's pages and what they fetch beyond plain static files: the page at /, the model file itself
and onnxruntime-web's WebAssembly for the page's "run in this browser" mode, and the API reference at
/docs with its Swagger UI bundle. The two large assets are stored gzip-compressed in the package
(nextword-web's modules, onnxruntime-web's two small modules and Swagger UI's stylesheet are plain
static files under /static). Nothing comes from elsewhere: both pages work offline. docs/web.md says
why the files ship this way."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import RangeNotSatisfiable

from nextword.runtime.terminal import escape_surrogates

from .errors import APIError
from .headers import docs_policy, page_policy
from .routes import STATIC
from .state import ServerState

if TYPE_CHECKING:  # what importlib.resources.files gives (STATIC)
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = [
    "SWAGGER_BUNDLE",
    "WASM",
    "RangedStaticFiles",
    "byte_ranges",
    "not_modified",
    "page_html",
    "ranged_file",
    "router",
]

logger = logging.getLogger(__name__)
router = APIRouter()
WASM = "ort-wasm-simd-threaded.wasm"
SWAGGER_BUNDLE = "swagger-ui-bundle.js"
# Every file may be cached, and is asked after again before each use: a 304 costs a few hundred bytes,
# and a page never runs a model file an operator replaced, nor a WebAssembly build of an older package
# beside the newer one's modules (the URLs carry no version).
REVALIDATE = "no-cache"


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The page to try the model, for the prefix the app is served under (``--root-path``), with its
    Content-Security-Policy (serve/headers.py)."""
    html = page_html(request.scope.get("root_path", ""))
    return HTMLResponse(html, headers={"content-security-policy": page_policy(html)})


def page_html(root_path: str = "") -> str:
    """The page's HTML; under a path prefix (``root_path``), with a first script that adds the slash to
    the address when the page was asked for at the prefix without it.

    The page's URLs are relative (static/api.js, v1/completions, model.onnx), so that it works under any
    prefix; but at ``https://host/nextword`` (a proxy that strips /nextword and passes the rest on)
    they resolve against ``/``, outside the prefix. The server cannot answer with a redirect: the proxy
    sends it ``/`` for ``/nextword`` and for ``/nextword/`` alike, and a redirect would loop. A ``<base
    href>`` would fix the document's own URLs but not those the worker of "run in this browser" resolves
    against the address, and would break the page for a client that reaches the server directly.
    Rewriting the address (``history.replaceState``) before anything is loaded fixes them all."""
    html = _index_html()
    prefix = root_path.rstrip("/")
    if not prefix:
        return html
    quoted = json.dumps(prefix).replace("<", "\\u003c")  # a JavaScript string that cannot end the script
    script = (
        "\n  <script>/* nextword serve: at the prefix without its slash, add it (relative URLs) */\n"
        f'    if (location.pathname === {quoted}) history.replaceState(history.state, "", '
        f'{quoted} + "/" + location.search + location.hash);\n  </script>'
    )
    head = re.search(r"<head\b[^>]*>", html, re.IGNORECASE)
    at = head.end() if head else 0
    return html[:at] + script + html[at:]


def _index_html() -> str:
    """index.html as it is on disk: read again once its modification time changes (nextword upgraded,
    or an editable checkout moved on, under a running server), as the scripts it loads are (they are
    read at each request): an index.html kept from before broke the page, its scripts expecting
    elements it lacked."""
    try:
        stamp = os.stat(STATIC / "index.html").st_mtime_ns  # type: ignore[arg-type]
    except (OSError, TypeError):  # not a file of its own (a package in a zip): read once
        stamp = 0
    return _read_index_html(stamp)


@functools.lru_cache(maxsize=1)
def _read_index_html(stamp: int) -> str:
    """index.html, read for its modification time ``stamp``."""
    return (STATIC / "index.html").read_text(encoding="utf-8")


@router.api_route("/model.onnx", methods=["GET", "HEAD"], include_in_schema=False)
async def model_file(request: Request) -> Response:
    """The served model's .onnx file, for a page that runs it in the browser."""
    state: ServerState = request.app.state.nextword
    loaded = state.model_file
    if not state.config.model_download:  # its operator keeps the weights and the vocabulary on the server
        raise APIError(
            404,
            "this server keeps its model file to itself (started with --no-model-download, "
            "ServeConfig(model_download=False)): its API generates, suggests and scores on the server",
            code="model_download_off",
        )
    if loaded is None:
        raise APIError(404, "this server's model was not loaded from a file, so it cannot be downloaded")
    path = loaded.path
    name = escape_surrogates(path.name)  # a name whose bytes are not UTF-8: \xe9 in headers and JSON
    try:
        stat = path.stat()  # once: what is checked is what is sent
    except OSError:
        stat = None
    # a file of the same size but another time is read whole to compare: on a thread, as the event loop
    # goes on sending the words of other requests
    compare = loaded.unchanged
    ours = stat is not None and S_ISREG(stat.st_mode) and await anyio.to_thread.run_sync(compare, stat)
    if stat is None or not ours:
        # a page would run another model than the server's
        what = "is no longer on disk" if stat is None else "has changed on disk"
        logger.warning("GET /model.onnx refused: %s %s since the server loaded it", path, what)
        raise APIError(
            409,
            f"{name} {what} since this server loaded it, so it is not the model the server runs: "
            "restart the server to serve the file there (with --workers, SIGHUP reloads them)",
            code="model_file_changed",
        )
    return ranged_file(request.headers, path, stat, media_type="application/octet-stream", filename=name)


def ranged_file(headers: Mapping[str, str], path: Path, stat: os.stat_result, **options: Any) -> Response:
    """A file's response, to be revalidated before each use (:data:`REVALIDATE`): a 304 where the
    request's ``If-None-Match`` or ``If-Modified-Since`` says the client has it, else its ``Range``
    checked: a range that selects none of its bytes is a 416 with ``Content-Range: bytes */SIZE`` and the
    server's JSON error (:class:`APIError`)."""
    response = _RangedFile(path, stat_result=stat, **options)
    response.headers["cache-control"] = REVALIDATE
    if response.status_code == 200 and not_modified(headers, response.headers):
        return _not_modified_response(response.headers)
    asked, if_range = headers.get("range"), headers.get("if-range")
    # a Range is used only while If-Range (if any) still names this file (RFC 9110, 13.1.5)
    if (
        asked is not None
        and response.status_code == 200
        and (
            if_range is None
            or if_range in (response.headers.get("etag"), response.headers.get("last-modified"))
        )
    ):
        try:
            response.ignore_range = not byte_ranges(asked, stat.st_size, MAX_RANGES)
        except RangeNotSatisfiable:
            raise APIError(
                416,
                f"Range {asked[:80]!r} selects no bytes of {escape_surrogates(path.name)} ({stat.st_size} "
                "bytes); ask for "
                f"bytes=START-END within 0..{stat.st_size - 1}, or leave Range out for the whole file",
                "range",
                headers={"Content-Range": f"bytes */{stat.st_size}"},
            ) from None
    return response


class RangedStaticFiles(StaticFiles):
    """Static files whose ``Range`` requests are answered as :func:`ranged_file` answers them, and whose
    text (the page's scripts and stylesheets) goes gzip-compressed to a client that takes it."""

    def is_not_modified(self, response_headers: Any, request_headers: Any) -> bool:
        # Starlette asks before the representation is chosen, with the plain file's validators: a gzip
        # client then got a 304 bearing the plain ETag. Each representation is asked below instead.
        return False

    def file_response(
        self, full_path: Any, stat_result: os.stat_result, scope: Any, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        path, headers = Path(full_path), Headers(scope=scope)
        compressible = path.suffix in COMPRESSIBLE and stat_result.st_size >= MIN_COMPRESSED
        if compressible and "range" not in headers and _accepts_gzip(headers.get("accept-encoding", "")):
            return _gzipped_file(headers, path, stat_result, response)
        answer = ranged_file(headers, path, stat_result, status_code=status_code)
        if compressible:  # a cache keeps this answer for clients that do not take gzip
            answer.headers["vary"] = "accept-encoding"
        return answer


# The page's text files, sent gzip-compressed (nextword-web's modules: about a third of their size,
# docs/web.md); a file below a kilobyte gains too little to be worth it. A Range asks for the file's
# own bytes: answered uncompressed.
COMPRESSIBLE = frozenset({".js", ".mjs", ".css", ".html", ".json", ".txt", ".svg"})
MIN_COMPRESSED = 1024


def _gzipped_file(headers: Headers, path: Path, stat: os.stat_result, plain: Response) -> Response:
    """A static text file's gzip-compressed response: the plain file's validators, its ETag marked as
    another representation's, and a 304 where the client has that one."""
    kept = ("content-type", "last-modified")
    answer = {name: plain.headers[name] for name in kept if name in plain.headers}
    answer["cache-control"], answer["vary"] = REVALIDATE, "accept-encoding"
    answer["etag"] = plain.headers["etag"].removesuffix('"') + '-gz"'
    if not_modified(headers, answer):
        return _not_modified_response(answer)
    answer["content-encoding"] = "gzip"
    return Response(_gzip(str(path), stat.st_mtime_ns, stat.st_size), headers=answer)


@functools.lru_cache(maxsize=256)  # the package's files: each compressed once per version of it
def _gzip(path: str, mtime_ns: int, size: int) -> bytes:
    """A file's bytes gzip-compressed, with no time or name in the header (the same bytes each time)."""
    return gzip.compress(Path(path).read_bytes(), compresslevel=6, mtime=0)


class _RangedFile(FileResponse):
    """A file response that reads ``Range`` with :func:`byte_ranges` rather than Starlette's parser (which
    answers a malformed range with a plain-text 400, refuses a unit it does not know rather than ignoring
    it, and refuses a list of ranges when one of them is past the end)."""

    ignore_range = False  # a Range in another unit, or of too many ranges: 200, the whole file

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        return byte_ranges(http_range, file_size, MAX_RANGES)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # older Starlettes answer a list of no ranges with an empty 206: they are shown no Range at all
        if self.ignore_range:
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]}
        await super().__call__(scope, receive, send)


_RANGE = re.compile(r"(\d*)\s*-\s*(\d*)", re.ASCII)
# A Range of more ranges is ignored (the whole file), as Starlette's own cap (max_ranges, 1.5.1) does
MAX_RANGES = 100
_BEYOND = 10**19  # a byte position past any file


def _position(digits: str) -> int:
    """A byte position's digits as a number; past 19 digits (leading zeros aside), one beyond any file:
    ``int()`` refuses 4,300 digits, which was a 500."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else _BEYOND


def byte_ranges(header: str, size: int, most: int = MAX_RANGES) -> list[tuple[int, int]]:
    """The ``[start, end)`` byte ranges a ``Range`` header asks of a file of ``size`` bytes, sorted and
    merged, as RFC 9110 (14.1.2, 14.2) reads it: ``[]`` (the whole file) for a unit other than bytes or
    more than ``most`` ranges; the ranges that overlap the file, the others dropped. Raises
    :class:`RangeNotSatisfiable` when a range is malformed (``5-2``, ``abc``) or none overlaps the file."""
    unit, _, specs = header.partition("=")
    parts = [part.strip() for part in specs.split(",") if part.strip()]
    if unit.strip().lower() != "bytes" or len(parts) > most:
        return []
    ranges = []
    for part in parts:
        match = _RANGE.fullmatch(part)
        if not match or not any(match.groups()):
            raise RangeNotSatisfiable(size)
        first, last = (_position(group) if group else None for group in match.groups())
        if first is None:  # the last `last` bytes
            if last and size:
                ranges.append((max(size - last, 0), size))
        elif last is not None and last < first:
            raise RangeNotSatisfiable(size)
        elif first < size:
            ranges.append((first, size if last is None else min(last + 1, size)))
    if not ranges:
        raise RangeNotSatisfiable(size)
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@router.api_route(f"/static/ort/{WASM}", methods=["GET", "HEAD"], include_in_schema=False)
async def wasm(request: Request) -> Response:
    """onnxruntime-web's WebAssembly."""
    return _compressed(request, STATIC / "ort" / f"{WASM}.gz", "application/wasm")


@router.api_route(f"/static/docs/{SWAGGER_BUNDLE}", methods=["GET", "HEAD"], include_in_schema=False)
async def swagger_bundle(request: Request) -> Response:
    """Swagger UI's script, for /docs."""
    return _compressed(request, STATIC / "docs" / f"{SWAGGER_BUNDLE}.gz", "text/javascript; charset=utf-8")


@router.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
async def api_reference(request: Request) -> HTMLResponse:
    """The API reference: Swagger UI on this server's OpenAPI schema, with Swagger UI's files from this
    server (FastAPI's own page loads them from a CDN)."""
    prefix = request.scope.get("root_path", "").rstrip("/")  # the app mounted at /nextword, say
    response = get_swagger_ui_html(
        openapi_url=prefix + (request.app.openapi_url or "/openapi.json"),
        title=f"{request.app.title}: API reference",
        swagger_js_url=f"{prefix}/static/docs/{SWAGGER_BUNDLE}",
        swagger_css_url=f"{prefix}/static/docs/swagger-ui.css",
        swagger_favicon_url=f"{prefix}/static/docs/favicon-32x32.png",
    )
    # its inline set-up script allowed by hash (serve/headers.py)
    response.headers["content-security-policy"] = docs_policy(bytes(response.body).decode("utf-8"))
    return response


def _compressed(request: Request, stored: Traversable, media_type: str) -> Response:
    """A file stored gzip-compressed: its bytes as stored to a client that accepts gzip (every browser),
    else decompressed; each with its own ETag, and a 304 to a client that has it."""
    gzipped = _accepts_gzip(request.headers.get("accept-encoding", ""))
    tag = _stored_tag(stored)
    headers = {
        "cache-control": REVALIDATE,
        "vary": "accept-encoding",
        "etag": f'"{tag}-gz"' if gzipped else f'"{tag}"',
    }
    if not_modified(request.headers, headers):
        return _not_modified_response(headers)
    data = stored.read_bytes()
    if gzipped:
        headers["content-encoding"] = "gzip"
    else:
        data = gzip.decompress(data)
    return Response(data, media_type=media_type, headers=headers)


_TAGS: dict[str, str] = {}  # a packaged file's name -> a tag of its bytes


def _stored_tag(stored: Traversable) -> str:
    """A tag of a packaged file's bytes, read once: they change only with the package."""
    name = str(stored)
    if name not in _TAGS:
        _TAGS[name] = hashlib.sha256(stored.read_bytes()).hexdigest()[:32]
    return _TAGS[name]


def not_modified(request: Mapping[str, str], response: Mapping[str, str]) -> bool:
    """Whether a GET or HEAD whose headers are ``request`` is answered 304 Not Modified for a response
    with ``response``'s validators (RFC 9110, 13.1.2 and 13.1.3): an ``If-None-Match`` that lists its
    ETag (weakly compared) or ``*``; else, without one, an ``If-Modified-Since`` no earlier than its
    ``Last-Modified``."""
    etag = response.get("etag")
    if_none_match = request.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return etag is not None and ("*" in tags or etag.removeprefix("W/") in tags)
    since, modified = request.get("if-modified-since"), response.get("last-modified")
    if since is None or modified is None:
        return False
    try:
        return parsedate_to_datetime(modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):  # a date that is not an HTTP date: the condition is ignored
        return False


def _not_modified_response(headers: Mapping[str, str]) -> Response:
    """A 304 with the validators and caching headers the full answer would carry (RFC 9110, 15.4.5)."""
    kept = ("cache-control", "etag", "last-modified", "vary")
    return Response(status_code=304, headers={name: headers[name] for name in kept if name in headers})


def _accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip: listed (or ``*``) with a quality above 0."""
    qualities = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[name.strip().lower()] = quality
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0
