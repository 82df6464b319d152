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
