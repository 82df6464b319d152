"""``GET /v1/models``, ``/v1/models/{id}`` and ``/health`` declare their bodies in the OpenAPI schema
(they were free-form objects there), and the declared models drop nothing the server sends."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app
from nextword.serve.schemas import API_TO_RUNTIME, CompletionRequest
from nextword.serve.state import model_summary

SERVED = {"status", "model", "batching", "generations_in_flight", "generations_served", "uptime_s"}


def component(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The component ``node`` refers to (``{"$ref": "#/components/schemas/X"}``), else ``node``."""
    ref = node.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else node


def check_against(schema: dict[str, Any], node: dict[str, Any], value: Any, where: str) -> None:
    """``value`` holds the required properties of the object schema ``node`` and no undeclared one,
    each with the declared JSON type, recursively through references and arrays."""
    node = component(schema, node)
    options = node.get("anyOf")
    if options:  # `int | None`: one of them fits
        kinds = [component(schema, option).get("type") for option in options]
        assert ("null" if value is None else _kind(value)) in kinds, (where, value, kinds)
        return
    kind = node.get("type")
    if kind is not None:
        assert _kind(value) == kind or (kind == "number" and _kind(value) == "integer"), (where, value, kind)
    if kind == "object" and "properties" in node:
        assert set(node.get("required", [])) <= set(value), (where, sorted(value))
        assert set(value) <= set(node["properties"]), (where, set(value) - set(node["properties"]))
        for key, item in value.items():
            check_against(schema, node["properties"][key], item, f"{where}.{key}")
    if kind == "array":
        for i, item in enumerate(value):
            check_against(schema, node["items"], item, f"{where}[{i}]")
    if "const" in node:
        assert value == node["const"], where
    if "enum" in node:
        assert value in node["enum"], where


def _kind(value: Any) -> str:
    for python, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, python):
            return name
    return "array" if isinstance(value, list) else "object"


def answer_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    return schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize("batching", [True, False])
def test_the_answers_match_their_declared_bodies_and_lose_nothing(model, batching):
    with TestClient(create_app(ServeConfig(batching=batching), model)) as client:
        schema = client.get("/openapi.json").json()
        health = client.get("/health").json()
        state = client.app.state.nextword
        assert set(health) == SERVED | set(state.scheduler.stats())  # every figure the scheduler has
        check_against(schema, answer_schema(schema, "/health"), health, "/health")
        listed = client.get("/v1/models").json()
        check_against(schema, answer_schema(schema, "/v1/models"), listed, "/v1/models")
        (entry,) = listed["data"]
        assert entry["nextword"] == model_summary(model)  # the free-form record, whole
        assert entry["limits"]["max_rows"] == state.config.max_rows
        one = client.get(f"/v1/models/{entry['id']}").json()
        check_against(schema, answer_schema(schema, "/v1/models/{model_id}"), one, "/v1/models/{id}")
        assert one == entry


def test_the_declared_bodies_name_their_fields_and_what_they_mean(model):
    with TestClient(create_app(ServeConfig(), model)) as client:
        schema = client.get("/openapi.json").json()
    health = component(schema, answer_schema(schema, "/health"))
    assert set(health["required"]) == SERVED
    assert all(field.get("description") for name, field in health["properties"].items() if name != "status")
    listed = component(schema, answer_schema(schema, "/v1/models"))
    entry = component(schema, listed["properties"]["data"]["items"])
    assert set(entry["required"]) == {"id", "object", "created", "owned_by", "nextword", "limits"}
    assert set(listed["required"]) == {"object", "data"}
    limits = component(schema, entry["properties"]["limits"])
    assert set(limits["required"]) == {
        "max_words",
        "max_prompt_chars",
        "max_suggestions",
        "max_rows",
        "size_limits",
        "model_download",
    }
    assert "nextword info --json" in entry["properties"]["nextword"]["description"]


def test_the_declared_types_keep_the_values_and_each_route_names_its_body(model):
    with TestClient(create_app(ServeConfig(), model)) as client:
        state = client.app.state.nextword
        state.started_monotonic -= 12.34  # up a while: not a whole number of seconds
        health = client.get("/health")
        entry = client.get("/v1/models").json()["data"][0]
        schema = client.get("/openapi.json").json()
    assert health.status_code == 200 and isinstance(health.json()["uptime_s"], float)
    assert health.json()["uptime_s"] >= 12.3
    assert type(entry["created"]) is int and entry["limits"]["size_limits"] is state.config.size_limits
    for path, name in (
        ("/health", "Health"),
        ("/v1/models", "ModelList"),
        ("/v1/models/{model_id}", "ModelEntry"),
    ):
        assert answer_schema(schema, path) == {"$ref": f"#/components/schemas/{name}"}, path
    components = schema["components"]["schemas"]
    assert components["Health"]["properties"]["status"]["const"] == "ok"
    assert components["ModelEntry"]["properties"]["object"]["const"] == "model"
    assert components["ModelList"]["properties"]["object"]["const"] == "list"


def test_what_generated_clients_read_from_the_completion_schema(model):
    """openapi-typescript made a request field with a default a required one (a plain {prompt} did not
    compile), typed every answer of the route unknown for a stream media type without a schema, and
    left Choice's always-sent fields optional."""
    with TestClient(create_app(ServeConfig(), model)) as client:
        schema = client.get("/openapi.json").json()
        streamed = client.post(
            "/v1/completions",
            json={
                "prompt": "the",
                "max_tokens": 2,
                "stream": True,
                "stream_options": {"include_usage": None},
            },
        )
    components = schema["components"]["schemas"]
    requests = {
        "CompletionRequest": ("stream", "echo"),
        "SuggestRequest": ("k",),
        "StreamOptions": ("include_usage", "include_obfuscation"),
    }
    for name, fields in requests.items():
        for field in fields:
            assert "default" not in components[name]["properties"][field], (name, field)
        assert "stream" not in components[name].get("required", [])
    answers = schema["paths"]["/v1/completions"]["post"]["responses"]["200"]["content"]
    assert answers["text/event-stream"] == {"schema": {"type": "string"}}
    assert set(components["Choice"]["required"]) == {
        "index",
        "text",
        "logprobs",
        "finish_reason",
        "end_reason",
    }
    assert "object" in components["CompletionResponse"]["required"]
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")  # null: not sent


def test_operations_have_names_a_generated_client_can_use(model):
    """FastAPI's own ids (completions_v1_completions_post, model_v1_models__model_id__get) became the
    names of generated functions."""
    with TestClient(create_app(ServeConfig(), model)) as client:
        paths = client.get("/openapi.json").json()["paths"]
    named = {path: {method: op["operationId"] for method, op in ops.items()} for path, ops in paths.items()}
    assert named == {
        "/v1/completions": {"post": "createCompletion"},
        "/v1/suggest": {"post": "suggestWords"},
        "/v1/score": {"post": "scoreText"},
        "/v1/models": {"get": "listModels"},
        "/v1/models/{model_id}": {"get": "retrieveModel"},
        "/health": {"get": "getHealth"},
        "/metrics": {"get": "getMetrics"},
    }
    assert paths["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"] == {
        "schema": {"type": "string"}
    }


def test_a_parameter_left_out_names_the_file_default_it_takes():
    """A request parameter whose description says which of the model file's defaults it takes when left
    out names its own runtime field (min_tokens once said the file's max_words)."""
    properties = CompletionRequest.model_json_schema()["properties"]
    named = {
        name: re.findall(r"left out: the model file's (\w+)", field.get("description", ""))
        for name, field in properties.items()
    }
    assert named["min_tokens"] == ["min_words"]
    for name, fields in named.items():
        assert all(field == API_TO_RUNTIME.get(name, name) for field in fields), (name, fields)
