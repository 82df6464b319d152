"""The HTTP API: completions equal model.generate, streaming, errors and caps, the other endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.runtime import GenerationConfig, NextWordModel
from nextword.serve import ServeConfig, create_app
from nextword.serve.limits import BodySizeLimit


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(ServeConfig(), model)) as c:
        yield c


def sse(response) -> list[dict | str]:
    """The data of each server-sent event of a streamed answer ("[DONE]" as is)."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.mark.parametrize(
    ("body", "options"),
    [
        ({"prompt": "the network", "max_tokens": 20, "seed": 1}, {"max_words": 20, "seed": 1}),
        (
            {
                "prompt": "the system",
                "max_tokens": 30,
                "temperature": 0.7,
                "top_k": 5,
                "top_p": 0.9,
                "seed": 2,
            },
            {"max_words": 30, "temperature": 0.7, "top_k": 5, "top_p": 0.9, "seed": 2},
        ),
        (
            {"prompt": "each neuron", "temperature": 0, "max_tokens": 25, "no_repeat_ngram_size": 2},
            {"temperature": 0, "max_words": 25, "no_repeat_ngram_size": 2},
        ),
        (
            {"prompt": "the model", "stop": ["."], "min_tokens": 3, "repetition_penalty": 1.3, "seed": 4},
            {"stop": ("."), "min_words": 3, "repetition_penalty": 1.3, "seed": 4},
        ),
    ],
)
def test_completion_equals_model_generate(client, model, body, options):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "text_completion" and answer["model"] == "tiny"
    (choice,) = answer["choices"]
    assert choice["text"] == model.generate(body["prompt"], **options)
    assert choice["finish_reason"] in ("stop", "length")
    usage = answer["usage"]
    assert usage["prompt_tokens"] == len(model.tokenizer.encode(body["prompt"]))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_several_prompts_and_n_are_prompt_major_like_generate(client, model):
    prompts = ["the network", "a neural network", ""]
    response = client.post("/v1/completions", json={"prompt": prompts, "n": 2, "max_tokens": 15, "seed": 9})
    texts = [c["text"] for c in response.json()["choices"]]
    assert texts == model.generate(prompts, num_return_sequences=2, max_words=15, seed=9)
    assert [c["index"] for c in response.json()["choices"]] == list(range(6))


def test_stream_sends_the_same_text_then_done(client, model):
    body = {"prompt": "the processor", "max_tokens": 30, "seed": 5, "stream": True, "stop": [" the"]}
    with client.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len(chunks) > 1
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text == model.generate("the processor", max_words=30, seed=5, stop=[" the"])
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert not any("usage" in c for c in chunks)  # none asked for


def test_stream_usage_and_echo(client, model):
    body = {
        "prompt": "the system",
        "max_tokens": 6,
        "stop_at_end": False,
        "seed": 1,
        "stream": True,
        "echo": True,
        "stream_options": {
            "include_usage": True,
            "include_obfuscation": False,
        },  # OpenAI's client may send it
    }
    with client.stream("POST", "/v1/completions", json=body) as response:
        events = sse(response)
    assert events[0]["choices"][0]["text"] == "the system"
    assert events[-2]["usage"]["completion_tokens"] == 6 and events[-2]["choices"] == []
    # the chunks before it carry "usage": null, as OpenAI's API sends them (a client may read the key)
    assert all("usage" in e and e["usage"] is None for e in events[:-2])
    text = "".join(c["choices"][0]["text"] for c in events[1:-2])
    assert text == model.generate("the system", max_words=6, stop_at_end=False, seed=1)


def test_model_defaults_apply_where_the_request_leaves_an_option_out(model):
    info = dataclasses.replace(model.info, generation=GenerationConfig(max_words=7, no_repeat_ngram_size=2))
    with_defaults = NextWordModel(model.session, info, model.source)
    with TestClient(create_app(ServeConfig(), with_defaults)) as c:
        answer = c.post("/v1/completions", json={"prompt": "the network", "seed": 3, "stop_at_end": False})
    text = answer.json()["choices"][0]["text"]
    assert answer.json()["usage"]["completion_tokens"] == 7
    assert text == with_defaults.generate("the network", seed=3, stop_at_end=False)
    assert text == model.generate(
        "the network", seed=3, stop_at_end=False, max_words=7, no_repeat_ngram_size=2
    )


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"prompt": "x", "temperature": -1}, 400, "temperature", ["temperature", ">= 0", "-1"]),
        (
            {"prompt": "x", "max_tokens": 5, "min_tokens": 9},
            400,
            "min_tokens",
            ["min_tokens must be at most `max_tokens` (5), got 9"],
        ),
        ({"prompt": "x", "top_p": 1.5}, 400, "top_p", ["top_p", "<= 1", "1.5"]),
        ({"prompt": "x", "max_tokens": -2}, 400, "max_tokens", ["max_tokens", "0..", "-2"]),
        ({"prompt": "x", "n": 0}, 400, "n", ["n must be in 1..32", "--max-rows", "got 0"]),
        ({"prompt": "x", "num_beams": -1}, 400, "num_beams", ["num_beams must be in 1..32", "got -1"]),
        ({"prompt": "x", "top_k": -1}, 400, "top_k", ["top_k", "0..1000000", "-1"]),
        ({"prompt": "x", "max_tokens": 5000}, 400, "max_tokens", ["5000", "1000", "--max-words"]),
        # LangChain's batch with n > 1: how many prompts fit is said
        ({"prompt": ["a"] * 5, "n": 8}, 400, "n", ["40 sequences", "32", "--max-rows", "at most 4 with n=8"]),
        # one sequence a prompt: the prompts are too many (LangChain sends its batch of prompts at once)
        (
            {"prompt": ["a"] * 33},
            400,
            "prompt",
            ["33 prompt(s) x n=1 = 33 sequences", "at most 32", "send fewer prompts per request"],
        ),
        ({"prompt": "x", "logprobs": 50}, 400, "logprobs", ["logprobs", "0..20", "50"]),
        ({"prompt": "x", "presence_penalty": 0.5}, 400, "presence_penalty", ["repetition_penalty"]),
        ({"prompt": "x", "temperature": "hot"}, 400, "temperature", ["temperature", "'hot'"]),
        ({"prompt": 3}, 400, "prompt", ["prompt", "3"]),
        (
            {"prompt": "x", "tempreature": 1},
            400,
            "tempreature",
            ["unknown parameter 'tempreature' (did you mean 'temperature'?)"],
        ),
        ({"prompt": "x", "colour": 1}, 400, "colour", ["unknown parameter 'colour'; see /docs"]),  # no guess
        ({}, 400, "prompt", ["prompt is required"]),
        # the misspelt key, not "prompt is required", which sent the client looking for a missing field
        ({"promt": "x"}, 400, "promt", ["unknown parameter 'promt' (did you mean 'prompt'?)"]),
        # no parameter is close: no guess ("temp" is not "stream", nor "text")
        ({"prompt": "x", "temp": 0.5}, 400, "temp", ["unknown parameter 'temp'; see /docs"]),
        # another endpoint's parameter: said so, not "did you mean 'k'?"
        ({"prompt": "x", "k": 5}, 400, "k", ["'k' (a parameter of /v1/suggest, not of this endpoint)"]),
        # inside an object parameter: among that object's own, not its name ("did you mean 'stream_options'?")
        (
            {"prompt": "x", "stream": True, "stream_options": {"include_usages": True}},
            400,
            "stream_options.include_usages",
            ["(did you mean 'stream_options.include_usage'?)"],
        ),
        (
            {"prompt": "x", "stream": True, "stream_options": {"usage": True}},
            400,
            "stream_options.usage",
            ["(did you mean 'stream_options.include_usage'?)"],
        ),
    ],
)
def test_bad_requests_name_the_parameter_the_value_and_the_range(client, body, status, param, words):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    for word in words:
        assert word in error["message"], error["message"]


def test_a_misspelt_parameter_is_matched_with_the_endpoints_own(client):
    """/v1/score takes no temperature: a misspelt one gets no guess there; another endpoint's is named."""
    error = client.post("/v1/score", json={"text": "a", "temprature": 1}).json()["error"]
    assert error["message"].startswith("unknown parameter 'temprature'; see /docs")
    error = client.post("/v1/score", json={"text": "a", "prompt": "b"}).json()["error"]
    said = "'prompt' (a parameter of /v1/completions and /v1/suggest, not of this endpoint)"
    assert said in error["message"]


def test_a_misspelt_parameter_is_guessed_under_a_root_path(model):
    """Behind a proxy's prefix the endpoint is still known by its route: the guess is made there too."""
    with TestClient(create_app(ServeConfig(root_path="/nextword"), model), root_path="/nextword") as c:
        answer = c.post("/nextword/v1/completions", json={"promt": "x"})
    assert "unknown parameter 'promt' (did you mean 'prompt'?)" in answer.json()["error"]["message"]


def test_caps_on_body_and_prompt_size(model):
    config = ServeConfig(max_body_bytes=2000, max_prompt_chars=100, max_words=20)
    with TestClient(create_app(config, model)) as c:
        too_big = c.post("/v1/completions", json={"prompt": "the " * 1000})
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
        assert "2000" in too_big.json()["error"]["message"]
        assert "--max-body-bytes" in too_big.json()["error"]["message"]
        pieces = (b'{"prompt": "' if i == 0 else b"the " * 100 for i in range(10))  # chunked: no length
        assert c.post("/v1/completions", content=pieces).status_code == 413
        small = iter([b'{"prompt": "the", ', b'"max_tokens": 3}'])
        json_type = {"content-type": "application/json"}
        assert c.post("/v1/completions", content=small, headers=json_type).status_code == 200
        long_prompt = c.post("/v1/completions", json={"prompt": "the " * 40})
        assert long_prompt.status_code == 400
        assert "--max-prompt-chars" in long_prompt.json()["error"]["message"]
        assert c.post("/v1/score", json={"text": "a" * 101}).json()["error"]["param"] == "text"
        # the caps are published, for a client (the page) to stay within them
        (entry,) = c.get("/v1/models").json()["data"]
        assert entry["limits"] == {
            "max_words": 20,
            "max_prompt_chars": 100,
            "max_suggestions": 100,
            "max_rows": 32,  # prompts x n a request may ask for: a client's batch size follows it
            "size_limits": True,
            "model_download": True,
        }
        not_json = c.post("/v1/completions", content=b"{nope", headers={"content-type": "application/json"})
        assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]["message"]


def test_suggest_lists_likely_words_with_the_text_to_append(client, model):
    answer = client.post("/v1/suggest", json={"prompt": "the neural", "k": 4}).json()
    expected = model.next_words("the neural", k=4)
    assert [(s["word"], pytest.approx(s["probability"])) for s in answer["suggestions"]] == [
        (w, pytest.approx(p)) for w, p in expected
    ]
    assert all(s["text"] == " " + s["word"] for s in answer["suggestions"] if s["word"].isalpha())
    start = client.post("/v1/suggest", json={"prompt": "", "k": 2}).json()["suggestions"]
    assert start[0]["text"][0].isupper() or not start[0]["text"][0].isalpha()  # a sentence start
    assert client.post("/v1/suggest", json={"prompt": "x", "k": 0}).status_code == 400


def test_score_gives_every_word_its_probability(client, model):
    text = "The network stores the weights."
    answer = client.post("/v1/score", json={"text": text}).json()
    expected = model.score(text)
    assert answer["total_logprob"] == pytest.approx(expected.total_logprob)
    assert answer["perplexity"] == pytest.approx(expected.perplexity)
    assert [w["word"] for w in answer["words"]] == ["the", "network", "stores", "the", "weights", "."]
    assert "".join(w["text"] for w in answer["words"]) == text
    assert all(0 < w["probability"] <= 1 for w in answer["words"])
    assert client.post("/v1/score", json={"text": "  "}).status_code == 400


def test_models_health_and_the_openapi_page(client, model):
    (entry,) = client.get("/v1/models").json()["data"]
    assert entry["id"] == "tiny" and entry["object"] == "model"
    about = entry["nextword"]
    assert about["vocab_size"] == model.vocab_size and about["units"] == [32, 32]
    assert about["parity"] == model.info.parity
    # the provenance once, as read; the rest of the stored config as stored
    assert about["provenance"] == model.info.provenance.to_dict() and "provenance" in model.info.config
    assert about["config"] == {k: v for k, v in model.info.config.items() if k != "provenance"}
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["batching"] is True
    # the uptime is the monotonic clock's: a clock set back (NTP, a VM resumed) made it negative
    state = client.app.state.nextword
    was, state.started = state.started, state.started + 3600
    try:
        assert 0 <= client.get("/health").json()["uptime_s"] < 3600
    finally:
        state.started = was
    schema = client.get("/openapi.json").json()
    assert {"/v1/completions", "/v1/suggest", "/v1/score", "/v1/models", "/health"} <= set(schema["paths"])
    assert "max_tokens" in json.dumps(schema["components"]["schemas"]["CompletionRequest"])
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/static/app.js").status_code == 200


def test_no_batching_serves_the_same_texts(model):
    with TestClient(create_app(ServeConfig(batching=False), model)) as c:
        answer = c.post("/v1/completions", json={"prompt": ["the model", "the system"], "seed": 8, "n": 2})
        assert c.get("/health").json()["batching"] is False
    texts = [choice["text"] for choice in answer.json()["choices"]]
    assert texts == model.generate(["the model", "the system"], seed=8, num_return_sequences=2)


def test_serve_config_refuses_bad_values():
    with pytest.raises(ValueError, match=r"port must be an integer in 0\.\.65535, got 70000"):
        ServeConfig(port=70000)
    with pytest.raises(ValueError, match="max_batch"):
        ServeConfig(max_batch=0)
    for bad in (-0.1, 2, float("nan"), True, "0.02"):
        with pytest.raises(ValueError, match=r"stream_interval must be a number of seconds in 0\.\.1"):
            ServeConfig(stream_interval=bad)
    assert ServeConfig().host == "127.0.0.1" and ServeConfig().loopback
    assert not ServeConfig(host="0.0.0.0").loopback
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        ServeConfig(device="gpu")


def test_a_device_with_a_model_already_loaded_is_refused(model):
    """``create_app(config, model)`` serves the model as loaded: a ``device`` there would be ignored."""
    with pytest.raises(ValueError, match="is for the model the server loads"):
        create_app(ServeConfig(device="cuda"), model=model)


def test_logprobs_in_whole_and_streamed_answers(client, model):
    body = {"prompt": "the network", "max_tokens": 8, "temperature": 0, "stop_at_end": False, "logprobs": 2}
    choice = client.post("/v1/completions", json=body).json()["choices"][0]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 8
    assert lp["tokens"] == model.tokenizer.tokenize(choice["text"])
    assert all(
        len(top) == 2 and max(top.values()) == pytest.approx(p) and top[t] == p
        for top, p, t in zip(lp["top_logprobs"], lp["token_logprobs"], lp["tokens"], strict=True)
    )
    assert lp["text_offset"] == sorted(lp["text_offset"]) and lp["text_offset"][0] == 0
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
        chunks = [e for e in sse(response) if e != "[DONE]"]
    streamed = [
        t for c in chunks if c["choices"][0]["logprobs"] for t in c["choices"][0]["logprobs"]["tokens"]
    ]
    assert streamed == lp["tokens"]
    # sampled, a word outside the most likely is listed too (OpenAI: up to logprobs + 1 entries)
    body = {**body, "temperature": 2.0, "seed": 5, "max_tokens": 40, "logprobs": 1}
    lp = client.post("/v1/completions", json=body).json()["choices"][0]["logprobs"]
    assert all(
        top[t] == p and len(top) == 1 + (p < max(top.values()))
        for top, p, t in zip(lp["top_logprobs"], lp["token_logprobs"], lp["tokens"], strict=True)
    )
    assert any(len(top) == 2 for top in lp["top_logprobs"]), "no word outside the most likely was drawn"
    lp = client.post("/v1/completions", json={**body, "logprobs": 0}).json()["choices"][0]["logprobs"]
    assert lp["top_logprobs"] == [{t: p} for t, p in zip(lp["tokens"], lp["token_logprobs"], strict=True)]


TRICKY_TEXTS = [" word", "", ' "quoted"', " back\\slash", " tab\there", " line\nbreak", " é€", " 😀"]
TRICKY_TEXTS.append("\x00\u2028")


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_the_hand_built_event_is_the_json_of_the_choice(text):
    from nextword.serve.completions import choice_event

    head = 'data: {"id":"cmpl-x","object":"text_completion","choices":['
    event = choice_event(head, 3, text)
    choice = {"index": 3, "text": text, "logprobs": None, "finish_reason": None, "end_reason": None}
    assert event == head + json.dumps(choice, ensure_ascii=False, separators=(",", ":")) + "]}\n\n"
    assert json.loads(event[len("data: ") :])["choices"][0] == choice


def test_the_served_session_gets_the_configured_threads(monkeypatch, model_path, model):
    monkeypatch.setattr("nextword.serve.config.usable_cores", lambda: 2)  # affinity, within a quota
    assert ServeConfig().session_threads == 2  # two cores for one worker
    assert ServeConfig(workers=2).session_threads == 1  # one core each
    monkeypatch.setattr("nextword.serve.config.usable_cores", lambda: 1)
    assert ServeConfig().session_threads == 1
    assert ServeConfig(threads=3).session_threads == 3  # asked for: taken as is
    with pytest.raises(ValueError, match=r"threads must be an integer in 0\.\.256"):
        ServeConfig(threads=-1)
    for threads in (1, 2):
        app = create_app(ServeConfig(model=str(model_path), threads=threads))
        session = app.state.nextword.model.session
        assert session.get_session_options().intra_op_num_threads == threads
        with TestClient(app) as c:  # and it serves
            body = {"prompt": "the network", "max_tokens": 9, "seed": 1}
            text = c.post("/v1/completions", json=body).json()["choices"][0]["text"]
            assert text == model.generate("the network", max_words=9, seed=1)  # same numbers


def test_without_batching_texts_are_model_generate_s_an_int8_file_s_too(monkeypatch, caplog):
    """``--no-batching`` with ``--threads 0`` loads the file as ``load()`` does, whose numbers depend on
    a step's rows alone. It ran every step on one thread where a worker had one core: an int8 batch of 5
    rows or more, which ``load()`` runs on two threads, gave other texts (and on two threads, a file whose
    numbers part from 2 rows on)."""
    from nextword.runtime import BUNDLED_MODEL, load

    caplog.set_level(logging.INFO, logger="nextword.serve")
    monkeypatch.setattr("nextword.serve.config.usable_cores", lambda: 2)
    config = ServeConfig(batching=False, workers=2)  # one core each: the rule gave one thread
    assert config.session_settings == {} and "session_options" in ServeConfig(workers=2).session_settings
    prompts = ["the network", "a method", "neural", "the system comprises", "training data", "an input"]
    reference = load(BUNDLED_MODEL)
    with TestClient(create_app(config)) as c:
        for seed in (1, 2):
            body = {"prompt": prompts, "max_tokens": 30, "seed": seed, "n": 2}
            texts = [choice["text"] for choice in c.post("/v1/completions", json=body).json()["choices"]]
            assert texts == reference.generate(prompts, max_words=30, seed=seed, num_return_sequences=2)
    assert "onnxruntime threads per step as load() chooses them" in caplog.text  # not "1 thread(s)"


# --------------------------------------------------------------------------- bodies and types

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "raw", "param", "words"),
    [
        ("/v1/completions", '{"prompt": "a \\ud800 b"}', "prompt", ["surrogate", "character 2", "U+D800"]),
        ("/v1/completions", '{"prompt": ["a", "b\\udc00"]}', "prompt", ["item 1, character 1", "U+DC00"]),
        ("/v1/completions", '{"prompt": "a", "stream": true, "stop": "\\udfff"}', "stop", ["U+DFFF"]),
        ("/v1/score", '{"text": "\\ud800"}', "text", ["surrogate"]),
        ("/v1/suggest", '{"prompt": "the \\udbff"}', "prompt", ["surrogate"]),
    ],
)
def test_lone_surrogates_are_refused_not_a_500(client, path, raw, param, words):
    # valid JSON (browsers can send it), but not text: no answer that repeats it could be encoded
    response = client.post(path, content=raw, headers=JSON)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_value"
    for word in [*words, "send valid Unicode text"]:
        assert word in error["message"], error["message"]


@pytest.mark.parametrize(
    ("body", "param", "shown"),
    [
        ({"max_tokens": "10"}, "max_tokens", "'10'"),
        ({"max_tokens": True}, "max_tokens", "true"),
        ({"temperature": True}, "temperature", "true"),
        ({"n": "2"}, "n", "'2'"),
        ({"seed": 1.5}, "seed", "1.5"),
        ({"stream": "yes"}, "stream", "'yes'"),
        ({"echo": 1}, "echo", "1"),
        ({"logprobs": True}, "logprobs", "true"),
        ({"prompt": ["a", 5]}, "prompt.1", "5"),
    ],
)
def test_values_of_the_wrong_json_type_are_refused_not_converted(client, body, param, shown):
    response = client.post("/v1/completions", json={"prompt": "x", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_type"
    assert error["message"].startswith(f"{param}: input should be") and error["message"].endswith(
        f"got {shown}"
    )


def test_a_number_where_a_float_is_wanted_may_be_an_integer(client, model):
    body = {"prompt": "the network", "temperature": 1, "top_p": 1, "max_tokens": 5, "seed": 2}
    answer = client.post("/v1/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"] == model.generate("the network", max_words=5, seed=2)
    both = client.post("/v1/completions", json={"prompt": 3}).json()["error"]["message"]
    assert both == "prompt: input should be a valid string or a valid list, got 3"


@pytest.mark.parametrize(
    ("content", "headers", "words"),
    [
        (b"", JSON, ["the request body is empty"]),
        (b"", {}, ["the request body is empty"]),
        (b'{"prompt": "a", "max_tokens": 10', JSON, ["not valid JSON", "at character 32"]),
        (b'{"prompt": "a"}', {}, ["content-type: application/json (got none)"]),
        (
            b'{"prompt": "a"}',
            {"content-type": "text/plain"},
            ["content-type: application/json (got text/plain)"],
        ),
        (
            b'{"prompt": "\xe9"}',
            {"content-type": "application/json; charset=latin-1"},
            ["not UTF-8: byte 0xe9 at offset 12", "send the body as UTF-8 JSON"],  # the charset is not read
        ),
        (b"[1, 2]", JSON, ["must be a JSON object"]),
    ],
)
def test_bodies_that_are_not_a_json_object_say_what_to_send(client, content, headers, words):
    response = client.post("/v1/completions", content=content, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] is None  # the body itself, not a parameter (nor a character offset)
    for word in words:
        assert word in error["message"], error["message"]


def test_wrong_methods_and_paths_answer_in_json_with_the_way_out(client, model):
    wrong = client.get("/v1/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["message"] == "GET is not allowed on /v1/completions; use POST"
    paths = ["/health", "/v1/models", "/v1/models/tiny", "/", "/docs", "/static/app.js", "/model.onnx"]
    paths += [
        "/static/ort/ort-wasm-simd-threaded.wasm",
        "/static/docs/swagger-ui-bundle.js",
    ]  # stored gzipped
    for path in paths:
        head = client.head(path)
        assert head.status_code == 200 and head.content == b"", path
    (entry,) = client.get("/v1/models").json()["data"]
    assert client.get("/v1/models/tiny").json() == entry  # OpenAI's models.retrieve
    missing = client.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and "one model, 'tiny'" in missing.json()["error"]["message"]
    chat = client.post("/v1/chat/completions", json={"messages": []})
    assert chat.status_code == 404 and "use POST /v1/completions" in chat.json()["error"]["message"]
    nothing = client.get("/v1/embeddings").json()["error"]["message"]
    assert nothing.startswith("no /v1/embeddings on this server; it answers POST /v1/completions")


def test_the_api_reference_works_behind_a_path_prefix(model):
    """A reverse proxy serving the app at /nextword/: /docs loads Swagger UI's files and the schema
    from under that path (they were root-absolute: a blank page)."""
    import re

    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_app(ServeConfig(), model)
    proxy = Starlette(routes=[Mount("/nextword", app=inner)])
    with TestClient(proxy) as c:
        page = c.get("/nextword/docs").text
        urls = re.findall(r"""(?:href|src)=["']([^"']+)|url: ?["']([^"']+)""", page)
        urls = [a or b for a, b in urls if (a or b).startswith("/")]
        assert len(urls) == 4 and all(url.startswith("/nextword/") for url in urls), urls
        for url in urls:
            assert c.get(url).status_code == 200, url


def test_unexpected_failures_answer_500_in_json(model, monkeypatch, caplog):
    origin = "http://app.example"
    with TestClient(create_app(ServeConfig(cors_origins=(origin,)), model)) as c:
        monkeypatch.setattr(model, "score", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
        with caplog.at_level(logging.ERROR, logger="nextword.serve.errors"):
            response = c.post("/v1/score", json={"text": "the network"}, headers={"Origin": origin})
        assert c.app.state.nextword.slots.used == 0  # the failed call gave its slot back
        counted = c.get("/metrics").text
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "RuntimeError" in response.json()["error"]["message"] and "boom" not in response.text
    # answered inside the middleware: a browser app on the allowed origin can read it (CORS), and it
    # carries the security headers of every answer
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["x-content-type-options"] == "nosniff"
    assert re.search(
        r'nextword_http_requests_total\{[^}]*route="/v1/score"[^}]*status="500"[^}]*\} 1\.0', counted
    )
    [record] = [r for r in caplog.records if 'POST /v1/score HTTP/1.1" failed' in r.getMessage()]
    assert record.exc_info and "boom" in str(record.exc_info[1])  # the details: in the log, traceback too


def test_a_failing_middleware_still_answers_with_the_common_headers(model):
    class Broken:  # outside every middleware of the app: Starlette's own error handler answers
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                raise RuntimeError("boom")
            await self.app(scope, receive, send)

    app = create_app(ServeConfig(), model)
    app.add_middleware(Broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/health")
    assert response.status_code == 500 and "RuntimeError" in response.json()["error"]["message"]
    assert (
        response.headers["x-frame-options"] == "DENY" and response.headers["referrer-policy"] == "no-referrer"
    )


def test_a_middleware_failing_inside_the_access_log_still_names_the_request(model, monkeypatch):
    """The 500 Starlette answers outside every middleware carries the id of the request's access line."""

    works = BodySizeLimit.__call__

    async def broken(self, scope, receive, send):
        if scope["type"] == "http":
            raise RuntimeError("boom")
        await works(self, scope, receive, send)  # the lifespan

    monkeypatch.setattr(BodySizeLimit, "__call__", broken)
    with TestClient(create_app(ServeConfig(), model), raise_server_exceptions=False) as c:
        response = c.post("/v1/score", json={"text": "the network"})
    assert response.status_code == 500 and response.headers["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r"req-[0-9a-f]{32}", response.headers["x-request-id"]), response.headers


def test_suggestions_and_scores_count_against_the_cap(model):
    with TestClient(create_app(ServeConfig(max_streams=1), model)) as c:
        slots = c.app.state.nextword.slots
        assert c.post("/v1/score", json={"text": "the network"}).status_code == 200
        assert c.post("/v1/score", json={"text": ""}).json()["error"]["param"] == "text"
        assert slots.used == 0  # answered or refused: the slot is back
        slots.acquire()  # another request in flight
        for path, body in (("/v1/score", {"text": "x"}), ("/v1/suggest", {"prompt": "x"})):
            busy = c.post(path, json=body)
            assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
            assert "--max-streams" in busy.json()["error"]["message"]
        slots.release()
        assert c.post("/v1/suggest", json={"prompt": "the"}).status_code == 200


def test_token_id_prompts_and_huge_numbers_get_short_clear_refusals(client):
    for prompt in ([1, 2, 3], [[1, 2], [3]]):
        answer = client.post("/v1/completions", json={"prompt": prompt})
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "prompt"
        assert "token ids are not accepted; send the prompt as text" in answer.json()["error"]["message"]
    mixed = client.post("/v1/completions", json={"prompt": ["a", 3]}).json()["error"]["message"]
    assert mixed == "prompt.1: input should be a valid string, got 3"
    for name in ("max_tokens", "top_k", "n", "logprobs"):
        error = client.post("/v1/completions", json={"prompt": "a", name: 10**4000}).json()["error"]
        assert error["param"] == name and len(error["message"]) < 300, error["message"][:100]


def test_stream_and_echo_may_be_null_as_in_openais_api(client):
    body = {"prompt": "the network", "max_tokens": 3, "temperature": 0, "stop_at_end": False}
    plain = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    answer = client.post("/v1/completions", json={**body, "stream": None, "echo": None})
    assert answer.status_code == 200 and answer.json()["choices"][0]["text"] == plain


def test_streams_ask_caches_and_proxies_not_to_hold_events_back(client):
    body = {"prompt": "the network", "max_tokens": 3, "stream": True}
    with client.stream("POST", "/v1/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert sse(response)[-1] == "[DONE]"


def test_text_offsets_do_not_lag_behind_text_held_back_for_a_stop_string(client):
    """A stop string's first characters at the end of the text are held back until the next word shows
    whether the stop string follows; the offsets were counted from the text handed out, so a word after a
    held-back "t" started one character early."""
    body = {"prompt": "the network", "max_tokens": 12, "temperature": 0, "stop_at_end": False, "logprobs": 0}

    def answers(extra):
        whole = client.post("/v1/completions", json={**body, **extra}).json()["choices"][0]
        with client.stream("POST", "/v1/completions", json={**body, **extra, "stream": True}) as r:
            chunks = [c["choices"][0] for c in sse(r) if c != "[DONE]" and c["choices"]]
        streamed = [o for c in chunks if c["logprobs"] for o in c["logprobs"]["text_offset"]]
        return whole, streamed

    plain, _ = answers({})
    text, offsets = plain["text"], plain["logprobs"]["text_offset"]
    held = sorted({text[o - 1] for o in offsets[1:]})  # the last character before each later word
    for char in held:  # never matches, but holds back ``char`` wherever the text ends in it
        whole, streamed = answers({"stop": [char + "\x01"]})
        assert whole["text"] == text and whole["logprobs"]["text_offset"] == offsets == streamed, char
    stop = text[offsets[4] : offsets[5]]  # the fifth word's text cuts the text where it first appears
    whole, streamed = answers({"stop": [stop]})
    assert whole["finish_reason"] == "stop" and whole["text"] == text[: text.index(stop)]
    assert whole["logprobs"]["text_offset"] == offsets[: len(whole["logprobs"]["tokens"])] == streamed


def test_text_offsets_count_an_echoed_prompt(client, model):
    prompt = "The network"
    body = {"prompt": prompt, "max_tokens": 6, "temperature": 0, "stop_at_end": False, "logprobs": 1}
    for echo in (False, True):
        choice = client.post("/v1/completions", json={**body, "echo": echo}).json()["choices"][0]
        offsets, tokens, text = (
            choice["logprobs"]["text_offset"],
            choice["logprobs"]["tokens"],
            choice["text"],
        )
        assert offsets[0] == (len(prompt) if echo else 0)
        for offset, token in zip(offsets, tokens, strict=True):  # each word's text starts at its offset
            assert text[offset:].lstrip().lower().startswith(token), (text, offset, token)
        with client.stream("POST", "/v1/completions", json={**body, "echo": echo, "stream": True}) as r:
            chunks = [e for e in sse(r) if e != "[DONE]"]
        streamed = [
            o
            for c in chunks
            if c["choices"][0]["logprobs"]
            for o in c["choices"][0]["logprobs"]["text_offset"]
        ]
        assert streamed == offsets


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


# max_tokens of exactly --max-words is served (only a guard test asked for the default cap before)
def test_max_tokens_of_the_cap_is_served_and_one_more_is_refused(model):
    with TestClient(create_app(ServeConfig(max_words=5), model)) as c:
        body = {"prompt": "the network", "seed": 1, "stop_at_end": False}
        at_cap = c.post("/v1/completions", json={**body, "max_tokens": 5})
        assert at_cap.status_code == 200 and at_cap.json()["usage"]["completion_tokens"] == 5
        over = c.post("/v1/completions", json={**body, "max_tokens": 6})
        assert over.status_code == 400 and over.json()["error"]["param"] == "max_tokens"
