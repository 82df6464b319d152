"""Where the server's endpoints agree with each other and with the Python API: the caps they name (with
their ``nextword serve`` flag), the ``model`` and ``cache`` fields they share, and the start-up warning
for a model file whose decoding defaults are over the server's caps."""

from __future__ import annotations

import dataclasses
import logging

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.runtime import NextWordModel
from nextword.serve import ServeConfig, create_app

BODIES = {
    "/v1/completions": {"prompt": "the network", "max_tokens": 3},
    "/v1/suggest": {"prompt": "the network", "k": 3},
    "/v1/score": {"text": "the network"},
}


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(ServeConfig(), model)) as c:
        yield c


def with_defaults(model: NextWordModel, **defaults: object) -> NextWordModel:
    """The tiny model, as if its file stored these decoding defaults."""
    generation = dataclasses.replace(model.info.generation, **defaults)
    return NextWordModel(model.session, dataclasses.replace(model.info, generation=generation), model.source)


def error(response) -> dict:
    assert response.status_code >= 400, response.text
    return response.json()["error"]


def test_k_is_held_to_a_cap_that_names_its_flag(client, model):
    over = error(client.post("/v1/suggest", json={"prompt": "the", "k": 101}))
    assert over["param"] == "k" and over["code"] == "invalid_value"
    assert over["message"] == (
        "k=101 is over this server's cap of 100 words (nextword serve --max-suggestions)"
    )
    under = error(client.post("/v1/suggest", json={"prompt": "the", "k": 0}))["message"]
    assert under == "k must be in 1..100 (this server's cap: nextword serve --max-suggestions), got 0"
    assert client.get("/v1/models").json()["data"][0]["limits"]["max_suggestions"] == 100
    left_out = client.post("/v1/suggest", json={"prompt": "the", "k": None})  # null: as left out, 5
    assert left_out.status_code == 200 and len(left_out.json()["suggestions"]) == 5
    # the flag raises it up to the vocabulary, as next_words(k=...) takes; past it, the runtime's range
    with TestClient(create_app(ServeConfig(max_suggestions=model.vocab_size + 5), model)) as c:
        every = c.post("/v1/suggest", json={"prompt": "the", "k": model.vocab_size, "cache": False})
        assert every.status_code == 200, every.text
        listed = [(s["word"], pytest.approx(s["probability"])) for s in every.json()["suggestions"]]
        assert listed == model.next_words("the", k=model.vocab_size, cache=False)
        past = error(c.post("/v1/suggest", json={"prompt": "the", "k": model.vocab_size + 1}))
        assert past["param"] == "k" and f"k must be an integer in 1..{model.vocab_size}" in past["message"]
    # a cap under 5: left out, k is the cap (it was 5, refused by the server's own cap)
    with TestClient(create_app(ServeConfig(max_suggestions=3), model)) as c:
        capped = c.post("/v1/suggest", json={"prompt": "the"})
        assert capped.status_code == 200 and len(capped.json()["suggestions"]) == 3, capped.text
    with pytest.raises(ValueError, match=r"max_suggestions must be an integer in 1\.\.1000000, got 0"):
        ServeConfig(max_suggestions=0)


def test_suggest_and_score_take_the_served_models_name_as_completions_do(client, model):
    schema = client.get("/openapi.json").json()
    for path, body in BODIES.items():
        for name in ("tiny", "", None):  # the served id; "" and null count as left out
            answer = client.post(path, json={**body, "model": name})
            assert answer.status_code == 200, (path, name, answer.text)
        wrong = client.post(path, json={**body, "model": "gpt-4"})
        assert wrong.status_code == 404
        assert error(wrong) == error(client.post("/v1/completions", json={"prompt": "x", "model": "gpt-4"}))
        assert error(wrong)["code"] == "model_not_found" and error(wrong)["param"] == "model"
        assert "404" in schema["paths"][path]["post"]["responses"], path
    for request in ("CompletionRequest", "SuggestRequest", "ScoreRequest"):
        assert "model" in schema["components"]["schemas"][request]["properties"], request
    with TestClient(create_app(ServeConfig(served_model_name=("a-name", "another")), model)) as c:
        for path, body in BODIES.items():
            assert c.post(path, json={**body, "model": "another"}).status_code == 200
            assert c.post(path, json={**body, "model": "tiny"}).status_code == 404  # the file's name, no more


def test_cache_true_without_settings_gets_one_message_on_every_endpoint(client):
    answers = [error(client.post(path, json={**body, "cache": True})) for path, body in BODIES.items()]
    assert answers[0] == {
        "message": "cache=true but this server's model file has no continuous-cache settings; leave cache "
        "out",
        "type": "invalid_request_error",
        "param": "cache",
        "code": "invalid_value",
    }
    assert answers[1] == answers[0] and answers[2] == answers[0]


@pytest.mark.parametrize("beams", [0, -1, 33, 40, 256, 257, 300, 10**6])
def test_every_num_beams_out_of_range_names_the_servers_cap(client, beams):
    refused = error(client.post("/v1/completions", json={"prompt": "x", "num_beams": beams}))
    assert refused["param"] == "num_beams"
    assert "nextword serve --max-rows)" in refused["message"] and "1..256" not in refused["message"]
    assert f"num_beams={beams}" in refused["message"] or f"got {beams}" in refused["message"]


def test_a_files_defaults_over_the_caps_are_said_at_start(model, caplog):
    caplog.set_level(logging.WARNING, "nextword.serve")
    long = with_defaults(model, max_words=50, min_words=30)
    with TestClient(create_app(ServeConfig(max_words=20), long)) as c:
        # lowered, as docs/serving.md says: a request that leaves max_tokens out is not refused
        answer = c.post("/v1/completions", json={"prompt": "the network", "stop_at_end": False, "seed": 1})
        assert answer.json()["usage"]["completion_tokens"] == 20
    (said,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == (
        "this model file's decoding default max_words=50 is over this server's cap of 20 words (nextword "
        "serve --max-words): a completion that leaves max_tokens out gets at most 20; raise --max-words to "
        "50 to serve the file's default"
    )
    for defaults, field in (({"num_return_sequences": 4}, "n"), ({"num_beams": 4}, "num_beams")):
        caplog.clear()
        with TestClient(create_app(ServeConfig(max_rows=2), with_defaults(model, **defaults))) as c:
            refused = error(c.post("/v1/completions", json={"prompt": "the network"}))
            assert refused["param"] == field and "--max-rows" in refused["message"]
            assert c.post("/v1/completions", json={"prompt": "the", field: 1}).status_code == 200
        (said,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        name = next(iter(defaults))
        assert f"decoding default {name}=4 is over this server's cap of 2 sequences" in said
        assert f"every completion that leaves {field} out is refused" in said and "--max-rows" in said
    caplog.clear()
    with TestClient(create_app(ServeConfig(max_words=50, max_rows=4), long)):
        pass
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # within the caps: nothing said
