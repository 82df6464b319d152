"""The server's error answers as OpenAI's Python client reads them: the exception class of each status
(400 ``BadRequestError`` for every request the server cannot take as sent, as OpenAI's API answers it;
404 ``NotFoundError`` for a model the server does not serve) and the ``code``, ``param`` and ``type``
the client takes from the body."""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
httpx = pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")
openai = pytest.importorskip("openai", reason="install nextword[serve-test] (the openai client)")

from helpers import drain_once_generating  # noqa: E402
from nextword.serve.errors import CODES, APIError  # noqa: E402

JSON = {"content-type": "application/json"}
NOT_SERVED = "gpt-3.5-turbo-instruct"


@pytest.fixture(scope="module")
def client(live_server):
    return openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def served(client) -> str:
    (entry,) = client.models.list().data
    return entry.id


@pytest.mark.parametrize(
    ("options", "param", "code", "words"),
    [
        ({"temperature": -1}, "temperature", "invalid_value", [">= 0", "-1"]),
        ({"max_tokens": 10**6}, "max_tokens", "invalid_value", ["--max-words"]),
        # OpenAI's parameters this server does not implement: valid there, unsupported here
        ({"presence_penalty": 0.5}, "presence_penalty", "unsupported_value", ["repetition_penalty"]),
        ({"frequency_penalty": -1}, "frequency_penalty", "unsupported_value", ["=-1.0 is not supported"]),
        ({"best_of": 3}, "best_of", "unsupported_value", ["best_of=3 is not supported"]),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "unsupported_value", ["not supported"]),
        ({"suffix": " end."}, "suffix", "unsupported_value", ["left to right"]),
        (
            {"prompt": [1, 2, 3]},
            "prompt",
            "unsupported_value",
            ["token ids are not accepted", "got [1, 2, 3]"],
        ),
        ({"extra_body": {"temperature": "hot"}}, "temperature", "invalid_type", ["got 'hot'"]),
        ({"extra_body": {"max_tokens": "10"}}, "max_tokens", "invalid_type", ["got '10'"]),
        ({"extra_body": {"stream": 1}}, "stream", "invalid_type", ["got 1"]),
        ({"extra_body": {"tempreature": 1}}, "tempreature", "unknown_parameter", ["unknown parameter"]),
        ({"prompt": openai.NOT_GIVEN}, "prompt", "missing_required_parameter", ["prompt is required"]),
        # a chat request's body sent here: said so, not "prompt is required" alone
        (
            {"prompt": openai.NOT_GIVEN, "extra_body": {"messages": [{"role": "user", "content": "hi"}]}},
            "prompt",
            "missing_required_parameter",
            ["prompt is required; 'messages' is a parameter of chat completions", "send the text as prompt"],
        ),
        (
            {"extra_body": {"max_completion_tokens": 5}},
            "max_completion_tokens",
            "unknown_parameter",
            ["parameter of chat completions", "send 'max_tokens'"],
        ),
        (
            {"extra_headers": {"content-type": "text/plain"}},
            None,
            "unsupported_content_type",
            ["content-type: application/json (got text/plain)"],
        ),
    ],
)
def test_every_request_the_server_cannot_take_as_sent_is_a_bad_request_error(
    client, served, options, param, code, words
):
    arguments = {"model": served, "prompt": "the network", "max_tokens": 2, **options}
    with pytest.raises(openai.BadRequestError) as refused:  # was UnprocessableEntityError for a type
        client.completions.create(**arguments)
    error = refused.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert (error.param, error.code) == (param, code) and code in CODES
    for word in words:
        assert word in error.body["message"], error.body


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_the_server_does_not_serve_is_not_found_and_the_message_names_the_served_one(
    client, served, stream
):
    for asked in (NOT_SERVED, served.upper(), served + " "):
        with pytest.raises(openai.NotFoundError) as missing:
            client.completions.create(model=asked, prompt="the", max_tokens=2, stream=stream)
        error = missing.value
        assert (error.code, error.param, error.type) == ("model_not_found", "model", "invalid_request_error")
        message = error.body["message"]
        assert repr(asked) in message and f"one model, {served!r}" in message and "/v1/models" in message


def test_retrieving_a_model_the_server_does_not_serve_says_model_not_found(client, served):
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve(NOT_SERVED)
    assert (missing.value.code, missing.value.param) == ("model_not_found", "model")
    assert repr(served) in missing.value.body["message"]
    assert client.models.retrieve(served).id == served


def test_a_request_may_leave_model_out_or_name_the_served_one(live_server, client, served, model):
    expected = model.generate("the network", max_words=3, seed=1)
    for given in ({}, {"model": None}, {"model": ""}, {"model": served}):
        body = {"prompt": "the network", "max_tokens": 3, "seed": 1, **given}
        answer = httpx.post(live_server.url + "/v1/completions", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["text"] == expected
        assert answer.json()["model"] == served
    answer = client.completions.create(model=served, prompt="the network", max_tokens=3, seed=1)
    assert answer.choices[0].text == expected


FIELD = {"/v1/completions": "prompt", "/v1/suggest": "prompt", "/v1/score": "text"}  # the one required


@pytest.mark.parametrize("path", list(FIELD))
@pytest.mark.parametrize(
    ("template", "headers", "code", "param"),
    [
        (b"", JSON, "invalid_json", None),
        (b'{"FIELD": "a", ', JSON, "invalid_json", None),
        (b"[1, 2]", JSON, "invalid_json", None),
        (b'{"FIELD": "\xe9"}', {"content-type": "application/json; charset=latin-1"}, "invalid_json", None),
        (b'{"FIELD": "a"}', {}, "unsupported_content_type", None),
        # a compressed body was refused as "not UTF-8: byte 0x8b ... Latin-1?"; no body is inflated
        (
            # no time in it (mtime=0): the id is the same for each pytest-xdist worker that collects it
            gzip.compress(b'{"FIELD": "a"}', mtime=0),
            {**JSON, "content-encoding": "gzip"},
            "unsupported_content_encoding",
            None,
        ),
        (b'{"FIELD": "a", "bogus": 1}', JSON, "unknown_parameter", "bogus"),
        (b'{"FIELD": "a", "cache": "yes"}', JSON, "invalid_type", "cache"),
        (b'{"cache": true}', JSON, "missing_required_parameter", "FIELD"),
    ],
)
def test_bodies_the_client_cannot_send_get_400_with_their_code(
    live_server, path, template, headers, code, param
):
    """What OpenAI's client never sends (it writes the JSON itself), from any other HTTP client, on
    every route that takes a body: the same 400, which OpenAI's clients map to BadRequestError."""
    if headers.get("content-encoding") == "gzip":
        template = gzip.compress(gzip.decompress(template).replace(b"FIELD", FIELD[path].encode()))
    content = template.replace(b"FIELD", FIELD[path].encode())
    answer = httpx.post(live_server.url + path, content=content, headers=headers, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code) and code in CODES
    assert error["param"] == (FIELD[path] if param == "FIELD" else param)


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/v1/suggest", {"text": "a"}, ["prompt is required; 'text' is the text of /v1/score", "as prompt"]),
        ("/v1/score", {"prompt": "a"}, ["text is required; 'prompt' is the text of /v1/completions and"]),
        ("/v1/completions", {"text": "a"}, ["prompt is required; 'text' is the text of /v1/score"]),
        # another endpoint's option is no text: "prompt is required" alone
        ("/v1/completions", {"k": 5}, ["prompt is required"]),
    ],
)
def test_the_text_sent_under_another_endpoints_name_is_named(live_server, path, body, words):
    """A client that sends /v1/score's text to /v1/suggest (or a prompt to /v1/score) is told which name
    this endpoint takes, not only that its own is missing."""
    answer = httpx.post(live_server.url + path, json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == (
        "missing_required_parameter",
        "text" if path == "/v1/score" else "prompt",
    )
    for word in words:
        assert word in error["message"], error["message"]
    if "k" in body:
        assert error["message"] == "prompt is required"


def test_a_refusal_by_the_runtime_carries_invalid_value_whole_or_streamed(
    live_server, client, served, monkeypatch
):
    """A ValueError the runtime raises once the request is running (the generator's own checks): a
    whole answer is a 400, a stream that has begun ends with OpenAI's error event, and the client raises
    with the code either way."""
    scheduler = live_server.app.state.nextword.scheduler
    refusal = ValueError("top_k must be an integer in 1..1000000, got 0")
    monkeypatch.setattr(scheduler, "submit", lambda job: job.deliver(refusal))
    with pytest.raises(openai.BadRequestError) as whole:
        client.completions.create(model=served, prompt="the", max_tokens=2)
    assert (whole.value.code, whole.value.body["message"]) == ("invalid_value", str(refusal))
    stream = client.completions.create(model=served, prompt="the", max_tokens=2, stream=True)
    with pytest.raises(openai.APIError) as streamed:
        list(stream)
    assert (streamed.value.code, streamed.value.type) == ("invalid_value", "invalid_request_error")
    assert streamed.value.message == str(refusal)


def test_a_busy_server_is_a_rate_limit_error_with_its_code(live_server, client, served):
    slots = live_server.app.state.nextword.slots
    for _ in range(slots.limit):
        slots.acquire()  # every slot in flight
    try:
        with pytest.raises(openai.RateLimitError) as busy:
            client.completions.create(model=served, prompt="the", max_tokens=2)
    finally:
        for _ in range(slots.limit):
            slots.release()
    assert (busy.value.code, busy.value.type) == ("rate_limit_exceeded", "rate_limit_error")
    assert busy.value.response.headers["retry-after"] == "1"


def test_the_api_reference_lists_400_and_404_not_422(client, live_server):
    schema = httpx.get(live_server.url + "/openapi.json", timeout=30).json()
    completions = schema["paths"]["/v1/completions"]["post"]["responses"]
    assert "422" not in completions and {"400", "404"} <= set(completions)
    for code in (
        "invalid_type",
        "unknown_parameter",
        "invalid_json",
        "unsupported_content_type",
        "unsupported_value",
    ):
        assert code in completions["400"]["description"]
    assert "model_not_found" in completions["404"]["description"]
    retrieve = schema["paths"]["/v1/models/{model_id}"]["get"]["responses"]
    assert "model_not_found" in retrieve["404"]["description"]
    model = schema["components"]["schemas"]["CompletionRequest"]["properties"]["model"]
    assert "404" in model["description"] and "ignored" not in model["description"]


def test_the_docs_table_of_codes_lists_every_code_the_server_sends():
    """docs/serving.md's table of ``error.code`` values is the one :data:`CODES` holds: a code added to
    the server without a row (or a row left for a code gone) fails here."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text(encoding="utf-8")
    table = text.split("| `code` | the request's mistake |", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)
    assert sorted(documented) == sorted(CODES)


@pytest.fixture
def draining_server(model, monkeypatch):
    """A server whose sampled words come every 5 ms, and whose shutdown's drain (what it does
    --shutdown-timeout after its signal) is started by the test."""
    from browser import start_server

    from nextword.serve import ServeConfig, create_app
    from nextword.serve import scheduler as module

    real = module._row_update

    def slow(*args):
        time.sleep(0.005)
        return real(*args)

    monkeypatch.setattr(module, "_row_update", slow)
    app = create_app(ServeConfig(), model)
    server = start_server(app)
    yield server, app.state.nextword
    server.stop()


LONG = {"prompt": "the", "max_tokens": 1000, "extra_body": {"min_tokens": 1000}}


def test_a_completion_the_shutdown_cuts_short_is_an_error_the_client_raises(draining_server):
    """A completion the drain cancelled was answered 200 with finish_reason "stop": OpenAI's clients (and
    LangChain, LiteLLM, llm over them) took a cut text for a finished one, since only nextword's
    end_reason said otherwise. A whole answer is now a 503 (which the clients retry), and a stream ends
    with an error event (which they raise)."""
    server, state = draining_server
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    drain_once_generating(state)
    with pytest.raises(openai.InternalServerError) as whole:
        client.completions.create(model="", **LONG)
    assert whole.value.status_code == 503 and "cut this completion short" in whole.value.message
    assert whole.value.body["type"] == "server_error"
    drain_once_generating(state)
    texts = []
    with pytest.raises(openai.APIError) as streamed:
        for chunk in client.completions.create(model="", stream=True, **LONG):
            texts.extend(choice.text for choice in chunk.choices)
            assert all(choice.finish_reason in (None, "length") for choice in chunk.choices)
    assert texts and "cut this completion short" in streamed.value.message


def test_a_stream_the_shutdown_cuts_short_ends_with_a_server_error_and_no_usage(draining_server):
    """The stream's last event is the error (type server_error: the client may send it again), with no
    usage chunk after it, which a reader of the raw stream would take for a stream that ended well."""
    server, state = draining_server
    body = {
        "prompt": LONG["prompt"],
        "model": "",
        "max_tokens": 1000,
        "min_tokens": 1000,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    drain_once_generating(state)
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as response:
        payloads = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    events = [json.loads(p) for p in payloads if p != "[DONE]"]
    assert "error" in events[-1], events[-3:]
    error = events[-1]["error"]
    assert error["type"] == "server_error" and "cut this completion short" in error["message"]
    # no usage chunk: the chunks before carry "usage": null, as OpenAI's do, and none carries counts
    assert not any(e.get("usage") for e in events) and all(e["usage"] is None for e in events[:-1]), events[
        -3:
    ]


def test_one_choice_cut_short_makes_the_whole_answer_a_503():
    """n > 1, or several prompts: a choice that ended (its stop string, its length) before the drain
    cancelled the others does not make the answer whole."""
    from nextword.serve.completions import _unless_cut_short

    answer = {"choices": [{"end_reason": "stop"}, {"end_reason": "cancelled"}]}
    with pytest.raises(APIError) as cut:
        _unless_cut_short(answer)
    assert cut.value.status == 503 and cut.value.kind == "server_error"
    whole = {"choices": [{"end_reason": "stop"}, {"end_reason": "length"}]}
    assert _unless_cut_short(whole) is whole
