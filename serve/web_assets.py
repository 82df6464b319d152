"""What the page's "run in this browser" mode fetches: the model file itself, and onnxruntime-web's
WebAssembly, stored gzip-compressed in the package (nextword-web's modules and onnxruntime-web's two
small modules are plain static files under /static). Nothing comes from elsewhere: the page works
offline. docs/web.md says why the files ship this way."""

from __future__ import annotations

import gzip
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from .errors import APIError
from .routes import STATIC
from .state import ServerState

__all__ = ["WASM", "router"]

router = APIRouter()
WASM = "ort-wasm-simd-threaded.wasm"
CACHE = "public, max-age=86400"  # the files change only with the package


@router.api_route("/model.onnx", methods=["GET", "HEAD"], include_in_schema=False)
async def model_file(request: Request) -> FileResponse:
    """The served model's .onnx file, for a page that runs it in the browser."""
    state: ServerState = request.app.state.nextword
    path = Path(state.model.source)
    if not path.is_file():
        raise APIError(404, "this server's model was not loaded from a file, so it cannot be downloaded")
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


@router.get(f"/static/ort/{WASM}", include_in_schema=False)
async def wasm(request: Request) -> Response:
    """onnxruntime-web's WebAssembly: the stored gzip bytes to a client that accepts gzip (every browser),
    else decompressed."""
    data = (STATIC / "ort" / f"{WASM}.gz").read_bytes()
    headers = {"cache-control": CACHE, "vary": "accept-encoding"}
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["content-encoding"] = "gzip"
    else:
        data = gzip.decompress(data)
    return Response(data, media_type="application/wasm", headers=headers)


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
