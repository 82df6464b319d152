"""The request bodies' schema states the ranges the server holds them to (it stated none: a client or a
validator driven by /openapi.json sent values that got 400), this server's caps included; each bound it
states is the server's, to the next value past it."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app

CAPS = {"max_words": 7, "max_rows": 3, "max_suggestions": 2, "max_prompt_chars": 50}
BASE = {"prompt": "the network", "max_tokens": 1, "seed": 1}  # a completion that answers at once
# (route, field, JSON type, the bounds the schema states for it); a string: this server's cap, by name
STATED = [
    ("/v1/completions", "max_tokens", "integer", {"minimum": 0, "maximum": "max_words"}),
    ("/v1/completions", "min_tokens", "integer", {"minimum": 0, "maximum": "max_words"}),
    ("/v1/completions", "n", "integer", {"minimum": 1, "maximum": "max_rows"}),
    ("/v1/completions", "num_beams", "integer", {"minimum": 1, "maximum": "max_rows"}),
    ("/v1/completions", "best_of", "integer", {"minimum": 1, "maximum": "max_rows"}),
    ("/v1/completions", "logprobs", "integer", {"minimum": 0, "maximum": 20}),
    ("/v1/completions", "top_p", "number", {"exclusiveMinimum": 0, "maximum": 1}),
    ("/v1/completions", "top_k", "integer", {"minimum": 0, "maximum": 1_000_000}),
    ("/v1/completions", "seed", "integer", {"minimum": 0}),
    ("/v1/completions", "repetition_penalty", "number", {"minimum": 0.01, "maximum": 100}),
    ("/v1/completions", "length_penalty", "number", {"minimum": -10, "maximum": 10}),
    ("/v1/completions", "no_repeat_ngram_size", "integer", {"minimum": 0, "maximum": 100}),
    ("/v1/completions", "presence_penalty", "number", {"const": 0}),
    ("/v1/completions", "frequency_penalty", "number", {"const": 0}),
    ("/v1/completions", "logit_bias", "object", {"maxProperties": 0}),
    ("/v1/completions", "suffix", "string", {"maxLength": 0}),
    ("/v1/completions", "stop", "string", {"minLength": 1, "maxLength": 64}),
    ("/v1/completions", "stop", "array", {"maxItems": 16}),
    ("/v1/completions", "prompt", "string", {"maxLength": "max_prompt_chars"}),
    ("/v1/completions", "prompt", "array", {"minItems": 1, "maxItems": "max_rows"}),
    ("/v1/suggest", "k", "integer", {"minimum": 1, "maximum": "max_suggestions"}),
    ("/v1/suggest", "prompt", "string", {"maxLength": "max_prompt_chars"}),
    ("/v1/score", "text", "string", {"minLength": 1, "maxLength": "max_prompt_chars"}),
]
NAMES = [f"{path.rsplit('/', 1)[1]}.{field}:{kind}" for path, field, kind, _ in STATED]
# what a value of each field needs beside it to be taken: the bound is then the only thing tried
COMPANIONS: dict[str, dict[str, Any]] = {
    "min_tokens": {"max_tokens": 7},
    "best_of": {"n": 3},
    "num_beams": {"n": 1},
}
BODIES = {"/v1/completions": BASE, "/v1/suggest": {"prompt": "the"}, "/v1/score": {"text": "the network"}}


@pytest.fixture(scope="module")
def capped(model):
    with TestClient(create_app(ServeConfig(**CAPS), model), base_url="http://127.0.0.1") as client:
        yield client


def request_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]


def branch(schema: dict[str, Any], path: str, field: str, kind: str) -> dict[str, Any]:
    """The part of ``field``'s schema for values of JSON type ``kind`` (an optional field's ``anyOf``)."""
    node = request_schema(schema, path)["properties"][field]
    (found,) = [b for b in node.get("anyOf", [node]) if b.get("type") == kind]
    return found


def stated(schema: dict[str, Any], path: str, field: str, kind: str) -> dict[str, Any]:
    keywords = ("minimum", "maximum", "exclusiveMinimum", "const", "minLength", "maxLength")
    keywords += ("minItems", "maxItems", "maxProperties")
    return {k: v for k, v in branch(schema, path, field, kind).items() if k in keywords}


@pytest.mark.parametrize(("path", "field", "kind", "bounds"), STATED, ids=NAMES)
def test_the_schema_states_each_range_with_this_servers_caps(capped, path, field, kind, bounds):
    schema = capped.get("/openapi.json").json()
    vocab_size = capped.app.state.nextword.model.vocab_size  # k is held to it too
    caps = {**CAPS, "max_suggestions": min(CAPS["max_suggestions"], vocab_size)}
    assert stated(schema, path, field, kind) == {k: caps.get(v, v) for k, v in bounds.items()}


def _values(kind: str, keyword: str, bound: Any) -> tuple[Any, Any]:
    """A value the range keyword takes (at ``bound``, or just inside an exclusive one) and the next one
    past it, for a field of JSON type ``kind``: a float's next float, an integer's next integer."""
    if keyword == "const":
        return bound, bound + 0.5
    if keyword == "maxProperties":
        return {}, {"the": 1.0}
    up = keyword.startswith("max")  # the direction in which a value leaves the range
    if keyword in ("minLength", "maxLength"):
        return "x" * bound, "x" * (bound + (1 if up else -1))
    if keyword in ("minItems", "maxItems"):
        return ["the"] * bound, ["the"] * (bound + (1 if up else -1))
    if keyword == "exclusiveMinimum":
        return (bound + 1 if kind == "integer" else math.nextafter(bound, math.inf)), bound
    if kind == "integer":
        return bound, bound + (1 if up else -1)
    return bound, math.nextafter(bound, math.inf if up else -math.inf)


@pytest.mark.parametrize(("path", "field", "kind", "bounds"), STATED, ids=NAMES)
def test_each_stated_bound_is_the_servers_own(capped, path, field, kind, bounds):
    """A value at the bound is answered; the next one past it gets the server's 400 naming the field,
    in its own words (no pydantic message)."""
    schema = capped.get("/openapi.json").json()
    ranges = stated(schema, path, field, kind)
    assert ranges, (path, field, kind)
    for keyword, bound in ranges.items():
        taken, refused = _values(kind, keyword, bound)
        body = {**BODIES[path], **COMPANIONS.get(field, {}), field: taken}
        answer = capped.post(path, json=body)
        assert answer.status_code == 200, (field, keyword, taken, answer.text)
        answer = capped.post(path, json={**body, field: refused})
        assert answer.status_code == 400, (field, keyword, refused, answer.text)
        error = answer.json()["error"]
        assert error["param"] == field or error["param"].startswith(f"{field}."), (field, error)
        assert "Input should" not in error["message"], error


def test_temperature_is_zero_or_the_runtimes_range(capped):
    """0 is greedy and 0.01..100 samples; between them the server refuses, so the schema does too."""
    schema = capped.get("/openapi.json").json()
    number = branch(schema, "/v1/completions", "temperature", "number")
    assert number["anyOf"] == [{"const": 0}, {"minimum": 0.01, "maximum": 100}]
    for value, status in ((0, 200), (0.005, 400), (0.01, 200), (100, 200), (100.5, 400), (-1, 400)):
        answer = capped.post("/v1/completions", json={**BASE, "temperature": value})
        assert answer.status_code == status, (value, answer.text)


def test_each_server_states_its_own_caps(model, capped):
    with TestClient(create_app(ServeConfig(), model), base_url="http://127.0.0.1") as default:
        schema = default.get("/openapi.json").json()
    small = capped.get("/openapi.json").json()
    assert branch(schema, "/v1/completions", "max_tokens", "integer")["maximum"] == 1000
    assert branch(schema, "/v1/completions", "n", "integer")["maximum"] == 32
    assert branch(schema, "/v1/score", "text", "string")["maxLength"] == 100_000
    assert branch(schema, "/v1/suggest", "k", "integer")["maximum"] == min(100, model.vocab_size)
    assert branch(small, "/v1/completions", "max_tokens", "integer")["maximum"] == 7
    items = branch(small, "/v1/completions", "prompt", "array")["items"]
    assert items == {"type": "string", "maxLength": 50}


def test_the_rules_that_join_two_fields_are_described(capped):
    properties = request_schema(capped.get("/openapi.json").json(), "/v1/completions")["properties"]
    assert "at most max_tokens" in properties["min_tokens"]["description"]
    assert "only with stream=true" in properties["stream_options"]["description"]
    for field in ("n", "prompt", "num_beams"):
        assert "--max-rows" in properties[field]["description"], field
    assert "prompts x n" in properties["n"]["description"]
    assert "equal to n" in properties["best_of"]["description"]
