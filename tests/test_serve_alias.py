"""`nextword serve --served-model-name`: the id the server reports and accepts in place of the model
file's name, so that an OpenAI app with a hard-coded model name works unchanged. Seen through OpenAI's
Python client, as tests/test_openai_errors.py does; tests/test_serve_deploy.py checks that the name
reaches each of --workers' processes."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import pytest

pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
httpx = pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")
openai = pytest.importorskip("openai", reason="install nextword[serve-test] (the openai client)")

from browser import start_server  # noqa: E402

from nextword.cli.main import main  # noqa: E402
from nextword.serve import ServeConfig, create_app  # noqa: E402
from nextword.serve.app import CONFIG_ENV, app_from_environment  # noqa: E402

ALIAS = "gpt-3.5-turbo-instruct"  # reported: the first name
OTHER = "text-davinci-003"  # accepted too


@pytest.fixture(scope="module")
def server(model):
    running = start_server(create_app(ServeConfig(served_model_name=(ALIAS, OTHER)), model))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_the_names_are_checked():
    assert ServeConfig().served_model_name == ()  # the model file's name
    assert ServeConfig(served_model_name=ALIAS).served_model_name == (ALIAS,)
    names = ["a", "ft:davinci-002:org::x1", "a", "B.2_c"]
    assert ServeConfig(served_model_name=names).served_model_name == ("a", "ft:davinci-002:org::x1", "B.2_c")
    for bad in ("", " ", "my model", "org/model", "-x", "x" * 129, "caf\u00e9", "a\x1b[2J"):
        with pytest.raises(
            ValueError, match=rf"served_model_name {re.escape(repr(bad))} is not a model name"
        ):
            ServeConfig(served_model_name=bad)
    with pytest.raises(ValueError, match="served_model_name must be a model name or a list"):
        ServeConfig(served_model_name=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not a model name"):
        ServeConfig(served_model_name=[ALIAS, None])  # type: ignore[list-item]


def test_the_server_reports_the_first_name(client, server, model):
    (entry,) = client.models.list().data  # one model, under its first name
    assert entry.id == ALIAS
    answer = client.completions.create(model=ALIAS, prompt="the network", max_tokens=3, seed=1)
    assert answer.model == ALIAS
    assert answer.choices[0].text == model.generate("the network", max_words=3, seed=1)
    chunks = list(client.completions.create(model=ALIAS, prompt="the", max_tokens=3, stream=True))
    assert chunks and {chunk.model for chunk in chunks} == {ALIAS}
    for path, body in (("/v1/suggest", {"prompt": "the"}), ("/v1/score", {"text": "the network"})):
        assert httpx.post(server.url + path, json=body, timeout=30).json()["model"] == ALIAS
    assert httpx.get(server.url + "/health", timeout=30).json()["model"] == ALIAS


def test_every_name_is_accepted_and_the_files_name_no_longer(client, model):
    answer = client.completions.create(model=OTHER, prompt="the", max_tokens=2)
    assert answer.model == ALIAS  # as vLLM answers: the first name
    assert client.models.retrieve(OTHER).id == OTHER and client.models.retrieve(ALIAS).id == ALIAS
    stem = "tiny"  # the test model's file: tiny.onnx
    assert model.source.endswith(stem + ".onnx")
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model=stem, prompt="the", max_tokens=2)
    assert (missing.value.code, missing.value.param) == ("model_not_found", "model")
    named = f"one model, {ALIAS!r}, also accepted as {OTHER!r} (GET /v1/models)"
    assert named in missing.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(stem)


def test_the_flag_sets_the_name_and_a_bad_one_names_the_flag(model_path, monkeypatch, capsys, request):
    import uvicorn

    apps: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    ours = logging.getLogger("nextword")  # serve() sets the level of nextword's loggers: restored
    request.addfinalizer(lambda level=ours.level: ours.setLevel(level))
    flags = ["--port", "0", "--served-model-name", ALIAS, "--served-model-name", OTHER]
    assert main(["serve", str(model_path), *flags]) == 0
    state = apps[-1].state.nextword
    assert state.model_id == ALIAS and state.serves(OTHER) and not state.serves("tiny")
    assert main(["serve", str(model_path), "--served-model-name", "my model"]) == 2
    err = capsys.readouterr().err
    assert "--served-model-name 'my model' is not a model name" in err, err


def test_the_help_lists_the_flag(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--served-model-name NAME" in capsys.readouterr().out


def test_a_worker_reads_the_names_from_its_settings(model_path, monkeypatch):
    """Workers get the settings as JSON (a tuple arrives as a list): the names survive the trip."""
    config = ServeConfig(model=str(model_path), served_model_name=(ALIAS, OTHER))
    monkeypatch.setenv(CONFIG_ENV, json.dumps(dataclasses.asdict(config)))
    state = app_from_environment().state.nextword
    assert state.config == config and state.model_id == ALIAS and state.serves(OTHER)
