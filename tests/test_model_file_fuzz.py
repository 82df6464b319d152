"""Fuzzing the loader and the tokenizer: damaged input gives a documented exception, never anything else.

``load`` may only raise :class:`ModelFileError` (or succeed: a flipped bit inside a weight is still a
valid file); ``Tokenizer.from_json`` may only raise ``ValueError``. A crash, a hang (the per-example
deadline) or any other exception type fails the test.

CI runs a bounded, derandomized number of examples (the whole file in well under a minute on two cores,
the model fixture included). For a long, randomized run set ``NEXTWORD_FUZZ_EXAMPLES``, the number of
examples per test::

    NEXTWORD_FUZZ_EXAMPLES=20000 pytest tests/test_model_file_fuzz.py -q

Run a long fuzz in a shell of its own: an onnxruntime crash would take the interpreter with it.
"""

from __future__ import annotations

import json
import os
import string
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from nextword.runtime import ModelFileError, Tokenizer, load

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis missing: pip install hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LONG_EXAMPLES = int(os.environ.get("NEXTWORD_FUZZ_EXAMPLES", "0") or 0)

settings.register_profile(
    "nextword-fuzz-ci",
    derandomize=True,  # the same examples on every run: CI never flakes on a lucky draw
    database=None,  # write nothing into the working tree
    deadline=timedelta(seconds=5),  # one example taking this long counts as a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "nextword-fuzz-long",
    derandomize=False,
    database=None,
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,  # a failure prints the @reproduce_failure line to replay it
)
PROFILE = settings.get_profile("nextword-fuzz-long" if LONG_EXAMPLES else "nextword-fuzz-ci")


def fuzz(ci_examples: int) -> settings:
    """Settings for one fuzz test: ``ci_examples`` in CI, ``NEXTWORD_FUZZ_EXAMPLES`` when set."""
    return settings(PROFILE, max_examples=LONG_EXAMPLES or ci_examples)


def load_or_refuse(data: bytes) -> None:
    """Load ``data``; a ModelFileError is a fine outcome, any other exception fails the test."""
    try:
        load(data)
    except ModelFileError as exc:
        message = str(exc)
        assert message, "a refusal must say why"
        # onnxruntime's own refusals are wrapped by load(); everything else is nextword's checks
        event("refused by onnxruntime" if "ONNXRuntimeError" in message else "refused by nextword")
    else:
        event("loaded")


# --------------------------------------------------------------------------- the valid file


@pytest.fixture(scope="module")
def valid(model_path: Path) -> bytes:
    return model_path.read_bytes()


@pytest.fixture(scope="module")
def structure(model_path: Path, valid: bytes) -> list[int]:
    """Offsets outside the weights' raw bytes: tags, lengths, names, attributes and metadata text.

    Flipping bits there exercises the parser and the checks; most of a file is weights, where a flip
    only changes a number.
    """
    onnx = pytest.importorskip("onnx")
    weights = []
    for tensor in onnx.load(str(model_path)).graph.initializer:
        if len(tensor.raw_data) >= 64:
            start = valid.find(tensor.raw_data)
            if start >= 0:
                weights.append(range(start, start + len(tensor.raw_data)))
    return [i for i in range(len(valid)) if not any(i in span for span in weights)]


@pytest.fixture(scope="module")
def without_metadata(model_path: Path) -> tuple[bytes, dict[str, str]]:
    """The model with its metadata removed, and that metadata: fuzzed entries are appended as bytes."""
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(model_path))
    meta = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    return proto.SerializeToString(), meta


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _metadata(entries: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_field(14, _field(1, key) + _field(2, value)) for key, value in entries)


def position(data_length: int, structure: list[int]) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(structure), st.integers(0, data_length - 1))


# --------------------------------------------------------------------------- the loader


@fuzz(ci_examples=100)
@given(data=st.data())
def test_truncated_files(valid, data):
    cut = data.draw(st.integers(0, len(valid) - 1), label="keep")
    load_or_refuse(valid[:cut])  # a prefix that ends after enough metadata is still a usable model


@fuzz(ci_examples=400)
@given(data=st.data())
def test_bit_flips(valid, structure, data):
    flips = data.draw(
        st.lists(st.tuples(position(len(valid), structure), st.integers(0, 7)), min_size=1, max_size=4),
        label="flips",
    )
    damaged = bytearray(valid)
    for offset, bit in flips:
        damaged[offset] ^= 1 << bit
    load_or_refuse(bytes(damaged))


@fuzz(ci_examples=200)
@given(data=st.data())
def test_inserted_and_deleted_bytes(valid, structure, data):
    at = data.draw(position(len(valid), structure), label="at")
    if data.draw(st.booleans(), label="insert"):
        damaged = valid[:at] + data.draw(st.binary(min_size=1, max_size=16), label="bytes") + valid[at:]
    else:
        damaged = valid[:at] + valid[at + data.draw(st.integers(1, 16), label="count") :]
    load_or_refuse(damaged)


@fuzz(ci_examples=500)
@given(noise=st.binary(max_size=4096))
def test_random_bytes(noise):
    load_or_refuse(noise)


@fuzz(ci_examples=200)
@given(noise=st.binary(max_size=512))
def test_random_bytes_after_a_valid_prefix(valid, noise):
    """Appended fields are still parsed (protobuf merges them): the walker must hold up."""
    load_or_refuse(valid + noise)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@fuzz(ci_examples=200)
@given(data=st.data())
def test_metadata_edits(without_metadata, data):
    base, meta = without_metadata
    keys = sorted(meta)
    entries = [(k.encode(), v.encode()) for k, v in meta.items()]
    edits = data.draw(st.integers(1, 3), label="edits")
    for _ in range(edits):
        kind = data.draw(st.sampled_from(["drop", "bytes", "json", "text", "duplicate", "add"]), label="kind")
        i = data.draw(st.integers(0, len(entries) - 1), label="entry") if entries else 0
        if kind == "drop" and entries:
            entries.pop(i)
        elif kind == "bytes" and entries:
            entries[i] = (entries[i][0], data.draw(st.binary(max_size=64), label="value"))
        elif kind == "json" and entries:
            value = json.dumps(data.draw(JSONISH, label="json"))
            entries[i] = (entries[i][0], value.encode())
        elif kind == "text" and entries:
            value = data.draw(st.text(max_size=64), label="text")
            entries[i] = (entries[i][0], value.encode("utf-8", errors="surrogatepass"))
        elif kind == "duplicate" and entries:
            entries.append(entries[i])
        else:
            key = data.draw(st.sampled_from(keys) | st.text(max_size=16), label="key")
            entries.append((key.encode("utf-8", errors="surrogatepass"), data.draw(st.binary(max_size=32))))
    load_or_refuse(base + _metadata(entries))


@fuzz(ci_examples=150)
@given(data=st.data())
def test_tokenizer_edits_inside_a_model(without_metadata, data):
    base, meta = without_metadata
    tokenizer = json.loads(meta["nextword.tokenizer"])
    field = data.draw(st.sampled_from(["format", "version", "config", "tokens", "token"]), label="field")
    if field == "token":
        i = data.draw(st.integers(0, len(tokenizer["tokens"]) - 1), label="id")
        tokenizer["tokens"][i] = data.draw(JSONISH, label="token")
    else:
        tokenizer[field] = data.draw(JSONISH, label="value")
    meta = {**meta, "nextword.tokenizer": json.dumps(tokenizer)}
    load_or_refuse(base + _metadata([(k.encode(), v.encode()) for k, v in meta.items()]))


# --------------------------------------------------------------------------- the tokenizer alone


def from_json_or_refuse(text: str | bytes) -> None:
    try:
        tokenizer = Tokenizer.from_json(text)
    except ValueError as exc:
        assert str(exc), "a refusal must say why"
    else:  # what was accepted must work
        tokenizer.decode(range(len(tokenizer)))
        tokenizer.encode("a neural network (12) computes 3.5 things.")


VALID_TOKENIZER = {
    "format": "nextword.tokenizer",
    "version": 1,
    "config": {"lowercase": True, "drop_figure_refs": True, "min_count": 2, "max_vocab": 20000},
    "tokens": ["<pad>", "<unk>", "<eod>", "the", ",", "a", "network"],
}


@fuzz(ci_examples=500)
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200), JSONISH.map(json.dumps)))
def test_tokenizer_arbitrary_input(text):
    from_json_or_refuse(text)


@fuzz(ci_examples=500)
@given(data=st.data())
def test_tokenizer_near_valid_input(data):
    tokenizer = json.loads(json.dumps(VALID_TOKENIZER))
    edit = data.draw(st.sampled_from(["config", "tokens", "token", "extra_token", "format"]), label="edit")
    if edit == "config":
        key = data.draw(st.sampled_from([*VALID_TOKENIZER["config"], "other"]), label="key")
        tokenizer["config"][key] = data.draw(JSONISH, label="value")
    elif edit == "tokens":
        tokenizer["tokens"] = data.draw(st.lists(JSONISH, max_size=8), label="tokens")
    elif edit == "token":
        i = data.draw(st.integers(0, len(tokenizer["tokens"]) - 1), label="id")
        tokenizer["tokens"][i] = data.draw(st.text(max_size=8) | JSONISH, label="token")
    elif edit == "extra_token":
        alphabet = st.characters() | st.sampled_from(string.whitespace + "\x1b\x00\ud800")
        tokenizer["tokens"].append(data.draw(st.text(alphabet, min_size=1, max_size=8), label="token"))
    else:
        tokenizer[data.draw(st.sampled_from(["format", "version"]), label="key")] = data.draw(JSONISH)
    text = json.dumps(tokenizer, ensure_ascii=data.draw(st.booleans(), label="ascii"))
    from_json_or_refuse(text)


# --------------------------------------------------------------------------- graph mutations

onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to mutate graphs")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from nextword.runtime import LoadLimits  # noqa: E402
from nextword.runtime.limits import DEFAULT_ALLOWED_OPS  # noqa: E402

OPS = sorted(op for domain, op in DEFAULT_ALLOWED_OPS if not domain)
INTS = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([-(2**63), -(2**31), 2**31 - 1, 2**31, 2**40, 2**62, 2**63 - 1, 1_000_000]),
)
# Weights zeroed, made tiny or huge (a huge one can push a word's log-probability below -709 per word:
# the perplexity is then inf, never an OverflowError), or not finite at all.
FLOATS = st.sampled_from([0.0, 1e-45, -1e-45, -1.0, 1e4, -1e30, float("nan"), float("inf"), float("-inf")])
DTYPES = st.sampled_from(
    [
        TensorProto.FLOAT,
        TensorProto.INT64,
        TensorProto.INT32,
        TensorProto.INT8,
        TensorProto.UINT8,
        TensorProto.BOOL,
        TensorProto.DOUBLE,
        TensorProto.FLOAT16,
        TensorProto.STRING,
        0,
        99,
    ]
)


class _Files(dict):
    """Model bytes by precision, with a short repr for hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<model files {sorted(self)}>"


@pytest.fixture(scope="module")
def protos(model_path: Path, tmp_path_factory) -> dict[str, bytes]:
    """The fp32 model and its int8 twin, serialized: each example parses a fresh copy."""
    quantization = pytest.importorskip("onnxruntime.quantization")
    int8 = tmp_path_factory.mktemp("fuzz") / "q8.onnx"
    quantization.quantize_dynamic(str(model_path), str(int8), weight_type=quantization.QuantType.QInt8)
    return _Files(fp32=model_path.read_bytes(), int8=int8.read_bytes())


def _names(graph) -> list[str]:
    return [
        *(i.name for i in graph.input),
        *(t.name for t in graph.initializer),
        *(o for n in graph.node for o in n.output if o),
    ]


def _array(tensor) -> np.ndarray | None:
    """The tensor's values, or None when an earlier mutation left dims and data disagreeing."""
    try:
        return numpy_helper.to_array(tensor).copy()
    except (ValueError, TypeError):
        return None


def _pick(data, items: list, label: str):
    """One of ``items``, drawn by index so that failure reports stay short."""
    return items[data.draw(st.integers(0, len(items) - 1), label=label)]


def _mutate(graph, data) -> str:
    """Apply one drawn mutation to ``graph`` in place; return its kind (for the statistics)."""
    kind = data.draw(st.sampled_from(MUTATIONS), label="kind")
    nodes, inits = graph.node, graph.initializer
    if kind == "dims":
        tensor = _pick(data, list(inits), "initializer")
        dims = list(tensor.dims) or [1]
        dims[data.draw(st.integers(0, len(dims) - 1), label="axis")] = max(0, data.draw(INTS, label="dim"))
        del tensor.dims[:]
        tensor.dims.extend(dims)
    elif kind == "ints":
        tensor = _pick(
            data, [t for t in inits if t.data_type in (TensorProto.INT64, TensorProto.INT32)], "init"
        )
        array = _array(tensor)
        if array is not None and array.size:
            value = data.draw(INTS, label="value")
            array.flat[data.draw(st.integers(0, array.size - 1), label="at")] = np.clip(
                value, np.iinfo(array.dtype).min, np.iinfo(array.dtype).max
            )
            tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    elif kind == "floats":
        tensor = _pick(data, [t for t in inits if t.data_type == TensorProto.FLOAT], "initializer")
        array = _array(tensor)
        if array is not None and array.size:
            array.flat[data.draw(st.integers(0, array.size - 1), label="at")] = data.draw(
                FLOATS, label="value"
            )
            tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float32), tensor.name))
    elif kind == "attribute":
        node = _pick(data, [n for n in nodes if n.attribute], "node")
        attribute = _pick(data, list(node.attribute), "attribute")
        if attribute.type == onnx.AttributeProto.INT:
            attribute.i = data.draw(INTS, label="i")
        elif attribute.type == onnx.AttributeProto.INTS:
            del attribute.ints[:]
            attribute.ints.extend(data.draw(st.lists(INTS, max_size=5), label="ints"))
        elif attribute.type == onnx.AttributeProto.STRING:
            attribute.s = data.draw(st.sampled_from([b"bidirectional", b"reverse", b"", b"x"]), label="s")
        elif attribute.type == onnx.AttributeProto.STRINGS:
            del attribute.strings[:]
            names = st.sampled_from([b"Sigmoid", b"Relu", b"Tanh", b"?"])
            attribute.strings.extend(data.draw(st.lists(names, max_size=4), label="strings"))
    elif kind == "rewire":
        node = _pick(data, [n for n in nodes if n.input], "node")
        node.input[data.draw(st.integers(0, len(node.input) - 1), label="input")] = _pick(
            data, ["", *_names(graph)], "name"
        )
    elif kind == "op_type":
        node = _pick(data, list(nodes), "node")
        node.op_type, node.domain = data.draw(st.sampled_from(OPS), label="op"), ""
    elif kind == "add_node":
        names = _names(graph)
        inputs = [_pick(data, names, "input") for _ in range(data.draw(st.integers(1, 3), label="inputs"))]
        new = helper.make_node(data.draw(st.sampled_from(OPS), label="op"), inputs, [f"fuzz_{len(nodes)}"])
        nodes.insert(data.draw(st.integers(0, len(nodes)), label="at"), new)
        if data.draw(st.booleans(), label="feeds_a_node"):  # make the new value matter
            user = _pick(data, [n for n in nodes if n.input and n is not new], "user")
            user.input[data.draw(st.integers(0, len(user.input) - 1), label="slot")] = new.output[0]
    elif kind == "drop_node":
        del nodes[data.draw(st.integers(0, len(nodes) - 1), label="node")]
    elif kind == "declared":
        value = _pick(data, [*graph.input, *graph.output], "value")
        dims = value.type.tensor_type.shape.dim
        if dims:
            dim = dims[data.draw(st.integers(0, len(dims) - 1), label="axis")]
            if data.draw(st.booleans(), label="symbolic"):
                dim.dim_param = "fuzz"
            else:
                dim.dim_value = max(0, data.draw(INTS, label="dim"))
    elif kind == "dtype":
        value = _pick(data, [*graph.input, *graph.output, *inits], "value")
        dtype = data.draw(DTYPES, label="dtype")
        if isinstance(value, onnx.TensorProto):
            value.data_type = dtype
        else:
            value.type.tensor_type.elem_type = dtype
    else:  # resize: an initializer replaced by a consistent one of another shape
        tensor = _pick(data, list(inits), "initializer")
        shape = data.draw(st.lists(st.integers(0, 70), max_size=4), label="shape")
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type) if tensor.data_type else np.float32
        tensor.CopyFrom(numpy_helper.from_array(np.ones(shape, dtype), tensor.name))
    return kind


MUTATIONS = [
    "dims",
    "ints",
    "floats",
    "attribute",
    "rewire",
    "op_type",
    "add_node",
    "drop_node",
    "declared",
    "dtype",
    "resize",
]


def _use(model) -> None:
    """A loaded mutant must give results of the right shapes, or refuse with ModelFileError."""
    try:
        one = model.generate("the network", max_words=4, seed=0)
        two = model.generate(["a neural network", ""], max_words=4, seed=1)
        streamed = "".join(model.stream("the system", max_words=3, seed=2))
        score = model.score("the network receives the weights")
        words = model.next_words("the network", k=3)
    except ModelFileError as exc:
        assert str(exc)
        event("refused during a call")
        return
    assert isinstance(one, str) and isinstance(streamed, str)
    assert isinstance(two, list) and len(two) == 2 and all(isinstance(t, str) for t in two)
    assert len(score.words) == 5 and isinstance(score.total_logprob, float)
    assert len(words) <= 3 and all(isinstance(w, str) and 0 <= p <= 1 for w, p in words)
    for text in (one, *two, streamed):
        assert not any(token in text for token in ("<pad>", "<eod>")), text
    event("loaded and used")


@fuzz(ci_examples=600)
@given(data=st.data())
def test_graph_mutations(protos, data):
    """Mutated graphs (dims, constants, attributes, wiring, ops, declared types and shapes): each file
    loads and works, or is refused with ModelFileError; never another exception, a crash or a hang."""
    precision = data.draw(st.sampled_from(sorted(protos)), label="precision")
    proto = onnx.load_from_string(protos[precision])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        event(_mutate(proto.graph, data))
    try:
        model = load(proto.SerializeToString())
    except ModelFileError as exc:
        message = str(exc)
        assert message and "internal error" not in message, message
        event("refused at load")
        return
    _use(model)


@fuzz(ci_examples=150)
@given(data=st.data())
def test_graph_mutations_without_the_static_bounds(protos, data):
    """The same with LoadLimits(bound_graph=False): the probe and the wrapped session calls alone."""
    proto = onnx.load_from_string(protos["fp32"])
    kind = _mutate(proto.graph, data)
    if kind in ("dims", "resize", "add_node"):  # these can ask for any memory once unbounded
        return
    try:
        model = load(proto.SerializeToString(), limits=LoadLimits(bound_graph=False))
    except ModelFileError:
        event("refused at load")
        return
    _use(model)
