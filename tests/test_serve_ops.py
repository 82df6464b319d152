"""What operators of `nextword serve` set and read, checked piece by piece: the log format (a time
stamp on every line, uvicorn's and nextword's alike), the proxies whose X-Forwarded-* headers are
believed (--forwarded-allow-ips), and the page under a path prefix that a proxy serves without its
trailing slash. tests/test_serve_deploy.py runs the same things end to end, behind a proxy."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import os
import re
import sys

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.cli.main import main
from nextword.runtime.terminal import SafeFormatter
from nextword.serve import ServeConfig, create_app
from nextword.serve.access import REQUEST_ID, STREAM_END, access_line, request_line
from nextword.serve.logs import (
    FORCED_QUIT,
    ForcedQuit,
    OutputHandler,
    ServerFormatter,
    use_server_format,
    uvicorn_log_config,
)
from nextword.serve.routes import STATIC
from nextword.serve.web_assets import page_html

# 2026-01-31T14:05:09.123+00:00 INFO [4242] name: message
STAMPED = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) \[\d+\] \S+: "
)


def record(name: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_server_lines_carry_a_time_stamp_and_no_terminal_controls():
    formatter = ServerFormatter()
    line = formatter.format(record("nextword.serve.state", "shutting down"))
    pid = os.getpid()  # the process that wrote the line: --workers' lines interleave
    assert STAMPED.match(line) and line.endswith(f" INFO [{pid}] nextword.serve.state: shutting down"), line
    started = record("uvicorn.error", "Started server process [1]")
    assert formatter.format(started).endswith(f" INFO [{pid}] uvicorn: Started server process [1]")
    assert started.name == "uvicorn.error"  # the record itself is unchanged, for other handlers
    access = record("uvicorn.access", '127.0.0.1:5 - "GET /x\x1b[2J HTTP/1.1" 200')
    assert "\x1b" not in formatter.format(access) and "\\x1b[2J" in formatter.format(access)


def test_a_message_is_one_line_and_a_tracebacks_lines_are_marked():
    """A message (an exception's text may quote what a client sent) kept its line breaks, so a client
    could write a line that reads as a record of its own; a traceback's last line, too."""
    formatter = ServerFormatter()
    fake = '\n2026-01-01T00:00:00.000+00:00 INFO [1] nextword.serve.access: 10.0.0.1 - "GET /x HTTP/1.1" 200'
    line = formatter.format(record("nextword.serve.errors", f"failed: KeyError('a{fake}')"))
    assert "\n" not in line and "\\x0a2026-01-01T00" in line, line
    assert formatter.format(record("uvicorn.error", "Exception in ASGI application\n")).endswith(
        "application"
    )
    try:
        raise ValueError(f"prompt{fake}")  # str(): the line break as it is (a KeyError's repr escapes it)
    except ValueError:
        failed = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    first, *rest = formatter.format(failed).splitlines()
    assert first.endswith(f"ERROR [{os.getpid()}] uvicorn: failed") and len(rest) > 3, rest
    assert all(line.startswith("  | ") for line in rest), rest  # none can start like a record
    assert rest[0] == "  | Traceback (most recent call last):"
    assert rest[-1].startswith("  | 2026-01-01T00:00:00.000+00:00 INFO [1]"), rest  # the forged one, marked


def test_an_access_line_keeps_query_values_and_forged_addresses_out():
    scope = {
        "client": ("127.0.0.1", 5000),
        "method": "GET",
        "raw_path": b'/v1/models"x',
        "query_string": b"api_key=SECRET&flag&b=2&c%3Dd=e",
        "http_version": "1.1",
    }
    line = request_line(scope)
    # a query (no endpoint takes one) is written ?...: a key sent there, as a value or a name, stays out
    assert line == '127.0.0.1:5000 - "GET /v1/models%22x?... HTTP/1.1"', line
    assert access_line(line, {"state": {REQUEST_ID: "cmpl-1"}}, 499, 0.0123) == f"{line} 499 12.3 ms cmpl-1"
    assert access_line(line, {}, 200, 1) == f"{line} 200 1000.0 ms"
    cut = {"state": {REQUEST_ID: "cmpl-2", STREAM_END: "stream cut before its end"}}
    assert access_line(line, cut, 200, 1) == f"{line} 200 1000.0 ms cmpl-2 (stream cut before its end)"
    for client, shown in [
        (("203.0.113.9", 0), "203.0.113.9"),  # forwarded by a trusted proxy: no port
        (("::1", 8000), "[::1]:8000"),
        (None, "-"),
        (
            ('1.2.3.4 - "GET / HTTP/1.1" 200', 0),
            "(not an address: 1.2.3.4%20-%20%22GET%20%2F%20HTTP%2F1.1%22%20200)",
        ),
        (("a\tb" * 40, 0), f"(not an address: {'a%09b' * 21}a)"),
    ]:
        assert request_line({**scope, "client": client, "query_string": b""}).startswith(f"{shown} - "), (
            client
        )


def test_cors_preflights_and_refusals_have_their_access_line(model, caplog):
    # CORS answers a preflight itself, outside the middleware that wrote access lines: with uvicorn's
    # line off, a preflight and a refused origin were in no log and no /metrics count.
    config = ServeConfig(cors_origins=("https://a.example",))
    preflight = {"access-control-request-method": "POST"}
    with TestClient(create_app(config, model)) as client, caplog.at_level("INFO", "nextword.serve.access"):
        for origin, status in (("https://a.example", 200), ("https://b.example", 400)):
            answer = client.options("/v1/completions", headers={"origin": origin, **preflight})
            assert answer.status_code == status
        scraped = client.get("/metrics").text
    lines = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.access"]
    assert any('"OPTIONS /v1/completions HTTP/1.1" 200 ' in line for line in lines), lines
    assert any('"OPTIONS /v1/completions HTTP/1.1" 400 ' in line for line in lines), lines
    assert 'method="OPTIONS",route="/v1/completions",status="400"' in scraped


def test_every_answer_names_its_request_as_its_access_line_does(model, caplog):
    """X-Request-ID, as OpenAI's API sends it (its clients' request_id): a completion's own id, else one
    made for the request; the access line ends with the same, so a client's report finds its line. A
    page on an allowed origin may read it (CORS)."""
    origin = "https://a.example"
    app = create_app(ServeConfig(cors_origins=(origin,)), model)
    with TestClient(app) as client, caplog.at_level("INFO", "nextword.serve.access"):
        whole = client.post("/v1/completions", json={"prompt": "the", "max_tokens": 2})
        streamed = client.post("/v1/completions", json={"prompt": "the", "max_tokens": 2, "stream": True})
        refused = client.post("/v1/completions", json={"prompt": "the", "max_tokens": "2"})
        health = client.get("/health", headers={"origin": origin})
        again = client.get("/health")
    assert whole.headers["x-request-id"] == whole.json()["id"]
    assert streamed.headers["x-request-id"].startswith("cmpl-")
    assert streamed.headers["x-request-id"] in streamed.text  # the id of every event
    for answer in (refused, health, again):
        assert re.fullmatch(r"req-[0-9a-f]{32}", answer.headers["x-request-id"]), answer.headers
    assert health.headers["x-request-id"] != again.headers["x-request-id"]  # one per request
    assert "x-request-id" in health.headers["access-control-expose-headers"].lower()
    lines = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.access"]
    for answer, line in zip((whole, streamed, refused, health, again), lines, strict=True):
        assert line.endswith(f" {answer.headers['x-request-id']}"), (line, answer.headers)


def test_cancelled_tasks_are_dropped_from_the_log_only_once_a_forced_quit_began():
    cancelled = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", None,
        (asyncio.CancelledError, asyncio.CancelledError(), None),
    )  # fmt: skip
    forced = ForcedQuit()
    try:
        assert forced.filter(cancelled)  # a task cancelled while serving is a failure: logged
        FORCED_QUIT.set()  # Ctrl-C twice
        assert not forced.filter(cancelled)
        assert forced.filter(record("uvicorn.error", "Shutting down"))
    finally:
        FORCED_QUIT.clear()


def test_uvicorns_backstop_is_announced_and_its_cancellations_logged_without_tracebacks(model, caplog):
    """A client that reads slowly holds a stream past the drain (shutdown_timeout): uvicorn's backstop
    then cancels it, which logged an ERROR with a CancelledError traceback per answer. The server now
    says what it cuts, just before, and the cancellations are no failures."""
    from nextword.serve.state import BACKSTOP_SECONDS, ServerState

    class Loop:  # the calls begin_shutdown schedules, run by hand
        def __init__(self):
            self.later = []

        def call_soon_threadsafe(self, call, *args):
            call(*args)

        def call_later(self, delay, call):
            self.later.append((delay, call))

    state = ServerState(ServeConfig(shutdown_timeout=0.5), model, "m")
    loop = Loop()
    state.begin_shutdown(loop)
    assert len(loop.later) == 1  # not under serve(): no uvicorn backstop to announce
    state = ServerState(ServeConfig(shutdown_timeout=0.5), model, "m", backstop=True)
    loop = Loop()
    try:
        with caplog.at_level(logging.INFO, "nextword.serve"):
            state.begin_shutdown(loop)
            (drain, cancel), (backstop, cut) = sorted(loop.later, key=lambda pair: pair[0])
            # just before uvicorn's (the drain rounded up, and BACKSTOP_SECONDS)
            assert drain == 0.5 and backstop == 1 + BACKSTOP_SECONDS - 0.5
            cancel()
            assert not FORCED_QUIT.is_set()
            cut()
        assert FORCED_QUIT.is_set()
        assert (
            "answers not yet ended (sent to a client that reads slowly, or still being made) are cut now"
            in caplog.text
        )
        assert "in flight get 0.5 s to finish" in caplog.text  # not "0 s"
    finally:
        FORCED_QUIT.clear()


def test_a_fractional_drain_keeps_the_whole_backstop(model, monkeypatch):
    """--shutdown-timeout 10.9: uvicorn's backstop comes BACKSTOP_SECONDS after the drain rounded up, and
    the server's word of it just before; the drain was rounded down, which left 4.1 s, not 5, to the
    answers cancelled at 10.9 s."""
    import uvicorn

    from nextword.serve import serve
    from nextword.serve.state import BACKSTOP_SECONDS, ServerState

    options = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: options.append(kwargs))
    serve(ServeConfig(port=0, shutdown_timeout=10.9), model)
    assert options[0]["timeout_graceful_shutdown"] == 11 + BACKSTOP_SECONDS

    later = []

    class Loop:
        def call_soon_threadsafe(self, call, *args):
            call(*args)

        def call_later(self, delay, call):
            later.append(delay)

    ServerState(ServeConfig(shutdown_timeout=10.9), model, "m", backstop=True).begin_shutdown(Loop())
    assert sorted(later) == [10.9, 11 + BACKSTOP_SECONDS - 0.5]


def test_a_worker_whose_load_cannot_be_written_says_so_once_and_tries_again(monkeypatch, caplog):
    """The task that writes a worker's load for /metrics each second went on after a failure (a full disk
    under the metrics folder), rather than ending unseen with the worker's figures frozen; it says so once,
    and once more when the writes work again."""
    from nextword.serve import app

    outcomes = iter([OSError(errno.ENOSPC, "disk full"), OSError(errno.ENOSPC, "again"), None, "stop"])

    class Metrics:
        def publish(self):
            outcome = next(outcomes)
            if outcome == "stop":
                raise asyncio.CancelledError
            if outcome is not None:
                raise outcome

    async def no_wait(seconds):
        assert seconds == 1.0

    monkeypatch.setattr(app.asyncio, "sleep", no_wait)
    with caplog.at_level(logging.INFO, "nextword.serve"), pytest.raises(asyncio.CancelledError):
        asyncio.run(app._publish_every_second(Metrics()))
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "nextword.serve.app"]
    assert said == [
        ("WARNING", "this worker's load could not be written for /metrics: [Errno 28] disk full"),
        ("INFO", "this worker's load is written for /metrics again"),
    ]


def test_an_answer_the_server_cancels_says_so_in_its_access_line(model, caplog):
    from nextword.serve.metrics import Metrics, RequestMetrics
    from nextword.serve.state import ServerState

    async def cut_while_sending(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise asyncio.CancelledError  # uvicorn's backstop, or Ctrl-C twice

    metrics = Metrics(ServerState(ServeConfig(), model, "m"))
    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "raw_path": b"/v1/completions"}

    async def send(message):
        pass

    with caplog.at_level("INFO", "nextword.serve.access"), pytest.raises(asyncio.CancelledError):
        asyncio.run(RequestMetrics(cut_while_sending, metrics)(scope, None, send))
    [line] = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.access"]
    assert " 200 " in line and line.endswith("(answer cut: the server quit)"), line

    # cut before its answer began (a long /v1/score, a body still arriving): uvicorn answers 500, and
    # the line said 499, as if the client had left
    async def cut_while_working(scope, receive, send):
        raise asyncio.CancelledError

    caplog.clear()
    with caplog.at_level("INFO", "nextword.serve.access"), pytest.raises(asyncio.CancelledError):
        asyncio.run(RequestMetrics(cut_while_working, metrics)(scope, None, send))
    [line] = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.access"]
    assert " 500 " in line and line.endswith("(answer cut: the server quit)"), line

    # a client that had left first stays a 499: no answer reaches it
    from nextword.serve.access import CLIENT_LEFT

    async def cut_after_the_client_left(scope, receive, send):
        scope["state"][CLIENT_LEFT] = True
        raise asyncio.CancelledError

    caplog.clear()
    with caplog.at_level("INFO", "nextword.serve.access"), pytest.raises(asyncio.CancelledError):
        asyncio.run(RequestMetrics(cut_after_the_client_left, metrics)(scope, None, send))
    [line] = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.access"]
    assert " 499 " in line, line


def test_uvicorn_writes_its_lines_and_its_access_log_in_the_server_format():
    config = uvicorn_log_config()
    assert config["formatters"]["server"]["()"] is ServerFormatter
    assert config["handlers"]["default"]["stream"] == "ext://sys.stderr"
    assert config["handlers"]["access"]["stream"] == "ext://sys.stdout"  # the access log, as before
    assert config["disable_existing_loggers"] is False
    assert uvicorn_log_config() is not config  # uvicorn may change the dict it is given


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (BrokenPipeError(32, "Broken pipe"), "cannot be written (Broken pipe: its reader went away)"),
        (OSError(28, "No space left on device"), "(No space left on device: its file's disk is full)"),
    ],
)
def test_an_access_log_that_cannot_be_written_says_so_once(caplog, failure, said):
    """`nextword serve | tee log` with tee gone, or `nextword serve > log` on a full disk: every access
    line became a 50-line "--- Logging error ---" traceback on standard error."""

    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise failure

    handler = OutputHandler(Gone())
    handler.setFormatter(ServerFormatter())
    log = logging.getLogger("test.access.gone")
    log.addHandler(handler)
    log.propagate = False
    errors = io.StringIO()
    try:
        with caplog.at_level(logging.WARNING, logger="nextword.serve.logs"):
            old, sys.stderr = sys.stderr, errors  # where logging writes its "--- Logging error ---"
            try:
                for _ in range(3):
                    log.warning('"GET /health HTTP/1.1" 200')
            finally:
                sys.stderr = old
    finally:
        log.removeHandler(handler)
    lines = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.logs"]
    assert len(lines) == 1 and said in lines[0], lines
    assert "Logging error" not in errors.getvalue()
    assert handler.gone
    # a real descriptor whose reader is gone: pointed at the null device, so the exit's flush succeeds
    read, write = os.pipe()
    os.close(read)
    piped = OutputHandler(open(write, "w", encoding="utf-8"))  # noqa: SIM115 (closed below)
    try:
        with caplog.at_level(logging.WARNING, logger="nextword.serve.logs"):
            piped.handle(logging.LogRecord("x", logging.INFO, "", 0, "line", None, None))
        assert piped.gone and os.write(write, b"x") == 1  # no EPIPE: the null device takes it
    finally:
        piped.stream.close()
    # and it is the access log's handler
    assert uvicorn_log_config()["handlers"]["access"]["()"] is OutputHandler
    # any other failure is still logging's to report, and the handler goes on
    closed = io.StringIO()
    closed.close()  # writing: ValueError
    other = OutputHandler(closed)
    reported = io.StringIO()
    old, sys.stderr = sys.stderr, reported
    try:
        other.handle(logging.LogRecord("x", logging.INFO, "", 0, "line", None, None))
    finally:
        sys.stderr = old
    assert "Logging error" in reported.getvalue() and not other.gone


def test_only_the_command_lines_handler_gets_the_server_format():
    """`nextword serve` turns the CLI's handler (plain lines, as train and export keep) into the
    server's; a handler someone else set up keeps its format."""
    root = logging.getLogger()
    ours, theirs = logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())
    ours.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    plain = logging.Formatter("%(message)s")
    theirs.setFormatter(plain)
    saved = root.handlers[:]
    root.handlers[:] = [ours, theirs]
    try:
        use_server_format()
    finally:
        root.handlers[:] = saved
    assert isinstance(ours.formatter, ServerFormatter) and theirs.formatter is plain


def test_forwarded_allow_ips_is_checked():
    assert ServeConfig().forwarded_allow_ips is None  # uvicorn's default: $FORWARDED_ALLOW_IPS, else loopback
    assert ServeConfig(forwarded_allow_ips="10.0.0.5, 10.1.0.0/16").forwarded_allow_ips == (
        "10.0.0.5",
        "10.1.0.0/16",
    )
    assert ServeConfig(forwarded_allow_ips=["::1", "192.168.0.0/24,127.0.0.1"]).forwarded_allow_ips == (
        "::1",
        "192.168.0.0/24",
        "127.0.0.1",
    )
    assert ServeConfig(forwarded_allow_ips=("10.0.0.5", "*")).forwarded_allow_ips == ("*",)
    assert ServeConfig(forwarded_allow_ips=[""]).forwarded_allow_ips == ()  # no proxy is believed
    with pytest.raises(
        ValueError, match=r"'10\.0\.0\.1/8', which has host bits set \(the network is 10\.0\.0\.0/8\)"
    ):
        ServeConfig(forwarded_allow_ips=["10.0.0.1/8"])
    with pytest.raises(
        ValueError, match=r"'proxy\.local', which is not an IP address.*host names are not looked"
    ):
        ServeConfig(forwarded_allow_ips="proxy.local")
    with pytest.raises(ValueError, match="has 10, which is not a string: give a list of IP addresses"):
        ServeConfig(forwarded_allow_ips=[10])


def test_forwarded_allow_ips_from_the_environment_is_checked_as_the_flag_is(model_path, monkeypatch):
    """uvicorn's $FORWARDED_ALLOW_IPS was taken as it was: a mistyped entry trusted no proxy, silently."""
    import uvicorn

    from nextword.serve import serve

    ran = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.append(kwargs))
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "not-an-ip")
    with pytest.raises(ValueError, match=r"^\$FORWARDED_ALLOW_IPS has 'not-an-ip', which is not an IP"):
        serve(ServeConfig(model=str(model_path), port=0))
    assert not ran
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5,10.1.0.0/16")
    serve(ServeConfig(model=str(model_path), port=0))
    assert ran[-1]["forwarded_allow_ips"] == ["10.0.0.5", "10.1.0.0/16"]
    # read as the flag reads it: uvicorn took "*" only alone, and trusted no proxy for "10.0.0.1, *"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, *\n")
    serve(ServeConfig(model=str(model_path), port=0))
    assert ran[-1]["forwarded_allow_ips"] == ["*"]


def test_the_flag_reaches_uvicorn(model_path, monkeypatch, capsys, request):
    import uvicorn

    ran: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append(options))
    # serve() sets the level of nextword's loggers for the process it runs in: restored for later tests
    ours = logging.getLogger("nextword")
    request.addfinalizer(lambda level=ours.level: ours.setLevel(level))
    flags = ["--port", "0", "--forwarded-allow-ips", "10.0.0.5", "--forwarded-allow-ips", "10.2.0.0/16,::1"]
    assert main(["serve", str(model_path), *flags]) == 0
    assert ran[-1]["forwarded_allow_ips"] == ["10.0.0.5", "10.2.0.0/16", "::1"]
    assert ran[-1]["log_config"]["formatters"]["server"]["()"] is ServerFormatter
    assert main(["serve", str(model_path), "--port", "0"]) == 0
    assert "forwarded_allow_ips" not in ran[-1]  # uvicorn then reads $FORWARDED_ALLOW_IPS itself
    assert main(["serve", str(model_path), "--forwarded-allow-ips", "proxy.local"]) == 2
    assert "--forwarded-allow-ips has 'proxy.local', which is not an IP address" in capsys.readouterr().err
    assert main(["serve", str(model_path), "--cors-origin", "http://x/"]) == 2  # named as typed, too
    assert "--cors-origin has 'http://x/', which is not an origin" in capsys.readouterr().err


def test_the_page_adds_its_slash_under_a_prefix(model):
    """Asked for at https://host/nextword (a proxy that strips /nextword), the page's relative URLs
    resolved against /: a first script now rewrites the address to /nextword/ before anything loads."""
    file = (STATIC / "index.html").read_text(encoding="utf-8")
    assert page_html("") == file  # no prefix: the page as it is
    under = page_html("/nextword")
    script = (
        'if (location.pathname === "/nextword") history.replaceState(history.state, "", "/nextword" + "/"'
    )
    assert script in under
    assert under.index(script) < under.index("<link") < under.index("static/api.js")  # before any load
    assert under.replace(under[under.index("\n  <script>") : under.index("</script>") + 9], "") == file
    odd = page_html("/a</script>")  # a path another ASGI server or a Mount may give: it stays a string
    assert odd[: odd.index("<meta")].count("</script>") == 1 and '"/a\\u003c/script>"' in odd
    app = create_app(ServeConfig(), model)
    with TestClient(app, root_path="/nextword") as client:
        assert script in client.get("/").text
        assert client.head("/").status_code == 200
    with TestClient(app) as client:
        assert client.get("/").text == file


def test_every_worker_reports_the_servers_start_not_its_own(model_path, monkeypatch):
    """With --workers each process reported its own start: /v1/models' "created" and /health's uptime
    changed with the worker a request reached, and again when uvicorn replaced one. serve() now gives
    its workers its own start, which each reports."""
    import time

    import uvicorn

    from nextword.serve import server
    from nextword.serve.app import CONFIG_ENV, app_from_environment

    given: list[str] = []

    class Ran(Exception):
        pass

    def run(*args, **kwargs):
        given.append(os.environ[CONFIG_ENV])
        raise Ran  # uvicorn's run, which serve() expects to end by a signal

    monkeypatch.setattr(uvicorn, "run", run)
    before = time.time()
    with pytest.raises(Ran):
        server.serve(ServeConfig(model=str(model_path), workers=2, port=0))
    after = time.time()
    assert len(given) == 1
    monkeypatch.setenv(CONFIG_ENV, given[0])
    first = TestClient(app_from_environment())
    time.sleep(1.1)  # a worker started a second later
    second = TestClient(app_from_environment())
    created = {client.get("/v1/models").json()["data"][0]["created"] for client in (first, second)}
    started = json.loads(given[0])["_started"]
    assert created == {int(started)} and before <= started <= after  # serve()'s start, not a worker's
    uptimes = [client.get("/health").json()["uptime_s"] for client in (first, second)]
    assert min(uptimes) >= 1.0 and abs(uptimes[0] - uptimes[1]) < 0.5
