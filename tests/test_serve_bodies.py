"""Bodies a hostile or careless client sends: each answer names what is wrong, in OpenAI's shape with
its ``code``, and echoes none of the client's text past 80 characters."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app
from nextword.serve.errors import CODES

JSON = {"content-type": "application/json"}
REQUEST = '{"prompt": "the network", "max_tokens": 2}'


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(ServeConfig(), model)) as c:
        yield c


def refused(response, code: str, param: str | None = None) -> str:
    """The message of a 400 with ``code`` and ``param``."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert code in CODES
    return error["message"]


@pytest.mark.parametrize(
    ("body", "param", "shown"),
    [
        ({"logit_bias": "x"}, "logit_bias", "got 'x'"),
        ({"logit_bias": [1]}, "logit_bias", "got [1]"),
        ({"stream_options": [1]}, "stream_options", "got [1]"),
        ({"stream_options": True}, "stream_options", "got true"),
    ],
)
def test_a_parameter_that_must_be_an_object_is_named_when_it_is_not(client, body, param, shown):
    """It was "the request body must be a JSON object", about a body that is one."""
    answer = client.post("/v1/completions", json={"prompt": "the", **body})
    message = refused(answer, "invalid_type", param)
    assert message.startswith(f"{param} must be a JSON object") and shown in message, message
    assert "request body" not in message
    # the body itself still gets the body's message
    whole = client.post("/v1/completions", content=b'["the"]', headers=JSON)
    assert refused(whole, "invalid_json").startswith("the request body must be a JSON object")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('{"x": true, "y": null}', 'got {"x": true, "y": null}'),  # was Python's {'x': True, 'y': None}
        ("[NaN, 1e999, -Infinity]", "got [NaN, Infinity, -Infinity]"),
        ('["\\ud800", "é"]', 'got ["\\ud800", "é"]'),  # a lone surrogate escaped: it answered 500
        ('{"a\\u202eb": true, "c\\u0085": null}', 'got {"a\\u202eb": true, "c\\u0085": null}'),  # not raw
        ("true", "got true"),
        ('"x"', "got 'x'"),
    ],
    ids=["object", "not-numbers", "surrogate", "bidi-and-c1", "bool", "string"],
)
def test_a_list_or_an_object_of_the_wrong_type_is_shown_as_json(client, value, shown):
    body = '{"prompt": "the", "temperature": ' + value + "}"
    answer = client.post("/v1/completions", content=body.encode(), headers=JSON)
    message = refused(answer, "invalid_type", "temperature")
    assert message.endswith(shown), message


@pytest.mark.parametrize("body", [b'{"prompt":"a\nb"}', b'{"prompt":"a\x01b"}'], ids=["newline", "x01"])
def test_a_control_character_in_a_string_is_named_once(client, body):
    """Python's json says "Invalid control character at": the answer said "at at character 12"."""
    message = refused(client.post("/v1/completions", content=body, headers=JSON), "invalid_json")
    assert message == "the request body is not valid JSON: Invalid control character at character 12"


@pytest.mark.parametrize("where", ['"max_tokens": {}', '"seed": {}', '"logit_bias": {{"1": {}}}'])
def test_an_integer_longer_than_the_server_reads_is_named_with_the_limit(client, where):
    """Valid JSON, but past Python's limit on converting digits to an int: it was "could not be read
    as JSON"."""
    limit = sys.get_int_max_str_digits()
    digits = "9" * (limit + 1)
    body = '{"prompt": "the", ' + where.format(digits) + "}"
    message = refused(client.post("/v1/completions", content=body, headers=JSON), "invalid_value")
    assert f"more than {limit:,} digits" in message and "could not be read" not in message
    assert len(message) < 300  # the number is not echoed
    fits = '{"prompt": "the", "max_tokens": ' + "9" * limit + "}"  # as many digits as it reads: read
    over_the_cap = refused(
        client.post("/v1/completions", content=fits, headers=JSON), "invalid_value", "max_tokens"
    )
    assert "--max-words" in over_the_cap and len(over_the_cap) < 300


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (REQUEST.encode("utf-16"), ["is UTF-16", "byte order mark"]),  # json.loads(bytes) took these
        (REQUEST.encode("utf-16-be"), ["NUL byte (offset 0)", "UTF-16"]),
        (b"\xfe\xff" + REQUEST.encode("utf-16-be"), ["is UTF-16"]),
        (REQUEST.encode("utf-32"), ["is UTF-32"]),
        (REQUEST.encode("utf-32-be"), ["NUL byte (offset 0)", "UTF-32"]),
        ('{"prompt": "café"}'.encode("latin-1"), ["not UTF-8: byte 0xe9 at offset 15", "Latin-1"]),
    ],
    ids=["utf-16", "utf-16-be-no-mark", "utf-16-be", "utf-32", "utf-32-be-no-mark", "latin-1"],
)
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/score", "/v1/suggest"])
def test_a_body_that_is_not_utf8_is_refused_naming_its_encoding(client, content, words, path):
    message = refused(client.post(path, content=content, headers=JSON), "invalid_json")
    for word in [*words, "send the body as UTF-8 JSON"]:
        assert word in message, message


def test_a_utf8_byte_order_mark_is_ignored(client):
    """RFC 8259 lets a parser ignore one, and Windows tools write it: taken as it always was."""
    plain = client.post("/v1/completions", content=REQUEST.encode(), headers=JSON)
    marked = client.post("/v1/completions", content=b"\xef\xbb\xbf" + REQUEST.encode(), headers=JSON)
    assert marked.status_code == 200 == plain.status_code, marked.text
    assert client.post("/v1/score", content=b'\xef\xbb\xbf{"text": "the"}', headers=JSON).status_code == 200


def test_nesting_past_the_recursion_limit_is_named(client):
    deep = b'{"prompt": "the", "stop": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    message = refused(client.post("/v1/completions", content=deep, headers=JSON), "invalid_json")
    assert "nests arrays or objects deeper than the server reads" in message, message


def test_names_and_ids_a_client_sent_are_echoed_cut_to_80_characters(client):
    """A 500 kB parameter name, a 10,000-character model id, a long path: the answer names each by its
    first 80 characters, as it shows values."""
    key = "k" * 500_000
    unknown = client.post("/v1/completions", content=f'{{"prompt": "the", "{key}": 1}}', headers=JSON)
    assert unknown.status_code == 400 and len(unknown.content) < 500
    error = unknown.json()["error"]
    assert error["code"] == "unknown_parameter" and error["param"] == "k" * 80 + "..."
    assert f"unknown parameter '{'k' * 80}...'" in error["message"]
    nested = client.post("/v1/completions", json={"prompt": "the", "stream_options": {key: 1}})
    assert nested.json()["error"]["param"] == "stream_options." + "k" * 65 + "..."
    bias = client.post("/v1/completions", json={"prompt": "the", "logit_bias": {key: "x"}})
    assert len(bias.content) < 500 and bias.json()["error"]["code"] == "invalid_type"
    model_id = "m" * 10_000
    for missing in (
        client.post("/v1/completions", json={"prompt": "the", "model": model_id}),
        client.get(f"/v1/models/{model_id}"),
    ):
        assert missing.status_code == 404 and len(missing.content) < 500
        error = missing.json()["error"]
        assert (
            error["code"] == "model_not_found" and f"model '{'m' * 80}...' is not served" in error["message"]
        )
    nowhere = client.get("/" + "p" * 10_000)
    assert nowhere.status_code == 404 and len(nowhere.content) < 600
    assert nowhere.json()["error"]["message"].startswith(f"no /{'p' * 79}... on this server")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "text/x+json", "text/json"]
)
def test_a_body_of_another_type_is_not_read_as_json_whatever_fastapi_would_do(content_type):
    """FastAPI before 0.132 read a body sent without a content type as JSON, which a page on any site may
    send without a CORS preflight. The routes' own reader refuses it, on any FastAPI; it takes the JSON
    types FastAPI takes: application/json and application/...+json."""
    import asyncio

    from nextword.serve.bodies import BodyUnreadable, _UTF8Request

    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": headers}

    async def receive():
        return {"type": "http.request", "body": REQUEST.encode(), "more_body": False}

    with pytest.raises(BodyUnreadable, match=r"content-type: application/json \(got ") as refused:
        asyncio.run(_UTF8Request(scope, receive).json())
    assert refused.value.code == "unsupported_content_type"
    for taken in (b"application/json; charset=utf-8", b"Application/JSON", b"application/vnd.api+json"):
        scope["headers"] = [(b"content-type", taken)]
        assert asyncio.run(_UTF8Request(scope, receive).json()) == {"prompt": "the network", "max_tokens": 2}
    for encoding in (b"identity", b" Identity ", b""):  # an uncompressed body, said so
        scope["headers"] = [(b"content-type", b"application/json"), (b"content-encoding", encoding)]
        assert asyncio.run(_UTF8Request(scope, receive).json()) == {"prompt": "the network", "max_tokens": 2}
