"""A model file from a stranger, opened by every runtime entry: ``load``, the command line, the server
at startup and its page. Each hostile file is refused before anything acts on it, with one clear
message naming the file; what a file may show is shown as text, never as markup or terminal escapes.

The individual checks have their own tests (test_model_check.py, test_graph_bounds.py,
test_cli_hardening.py, test_model_probe.py); this module runs a stranger's files through the entries
that open them, and tests the limits added for them: how deeply JSON metadata may nest, and the page's
model line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nextword.cli.main import main
from nextword.runtime import ModelFileError, load
from nextword.runtime.limits import MAX_JSON_DEPTH

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the crafted files")
import crafted  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from onnx.external_data_helper import set_external_data  # noqa: E402

STATIC = Path(__file__).resolve().parents[1] / "serve" / "static"


def nested(depth: int) -> str:
    """A JSON object whose lists nest so that the whole value is ``depth`` levels deep."""
    return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def written(tmp_path: Path, name: str, proto: onnx.ModelProto) -> Path:
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


# --------------------------------------------------------------------------- nesting of JSON metadata


@pytest.mark.parametrize("key", ["nextword.quality", "nextword.config", "nextword.cache", "nextword.metrics"])
def test_metadata_nested_past_the_cap_is_refused(model_path, key):
    proto = crafted.set_meta(crafted.proto(model_path), key, nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(ModelFileError) as info:
        load(proto.SerializeToString())
    assert str(info.value) == (
        f"<model bytes>: metadata {key!r} is JSON nested more than {MAX_JSON_DEPTH} levels deep, which "
        "nextword metadata never is; the file was not written by nextword: re-export it"
    )


def test_metadata_nested_to_the_cap_loads(model_path):
    proto = crafted.set_meta(crafted.proto(model_path), "nextword.quality", nested(MAX_JSON_DEPTH))
    assert load(proto.SerializeToString()).info.quality["a"] == json.loads(nested(MAX_JSON_DEPTH))["a"]


def test_exported_metadata_nests_far_below_the_cap(model_path):
    """The cap leaves room: the exporter's deepest value (provenance in the config) is 5 levels."""

    def depth(value) -> int:
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        return 1 + max(map(depth, children), default=0) if isinstance(value, dict | list) else 0

    bundled = Path(__file__).resolve().parents[1] / "runtime" / "data" / "nextword-patents.onnx"
    for path in (model_path, bundled):
        values = [json.loads(p.value) for p in crafted.proto(path).metadata_props if "{" in p.value]
        deepest = max(map(depth, values))
        assert 2 <= deepest <= MAX_JSON_DEPTH // 4, (path, deepest)


def test_nested_metadata_no_longer_breaks_the_server_or_info_json(model_path, tmp_path, capsys):
    """Nested 300 deep, a value parsed, loaded, then made /v1/models answer 500 (pydantic stops at 255
    levels) and `nextword info --json` fail on Python's recursion limit; now the server refuses the file
    at startup and the command line says why in one line."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from nextword.serve import ServeConfig, create_app

    proto = crafted.set_meta(crafted.proto(model_path), "nextword.quality", nested(300))
    path = written(tmp_path, "deep", proto)
    with pytest.raises(ModelFileError, match="nested more than 32 levels deep"):
        create_app(ServeConfig(model=str(path)))
    assert main(["info", "--json", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nextword info: error: {path}: metadata 'nextword.quality' is JSON nested")


# --------------------------------------------------------------------------- every entry refuses


def _external(proto: onnx.ModelProto, location: str) -> onnx.ModelProto:
    tensor = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    set_external_data(tensor, location=location, offset=0, length=len(tensor.raw_data))
    tensor.ClearField("raw_data")
    return proto


def _op(proto: onnx.ModelProto, domain: str, op_type: str) -> onnx.ModelProto:
    proto.graph.node.append(helper.make_node(op_type, ["input_ids"], ["unused"], domain=domain))
    return proto


def _loop(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A Loop of 2**62 trips whose body doubles a tensor: refused as an operator, never run."""
    body = helper.make_graph(
        [helper.make_node("Concat", ["x_in", "x_in"], ["x_out"], axis=0)],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, None),
        ],
    )
    trips = crafted.add_initializer(proto, "trips", np.array(2**62, dtype=np.int64))
    seed = crafted.add_initializer(proto, "seed", np.zeros(256, dtype=np.float32))
    proto.graph.node.append(helper.make_node("Loop", [trips, "", seed], ["grown"], body=body))
    return proto


def _tokenizer_words(proto: onnx.ModelProto, extra: int) -> onnx.ModelProto:
    """The tokenizer claims ``extra`` more words than the graph's logits (or fewer, when negative)."""
    tokenizer = json.loads(crafted.meta(proto, "nextword.tokenizer"))
    tokens = tokenizer["tokens"]
    tokens[:] = tokens[:extra] if extra < 0 else tokens + [f"w{i}" for i in range(extra)]
    return crafted.set_meta(proto, "nextword.tokenizer", json.dumps(tokenizer))


HOSTILE = {
    "relative external data": (lambda p: _external(p, "../../etc/passwd"), "keeps its data outside the file"),
    "absolute external data": (lambda p: _external(p, "/etc/passwd"), "location '/etc/passwd'"),
    "custom domain op": (lambda p: _op(p, "com.evil", "ReadFile"), "operator 'com.evil:ReadFile'"),
    "Loop": (_loop, "uses the operator 'Loop'"),
    "function": (
        lambda p: p.functions.add(name="f", domain="x") and p,
        "contains model-local functions",
    ),
    "doubling Concats": (crafted.doubling_concats, "over the 67,108,864-byte limit"),
    "hidden width 100,000": (lambda p: crafted.wide_lstm(p, 100_000), "over the limit of 4,096"),
    # weights smaller than the hidden size says: onnxruntime before 1.29 read past them
    "an LSTM wider than its weights": (crafted.lstm_outgrows_its_weights, "hidden size 64 has input weights"),
    # finite scores a temperature's 1/T overflows: NaN probabilities, a crash or <pad> written
    "scores of 1e30": (crafted.huge_scores, "holds scores beyond ±1,000,000, which no trained model makes"),
    "a bias sized at run time": (crafted.bias_sized_at_run_time, "hidden size 32 has bias of shape (1, <="),
    "graph vocabulary above the tokenizer's": (lambda p: _tokenizer_words(p, -3), "tokenizer has"),
    "tokenizer vocabulary above the graph's": (lambda p: _tokenizer_words(p, 5000), "tokenizer has"),
    "nested metadata": (lambda p: crafted.set_meta(p, "nextword.metrics", nested(200)), "nested more than"),
    "metadata over 1 MiB": (
        lambda p: crafted.set_meta(p, "nextword.metrics", json.dumps({"x": "y" * 2**20})),
        "over the 1,048,576-byte limit",
    ),
    "NaN decoding default": (
        lambda p: crafted.set_meta(p, "nextword.generation", '{"temperature": NaN}'),
        "invalid decoding defaults",
    ),
    "1e400 cache theta": (
        lambda p: crafted.set_meta(p, "nextword.cache", '{"theta": 1e400, "mix": 0.1, "window": 8}'),
        "invalid cache settings",
    ),
    # finite, but theta * similarity, or a + b * L_t, overflows: NaN scores, <pad> written, perplexity "inf"
    "a cache theta of 1.7e308": (
        lambda p: crafted.set_meta(p, "nextword.cache", '{"theta": 1.7e308, "mix": 0.1, "window": 8}'),
        "cache theta must be at most 1,000,000, got 1.7e+308",
    ),
    "a cache gate of 1e308": (
        lambda p: crafted.set_meta(p, "nextword.cache", '{"theta": 1, "gate": [0, 1e308], "window": 8}'),
        "cache gate must be two numbers [a, b] within ±1,000,000, got 1e+308",
    ),
    "a cache window of 10 million": (
        lambda p: crafted.set_meta(p, "nextword.cache", '{"theta": 1, "mix": 0.1, "window": 10000000}'),
        "cache window must be in 1..4096",
    ),
    "beams past the cap": (
        lambda p: crafted.set_meta(p, "nextword.generation", '{"num_beams": 100000}'),
        "num_beams",
    ),
    "max_words of a billion": (
        lambda p: crafted.set_meta(p, "nextword.generation", '{"max_words": 1000000000}'),
        "max_words",
    ),
    # the names of from_options' own parameters were taken, not refused as the options they are not
    "decoding defaults naming origin and config": (
        lambda p: crafted.set_meta(p, "nextword.generation", '{"origin": "x", "config": null, "top_k": 4}'),
        "unknown generation option(s) ['config', 'origin']",
    ),
}


@pytest.fixture(scope="module")
def hostile_files(model_path, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stranger") / "a" / "b"
    folder.mkdir(parents=True)
    return {
        name: written(folder, re.sub(r"\W+", "_", name), change(crafted.proto(model_path)))
        for name, (change, _) in HOSTILE.items()
    }


@pytest.mark.parametrize("name", HOSTILE)
def test_a_strangers_file_is_refused_by_every_entry(name, hostile_files, capsys, monkeypatch):
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from nextword.serve import ServeConfig, create_app

    path, expected = hostile_files[name], HOSTILE[name][1]
    monkeypatch.chdir(path.parent)  # a relative external path would resolve from here, if anything did
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ModelFileError, match=re.escape(expected)):
        create_app(ServeConfig(model=str(path)))
    for argv in (["info", path], ["generate", path, "the"], ["score", path, "the network"]):
        assert main([str(a) for a in argv]) == 2
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert not out and len(lines) == 1 and lines[0].startswith(f"nextword {argv[0]}: error: {path}")
        assert expected in lines[0]


# --------------------------------------------------------------------------- the server


def test_a_files_default_n_counts_against_the_servers_row_cap(model_path):
    """A file whose decoding defaults ask for 200 sequences: a request that left n out got 200 (the
    cap check took a missing n as 1), past `--max-rows` (32); now it is refused, saying why."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from fastapi.testclient import TestClient

    from nextword.serve import ServeConfig, create_app

    proto = crafted.proto(model_path)
    crafted.set_meta(proto, "nextword.generation", json.dumps({"num_return_sequences": 200, "max_words": 3}))
    with TestClient(create_app(ServeConfig(), load(proto.SerializeToString()))) as client:
        answer = client.post("/v1/completions", json={"prompt": "the"})
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == (
            "1 prompt(s) x n=200 (this model file's decoding default: send n) = 200 sequences; this server "
            "takes at most 32 per request (nextword serve --max-rows)"
        )
        answer = client.post("/v1/completions", json={"prompt": "the", "n": 2})
        assert answer.status_code == 200 and len(answer.json()["choices"]) == 2


# --------------------------------------------------------------------------- the server's page


def test_page_scripts_never_parse_text_as_html():
    """The page shows what a model file says (its name, figures, words) through textContent only."""
    sinks = re.compile(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|createContextualFragment")
    found = [
        f"{script.name}:{number}"
        for script in sorted(STATIC.glob("*.js"))
        for number, line in enumerate(script.read_text(encoding="utf-8").splitlines(), 1)
        if sinks.search(line)
    ]
    assert not found, f"HTML sinks in the page's scripts: {found}"


def test_page_model_line_shows_file_strings_as_text(model_path, tmp_path, browser):
    """A file whose figures are markup: before, the page called toFixed on the string and said "model
    unavailable" (and kept the sliders off the file's defaults); now the line shows what is a number
    and leaves out what is not, and the name shows as typed."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    from browser import start_server
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from nextword.serve import ServeConfig, create_app

    markup = "<img src=x onerror=\"document.title='owned'\">"
    proto = crafted.proto(model_path)
    crafted.set_meta(proto, "nextword.quality", json.dumps({"int8": {"perplexity": markup}}))
    crafted.set_meta(proto, "nextword.generation", json.dumps({"temperature": 0.7}))
    path = written(tmp_path, "<svg onload=alert(1)>", proto)
    server = start_server(create_app(ServeConfig(model=str(path))))
    try:
        browser.get(server.url + "/")
        line = browser.find_element(By.ID, "model-line")
        WebDriverWait(browser, 20).until(
            lambda _: "LSTM" in line.text or "unavailable" in line.text, "the model line never loaded"
        )
        assert line.text.startswith("<svg onload=alert(1)> · "), line.text
        assert "2 LSTM layers of 32, 32" in line.text and "perplexity" not in line.text, line.text
        assert not line.find_elements(By.CSS_SELECTOR, "img, svg")
        assert line.find_element(By.TAG_NAME, "strong").text == "<svg onload=alert(1)>"
        assert browser.find_element(By.ID, "temperature").get_attribute("value") == "0.7"
        assert browser.title != "owned"
    finally:
        server.stop()
