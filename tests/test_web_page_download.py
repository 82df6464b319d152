"""What the page's "Run in this browser" switch downloads, said and stoppable: `nextword serve`'s page in
headless Chromium against the real app, whose slow link is a throttle in front of it (Throttle): the page
says what the download costs before it begins and how far it has come while it runs (at a pace a screen
reader can follow); switched off, the transfer stops (the server sees the connection closed, well short
of the file) and the server answers; switched on again, the download starts anew and the page generates;
a download that stalls fails, naming the file and what to do, and turns the switch off; and so does a
server that keeps the page waiting for the download's size (said after PROGRESS seconds), or refuses it
(the server's reason quoted), whose request stops as the switch goes off.

A phone user on 150 kB/s saw "Downloading the model and onnxruntime-web (once)…" for minutes, with no
size and no progress, and switching off let the download go on spending their data."""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")

from browser import IN_BROWSER_LOAD_TIMEOUT, generate, requests_to, start_server, wait
from selenium.webdriver.common.by import By

BUNDLED = Path(__file__).resolve().parents[1] / "runtime" / "data" / "nextword-patents.onnx"
MODEL = "/model.onnx"
WASM = "/static/ort/ort-wasm-simd-threaded.wasm"
PIECE = 32 * 1024  # a slow link's pieces
HELD = 8 * 1024  # what the tiny model's downloads bring before their link stalls, in pieces of 4 kB
STALL = 30  # seconds without a byte after which the page gives a download up (browser.js's STALL_MS)
PROGRESS = 2.0  # seconds between two progress texts at least (browser.js's PROGRESS_MS)

# Every status text the page shows, with its time (performance.now(), ms), from its first script on.
RECORD_STATUS = """
window.said = [];
new MutationObserver((_, observer) => {
  const status = document.getElementById('where-status');
  if (!status) return;
  observer.disconnect();
  new MutationObserver(() => said.push([status.textContent, performance.now()])).observe(status, {
    childList: true, characterData: true, subtree: true,
  });
}).observe(document, { childList: true, subtree: true });
"""

# The page's timers of STALL seconds shortened to 1.5 s, so that a stall is found without waiting for it
# (were browser.js's delay another, the test would only take STALL seconds longer).
SHORT_STALLS = f"""
const setTimeoutAsGiven = window.setTimeout;
window.setTimeout = (run, ms, ...rest) => setTimeoutAsGiven(run, ms === {STALL * 1000} ? 1500 : ms, ...rest);
"""


# The page's timers of STALL seconds held rather than run: each waits in window.stalls until the test runs
# it, so that what comes before a stall (the waiting said after PROGRESS seconds) is seen before it.
HELD_STALLS = f"""
window.stalls = [];
const setTimeoutAsGiven = window.setTimeout;
window.setTimeout = (run, ms, ...rest) =>
  ms === {STALL * 1000} ? (stalls.push(() => run(...rest)), -1) : setTimeoutAsGiven(run, ms, ...rest);
"""


@dataclass
class Transfer:
    """One GET of a throttled path: the bytes passed to the server's connection, and how it ended."""

    asked: str | None  # the request's Range header, if any
    sent: int = 0
    complete: bool = False
    hung_up: threading.Event = field(default_factory=threading.Event)  # the client left before the end


class Throttle:
    """``app`` behind a slow link for GET ``path``: its body goes in ``piece``-byte pieces, ``pace`` seconds
    apart, and once ``limit`` bytes have gone (None: no limit) no more at all, as on a stalled connection,
    until the test moves the limit or calls :meth:`release`. Each request's :class:`Transfer` is kept in
    ``transfers``; a client that hangs up ends the answer."""

    def __init__(
        self, app: Any, path: str, *, pace: float = 0.0, limit: int | None = None, piece: int = PIECE
    ) -> None:
        self.app, self.path, self.pace, self.limit, self.piece = app, path, pace, limit, piece
        self.transfers: list[Transfer] = []

    def release(self) -> None:
        self.limit = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        import anyio

        transfer = Transfer(dict(scope["headers"]).get(b"range", b"").decode() or None)
        self.transfers.append(transfer)

        async def slowly(message: dict) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            for at in range(0, len(body), self.piece):
                while self.limit is not None and transfer.sent >= self.limit:
                    await anyio.sleep(0.02)  # the link's time, not the test's: nothing comes meanwhile
                await anyio.sleep(self.pace)
                await send(
                    {"type": "http.response.body", "body": body[at : at + self.piece], "more_body": True}
                )
                transfer.sent += len(body[at : at + self.piece])
            transfer.complete = not message.get("more_body", False)
            await send({"type": "http.response.body", "body": b"", "more_body": not transfer.complete})

        async with anyio.create_task_group() as group:

            async def watch() -> None:  # uvicorn says http.disconnect once the client has closed
                while (await receive())["type"] != "http.disconnect":
                    pass
                if not transfer.complete:
                    transfer.hung_up.set()
                    group.cancel_scope.cancel()  # the answer ends with it

            group.start_soon(watch)
            await self.app(scope, receive, slowly)
            group.cancel_scope.cancel()


class Unanswered:
    """``app``, but a ``method`` request for ``path`` gets no answer at all, not even its head, while
    ``silent`` is set: it waits until the client leaves, which sets ``hung_up``. ``asked`` counts them."""

    def __init__(self, app: Any, method: str, path: str) -> None:
        self.app, self.method, self.path = app, method, path
        self.silent = False
        self.asked = 0
        self.hung_up = threading.Event()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        asked = scope["type"] == "http" and (scope["method"], scope["path"]) == (self.method, self.path)
        if not (self.silent and asked):
            await self.app(scope, receive, send)
            return
        self.asked += 1
        while (await receive())["type"] != "http.disconnect":
            pass
        self.hung_up.set()


def status(driver) -> str:
    return driver.find_element(By.ID, "where-status").text


def backend(driver) -> str | None:
    return driver.execute_script("return document.body.dataset.backend ?? null")


def open_page(driver, url: str, *scripts: str) -> None:
    """The page at ``url``, with ``scripts`` run before its own, once its model line is shown."""
    added = [driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": s}) for s in scripts]
    try:
        driver.get(url + "/")
        wait(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .chip"), "the page never loaded"
        )
    finally:
        for script in added:
            driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", script)


def amounts(received: int, total: int | None = None) -> str:
    """As the page writes sizes: "1.2 of 3.6 MB", kB under a megabyte."""
    mega = (total if total is not None else received) >= 1e6
    shown = (lambda n: f"{n / 1e6:.1f}") if mega else (lambda n: f"{round(n / 1e3)}")
    unit = "MB" if mega else "kB"
    return f"{shown(received)} {unit}" if total is None else f"{shown(received)} of {shown(total)} {unit}"


def test_the_download_says_its_size_first_then_how_far_it_has_come(browser):
    """The bundled model (3.6 MB) over a slow link: the size of both downloads while not a byte of the
    model has come, then the bytes received, said every PROGRESS seconds at most (the status is a live
    region: a screen reader reads each), the latest within that (1.0 MB while the link holds there),
    then onnxruntime-web's load; and the model runs."""
    from nextword.serve import ServeConfig, create_app

    size = BUNDLED.stat().st_size
    wasm = (BUNDLED.parents[2] / "serve" / "static" / "ort" / "ort-wasm-simd-threaded.wasm.gz").stat().st_size
    throttle = Throttle(create_app(ServeConfig(model=str(BUNDLED))), MODEL, pace=0.04, limit=0)
    server = start_server(throttle)
    try:
        open_page(browser, server.url, RECORD_STATUS)
        browser.find_element(By.ID, "in-browser").click()
        first = f"Downloading the model ({amounts(size)}) and onnxruntime-web ({amounts(wasm)}), once…"
        assert first == "Downloading the model (3.6 MB) and onnxruntime-web (3.7 MB), once…"
        so_far = "return window.said.map(([text]) => text)"  # what was said, the status having moved on
        wait(browser, lambda d: first in d.execute_script(so_far), "no size said: " + status(browser))
        wait(browser, lambda _: throttle.transfers, "the model's download never began")
        assert throttle.transfers[0].sent == 0  # said before a byte of the model came
        throttle.limit = 2**20
        held = f"Downloading the model: {amounts(2**20, size)}…"
        wait(browser, lambda d: status(d) == held, "the bytes received while the link held were not said")
        assert throttle.transfers[0].sent == 2**20 and not throttle.transfers[0].hung_up.is_set()
        throttle.release()
        wait(browser, lambda d: backend(d) == "browser", "never ran in the browser", IN_BROWSER_LOAD_TIMEOUT)
        said = browser.execute_script("return window.said")
        texts = [text for text, _ in said]
        assert texts[0] == first, texts
        loading = texts.index("Loading onnxruntime-web (3.7 MB)…")
        progress = texts[1:loading]
        assert held in progress and len(progress) >= 2, texts
        pattern = r"Downloading the model: (\d\.\d) of 3\.6 MB…"
        shown = [float(re.fullmatch(pattern, text)[1]) for text in progress]
        assert shown == sorted(shown) and shown[-1] > 1.0, texts
        times = [at for _, at in said[:loading]]
        gaps = [later - before for before, later in itertools.pairwise(times)]
        assert min(gaps) >= PROGRESS * 1000 - 50, gaps  # never more than one text every PROGRESS s
        assert re.fullmatch(r"Loaded in \d+\.\d s\. Words are generated in this browser\.", texts[-1]), texts
        assert len(throttle.transfers) == 1 and throttle.transfers[0].complete
        assert requests_to(browser, MODEL) == 1  # the page itself fetched it, once
        before = requests_to(browser, "/v1/completions")
        assert generate(browser, "a neural network", 5, 0, "")
        assert requests_to(browser, "/v1/completions") == before  # generated here, not on the server
    finally:
        throttle.release()
        server.stop()


def test_switched_off_mid_download_the_transfer_stops_and_on_again_it_starts_anew(browser, model):
    """Off while the model downloads: the page's fetch is aborted (the server sees the connection closed
    having sent a fraction of the file), the page says so and the server answers; on again, a new
    download runs to its end and the page generates in the browser."""
    from nextword.serve import ServeConfig, create_app

    size = Path(model.source).stat().st_size
    throttle = Throttle(create_app(ServeConfig(), model), MODEL, limit=HELD, piece=4096)
    server = start_server(throttle)
    try:
        open_page(browser, server.url)
        toggle = browser.find_element(By.ID, "in-browser")
        toggle.click()
        held = f"Downloading the model: {amounts(HELD, size)}…"
        wait(browser, lambda d: status(d) == held, "the download never showed its progress")
        toggle.click()  # off, the link still holding
        assert status(browser) == "Download stopped; words are generated on the server."
        assert backend(browser) == "server" and not toggle.is_selected()
        assert browser.execute_script("return document.body.dataset.loading ?? null") is None
        stopped = throttle.transfers[0]
        wait(browser, lambda _: stopped.hung_up.is_set(), "the download went on after the switch was off")
        assert stopped.sent == HELD < size // 5 and not stopped.complete
        assert status(browser) == "Download stopped; words are generated on the server."
        assert "error" not in browser.find_element(By.ID, "where-status").get_attribute("class")
        before = requests_to(browser, "/v1/completions")
        want = model.generate("the network", max_words=8, temperature=0, top_k=None, top_p=None)
        assert generate(browser, "the network", 8, 0, "") == want
        assert requests_to(browser, "/v1/completions") == before + 1  # the server answered

        throttle.release()
        toggle.click()  # on again: a download of its own, to its end
        wait(browser, lambda d: backend(d) == "browser", "never ran in the browser", IN_BROWSER_LOAD_TIMEOUT)
        assert status(browser).endswith("Words are generated in this browser.")
        # a download of its own, which Chromium's cache may resume (a Range for the bytes it lacks)
        assert throttle.transfers[-1].complete and sum(t.sent for t in throttle.transfers[1:]) <= size
        want = model.generate("each neuron", max_words=10, temperature=0, top_k=None, top_p=None)
        assert generate(browser, "each neuron", 10, 0, "") == want
        assert requests_to(browser, "/v1/completions") == before + 1  # not the server this time
    finally:
        throttle.release()
        server.stop()


def test_a_stalled_download_fails_naming_the_file_and_turns_the_switch_off(browser, model):
    """A link that brings nothing more: once STALL seconds pass without a byte (shortened here), the
    download is given up, the page says which file and what to do, and the switch is off."""
    from nextword.serve import ServeConfig, create_app

    size = Path(model.source).stat().st_size
    throttle = Throttle(create_app(ServeConfig(), model), MODEL, limit=HELD, piece=4096)
    server = start_server(throttle)
    try:
        open_page(browser, server.url, SHORT_STALLS)
        toggle = browser.find_element(By.ID, "in-browser")
        toggle.click()
        wait(
            browser,
            lambda d: status(d).startswith("Cannot run"),
            "a stalled download was never given up: " + status(browser),
            STALL + 30,
        )
        assert status(browser) == (
            "Cannot run in this browser: model file model.onnx stopped arriving: nothing came for 30 s "
            f"({amounts(HELD, size)} received); check the connection, then turn the switch on again"
        )
        assert "error" in browser.find_element(By.ID, "where-status").get_attribute("class")
        assert not toggle.is_selected() and backend(browser) is None
        assert browser.execute_script("return document.body.dataset.loading ?? null") is None
        wait(browser, lambda _: throttle.transfers[0].hung_up.is_set(), "the stalled download was left open")
    finally:
        throttle.release()
        server.stop()


def test_a_server_that_never_says_what_the_download_costs_is_given_up(browser, model):
    """The switch asks the server for the model file's size (GET /v1/models) before the download begins:
    a server that never answered left the switch on, and the status unchanged, for good. The page now
    says it is waiting after PROGRESS seconds, gives up after STALL seconds (when the test runs the
    page's timer) naming what to do, stops the request and turns the switch off; nothing is downloaded."""
    from nextword.serve import ServeConfig, create_app

    unanswered = Unanswered(create_app(ServeConfig(), model), "GET", "/v1/models")
    server = start_server(unanswered)
    try:
        open_page(browser, server.url, HELD_STALLS, RECORD_STATUS)
        unanswered.silent = True  # from now on the server says nothing of its model (the page asked)
        toggle = browser.find_element(By.ID, "in-browser")
        toggle.click()
        waiting = "Asking the server what the download costs…"
        wait(browser, lambda d: status(d) == waiting, "the waiting was not said: " + status(browser))
        assert unanswered.asked == 1 and not unanswered.hung_up.is_set()
        assert browser.execute_script("return stalls.length") == 1  # the give-up, to come
        browser.execute_script("stalls.splice(0).forEach((run) => run())")
        wait(browser, lambda d: status(d).startswith("Cannot run"), "never given up: " + status(browser))
        failed = (
            "Cannot run in this browser: the server did not say what the download costs within 30 s; "
            "check the connection, then turn the switch on again"
        )
        texts = browser.execute_script("return window.said.map(([text]) => text)")
        assert texts[-2:] == [waiting, failed], texts
        assert status(browser) == failed
        assert not toggle.is_selected() and backend(browser) is None
        assert browser.execute_script("return document.body.dataset.loading ?? null") is None
        assert requests_to(browser, MODEL) == 0
        wait(browser, lambda _: unanswered.hung_up.is_set(), "the request was left open")
    finally:
        unanswered.silent = False
        server.stop()


def test_a_webassembly_size_never_said_is_done_without(browser, model):
    """The size of onnxruntime-web's WebAssembly (a HEAD, asked beside /v1/models) never comes: at the
    stall its request is stopped, and the download goes on, saying the model file's size alone."""
    from nextword.serve import ServeConfig, create_app

    size = Path(model.source).stat().st_size
    unanswered = Unanswered(create_app(ServeConfig(), model), "HEAD", WASM)
    server = start_server(unanswered)
    try:
        open_page(browser, server.url, HELD_STALLS, RECORD_STATUS)
        unanswered.silent = True
        described = requests_to(browser, "/v1/models")  # as the page loaded
        toggle = browser.find_element(By.ID, "in-browser")
        toggle.click()
        wait(browser, lambda _: unanswered.asked, "the size was never asked")
        # the model file's size has come (the switch's own /v1/models): only the HEAD is left unanswered
        wait(browser, lambda d: requests_to(d, "/v1/models") > described, "the server's answer never came")
        browser.execute_script("stalls.splice(0).forEach((run) => run())")
        wait(browser, lambda _: unanswered.hung_up.is_set(), "the request was left open")
        going_on = f"Downloading the model ({amounts(size)}) and onnxruntime-web, once…"
        so_far = "return window.said.map(([text]) => text)"
        wait(browser, lambda d: going_on in d.execute_script(so_far), "the download did not go on")
        toggle.click()  # off: no load left running
    finally:
        unanswered.silent = False
        server.stop()


def test_switched_off_while_the_server_is_asked_the_request_stops(browser, model):
    """Off while the page waits for the server to say what the download costs: the request is stopped
    (the server sees its connection closed), the page says the download stopped, and the server
    answers."""
    from nextword.serve import ServeConfig, create_app

    unanswered = Unanswered(create_app(ServeConfig(), model), "GET", "/v1/models")
    server = start_server(unanswered)
    try:
        open_page(browser, server.url)
        unanswered.silent = True
        toggle = browser.find_element(By.ID, "in-browser")
        toggle.click()
        wait(browser, lambda _: unanswered.asked, "the switch never asked the server")
        toggle.click()
        assert status(browser) == "Download stopped; words are generated on the server."
        wait(browser, lambda _: unanswered.hung_up.is_set(), "the request went on after the switch was off")
        assert backend(browser) == "server" and not toggle.is_selected()
        assert "error" not in browser.find_element(By.ID, "where-status").get_attribute("class")
        assert requests_to(browser, MODEL) == 0
    finally:
        unanswered.silent = False
        server.stop()


def test_a_server_that_refuses_to_say_what_the_download_costs_is_quoted(browser, model):
    """/v1/models answers an error as the switch asks: the page says the server's reason, not that the
    server kept it waiting, and turns the switch off."""
    from nextword.serve import ServeConfig, create_app

    app = create_app(ServeConfig(), model)
    refusing = False

    async def refuses(scope: dict, receive: Any, send: Any) -> None:
        if not refusing or scope["type"] != "http" or scope["path"] != "/v1/models":
            await app(scope, receive, send)
            return
        body = b'{"error": {"message": "the model is being replaced", "type": "server_error"}}'
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 503, "headers": head})
        await send({"type": "http.response.body", "body": body})

    server = start_server(refuses)
    try:
        open_page(browser, server.url)
        refusing = True
        toggle = browser.find_element(By.ID, "in-browser")
        toggle.click()
        wait(browser, lambda d: status(d).startswith("Cannot run"), "never refused: " + status(browser))
        assert status(browser) == "Cannot run in this browser: the model is being replaced"
        assert not toggle.is_selected() and backend(browser) is None
        assert requests_to(browser, MODEL) == 0
    finally:
        server.stop()


def test_switched_off_while_onnxruntime_web_loads_the_worker_stops_its_download(browser, model):
    """The worker's own download (onnxruntime-web's WebAssembly) stalled: past STALL seconds the page
    says what to do; off, the worker is ended (WorkerModel.load's signal) and its download with it; on
    again, the model file that arrived whole is not downloaded again."""
    from nextword.serve import ServeConfig, create_app

    throttle = Throttle(create_app(ServeConfig(), model), WASM, limit=HELD, piece=4096)
    server = start_server(throttle)
    try:
        open_page(browser, server.url, SHORT_STALLS)
        toggle = browser.find_element(By.ID, "in-browser")
        toggle.click()
        started = lambda _: throttle.transfers and throttle.transfers[0].sent == HELD  # noqa: E731
        wait(browser, started, "the worker's download never began", IN_BROWSER_LOAD_TIMEOUT)
        slow = (
            "Still loading onnxruntime-web (3.7 MB) after 30 s: where the connection has stalled, turn the "
            "switch off."
        )
        wait(
            browser, lambda d: status(d) == slow, "no word of a stalled load: " + status(browser), STALL + 30
        )
        toggle.click()
        assert status(browser) == "Download stopped; words are generated on the server."
        wait(browser, lambda _: throttle.transfers[0].hung_up.is_set(), "the worker's download went on")
        assert throttle.transfers[0].sent == HELD
        throttle.release()
        toggle.click()
        wait(browser, lambda d: backend(d) == "browser", "never ran in the browser", IN_BROWSER_LOAD_TIMEOUT)
        assert requests_to(browser, MODEL) == 1  # kept from the first time
        assert throttle.transfers[-1].complete  # the worker's own download, anew (or resumed by the cache)
        want = model.generate("the system", max_words=6, temperature=0, top_k=None, top_p=None)
        assert generate(browser, "the system", 6, 0, "") == want
    finally:
        throttle.release()
        server.stop()


def test_a_slow_download_that_keeps_coming_is_not_taken_for_stalled(browser, model):
    """A download longer than STALL seconds (shortened here) whose bytes keep coming runs to its end: the
    stall is of a gap between two pieces, not of the whole download. Once it has come, no figure of the
    download is said over the load that follows; and onnxruntime-web's size was asked with a HEAD: the
    page itself never GETs the WebAssembly (3.7 MB), only the worker does."""
    from nextword.serve import ServeConfig, create_app

    size = Path(model.source).stat().st_size
    pieces = -(-size // 4096)
    pace = min(0.3, 3.0 / pieces)  # about 3 s in all, twice the shortened stall; no gap near it
    wasm = Throttle(create_app(ServeConfig(), model), WASM)
    throttle = Throttle(wasm, MODEL, pace=pace, piece=4096)
    server = start_server(throttle)
    try:
        open_page(browser, server.url, SHORT_STALLS, RECORD_STATUS)
        browser.find_element(By.ID, "in-browser").click()
        wait(browser, lambda d: backend(d) == "browser", "never ran in the browser: " + status(browser), 60)
        assert len(throttle.transfers) == 1 and throttle.transfers[0].complete
        texts = browser.execute_script("return window.said.map(([text]) => text)")
        loading = texts.index("Loading onnxruntime-web (3.7 MB)…")
        assert not [text for text in texts[loading:] if text.startswith("Downloading")], texts
        assert len(wasm.transfers) == 1  # the worker's GET; the page's was a HEAD
    finally:
        throttle.release()
        server.stop()
