"""The Host check against DNS rebinding (serve/hosts.py, --allowed-host): a request that came in on a
loopback address is answered for localhost, this machine's name, addresses and the names given; a web
page whose own name was made to resolve to 127.0.0.1 reached everything before (the model file,
completions), as its own origin, CORS or not."""

from __future__ import annotations

import logging
import re
import socket

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

import httpx
from browser import new_browser, start_server
from fastapi.testclient import TestClient

from nextword.cli.main import main
from nextword.serve import ServeConfig, create_app
from nextword.serve.hosts import host_allowed, host_of, local_connection, loopback_address

REBOUND = "rebind.attacker.example"


def test_the_host_is_read_without_port_brackets_case_or_final_dot():
    assert host_of(b"[::1]:8000") == "::1" and host_of(b"[fe80::1]") == "fe80::1"
    assert host_of(b"Example.COM.:80") == "example.com" and host_of(b"127.0.0.1:1") == "127.0.0.1"
    assert host_of(b"") == "" and host_of(b"localhost") == "localhost"


@pytest.mark.parametrize("host", ["localhost", "a.localhost", "127.0.0.1", "10.1.2.3", "::1", "build-01", ""])
def test_what_a_loopback_request_is_answered_for(host):
    assert host_allowed(host, (), own=("build-01.corp.example", "build-01"))


@pytest.mark.parametrize(
    "host", [REBOUND, "example.com", "127.1", "localhost.example", "my-laptop.lan", "wpad", "testserver"]
)
def test_what_it_is_refused_for(host):
    """One-label names other than this machine's too: an attacker on the same network can answer for
    one (LLMNR, NetBIOS) and rebind it."""
    assert not host_allowed(host, (), own=("build-01",))


def test_names_given_and_their_subdomains():
    names = ("example.com", "*.corp.example")
    assert host_allowed("example.com", names) and host_allowed("x.corp.example", names)
    assert host_allowed("a.b.corp.example", names)
    assert not host_allowed("corp.example", names) and not host_allowed("www.example.com", names)
    assert not host_allowed("evilcorp.example", names)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("::", False),
        ("testserver", False),
        ("/run/nextword.sock", False),
        ("", False),
    ],
)
def test_which_connections_came_in_on_loopback(address, loopback):
    assert loopback_address(address) is loopback


@pytest.mark.parametrize(
    ("server", "local"),
    [
        (("127.0.0.1", 8000), True),
        (("10.0.0.5", 8000), False),
        (None, True),
        (("/run/nw.sock", None), True),
        (("testserver", 80), False),
        ((), False),
    ],
)
def test_which_connections_may_come_from_this_machines_browser(server, local):
    assert local_connection(server) is local
    assert local_connection(server, ("203.0.113.9", 5000)) is local  # another machine's client


def test_a_connection_from_this_machine_to_its_own_network_address_is_checked(model, caplog):
    """A server on 0.0.0.0: a page whose name was rebound to the machine's LAN address, not to
    127.0.0.1, came in from this machine's browser on 192.0.2.2 and was not checked."""
    assert local_connection(("192.0.2.2", 8000), ("192.0.2.2", 55492))
    app = create_app(ServeConfig(host="0.0.0.0"), model)
    own = TestClient(app, base_url="http://192.0.2.2:8000", client=("192.0.2.2", 55492))
    other = TestClient(app, base_url="http://192.0.2.2:8000", client=("192.0.2.7", 41000))
    with caplog.at_level(logging.WARNING, logger="nextword.serve.hosts"):
        assert own.get("/health", headers={"host": "lan.attacker.example"}).status_code == 400
        assert own.get("/health", headers={"host": "lan.attacker.example"}).status_code == 400
    assert other.get("/health", headers={"host": "myserver.lan"}).status_code == 200
    refusals = [r.getMessage() for r in caplog.records if r.name == "nextword.serve.hosts"]
    assert len(refusals) == 1  # the access line says only 400: the reason once a name, in the log
    assert refusals[0].startswith("refused a request: this server does not answer for the host")


def test_a_unix_socket_behind_a_local_proxy_is_checked(model, tmp_path):
    """uvicorn --uds gives no address (scope["server"] None): the check was skipped, and a proxy on
    127.0.0.1 in front passed a rebound page's requests on."""
    import asyncio

    import uvicorn

    sock = str(tmp_path / "nw.sock")
    server = uvicorn.Server(uvicorn.Config(create_app(ServeConfig(), model), uds=sock, log_level="warning"))
    answers = {}

    async def ask() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=sock)) as client:
            for host in (REBOUND, "localhost"):
                answers[host] = (await client.get("http://x/health", headers={"host": host})).status_code
        server.should_exit = True
        await task

    asyncio.run(ask())
    assert answers == {REBOUND: 400, "localhost": 200}


def _on(app, address: str = "127.0.0.1") -> TestClient:
    """A test client whose requests arrive on ``address`` (ASGI's scope["server"])."""
    return TestClient(app, base_url=f"http://{address}:8000")


def test_a_request_on_loopback_for_a_foreign_host_is_refused_on_every_route(model):
    client = _on(create_app(ServeConfig(), model))
    attacked = {"host": f"{REBOUND}:8000"}
    for method, path in (("GET", "/"), ("GET", "/model.onnx"), ("GET", "/health"), ("GET", "/v1/models")):
        answer = client.request(method, path, headers=attacked)
        assert answer.status_code == 400, path
        error = answer.json()["error"]
        assert error["code"] == "host_not_allowed"
        message = error["message"]
        assert f"--allowed-host '{REBOUND}' (ServeConfig(allowed_hosts=...))" in message
        assert "DNS rebinding" in message
    answer = client.post("/v1/completions", json={"prompt": "the", "max_tokens": 2}, headers=attacked)
    assert answer.status_code == 400 and "choices" not in answer.json()
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", socket.gethostname()):
        assert client.get("/v1/models", headers={"host": host}).status_code == 200, host


def test_a_server_on_every_address_checks_what_comes_in_on_loopback(model):
    """`nextword serve --host 0.0.0.0` (or any ASGI server of create_app()) reached from this machine's
    browser through 127.0.0.1 is as open to a rebound page as one on 127.0.0.1; from another machine it
    is reached by whatever names its network gives it."""
    app = create_app(ServeConfig(host="0.0.0.0"), model)
    assert _on(app).get("/health", headers={"host": REBOUND}).status_code == 400
    assert _on(app, "10.0.0.5").get("/health", headers={"host": "myserver.lan"}).status_code == 200
    assert TestClient(app).get("/health", headers={"host": "myserver.lan"}).status_code == 200  # testserver


def test_a_cors_preflight_from_a_rebound_page_is_refused_too(model):
    client = _on(create_app(ServeConfig(cors_origins="*"), model))
    preflight = {
        "host": REBOUND,
        "origin": f"http://{REBOUND}",
        "access-control-request-method": "POST",
    }
    answer = client.options("/v1/completions", headers=preflight)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "host_not_allowed"


def test_names_given_are_checked_on_every_connection(model):
    for address in ("127.0.0.1", "10.0.0.5"):
        client = _on(
            create_app(ServeConfig(host="0.0.0.0", allowed_hosts="nextword.example.org"), model), address
        )
        assert client.get("/health", headers={"host": "nextword.example.org"}).status_code == 200
        assert client.get("/health", headers={"host": "NEXTWORD.example.org."}).status_code == 200
        assert client.get("/health", headers={"host": REBOUND}).status_code == 400
        assert client.get("/health", headers={"host": "localhost"}).status_code == 200


def test_star_checks_nothing(model):
    client = _on(create_app(ServeConfig(allowed_hosts="*"), model))
    assert client.get("/health", headers={"host": REBOUND}).status_code == 200


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("example.com:8080", "give it without its port (example.com)"),
        ("exa mple.com", "give a name such as example.com"),
        ("http://example.com", "give a name such as example.com"),
        ("*.com", "a wildcard covers the subdomains of a domain, not of all .com names"),
        ("b\u00fccher.de", "write it as a Host header does, in ASCII (xn--bcher-kva.de)"),
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
    assert ServeConfig(allowed_hosts="::1,[::1]:8000,10.0.0.5:80").allowed_hosts == ("::1", "10.0.0.5")
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
