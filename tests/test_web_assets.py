"""What `nextword serve`'s pages run in the browser ships as package data (serve/static/web,
serve/static/ort and serve/static/docs): the copies equal their sources, the compressed WebAssembly and
Swagger UI bundle are served as such, /docs loads nothing from elsewhere, and the model file is offered."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "serve" / "static"
ORT_DIST = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist"
SWAGGER_DIST = ROOT / "web" / "node_modules" / "swagger-ui-dist"
FIX = "run `make web-vendor` (web/scripts/vendor.py) and commit serve/static"
MAX_TRACKED = 8 * 1024 * 1024


def test_the_page_has_nextword_webs_modules_as_they_are_in_web_src():
    sources = {p.name: p.read_bytes() for p in (ROOT / "web" / "src").glob("*.js")}
    copies = {p.name: p.read_bytes() for p in (STATIC / "web").glob("*.js")}
    assert sorted(copies) == sorted(sources), FIX
    stale = [name for name in sources if copies[name] != sources[name]]
    assert not stale, f"serve/static/web/{stale} differ from web/src: {FIX}"


def test_the_page_has_the_locked_onnxruntime_web():
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    assert (STATIC / "ort" / "VERSION").read_text().strip() == locked, FIX
    assert "MIT License" in (STATIC / "ort" / "LICENSE").read_text()
    # the libraries its WebAssembly compiles in, whose licences ask for their notices to travel with it
    notices = (STATIC / "ort" / "ThirdPartyNotices.txt").read_text(encoding="utf-8")
    assert notices.startswith("THIRD PARTY SOFTWARE NOTICES AND INFORMATION")
    for library in ("protocolbuffers/protobuf", "Eigen", "abseil-cpp", "google/re2", "google/flatbuffers"):
        assert f"\n{library}\n" in notices, library
    for path in (STATIC / "ort").iterdir():
        assert path.stat().st_size < MAX_TRACKED, f"{path} is over 8 MB: tracked files must stay under it"
    if not ORT_DIST.is_dir():
        pytest.skip("web/node_modules is missing (make web-setup): the copies' bytes are not compared")
    for name in ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs"):
        assert (STATIC / "ort" / name).read_bytes() == (ORT_DIST / name).read_bytes(), FIX
    wasm = gzip.decompress((STATIC / "ort" / "ort-wasm-simd-threaded.wasm.gz").read_bytes())
    assert wasm == (ORT_DIST / "ort-wasm-simd-threaded.wasm").read_bytes(), FIX


def test_the_api_reference_has_the_locked_swagger_ui():
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"]["node_modules/swagger-ui-dist"]["version"]
    docs = STATIC / "docs"
    assert (docs / "VERSION").read_text().strip() == locked, FIX
    assert "Apache License" in (docs / "LICENSE").read_text()
    for path in docs.iterdir():
        assert path.stat().st_size < MAX_TRACKED, f"{path} is over 8 MB: tracked files must stay under it"
    if not SWAGGER_DIST.is_dir():
        pytest.skip("web/node_modules is missing (make web-setup): the copies' bytes are not compared")
    for name in (
        "swagger-ui.css",
        "favicon-32x32.png",
        "LICENSE",
        "NOTICE",
        "swagger-ui-bundle.js.LICENSE.txt",
    ):
        assert (docs / name).read_bytes() == (SWAGGER_DIST / name).read_bytes(), FIX
    bundle = gzip.decompress((docs / "swagger-ui-bundle.js.gz").read_bytes())
    assert bundle == (SWAGGER_DIST / "swagger-ui-bundle.js").read_bytes(), FIX


@pytest.fixture(scope="module")
def client(model):
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from fastapi.testclient import TestClient

    from nextword.serve import ServeConfig, create_app

    with TestClient(create_app(ServeConfig(), model)) as client:
        yield client


def test_the_server_sends_the_webassembly_compressed_or_not(client):
    stored = (STATIC / "ort" / "ort-wasm-simd-threaded.wasm.gz").read_bytes()
    compressed = client.get("/static/ort/ort-wasm-simd-threaded.wasm", headers={"accept-encoding": "gzip"})
    assert compressed.status_code == 200
    assert compressed.headers["content-type"] == "application/wasm"
    assert compressed.headers["content-encoding"] == "gzip"
    assert int(compressed.headers["content-length"]) == len(stored)
    plain = client.get("/static/ort/ort-wasm-simd-threaded.wasm", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == gzip.decompress(stored) and plain.content[:4] == b"\0asm"
    for header, gzipped in (
        ("gzip;q=0, identity", False),
        ("br, GZIP; q=0.5", True),
        ("*", True),
        ("*;q=0", False),
    ):
        response = client.get("/static/ort/ort-wasm-simd-threaded.wasm", headers={"accept-encoding": header})
        assert ("content-encoding" in response.headers) == gzipped, header
    for path in ("/static/ort/ort.wasm.min.mjs", "/static/web/worker.js", "/static/browser.js"):
        response = client.get(path)
        assert response.status_code == 200 and "javascript" in response.headers["content-type"], path


def test_the_api_reference_loads_only_this_servers_files(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "/openapi.json" in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html), (
        "the page must not load files from elsewhere"
    )
    assets = re.findall(r"(?:src|href)=[\"']?(/static/[^\"' >]+)", html)
    assert sorted(assets) == [
        "/static/docs/favicon-32x32.png",
        "/static/docs/swagger-ui-bundle.js",
        "/static/docs/swagger-ui.css",
    ]
    for path in assets:
        response = client.get(path, headers={"accept-encoding": "identity"})
        assert response.status_code == 200, path
        assert "content-encoding" not in response.headers
    bundle = client.get("/static/docs/swagger-ui-bundle.js", headers={"accept-encoding": "gzip"})
    assert bundle.headers["content-encoding"] == "gzip" and "javascript" in bundle.headers["content-type"]
    stored = (STATIC / "docs" / "swagger-ui-bundle.js.gz").read_bytes()
    assert int(bundle.headers["content-length"]) == len(stored)
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc page would load from a CDN
    assert "/docs" not in client.get("/openapi.json").json()["paths"]


def test_the_server_offers_its_model_file(client, model_path, model):
    response = client.get("/model.onnx")
    assert response.status_code == 200
    assert response.content == model_path.read_bytes()
    head = client.head("/model.onnx")  # a download tool asking the size first
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == model_path.stat().st_size
    from fastapi.testclient import TestClient

    from nextword.runtime import load
    from nextword.serve import ServeConfig, create_app

    from_bytes = load(model_path.read_bytes())
    with TestClient(create_app(ServeConfig(), from_bytes)) as other:
        missing = other.get("/model.onnx")
    assert missing.status_code == 404
    assert "was not loaded from a file" in missing.json()["error"]["message"]


def test_the_models_figures_are_those_of_the_model_loaded(model_path, tmp_path):
    """/v1/models read the file's size at each request: once a new export replaced the file, it showed
    that file's size beside the loaded model's vocabulary and config."""
    import shutil

    from fastapi.testclient import TestClient

    from nextword.runtime import load
    from nextword.serve import ServeConfig, create_app

    path = tmp_path / "served.onnx"
    shutil.copyfile(model_path, path)
    with TestClient(create_app(ServeConfig(), load(path))) as client:
        before = client.get("/v1/models").json()["data"][0]["nextword"]
        assert before["bytes"] == model_path.stat().st_size
        path.write_bytes((STATIC.parents[1] / "runtime" / "data" / "nextword-patents.onnx").read_bytes())
        assert client.get("/v1/models").json()["data"][0]["nextword"] == before


def test_the_model_file_is_revalidated_and_a_replaced_one_not_offered(model_path, tmp_path, monkeypatch):
    """/model.onnx may be cached but is asked after before each use: a client that has it gets a 304
    (by ETag or by date), and does not download the same file again. A file replaced on disk is not the
    model the server runs: it is refused (409) until the server is restarted, so a page in "run in this
    browser" mode never runs another model than the server's, from its cache or from the disk."""
    import os
    import shutil

    from fastapi.testclient import TestClient

    from nextword.runtime import load
    from nextword.serve import ServeConfig, create_app, state

    digest = state._digest
    path = tmp_path / "served.onnx"
    shutil.copyfile(model_path, path)
    with TestClient(create_app(ServeConfig(), load(path))) as client:
        first = client.get("/model.onnx")
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        for asked in (
            {"if-none-match": etag},
            {"if-none-match": f'"other", W/{etag}'},
            {"if-modified-since": modified},
        ):
            again = client.get("/model.onnx", headers=asked)
            assert again.status_code == 304 and again.content == b"", asked
            assert again.headers["etag"] == etag and again.headers["cache-control"] == "no-cache"
        stale = {"if-none-match": '"other"', "if-modified-since": modified}  # the ETag decides
        assert client.get("/model.onnx", headers=stale).status_code == 200
        assert client.get("/model.onnx", headers={"if-modified-since": "not a date"}).status_code == 200
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 60))  # touched: the same bytes
        touched = client.get("/model.onnx", headers={"if-none-match": etag})
        assert touched.status_code == 200 and touched.headers["etag"] != etag  # a new time: a new tag
        copy = tmp_path / "copy.onnx"
        shutil.copyfile(model_path, copy)
        os.replace(copy, path)  # copied over with the same bytes (a redeploy): still the model it runs
        assert client.get("/model.onnx").content == model_path.read_bytes()
        data = bytearray(model_path.read_bytes())
        data[-1] ^= 1  # other bytes, of the same size
        path.write_bytes(bytes(data))
        read = []  # each whole read of the file to compare its bytes
        monkeypatch.setattr(state, "_digest", lambda file: read.append(file) or digest(file))
        replaced = client.get("/model.onnx", headers={"if-none-match": etag, "if-modified-since": modified})
        assert replaced.status_code == 409 and replaced.json()["error"]["code"] == "model_file_changed"
        assert client.get("/model.onnx").status_code == 409 and read == [path]  # not read again
        message = replaced.json()["error"]["message"]
        assert message.startswith("served.onnx has changed on disk since") and "restart the server" in message
        path.unlink()
        gone = client.get("/model.onnx")
        assert (
            gone.status_code == 409
            and "served.onnx is no longer on disk since" in gone.json()["error"]["message"]
        )
        assert client.head("/model.onnx").status_code == 409
    other = (STATIC.parents[1] / "runtime" / "data" / "nextword-patents.onnx").read_bytes()  # another model
    path.write_bytes(other)
    with TestClient(create_app(ServeConfig(), load(path))) as restarted:
        fresh = restarted.get("/model.onnx", headers={"if-none-match": etag, "if-modified-since": modified})
        assert fresh.status_code == 200 and fresh.content == other


def test_the_webassembly_and_the_pages_files_are_revalidated(client):
    wasm = "/static/ort/ort-wasm-simd-threaded.wasm"
    gzipped = client.get(wasm, headers={"accept-encoding": "gzip"})
    plain = client.get(wasm, headers={"accept-encoding": "identity"})
    assert gzipped.headers["cache-control"] == plain.headers["cache-control"] == "no-cache"
    assert gzipped.headers["etag"] != plain.headers["etag"]  # two representations, two tags
    again = client.get(wasm, headers={"accept-encoding": "gzip", "if-none-match": gzipped.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["vary"] == "accept-encoding"
    other = client.get(
        wasm, headers={"accept-encoding": "identity", "if-none-match": gzipped.headers["etag"]}
    )
    assert other.status_code == 200 and other.content[:4] == b"\0asm"
    script = client.get("/static/app.js")
    assert script.headers["cache-control"] == "no-cache"
    cached = client.get("/static/app.js", headers={"if-none-match": script.headers["etag"]})
    assert cached.status_code == 304 and cached.headers["cache-control"] == "no-cache"


def test_the_pages_text_files_go_compressed_to_a_client_that_takes_gzip(client):
    """The page's scripts and stylesheets went uncompressed: 605 kB where 176 kB do."""
    texts = [p for p in STATIC.rglob("*") if p.suffix in (".js", ".mjs", ".css") and p.stat().st_size >= 1024]
    assert len(texts) > 30
    for path in texts:
        url = "/static/" + path.relative_to(STATIC).as_posix()
        with client.stream("GET", url, headers={"accept-encoding": "gzip"}) as response:
            raw = b"".join(response.iter_raw())
        assert response.headers["content-encoding"] == "gzip", url
        assert gzip.decompress(raw) == path.read_bytes() and len(raw) < path.stat().st_size, url
        assert (
            response.headers["vary"] == "accept-encoding" and response.headers["cache-control"] == "no-cache"
        )
        plain = client.get(url, headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == path.read_bytes(), url
        assert plain.headers["vary"] == "accept-encoding"
        assert plain.headers["etag"] != response.headers["etag"]  # two representations, two tags
    url = "/static/web/model.js"
    gzipped = client.get(url, headers={"accept-encoding": "gzip"})
    again = client.get(url, headers={"accept-encoding": "gzip", "if-none-match": gzipped.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == gzipped.headers["etag"]
    plain = client.get(url, headers={"accept-encoding": "identity", "if-none-match": gzipped.headers["etag"]})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    # a 304 bears the ETag of the representation the client would get: the gzip one took the plain
    # file's where Starlette answered first (If-Modified-Since, If-None-Match: *, the plain tag)
    modified = gzipped.headers["last-modified"]
    for condition in ({"if-modified-since": modified}, {"if-none-match": "*"}):
        for encoding, tag in (("gzip", gzipped.headers["etag"]), ("identity", plain.headers["etag"])):
            answer = client.get(url, headers={"accept-encoding": encoding, **condition})
            assert answer.status_code == 304 and answer.headers["etag"] == tag, (condition, encoding)
            assert answer.headers["vary"] == "accept-encoding"
    other = client.get(url, headers={"accept-encoding": "gzip", "if-none-match": plain.headers["etag"]})
    assert other.status_code == 200 and other.headers["content-encoding"] == "gzip"
    head = client.head(url, headers={"accept-encoding": "gzip"})
    assert head.headers["content-length"] == gzipped.headers["content-length"]
    # a Range asks for the file's own bytes
    part = client.get(url, headers={"accept-encoding": "gzip", "range": "bytes=0-9"})
    assert part.status_code == 206 and "content-encoding" not in part.headers
    assert part.content == (STATIC / "web" / "model.js").read_bytes()[:10]
    small = client.get("/static/web/index.js", headers={"accept-encoding": "gzip"})  # under a kilobyte
    assert small.status_code == 200 and "content-encoding" not in small.headers


def test_a_compressed_file_is_the_same_bytes_each_time_and_follows_the_file(tmp_path):
    """No time in the gzip header (the same bytes, so caches and checksums agree), and a file rewritten
    under the server is compressed again, not served from the copy made of its old bytes."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from nextword.serve.web_assets import RangedStaticFiles

    script = tmp_path / "app.js"
    script.write_text("const a = 1;\n" * 200, encoding="utf-8")
    app = FastAPI()
    app.mount("/static", RangedStaticFiles(directory=str(tmp_path)))
    with TestClient(app) as client:
        with client.stream("GET", "/static/app.js", headers={"accept-encoding": "gzip"}) as first:
            raw = b"".join(first.iter_raw())
        assert raw[4:8] == b"\0\0\0\0" and gzip.decompress(raw) == script.read_bytes()
        script.write_text("const b = 2;\n" * 300, encoding="utf-8")
        again = client.get("/static/app.js", headers={"accept-encoding": "gzip"})
        assert again.content == script.read_bytes() and again.headers["etag"] != first.headers["etag"]


def test_the_output_boxes_hold_no_whitespace_before_their_placeholder():
    """.output keeps white space (pre-wrap): a line break a formatter put before the placeholder showed
    it a line down and indented until the first words replaced it."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    for box in ("output", "scored"):
        assert re.search(rf'<div id="{box}"[^>]*><span class="placeholder">[^<]*</span></div>', html), box


def test_the_page_is_served_as_it_is_on_disk_with_its_scripts(client, tmp_path, monkeypatch):
    """The page's scripts were read at each request, index.html once: a server running while nextword
    was upgraded (or an editable checkout moved on) sent a new app.js with the old index.html, whose
    missing elements broke Generate. index.html is now read again once it changes."""
    from nextword.serve import web_assets
    from nextword.serve.headers import script_hash

    static = tmp_path / "static"
    static.mkdir()
    page = static / "index.html"
    page.write_text("<!doctype html><title>one</title><script>var a = 1;</script>", encoding="utf-8")
    monkeypatch.setattr(web_assets, "STATIC", static)
    first = client.get("/")
    assert "<title>one</title>" in first.text
    page.write_text("<!doctype html><title>two</title><script>var b = 2;</script>", encoding="utf-8")
    stat = page.stat()
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later time, whatever the clock
    second = client.get("/")
    assert "<title>two</title>" in second.text
    # the page's policy allows the inline script it now holds, not the one before
    policy = second.headers["content-security-policy"]
    assert script_hash("var b = 2;") in policy and script_hash("var a = 1;") not in policy
