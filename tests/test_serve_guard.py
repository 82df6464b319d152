"""Slow and greedy clients against a real uvicorn with nextword's HTTP protocol (serve/http_guard.py), on
loopback: a head past --max-header-bytes, a head or a body slower than --request-timeout, an answer the
client does not read for --send-timeout, a client that closes with pipelined answers unread. Before
these guards one client could hold memory, a core, a connection or a generation's slot for good."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httptools", reason="install nextword[serve] (httptools) to test its protocol")

from browser import start_server
from fastapi.testclient import TestClient

from helpers import read_to_end
from nextword.serve import ServeConfig, create_app
from nextword.serve.http_guard import GuardedHttpToolsProtocol

TIMEOUT = 1.0  # --request-timeout and --send-timeout of the server under test
HOST = "x"  # the Host of the raw requests: one byte, as the sizes below count them


@pytest.fixture(scope="module")
def server(model):
    # the raw requests below name the host x, answered on loopback once named (serve/hosts.py)
    config = ServeConfig(
        max_header_bytes=4096, request_timeout=TIMEOUT, send_timeout=TIMEOUT, allowed_hosts=HOST
    )
    live = start_server(create_app(config, model))  # with GuardedHttpToolsProtocol
    yield live
    live.stop()


def connect(server, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.settimeout(15)
    return sock


def health(server) -> dict:
    with urllib.request.urlopen(server.url + "/health", timeout=10) as answer:
        return json.load(answer)


GUARD_CODES = {400: "invalid_http", 408: "request_timeout", 413: "body_too_large", 431: "headers_too_large"}


def error_of(answer: bytes) -> tuple[int, str]:
    """The status and error message of a guard's raw answer, which carries the security headers every
    answer of the app carries (serve/headers.py)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    for header in (b"x-content-type-options: nosniff", b"referrer-policy: no-referrer"):
        assert header in head, head
    status, error = int(head.split()[1]), json.loads(body)["error"]
    assert error["code"] == GUARD_CODES[status], error  # a program tells the refusals apart by it
    return status, error["message"]


def test_a_head_over_the_cap_is_refused_before_it_is_read_whole(server, caplog):
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: ")
    sent = 0
    with caplog.at_level(logging.INFO, logger="nextword.serve.access"):
        try:
            for _ in range(64):  # 4 MB, where uvicorn's httptools read any length (its cost: the square)
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (ConnectionResetError, BrokenPipeError):
            pass
        status, message = error_of(read_to_end(sock))
    assert status == 431 and "over 4,096 bytes" in message and "--max-header-bytes" in message
    assert sent < 4 * 2**20  # the server stopped reading: the client's writes failed
    assert any('"(request not read)" 431' in r.getMessage() for r in caplog.records)
    # one read holding a whole head past the cap is refused too; one under it is served
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 5000 + b"\r\n\r\n")
    assert error_of(read_to_end(sock))[0] == 431
    sock = connect(server)
    sock.sendall(
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Long: " + b"a" * 3000 + b"\r\n\r\n"
    )
    assert read_to_end(sock).startswith(b"HTTP/1.1 200")


def test_a_slow_head_gets_408_and_a_silent_connection_is_closed(server):
    started = time.monotonic()
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHo")
    status, message = error_of(read_to_end(sock))
    assert status == 408 and "did not arrive within 1 s" in message and "--request-timeout" in message
    assert time.monotonic() - started < 10
    silent = connect(server)
    assert read_to_end(silent) == b""  # closed without an answer: it asked nothing


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 50\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n5\r\n"],
    ids=["declared", "chunked"],
)
def test_a_body_that_does_not_arrive_gets_408(server, framing):
    sock = connect(server)
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(head + framing + b'{"pro')
    status, message = error_of(read_to_end(sock))  # read to the end: the connection is closed too
    assert status == 408 and "request body did not arrive within 1 s" in message


def test_an_answer_the_client_does_not_read_is_cut_and_its_slot_freed(server, caplog):
    body = json.dumps(
        {"prompt": "the", "max_tokens": 1000, "min_tokens": 1000, "n": 16, "stream": True, "logprobs": 5}
    ).encode()
    request = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n" % len(body) + body
    with caplog.at_level(logging.INFO, logger="nextword.serve.access"):
        sock = connect(server, receive_buffer=4096)
        sock.sendall(request)  # and never read
        deadline = time.monotonic() + 60
        while not health(server)["generations_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)  # until it runs
        while health(server)["generations_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert health(server)["generations_in_flight"] == 0
        received = read_to_end(sock)
        cut = "(answer cut: its client read nothing for 1 s (--send-timeout))"
        lines: list[str] = []
        # the access line is written as the request's task ends, after the generation's slot is freed
        while time.monotonic() < deadline:
            lines = [r.getMessage() for r in caplog.records if "/v1/completions" in r.getMessage()]
            if any(cut in line for line in lines):
                break
            time.sleep(0.05)
    assert received.startswith(b"HTTP/1.1 200") and b"data: [DONE]" not in received  # cut, not finished
    assert any(cut in line for line in lines), lines


def test_a_client_that_leaves_unread_pipelined_answers_is_no_server_error(server, caplog):
    # uvloop refused the app's write to the closed socket: a RuntimeError, a traceback and a 500
    sock = connect(server, receive_buffer=4096)
    sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 300)
    time.sleep(0.5)
    uvicorn_errors = logging.getLogger("uvicorn.error")  # uvicorn's own: it does not propagate to root
    uvicorn_errors.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="nextword"):  # whatever level an earlier test left
            sock.close()
            time.sleep(1.5)
            assert health(server)["status"] == "ok"
    finally:
        uvicorn_errors.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]
    answered = [r.getMessage() for r in caplog.records if "/openapi.json" in r.getMessage()]
    assert answered and not any(" 500 " in line for line in answered), answered  # access lines were seen


def test_the_settings_are_checked_and_reach_the_protocol(monkeypatch):
    for name, bad in [("request_timeout", 0), ("send_timeout", float("nan")), ("max_header_bytes", 10)]:
        with pytest.raises(ValueError, match=name):
            ServeConfig(**{name: bad})
    from nextword.serve import server as server_module

    config = ServeConfig(max_header_bytes=8192, allowed_hosts=HOST)
    assert server_module._http_protocol(config) == {"http": GuardedHttpToolsProtocol}
    # without httptools: uvicorn's h11, which caps the head itself
    monkeypatch.setitem(__import__("sys").modules, "nextword.serve.http_guard", None)
    assert server_module._http_protocol(config) == {"http": "h11", "h11_max_incomplete_event_size": 8192}


def test_pipelined_requests_in_one_read_are_not_taken_for_one_long_head(server):
    # a read of many whole requests, then the start of one more, was charged to that last head: 431,
    # and the connection reset under the answers still running
    sock = connect(server)
    whole = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(whole * 200 + b"GET /health HT")  # 6.6 kB against the 4,096-byte cap
    time.sleep(0.3)
    sock.sendall(b"TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert read_to_end(sock).count(b"HTTP/1.1 200") == 201


def test_blank_lines_after_an_answer_do_not_hold_the_connection(server):
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    started = time.monotonic()
    try:
        for _ in range(40):  # a blank line every 0.1 s: each read put off uvicorn's keep-alive timeout
            sock.sendall(b"\r\n")
            time.sleep(0.1)
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert read_to_end(sock).startswith(b"HTTP/1.1 200")  # closed, and not after the 4 s of blank lines
    assert time.monotonic() - started < 4 + TIMEOUT * 3


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n{",
    ],
    ids=["GET with a body", "413"],
)
def test_a_body_still_coming_after_its_answer_is_not_waited_for(server, head):
    sock = connect(server)
    sock.sendall(head)
    started = time.monotonic()
    try:
        for _ in range(30):  # a byte of body every 0.1 s: the connection stayed open as long as it came
            sock.sendall(b"a")
            time.sleep(0.1)
    except (ConnectionResetError, BrokenPipeError):
        pass
    answer = read_to_end(sock)
    assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 413")), answer[:80]
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
def test_an_http_1_0_client_gets_a_stream_it_can_read(server, version):
    # uvicorn's protocol sent an HTTP/1.0 client chunked transfer coding, which it cannot decode: its
    # stream arrived with chunk sizes in it. HTTP/1.0 gets the bytes as they come, ended by the close.
    body = json.dumps({"prompt": "the", "max_tokens": 3, "min_tokens": 3, "stream": True}).encode()
    request = b"POST /v1/completions HTTP/" + version + b"\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    sock = connect(server)
    sock.sendall(request)
    head, _, stream = read_to_end(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
    if version == b"1.1":  # unchanged
        assert b"transfer-encoding: chunked" in head.lower() and stream.endswith(b"\r\n0\r\n\r\n")
        return
    assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
    events = stream.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""] and len(events) == 3 + 2
    assert all(json.loads(event[len(b"data: ") :])["choices"] for event in events[:3])
    sock = connect(server)  # an answer of known length keeps its length
    sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    head, _, answer = read_to_end(sock).partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(answer) in head.lower() and json.loads(answer)["status"] == "ok"


def test_bytes_that_are_not_http_get_a_json_400_and_an_access_line_naming_the_client(server, caplog):
    # uvicorn answered in plain text and logged "Invalid HTTP request received." without saying whose
    with caplog.at_level(logging.INFO, logger="nextword.serve.access"):
        sock = connect(server)
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 GET\r\n\r\n")  # TLS to a plain port
        status, message = error_of(read_to_end(sock))
    assert status == 400 and "not valid HTTP/1.1 or 1.0" in message
    port = sock.getsockname()[1]
    assert any(f'127.0.0.1:{port} - "(request not read)" 400' in r.getMessage() for r in caplog.records)


def test_a_malformed_chunked_body_gets_its_400_and_one_access_line(server, caplog):
    """A chunk size that is no hex number, in a request the app was already reading: the connection was
    reset, with nothing sent, while the log said 400 and then 499 for the same request."""
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with caplog.at_level(logging.INFO, logger="nextword.serve.access"):
        sock = connect(server)
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.3)  # the app has the request and waits for its body
        sock.sendall(b"zz\r\n{}\r\n0\r\n\r\n")
        status, message = error_of(read_to_end(sock))
        port = sock.getsockname()[1]
        deadline = time.monotonic() + 30
        lines: list[str] = []
        while time.monotonic() < deadline and not lines:
            lines = [r.getMessage() for r in caplog.records if f":{port} - " in r.getMessage()]
            time.sleep(0.05)
        time.sleep(0.3)  # a second line, were there one, has come by now
        lines = [r.getMessage() for r in caplog.records if f":{port} - " in r.getMessage()]
    assert status == 400 and "chunked body is malformed" in message
    assert len(lines) == 1 and '"POST /v1/score HTTP/1.1" 400 ' in lines[0], lines
    assert "chunked body is malformed" in lines[0]
    assert health(server)["status"] == "ok"


def test_a_folded_header_is_refused_not_read_as_one(server):
    """A header continued on an indented line (obs-fold) can hide a Content-Length from a proxy in front
    that reads it otherwise (request smuggling, CVE-2024-27982): refused as invalid HTTP, as httptools
    0.8 and later (the lowest nextword[serve] allows) refuse it; 0.6 read it."""
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n folded\r\nConnection: close\r\n\r\n")
    status, message = error_of(read_to_end(sock))
    assert status == 400 and "not valid HTTP/1.1 or 1.0" in message


@pytest.mark.parametrize("path", ["/v1/score", "/v1/suggest"])
def test_an_answer_made_after_its_client_left_is_logged_499(server, caplog, path):
    # the route finished after the client had gone and was logged 200, as if it had been answered
    field = {"/v1/score": "text", "/v1/suggest": "prompt"}[path]
    body = json.dumps({field: "the network " * 2000}).encode()
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
    with caplog.at_level(logging.INFO, logger="nextword.serve.access"):
        sock = connect(server)
        sock.sendall(request + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        sock.shutdown(socket.SHUT_WR)  # gone before its answer
        assert read_to_end(sock) == b""
        deadline = time.monotonic() + 30
        port = sock.getsockname()[1]
        while time.monotonic() < deadline:
            lines = [r.getMessage() for r in caplog.records if f":{port} - " in r.getMessage()]
            if lines:
                break
            time.sleep(0.05)
    assert len(lines) == 1 and f'"POST {path} HTTP/1.1" 499 ' in lines[0], lines
    assert health(server)["status"] == "ok"  # and the next request is answered


@pytest.fixture(scope="module")
def two_timeouts(model):
    """A server whose --request-timeout (1 s) and --send-timeout (30 s) differ, so that a guard timed by
    the wrong one shows."""
    live = start_server(
        create_app(ServeConfig(request_timeout=1.0, send_timeout=30.0, allowed_hosts=HOST), model)
    )
    yield live
    live.stop()


def test_a_slow_head_is_timed_by_the_request_timeout_not_the_send_timeout(two_timeouts):
    started = time.monotonic()
    with connect(two_timeouts) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        answer = read_to_end(sock)
    status, message = error_of(answer)
    assert status == 408 and "within 1 s" in message, answer[:200]
    assert time.monotonic() - started < 10  # 1 s, not the 30 s of --send-timeout


def test_a_head_of_exactly_the_cap_is_served_and_one_byte_more_is_refused(server):
    """The size counted is the target's and each header's name and value, plus 4 a header (": " and
    CRLF); --max-header-bytes (4096 here) is the largest head served."""

    def ask(pad: int) -> bytes:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Long: " + b"a" * pad + b"\r\n\r\n"
        with connect(server) as sock:
            sock.sendall(head)
            return read_to_end(sock)

    counted = len("/health") + (4 + 1 + 4) + (10 + 5 + 4) + (6 + 4)  # + the pad
    assert ask(4096 - counted).startswith(b"HTTP/1.1 200")
    assert ask(4096 - counted + 1).startswith(b"HTTP/1.1 431")


def test_new_work_while_draining_gets_503_server_error(model):
    """A draining server answers new completions, suggestions and scores 503, as it answers /health."""
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
