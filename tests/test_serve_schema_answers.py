"""What /openapi.json says of the answers beyond each route's own: the GET routes' errors (they declared
none, though they answer 400 host_not_allowed, 401, 408, 431, 500), the headers that come with a 429, a
401 and a 405, HEAD in a 405's Allow, and which routes answer 503 once the server shuts down."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.serve import ServeConfig, create_app

KEY = "sk-schema-answers-0123456789"
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
GETS = ("/health", "/metrics", "/v1/models", "/v1/models/{model_id}")


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(ServeConfig(), model), base_url="http://127.0.0.1") as c:
        yield c


def answers(schema: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    return schema["paths"][path][method]["responses"]


def test_the_get_routes_declare_their_other_errors(client):
    schema = client.get("/openapi.json").json()
    for path in GETS:
        default = answers(schema, path)["default"]
        assert default["content"]["application/json"]["schema"] == ERROR_BODY, path
        assert "host_not_allowed" in default["description"], path
    # as the server answers them
    refused = client.get("/v1/models", headers={"host": "rebind.attacker.example"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "host_not_allowed"
    assert "400" not in answers(schema, "/v1/models")  # so `default` is the answer that covers it


def test_the_post_routes_400_lists_host_not_allowed(client):
    """They list a 400, which `default` then no longer covers: the code goes into the 400's list."""
    schema = client.get("/openapi.json").json()
    for path in ("/v1/completions", "/v1/suggest", "/v1/score"):
        assert "host_not_allowed: the request's Host" in answers(schema, path, "post")["400"]["description"]
        refused = client.post(path, json={"prompt": "the"}, headers={"host": "rebind.attacker.example"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "host_not_allowed"


def test_a_429_declares_and_sends_retry_after(client):
    schema = client.get("/openapi.json").json()
    declared = answers(schema, "/v1/completions", "post")["429"]["headers"]["Retry-After"]
    assert declared["required"] is True and declared["schema"] == {"type": "integer"}
    slots = client.app.state.nextword.slots
    for _ in range(slots.limit):
        slots.acquire()
    try:
        busy = client.post("/v1/suggest", json={"prompt": "the"})
    finally:
        for _ in range(slots.limit):
            slots.release()
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"


@pytest.mark.parametrize("keyed", [True, False])
def test_a_401_declares_and_sends_www_authenticate(model, keyed, monkeypatch):
    monkeypatch.delenv("NEXTWORD_API_KEY", raising=False)
    config = ServeConfig(api_keys=(KEY,) if keyed else ())
    with TestClient(create_app(config, model), base_url="http://127.0.0.1") as c:
        schema = c.get("/openapi.json").json()
        refused = c.get("/v1/models")
    for path, method in (("/v1/models", "get"), ("/v1/completions", "post")):
        header = answers(schema, path, method)["401"]["headers"]["WWW-Authenticate"]
        assert header["required"] is True and 'Bearer realm="nextword"' in header["description"]
    if keyed:
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="nextword"'


def test_a_405_declares_allow_and_lists_head_beside_get(client):
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            allow = operation["responses"]["default"]["headers"]["Allow"]
            assert allow["schema"] == {"type": "string"}, (path, method)
    for path in ("/health", "/metrics", "/v1/models", "/v1/models/tiny", "/openapi.json", "/"):
        got = client.get(path)
        assert client.head(path).status_code == got.status_code == 200, path  # HEAD is served...
        wrong = client.put(path)
        assert wrong.status_code == 405 and wrong.headers["allow"] in ("GET, HEAD", "HEAD, GET"), path
        assert wrong.json()["error"]["message"].endswith(wrong.headers["allow"])  # ...and named
    posted = client.get("/v1/completions")
    assert posted.status_code == 405 and posted.headers["allow"] == "POST"


def test_only_health_and_the_model_routes_answer_503_while_shutting_down(client):
    """/v1/models and /metrics go on answering (a client or Prometheus may still ask): the schema said
    every route answered 503."""
    schema = client.get("/openapi.json").json()
    described = schema["paths"]["/health"]["get"]["description"]
    assert "every route" not in described and "/v1/models" in described and "/metrics" in described
    state = client.app.state.nextword
    state.draining = True
    try:
        assert client.get("/health").status_code == 503
        assert client.post("/v1/suggest", json={"prompt": "the"}).status_code == 503
        assert client.post("/v1/completions", json={"prompt": "the", "max_tokens": 1}).status_code == 503
        for path in ("/v1/models", "/v1/models/tiny", "/metrics"):
            assert client.get(path).status_code == 200, path
            assert "503" not in answers(schema, path.replace("tiny", "{model_id}")), path
    finally:
        state.draining = False
