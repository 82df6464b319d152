"""What a draining server does with the connections it has (serve/http_guard.py,
``ServerState.refuse_if_draining``, ``RunningServer.stop``): a request on a connection taken in before
the drain is answered by every route that refuses new work, one on a connection accepted after the
listener closed is refused; the drain closes an idle connection at once, and waits for the answer to a
head that came within the grace. Real servers on loopback ports, each stopped within the test; raw
sockets, each with a timeout, so that a connection left open fails the test rather than hangs it.
(The drain's first-request grace itself: tests/test_serve_background.py.)"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httptools", reason="install nextword[serve] (httptools) to test its protocol")

from helpers import read_to_end
from nextword.runtime import BUNDLED_MODEL, NextWordModel, load
from nextword.serve import RunningServer, ServeConfig, http_guard, start

pytestmark = pytest.mark.timeout(120)  # every server here stops within seconds

# a request of each route that refuses new work while the server drains, with a body it answers 200
WORK = [
    ("GET", "/health", None),
    ("POST", "/v1/suggest", {"prompt": "a neural"}),
    ("POST", "/v1/score", {"text": "a neural network"}),
    ("POST", "/v1/completions", {"prompt": "a neural", "max_tokens": 2}),
    ("POST", "/v1/completions", {"prompt": "a neural", "max_tokens": 2, "num_beams": 2}),  # beams.py
]


@pytest.fixture(scope="module")
def bundled() -> NextWordModel:
    return load(BUNDLED_MODEL)


def _until(condition: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.005)


def _connect(server: RunningServer) -> tuple[socket.socket, Any]:
    """A connection to ``server``, once the server has accepted it: the socket, and uvicorn's protocol
    object for it (found by the client's port)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    port = sock.getsockname()[1]
    connections = server._server.server_state.connections  # uvicorn's own set
    found: list[Any] = []

    def accepted() -> bool:
        found[:] = [each for each in list(connections) if each.client and each.client[1] == port]
        return bool(found)

    _until(accepted, "the server's accepting the connection")
    return sock, found[0]


def _head(method: str, path: str, body: bytes) -> bytes:
    framing = f"content-type: application/json\r\ncontent-length: {len(body)}\r\n" if method == "POST" else ""
    return f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{framing}\r\n".encode()


def _ask(sock: socket.socket, method: str, path: str, body: Any) -> int:
    """One request on a kept-alive connection, its whole answer read: the status."""
    data = json.dumps(body).encode() if body is not None else b""
    sock.sendall(_head(method, path, data) + data)
    return _answer(sock)[0]


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the answer that comes next on ``sock`` (the app's have a length), read to
    its last byte and no further."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536) or pytest.fail(f"closed before the answer's head: {reply!r}")
    head, _, body = reply.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail(f"closed before the answer's end: {reply!r}")
    return int(head.split()[1]), body


def test_a_draining_server_answers_the_connections_it_took_in_and_refuses_the_others(bundled):
    """A request on a connection accepted before the drain closed the listener is answered, whichever
    route it asks (a suggestion, a score, a completion, a beam search, /health): a route that passed the
    draining state anything but the request's own scope refused it 503. One on a connection accepted
    after (the listener still open a moment) is refused."""
    with start(ServeConfig(port=0), bundled) as server:
        state = server.app.state.nextword
        taken, _ = _connect(server)
        state.accepting = False  # as the drain's stop_listening leaves it, with the listener still open
        late, _ = _connect(server)
        state.draining = True  # as begin_shutdown leaves it: no connection is shut down here
        try:
            answers = [
                (path, _ask(taken, method, path, body), _ask(late, method, path, body))
                for method, path, body in WORK
            ]
        finally:
            state.draining, state.accepting = False, True
            for each in (taken, late):
                each.close()
    assert answers == [(path, 200, 503) for _, path, _ in WORK]


def test_a_connection_accepted_before_the_listener_closed_is_taken_in_though_it_starts_after(
    bundled, monkeypatch
):
    """The drain's listener close can run between a connection's accept and its protocol's
    connection_made, a loop callback or two later: the connection was accepted before the close, and its
    request is answered. Decided in connection_made, it was refused 503 (1 request in 400 over a SIGHUP
    restart of two workers)."""
    with start(ServeConfig(port=0), bundled) as server:
        state = server.app.state.nextword
        made = http_guard.GuardedHttpToolsProtocol.connection_made

        def closed_meanwhile(self: Any, transport: Any) -> None:
            state.accepting = False  # the drain's stop_listening, run after the accept and before this
            made(self, transport)

        monkeypatch.setattr(http_guard.GuardedHttpToolsProtocol, "connection_made", closed_meanwhile)
        sock, _ = _connect(server)
        state.draining = True
        try:
            answers = [_ask(sock, method, path, body) for method, path, body in WORK[:2]]
        finally:
            state.draining, state.accepting = False, True
            sock.close()
    assert answers == [200, 200]


def test_the_drain_closes_idle_connections_at_once_and_answers_a_head_that_came(bundled, monkeypatch):
    """At the stop the listener closes as the drain begins (not at uvicorn's next tick); a connection
    idle after its answer, and one accepted after the listener closed, are closed at once (the grace is
    for a first request on a connection taken in); a head that came within the grace is answered though
    its body comes after the grace ended, and its connection is closed then."""
    monkeypatch.setattr(http_guard, "FIRST_REQUEST_GRACE", 60)  # the head below comes within it
    sockets: list[socket.socket] = []
    with start(ServeConfig(port=0), bundled) as server:
        state = server.app.state.nextword
        try:
            (used, _), (taken, protocol) = _connect(server), _connect(server)
            sockets += [used, taken]
            assert _ask(used, "GET", "/health", None) == 200  # kept alive, idle at the drain
            state.accepting = False  # the moment between the drain's signal and the listener's close
            late, _ = _connect(server)
            sockets.append(late)
            state.accepting = True
            stopping = threading.Thread(target=server.stop)
            stopping.start()
            _until(lambda: not state.accepting, "the drain's start")
            assert not any(each.is_serving() for each in server._server.servers)
            _until(lambda: protocol._last_request, "uvicorn's shutdown of the connections")
            for each in (used, late):  # closed: a request sent now is not read, let alone answered
                with contextlib.suppress(OSError):
                    each.sendall(_head("GET", "/health", b""))
                assert read_to_end(each) == b""
            body = json.dumps({"text": "a neural network"}).encode()
            taken.sendall(_head("POST", "/v1/score", body))
            _until(lambda: protocol.cycle is not None, "the head's parsing")
            ended = threading.Event()  # the grace ends now, on the server's loop, with the body unsent
            protocol.loop.call_soon_threadsafe(lambda: (protocol._close_unless_asked(), ended.set()))
            assert ended.wait(10)
            taken.sendall(body)
            status, answer = _answer(taken)
            assert status == 200 and json.loads(answer)["words"], answer
            with contextlib.suppress(OSError):  # its last request: the connection closed after it
                taken.sendall(_head("GET", "/health", b""))
            assert read_to_end(taken) == b""
            stopping.join(30)
            assert not stopping.is_alive()
        finally:
            for each in sockets:
                each.close()
