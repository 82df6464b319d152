"""Copy what `nextword serve`'s page needs to run a model in the browser into serve/static (package data).

    python web/scripts/vendor.py      (make web-vendor; needs web/node_modules: make web-setup)

- serve/static/web/: nextword-web's modules (web/src/*.js), unchanged;
- serve/static/ort/: onnxruntime-web's WASM build as package-lock.json pins it: ``ort.wasm.min.mjs``,
  ``ort-wasm-simd-threaded.mjs`` and ``ort-wasm-simd-threaded.wasm`` stored gzip-compressed (14 MB raw,
  3.7 MB compressed: tracked files stay under 8 MB; the server sends it with ``Content-Encoding: gzip``),
  its version, and its MIT license.

tests/test_web_assets.py fails when these copies and their sources differ.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "web" / "src"
ORT_DIST = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist"
STATIC = ROOT / "serve" / "static"
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs")
WASM = "ort-wasm-simd-threaded.wasm"
MIT = """MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def locked_ort_version() -> str:
    """The onnxruntime-web version web/package-lock.json pins."""
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"]["node_modules/onnxruntime-web"]["version"]


def gzipped(data: bytes) -> bytes:
    """gzip -9 with no name and no timestamp: the same bytes on every run."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def main() -> None:
    installed = json.loads((ORT_DIST.parent / "package.json").read_text(encoding="utf-8"))["version"]
    if installed != locked_ort_version():
        message = f"web/node_modules holds onnxruntime-web {installed}, not the locked version"
        raise SystemExit(f"{message}: run make web-setup")
    web, ort = STATIC / "web", STATIC / "ort"
    for folder in (web, ort):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for path in sorted(SOURCE.glob("*.js")):
        shutil.copyfile(path, web / path.name)
    for name in ORT_FILES:
        shutil.copyfile(ORT_DIST / name, ort / name)
    (ort / f"{WASM}.gz").write_bytes(gzipped((ORT_DIST / WASM).read_bytes()))
    (ort / "VERSION").write_text(f"{installed}\n", encoding="utf-8")
    (ort / "LICENSE").write_text(MIT, encoding="utf-8")
    print(f"serve/static: nextword-web ({len(list(web.iterdir()))} files), onnxruntime-web {installed}")


if __name__ == "__main__":
    main()
