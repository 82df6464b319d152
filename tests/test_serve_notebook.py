"""Serving from a program that goes on running (a notebook, async code): start() on a thread of its own,
serve_async() in the caller's event loop, and serve() refusing a running loop before it starts anything.
Real servers on loopback ports, each stopped within the test."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
httpx = pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from browser import listening, server_threads  # noqa: E402

from nextword.runtime import BUNDLED_MODEL, NextWordModel, load  # noqa: E402
from nextword.serve import RunningServer, ServeConfig, serve, serve_async, start  # noqa: E402
from nextword.serve.server import AddressUnavailableError  # noqa: E402

pytestmark = pytest.mark.timeout(120)  # every server here stops within seconds

COMPLETION = {"prompt": "the processor", "max_tokens": 6, "seed": 3}


@pytest.fixture(scope="module")
def bundled() -> NextWordModel:
    return load(BUNDLED_MODEL)


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this test holds, bound but not listening: a server may bind it too (both SO_REUSEADDR),
    and no other process can take it meanwhile (the way tests/test_serve_live.py checks addresses)."""
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_start_serves_until_stop_which_frees_the_port(bundled):
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    server = start(ServeConfig(port=0), bundled)
    try:
        assert isinstance(server, RunningServer) and server.running
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port != 0
        assert repr(server) == f"<RunningServer {server.url} running>"
        answer = httpx.post(server.url + "/v1/completions", json=COMPLETION, timeout=30)
        assert answer.status_code == 200, answer.text
        expected = bundled.generate(COMPLETION["prompt"], max_words=6, seed=3)
        assert answer.json()["choices"][0]["text"] == expected
        # the program's signal handlers are untouched: none can be set from the server's thread
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    finally:
        began = time.monotonic()
        server.stop()
    assert time.monotonic() - began < 5
    assert not server.running and not server_threads() and repr(server).endswith("stopped>")
    assert not listening(server.port)
    with socket.socket() as again:  # free: a server can bind it again, as uvicorn binds
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", server.port))
        again.listen()
    server.stop()  # again: nothing to do
    # a model file by path, on the same port again
    with start(ServeConfig(model=str(BUNDLED_MODEL), port=server.port)) as second:
        assert httpx.get(second.url + "/health", timeout=30).json()["status"] == "ok"
    assert not listening(server.port)


def test_the_with_block_stops_the_server_even_when_it_fails(bundled):
    with pytest.raises(KeyError), start(ServeConfig(port=0), bundled) as server:
        assert httpx.get(server.url + "/health", timeout=30).status_code == 200
        raise KeyError("the block failed")
    assert not server.running and not server_threads()
    assert not listening(server.port)


def test_a_second_start_on_the_same_port_is_refused_in_the_python_api_s_terms(bundled):
    with start(ServeConfig(port=0), bundled) as first:
        with pytest.raises(AddressUnavailableError) as refused:
            start(ServeConfig(port=first.port), bundled)
        said = str(refused.value)
        assert said.startswith(f"port {first.port} is already in use on 127.0.0.1")
        assert "start() returned and nothing stopped yet" in said
        assert "choose another port with ServeConfig(port=...) (0: any free one)" in said
        assert "--port" not in said
        assert "--port" in refused.value.strerror  # what `nextword serve` prints (below)
        assert len(server_threads()) == 1  # nothing started for the second
        assert httpx.get(first.url + "/health", timeout=30).status_code == 200  # the first serves on


def test_nextword_serve_still_names_the_flag_for_a_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
        argv = ["serve", "--model", str(BUNDLED_MODEL), "--port", str(busy.getsockname()[1])]
        result = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 2, result.stderr
    assert "is already in use" in result.stderr and "choose another port with --port" in result.stderr
    assert "ServeConfig" not in result.stderr


def test_a_port_taken_between_the_check_and_the_bind_is_said_as_clearly(bundled, monkeypatch):
    """uvicorn itself logs the failure and calls sys.exit: on the server's thread (or in the caller's
    loop, where a SystemExit would stop the loop) that becomes the same error, in the caller."""
    import nextword.serve.server as server_module

    monkeypatch.setattr(server_module, "check_address", lambda host, port, **kwargs: None)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(AddressUnavailableError, match=r"already in use.*ServeConfig\(port=\.\.\.\)"):
            start(ServeConfig(port=busy.getsockname()[1]), bundled)
    assert not server_threads()


def test_start_and_serve_async_refuse_worker_processes(bundled):
    for call in (start, lambda config: asyncio.run(serve_async(config))):
        with pytest.raises(ValueError, match=r"serves in this process, so workers must be 1, got 2"):
            call(ServeConfig(workers=2))
    assert not server_threads()


def test_serve_inside_a_running_loop_says_what_to_use_before_starting_anything(monkeypatch, tmp_path):
    """In a notebook's cell it failed deep in uvicorn ("Cannot run the event loop while another loop is
    running"), with an 86-line traceback and two "coroutine ... was never awaited" warnings."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("uvicorn started"))
    before = set(threading.enumerate())

    async def cell() -> None:
        # a file that does not exist: the refusal comes first, before any model is loaded
        serve(ServeConfig(model=str(tmp_path / "missing.onnx"), port=0))

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "coroutine ... was never awaited"
        with pytest.raises(RuntimeError) as refused:
            asyncio.run(cell())
    said = str(refused.value)
    assert said.startswith("serve() runs until the server stops, and cannot run inside an event loop")
    assert "nextword.serve.start(config)" in said and "server.stop()" in said
    assert "await nextword.serve.serve_async(config)" in said
    assert set(threading.enumerate()) <= before


def test_serve_async_serves_in_asyncio_run_and_stops_when_cancelled(bundled, held_port):
    url = f"http://127.0.0.1:{held_port}"

    async def program() -> None:
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        task = asyncio.create_task(serve_async(ServeConfig(port=held_port), bundled))
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(600):
                try:
                    answer = await http.post(url + "/v1/completions", json=COMPLETION)
                    break
                except httpx.ConnectError:
                    assert not task.done(), task
                    await asyncio.sleep(0.02)
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["text"] == bundled.generate("the processor", max_words=6, seed=3)
        # the app's drain on Ctrl-C is not chained before the program's handlers (main thread here)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        assert not listening(held_port)  # free once the cancellation is raised again
        # a time limit around it: stopped as cleanly
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(serve_async(ServeConfig(port=held_port), bundled), 1.0)
        assert not listening(held_port)

    asyncio.run(program())


def test_serve_async_raises_a_port_in_use_in_the_caller(bundled):
    async def program() -> None:
        with (
            start(ServeConfig(port=0), bundled) as first,
            pytest.raises(AddressUnavailableError, match=r"ServeConfig\(port=\.\.\.\)"),
        ):
            await serve_async(ServeConfig(port=first.port), bundled)

    asyncio.run(program())
