"""`nextword serve`'s page in "run in this browser" mode, in a real headless Chromium: the model file is
fetched once, nextword-web generates in a Web Worker, and the texts, suggestions and scores are the
server's; nothing the page uses comes from another origin."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from browser import (
    IN_BROWSER_LOAD_TIMEOUT,
    IN_BROWSER_TIMEOUT,
    check_the_typed_text_is_shown,
    generate,
    requests_to,
    run_in_browser,
)
from browser import wait as page_wait
from selenium.webdriver.common.by import By


def wait(driver, condition, message: str, timeout: float = IN_BROWSER_TIMEOUT):
    """browser.wait, with time for the model that runs in the page's worker."""
    return page_wait(driver, condition, message, timeout)


@pytest.fixture
def browser_mode(browser, live_server):
    """The page switched to run the model in the browser, once the model is loaded there. Loaded once
    for the module, and again only where a test before left another page or the server's mode."""
    here = browser.current_url.startswith(live_server.url + "/")
    if here and browser.execute_script("return document.body.dataset.backend") == "browser":
        return browser
    browser.get(live_server.url + "/")
    wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the model line never loaded")
    run_in_browser(browser)
    return browser


def test_the_browser_generates_what_the_server_generates(browser_mode, model):
    completions_before = requests_to(browser_mode, "/v1/completions")
    for prompt in ("the network", "a neural network", "each neuron"):
        want = model.generate(prompt, max_words=20, temperature=0, top_k=None, top_p=None)
        assert generate(browser_mode, prompt, 20, 0, "") == want
    seeded = generate(browser_mode, "the system", 25, 0.9, "4")
    assert seeded == model.generate("the system", max_words=25, temperature=0.9, seed=4)
    big = 12345678901234567890  # past 2^53: the page hands nextword-web the exact integer
    seeded = generate(browser_mode, "the system", 15, 0.9, str(big))
    assert seeded == model.generate("the system", max_words=15, temperature=0.9, seed=big)
    assert requests_to(browser_mode, "/v1/completions") == completions_before  # the server was not asked
    assert "words in" in browser_mode.find_element(By.ID, "status").text


def test_suggestions_and_scores_come_from_the_browser(browser_mode, model):
    suggest_before = requests_to(browser_mode, "/v1/suggest")
    prompt = browser_mode.find_element(By.ID, "prompt")
    prompt.clear()
    prompt.send_keys("the neural")
    expected = [word for word, _ in model.next_words("the neural", k=8)]
    chips = "return [...document.querySelectorAll('#suggestions .chip-word')].map(e => e.textContent)"
    wait(browser_mode, lambda d: d.execute_script(chips) == expected, "the suggestions never matched")
    assert requests_to(browser_mode, "/v1/suggest") == suggest_before
    browser_mode.find_element(By.ID, "tab-score").click()
    text = "The network receives an input signal."
    browser_mode.execute_script("document.getElementById('score-text').value = arguments[0]", text)
    browser_mode.find_element(By.ID, "score-button").click()
    want = model.score(text)
    wait(browser_mode, lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text, "no score")
    words = browser_mode.execute_script(
        "return [...document.querySelectorAll('#scored .scored-word')].map(e => e.textContent)"
    )
    assert [w.lower() for w in words] == [w.word for w in want.words]
    assert f"perplexity {want.perplexity:.1f}" in browser_mode.find_element(By.ID, "score-summary").text
    assert requests_to(browser_mode, "/v1/score") == 0
    browser_mode.find_element(By.ID, "tab-write").click()


def test_the_browsers_score_shows_the_text_as_typed(browser_mode, model):
    before = requests_to(browser_mode, "/v1/score")
    try:
        check_the_typed_text_is_shown(browser_mode, model)
    finally:
        browser_mode.find_element(By.ID, "tab-write").click()
    assert requests_to(browser_mode, "/v1/score") == before  # nextword-web scored it


def test_stop_and_back_to_the_server(browser_mode, model):
    browser_mode.execute_script(  # Stop as soon as the generation has started
        "document.getElementById('words').value = 200; document.getElementById('generate').click();"
        "document.getElementById('stop').click();"
    )
    wait(browser_mode, lambda d: d.find_element(By.ID, "generate").is_enabled(), "Stop did not stop")
    assert browser_mode.find_element(By.ID, "status").text == "stopped"
    browser_mode.find_element(By.ID, "in-browser").click()  # off: the server answers again
    assert browser_mode.execute_script("return document.body.dataset.backend") == "server"
    before = requests_to(browser_mode, "/v1/completions")
    want = model.generate("the network", max_words=10, temperature=0, top_k=None, top_p=None)
    assert generate(browser_mode, "the network", 10, 0, "") == want
    assert requests_to(browser_mode, "/v1/completions") == before + 1


def test_everything_came_from_this_server_and_the_model_once(browser_mode, live_server):
    page = browser_mode.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    worker = browser_mode.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.nextwordInBrowser.model.resources().then((r) => done(r.map((e) => e.name)));"
    )
    assert all(url.startswith(live_server.url) for url in page + worker), page + worker
    paths = [url.removeprefix(live_server.url) for url in worker]
    # fetched once, by the page itself (which says how far the download has come), for every generation
    # above; the worker was handed its bytes
    assert requests_to(browser_mode, "/model.onnx") == 1 and "/model.onnx" not in paths
    assert paths.count("/static/ort/ort-wasm-simd-threaded.wasm") == 1


@pytest.mark.parametrize(
    "defaults",
    [
        {"num_beams": 3, "num_return_sequences": 2, "max_words": 12},
        {"top_k": 2, "top_p": 0.5, "num_return_sequences": 3},
        {"min_words": 40, "max_words": 50},
    ],
)
def test_in_the_browser_too_the_pages_controls_override_the_files_defaults(
    browser, model_path, tmp_path, defaults
):
    """As on the server (test_serve_page.py): one sampled text, streamed, with the sliders' settings,
    from a file whose decoding defaults ask for beam search, several texts, top-k, top-p, or more words
    than the slider's."""
    onnx = pytest.importorskip("onnx", reason="install nextword[train] to write the file's defaults")
    import json

    import crafted
    from browser import start_server

    from nextword.runtime import load
    from nextword.serve import ServeConfig, create_app

    proto = crafted.set_meta(onnx.load(model_path), "nextword.generation", json.dumps(defaults))
    path = tmp_path / "special.onnx"
    path.write_bytes(proto.SerializeToString())
    special = load(path, threads=1)
    server = start_server(create_app(ServeConfig(), special))
    try:
        browser.get(server.url + "/")
        wait(browser, lambda d: "special" in d.find_element(By.ID, "model-line").text, "page never loaded")
        browser.find_element(By.ID, "in-browser").click()
        backend = "return document.body.dataset.backend"
        wait(
            browser,
            lambda d: d.execute_script(backend) == "browser",
            "not in the browser",
            IN_BROWSER_LOAD_TIMEOUT,
        )
        options = {"num_beams": 1, "num_return_sequences": 1, "top_k": None, "top_p": None}
        want = special.generate("the system", max_words=15, temperature=0.8, seed=2, **options)
        assert generate(browser, "the system", 15, 0.8, "2") == want
        assert "words in" in browser.find_element(By.ID, "status").text
    finally:
        server.stop()


LOADING = "return document.body.dataset.loading ?? null"


def loaded(browser) -> None:
    """Wait until the page's load of the model in the browser has ended, done or failed."""
    ended = lambda d: d.execute_script(LOADING) is None  # noqa: E731
    wait(browser, ended, "the load never ended", IN_BROWSER_LOAD_TIMEOUT)


def switch_on_and_wait(browser, url: str) -> str:
    """Open the page at ``url``, tick "Run in this browser", and return what the switch says once the load
    is done or has failed."""
    browser.get(url)
    wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the page never loaded")
    browser.find_element(By.ID, "in-browser").click()
    loaded(browser)
    return browser.find_element(By.ID, "where-status").text


def test_the_switch_turned_off_while_the_model_downloads_gives_the_server_back(browser, model):
    """A download that stalls (a proxy, a network gone quiet) held the switch disabled and the page with
    it: the switch now stays free, turned off the server answers at once and the download stops, and the
    answer the server sends later (here a failure) says nothing over the page's line."""
    import threading

    import anyio
    from browser import start_server

    from nextword.serve import ServeConfig, create_app

    app, release = create_app(ServeConfig(), model), threading.Event()

    async def stalling(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/model.onnx":
            while not release.is_set():
                await anyio.sleep(0.05)
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    server = start_server(stalling)
    try:
        browser.get(server.url + "/")
        wait(browser, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the page never loaded")
        toggle = browser.find_element(By.ID, "in-browser")
        status = browser.find_element(By.ID, "where-status")
        toggle.click()
        wait(browser, lambda d: status.text.startswith("Downloading the model"), "the download never began")
        assert toggle.is_enabled() and browser.execute_script(LOADING) == "browser"
        toggle.click()  # off while model.onnx is held
        stopped = "Download stopped; words are generated on the server."
        assert status.text == stopped
        assert browser.execute_script(LOADING) is None
        assert browser.execute_script("return document.body.dataset.backend") == "server"
        want = model.generate("the network", max_words=8, temperature=0, top_k=None, top_p=None)
        assert generate(browser, "the network", 8, 0, "") == want  # the server's answer, at once
        release.set()
        loaded(browser)
        assert status.text == stopped
        assert "error" not in status.get_attribute("class")
        assert not toggle.is_selected()
    finally:
        release.set()
        server.stop()


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        # the worker's script: the load once waited for an answer forever, the switch ticked and disabled
        ("/static/web/worker.js", "the worker {url}/static/web/worker.js failed: its script could not be"),
        # onnxruntime-web's WebAssembly: once blamed on the model file ("could not be loaded as an ONNX
        # model")
        (
            "/static/ort/ort-wasm-simd-threaded.wasm",
            "onnxruntime-web could not start its WebAssembly backend "
            "({url}/static/ort/ort-wasm-simd-threaded.wasm)",
        ),
    ],
)
def test_a_file_that_cannot_load_is_named_and_the_switch_released(browser, model, missing, says):
    from browser import failing, start_server

    from nextword.serve import ServeConfig, create_app

    server = start_server(failing(create_app(ServeConfig(), model), missing))
    try:
        status = switch_on_and_wait(browser, server.url + "/")
        assert status.startswith("Cannot run in this browser: " + says.format(url=server.url)), status
        assert "model.onnx" not in status
        assert not browser.find_element(By.ID, "in-browser").is_selected()
        assert browser.execute_script("return document.body.dataset.backend") is None
        assert "error" in browser.find_element(By.ID, "where-status").get_attribute("class")
    finally:
        server.stop()


def test_a_server_without_size_limits_lets_the_browser_load_a_file_over_the_caps(
    browser, model_path, tmp_path
):
    """nextword serve --no-size-limits serves a file over load()'s 64 MiB cap; "Run in this browser" once
    refused that same file with nextword-web's cap (advice a page user cannot take)."""
    import onnx
    from browser import start_server

    from nextword.serve import ServeConfig, create_app

    proto = onnx.load(str(model_path))
    proto.graph.doc_string = "x" * (65 * 2**20)  # past the 64 MiB cap; nothing reads it
    big = tmp_path / "tiny-padded.onnx"
    onnx.save(proto, str(big))
    server = start_server(create_app(ServeConfig(model=str(big), size_limits=False)))
    try:
        status = switch_on_and_wait(browser, server.url + "/")
        assert status.endswith("Words are generated in this browser."), status
        assert browser.execute_script("return document.body.dataset.backend") == "browser"
    finally:
        server.stop()


def test_a_server_that_keeps_its_model_file_offers_no_browser_mode(browser, model_path):
    """nextword serve --no-model-download: GET /model.onnx is a 404 that says why, /v1/models says so,
    and the page's switch is off for good with the reason beside it; the server still answers."""
    import httpx
    from browser import start_server

    from nextword.serve import ServeConfig, create_app

    server = start_server(create_app(ServeConfig(model=str(model_path), model_download=False)))
    try:
        answer = httpx.get(server.url + "/model.onnx")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_download_off"
        assert "--no-model-download" in answer.json()["error"]["message"]
        assert httpx.get(server.url + "/v1/models").json()["data"][0]["limits"]["model_download"] is False
        browser.get(server.url + "/")
        toggle = browser.find_element(By.ID, "in-browser")
        wait(browser, lambda d: not toggle.is_enabled(), "the switch stayed free")
        status = browser.find_element(By.ID, "where-status").text
        assert "keeps its model file to itself (--no-model-download)" in status, status
        assert not toggle.is_selected() and requests_to(browser, "/model.onnx") == 0
        assert generate(browser, "the network", 5, 0, "1")  # the server answers as before
    finally:
        server.stop()
