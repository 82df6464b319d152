"""Turning a model file's decoding defaults off for one call: ``top_k=0`` (Hugging Face's "no top-k
filtering") in the API, the CLI and the server, ``--no-stop`` on the command line, ``stop=()`` and
``"stop": []`` elsewhere, and the neutral values of the other options."""

from __future__ import annotations

import json

import pytest

from nextword.cli.args import config_from_args
from nextword.cli.main import build_parser, main
from nextword.runtime import GenerationConfig, load
from nextword.runtime.generation import MAX_TOP_K

# Defaults that each change what the tiny model writes: a narrow top_k, a stop string its sentences
# all end with, a nucleus, a penalty, an n-gram ban and a minimum length.
FILE_DEFAULTS = {
    "min_words": 5,
    "top_k": 2,
    "top_p": 0.8,
    "repetition_penalty": 1.5,
    "no_repeat_ngram_size": 2,
    "stop": ["."],
}
# The command-line flags that turn each of FILE_DEFAULTS off again.
OFF_FLAGS = (
    "--min-words",
    "0",
    "--top-k",
    "0",
    "--top-p",
    "1",
    "--repetition-penalty",
    "1",
    "--no-repeat-ngram-size",
    "0",
    "--no-stop",
)
TOP_K_RANGE = f"must be in 0..{MAX_TOP_K} (0: no top-k filtering)"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def defaults_path(run_dir, tmp_path_factory):
    """The session's run exported with FILE_DEFAULTS as its decoding defaults."""
    from nextword.export import ExportConfig, export

    out = tmp_path_factory.mktemp("defaults-off") / "defaults.onnx"
    generation = GenerationConfig(**{**FILE_DEFAULTS, "stop": tuple(FILE_DEFAULTS["stop"])})
    export(ExportConfig(str(run_dir), str(out), evaluate=False, tune_cache=False, generation=generation))
    return out


@pytest.fixture(scope="module")
def with_defaults(defaults_path):
    return load(defaults_path)


def stored_defaults(path) -> dict:
    import onnx

    return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["nextword.generation"])


def test_top_k_0_is_none():
    assert GenerationConfig(top_k=0) == GenerationConfig()
    assert GenerationConfig(top_k=0).top_k is None and GenerationConfig(top_k=0).changes() == {}
    file_defaults = GenerationConfig(top_k=40, no_repeat_ngram_size=3)
    assert GenerationConfig.from_options(file_defaults, top_k=0).top_k is None
    assert GenerationConfig.from_options(file_defaults, top_k=0).no_repeat_ngram_size == 3
    assert GenerationConfig(top_k=0, num_beams=2).top_k is None  # off is no sampling option
    assert GenerationConfig(top_k=MAX_TOP_K).top_k == MAX_TOP_K


def test_top_p_1_is_none():
    # 1 keeps every word, so it is off as None is; beam search, which refuses sampling options, takes it
    assert GenerationConfig(top_p=1) == GenerationConfig() and GenerationConfig(top_p=1.0).changes() == {}
    assert GenerationConfig.from_options(GenerationConfig(top_p=0.8), top_p=1).top_p is None
    assert GenerationConfig(top_p=1, num_beams=2).top_p is None
    assert GenerationConfig(top_p=0.999).top_p == 0.999


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, f"top_k {TOP_K_RANGE}, got -1"),
        (MAX_TOP_K + 1, f"top_k {TOP_K_RANGE}, got {MAX_TOP_K + 1}"),
        (0.0, "top_k must be an integer, got 0.0"),
        (False, "top_k must be an integer, got False"),
    ],
)
def test_top_k_below_0_or_not_an_integer_is_refused(value, message):
    with pytest.raises(ValueError) as caught:
        GenerationConfig(top_k=value)
    assert str(caught.value) == message


def test_python_api_turns_every_file_default_off(model, with_defaults):
    assert with_defaults.info.generation.top_k == 2 and with_defaults.info.generation.stop == (".",)
    off = {"min_words": 0, "top_k": 0, "top_p": None, "repetition_penalty": 1.0}
    off |= {"no_repeat_ngram_size": 0, "stop": ()}
    for seed in range(3):
        plain = model.generate("the network", max_words=25, seed=seed, temperature=1.5)
        assert with_defaults.generate("the network", max_words=25, seed=seed, temperature=1.5, **off) == plain
    # the file's stop string holds: its texts never reach a "."; stop=() lets them
    kept = with_defaults.generate("the network", max_words=40, temperature=0, stop_at_end=False)
    dropped = with_defaults.generate("the network", max_words=40, temperature=0, stop_at_end=False, stop=())
    assert "." not in kept and "." in dropped


def test_export_stores_top_k_0_as_no_top_k(capsys, run_dir, tmp_path):
    out = tmp_path / "k0.onnx"
    argv = ("export", run_dir, "--out", out, "--top-k", 0, "--stop", ".", "--no-evaluate", "--no-tune-cache")
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    # an older runtime refuses top_k=0: the file says nothing of top_k, which every runtime reads
    assert stored_defaults(out) == {"stop": ["."]}
    assert load(out).info.generation == GenerationConfig(stop=(".",))


def test_a_file_that_stores_top_k_0_reads_as_off(model_path, tmp_path):
    import onnx

    proto = onnx.load(str(model_path))
    kept = [p for p in proto.metadata_props if p.key != "nextword.generation"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key="nextword.generation", value='{"top_k": 0, "max_words": 9}')
    path = tmp_path / "elsewhere.onnx"
    path.write_bytes(proto.SerializeToString())
    assert load(path).info.generation == GenerationConfig(max_words=9)


def test_cli_flags_turn_every_file_default_off(capsys, model_path, defaults_path):
    common = ("--max-words", 25, "--temperature", 1.5, "--json")
    for seed in range(3):
        _, plain, _ = run_cli(
            capsys, "generate", "the network", "--model", model_path, "--seed", seed, *common
        )
        argv = ("generate", "the network", "--model", defaults_path, "--seed", seed, *common)
        code, off, err = run_cli(capsys, *argv, *OFF_FLAGS)
        assert code == 0, err
        assert json.loads(off) == json.loads(plain)
    _, kept, _ = run_cli(capsys, *argv)
    assert json.loads(kept) != json.loads(plain)  # the file's defaults do apply without the flags


def test_cli_options_resolve_to_neutral_values(with_defaults):
    defaults = with_defaults.info.generation
    args = vars(build_parser().parse_args(["generate", "x", *OFF_FLAGS]))
    config = config_from_args(defaults, args)
    assert config.changes() == {}  # every flag resolves to the neutral value, top_p=1 to None
    for flags, stop in (
        (["--no-stop"], ()),
        (["--no-stop", "--stop", "x"], ("x",)),  # a --stop after --no-stop adds one
        (["--stop", "x", "--no-stop"], ()),
        (["--stop", "x", "--stop", "y"], ("x", "y")),
        ([], (".",)),
    ):
        args = vars(build_parser().parse_args(["generate", "x", *flags]))
        assert config_from_args(defaults, args).stop == stop, flags


def test_cli_no_stop_drops_the_files_stop_strings(capsys, defaults_path):
    argv = ("generate", "the network", "--model", defaults_path, "--temperature", 0, "--max-words", 40)
    argv += ("--no-stop-at-end", "--json")
    code, kept, err = run_cli(capsys, *argv)
    assert code == 0, err
    code, dropped, err = run_cli(capsys, *argv, "--no-stop")
    assert code == 0, err
    assert "." not in json.loads(kept)[0]["text"] and "." in json.loads(dropped)[0]["text"]


def test_cli_refusals_name_the_way_out(capsys, defaults_path):
    argv = ("generate", "the network", "--model", defaults_path)
    code, out, err = run_cli(capsys, *argv, "--top-k", -1)
    assert code == 2 and out == "" and f"--top-k {TOP_K_RANGE}, got -1" in err, err
    with pytest.raises(SystemExit) as exited:  # refused as argparse refuses a flag's value
        run_cli(capsys, *argv, "--stop", "")
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "argument --stop: an empty value is not allowed; --no-stop gives none" in err, err


def test_server_top_k_0_and_empty_stop_turn_the_files_defaults_off(with_defaults):
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    pytest.importorskip("httpx", reason="install nextword[serve-test] to test the server")
    from fastapi.testclient import TestClient

    from nextword.serve import ServeConfig, create_app

    body = {"prompt": "the network", "max_tokens": 25, "temperature": 1.5, "seed": 4}
    with TestClient(create_app(ServeConfig(), with_defaults)) as client:
        answer = client.post("/v1/completions", json={**body, "top_k": 0, "stop": []})
        assert answer.status_code == 200, answer.text
        want = with_defaults.generate(
            "the network", max_words=25, temperature=1.5, seed=4, top_k=None, stop=()
        )
        assert answer.json()["choices"][0]["text"] == want
        for change, param, says in (
            ({"top_k": -1}, "top_k", f"top_k {TOP_K_RANGE}, got -1"),
            ({"stop": ""}, "stop", 'send "stop": [] for no stop strings'),
            ({"stop": ["x", ""]}, "stop", 'send "stop": [] for no stop strings'),
        ):
            refused = client.post("/v1/completions", json={**body, **change})
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["param"] == param and says in error["message"], error
