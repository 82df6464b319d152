"""The server with a model file that carries a continuous cache: suggestions and scores use it by default
as the Python API does, each endpoint takes ``cache`` to choose, and completions with ``cache: true`` are
the texts of ``model.generate(cache=True)``, batched or not."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.runtime.cache import CacheConfig
from nextword.runtime.model import NextWordModel
from nextword.serve import ServeConfig, create_app

SETTINGS = CacheConfig(theta=0.5, mix=0.3, window=64)
PROMPT = "the network receives the input and the network"


@pytest.fixture(scope="module")
def cached(model):
    """The tiny test model, as if its file stored cache settings."""
    return NextWordModel(model.session, dataclasses.replace(model.info, cache=SETTINGS), model.source)


@pytest.fixture(scope="module", params=[True, False], ids=["batching", "no-batching"])
def client(request, cached):
    with TestClient(create_app(ServeConfig(batching=request.param), cached)) as c:
        yield c


def test_suggest_uses_the_files_cache_unless_told_not_to(client, cached):
    default = client.post("/v1/suggest", json={"prompt": PROMPT, "k": 5}).json()["suggestions"]
    alone = client.post("/v1/suggest", json={"prompt": PROMPT, "k": 5, "cache": False}).json()["suggestions"]
    assert [(s["word"], pytest.approx(s["probability"])) for s in default] == cached.next_words(PROMPT, 5)
    assert [(s["word"], pytest.approx(s["probability"])) for s in alone] == cached.next_words(
        PROMPT, 5, cache=False
    )
    assert [s["probability"] for s in default] != [s["probability"] for s in alone]


def test_score_uses_the_files_cache_unless_told_not_to(client, cached):
    default = client.post("/v1/score", json={"text": PROMPT}).json()
    alone = client.post("/v1/score", json={"text": PROMPT, "cache": False}).json()
    assert default["total_logprob"] == pytest.approx(cached.score(PROMPT).total_logprob)
    assert alone["total_logprob"] == pytest.approx(cached.score(PROMPT, cache=False).total_logprob)
    assert default["total_logprob"] != pytest.approx(alone["total_logprob"])


def test_completions_with_the_cache_are_generate_with_the_cache(client, cached):
    body = {"prompt": [PROMPT, "a neuron"], "n": 2, "max_tokens": 20, "seed": 3, "temperature": 0.8}
    with_cache = client.post("/v1/completions", json={**body, "cache": True})
    assert with_cache.status_code == 200, with_cache.text
    texts = [c["text"] for c in with_cache.json()["choices"]]
    expected = cached.generate(
        [PROMPT, "a neuron"], num_return_sequences=2, max_words=20, seed=3, temperature=0.8
    )
    assert texts == cached.generate(
        [PROMPT, "a neuron"], num_return_sequences=2, max_words=20, seed=3, temperature=0.8, cache=True
    )
    plain = [c["text"] for c in client.post("/v1/completions", json=body).json()["choices"]]
    assert plain == expected  # off unless asked, as in model.generate


def test_cache_true_without_settings_is_a_400_naming_the_parameter(model):
    with TestClient(create_app(ServeConfig(), model)) as c:
        response = c.post("/v1/completions", json={"prompt": "the", "cache": True, "max_tokens": 3})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "cache" and "no continuous-cache settings" in error["message"]
        for path, body in (("/v1/suggest", {"prompt": "the"}), ("/v1/score", {"text": "the network"})):
            answer = c.post(path, json={**body, "cache": True})
            assert answer.status_code == 400 and "no continuous-cache settings" in answer.text
