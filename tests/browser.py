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

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install -y chromium chromium-driver"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    ``uvicorn_options`` name another; returns once it accepts connections."""
    import uvicorn

    port = port or free_port()
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


def new_browser(width: int = 1280, height: int = 900, dark: bool = False, *, test_ca: bool = False) -> Any:
    """A headless chromium WebDriver of the given window size (``test_ca``: it takes the certificates of
    a test CA, which it does not know)."""
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
