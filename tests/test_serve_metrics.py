"""``GET /metrics``: Prometheus' text format, counting what the server answered and showing its load."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")
pytest.importorskip("prometheus_client", reason="install nextword[serve] (prometheus_client)")

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from nextword.serve import ServeConfig, create_app


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, parsed by prometheus_client's own parser: (name, labels) -> value."""
    client.app.state.nextword.metrics.max_age = 0  # made anew each time: these count what came just before
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def requests(samples, route: str, method: str, status: int) -> float:
    key = ("nextword_http_requests_total", (("method", method), ("route", route), ("status", str(status))))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_route_method_and_status_and_words_by_what_was_generated(model):
    app = create_app(ServeConfig(api_keys=("k",), max_body_bytes=2000), model)
    key = {"Authorization": "Bearer k"}
    with TestClient(app) as client:
        assert scrape(client)[("nextword_generated_words_total", ())] == 0
        whole = client.post(
            "/v1/completions", json={"prompt": "the", "max_tokens": 5, "seed": 1}, headers=key
        )
        words = whole.json()["usage"]["completion_tokens"]
        body = {"prompt": ["the", "a"], "max_tokens": 6, "seed": 2, "stream": True, "n": 2}
        body["stream_options"] = {"include_usage": True}
        with client.stream("POST", "/v1/completions", json=body, headers=key) as streamed:
            chunks = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
        words += [chunk for chunk in chunks if chunk.get("usage")][-1]["usage"]["completion_tokens"]
        beam = {"prompt": "the", "max_tokens": 4, "num_beams": 2, "stop_at_end": False}
        assert client.post("/v1/completions", json=beam, headers=key).status_code == 200
        client.get("/v1/models")  # no key: 401
        client.get("/v1/models/other", headers=key)  # 404
        client.put("/v1/models", headers=key)  # 405
        client.post("/v1/score", json={"text": "x" * 5000}, headers=key)  # over the body cap: 413
        client.get("/static/app.js")
        client.get("/no/such/path")
        for verb in ("BREW", "PROPFIND", "X" * 50):  # made-up methods: one label, whatever they are
            client.request(verb, "/v1/completions", headers=key)
        samples = scrape(client)

    assert requests(samples, "/v1/completions", "POST", 200) == 3
    assert requests(samples, "/v1/models", "GET", 401) == 1
    assert requests(samples, "/v1/models/{model_id}", "GET", 404) == 1
    assert requests(samples, "/v1/models", "PUT", 405) == 1
    assert requests(samples, "/v1/score", "POST", 413) == 1
    assert requests(samples, "/static", "GET", 200) == 1
    assert requests(samples, "unmatched", "GET", 404) == 1
    assert requests(samples, "/v1/completions", "other", 405) == 3
    assert requests(samples, "/metrics", "GET", 200) == 1  # the first scrape; this one counts after
    assert samples[("nextword_generations_total", ())] == 3
    # every word generated: the whole answer's, the stream's four sequences, the beam's returned text
    # (4 words: stop_at_end off), as the answers' usage counts them
    assert samples[("nextword_generated_words_total", ())] == words + 4
    # the two sampled completions had a first word; the beam search, answered whole, is not timed
    assert samples[("nextword_time_to_first_word_seconds_count", ())] == 2
    count = "nextword_http_request_duration_seconds_count"
    route = ("route", "/v1/completions")
    durations = {c: samples[(count, (route, ("status_class", c)))] for c in ("2xx", "4xx")}
    assert durations == {"2xx": 3, "4xx": 3}  # every request to the route, the made-up methods' 405s too
    assert samples[("nextword_server_info", (("model", "tiny"), ("version", _version())))] == 1
    assert samples[("nextword_slots_limit", ())] == 256 and samples[("nextword_draining", ())] == 0


def test_words_counted_equal_the_usage_the_answers_report(model):
    with TestClient(create_app(ServeConfig(), model)) as client:
        total = 0
        for seed in range(4):
            body = {"prompt": "the system", "max_tokens": 12, "seed": seed, "n": 2}
            total += client.post("/v1/completions", json=body).json()["usage"]["completion_tokens"]
        assert scrape(client)[("nextword_generated_words_total", ())] == total > 0


def test_the_load_is_read_at_each_scrape(model):
    """The gauges are the server's state when scraped: a request holding a slot, a generation in
    flight, a server draining."""
    app = create_app(ServeConfig(max_streams=7), model)
    state = app.state.nextword
    with TestClient(app) as client:
        before = scrape(client)
        assert before[("nextword_slots_limit", ())] == 7
        assert before[("nextword_generations_in_flight", ())] == 0 == before[("nextword_slots_used", ())]
        state.slots.acquire()
        state.jobs.add(object())  # what start_job adds while a completion generates
        state.draining = True
        during = scrape(client)
        assert (
            during[("nextword_slots_used", ())] == 1 and during[("nextword_generations_in_flight", ())] == 1
        )
        assert during[("nextword_draining", ())] == 1
        state.jobs.clear()
        state.slots.release()
        state.draining = False
        client.post("/v1/completions", json={"prompt": "the", "max_tokens": 3})
        after = scrape(client)
        assert after[("nextword_slots_used", ())] == 0 and after[("nextword_generations_in_flight", ())] == 0
        assert after[("nextword_batch_steps_total", ())] >= 1 > before[("nextword_batch_steps_total", ())]


def test_metrics_stay_open_behind_a_key_answer_head_and_are_in_the_api_reference(model):
    with TestClient(create_app(ServeConfig(api_keys=("k",)), model)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.head("/metrics").status_code == 200
        assert "/metrics" in client.get("/openapi.json").json()["paths"]
        assert "/metrics" in client.get("/nothing").json()["error"]["message"]  # the 404 lists it


def test_each_app_counts_its_own_and_the_unbatched_server_has_no_waiting_room(model):
    with (
        TestClient(create_app(ServeConfig(), model)) as one,
        TestClient(create_app(ServeConfig(batching=False), model)) as other,
    ):
        one.post("/v1/completions", json={"prompt": "the", "max_tokens": 2})
        mine, theirs = scrape(one), scrape(other)
        assert requests(mine, "/v1/completions", "POST", 200) == 1
        assert requests(theirs, "/v1/completions", "POST", 200) == 0
        assert ("nextword_sequences_waiting", ()) in mine and ("nextword_sequences_waiting", ()) not in theirs
        assert ("nextword_sequences", ()) in theirs


def test_the_api_reference_counts_under_its_own_routes(model):
    """/openapi.json (FastAPI's own route) counted as "unmatched", as though no such path existed."""
    with TestClient(create_app(ServeConfig(), model)) as client:
        for path in ("/openapi.json", "/docs"):
            assert client.get(path).status_code == 200 == client.head(path).status_code
        client.get("/no/such/path")
        samples = scrape(client)
    for route in ("/openapi.json", "/docs"):
        assert requests(samples, route, "GET", 200) == 1 == requests(samples, route, "HEAD", 200), route
    assert requests(samples, "unmatched", "GET", 200) == 0 == requests(samples, "unmatched", "HEAD", 200)
    assert requests(samples, "unmatched", "GET", 404) == 1


def _version() -> str:
    from nextword.runtime import __version__

    return __version__


def test_a_killed_workers_gauges_leave_the_sums_at_the_next_scrape(tmp_path):
    """A --workers worker killed (the out-of-memory killer) never ran its exit, which takes its gauges
    out: /metrics went on counting the streams it held, with nothing in flight, for good."""
    import os
    import subprocess
    import sys

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from nextword.serve.metrics import MULTIPROCESS_ENV, forget_dead_workers

    write = (
        "from prometheus_client import Gauge; "
        "Gauge('nextword_slots_used', 'x', multiprocess_mode='livesum').set(3)"
    )
    env = {**os.environ, MULTIPROCESS_ENV: str(tmp_path)}
    subprocess.run([sys.executable, "-c", write], env=env, check=True)  # a worker that is gone

    def used() -> float:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))
        samples = [s for family in registry.collect() for s in family.samples]
        return sum(s.value for s in samples if s.name == "nextword_slots_used")

    assert used() == 3
    forget_dead_workers(str(tmp_path))
    assert used() == 0 and not list(tmp_path.glob("gauge_live*"))
    forget_dead_workers(str(tmp_path))  # again (another worker's scrape): nothing left, nothing raised


def test_a_scrape_of_a_worker_leaves_out_the_dead_ones(tmp_path, model_path):
    """The same through a --workers worker's /metrics, as it answers a scrape (in a process of its own:
    prometheus_client takes its multiprocess mode from the environment when it is imported)."""
    import os
    import subprocess
    import sys

    from nextword.serve.metrics import MULTIPROCESS_ENV

    env = {**os.environ, MULTIPROCESS_ENV: str(tmp_path)}
    dead = (
        "from prometheus_client import Gauge; "
        "Gauge('nextword_sequences', 'x', multiprocess_mode='livesum').set(96)"
    )
    subprocess.run([sys.executable, "-c", dead], env=env, check=True)
    worker = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from nextword.serve import ServeConfig, create_app\n"
        "app = create_app(ServeConfig(model=sys.argv[1], workers=2))\n"
        "assert app.state.nextword.metrics.shared\n"
        "with TestClient(app) as client:\n"
        "    print(client.get('/metrics').text)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", worker, str(model_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sequences = [
        sample.value
        for family in text_string_to_metric_families(result.stdout)
        for sample in family.samples
        if sample.name == "nextword_sequences"
    ]
    assert sequences == [0], result.stdout  # this worker's own, none in flight; not the dead one's 96
