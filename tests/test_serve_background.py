"""start() and serve_async() (serve/background.py) past their happy path: the URL start() answers on, a
stop() or a second cancellation that cuts the generations still running, an interrupt while start() waits
for the server; and the address check that both make first (serve/address.py). Real servers on loopback
ports, each stopped within the test. (The common uses: tests/test_serve_notebook.py.)"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
httpx = pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from browser import listening, server_threads  # noqa: E402

from nextword.runtime import BUNDLED_MODEL, NextWordModel, load  # noqa: E402
from nextword.serve import RunningServer, ServeConfig, serve_async, start  # noqa: E402
from nextword.serve.address import AddressUnavailableError, check_address  # noqa: E402

pytestmark = pytest.mark.timeout(120)  # every server here stops within seconds

# a generation that runs for many seconds (about 1.3 s per 1,000 words on one core), streamed
LONG = {"prompt": "the network", "max_tokens": 10_000, "stop_at_end": False, "stream": True}


@pytest.fixture(scope="module")
def bundled() -> NextWordModel:
    return load(BUNDLED_MODEL)


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this test holds, bound but not listening: a server may bind it too (both SO_REUSEADDR),
    and no other process can take it meanwhile."""
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def _cut_short(events: list[str]) -> None:
    """Whether a stream's events (``data:`` payloads) are those of a generation the stop cancelled: its
    last words, a chunk whose end_reason is "cancelled", the error that says why, then [DONE]."""
    assert events[-1] == "[DONE]", events[-3:]
    error = json.loads(events[-2])
    assert error["error"]["type"] == "server_error" and "shutting down" in error["error"]["message"]
    (last,) = json.loads(events[-3])["choices"]
    assert last["end_reason"] == "cancelled", events[-3:]
    assert len(events) < LONG["max_tokens"]  # cut short, far from its 10,000 words


def _events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


# --------------------------------------------------------------------------------- start()'s url


@pytest.mark.parametrize(
    ("host", "certificate", "url"),
    [
        ("127.0.0.1", None, "http://127.0.0.1:8123"),
        ("0.0.0.0", None, "http://127.0.0.1:8123"),  # every address: reached on the loopback one
        ("::", None, "http://[::1]:8123"),
        ("::1", None, "http://[::1]:8123"),  # an IPv6 address in a URL: in brackets
        ("localhost", "cert.pem", "https://localhost:8123"),
        ("::1", "cert.pem", "https://[::1]:8123"),
    ],
)
def test_the_url_start_gives_is_one_this_machine_reaches(host, certificate, url):
    from nextword.serve.background import _url

    assert _url(ServeConfig(host=host, port=8123, ssl_certfile=certificate), 8123) == url


# ------------------------------------------------------------------------------ the address check


def test_an_ipv6_host_is_checked_as_an_ipv6_address():
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    check_address("::1", 0)  # bound as uvicorn binds it: an IPv6 socket


def test_a_privileged_port_says_that_ports_below_1024_need_privileges(monkeypatch):
    ipv6 = _ipv6_loopback()

    def refused(self, address):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", refused)  # as for anyone but root on port 80
    with pytest.raises(AddressUnavailableError) as said:
        check_address("127.0.0.1", 80, in_python=True)
    assert said.value.errno == errno.EACCES
    assert said.value.strerror == (
        "binding 127.0.0.1:80 is not permitted (ports below 1024 need privileges): raise --port"
    )
    assert str(said.value).endswith("(ports below 1024 need privileges): raise ServeConfig(port=...)")
    if ipv6:
        with pytest.raises(AddressUnavailableError, match=r"^binding \[::1\]:80 is not permitted"):
            check_address("::1", 80)


# ----------------------------------------------------------------- cutting generations still running


def test_stop_with_a_timeout_shorter_than_the_servers_cuts_a_generation_then(bundled):
    """stop(timeout=0.2) on a server with shutdown_timeout=60: the generation in flight is cancelled
    after 0.2 s, not 60, and its stream ends saying so."""
    server = start(ServeConfig(port=0, max_words=10_000, shutdown_timeout=60), bundled)
    ended: list[str] = []

    def stream() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=60) as http,
            http.stream("POST", "/v1/completions", json=LONG) as answer,
        ):
            ended.append(answer.read().decode())

    client = threading.Thread(target=stream)
    try:
        client.start()
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/health", timeout=30).json()["generations_in_flight"] == 0:
            assert time.monotonic() < deadline, "the generation never started"
            time.sleep(0.02)
    finally:
        began = time.monotonic()
        server.stop(timeout=0.2)
        stopped = time.monotonic() - began
        client.join(60)
    assert stopped < 3 and not server.running and not server_threads()
    with pytest.raises(ValueError, match="timeout must be"):
        server.stop(timeout=-1)
    assert ended, "the stream did not end"
    _cut_short(_events(ended[0]))


def test_serve_async_cancelled_twice_cuts_the_generations_in_flight(bundled, held_port):
    """The first cancellation lets the generation in flight finish (shutdown_timeout, 60 s here); a
    second one cancels it, and the server stops at once."""
    url = f"http://127.0.0.1:{held_port}"

    async def program() -> float:
        config = ServeConfig(port=held_port, max_words=10_000, shutdown_timeout=60)
        server = asyncio.create_task(serve_async(config, bundled))
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for _ in range(1500):
                try:
                    await http.get("/health")
                    break
                except httpx.ConnectError:
                    assert not server.done(), server
                    await asyncio.sleep(0.02)

            async def stream() -> str:
                async with http.stream("POST", "/v1/completions", json=LONG) as answer:
                    return (await answer.aread()).decode()

            client = asyncio.create_task(stream())
            while (await http.get("/health")).json()["generations_in_flight"] == 0:
                assert not client.done(), client
                await asyncio.sleep(0.02)
            server.cancel()
            await asyncio.sleep(0.3)
            assert not server.done()  # the generation may finish: shutdown_timeout
            began = time.monotonic()
            server.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(server, 30)
            took = time.monotonic() - began
            _cut_short(_events(await asyncio.wait_for(client, 30)))
        return took

    assert asyncio.run(program()) < 2
    assert not listening(held_port)


# ---------------------------------------------------------------------- an interrupt during start()


def _uvicorn_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What uvicorn's servers logged in this test ("Shutting down", "Application shutdown complete.")."""
    return [record.getMessage() for record in caplog.records if record.name == "uvicorn.error"]


@pytest.mark.parametrize("when", ["starting", "listening"])
def test_an_interrupt_while_start_waits_leaves_no_server_behind(
    bundled, held_port, monkeypatch, caplog, when
):
    """Ctrl-C in a notebook while start() waits for the server (a model being loaded, say): the
    KeyboardInterrupt reaches the cell, and no server goes on without a handle to stop it; the app's
    lifespan has ended (uvicorn 0.29 returned without its shutdown where the stop came as it started)."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")

    class Interrupted(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            if when == "listening":
                assert super().wait(timeout), "the server never listened"
            raise KeyboardInterrupt

    made = RunningServer.__init__

    def interrupted_init(self, *args, **kwargs) -> None:
        made(self, *args, **kwargs)
        self._ready = Interrupted()

    monkeypatch.setattr(RunningServer, "__init__", interrupted_init)
    with pytest.raises(KeyboardInterrupt):
        start(ServeConfig(port=held_port), bundled)
    assert not server_threads()
    assert not listening(held_port)
    assert _uvicorn_said(caplog).count("Application shutdown complete.") == 1, _uvicorn_said(caplog)


def test_a_stop_runs_uvicorns_shutdown_once(bundled, caplog):
    """A server stopped runs uvicorn's shutdown once: start() runs it itself only where uvicorn returned
    without it (uvicorn 0.29, a stop that came as it started), never again after uvicorn's own."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    with start(ServeConfig(port=0), bundled):
        pass
    said = _uvicorn_said(caplog)
    assert said.count("Shutting down") == said.count("Application shutdown complete.") == 1, said


def test_an_app_that_cannot_start_is_an_error_that_says_where_to_look(bundled, held_port, monkeypatch):
    """The app's start-up fails (here: its scheduler cannot be made): start() raises, naming uvicorn's
    log, and leaves nothing behind. Under uvicorn 0.29 it raised AttributeError ('servers'), as uvicorn
    returned there without listening, where later versions exit."""
    import nextword.serve.app

    def fails(*args, **kwargs):
        raise RuntimeError("no scheduler")

    monkeypatch.setattr(nextword.serve.app, "make_scheduler", fails)
    with pytest.raises(RuntimeError, match=r"^the server could not start on 127\.0\.0\.1:\d+: uvicorn's log"):
        start(ServeConfig(port=held_port), bundled)
    assert not server_threads()
    assert not listening(held_port)


def test_a_drain_answers_connections_taken_in_before_it_and_takes_no_other(bundled):
    """uvicorn's drain closed a connection that had not sent its first request yet (accepted just before
    the stop, its request on the way): the client got no answer, and a request on a connection taken in
    before the drain got 503. The listener now closes as the stop comes; a connection taken in before
    is given a second for its request's head, answered, then closed; a head sent slowly holds it no
    longer (request_timeout, 30 s, would have held the drain)."""
    # a slow head's deadline and the drain's far past the 20 s a client here waits for an answer
    config = ServeConfig(port=0, request_timeout=120, shutdown_timeout=120)
    with start(config, bundled) as server:
        early, silent, slow = (
            socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(3)
        )
        connections = server._server.server_state.connections  # uvicorn's own set
        deadline = time.monotonic() + 30
        while len(connections) < 3:
            assert time.monotonic() < deadline, "the server never accepted the connections"
            time.sleep(0.01)
        slow.sendall(b"GET /health HTTP/1.1\r\n")  # and the rest of its head never
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        state = server.app.state.nextword
        # past uvicorn's own shutdown step, which closed idle connections
        while state.accepting or not all(each._last_request for each in connections):
            assert time.monotonic() < deadline, "the drain never began"
            time.sleep(0.01)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=30)
        body = b'{"prompt": "a neural"}'
        early.sendall(
            b"POST /v1/suggest HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        reply = b""
        while chunk := early.recv(65536):  # the server closes it after the answer
            reply += chunk
        head, _, answer = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), reply  # and closed: recv() would have timed out
        assert json.loads(answer)["suggestions"]
        assert silent.recv(1) == b""  # sent nothing within the second: closed
        assert slow.recv(1) == b""  # closed too, not answered 408 at its head's deadline
        stopping.join(30)
        assert not stopping.is_alive()
    for each in (early, silent, slow):
        each.close()
