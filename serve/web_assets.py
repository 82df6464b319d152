"""What the server's pages fetch beyond plain static files: the model file itself and onnxruntime-web's
WebAssembly for the page's "run in this browser" mode, and the API reference at /docs with its Swagger UI
bundle. The two large assets are stored gzip-compressed in the package (nextword-web's modules,
onnxruntime-web's two small modules and Swagger UI's stylesheet are plain static files under /static).
Nothing comes from elsewhere: both pages work offline. docs/web.md says why the files ship this way."""

from __future__ import annotations

import gzip
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from .errors import APIError
from .routes import STATIC
from .state import ServerState

__all__ = ["SWAGGER_BUNDLE", "WASM", "router"]

router = APIRouter()
WASM = "ort-wasm-simd-threaded.wasm"
SWAGGER_BUNDLE = "swagger-ui-bundle.js"
CACHE = "public, max-age=86400"  # the files change only with the package


@router.api_route("/model.onnx", methods=["GET", "HEAD"], include_in_schema=False)
async def model_file(request: Request) -> FileResponse:
    """The served model's .onnx file, for a page that runs it in the browser."""
    state: ServerState = request.app.state.nextword
    path = Path(state.model.source)
    if not path.is_file():
        raise APIError(404, "this server's model was not loaded from a file, so it cannot be downloaded")
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


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
    return get_swagger_ui_html(
        openapi_url=prefix + (request.app.openapi_url or "/openapi.json"),
        title=f"{request.app.title}: API reference",
        swagger_js_url=f"{prefix}/static/docs/{SWAGGER_BUNDLE}",
        swagger_css_url=f"{prefix}/static/docs/swagger-ui.css",
        swagger_favicon_url=f"{prefix}/static/docs/favicon-32x32.png",
    )


def _compressed(request: Request, stored: Path, media_type: str) -> Response:
    """A file stored gzip-compressed: its bytes as stored to a client that accepts gzip (every browser),
    else decompressed."""
    data = stored.read_bytes()
    headers = {"cache-control": CACHE, "vary": "accept-encoding"}
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["content-encoding"] = "gzip"
    else:
        data = gzip.decompress(data)
    return Response(data, media_type=media_type, headers=headers)


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
