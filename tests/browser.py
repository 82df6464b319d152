"""A live server on a free loopback port and a real headless browser (Debian's chromium through its
chromedriver, driven by selenium), for tests of the page. conftest.py imports the two fixtures, so any
test module can ask for them:

    def test_page(browser, live_server):
        browser.get(live_server.url + "/")

``live_server`` serves ``create_app(ServeConfig(...), model)`` for the session's tiny test model;
``browser`` is a selenium WebDriver. Both are module-scoped. Missing pieces skip with the command that
installs them (``.ci/run`` installs all of them, so CI never skips).
"""

from __future__ import annotations

import math
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install -y chromium chromium-driver"


# uvicorn's line once it listens, with the port it bound (the one it chose, for --port 0)
BOUND = re.compile(r"Uvicorn running on https?://127\.0\.0\.1:(\d+)")


def bound_port(log: IO[str], timeout: float = 60) -> tuple[int, str]:
    """Read a `nextword serve` process's log (a text pipe) up to uvicorn's "running on" line: the port
    it bound, and the text read. Start servers with ``--port 0``: a port picked by the test could be
    taken by another process before the server binds it. AssertionError when the process ends first,
    or says nothing of the kind within ``timeout`` seconds (the caller stops the process)."""
    lines: list[str] = []
    found: list[re.Match[str]] = []

    def read() -> None:
        for line in iter(log.readline, ""):
            lines.append(line)
            if match := BOUND.search(line):
                found.append(match)
                return

    reader = threading.Thread(target=read, name="bound-port", daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        state = "is still starting" if reader.is_alive() else "ended"
        raise AssertionError(f"the server {state} without listening: {''.join(lines)}")
    return int(found[0].group(1)), "".join(lines)


@dataclass
class LiveServer:
    """A uvicorn server running an app on a thread of this process."""

    url: str
    app: Any
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(app: Any, port: int | None = None, **uvicorn_options: Any) -> LiveServer:
    """Serve ``app`` on 127.0.0.1 in a thread, with the HTTP protocol `nextword serve` runs unless
    ``uvicorn_options`` name another; returns once it accepts connections. Without ``port`` the
    server binds any free one itself (none is picked here that another process could take first)."""
    import uvicorn

    port = port or 0
    if "http" not in uvicorn_options:  # the protocol `nextword serve` runs, with its guards
        from nextword.serve.http_guard import GuardedHttpToolsProtocol

        uvicorn_options["http"] = GuardedHttpToolsProtocol
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not start on port {port}")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveServer(f"http://127.0.0.1:{port}", app, server, thread)


def failing(app: Any, *paths: str) -> Any:
    """``app``, except that each of ``paths`` answers 404: a file missing from a deployment."""

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in paths:
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return wrapped


@pytest.fixture(scope="module")
def live_server(model) -> Iterator[LiveServer]:
    """The nextword app for the tiny test model, on a free loopback port."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from nextword.serve import ServeConfig, create_app

    server = start_server(create_app(ServeConfig(), model))
    yield server
    server.stop()


def chromium_paths() -> tuple[str, str]:
    """Debian's chromium binary and its chromedriver; skips the test when either is missing."""
    binary = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver" if Path("/usr/lib/chromium/chromedriver").exists() else None
    )
    if not binary or not driver:
        pytest.skip(f"no chromium/chromedriver on this machine: {INSTALL}")
    return binary, driver


def new_browser(
    width: int = 1280,
    height: int = 900,
    dark: bool = False,
    *,
    test_ca: bool = False,
    loopback_names: tuple[str, ...] = (),
) -> Any:
    """A headless chromium WebDriver of the given window size (``test_ca``: it takes the certificates of
    a test CA, which it does not know; ``loopback_names``: host names it resolves to 127.0.0.1, as a
    DNS rebinding attacker's would)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="install nextword[serve-test] (selenium)")
    binary, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")  # 0: dark
    if loopback_names:
        rules = ", ".join(f"MAP {name} 127.0.0.1" for name in loopback_names)
        options.add_argument(f"--host-resolver-rules={rules}")
    options.accept_insecure_certs = test_ca
    service = webdriver.ChromeService(executable_path=driver)
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(30)
    return browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium, closed after the module's tests."""
    driver = new_browser()
    yield driver
    driver.quit()


# ----------------------------------------------------------------------------- driving the page
# Helpers of the page's tests (test_serve_page*.py, test_page_*.py); selenium is imported when they run,
# as the modules that call them skip without it.

PAGE_TIMEOUT = 20  # seconds for the page to answer what a test did, the server running the model
IN_BROWSER_TIMEOUT = 60  # a generation in "run in this browser" mode, on a busy 2-core machine
IN_BROWSER_LOAD_TIMEOUT = 120  # a cold start there: worker, onnxruntime-web, model, session


def wait(driver: Any, condition: Any, message: str, timeout: float = PAGE_TIMEOUT) -> Any:
    """``condition(driver)``'s first true value within ``timeout`` seconds; else fails with ``message``."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message)


def load(driver: Any, url: str) -> Any:
    """The page at ``url``/ once the model line and the suggestions are shown."""
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    wait(driver, lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the model line never loaded")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .chip"), "no suggestions")
    return driver


def press(driver: Any, *keys: str) -> None:
    """Keys as a user types them, to whatever has the focus."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver)
    for key in keys:
        actions.send_keys(key)
    actions.perform()


def shift_tab(driver: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()


def ax_node(driver: Any, element_id: str) -> dict:
    """The accessibility tree's node for the element of that id, as chromium computes it."""
    found = driver.execute_cdp_cmd(
        "Runtime.evaluate", {"expression": f"document.getElementById({element_id!r})"}
    )
    node = driver.execute_cdp_cmd("DOM.describeNode", {"objectId": found["result"]["objectId"]})["node"]
    tree = driver.execute_cdp_cmd(
        "Accessibility.getPartialAXTree", {"backendNodeId": node["backendNodeId"], "fetchRelatives": False}
    )
    return tree["nodes"][0]


def requests_to(driver: Any, path: str) -> int:
    """How many times the page itself fetched ``path`` (not counting the worker's own fetches)."""
    script = "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)"
    return driver.execute_script(script).count(path)


def generate(driver: Any, prompt: str, words: int, temperature: float, seed: str) -> str:
    """The text the page generates for these settings (top-k and top-p off), from the server or, in "run
    in this browser" mode, from nextword-web."""
    from selenium.webdriver.common.by import By

    driver.execute_script(
        "const [prompt, words, temperature, seed] = arguments;"
        "document.getElementById('prompt').value = prompt;"
        "const values = [['words', words], ['temperature', temperature], ['top-k', 0], ['top-p', 1]];"
        "for (const [id, value] of values) document.getElementById(id).value = value;"
        "document.getElementById('seed').value = seed;"
        "document.getElementById('generate').click();",
        prompt,
        words,
        temperature,
        seed,
    )
    wait(
        driver,
        lambda d: d.find_element(By.ID, "generate").is_enabled(),
        "the generation never ended",
        IN_BROWSER_TIMEOUT,
    )
    return driver.execute_script("return document.querySelector('#output .generated').textContent")


def run_in_browser(driver: Any) -> None:
    """Switch the page to "run in this browser" and wait until the model is loaded there."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "in-browser").click()
    wait(
        driver,
        lambda d: d.execute_script("return document.body.dataset.backend") == "browser",
        "the model never loaded in the browser: "
        + driver.execute_script("return document.getElementById('where-status').textContent"),
        IN_BROWSER_LOAD_TIMEOUT,
    )


# A text the tokenizer reads otherwise than it was typed: a URL split into words, double spaces and a
# line break, capitals, quotation marks and a figure reference dropped, a curly apostrophe, a word the
# model does not know, and "½", read as three words ("1", "⁄", "2").
TYPED = "see https://ex.com/aa for.  New  line\nthe END of the “network” (12) zzqxw’s ½"
TYPED_WORDS = ["see", "https", ":", "/", "/", "ex.com/aa", "for", ".", "New", "line", "the", "END"]
TYPED_WORDS += ["of", "the", "network", "zzqxw’s", "½"]


def check_the_typed_text_is_shown(driver: Any, model: Any) -> None:
    """Score TYPED: the score view shows it as typed, each of its words shaded with the scores of the
    words read from it (the title names them), and nothing between the words shaded."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "tab-score").click()
    driver.execute_script("document.getElementById('score-text').value = arguments[0]", TYPED)
    driver.find_element(By.ID, "score-button").click()
    wait(driver, lambda d: "perplexity" in d.find_element(By.ID, "score-summary").text, "no score shown")
    text, visible, spans = driver.execute_script(
        "const scored = document.getElementById('scored');"
        "return [scored.textContent, scored.innerText, [...scored.querySelectorAll('.scored-word')]"
        ".map((e) => [e.textContent, e.title.split('\\n').map((line) => line.split(': p = ')[0]),"
        " e.classList.contains('unknown'), Number(e.dataset.probability)])];"
    )
    assert text == TYPED and visible == TYPED  # line breaks and double spaces shown, not collapsed
    assert [shown for shown, *_ in spans] == TYPED_WORDS
    tokens = model.tokenizer.tokenize(TYPED)
    assert [read for _, read, *_ in spans] == [[t] for t in tokens[:-3]] + [tokens[-3:]]
    unknown = [shown for shown, _, flagged, _ in spans if flagged]
    assert "zzqxw’s" in unknown and "network" not in unknown
    expected = model.score(TYPED)
    probabilities = [math.exp(w.logprob) for w in expected.words]  # "½" is shaded as its least likely
    wanted = [*probabilities[:-3], min(probabilities[-3:])]
    assert [p for *_, p in spans] == pytest.approx(wanted, rel=1e-4)  # nextword-web: float32 rounding
    summary = driver.find_element(By.ID, "score-summary").text
    assert summary.startswith(f"{len(tokens)} words · perplexity {expected.perplexity:.1f}")


def server_threads() -> list[threading.Thread]:
    """The threads of servers that nextword.serve.start() runs in this process."""
    return [thread for thread in threading.enumerate() if thread.name == "nextword-serve"]


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
