"""The server's settings and start-up refuse what cannot work, saying why: ServeConfig values of the
wrong kind, which hosts count as this machine only, a loaded model with several workers, a bad model
file named where its path came from, and a request whose prompt is an empty list."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")

from fastapi.testclient import TestClient

from nextword.runtime import ModelFileError, NextWordModel, load
from nextword.runtime.default import BUNDLED_MODEL
from nextword.serve import ServeConfig, create_app
from nextword.serve.server import _warn_if_public, serve


@pytest.fixture(scope="module")
def bundled() -> NextWordModel:
    return load(BUNDLED_MODEL)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"cors_origins": "http://example.com/"},
            r"cors_origins has 'http://example\.com/', which is not an origin",
        ),
        (
            {"cors_origins": 5},
            r"cors_origins must be an origin \(http://example\.com:8080\) or a list of them, got 5",
        ),
        ({"host": ""}, r"host must be a host name or an IP address, got ''"),
        ({"host": None}, r"host must be a host name or an IP address, got None"),
        ({"shutdown_timeout": 3601}, r"shutdown_timeout must be in 0\.\.3600 seconds, got 3601"),
        ({"shutdown_timeout": -1}, r"shutdown_timeout must be in 0\.\.3600 seconds, got -1"),
        ({"api_keys": 12345}, r"api_keys must be an API key or a list of them, got int"),
    ],
)
def test_serve_config_refuses_values_of_the_wrong_kind(settings: dict, message: str) -> None:
    """A single origin given as a string (not a list), an empty host, a drain time over an hour or a
    number as the API key are refused when the settings are made."""
    with pytest.raises(ValueError, match=message):
        ServeConfig(**settings)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("::1", True), ("127.0.0.5", True), ("myserver.internal", False), ("::", False)],
)
def test_which_hosts_count_as_this_machine_only(host: str, loopback: bool) -> None:
    """localhost and loopback addresses are private; a host name or any other address is not."""
    assert ServeConfig(host=host).loopback is loopback


def test_a_name_of_loopback_addresses_only_is_this_machine_only(monkeypatch) -> None:
    """`--host vm`, which the hosts file maps to 127.0.0.1, drew the warning that anyone on the network
    could use the model."""
    import socket

    addresses = {"vm": ["127.0.0.1", "::1"], "both": ["127.0.0.1", "192.0.2.2"], "lan": ["192.0.2.2"]}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in addresses[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert [ServeConfig(host=h).loopback for h in ("vm", "both", "lan", "nowhere")] == [
        True,
        False,
        False,
        False,
    ]


@pytest.mark.parametrize(("host", "warned"), [("localhost", False), ("myserver.internal", True)])
def test_listening_on_a_host_name_warns_that_anyone_can_use_the_model(
    host: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A server on a host name without keys is warned about (it may be reachable from the network);
    one on localhost is not."""
    with caplog.at_level(logging.WARNING, logger="nextword.serve.server"):
        _warn_if_public(ServeConfig(host=host))
    messages = [r.getMessage() for r in caplog.records]
    assert any("anyone who reaches it can use the model" in m for m in messages) is warned


def test_the_warning_writes_an_ipv6_address_as_a_url_does(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nextword.serve.server"):
        _warn_if_public(ServeConfig(host="::"))
    assert caplog.records[0].getMessage().startswith("listening on [::]: the server is reachable")


def test_several_workers_refuse_a_model_loaded_here(bundled: NextWordModel) -> None:
    """serve(config, model) with workers > 1 cannot share the loaded model: refused before listening."""
    ours = logging.getLogger("nextword")
    level = ours.level  # serve() sets it from the config's log level: put back for the tests after
    try:
        with pytest.raises(
            ValueError, match=r"workers > 1 load the model in each process: pass config\.model"
        ):
            serve(ServeConfig(workers=2, port=0), model=bundled)
    finally:
        ours.setLevel(level)


def test_a_bad_model_file_from_the_environment_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_app() with no model given and $NEXTWORD_MODEL naming a damaged file says the path came
    from $NEXTWORD_MODEL; the same file given in the settings is reported without that note."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    monkeypatch.setenv("NEXTWORD_MODEL", str(bad))
    with pytest.raises(
        ModelFileError, match=r"bad\.onnx.*\(the path comes from \$NEXTWORD_MODEL; fix or unset it\)$"
    ):
        create_app(ServeConfig())
    with pytest.raises(ModelFileError, match=r"bad\.onnx") as refused:
        create_app(ServeConfig(model=str(bad)))
    assert "NEXTWORD_MODEL" not in str(refused.value)


def test_a_prompt_that_is_an_empty_list_is_a_400_naming_the_prompt(bundled: NextWordModel) -> None:
    """POST /v1/completions with "prompt": [] asks for nothing: a 400 that says to give a string or a
    list of strings, not an empty answer."""
    with TestClient(create_app(ServeConfig(), bundled)) as client:
        response = client.post("/v1/completions", json={"prompt": [], "max_tokens": 3})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "prompt"
    assert error["message"] == "prompt is an empty list; give a string or a list of strings"


def test_a_limit_no_flag_lifts_names_how_to_serve_a_model_loaded_past_it() -> None:
    """A refusal for an opset outside the accepted range: no option of the command lifts it, so the
    server names the Python call and what to do with its model."""
    from nextword.runtime import ModelLimitError

    refused = ModelLimitError("m.onnx uses ONNX opset 19", "opset_versions", "widen LoadLimits")
    said = str(ServeConfig(model="m.onnx").explained(refused))
    assert said.startswith("m.onnx uses ONNX opset 19; no command-line option lifts this check")
    assert said.endswith(
        "load(..., limits=LoadLimits(opset_versions=...)) and serve that model: serve(config, model) or "
        "create_app(config, model)"
    )


@pytest.mark.parametrize("value", ["no", "False", 0, None])
def test_model_download_takes_true_or_false_only(value):
    """ServeConfig(model_download="no") (a value read from a settings file) was truthy: the model file
    its operator meant to keep on the server was offered at /model.onnx."""
    with pytest.raises(ValueError, match=r"^model_download must be True or False, got "):
        ServeConfig(model_download=value)
    assert ServeConfig(model_download=False).model_download is False
