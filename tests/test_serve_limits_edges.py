"""The server's caps at their edges (a body, logprobs and max_tokens of exactly the cap are served,
one more is refused; a chunked body is counted whole), OpenAI's stream_options rule, usage counting
the words sent, and a job that exactly fills a running batch's room joining it at once."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.runtime import GenerationConfig
from nextword.serve import ServeConfig, create_app
from nextword.serve.limits import BodySizeLimit
from nextword.serve.scheduler import BatchScheduler, Job


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(ServeConfig(), model)) as c:
        yield c


def _body_of(size: int) -> bytes:
    """A valid completion request of exactly ``size`` bytes (padded with JSON whitespace)."""
    core = b'{"prompt": "the", "max_tokens": 1}'
    assert len(core) <= size
    return core[:-1] + b" " * (size - len(core)) + b"}"


# a declared Content-Length of exactly --max-body-bytes is taken
def test_a_body_of_exactly_the_cap_is_taken_and_one_byte_more_is_refused(model):
    with TestClient(create_app(ServeConfig(max_body_bytes=300), model)) as c:
        json_type = {"content-type": "application/json"}
        at_cap = c.post("/v1/completions", content=_body_of(300), headers=json_type)
        assert at_cap.status_code == 200, at_cap.text
        over = c.post("/v1/completions", content=_body_of(301), headers=json_type)
        assert over.status_code == 413, over.text


# a body sent in pieces is counted whole, not piece by piece.
# The TestClient hands the app a body in one message, so the chunks are ASGI messages here.
def test_a_body_in_chunks_each_under_the_cap_is_refused_once_their_sum_passes_it():
    reached = []

    async def app(scope, receive, send):  # the routes behind the middleware
        reached.append(await receive())

    async def run(chunks):
        messages = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks)
        ]
        sent = []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"application/json")]}
        await BodySizeLimit(app, max_bytes=100, timeout=5)(scope, receive, send)
        return sent

    sent = asyncio.run(run([b"x" * 60, b"x" * 60]))  # 120 bytes, no chunk over 100
    assert sent and sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert not reached
    assert asyncio.run(run([b"x" * 50, b"x" * 50])) == [] and len(reached) == 1  # 100: taken


# logprobs up to its cap (20, as OpenAI's) is served
def test_logprobs_of_the_cap_are_served_and_one_more_is_refused(client):
    body = {"prompt": "the network", "max_tokens": 2, "seed": 1, "stop_at_end": False}
    answer = client.post("/v1/completions", json={**body, "logprobs": 20})
    assert answer.status_code == 200, answer.text
    top = answer.json()["choices"][0]["logprobs"]["top_logprobs"]
    assert len(top) == 2 and all(20 <= len(alternatives) <= 21 for alternatives in top)
    refused = client.post("/v1/completions", json={**body, "logprobs": 21})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "logprobs"


# stream_options goes only with stream=true (OpenAI's rule)
@pytest.mark.parametrize("stream", [False, None, "left out"])
def test_stream_options_without_stream_is_refused_as_openai_does(client, stream):
    body = {"prompt": "the", "max_tokens": 2, "stream_options": {"include_usage": True}}
    if stream != "left out":
        body["stream"] = stream
    answer = client.post("/v1/completions", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "stream_options" and "stream=true" in error["message"]


# usage counts the words sent: a sequence that ends on
# <eod> ends with an update that carries no word, which usage must not count.
def test_completion_tokens_count_the_words_sent_when_sequences_end_at_a_document_end(client):
    body = {"prompt": "the network", "max_tokens": 200, "n": 6, "seed": 7, "logprobs": 0}
    answer = client.post("/v1/completions", json=body)
    assert answer.status_code == 200, answer.text
    choices = answer.json()["choices"]
    assert any(c["end_reason"] == "end" for c in choices), [c["end_reason"] for c in choices]
    sent = sum(len(c["logprobs"]["tokens"]) for c in choices)
    assert answer.json()["usage"]["completion_tokens"] == sent
    # the stream's usage says the same
    with client.stream(
        "POST", "/v1/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
    ) as response:
        events = [
            json.loads(line[6:])
            for line in response.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
    assert events[-1]["usage"]["completion_tokens"] == sent


# a job that fills the room left exactly joins
# the running batch at once rather than waiting for it to empty.
def test_a_job_that_exactly_fills_the_room_left_joins_the_running_batch(model):
    scheduler = BatchScheduler(model, max_batch=3)

    async def main():
        long = Job(["the network"], GenerationConfig(max_words=10_000, stop_at_end=False, seed=1), None)
        scheduler.submit(long)
        updates = long.updates()
        await anext(updates)  # the long job is in the batch: 1 of 3 rows taken
        config = GenerationConfig(max_words=3, num_return_sequences=2, stop_at_end=False, seed=2)
        short = Job(["the system"], config, None)  # 2 rows: 1 + 2 = max_batch
        scheduler.submit(short)
        texts = [""] * short.rows
        async for batch in short.updates():
            for u in batch:
                texts[u.index] += u.text
        in_flight = scheduler.stats()["sequences"]  # the long job's row, still running
        long.cancel()
        async for _ in updates:
            pass
        return texts, in_flight, config

    try:
        texts, in_flight, config = asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        scheduler.close()
    assert texts == model.generate(["the system"], config=config)
    assert in_flight == 1, "the short job waited for the long one to end"


# max_tokens of exactly --max-words is served (only a guard test asked for the default cap before)
def test_max_tokens_of_the_cap_is_served_and_one_more_is_refused(model):
    with TestClient(create_app(ServeConfig(max_words=5), model)) as c:
        body = {"prompt": "the network", "seed": 1, "stop_at_end": False}
        at_cap = c.post("/v1/completions", json={**body, "max_tokens": 5})
        assert at_cap.status_code == 200 and at_cap.json()["usage"]["completion_tokens"] == 5
        over = c.post("/v1/completions", json={**body, "max_tokens": 6})
        assert over.status_code == 400 and over.json()["error"]["param"] == "max_tokens"
