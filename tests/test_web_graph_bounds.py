"""nextword-web's graph bounds (web/src/graph-bounds.js) against the Python runtime's (graph_bounds.py).

A few kilobytes of ONNX can make onnxruntime allocate gigabytes while it builds a session: under Node
there is no tab memory cap, and nextword-web used to load an 80 kB file of 20 doubling ``Concat``s at
3.8 GB. Each file here goes through the Python runtime's checks and through nextword-web's
``checkModelFile`` (then ``load()`` where that refuses, or where the file is small enough to load): the
verdict, the message (the fix named in this package's option names) and, for the files that pass, the
bounds themselves must be Python's. A hostile file that the JavaScript checks pass is never loaded.
The tensor checks (web/src/tensor-check.js: data against dims, sparse tensors, finite scales...) are
compared the same way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from web_reference import WEB, camel, need_node

from nextword.runtime import LoadLimits, ModelFileError
from nextword.runtime.limits import DEFAULT_ALLOWED_OPS
from nextword.runtime.model_check import inspect_model_file

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to build the crafted files")
import crafted  # noqa: E402

BUNDLED = Path(__file__).resolve().parents[1] / "runtime" / "data" / "nextword-patents.onnx"

# What the Node side runs: each case through checkModelFile, then load() unless the checks passed a
# file that is not marked safe to load (a hostile file the bounds miss must not allocate gigabytes).
DRIVER = """
import { readFileSync } from 'node:fs';
const [src, cases] = [process.argv[2], JSON.parse(readFileSync(process.argv[3], 'utf8'))];
const { checkModelFile, load } = await import(`${src}/index.js`);
const { resolveLimits } = await import(`${src}/model-check.js`);
const out = {};
for (const c of cases) {
  const data = readFileSync(c.path);
  const result = { checked: null, loaded: null, bounds: null, loads: false };
  try {
    const meta = checkModelFile('<model bytes>', data, resolveLimits(c.limits));
    const b = meta.bounds;
    result.bounds = b && [b.largestTensorBytes, b.totalBytes, b.macsPerToken, b.nodes].map(String);
  } catch (error) {
    result.checked = `${error.constructor.name}: ${error.message}`;
  }
  if (result.checked !== null || c.load) {
    try {
      await (await load(data, { limits: c.limits })).release();
      result.loads = true;
    } catch (error) {
      result.loaded = `${error.constructor.name}: ${error.message}`;
    }
  }
  out[c.name] = result;
}
console.log(JSON.stringify(out));
"""


def in_javascript(message: str) -> str:
    """Python's message with the fix it suggests in nextword-web's words."""
    message = message.replace("LoadLimits(bound_graph=False)", "{ limits: { boundGraph: false } }")
    return re.sub(
        r"load\(\.\.\., limits=LoadLimits\((\w+)=\.\.\.\)\)",
        lambda m: f"load(..., {{ limits: {{ {camel(m.group(1))}: ... }} }})",
        message,
    )


def _softmax_first(proto: onnx.ModelProto) -> onnx.ModelProto:
    proto.graph.node[0].op_type = "Softmax"
    return proto


WITH_SOFTMAX = DEFAULT_ALLOWED_OPS | {("", "Softmax")}

# name -> (how to make it from the tiny model, Python limits, whether JavaScript may load it when its
# checks pass: only small files). The first three are the files measured loading at 1.9-3.8 GB in Node.
CASES = {
    "20 doubling Concats": (lambda p: crafted.doubling_concats(p, 20), {}, False),
    "34 doubling Concats": (lambda p: crafted.doubling_concats(p, 34), {}, False),
    "constant outer product of 20,000": (lambda p: crafted.constant_outer_product(p, 20_000), {}, False),
    "valid": (lambda p: p, {}, True),
    "12 doubling Concats (4 MiB)": (lambda p: crafted.doubling_concats(p, 12), {}, True),
    "constant outer product of 100": (lambda p: crafted.constant_outer_product(p, 100), {}, True),
    "broadcast product of 20,000": (lambda p: crafted.broadcast_product(p, 20_000), {}, False),
    "outer product over the positions": (crafted.positions_outer_product, {}, False),
    "hidden width 100,000": (lambda p: crafted.wide_lstm(p, 100_000), {}, False),
    "hidden width 100,000, state cap raised": (
        lambda p: crafted.wide_lstm(p, 100_000),
        {"max_state_width": 200_000},
        False,
    ),
    "20 doubling Concats, tensor cap raised": (
        lambda p: crafted.doubling_concats(p, 20),
        {"max_tensor_bytes": 2**31},
        False,
    ),
    "20 doubling Concats, bounds off": (
        lambda p: crafted.doubling_concats(p, 20),
        {"bound_graph": False},
        False,
    ),
    "logits wider than declared": (lambda p: crafted.hidden_logits_width(p, 20), {}, False),
    "Softmax allowed": (_softmax_first, {"allowed_ops": WITH_SOFTMAX}, False),
    "ten nodes at most": (lambda p: p, {"max_nodes": 10}, False),
    "a vocabulary of ten at most": (lambda p: p, {"max_vocab_size": 10}, False),
    "a thousand MACs a step at most": (lambda p: p, {"max_macs_per_token": 1000}, False),
    "a constant sequence_lens": (lambda p: crafted.sequence_lens(p, 1), {}, False),
    "an LSTM wider than its weights": (crafted.lstm_outgrows_its_weights, {}, False),
    "a bias sized at run time": (crafted.bias_sized_at_run_time, {}, False),
    # The tensor checks (model_check.py's _check_tensor, _check_sparse, _check_floats), in src/tensor-check.js
    "4 elements declared, 1 held": (lambda p: crafted.missing_data(p, [4]), {}, False),
    "2**40 elements declared, 1 held": (lambda p: crafted.missing_data(p, [1 << 40]), {}, False),
    "int64 bytes read as float": (lambda p: crafted.retyped(p, onnx.TensorProto.FLOAT), {}, False),
    "a negative dimension": (lambda p: crafted.missing_data(p, [2, -1]), {}, False),
    "element type 99": (lambda p: crafted.retyped(p, 99), {}, False),
    "a segmented tensor": (crafted.segmented, {}, False),
    "a sparse initializer": (crafted.sparse_initializer, {}, False),
    "a sparse Constant": (crafted.sparse_constant, {}, False),
    "a NaN scale in raw_data": (lambda p: crafted.dequantize(p, [*[1.0] * 99, float("nan")]), {}, False),
    "an infinite scale in float_data": (
        lambda p: crafted.dequantize(p, [float("inf")], raw=False),
        {},
        False,
    ),
    "a NaN in the LSTM's bias": (lambda p: crafted.lstm_bias(p, 0, float("nan")), {}, False),
    "an infinite last bias": (lambda p: crafted.lstm_bias(p, -1, float("-inf")), {}, False),
    "a NaN bias in float_data": (lambda p: crafted.lstm_bias(p, 5, float("nan"), raw=False), {}, False),
    "a finite scale": (lambda p: crafted.dequantize(p, [0.5]), {}, True),
}


def _js_limits(limits: dict) -> dict:
    return {camel(k): sorted(map(list, v)) if isinstance(v, frozenset) else v for k, v in limits.items()}


def _python(data: bytes, limits: dict) -> tuple[str | None, list[str] | None]:
    """Python's refusal (None when the file passes its checks) and the bounds it worked out."""
    try:
        checked = inspect_model_file(data, LoadLimits(**limits))
    except ModelFileError as exc:
        return f"ModelFileError: {exc}", None
    b = checked.bounds
    return None, b and [str(v) for v in (b.largest_tensor_bytes, b.total_bytes, b.macs_per_token, b.nodes)]


def _node(src: Path, cases: list[dict], folder: Path) -> dict:
    driver, listing = folder / "driver.mjs", folder / "cases.json"
    driver.write_text(DRIVER, encoding="utf-8")
    listing.write_text(json.dumps(cases), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_OPTIONS")}
    result = subprocess.run(
        ["node", str(driver), src.as_uri(), str(listing)],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def verdicts(model_path, tmp_path_factory) -> dict:
    """Each case: (Python's refusal and bounds, what nextword-web did)."""
    need_node()
    folder = tmp_path_factory.mktemp("graph-bounds")
    files = {name: spec[0](crafted.proto(model_path)).SerializeToString() for name, spec in CASES.items()}
    files["bundled"] = BUNDLED.read_bytes()
    limits = {name: spec[1] for name, spec in CASES.items()} | {"bundled": {}}
    safe = {name: spec[2] for name, spec in CASES.items()} | {"bundled": True}
    cases = []
    for name, data in files.items():
        path = folder / (re.sub(r"\W+", "_", name) + ".onnx")
        path.write_bytes(data)
        js_limits = _js_limits(limits[name])
        cases.append({"name": name, "path": str(path), "limits": js_limits, "load": safe[name]})
    js = _node(WEB / "src", cases, folder)
    return {name: (_python(data, limits[name]), js[name]) for name, data in files.items()}


@pytest.mark.parametrize(
    "name", ["20 doubling Concats", "34 doubling Concats", "constant outer product of 20,000"]
)
def test_memory_hungry_files_are_refused_before_a_session_as_in_python(name, verdicts):
    """Before, nextword-web's load() built a session for these (1.9-3.8 GB under Node)."""
    (python, _), js = verdicts[name]
    assert python is not None and "over the 67,108,864-byte limit" in python
    assert js["checked"] == in_javascript(python), js
    assert js["loaded"] == js["checked"] and not js["loads"]
    assert "load(..., { limits: { maxTensorBytes: ... } })" in js["checked"]


@pytest.mark.parametrize("name", [*CASES, "bundled"])
def test_same_verdict_message_and_bounds_as_python(name, verdicts):
    (python, bounds), js = verdicts[name]
    want = None if python is None else in_javascript(python)
    assert js["checked"] == want
    if python is None:
        assert js["bounds"] == bounds  # the same figures: largest tensor, all tensors, MACs, nodes
    else:
        assert js["loaded"] == want and not js["loads"]  # refused by load() too, in the same words


# The files the tensor checks refuse: before, nextword-web left them to onnxruntime-web.
_NAMES = list(CASES)
REFUSED_TENSORS = _NAMES[_NAMES.index("4 elements declared, 1 held") : _NAMES.index("a finite scale")]


@pytest.mark.parametrize("name", REFUSED_TENSORS)
def test_tensor_sparse_scale_and_weight_refusals_are_pythons(name, verdicts):
    """Before, nextword-web left these to onnxruntime-web: it loaded them, or refused in its own words."""
    (python, _), js = verdicts[name]
    assert python is not None and re.search(r"tensor|quantization scale|the weights", python)
    assert js["checked"] == js["loaded"] == in_javascript(python) and not js["loads"]


@pytest.mark.parametrize("name", ["valid", "bundled", "12 doubling Concats (4 MiB)", "a finite scale"])
def test_valid_and_small_files_still_load(name, verdicts):
    (python, bounds), js = verdicts[name]
    assert python is None and bounds is not None
    assert js["loads"] and js["loaded"] is None


def test_graph_limits_are_validated_as_the_other_limits(model_path, tmp_path):
    need_node()
    path = tmp_path / "valid.onnx"
    path.write_bytes(model_path.read_bytes())
    cases = [
        {"name": "bound_graph", "path": str(path), "limits": {"boundGraph": "no"}, "load": False},
        {"name": "max_tensor_bytes", "path": str(path), "limits": {"maxTensorBytes": 0}, "load": False},
        {"name": "max_nodes", "path": str(path), "limits": {"maxNodes": 2.5}, "load": False},
    ]
    js = _node(WEB / "src", cases, tmp_path)
    # the caller's limits, not the file: a NextwordError (Python: ValueError), never a ModelFileError
    assert js["bound_graph"]["checked"] == 'NextwordError: limits.boundGraph must be true or false, got "no"'
    assert js["max_tensor_bytes"]["checked"] == (
        "NextwordError: limits.maxTensorBytes must be a positive integer, got 0"
    )
    assert js["max_nodes"]["checked"] == "NextwordError: limits.maxNodes must be a positive integer, got 2.5"


def test_web_lifts_the_size_caps_python_lifts():
    """nextword-web's withoutSizeCaps() lifts the caps LoadLimits().without_size_caps() lifts (named in
    camelCase), at least as far, and no other limit."""
    need_node()
    from nextword.runtime.limits import SIZE_LIMITS

    script = (
        f"const m = await import({json.dumps((WEB / 'src' / 'index.js').as_uri())});"
        "console.log(JSON.stringify({caps: m.SIZE_CAPS, lifted: m.withoutSizeCaps()}));"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    web = json.loads(result.stdout)
    assert sorted(web["caps"]) == sorted(camel(name) for name in SIZE_LIMITS)
    python = LoadLimits().without_size_caps()
    for name in SIZE_LIMITS:
        assert web["lifted"][camel(name)] >= min(getattr(python, name), 2**53 - 1), name
