"""The server as OpenAI's clients and HTTP tools see it: error messages for keys that are not text, Range
requests on served files, the OpenAPI schema's status codes, and the official Python client end to end."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

import httpx
from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def app(model):
    return create_app(ServeConfig(), model)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/completions", b'{"\\ud800": 1}'),
        ("/v1/completions", b'{"prompt": "a", "x\\udc00": 1}'),
        ("/v1/suggest", b'{"prompt": "a", "\\udbff": 1}'),
        ("/v1/score", b'{"\\ud800": "a"}'),
    ],
)
def test_a_body_key_that_is_not_text_is_named_as_such(client, path, raw):
    answer = client.post(path, content=raw, headers=JSON)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "must be a JSON object" not in error["message"]  # it is one: its key is the problem
    assert "key" in error["message"] and "not valid Unicode text" in error["message"]
    assert "surrogate" in error["message"] and "\\u" in error["message"]  # the key, escaped


@pytest.mark.parametrize(
    ("raw", "param", "shown"),
    [
        (b'{"prompt": "a", "logit_bias": {"\\ud800": "x"}}', "logit_bias", "'\\ud800'"),
        (b'{"prompt": "a", "logit_bias": {"ok": 1, "a\\udc00": 1}}', "logit_bias", "'a\\udc00'"),
        (
            b'{"prompt": "a", "stream": true, "stream_options": {"\\ud800": true}}',
            "stream_options",
            "'\\ud800'",
        ),
    ],
)
def test_an_object_parameters_key_that_is_not_text_is_shown_escaped(client, raw, param, shown):
    answer = client.post("/v1/completions", content=raw, headers=JSON)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == param  # not the key's bytes garbled into U+FFFD
    assert "\ufffd" not in json.dumps(error, ensure_ascii=False)
    assert shown in error["message"] and "not valid Unicode text" in error["message"]


def test_a_key_with_a_surrogate_pair_is_text(client):
    emoji = client.post(
        "/v1/completions", content=b'{"prompt": "a", "logit_bias": {"\\ud83d\\ude00": 1}}', headers=JSON
    )
    assert emoji.status_code == 400 and emoji.json()["error"]["message"].startswith(
        "logit_bias is not supported"
    )


@pytest.mark.parametrize(
    "asked", ["bytes=999999999-", "bytes=5-2", "bytes=abc", "bytes=-0", "bytes=", "bytes=" + "1" * 5000 + "-"]
)  # the last: int() refuses 4,300 digits, which was a 500
@pytest.mark.parametrize("path", ["/model.onnx", "/static/app.js"])
def test_a_range_that_selects_no_bytes_gets_416_in_the_json_error_shape(client, path, asked):
    size = len(client.get(path).content)
    for answer in (client.get(path, headers={"range": asked}), client.head(path, headers={"range": asked})):
        assert answer.status_code == 416  # RFC 9110 15.5.17, not Starlette's plain-text 400
        assert answer.headers["content-range"] == f"bytes */{size}"
        if answer.request.method == "GET":
            error = answer.json()["error"]
            assert "Range" in error["message"] and str(size) in error["message"]
            assert error["type"] == "invalid_request_error"


def test_good_ranges_and_other_units_are_served(client, model_path):
    data = model_path.read_bytes()
    part = client.get("/model.onnx", headers={"range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == data[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(data)}"
    tail = client.get("/model.onnx", headers={"range": "bytes=-4"})
    assert tail.status_code == 206 and tail.content == data[-4:]
    past_the_end = client.get("/model.onnx", headers={"range": "bytes=2-3, 999999999-"})  # one overlaps
    assert past_the_end.status_code == 206 and past_the_end.content == data[2:4]
    huge = client.get("/model.onnx", headers={"range": "bytes=" + "0" * 5000 + "2-" + "9" * 5000})
    assert huge.status_code == 206 and huge.content == data[2:]  # a last byte past the file: up to its end
    merged = client.get("/model.onnx", headers={"range": "bytes=0-1,2-5"})
    assert merged.status_code == 206 and merged.content == data[:6]
    two = client.get("/model.onnx", headers={"range": "bytes=0-1,10-11"})  # apart: a multipart answer
    assert two.status_code == 206 and two.headers["content-type"].startswith(
        "multipart/byteranges; boundary="
    )
    assert len(two.content) == int(two.headers["content-length"])
    parts = two.content.split(b"--" + two.headers["content-type"].split("boundary=")[1].encode())
    assert [p.rsplit(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts[1:-1]] == [data[:2], data[10:12]]
    other_unit = client.get("/model.onnx", headers={"range": "items=0-1"})  # ignored (RFC 9110 14.2)
    assert other_unit.status_code == 200 and other_unit.content == data
    etag = part.headers["etag"]
    stale = client.get("/model.onnx", headers={"range": "bytes=999999999-", "if-range": '"old"'})
    assert stale.status_code == 200 and stale.content == data  # If-Range no longer matches: the whole file
    current = client.get("/model.onnx", headers={"range": "bytes=999999999-", "if-range": etag})
    assert current.status_code == 416 and current.json()["error"]["param"] == "range"


# What each documented route can answer, besides 405 for a method it does not take and 500 for a bug.
# "default": any other error in the same shape (a 405, the protocol's 408 and 431, a 500; for a GET, the
# 400 of a Host the server does not answer for)
ANSWERS = {
    # 401: from a server started with a key; the schema says so either way (optional without one)
    ("/v1/completions", "post"): {200, 400, 401, 404, 413, 429, 503, "default"},
    ("/v1/suggest", "post"): {200, 400, 401, 404, 413, 429, 503, "default"},
    ("/v1/score", "post"): {200, 400, 401, 404, 413, 429, 503, "default"},
    ("/v1/models", "get"): {200, 401, "default"},
    ("/v1/models/{model_id}", "get"): {200, 401, 404, "default"},
    ("/health", "get"): {200, 503, "default"},
    ("/metrics", "get"): {200, "default"},
}


def test_the_openapi_schema_lists_the_status_codes_the_routes_answer(client, app):
    schema = client.get("/openapi.json").json()
    listed = {
        (path, method): {code if code == "default" else int(code) for code in operation["responses"]}
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert listed == ANSWERS
    for (path, method), codes in ANSWERS.items():
        for code in codes - {200}:
            answer = schema["paths"][path][method]["responses"][str(code)]
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # never answered
    # a 400 of these routes lists the codes a 400 carries (a refused Host's too), not another status's
    described = schema["paths"]["/v1/completions"]["post"]["responses"]["400"]["description"]
    assert "invalid_type:" in described and "unsupported_content_type:" in described
    assert "host_not_allowed:" in described
    for other in (
        "body_too_large",
        "request_timeout",
        "headers_too_large",
        "model_file_changed",
        "cors_refused",
    ):
        assert other not in described, other
    streamed = schema["paths"]["/v1/completions"]["post"]["responses"]["200"]["description"]
    assert "CompletionResponse" in streamed and "[DONE]" in streamed
    # the two answers the schema used to get wrong, as the server gives them
    assert client.get("/v1/models/nope").status_code == 404
    state = app.state.nextword
    state.draining = True
    try:
        draining = client.get("/health")
    finally:
        state.draining = False
    assert draining.status_code == 503 and draining.json()["error"]["type"] == "server_error"


def _health(url: str) -> dict:
    return httpx.get(url + "/health", timeout=10).json()


def _wait_idle(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _health(url)["generations_in_flight"]:
        assert time.monotonic() < deadline, "a generation is still running"
        time.sleep(0.02)


def test_the_openai_client_with_every_parameter_the_docs_list(live_server, model):
    openai = pytest.importorskip("openai", reason="install nextword[serve-test] (the openai client)")
    client = openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)
    answer = client.completions.create(
        model="tiny",
        prompt=["the network", "the system"],
        max_tokens=6,
        n=2,
        best_of=2,
        logprobs=2,
        echo=True,
        stop=["zzz", "qqq"],
        seed=3,
        temperature=0.8,
        top_p=0.9,
        presence_penalty=0,
        frequency_penalty=0,
        logit_bias={},
        suffix="",
        user="someone",
    )
    expected = model.generate(
        ["the network", "the system"], max_words=6, num_return_sequences=2, seed=3, temperature=0.8, top_p=0.9
    )
    assert [c.text for c in answer.choices] == [
        prompt + text for prompt, text in zip(["the network"] * 2 + ["the system"] * 2, expected, strict=True)
    ]
    for choice in answer.choices:
        assert choice.logprobs is not None and len(choice.logprobs.tokens) == len(choice.logprobs.text_offset)
        assert all(len(top) <= 3 for top in choice.logprobs.top_logprobs)  # 2 and the word drawn
        assert all(
            top[t] == p
            for top, t, p in zip(
                choice.logprobs.top_logprobs,
                choice.logprobs.tokens,
                choice.logprobs.token_logprobs,
                strict=True,
            )
        )
    stopped = client.completions.create(model="tiny", prompt="the network", max_tokens=30, stop=" ", seed=1)
    assert stopped.choices[0].finish_reason == "stop"
    chunks = list(
        client.completions.create(
            model="tiny",
            prompt="the network",
            max_tokens=5,
            seed=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert "".join(c.choices[0].text for c in chunks[:-1]) == model.generate(
        "the network", max_words=5, seed=1
    )
    for unsupported, name in (({"presence_penalty": 0.5}, "presence_penalty"), ({"suffix": "x"}, "suffix")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.completions.create(model="tiny", prompt="a", max_tokens=2, **unsupported)
        assert refused.value.param == name and name in refused.value.message
    with pytest.raises(openai.BadRequestError, match="unknown parameter 'foo'"):
        client.completions.create(model="tiny", prompt="a", extra_body={"foo": 1})


def test_the_openai_clients_models_errors_caps_and_cancelled_streams(model):
    openai = pytest.importorskip("openai", reason="install nextword[serve-test] (the openai client)")
    from browser import start_server

    server = start_server(
        create_app(ServeConfig(max_streams=1, max_words=10_000, max_body_bytes=5_000), model)
    )
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny"]
        assert client.models.retrieve("tiny").owned_by == "nextword"
        with pytest.raises(openai.NotFoundError, match="this server holds one model, 'tiny'"):
            client.models.retrieve("gpt-4")
        with pytest.raises(openai.NotFoundError, match="use POST /v1/completions"):
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.APIStatusError, match="--max-body-bytes") as too_big:
            client.completions.create(model="tiny", prompt="x " * 5_000, max_tokens=2)
        assert too_big.value.status_code == 413
        stream = client.completions.create(
            model="tiny", prompt="the", max_tokens=10_000, stream=True, extra_body={"stop_at_end": False}
        )
        next(iter(stream))
        with pytest.raises(openai.RateLimitError, match="--max-streams") as busy:
            client.completions.create(model="tiny", prompt="a", max_tokens=2)
        assert busy.value.response.headers["retry-after"] == "1"
        stream.close()  # a client that stops reading midway: its generation ends
        _wait_idle(server.url)
        assert client.completions.create(model="tiny", prompt="a", max_tokens=2).choices[0].text
    finally:
        server.stop()


def test_no_cross_origin_page_may_call_the_api_unless_allowed(client):
    """Without --cors-origin a page elsewhere gets no CORS headers: the browser keeps the answer from it."""
    asked = client.options(
        "/v1/completions",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in asked.headers
    answer = client.post(
        "/v1/score", json={"text": "the network"}, headers={"Origin": "http://localhost:5173"}
    )
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_an_allowed_origin_may_call_the_api_and_read_its_refusals(model):
    config = ServeConfig(cors_origins=("http://localhost:5173",), max_body_bytes=200)
    with TestClient(create_app(config, model)) as c:
        preflight = c.options(
            "/v1/completions",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        origin = {"Origin": "http://localhost:5173"}
        done = c.post("/v1/completions", json={"prompt": "the", "max_tokens": 2}, headers=origin)
        assert (
            done.status_code == 200 and done.headers["access-control-allow-origin"] == "http://localhost:5173"
        )
        too_big = c.post("/v1/completions", json={"prompt": "a" * 500}, headers=origin)
        assert too_big.status_code == 413 and "access-control-allow-origin" in too_big.headers
        other = c.options(
            "/v1/completions",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"
        # refused in the shape of every error (it was Starlette's plain "Disallowed CORS origin")
        error = other.json()["error"]
        assert other.status_code == 400 and error["code"] == "cors_refused", other.text
        assert error["message"] == (
            "CORS preflight refused: origin 'http://evil.example' is not one this server allows "
            "(nextword serve --cors-origin)"
        )
        both = c.options(
            "/v1/completions",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "DELETE"},
        )
        message = both.json()["error"]["message"]
        assert (
            "origin 'http://evil.example'" in message
            and "method 'DELETE' is not one it takes (GET, HEAD, POST)" in message
        )
        method = c.options(
            "/v1/completions",
            headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "PUT"},
        )
        assert method.status_code == 400 and "origin" not in method.json()["error"]["message"]
        assert method.headers["access-control-allow-origin"] == "http://localhost:5173"  # still readable
        assert method.headers["x-request-id"] and method.headers["x-content-type-options"] == "nosniff"
        private = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Private-Network": "true"}
        # a public page calling this server on loopback (Chrome's Private Network Access): allowed for an
        # origin the operator listed (refused with Starlette's default), still refused for another
        pna = c.options("/v1/completions", headers={"Origin": "http://localhost:5173", **private})
        assert pna.status_code == 200 and pna.headers["access-control-allow-private-network"] == "true"
        pna = c.options("/v1/completions", headers={"Origin": "http://evil.example", **private})
        assert pna.status_code == 400 and pna.json()["error"]["code"] == "cors_refused"


def test_a_cors_origin_past_the_last_port_is_refused():
    with pytest.raises(
        ValueError, match=r"cors_origins has 'http://a\.example:99999', whose port is past 65535"
    ):
        ServeConfig(cors_origins="http://a.example:99999")


@pytest.mark.parametrize("origin", ["http://localhost:5173/", "localhost:5173", "http://a.com/page", "a,,b"])
def test_a_cors_origin_that_is_not_an_origin_is_refused(origin):
    with pytest.raises(ValueError, match="is not an origin: give scheme://host"):
        ServeConfig(cors_origins=(origin,))


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://a.example", ("http://a.example",)),  # one origin, as served_model_name and api_keys take one
        ("http://a.example, https://b.example:8443", ("http://a.example", "https://b.example:8443")),
        (["*", "http://a.example,http://a.example"], ("*", "http://a.example")),  # each once
        (
            "http://a.example, ",
            ("http://a.example",),
        ),  # empty parts dropped, as forwarded_allow_ips drops them
        ("", ()),
    ],
)
def test_cors_origins_take_one_origin_a_list_or_a_comma_separated_string(given, kept):
    assert ServeConfig(cors_origins=given).cors_origins == kept


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("http://[FD00::2]:5173", "http://[fd00::2]:5173"),
        ("http://[0:0:0:0:0:0:0:1]:5173", "http://[::1]:5173"),
        ("http://localhost:80", "http://localhost"),
        ("https://example.com:443", "https://example.com"),
        ("HTTP://Example.COM:8080", "http://example.com:8080"),
        ("https://example.com:80", "https://example.com:80"),
        ("http://[::ffff:1.2.3.4]:8080", "http://[::ffff:102:304]:8080"),  # 3.13 wrote it dotted
    ],
)
def test_a_cors_origin_is_kept_as_browsers_send_it(model, given, sent):
    """Origins are compared as strings: one written otherwise than a browser writes it (a default port,
    capitals, a long IPv6 address) was accepted at start and then refused every preflight."""
    assert ServeConfig(cors_origins=given).cors_origins == (sent,)
    client = TestClient(create_app(ServeConfig(cors_origins=given), model))
    preflight = {"origin": sent, "access-control-request-method": "POST"}
    answer = client.options("/v1/completions", headers=preflight)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == sent


def test_the_cors_flag_repeats_and_reaches_worker_processes():
    from nextword.cli.args import config_from_args
    from nextword.cli.main import build_parser

    args = build_parser().parse_args(
        ["serve", "--cors-origin", "http://a.example", "--cors-origin", "https://b.example:8443"]
    )
    config = config_from_args(ServeConfig(), vars(args))
    assert config.cors_origins == ("http://a.example", "https://b.example:8443")
    again = ServeConfig(**json.loads(json.dumps(dataclasses.asdict(config))))  # as a worker reads it
    assert again == config
