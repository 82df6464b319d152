"""Copy what `nextword serve`'s page needs to run a model in the browser into serve/static (package data).

    python web/scripts/vendor.py      (make web-vendor; needs web/node_modules: make web-setup)

- serve/static/web/: nextword-web's modules (web/src/*.js), unchanged;
- serve/static/ort/: onnxruntime-web's WASM build as package-lock.json pins it: ``ort.wasm.min.mjs``,
  ``ort-wasm-simd-threaded.mjs`` and ``ort-wasm-simd-threaded.wasm`` stored gzip-compressed (14 MB raw,
  3.7 MB compressed: tracked files stay under 8 MB; the server sends it with ``Content-Encoding: gzip``),
  its version, its MIT license, and the notices of the libraries its WebAssembly compiles in (protobuf,
  abseil, Eigen, re2...): onnxruntime's ThirdPartyNotices.txt, which the npm package lacks, so it is
  taken from onnxruntime's Python wheel of the same version (``--notices FILE``; kept from the last run
  while the version stays the same);
- serve/static/docs/: Swagger UI (swagger-ui-dist, a development dependency of web/package.json) for the
  server's API reference at /docs: ``swagger-ui-bundle.js`` stored gzip-compressed, ``swagger-ui.css``, a
  favicon, its version, its Apache-2.0 license and notice, and the licenses of what its bundle contains.
  FastAPI's own /docs page loads these from a CDN, which an offline machine cannot reach.

tests/test_web_assets.py fails when these copies and their sources differ.
"""

from __future__ import annotations

import argparse
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
SWAGGER_DIST = ROOT / "web" / "node_modules" / "swagger-ui-dist"
SWAGGER_BUNDLE = "swagger-ui-bundle.js"  # stored gzip-compressed
SWAGGER_FILES = ("swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE", f"{SWAGGER_BUNDLE}.LICENSE.txt")
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


def locked_version(package: str) -> str:
    """The version of ``package`` that web/package-lock.json pins."""
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"][f"node_modules/{package}"]["version"]


def installed_version(folder: Path) -> str:
    """The version of the npm package installed in ``folder``, refused unless it is the locked one."""
    installed = json.loads((folder / "package.json").read_text(encoding="utf-8"))["version"]
    if installed != locked_version(folder.name):
        raise SystemExit(
            f"web/node_modules holds {folder.name} {installed}, not the locked version: run make web-setup"
        )
    return installed


def gzipped(data: bytes) -> bytes:
    """gzip -9 with no name and no timestamp: the same bytes on every run."""
    return gzip.compress(data, compresslevel=9, mtime=0)


NOTICES = "ThirdPartyNotices.txt"


def third_party_notices(given: str | None, version: str) -> bytes:
    """onnxruntime's ThirdPartyNotices.txt for onnxruntime-web ``version``: the file given, else the copy
    serve/static/ort holds while its version is the same; SystemExit saying how to get it otherwise."""
    if given is not None:
        text = Path(given).read_bytes()
        if b"THIRD PARTY SOFTWARE NOTICES" not in text[:200]:
            raise SystemExit(f"{given} is not onnxruntime's {NOTICES}")
        return text
    ort = STATIC / "ort"
    kept = ort / NOTICES
    if kept.is_file() and (ort / "VERSION").is_file() and (ort / "VERSION").read_text().strip() == version:
        return kept.read_bytes()
    raise SystemExit(
        f"onnxruntime-web {version}'s npm package has no {NOTICES}: take onnxruntime's, of the same "
        f"version, from its Python wheel:\n  pip download --no-deps onnxruntime=={version} -d /tmp/ort\n"
        f"  unzip -p /tmp/ort/onnxruntime-{version}-*.whl onnxruntime/{NOTICES} > /tmp/{NOTICES}\n"
        f"  python web/scripts/vendor.py --notices /tmp/{NOTICES}"
    )


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument(
        "--notices",
        metavar="FILE",
        help=f"onnxruntime's {NOTICES} of onnxruntime-web's version (from onnxruntime's Python wheel)",
    )
    args = parser.parse_args()
    installed = installed_version(ORT_DIST.parent)
    swagger = installed_version(SWAGGER_DIST)
    notices = third_party_notices(args.notices, installed)
    web, ort, docs = STATIC / "web", STATIC / "ort", STATIC / "docs"
    for folder in (web, ort, docs):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for path in sorted(SOURCE.glob("*.js")):
        shutil.copyfile(path, web / path.name)
    for name in ORT_FILES:
        shutil.copyfile(ORT_DIST / name, ort / name)
    (ort / f"{WASM}.gz").write_bytes(gzipped((ORT_DIST / WASM).read_bytes()))
    (ort / "VERSION").write_text(f"{installed}\n", encoding="utf-8")
    (ort / "LICENSE").write_text(MIT, encoding="utf-8")
    (ort / NOTICES).write_bytes(notices)
    for name in SWAGGER_FILES:
        shutil.copyfile(SWAGGER_DIST / name, docs / name)
    (docs / f"{SWAGGER_BUNDLE}.gz").write_bytes(gzipped((SWAGGER_DIST / SWAGGER_BUNDLE).read_bytes()))
    (docs / "VERSION").write_text(f"{swagger}\n", encoding="utf-8")
    print(
        f"serve/static: nextword-web ({len(list(web.iterdir()))} files), onnxruntime-web {installed}, "
        f"swagger-ui-dist {swagger}"
    )


if __name__ == "__main__":
    main()
