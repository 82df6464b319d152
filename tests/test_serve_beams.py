"""Beam search over HTTP: `num_beams` asked for, or a model file whose decoding defaults ask for it."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from helpers import drain_once_generating
from nextword.runtime import GenerationConfig, NextWordModel
from nextword.runtime.beam import BeamSearch
from nextword.serve import ServeConfig, create_app
from nextword.serve.beams import BeamJob
from nextword.serve.options import Completion

PROMPTS = ["the network", "a neural network"]


@pytest.fixture(scope="module")
def client_for():
    """A test client per model, made once for the module."""
    clients: dict[int, TestClient] = {}
    with contextlib.ExitStack() as stack:

        def client(model: NextWordModel) -> TestClient:
            if id(model) not in clients:
                clients[id(model)] = stack.enter_context(TestClient(create_app(ServeConfig(), model)))
            return clients[id(model)]

        yield client


@pytest.fixture(scope="module")
def beamy(model) -> NextWordModel:
    """The tiny model with decoding defaults that ask for beam search (as `export --num-beams 3`)."""
    defaults = GenerationConfig(num_beams=3, max_words=12, no_repeat_ngram_size=2)
    return NextWordModel(model.session, dataclasses.replace(model.info, generation=defaults), model.source)


@pytest.mark.parametrize("batching", [True, False])
def test_a_files_beam_default_is_used_as_by_model_generate(beamy, batching):
    with TestClient(create_app(ServeConfig(batching=batching), beamy)) as c:
        one = c.post("/v1/completions", json={"prompt": "the network"})
        several = c.post("/v1/completions", json={"prompt": PROMPTS, "n": 2, "echo": True})
    assert one.status_code == 200, one.text
    (choice,) = one.json()["choices"]
    assert choice["text"] == beamy.generate("the network")
    assert choice["text"] != beamy.generate("the network", num_beams=1, seed=0)
    texts = [c["text"] for c in several.json()["choices"]]
    want = beamy.generate(PROMPTS, num_return_sequences=2)
    assert texts == [PROMPTS[i // 2] + text for i, text in enumerate(want)]
    assert [c["index"] for c in several.json()["choices"]] == [0, 1, 2, 3]
    usage = several.json()["usage"]
    assert usage["completion_tokens"] == sum(len(beamy.tokenizer.encode(text)) for text in want)


def test_num_beams_asked_for_and_the_finish_reasons(client_for, model):
    c = client_for(model)
    body = {"prompt": "the network", "num_beams": 4, "max_tokens": 10, "stop_at_end": False}
    (choice,) = c.post("/v1/completions", json=body).json()["choices"]
    assert choice["text"] == model.generate("the network", num_beams=4, max_words=10, stop_at_end=False)
    assert (choice["finish_reason"], choice["end_reason"]) == ("length", "length")
    cut = model.generate("the network", num_beams=4, max_words=10, stop_at_end=False, stop=" ")
    body["stop"] = " "
    (choice,) = c.post("/v1/completions", json=body).json()["choices"]
    assert choice["text"] == cut and (choice["finish_reason"], choice["end_reason"]) == ("stop", "stop")
    options = {"num_beams": 2, "length_penalty": 2.0, "no_repeat_ngram_size": 1}
    body = {"prompt": "the network", "max_tokens": 60, **options}
    (choice,) = c.post("/v1/completions", json=body).json()["choices"]
    assert choice["text"] == model.generate("the network", max_words=60, **options)
    assert (choice["finish_reason"], choice["end_reason"]) == ("stop", "end")  # the rules ran out of words


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"stream": True}, "stream", ["num_beams=3, this model file's decoding default", '"num_beams": 1']),
        ({"logprobs": 2}, "logprobs", ["num_beams=3, this model file's decoding default", "no logprobs"]),
        (
            {"temperature": 0.5},
            "num_beams",
            ["temperature=0.5", "num_beams=3 is this model file's decoding default", '"num_beams": 1'],
        ),
        ({"n": 4}, "n", ["n=4 must be <= num_beams=3", "num_beams=3 is this model file's decoding default"]),
        ({"prompt": ["a"] * 11}, "num_beams", ["11 prompt(s) x num_beams=3 = 33 beams", "--max-rows"]),
        ({"num_beams": 2, "stream": True}, "stream", ["beam search (num_beams=2) returns whole texts"]),
    ],
)
def test_what_beam_search_cannot_do_is_refused_with_the_way_out(client_for, beamy, body, param, words):
    response = client_for(beamy).post("/v1/completions", json={"prompt": "x", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    for word in words:
        assert word in error["message"], error["message"]


def test_num_beams_1_samples_and_streams_with_a_beam_default_file(client_for, beamy):
    body = {"prompt": "the network", "num_beams": 1, "temperature": 0.8, "seed": 5, "stream": True}
    with client_for(beamy).stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        pieces = [line for line in response.iter_lines() if line.startswith("data: {")]
    assert len(pieces) > 1
    want = beamy.generate("the network", num_beams=1, temperature=0.8, seed=5)
    answer = client_for(beamy).post("/v1/completions", json={**body, "stream": False}).json()
    assert answer["choices"][0]["text"] == want


def test_a_cancelled_search_answers_its_best_texts_so_far_as_cancelled(client_for, model):
    config = GenerationConfig(num_beams=3, max_words=20, num_return_sequences=2)
    job = BeamJob(model, Completion(["the network"], config, None, False, False, False))
    state = client_for(model).app.state.nextword
    state.start_job(job, {})  # a search in flight holds a slot, and a shutdown cancels it with the others
    assert len(state.jobs) == 1 and not job.cancelled.is_set()
    state.cancel_all()  # before the first step: the search ends where it stands
    state.end_job(job)
    assert not state.jobs
    assert [(h.text, h.finish_reason, h.words) for h in job.run()] == [("", "cancelled", 0)] * 2
    whole = BeamJob(model, Completion(["the network"], config, None, False, False, False)).run()
    assert [h.text for h in whole] == model.generate("the network", **dataclasses.asdict(config))
    assert all(h.finish_reason in ("end", "length") for h in whole)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"max_words": 6}, "length"),
        ({"max_words": 20, "stop": (".",)}, "stop"),
        ({"max_words": 60, "no_repeat_ngram_size": 1}, "end"),  # 30 words, none twice: the rules run out
    ],
)
def test_results_give_each_text_its_reason_and_word_count(model, options, reason):
    config = GenerationConfig(num_beams=3, num_return_sequences=3, **options)
    search = BeamSearch(model, [model.prompt_ids(p) for p in PROMPTS], config, [False, False])
    while search.step():
        pass
    results = search.results()
    assert [h.text for h in results] == search.texts() == model.generate(PROMPTS, config)
    assert {h.finish_reason for h in results} == {reason}
    for h in results:
        assert h.words == len(model.tokenizer.encode(h.text)) + (reason == "stop")  # the cut word counts
        assert (h.words == options["max_words"]) == (reason == "length")


def test_num_beams_asked_for_ignores_the_files_sampling_defaults(client_for, model):
    """A file exported with --top-k 40 --top-p 0.9: a request for beams gets a beam search, not a 400."""
    sampling = GenerationConfig(top_k=40, top_p=0.9, max_words=12)
    sampler = NextWordModel(model.session, dataclasses.replace(model.info, generation=sampling), model.source)
    answer = client_for(sampler).post("/v1/completions", json={"prompt": "the network", "num_beams": 3})
    assert answer.status_code == 200, answer.text
    expected = model.generate("the network", num_beams=3, max_words=12)
    assert answer.json()["choices"][0]["text"] == expected == sampler.generate("the network", num_beams=3)


def test_scores_and_suggestions_answer_while_more_beam_searches_run_than_their_threads(model, monkeypatch):
    """Beam searches ran in the thread pool that suggestions and scores share (anyio's, 40 threads):
    40 long searches kept a score waiting. They run on a few threads of their own now; the searches past
    those wait holding their slot and start as threads come free, and a client that leaves while its
    search waits takes it out of the queue (it never runs)."""
    import asyncio
    import threading
    import time

    import httpx
    from browser import start_server

    release, started = threading.Event(), []
    run = BeamJob.run

    def held(job: BeamJob) -> list:  # a long search: runs once released, or once cancelled
        started.append(job)
        while not (release.is_set() or job.cancelled.is_set()):
            time.sleep(0.005)
        return run(job)

    monkeypatch.setattr(BeamJob, "run", held)
    app = create_app(ServeConfig(), model)
    state = app.state.nextword
    threads = state.beam_threads.total_tokens
    assert threads >= 2
    staying, leaving = max(42, threads + 2), 5  # past anyio's 40 threads, and past the searches' own

    async def until(condition, what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def clients(url: str) -> None:
        limits = httpx.Limits(max_connections=staying + leaving + 10)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            beam = {"prompt": "the network", "max_tokens": 3, "num_beams": 2}
            stay = [asyncio.create_task(http.post("/v1/completions", json=beam)) for _ in range(staying)]
            await until(lambda: state.slots.used == staying, "the searches did not all start")
            leave = [asyncio.create_task(http.post("/v1/completions", json=beam)) for _ in range(leaving)]
            await until(lambda: state.slots.used == staying + leaving, "every waiting search holds its slot")
            # the pool of suggestions and scores is free: they answer at once
            score = await http.post("/v1/score", json={"text": "the network"}, timeout=5)
            suggest = await http.post("/v1/suggest", json={"prompt": "the"}, timeout=5)
            assert score.status_code == 200 == suggest.status_code, (score.text, suggest.text)
            await until(lambda: len(started) == threads, "a search per thread runs, the others wait")
            for task in leave:  # their clients leave while their searches wait
                task.cancel()
            await until(lambda: state.slots.used == staying, "the slots of the searches that left")
            release.set()
            answers = await asyncio.gather(*stay)
        assert [a.status_code for a in answers] == [200] * staying
        assert len(started) == staying  # every search that stayed ran; none of those that left

    server = start_server(app)
    try:
        asyncio.run(clients(server.url))
    finally:
        release.set()
        server.stop()
    assert state.slots.used == 0


def test_a_search_the_shutdown_cuts_short_is_a_503(client_for, model, monkeypatch):
    """A beam search the drain cancelled answered its best texts so far, 200 with finish_reason "stop":
    a client took them for finished ones. It is now a 503 server_error, which OpenAI's clients retry."""
    import time

    run = BeamJob.run

    def held(job: BeamJob) -> list:  # a long search: runs once cancelled
        while not job.cancelled.is_set():
            time.sleep(0.005)
        return run(job)

    monkeypatch.setattr(BeamJob, "run", held)
    client = client_for(model)
    drain_once_generating(client.app.state.nextword, after=0.3)
    answer = client.post("/v1/completions", json={"prompt": "the network", "max_tokens": 5, "num_beams": 2})
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["type"] == "server_error"
    assert "cut this completion short" in answer.json()["error"]["message"]
