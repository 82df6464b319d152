"""The Host check against DNS rebinding (serve/hosts.py, --allowed-host): a server on loopback answers
requests for localhost, one-label names and addresses, and names it was given; a web page whose own
name was made to resolve to 127.0.0.1 reached everything before (the model file, completions), as its
own origin, CORS or not."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

import httpx
from browser import new_browser, start_server
from fastapi.testclient import TestClient

from nextword.cli.main import main
from nextword.serve import ServeConfig, create_app
from nextword.serve.hosts import host_allowed, host_of

REBOUND = "rebind.attacker.example"


def test_the_host_is_read_without_port_brackets_case_or_final_dot():
    assert host_of(b"[::1]:8000") == "::1" and host_of(b"[fe80::1]") == "fe80::1"
    assert host_of(b"Example.COM.:80") == "example.com" and host_of(b"127.0.0.1:1") == "127.0.0.1"
    assert host_of(b"") == "" and host_of(b"localhost") == "localhost"


@pytest.mark.parametrize(
    "host", ["localhost", "testserver", "my-laptop", "a.localhost", "127.0.0.1", "10.1.2.3", "::1", ""]
)
def test_what_a_loopback_server_answers_by_default(host):
    assert host_allowed(host, ())


@pytest.mark.parametrize("host", [REBOUND, "example.com", "127.1", "localhost.example", "my-laptop.lan"])
def test_what_it_refuses_by_default(host):
    assert not host_allowed(host, ())


def test_names_given_and_their_subdomains():
    names = ("example.com", "*.corp.example")
    assert host_allowed("example.com", names) and host_allowed("x.corp.example", names)
    assert host_allowed("a.b.corp.example", names)
    assert not host_allowed("corp.example", names) and not host_allowed("www.example.com", names)
    assert not host_allowed("evilcorp.example", names)


def test_a_loopback_server_refuses_a_foreign_host_on_every_route(model):
    client = TestClient(create_app(ServeConfig(), model))
    attacked = {"host": f"{REBOUND}:8000"}
    for method, path in (("GET", "/"), ("GET", "/model.onnx"), ("GET", "/health"), ("GET", "/v1/models")):
        answer = client.request(method, path, headers=attacked)
        assert answer.status_code == 400, path
        error = answer.json()["error"]
        assert error["code"] == "host_not_allowed"
        assert f"--allowed-host '{REBOUND}'" in error["message"] and "DNS rebinding" in error["message"]
    answer = client.post("/v1/completions", json={"prompt": "the", "max_tokens": 2}, headers=attacked)
    assert answer.status_code == 400 and "choices" not in answer.json()
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get("/v1/models", headers={"host": host}).status_code == 200, host


def test_a_cors_preflight_from_a_rebound_page_is_refused_too(model):
    client = TestClient(create_app(ServeConfig(cors_origins="*"), model))
    preflight = {
        "host": REBOUND,
        "origin": f"http://{REBOUND}",
        "access-control-request-method": "POST",
    }
    answer = client.options("/v1/completions", headers=preflight)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "host_not_allowed"


def test_names_given_are_answered_on_any_address_and_others_refused(model):
    for host in ("127.0.0.1", "0.0.0.0"):
        client = TestClient(create_app(ServeConfig(host=host, allowed_hosts="nextword.example.org"), model))
        assert client.get("/health", headers={"host": "nextword.example.org"}).status_code == 200
        assert client.get("/health", headers={"host": "NEXTWORD.example.org."}).status_code == 200
        assert client.get("/health", headers={"host": REBOUND}).status_code == 400


def test_a_server_on_another_address_without_names_and_star_check_nothing(model):
    for config in (ServeConfig(host="0.0.0.0"), ServeConfig(allowed_hosts="*")):
        assert config.host_names is None
        client = TestClient(create_app(config, model))
        assert client.get("/health", headers={"host": REBOUND}).status_code == 200


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("example.com:8080", "give it without its port (example.com)"),
        ("exa mple.com", "give a name such as example.com"),
        ("http://example.com", "give a name such as example.com"),
    ],
)
def test_a_name_that_is_none_is_refused_at_start(given, said):
    expected = r"allowed_hosts has .* which is not a host name: " + re.escape(said)
    with pytest.raises(ValueError, match=expected):
        ServeConfig(allowed_hosts=given)


def test_the_flag_takes_names_repeated_or_with_commas(capsys):
    assert ServeConfig(allowed_hosts=["A.example", "b.example,a.example."]).allowed_hosts == (
        "a.example",
        "b.example",
    )
    assert main(["serve", "--allowed-host", "x.example:1"]) == 2
    assert "--allowed-host" in capsys.readouterr().err


def test_a_real_browser_on_a_rebound_name_gets_the_refusal_and_a_named_host_the_page(model):
    """Chromium resolving the attacker's name to 127.0.0.1: the server's page, its model file and its
    API were the attacker page's own origin."""
    refused = start_server(create_app(ServeConfig(), model))
    named = start_server(create_app(ServeConfig(allowed_hosts=REBOUND), model))
    driver = new_browser(loopback_names=(REBOUND,))
    try:
        for server, expected in ((refused, "host_not_allowed"), (named, "nextword")):
            port = httpx.URL(server.url).port
            driver.get(f"http://{REBOUND}:{port}/")
            assert expected in driver.page_source
        driver.get(f"http://{REBOUND}:{httpx.URL(refused.url).port}/model.onnx")
        assert "host_not_allowed" in driver.page_source
    finally:
        driver.quit()
        refused.stop()
        named.stop()
