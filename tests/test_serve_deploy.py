"""`nextword serve` deployed as operators run it: a real process writing its logs to files (no terminal),
behind a reverse proxy that serves it under /nextword/ and strips that prefix, and stopped by a process
manager's signals. The proxy is a small one written here (nginx need not be installed); it forwards
X-Forwarded-* and the client's Host, as `proxy_set_header` lines in nginx do, streams answers, and
serves /nextword (no slash) as / (Traefik's StripPrefix, an ingress's rewrite)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
httpx = pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from browser import BOUND, start_server  # noqa: E402

from nextword.runtime import __version__  # noqa: E402
from nextword.serve import ServeConfig  # noqa: E402

PREFIX = "/nextword"
SECRET = "zebraquokka"  # a word in every prompt: it must reach no log
ALIAS = "gpt-3.5-turbo-instruct"  # --served-model-name: the name an OpenAI app may have hard-coded
# a log line: 2026-01-31T14:05:09.123+00:00 INFO [4242] nextword.serve.access: ... (4242: the process id)
STAMPED = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) \[(\d+)\] \S+: "
)
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"host", b"content-length"}


def prefix_proxy(upstream: str, prefix: str) -> Any:
    """An ASGI reverse proxy: ``prefix``/path goes to ``upstream``/path (``prefix`` alone to ``/``), the
    answer is streamed back."""
    state: dict[str, Any] = {}

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                state["client"] = httpx.AsyncClient(base_url=upstream, timeout=30)
                await send({"type": "lifespan.startup.complete"})
            await state["client"].aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path != prefix and not path.startswith(prefix + "/"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP - {b"host"}]
        headers += [
            (b"x-forwarded-for", scope["client"][0].encode()),
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-prefix", prefix.encode()),
        ]
        query = scope.get("query_string", b"").decode()
        target = (path[len(prefix) :] or "/") + (f"?{query}" if query else "")
        request = state["client"].build_request(scope["method"], target, headers=headers, content=body)
        response = await state["client"].send(request, stream=True)
        try:
            kept = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": kept})
            async for chunk in response.aiter_raw():  # each piece as it comes: no buffering
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


def _serve(model_path: Path, logs: Path, *flags: str) -> subprocess.Popen:
    """``nextword serve`` in a process of its own on any free port (``--port 0``: no port picked here
    that another process could take first), its stdout and stderr going to files (not a tty)."""
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = ["serve", str(model_path), "--port", "0", "--max-words", "10000", *flags]
    with (
        open(logs / "stdout.log", "w", encoding="utf-8") as out,
        open(logs / "stderr.log", "w", encoding="utf-8") as err,
    ):
        return subprocess.Popen([sys.executable, "-c", code, *argv], stdout=out, stderr=err)


def _log(logs: Path) -> str:
    return (logs / "stdout.log").read_text() + (logs / "stderr.log").read_text()


def _wait_up(process: subprocess.Popen, logs: Path, timeout: float = 60) -> str:
    """The server's URL, once it answers /health: the port is the one uvicorn says it bound."""
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}: {_log(logs)}")
        if url is None:
            bound = BOUND.search(_log(logs))
            url = bound and f"http://127.0.0.1:{bound.group(1)}"
        try:
            if url and httpx.get(url + "/health", timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not come up: {_log(logs)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _stream(url: str, body: dict, started: threading.Event | None = None) -> list[str]:
    """The ``data:`` payloads of one streamed completion; a broken stream ends with its error."""
    events: list[str] = []
    try:
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    if started is not None:
                        started.set()
    except httpx.HTTPError as exc:
        events.append(f"broken: {exc!r}")
    return events


def test_root_path_is_checked():
    assert ServeConfig(root_path="/nextword/").root_path == "/nextword"
    assert ServeConfig(root_path="/a/b.c").root_path == "/a/b.c" and ServeConfig().root_path == ""
    for bad in ("nextword", "/next word", "/x'y", "/a//b", "/<b>"):
        with pytest.raises(ValueError, match="root_path must be a path prefix"):
            ServeConfig(root_path=bad)


def test_behind_a_proxy_that_strips_its_prefix(model_path, tmp_path):
    """Under /nextword/ with --root-path: the API reference loads its files and its schema, "Try it out"
    calls the prefixed API (the schema's servers), redirects keep the prefix; streams are not held back.
    The logs, written to files, are one plain line per request and hold no prompt text."""
    server = _serve(model_path, tmp_path, "--root-path", PREFIX + "/")
    proxy = None
    try:
        direct = _wait_up(server, tmp_path)
        proxy = start_server(prefix_proxy(direct, PREFIX))
        url = proxy.url + PREFIX
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/health").json()["status"] == "ok"
            assert 'href="static/style.css"' in http.get("/").text  # the page's URLs are relative
            docs = http.get("/docs").text
            found = re.findall(r"""(?:href|src)=["']([^"']+)|url: ?["']([^"']+)""", docs)
            urls = [a or b for a, b in found if (a or b).startswith("/")]
            assert len(urls) == 4 and all(u.startswith(PREFIX + "/") for u in urls), urls
            for u in urls:
                assert httpx.get(proxy.url + u, timeout=30).status_code == 200, u
            assert http.get("/openapi.json").json()["servers"] == [{"url": PREFIX}]
            moved = http.get("/v1/models/")
            assert moved.status_code == 307 and moved.headers["location"] == url + "/v1/models"

            body = {"prompt": f"the {SECRET} network", "max_tokens": 30, "seed": 1}
            events = _stream(url, {**body, "stream": True})
            assert events[-1] == "[DONE]" and len(events) > 3, events[-2:]
            assert http.post("/v1/completions", json=body).status_code == 200
            assert http.post("/v1/suggest", json={"prompt": f"a {SECRET}"}).status_code == 200
            assert http.post("/v1/score", json={"text": f"the {SECRET} system"}).status_code == 200
            assert http.post("/v1/completions", json={**body, "temperature": -1}).status_code == 400
            assert http.post("/v1/completions", json={**body, "bogus": SECRET}).status_code == 400
        headers = httpx.post(
            direct + "/v1/completions", json={**body, "stream": True}, timeout=30
        ).headers  # what a buffering proxy (nginx) reads to pass each event on at once
        assert headers["x-accel-buffering"] == "no" and headers["cache-control"] == "no-cache"
    finally:
        if proxy is not None:
            proxy.stop()
        _stop(server)
    log = _log(tmp_path)
    assert SECRET not in log and "Traceback" not in log, log
    assert "\x1b[" not in log  # no colour codes in a file
    assert all(STAMPED.match(line) for line in log.splitlines()), log  # uvicorn's lines and nextword's
    access = [line for line in log.splitlines() if '"POST ' + PREFIX + "/v1/completions HTTP/1.1" in line]
    assert len(access) == 5, log  # one line per request, with the path the client asked for


def test_sighup_drains_like_sigterm(model_path, tmp_path):
    """A SIGHUP (a process manager's reload, a closed terminal) used to kill the one server process at
    once: streams cut mid-word with no [DONE]. It now drains and stops as SIGTERM does."""
    server = _serve(model_path, tmp_path, "--shutdown-timeout", "0")
    try:
        url = _wait_up(server, tmp_path)
        started = threading.Event()
        events: list[str] = []
        body = {"prompt": "the", "max_tokens": 10_000, "stop_at_end": False, "stream": True}
        reader = threading.Thread(target=lambda: events.extend(_stream(url, body, started)))
        reader.start()
        assert started.wait(30)
        server.send_signal(signal.SIGHUP)
        reader.join(timeout=30)
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        _stop(server)
    log = _log(tmp_path)
    assert events[-1] == "[DONE]", events[-2:]
    assert json.loads(events[-3])["choices"][0]["end_reason"] == "cancelled"
    assert "shutting down" in json.loads(events[-2])["error"]["message"]
    assert "SIGHUP" in log and "Traceback" not in log, log


@pytest.mark.parametrize("workers", [1, 2])
def test_log_lines_are_time_stamped_and_only_the_named_proxies_are_believed(model_path, tmp_path, workers):
    """uvicorn wrote its lines in a format of its own and nextword in another, neither with a time, and
    the X-Forwarded-* headers of a proxy elsewhere than 127.0.0.1 could be believed only through
    uvicorn's $FORWARDED_ALLOW_IPS. Every line (each worker's too) now starts with the time, and
    --forwarded-allow-ips names the proxies: here 127.0.0.2, so the same headers from 127.0.0.1 (which
    uvicorn believes by default) no longer change the scheme the app sees, nor the client logged.
    Each line names the process that wrote it (the worker's, uvicorn's supervisor's), and
    --served-model-name reaches every worker with the rest of the settings."""
    flags = ("--workers", str(workers), "--forwarded-allow-ips", "127.0.0.2", "--served-model-name", ALIAS)
    flags += ("--allowed-host", "example.org")  # the proxy's name, passed on in Host
    server = _serve(model_path, tmp_path, *flags)
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9", "host": "example.org"}
    locations = {}
    try:
        url = _wait_up(server, tmp_path)
        deadline = time.monotonic() + 60
        while _log(tmp_path).count("nextword.serve.app: serving") < workers:  # every worker is up
            assert time.monotonic() < deadline, _log(tmp_path)
            time.sleep(0.1)
        for source in ("127.0.0.2", "127.0.0.1"):  # the proxy named, and one that is not
            with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as http:
                moved = http.get(url + "/v1/models/", headers=forwarded)
            assert moved.status_code == 307
            locations[source] = moved.headers["location"]
        for _ in range(4):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"] == ALIAS
            body = {"model": ALIAS, "prompt": "the", "max_tokens": 2}
            assert httpx.post(url + "/v1/completions", json=body, timeout=30).json()["model"] == ALIAS
        assert httpx.post(url + "/v1/completions", json={**body, "model": model_path.stem}).status_code == 404
    finally:
        _stop(server)
    assert locations == {
        "127.0.0.2": "https://example.org/v1/models",
        "127.0.0.1": "http://example.org/v1/models",
    }
    lines = _log(tmp_path).splitlines()
    assert lines and all(STAMPED.match(line) for line in lines), lines
    serving = [line for line in lines if " nextword.serve.app: serving " in line and f"({ALIAS})" in line]
    assert len(serving) == workers, lines
    caps = [
        line for line in lines if f" nextword.serve.app: nextword {__version__}; caps: 256 streams, " in line
    ]
    assert len(caps) == workers and "10000 words" in caps[0], lines  # what each process enforces
    assert (
        sum(" INFO [" in line and "] nextword.serve.state: shutting down: " in line for line in lines)
        == workers
    )
    # the process id on each line is the writer's: each worker's is the one its uvicorn line announces
    started = {
        m.group(1) for line in lines if (m := re.search(r"uvicorn: Started server process \[(\d+)\]", line))
    }
    assert len(started) == workers and {_pid(line) for line in serving} == started, lines
    assert {_pid(line) for line in lines} == started | ({str(server.pid)} if workers > 1 else set())
    if workers == 1:
        assert started == {str(server.pid)}
    access = [line for line in lines if " nextword.serve.access: " in line and '"GET /v1/models/ ' in line]
    assert len(access) == 2 and "203.0.113.9" in access[0] and "127.0.0.1:" in access[1], access


def _pid(line: str) -> str:
    """The process id a log line carries."""
    stamped = STAMPED.match(line)
    assert stamped, line
    return stamped.group(2)


def test_the_page_works_at_its_prefix_without_the_slash(browser, model):
    """A proxy that serves the page at /nextword (no slash) passes it on as /: its relative URLs
    (static/api.js, v1/models, the worker of "run in this browser") then resolved against /, outside
    the prefix, and the page stayed blank. With --root-path the page puts its slash back first; at
    /nextword/, and with no prefix at /, it works as before."""
    pytest.importorskip("selenium", reason="install nextword[serve-test] (selenium) to test the page")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from nextword.serve import create_app

    def loaded(address: str) -> str:
        browser.get(address)
        WebDriverWait(browser, 60).until(
            lambda d: "tiny" in d.find_element(By.ID, "model-line").text, "the model line never loaded"
        )
        WebDriverWait(browser, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .chip"), "no suggestions came"
        )
        return browser.execute_script("return location.pathname")

    plain = start_server(create_app(ServeConfig(), model))
    server = start_server(create_app(ServeConfig(root_path=PREFIX), model), root_path=PREFIX)
    proxy = start_server(prefix_proxy(server.url, PREFIX))
    try:
        assert loaded(plain.url + "/") == "/"
        assert loaded(proxy.url + PREFIX + "/") == PREFIX + "/"
        assert loaded(proxy.url + PREFIX + "?x=1#w") == PREFIX + "/"
        assert browser.execute_script("return location.search + location.hash") == "?x=1#w"
        browser.find_element(By.ID, "in-browser").click()  # the worker, onnxruntime-web, model.onnx
        WebDriverWait(browser, 120).until(
            lambda d: d.execute_script("return document.body.dataset.backend") == "browser",
            "the model never loaded in the browser",
        )
    finally:
        for running in (proxy, server, plain):
            running.stop()


def test_every_worker_answers_a_scrape_with_the_whole_servers_counts(model_path, tmp_path):
    """With --workers each process counted its own requests, and a scrape showed whichever worker the
    kernel handed it to: counters jumped between the workers' values. The workers now keep their
    metrics in one folder (prometheus_client's multiprocess mode), so every scrape, whichever worker
    answers it, adds up all of them; the folder goes when the server stops."""
    from prometheus_client.parser import text_string_to_metric_families

    server = _serve(model_path, tmp_path, "--workers", "2")
    body = {"prompt": "the", "max_tokens": 3, "stop_at_end": False}
    scrapes: list[dict[str, float]] = []
    try:
        url = _wait_up(server, tmp_path)
        deadline = time.monotonic() + 60
        while _log(tmp_path).count("nextword.serve.app: serving") < 2:  # both workers are up
            assert time.monotonic() < deadline, _log(tmp_path)
            time.sleep(0.1)
        words = 0
        for sent in range(1, 41):  # a new connection each, until both workers have answered some
            answer = httpx.post(url + "/v1/completions", json=body, timeout=30)
            words += answer.json()["usage"]["completion_tokens"]
            if sent >= 6 and len(_access_pids(tmp_path, "POST /v1/completions")) == 2:
                break
        assert len(_access_pids(tmp_path, "POST /v1/completions")) == 2, _log(tmp_path)
        deadline = time.monotonic() + 20
        settled = False
        while not settled and time.monotonic() < deadline:
            # each worker writes its load once a second: scraped again until every scrape has it (a
            # worker's write a moment late on a busy machine is not what is tested)
            time.sleep(1.1)
            scrapes = []
            for _ in range(40):  # until both workers have answered a scrape
                text = httpx.get(url + "/metrics", timeout=30).text
                scrapes.append(
                    {
                        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
                        for family in text_string_to_metric_families(text)
                        for sample in family.samples
                    }
                )
                if len(scrapes) >= 4 and len(_access_pids(tmp_path, "GET /metrics")) == 2:
                    break
            totals = [
                (s.get("nextword_generations_total{}"), s.get("nextword_generated_words_total{}"))
                for s in scrapes
            ]
            settled = set(totals) == {(sent, words)}
        assert len(_access_pids(tmp_path, "GET /metrics")) == 2, _log(tmp_path)
    finally:
        _stop(server)
    completions = (
        'nextword_http_requests_total{"method": "POST", "route": "/v1/completions", "status": "200"}'
    )
    info = {"model": model_path.stem, "version": __version__}
    for samples in scrapes:
        assert samples[completions] == sent
        assert samples["nextword_generations_total{}"] == sent
        assert samples["nextword_generated_words_total{}"] == words
        assert samples["nextword_time_to_first_word_seconds_count{}"] == sent
        assert samples["nextword_generations_in_flight{}"] == 0
        assert samples["nextword_slots_limit{}"] == 2 * ServeConfig().max_streams  # the two workers' caps
        assert samples["nextword_server_info" + json.dumps(info, sort_keys=True)] == 1
    folder = re.search(r"the workers' metrics are kept in (\S+) until the server stops", _log(tmp_path))
    assert folder and not Path(folder.group(1)).exists(), _log(tmp_path)


def _access_pids(logs: Path, request: str) -> set[str]:
    """The processes whose access log has a line for ``request`` (a method and a path)."""
    return {
        _pid(line)
        for line in _log(logs).splitlines()
        if " nextword.serve.access: " in line and f'"{request} ' in line
    }


def test_the_access_line_is_written_when_the_answer_ends_and_holds_nothing_a_client_forged(
    model_path, tmp_path
):
    """uvicorn wrote its access line when an answer began: a stream showed 200 and no time, and a whole
    completion whose client hung up was not logged at all. It logged a query string whole, an API key
    sent there too, and a trusted proxy's X-Forwarded-For as sent, so that a client could forge the
    start of a line. The app now writes the line when the answer ends: the status the client got (499:
    gone before it began), the time taken, the completion's id; a query keeps its names, not their
    values; a client address that is not an IP address is quoted as such."""
    key = "keyinthequery"
    server = _serve(model_path, tmp_path, "--api-key", key)  # proxies believed: 127.0.0.1 (uvicorn's)
    auth = {"authorization": f"Bearer {key}"}
    forged = '9.9.9.9:0 - "GET /admin HTTP/1.1" 200'
    try:
        url = _wait_up(server, tmp_path)
        assert httpx.get(f"{url}/v1/models?api_key={key}&flag", headers=auth, timeout=30).status_code == 200
        assert httpx.get(url + "/health", headers={"x-forwarded-for": forged}, timeout=30).status_code == 200
        upgrade = {"connection": "upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
                   "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
        # uvicorn's websocket line logged the path with its query (a key there too): no websockets now
        assert httpx.get(f"{url}/ws?api_key={key}", headers=upgrade, timeout=30).status_code == 404
        # an upgrade is ignored, as RFC 9110 allows: the path answers as it would without one
        assert httpx.get(f"{url}/v1/models", headers={**upgrade, **auth}, timeout=30).status_code == 200
        answer = httpx.post(url + "/v1/completions", json={"prompt": "the", "max_tokens": 3}, headers=auth)
        assert answer.status_code == 200
        body = {"prompt": "the", "max_tokens": 10_000, "stop_at_end": False}  # seconds of work
        with pytest.raises(httpx.ReadTimeout):  # the client hangs up before any answer
            httpx.post(url + "/v1/completions", json=body, headers=auth, timeout=0.3)
        with httpx.stream(
            "POST", url + "/v1/completions", json={**body, "stream": True}, headers=auth
        ) as cut:
            next(line for line in cut.iter_lines() if line.startswith("data: "))  # then the client leaves
        deadline = time.monotonic() + 30
        while '" 499 ' not in _log(tmp_path) or "(stream cut before its end)" not in _log(tmp_path):
            assert time.monotonic() < deadline, _log(tmp_path)
            time.sleep(0.1)
    finally:
        _stop(server)
    log = _log(tmp_path)
    access = [
        line.split(" nextword.serve.access: ", 1)[1] for line in log.splitlines() if ".serve.access: " in line
    ]
    assert key not in log and " uvicorn.access: " not in log, log  # one access line per request, ours
    assert "Unsupported upgrade" not in log and "WebSocket library" not in log, log  # uvicorn's advice
    assert "127.0.0.1:" in access[0] and '"GET /v1/models?... HTTP/1.1" 200 ' in log, access
    (health,) = [line for line in access if '"GET /health HTTP/1.1"' in line and "not an address" in line]
    assert health.startswith(f"(not an address: {quote(forged, safe='')}) - "), health  # no quote, no space
    done = re.escape('"POST /v1/completions HTTP/1.1" 200 ') + r"[\d.]+ ms " + re.escape(answer.json()["id"])
    assert any(re.search(done, line) for line in access), access
    streamed = (
        r'"POST /v1/completions HTTP/1\.1" 200 [\d.]+ ms cmpl-[0-9a-f]{32} \(stream cut before its end\)$'
    )
    assert any(re.search(streamed, line) for line in access), access
    assert any('"GET /ws?... HTTP/1.1" 404 ' in line for line in access), access
    assert any(
        re.search(r'"POST /v1/completions HTTP/1\.1" 499 [\d.]+ ms cmpl-[0-9a-f]{32}$', x) for x in access
    )


def test_ctrl_c_twice_quits_at_once_with_one_line_not_a_traceback_per_stream(model_path, tmp_path):
    """A second Ctrl-C (uvicorn's forced quit) cancelled every task in flight, and uvicorn logged each
    one's CancelledError: about 80 lines per stream, and the app's lifespan too. Now one line says
    what the second signal does, and a second SIGTERM, which only waits on, is said as well."""
    server = _serve(model_path, tmp_path)
    readers = []
    try:
        url = _wait_up(server, tmp_path)
        # the longest generation the server takes (10,000 words), slowed by its alternatives' log-
        # probabilities: a tiny model's plain 10,000 words took about a second, and one of the two
        # ended before the Ctrl-C a second after the first SIGTERM (1 in flight, not 2)
        body = {"prompt": "the", "max_tokens": 10_000, "stop_at_end": False, "stream": True, "logprobs": 20}
        for _ in range(2):
            started = threading.Event()
            reader = threading.Thread(target=_stream, args=(url, body, started))
            reader.start()
            assert started.wait(30)
            readers.append(reader)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.25)
        server.send_signal(signal.SIGTERM)  # waits on: said
        time.sleep(0.25)
        server.send_signal(signal.SIGINT)  # quits at once
        assert server.wait(timeout=30) != 0
        for reader in readers:
            reader.join(timeout=30)
    finally:
        _stop(server)
    log = _log(tmp_path)
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "SIGTERM again: already shutting down, 2 generation(s) in flight (Ctrl-C twice" in log, log
    assert log.count("Ctrl-C again: quitting at once, cutting 2 generation(s) in flight") == 1, log


def test_ctrl_c_ends_the_command_as_interrupted_with_status_130(model_path, tmp_path):
    # uvicorn swallowed the KeyboardInterrupt, so `nextword serve` stopped by Ctrl-C exited 0, unlike
    # every other command (130, "interrupted"); SIGTERM's 143 stays
    server = _serve(model_path, tmp_path)
    try:
        _wait_up(server, tmp_path)
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 130, _log(tmp_path)
    finally:
        _stop(server)
    assert "nextword serve: interrupted" in _log(tmp_path) and "Traceback" not in _log(tmp_path)


def test_a_worker_that_is_killed_is_a_warning_that_names_the_usual_cause(model_path, tmp_path):
    """uvicorn (0.30 and later) starts a dead worker again with one INFO line and no cause: a worker
    killed by the out-of-memory killer forty times over left no warning in the log."""
    from uvicorn.supervisors.multiprocess import Multiprocess

    if not hasattr(Multiprocess, "keep_subprocess_alive"):
        pytest.skip("this uvicorn does not start a dead worker again (0.30 and later do)")
    server = _serve(model_path, tmp_path, "--workers", "2")
    try:
        _wait_up(server, tmp_path)
        deadline = time.monotonic() + 60
        while (
            len(serving := [ln for ln in _log(tmp_path).splitlines() if "nextword.serve.app: serving" in ln])
            < 2
        ):
            assert time.monotonic() < deadline, _log(tmp_path)
            time.sleep(0.1)
        victim = int(_pid(serving[0]))
        os.kill(victim, signal.SIGKILL)
        said = f"WARNING [{server.pid}] uvicorn: worker process {victim} died and was started again"
        while said not in _log(tmp_path):
            assert time.monotonic() < deadline + 30, _log(tmp_path)
            time.sleep(0.1)
        assert "most often out of memory" in _log(tmp_path)
    finally:
        _stop(server)


def _wait_for(logs: Path, text: str, count: int = 1, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while _log(logs).count(text) < count:
        assert time.monotonic() < deadline, f"never logged {count} x {text!r}: {_log(logs)}"
        time.sleep(0.2)


def _workers(logs: Path) -> list[int]:
    """The ids of the worker processes started so far, in order."""
    return [int(m) for m in re.findall(r"uvicorn: Started server process \[(\d+)\]", _log(logs))]


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie its supervisor has not reaped yet has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="latin-1").rsplit(")", 1)[1].split()[0]
    except OSError:
        return not sys.platform.startswith("linux")  # no /proc to ask: os.kill found it
    return state != "Z"


def _uvicorn_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("uvicorn").split(".")[:2] if part.isdigit())


@pytest.mark.skipif(
    _uvicorn_version() < (0, 51), reason="uvicorn's supervisor takes SIGHUP as a reload from 0.51 on"
)
def test_a_worker_started_again_says_the_model_file_changed_or_cannot_load(model_path, tmp_path):
    """With --workers, uvicorn starts a worker that died again, and it loads the file on disk now: after
    the nightly job replaced the file without a SIGHUP, the server answered from two models unsaid, and a
    file that no longer loads made each restart print multiprocessing's 45-line traceback, with a
    warning that blamed memory. The worker now says the file holds other bytes than the others loaded,
    or, where it cannot load it, one line naming the file and the way out, and it is started again every
    few seconds (serve/worker_exit.py: once a minute, uvicorn's supervisor deaf to signals meanwhile, or
    in a loop), at once when the file changes; a SIGHUP makes the file on disk the one every worker
    should find."""
    import onnx

    served = tmp_path / "m.onnx"
    served.write_bytes(model_path.read_bytes())
    other = onnx.load(str(model_path))
    other.graph.doc_string = "another export"  # other bytes, the same model
    logs = tmp_path / "logs"
    logs.mkdir()
    server = _serve(served, logs, "--workers", "2")
    changed = "holds other bytes than the file the other workers loaded"
    try:
        url = _wait_up(server, logs)
        _wait_for(logs, "nextword.serve.app: serving", 2)
        onnx.save(other, str(tmp_path / "new.onnx"))
        os.replace(tmp_path / "new.onnx", served)  # replaced, no SIGHUP
        os.kill(_workers(logs)[0], signal.SIGKILL)
        _wait_for(logs, changed)
        (tmp_path / "bad.onnx").write_bytes(b"garbage")
        os.replace(tmp_path / "bad.onnx", served)
        os.kill(_workers(logs)[1], signal.SIGKILL)
        # started again every few seconds (RETRY_SECONDS): it was once a minute, or in a loop
        _wait_for(logs, "this worker cannot start", 2, timeout=60)
        assert httpx.get(url + "/health", timeout=30).status_code == 200  # the other worker serves on
        onnx.save(other, str(tmp_path / "new.onnx"))
        os.replace(tmp_path / "new.onnx", served)  # the worker that could not start loads it, and says so
        _wait_for(logs, changed, 2, timeout=60)  # the waiting worker ends as the file changes
        _wait_for(logs, "nextword.serve.app: serving", 4)
        started = len(_workers(logs))
        serving = [pid for pid in _workers(logs) if _running(pid)]
        server.send_signal(signal.SIGHUP)  # every worker loads the file on disk: it is the one now
        deadline = time.monotonic() + 90
        while len(_workers(logs)) < started + 2 or any(_running(pid) for pid in serving):
            assert time.monotonic() < deadline, _log(logs)
            time.sleep(0.2)
        # the old workers have ended: one still draining answers 503 (the request came as one did once)
        _wait_for(logs, "nextword.serve.app: serving", 6)
        assert httpx.get(url + "/health", timeout=30).status_code == 200
    finally:
        _stop(server)
    log = _log(logs)
    assert log.count(changed) == 2, log  # not again for the workers of the SIGHUP
    assert server.returncode == 0, log  # stopped by its SIGTERM, with a worker that could not start
    assert "Traceback" not in log and "nextword info" in log, log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a worker asks Linux's prctl for its signal")
def test_workers_end_when_their_supervisor_is_killed(model_path, tmp_path):
    """A supervisor killed outright (SIGKILL; supervisord without killasgroup signals it alone) left its
    workers serving and holding the port for good, so the next `nextword serve` could not bind it. Each
    worker now drains and ends as the supervisor dies."""
    server = _serve(model_path, tmp_path, "--workers", "2", "--shutdown-timeout", "0")
    workers: list[int] = []
    try:
        url = _wait_up(server, tmp_path)
        _wait_for(tmp_path, "nextword.serve.app: serving", 2)
        workers = _workers(tmp_path)
        server.kill()
        server.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers still running: {_log(tmp_path)}"
            time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=5)
    finally:
        _stop(server)
        for pid in workers:  # none is left behind where the test fails
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


@pytest.mark.skipif(
    _uvicorn_version() < (0, 51), reason="uvicorn's supervisor takes SIGHUP as a reload from 0.51 on"
)
def test_a_sighup_restart_of_the_workers_answers_every_request(model_path, tmp_path):
    """With --workers, uvicorn retires each old worker with SIGTERM once its successor is ready; the old
    one went on accepting connections until its next tick (0.1 s) and answered them 503 "shutting down",
    and a request on a connection it had accepted just before got 503 too: 2 to 6 of about 800 requests
    over 3 restarts. A worker now stops listening as the signal comes (the others, on the same socket,
    take the new connections) and answers what it had taken in."""
    server = _serve(model_path, tmp_path, "--workers", "2")
    answers: dict[Any, int] = {}
    stop = threading.Event()

    def ask(url: str) -> None:  # a new connection each time, as a load balancer's probe makes one
        for _ in range(5000):  # bounded: about 40 s of requests at most
            if stop.is_set():
                return
            try:
                found: Any = httpx.get(url + "/health", timeout=30).status_code
            except httpx.TransportError as exc:
                found = type(exc).__name__
            answers[found] = answers.get(found, 0) + 1

    try:
        url = _wait_up(server, tmp_path)
        _wait_for(tmp_path, "nextword.serve.app: serving", 2)
        clients = [threading.Thread(target=ask, args=(url,)) for _ in range(3)]
        for client in clients:
            client.start()
        try:
            for _ in range(2):
                started = len(_workers(tmp_path))
                serving = [pid for pid in _workers(tmp_path) if _running(pid)]
                server.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 90
                while len(_workers(tmp_path)) < started + 2 or any(_running(pid) for pid in serving):
                    assert time.monotonic() < deadline, _log(tmp_path)
                    time.sleep(0.1)
                time.sleep(0.5)
        finally:
            stop.set()
            for client in clients:
                client.join(60)
    finally:
        _stop(server)
    assert set(answers) == {200} and answers[200] > 50, (answers, _log(tmp_path)[-3000:])
