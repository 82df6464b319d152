"""nextword-web as a web developer gets it from npm: the tarball `npm pack` makes, unpacked into a fresh
app, bundled by esbuild and by Vite (pinned development dependencies of web/package.json), served by a
static server on loopback and run in headless Chromium, in the page and in the Web Worker.

What a bundle must do: fetch onnxruntime-web's WebAssembly build (ort-wasm-simd-threaded.wasm, not the
WebGPU build's 28 MB .jsep.wasm) from the app's own server, start nextword-web's worker, and give the
Python runtime's greedy text. TypeScript consumers compile against the packed types.

Needs web/node_modules (``make web-setup``) and npm; the browser comes from tests/browser.py.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from web_reference import WEB

PROMPT = "the model"
WORDS = 8

# The app a user writes: the model in the page (load) and in a worker (WorkerModel), greedy text, next
# words and a score from each. `?wasm=FOLDER` points onnxruntime-web at its files for a bundler that does
# not ship them (esbuild); without it, whatever the bundle does is what runs.
APP_JS = """
import * as ort from 'onnxruntime-web/wasm';
import { load } from 'nextword-web';
import { WorkerModel } from 'nextword-web/client';

const wasm = new URLSearchParams(location.search).get('wasm');
const run = async (model) => ({
  text: await model.generate(PROMPT, { maxWords: WORDS, temperature: 0 }),
  next: (await model.nextWords(PROMPT, 3)).map((word) => word.word),
  perplexity: (await model.score(PROMPT)).perplexity,
});
const attempt = (step) => step().catch((error) => ({ error: `${error.name}: ${error.message}` }));

async function main() {
  if (wasm) ort.env.wasm.wasmPaths = wasm;
  const results = {};
  results.page = await attempt(async () => run(await load('/model.onnx')));
  let worker = null;
  results.worker = await attempt(async () => {
    worker = await WorkerModel.load('/model.onnx', wasm ? { wasmPaths: wasm } : {});
    return run(worker);
  });
  const fetched = performance.getEntriesByType('resource').map((entry) => entry.name);
  if (worker) fetched.push(...(await worker.resources()).map((entry) => entry.name));
  results.fetched = fetched;
  window.results = results;
}
main();
""".replace("PROMPT", json.dumps(PROMPT)).replace("WORDS", str(WORDS))


def _page(script: str) -> str:
    return f'<!doctype html><html><body><script type="module" src="{script}"></script></body></html>'


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    """A fresh app folder: nextword-web from its tarball, onnxruntime-web, the model, the app's code."""
    if not (WEB / "node_modules" / "esbuild").is_dir() or not (WEB / "node_modules" / "vite").is_dir():
        missing = "web/node_modules is missing esbuild or vite: run `make web-setup`"
        if os.environ.get("NEXTWORD_REQUIRE_WEB") == "1":
            pytest.fail(f"{missing}; NEXTWORD_REQUIRE_WEB=1 asks for the web tests")
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("webapp")
    packs = root / "packs"
    packs.mkdir()
    # packing a folder needs no registry: --offline keeps npm from asking one (it packs without a network)
    _run(["npm", "pack", "--pack-destination", str(packs), "--ignore-scripts", "--offline"], WEB)
    (tarball,) = packs.glob("nextword-web-*.tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(packs, filter="data")
    modules = root / "node_modules"
    modules.mkdir()
    (packs / "package").rename(modules / "nextword-web")
    (modules / "onnxruntime-web").symlink_to(WEB / "node_modules" / "onnxruntime-web", True)
    (root / "package.json").write_text('{"name": "app", "private": true, "type": "module"}\n')
    (root / "app.js").write_text(APP_JS)
    shutil.copyfile(model_path, root / "model.onnx")
    return root


@pytest.fixture(scope="module")
def server(app: Path) -> Iterator[tuple[str, list[str]]]:
    """A static server of the app folder on loopback: its URL and the paths asked of it."""
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map: ClassVar[dict[str, str]] = {
            **http.server.SimpleHTTPRequestHandler.extensions_map,
            ".js": "text/javascript",
            ".mjs": "text/javascript",
            ".wasm": "application/wasm",
        }

        def log_message(self, format: str, *args: Any) -> None:
            asked.append(self.path)

        def end_headers(self) -> None:
            # the tests count the fetches of the model: none may come from chromium's cache, which keeps a
            # file with a Last-Modified and no Cache-Control for a while that grows with the file's age
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=app))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", asked
    httpd.shutdown()
    thread.join(timeout=10)


def _results(browser: Any, url: str) -> dict[str, Any]:
    browser.get(url)
    deadline = time.monotonic() + 120
    while (results := browser.execute_script("return window.results")) is None:
        assert time.monotonic() < deadline, f"{url} never finished"
        time.sleep(0.1)
    return results


def _check(results: dict[str, Any], origin: str, model: Any) -> None:
    """Both ways give Python's greedy text, every file came from the app's server, and the WebAssembly
    fetched is the plain build's."""
    expected = model.generate(PROMPT, max_words=WORDS, temperature=0)
    for where in ("page", "worker"):
        assert "error" not in results[where], results[where]
        assert results[where]["text"] == expected, (where, results[where])
        assert len(results[where]["next"]) == 3 and results[where]["perplexity"] > 1
    assert results["page"]["next"] == results["worker"]["next"]
    assert all(name.startswith(origin + "/") for name in results["fetched"]), results["fetched"]
    wasm = {name.rsplit("/", 1)[1] for name in results["fetched"] if ".wasm" in name}
    assert wasm and all(name.startswith("ort-wasm-simd-threaded") for name in wasm), wasm
    assert not any(".jsep" in name for name in wasm), f"the WebGPU build's 28 MB .wasm was fetched: {wasm}"


def test_the_tarball_holds_the_modules_types_and_readme(app):
    package = app / "node_modules" / "nextword-web"
    packed = sorted(str(path.relative_to(package)) for path in package.rglob("*") if path.is_file())
    sources = sorted(f"src/{path.name}" for path in (WEB / "src").glob("*.js"))
    types = sorted(f"types/{path.name}" for path in (WEB / "types").glob("*.d.ts"))
    assert packed == sorted(["LICENSE", "README.md", "package.json", *sources, *types])
    manifest = json.loads((package / "package.json").read_text())
    for entry in manifest["exports"].values():
        for target in entry.values() if isinstance(entry, dict) else [entry]:
            assert (package / target).is_file(), target
    # the app's onnxruntime-web is the one nextword-web runs: a dependency of its own gave it a second copy
    assert "onnxruntime-web" not in manifest.get("dependencies", {}), manifest.get("dependencies")
    assert manifest["peerDependencies"]["onnxruntime-web"].startswith("^"), manifest["peerDependencies"]


def test_npm_installs_one_onnxruntime_web_beside_another_version_of_the_app(app, tmp_path):
    # An app whose onnxruntime-web is another 1.x than the one this repository pins: npm must not give
    # nextword-web a copy of its own (the app's wasmPaths went to the other copy, and Vite shipped two
    # .wasm files). The app's copy is this repository's under another version number; --offline with an
    # empty cache: a second copy would have to be downloaded, and fails here instead.
    real = WEB / "node_modules" / "onnxruntime-web"
    other = tmp_path / "onnxruntime-web"
    other.mkdir()
    for entry in real.iterdir():
        if entry.name != "package.json":
            (other / entry.name).symlink_to(entry, entry.is_dir())
    manifest = json.loads((real / "package.json").read_text())
    major, minor, _ = manifest["version"].split(".")
    manifest["version"] = f"{major}.{int(minor) + 1}.0"
    (other / "package.json").write_text(json.dumps(manifest))
    project = tmp_path / "app"
    project.mkdir()
    dependencies = {"onnxruntime-web": f"file:{other}"}
    (project / "package.json").write_text(
        json.dumps({"name": "app", "private": True, "dependencies": dependencies})
    )
    (tarball,) = (app / "packs").glob("nextword-web-*.tgz")
    offline = [
        "--offline",
        "--cache",
        str(tmp_path / "empty-cache"),
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
    ]
    _run(["npm", "install", *offline, str(tarball)], project)
    assert not (project / "node_modules" / "nextword-web" / "node_modules").exists()
    listed = subprocess.run(
        ["npm", "ls", "onnxruntime-web", "--all", "--parseable", "--offline"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert {Path(line).resolve() for line in listed.stdout.split()} == {other.resolve()}, listed.stdout


def test_esbuild_bundle_runs_in_the_page_and_in_its_worker(app, server, browser, model):
    # esbuild bundles no workers: the worker is an entry point of its own, named worker.js beside the
    # app's bundle (where WorkerModel looks by default), and onnxruntime-web's files are copied by hand
    # (wasmPaths: before, the worker ignored it without ortUrl, and the page fetched the .jsep.wasm)
    origin, asked = server
    esbuild = str(WEB / "node_modules" / ".bin" / "esbuild")
    out = app / "esbuild"
    entries = ["app.js", "worker=nextword-web/worker"]
    _run([esbuild, *entries, "--bundle", "--format=esm", f"--outdir={out}"], app)
    (out / "index.html").write_text(_page("./app.js"))
    ort = app / "ort"
    ort.mkdir()
    for name in ("ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"):
        shutil.copyfile(WEB / "node_modules" / "onnxruntime-web" / "dist" / name, ort / name)
    before = asked.count("/model.onnx")
    _check(_results(browser, f"{origin}/esbuild/index.html?wasm=/ort/"), origin, model)
    assert asked.count("/model.onnx") - before == 2  # the page's and the worker's


def test_esbuild_bundle_without_the_wasm_or_the_worker_says_what_to_do(app, server, browser):
    origin, _ = server
    esbuild = str(WEB / "node_modules" / ".bin" / "esbuild")
    out = app / "esbuild-alone"
    _run([esbuild, "app.js", "--bundle", "--format=esm", f"--outdir={out}"], app)
    (out / "index.html").write_text(_page("./app.js"))
    results = _results(browser, f"{origin}/esbuild-alone/index.html")
    page, worker = results["page"]["error"], results["worker"]["error"]
    assert page.startswith(
        "NextwordError: onnxruntime-web could not start its WebAssembly backend (ort-wasm-"
    ), page
    assert "ort.env.wasm.wasmPaths" in page and "ort-wasm-simd-threaded.{wasm,mjs}" in page, page
    assert worker.startswith(
        f"NextwordError: the worker {origin}/esbuild-alone/worker.js failed: its script could not be "
        "loaded; a bundler that does not bundle workers (esbuild) needs nextword-web/worker as an entry "
        "point of its own"
    ), worker


def test_vite_build_ships_the_wasm_and_bundles_the_worker(app, server, browser, model):
    # Vite bundles the worker where WorkerModel creates it, and onnxruntime-web's .wasm as an asset: the
    # app needs no option at all (before, the worker was inlined unbundled as a data: URL and failed)
    origin, _ = server
    source = app / "vite-app"
    source.mkdir()
    shutil.copyfile(app / "app.js", source / "app.js")
    (source / "index.html").write_text(_page("./app.js"))
    vite = str(WEB / "node_modules" / ".bin" / "vite")
    _run([vite, "build", "--logLevel", "warn", "--base", "/vite/", "--outDir", str(app / "vite")], source)
    assets = sorted(path.name for path in (app / "vite" / "assets").iterdir())
    assert not any(".jsep" in name for name in assets), assets
    # one onnxruntime-web, one .wasm: the page's and the worker's bundles share it
    assert len([name for name in assets if name.endswith(".wasm")]) == 1, assets
    _check(_results(browser, f"{origin}/vite/index.html"), origin, model)


@pytest.mark.parametrize("resolution", ["bundler", "node16"])
def test_typescript_resolves_the_packed_types(app, resolution):
    (app / "consumer.ts").write_text(
        "import { load, NextwordError, type GenerationOptions } from 'nextword-web';\n"
        "import { WorkerModel, type WorkerLoadOptions } from 'nextword-web/client';\n"
        "export async function main(): Promise<string> {\n"
        "  const model = await load('/model.onnx', { numThreads: 1 });\n"
        "  const options: GenerationOptions = { maxWords: 3 };\n"
        "  const text: string | string[] = await model.generate('a', options);\n"
        "  const opts: WorkerLoadOptions = { wasmPaths: '/ort/' };\n"
        "  const worker = await WorkerModel.load('/model.onnx', opts);\n"
        "  if (!(worker.info.vocabulary > 0)) throw new NextwordError('empty');\n"
        "  return `${text} ${(await worker.nextWords('a', 1))[0].word}`;\n"
        "}\n"
    )
    module = "esnext" if resolution == "bundler" else resolution
    config = {
        "compilerOptions": {
            "strict": True,
            "noEmit": True,
            "target": "es2022",
            "module": module,
            "moduleResolution": resolution,
            "lib": ["es2022", "dom", "dom.iterable"],
            "types": [],
        },
        "files": ["consumer.ts"],
    }
    (app / f"tsconfig.{resolution}.json").write_text(json.dumps(config))
    _run([str(WEB / "node_modules" / ".bin" / "tsc"), "-p", f"tsconfig.{resolution}.json"], app)
