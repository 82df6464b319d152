"""nextword-web in a real browser: its example page (web/example/) in headless Chromium, served on
loopback by web/example/serve.py, generating with the bundled model in a Web Worker.

Needs web/node_modules (``make web-setup``); the browser comes from tests/browser.py (Debian's chromium
through selenium), which skips with the command that installs what is missing.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from web_reference import WEB

BUNDLED = WEB.parent / "runtime" / "data" / "nextword-patents.onnx"


def _example_server():
    spec = importlib.util.spec_from_file_location("nextword_web_example", WEB / "example" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


LOADED: dict[str, str] = {}  # the page's status line once the model loaded (the page fixture's)


@pytest.fixture(scope="module")
def page(browser) -> Iterator[Any]:
    """The example page in headless Chromium, once the model is loaded in the page's worker."""
    if not (WEB / "node_modules" / "onnxruntime-web").is_dir():
        missing = "web/node_modules is missing: run `make web-setup`"
        if os.environ.get("NEXTWORD_REQUIRE_WEB") == "1":
            pytest.fail(f"{missing}; NEXTWORD_REQUIRE_WEB=1 asks for the browser tests")
        pytest.skip(missing)
    server = _example_server().start(BUNDLED)
    try:
        browser.get(f"{server.url}/example/")
        _wait(browser, "return document.body.dataset.ready", 120)
        assert browser.execute_script("return document.body.dataset.ready") == "true", _status(browser)
        LOADED["status"] = _status(browser)  # what loading said, before a generation writes over it
        yield browser
    finally:
        server.stop()


def _wait(browser, script: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while (value := browser.execute_script(script)) in (None, False) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def _status(browser) -> str:
    return browser.find_element("id", "status").text


def _generate(browser, prompt: str, **fields: str) -> str:
    browser.execute_script(
        "const [prompt, fields] = arguments;"
        "document.getElementById('prompt').value = prompt;"
        "for (const [id, value] of Object.entries(fields)) document.getElementById(id).value = value;"
        "document.getElementById('generate').click();",
        prompt,
        fields,
    )
    _wait(browser, "return document.getElementById('stop').disabled", 120)
    text = browser.find_element("id", "output").get_property("textContent")
    assert text.startswith(prompt), _status(browser)
    return text[len(prompt) :]


def test_the_page_loads_the_model_in_a_worker(page):
    from nextword.runtime import load

    assert f"{load(BUNDLED).vocab_size} words" in LOADED["status"]
    assert page.execute_script("return typeof Worker") == "function"
    # the page itself never loaded onnxruntime: the worker did
    fetched = page.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert any(name.endswith("/src/client.js") for name in fetched)
    assert not any("ort-wasm" in name or name.endswith("/model.onnx") for name in fetched)


def test_the_browser_generates_what_python_generates(page):
    from nextword.runtime import load

    model = load(BUNDLED)
    for prompt in ("a neural network", "the present invention relates to", "each neuron"):
        want = model.generate(prompt, max_words=30, temperature=0)
        assert _generate(page, prompt, maxWords="30", temperature="0", seed="") == want
    seeded = _generate(page, "a neural network", maxWords="30", temperature="1", seed="11")
    assert seeded == _generate(page, "a neural network", maxWords="30", temperature="1", seed="11")
    assert seeded == model.generate("a neural network", max_words=30, seed=11)


def test_stop_ends_a_long_generation(page):
    page.execute_script(
        "document.getElementById('maxWords').value = '5000';"
        "document.getElementById('temperature').value = '1';"
        "document.getElementById('generate').click();"
    )
    _wait(page, "return document.getElementById('output').textContent.length > 200", 60)
    page.find_element("id", "stop").click()
    _wait(page, "return !document.getElementById('generate').disabled", 30)
    length = len(page.find_element("id", "output").get_property("textContent").split())
    assert 20 < length < 4000, length
    assert _generate(page, "a neural network", maxWords="3", temperature="0")  # the worker is free again


def test_docs_state_the_size_of_the_modules_the_page_ships():
    """docs/web.md's figures for serve/static/web (raw, and gzipped file by file as `nextword serve` sends
    them: level 6, files under a kilobyte as they are) stay within 5% of the files' (they once said
    174 kB, 57 kB gzipped, of 199 kB, 72 kB)."""
    files = sorted((WEB.parent / "serve" / "static" / "web").glob("*.js"))
    raw = sum(len(f.read_bytes()) for f in files) / 1000
    sent = [
        gzip.compress(f.read_bytes(), 6) if len(f.read_bytes()) >= 1024 else f.read_bytes() for f in files
    ]
    compressed = sum(map(len, sent)) / 1000
    doc = (WEB.parent / "docs" / "web.md").read_text(encoding="utf-8")
    stated = re.findall(r"nextword-web[^(]*\((\d+) kB, (\d+) kB gzipped\)", doc)
    assert len(stated) == 2, stated  # the files shipped, and what a page in browser mode downloads
    for shown_raw, shown_compressed in stated:
        assert abs(int(shown_raw) - raw) <= 0.05 * raw, (shown_raw, f"{raw:.0f} kB")
        assert abs(int(shown_compressed) - compressed) <= 0.05 * compressed, (shown_compressed, compressed)
