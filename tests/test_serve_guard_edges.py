"""The request head's guard is timed by --request-timeout (not --send-timeout) and its size cap is
inclusive; a draining server answers new work 503."""

from __future__ import annotations

import json
import socket
import time

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httptools", reason="install nextword[serve] (httptools) to test its protocol")

from browser import start_server
from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app

CAP = 4096


@pytest.fixture(scope="module")
def server(model):
    # the two deadlines differ, so that a guard timed by the wrong one shows
    config = ServeConfig(max_header_bytes=CAP, request_timeout=1.0, send_timeout=30.0)
    live = start_server(create_app(config, model))
    yield live
    live.stop()


def _ask(server, head: bytes) -> bytes:
    sock = socket.socket()
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.settimeout(15)
    sock.sendall(head)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    sock.close()
    return out


# a head sent too slowly is cut after --request-timeout, whatever --send-timeout is
def test_a_slow_head_is_timed_by_the_request_timeout_not_the_send_timeout(server):
    started = time.monotonic()
    answer = _ask(server, b"GET /health HTTP/1.1\r\nHo")
    took = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:80]
    assert "within 1 s" in json.loads(body)["error"]["message"]
    assert took < 10  # 1 s, not the 30 s of --send-timeout


# a head of exactly --max-header-bytes is served. The size counted is the target's and each
# header's name and value, plus 4 a header (": " and CRLF).
def test_a_head_of_exactly_the_cap_is_served_and_one_byte_more_is_refused(server):
    def head(pad: int) -> bytes:
        return b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Long: " + b"a" * pad + b"\r\n\r\n"

    counted = len("/health") + (4 + 1 + 4) + (10 + 5 + 4) + (6 + 4)  # + the pad
    assert _ask(server, head(CAP - counted)).startswith(b"HTTP/1.1 200")
    assert _ask(server, head(CAP - counted + 1)).startswith(b"HTTP/1.1 431")


# a draining server answers new completions, suggestions and scores 503, as it answers /health
def test_new_work_while_draining_gets_503_server_error(model):
    app = create_app(ServeConfig(), model)
    with TestClient(app) as client:
        state = app.state.nextword
        state.draining = True
        try:
            answers = [
                client.post("/v1/completions", json={"prompt": "the", "max_tokens": 2}),
                client.post("/v1/suggest", json={"prompt": "the"}),
                client.post("/v1/score", json={"text": "the network"}),
            ]
        finally:
            state.draining = False
        assert client.post("/v1/completions", json={"prompt": "the", "max_tokens": 2}).status_code == 200
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["type"] == "server_error"
        assert "shutting down" in answer.json()["error"]["message"]
