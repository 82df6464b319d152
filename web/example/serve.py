"""A small loopback HTTP server for nextword-web's example page and benchmark page.

    python web/example/serve.py [MODEL.onnx] [--port 8000]

serves web/ (the package, its example page and onnxruntime-web from web/node_modules after
``make web-setup``) and the model at /model.onnx, on 127.0.0.1 only; open the printed URL. Tests and
benchmarks/web.py start it in-process with :func:`start`.
"""

from __future__ import annotations

import argparse
import functools
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

WEB = Path(__file__).resolve().parents[1]
BUNDLED = WEB.parent / "runtime" / "data" / "nextword-patents.onnx"
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}


class _Handler(SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def __init__(self, *args, model: Path, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        if path.split("?")[0] == "/model.onnx":
            return str(self.model)
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # quiet: tests and benchmarks read their own output
        pass


@dataclass
class Running:
    url: str
    server: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def start(model: Path = BUNDLED, port: int = 0) -> Running:
    """Serve web/ and ``model`` (as /model.onnx) on 127.0.0.1:``port`` (0: a free one) in a thread."""
    handler = functools.partial(_Handler, directory=str(WEB), model=Path(model))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="web-example", daemon=True)
    thread.start()
    return Running(f"http://127.0.0.1:{server.server_address[1]}", server, thread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=str(BUNDLED), help="the .onnx file to serve")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    running = start(Path(args.model), args.port)
    print(f"nextword-web example: {running.url}/example/  (Ctrl-C stops)")
    try:
        running.thread.join()
    except KeyboardInterrupt:
        running.stop()


if __name__ == "__main__":
    main()
