"""``GET /metrics`` for the alerts an operator writes: streams that fail after their 200, failed batched
steps, one full worker among idle ones, latency without the fast refusals, the HTTP protocol's own
refusals, waiting sequences (not requests), the first word timed as it comes, and a flood of scrapes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")
pytest.importorskip("prometheus_client", reason="install nextword[serve] (prometheus_client)")

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_serve_metrics import requests, scrape

from helpers import drain_once_generating
from nextword.runtime import GenerationConfig
from nextword.serve import ServeConfig, create_app
from nextword.serve.metrics import MULTIPROCESS_ENV
from nextword.serve.scheduler import BatchScheduler, Job

# how a stream may end, as docs/serving.md lists them: a label of these values only
STREAM_ENDS = ("done", "error", "client_left", "cancelled", "server_quit")


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def ends(samples) -> dict[str, float]:
    return {reason: samples[("nextword_stream_ends_total", (("reason", reason),))] for reason in STREAM_ENDS}


def test_a_stream_that_fails_after_its_200_counts_as_an_error_end_and_a_failed_step(model, monkeypatch):
    """The stream's 200 was counted, its error event only logged: no alert could see it, nor the
    scheduler's failed steps, which /health showed and /metrics did not."""
    from nextword.serve import scheduler as module

    with TestClient(create_app(ServeConfig(), model)) as client:
        before = scrape(client)
        assert before[("nextword_failed_steps_total", ())] == 0
        assert ends(before) == dict.fromkeys(STREAM_ENDS, 0)  # each reason there from the start
        body = {"prompt": "the", "max_tokens": 8, "seed": 1, "stop_at_end": False, "stream": True}
        with client.stream("POST", "/v1/completions", json=body) as ok:
            assert [line for line in ok.iter_lines() if line][-1] == "data: [DONE]"
        real, calls = module._row_update, {"n": 0}

        def third_fails(*args):
            calls["n"] += 1
            if calls["n"] == 3:  # the stream's 200 has gone out by then (its first words too, unless
                # they reach the route with the failure: it reads the failure first)
                raise IndexError("a step failing after the stream began")
            return real(*args)

        monkeypatch.setattr(module, "_row_update", third_fails)
        with client.stream("POST", "/v1/completions", json=body) as failed:
            assert failed.status_code == 200
            events = [line for line in failed.iter_lines() if line.startswith("data: {")]
        assert '"server_error"' in events[-1], events
        after = scrape(client)
    assert after[("nextword_failed_steps_total", ())] == 1
    assert ends(after) == {**dict.fromkeys(STREAM_ENDS, 0), "done": 1, "error": 1}
    assert requests(after, "/v1/completions", "POST", 200) == 2  # both began with their 200


def test_a_stream_the_drain_cancels_counts_as_cancelled(model, monkeypatch):
    from nextword.serve import scheduler as module

    real = module._row_update

    def slow(*args):  # a word each 5 ms: the stream is still going when the drain cancels it
        time.sleep(0.005)
        return real(*args)

    monkeypatch.setattr(module, "_row_update", slow)
    app = create_app(ServeConfig(), model)
    body = {"prompt": "the", "max_tokens": 1000, "min_tokens": 1000, "stream": True}
    with TestClient(app) as client:
        # what the shutdown does --shutdown-timeout after its signal (ServerState.begin_shutdown)
        drain_once_generating(app.state.nextword)
        with client.stream("POST", "/v1/completions", json=body) as stream:
            events = [line for line in stream.iter_lines() if line.startswith("data: ")]
        assert '"finish_reason":null,"end_reason":"cancelled"' in events[-3], events[-3:]
        assert '"type":"server_error"' in events[-2], events[-2:]
        assert ends(scrape(client)) == {**dict.fromkeys(STREAM_ENDS, 0), "cancelled": 1}


def test_the_slots_used_ratio_is_used_over_limit_and_durations_carry_the_status_class(model):
    """Fast 429s pulled the latency quantiles down; the ratio is what an alert on a full server reads."""
    app = create_app(ServeConfig(max_streams=2), model)
    slots = app.state.nextword.slots
    with TestClient(app) as client:
        assert scrape(client)[("nextword_slots_used_ratio", ())] == 0
        assert client.post("/v1/suggest", json={"prompt": "the"}).status_code == 200
        slots.acquire()
        assert scrape(client)[("nextword_slots_used_ratio", ())] == 0.5
        slots.acquire()
        assert client.post("/v1/suggest", json={"prompt": "the"}).status_code == 429
        full = scrape(client)
        slots.release()
        slots.release()
    assert full[("nextword_slots_used_ratio", ())] == 1
    timed = {
        dict(labels)["status_class"]: value
        for (name, labels), value in full.items()
        if name == "nextword_http_request_duration_seconds_count" and ("route", "/v1/suggest") in labels
    }
    assert timed == {"2xx": 1, "4xx": 1}  # the quantiles of the answers apart from the refusals


def test_a_worker_full_among_idle_ones_shows_in_the_ratio(tmp_path, model_path):
    """With --workers the slot gauges add up: one worker full (answering 429) beside idle ones averaged
    out. The ratio is the fullest live worker's, whichever worker answers the scrape."""
    env = {**os.environ, MULTIPROCESS_ENV: str(tmp_path)}
    other = (  # another worker, alive, three quarters full
        "import sys\n"
        "from prometheus_client import Gauge\n"
        "Gauge('nextword_slots_used_ratio', 'x', multiprocess_mode='livemax').set(0.75)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    worker = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from prometheus_client.parser import text_string_to_metric_families\n"
        "from nextword.serve import ServeConfig, create_app\n"
        "app = create_app(ServeConfig(model=sys.argv[1], workers=2, max_streams=4))\n"
        "state = app.state.nextword\n"
        "state.metrics.max_age = 0\n"
        "def ratio(client):\n"
        "    text = client.get('/metrics').text\n"
        "    return [s.value for f in text_string_to_metric_families(text) for s in f.samples\n"
        "            if s.name in ('nextword_slots_used_ratio', 'nextword_slots_used')]\n"
        "with TestClient(app) as client:\n"
        "    state.slots.acquire()\n"
        "    seen = [ratio(client)]\n"
        "    for _ in range(3):\n"
        "        state.slots.acquire()\n"
        "    seen.append(ratio(client))\n"
        "print(json.dumps(seen))\n"
    )
    alive = subprocess.Popen(
        [sys.executable, "-c", other], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert alive.stdout is not None and alive.stdout.readline().strip() == "ready"
        result = subprocess.run(
            [sys.executable, "-c", worker, str(model_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        alive.communicate("", timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # (slots used: this worker's, the other wrote none; the ratio: the fuller of the two)
    assert sorted(seen[0]) == [0.75, 1] and sorted(seen[1]) == [1, 4], seen


def test_the_protocols_refusals_are_counted_once_and_the_first_word_as_it_comes(model, monkeypatch):
    """Bytes that are not HTTP, a head too large, a head too slow: answered by the HTTP protocol before
    any middleware, in the access log and no count. A malformed chunked body of a request the app reads
    counts once, as that request's. The first word was timed when its request ended, a long stream's
    after minutes, and a client that left was no end of a stream anyone counted."""
    from browser import start_server

    from nextword.serve import scheduler as module

    real = module._row_update

    def slow(*args):  # a word each 5 ms: the stream below is still going when it is scraped
        time.sleep(0.005)
        return real(*args)

    monkeypatch.setattr(module, "_row_update", slow)
    app = create_app(ServeConfig(max_header_bytes=4096, request_timeout=1.0), model)
    app.state.nextword.metrics.max_age = 0
    live = start_server(app)
    port = int(live.url.rsplit(":", 1)[1])

    def answer(*parts: bytes, pause: float = 0.0) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            for part in parts:
                sock.sendall(part)
                time.sleep(pause)
            out = b""
            while chunk := sock.recv(65536):
                out += chunk
            return out

    def metrics() -> dict:
        return parsed(httpx.get(live.url + "/metrics", timeout=30).text)

    try:
        assert answer(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 GET\r\n\r\n").startswith(b"HTTP/1.1 400")
        big = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 5000 + b"\r\n\r\n"
        assert answer(big).startswith(b"HTTP/1.1 431")
        assert answer(b"GET /health HTTP/1.1\r\nHo").startswith(b"HTTP/1.1 408")
        head = b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        chunked = answer(head + b"Transfer-Encoding: chunked\r\n\r\n", b"zz\r\n{}\r\n0\r\n\r\n", pause=0.3)
        assert chunked.startswith(b"HTTP/1.1 400")
        samples = metrics()
        for status in (400, 431, 408):
            assert requests(samples, "unmatched", "other", status) == 1, status
        assert requests(samples, "/v1/score", "POST", 400) == 1  # its own line, counted once
        body = {"prompt": "the", "max_tokens": 1000, "min_tokens": 1000, "stream": True}
        with httpx.stream("POST", live.url + "/v1/completions", json=body, timeout=30) as stream:
            lines = stream.iter_lines()  # held: a reader dropped would close the stream
            first = next(line for line in lines if line.startswith("data: {"))
            assert '"text"' in first
            during = metrics()  # the stream goes on
        assert during[("nextword_time_to_first_word_seconds_count", ())] == 1
        assert during[("nextword_generations_in_flight", ())] == 1
        deadline = time.monotonic() + 30
        while ends(metrics())["client_left"] < 1:  # the stream's task hears its client left
            assert time.monotonic() < deadline, "the stream whose client left was never counted"
            time.sleep(0.05)
    finally:
        live.stop()


def test_waiting_counts_the_sequences_of_the_waiting_requests(model):
    """Three requests of n=8 waiting showed 2 (the requests, partly), where the metric said sequences.
    They wait until the next tick even with room in the batch. A job that ends without a word has no
    first word to time; one with words is timed at its first, before it ends."""
    entered, go = threading.Event(), threading.Event()

    class Held:  # the model, whose generator's step waits until the test lets it go
        def __getattr__(self, name):
            return getattr(model, name)

        def generator(self):
            generator = model.generator()
            step = generator.step

            def held_step():
                entered.set()
                go.wait(60)
                return step()

            generator.step = held_step
            return generator

    scheduler = BatchScheduler(Held(), max_batch=256)

    async def main():
        stepping = Job(["the"], GenerationConfig(max_words=3, seed=1), None)
        scheduler.submit(stepping)
        await asyncio.to_thread(entered.wait, 60)
        config = GenerationConfig(max_words=3, seed=2, num_return_sequences=8)
        waiting = [Job(["a"], config, None) for _ in range(3)]
        for job in waiting:
            scheduler.submit(job)
        counted = scheduler.stats()["waiting"]
        waiting[0].cancel()  # never started: it ends without a word
        timed: dict[int, list[float]] = {0: [], 1: []}
        waiting[0].on_first_word, waiting[1].on_first_word = timed[0].append, timed[1].append
        go.set()
        async for _ in waiting[0].updates():
            pass
        at_first = None
        async for _ in waiting[1].updates():
            at_first = len(timed[1]) if at_first is None else at_first
        return counted, at_first, timed

    try:
        counted, at_first, timed = asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        go.set()
        scheduler.close()
    assert counted == 3 * 8
    assert timed[0] == [] and at_first == 1 and len(timed[1]) == 1, timed


def test_a_flood_of_scrapes_makes_the_text_once_a_second(model, monkeypatch):
    """Each scrape was made on the event loop (with --workers, from every worker's files): 245 a second
    held /v1/suggest up from ~53 ms to ~300 ms. The text is now made again once it is a second old."""
    from nextword.serve import metrics as module

    made = {"n": 0}
    real = module.generate_latest

    def counted(registry):
        made["n"] += 1
        return real(registry)

    monkeypatch.setattr(module, "generate_latest", counted)
    app = create_app(ServeConfig(), model)
    now = [1000.0]
    app.state.nextword.metrics.clock = lambda: now[0]
    with TestClient(app) as client:
        first = client.get("/metrics").text
        client.post("/v1/suggest", json={"prompt": "the"})
        assert client.get("/metrics").text == first and made["n"] == 1
        now[0] += 0.5
        assert client.head("/metrics").status_code == 200 and made["n"] == 1
        now[0] += 0.5  # a second after the text was made
        later = parsed(client.get("/metrics").text)
        assert made["n"] == 2
    assert requests(parsed(first), "/v1/suggest", "POST", 200) == 0
    assert requests(later, "/v1/suggest", "POST", 200) == 1


def test_every_metric_is_in_the_docs_table(model):
    """docs/serving.md's table is what an operator writes alerts from: each metric a scrape has is in it
    (the *_created samples aside: prometheus_client's own, one per counter and histogram)."""
    from pathlib import Path

    docs = Path(__file__).parents[1] / "docs" / "serving.md"
    section = docs.read_text(encoding="utf-8").split("\n## Metrics\n", 1)[1]
    table = next(part for part in section.split("\n\n") if part.startswith("| metric |"))
    with TestClient(create_app(ServeConfig(), model)) as client:
        client.post("/v1/completions", json={"prompt": "the", "max_tokens": 2})
        names = {name for name, _ in scrape(client)}
    for suffix in ("_bucket", "_count", "_sum"):
        names = {name.removesuffix(suffix) for name in names}
    documented = {name for name in names if not name.endswith("_created") and f"`{name}" in table}
    assert sorted(name for name in names if not name.endswith("_created")) == sorted(documented)
