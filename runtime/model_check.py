"""Checks a model file from anywhere before onnxruntime sees a byte of it.

A nextword model may come from elsewhere: a download, an upload, a colleague. :func:`check_model_file`
reads the file (size checked with ``stat`` first), walks its ONNX protobuf with a small, strictly
bounds-checked wire-format reader, and refuses, with a :class:`ModelFileError` that names the file, the
problem and the fix:

- files over the size cap, empty, truncated or corrupted files, random bytes;
- ONNX files that are not nextword models, or use a nextword format version this runtime does not read;
- metadata that is not valid UTF-8, or a metadata key given twice, or a tokenizer over its size cap;
- IR or default-domain opset versions outside the tested range;
- any tensor whose data lives outside the file (``data_location = EXTERNAL`` or any ``external_data``
  entry), wherever it sits: initializers, sparse initializers, node attributes, subgraphs;
- operators outside an allowlist (what our exporter and onnxruntime's ``quantize_dynamic`` emit);
- model-local functions and training information, which nextword files never carry.

The module imports neither ``onnx`` nor ``google.protobuf``: the runtime depends on numpy and
onnxruntime only, and a hand reader of the few fields we need is small enough to audit. See
``docs/security.md`` for what is left to onnxruntime.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelFileError
from .model_file import JSON_KEYS, KEY_FORMAT_VERSION, KEY_TOKENIZER, SUPPORTED_FORMAT_VERSIONS

__all__ = ["DEFAULT_ALLOWED_OPS", "LoadLimits", "check_model_file"]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024

# (domain, op_type) pairs a nextword graph may use; "" is the default ONNX domain ("ai.onnx").
# Found by exporting 1-3 layer models (embedding width equal to and different from the LSTM width) at
# opsets 13-18 with tf2onnx, then quantizing each with onnxruntime.quantization.quantize_dynamic
# (QInt8/QUInt8, per-channel, reduce_range, with and without quant_pre_process). The step graph has no
# dropout node (inference graph), so dropout does not change the set. Format 2 added ``logits_from``,
# whose slice of the LSTM output tf2onnx writes as Slice, with And/Where for negative starts.
EXPORTED_OPS = frozenset(
    ("", op)
    for op in (
        "Add",
        "And",
        "Cast",
        "Concat",
        "Gather",
        "LSTM",
        "Less",
        "MatMul",
        "Mul",
        "Not",
        "Reshape",
        "Shape",
        "Slice",
        "Squeeze",
        "Transpose",
        "Unsqueeze",
        "Where",
    )
)
# Emitted by tf2onnx for other graphs of this shape (output renames, unfolded constants): data-free.
PLAUSIBLE_OPS = frozenset({("", "Identity"), ("", "Constant")})
# What quantize_dynamic turns MatMul, Gather and LSTM into.
QUANTIZED_OPS = frozenset(
    {
        ("", "DequantizeLinear"),
        ("", "DynamicQuantizeLinear"),
        ("", "MatMulInteger"),
        ("com.microsoft", "DynamicQuantizeLSTM"),
    }
)
DEFAULT_ALLOWED_OPS = EXPORTED_OPS | PLAUSIBLE_OPS | QUANTIZED_OPS

# Protobuf walking bounds. A nextword file has a few hundred fields and no subgraph at all.
MAX_DEPTH = 32  # nested messages, counting from ModelProto (protobuf's own default limit is 100)
MAX_FIELDS = 2_000_000  # fields visited in messages we descend into; bounds time on hostile files

_DEFAULT_DOMAINS = ("", "ai.onnx")
_FORMAT_VERSION = re.compile(r"[0-9]{1,9}")

# Wire types (https://protobuf.dev/programming-guides/encoding/).
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5

# Field numbers, from onnx.proto (checked against onnx 1.23's copy).
_MODEL_IR_VERSION, _MODEL_GRAPH, _MODEL_OPSET_IMPORT = 1, 7, 8
_MODEL_METADATA, _MODEL_TRAINING_INFO, _MODEL_FUNCTIONS = 14, 20, 25
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 4, 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2

# The wire type each field we read must have; a mismatch is a corrupt file, not an unknown field.
_EXPECTED_WIRE = {
    "model": {
        _MODEL_IR_VERSION: _VARINT,
        _MODEL_GRAPH: _LEN,
        _MODEL_OPSET_IMPORT: _LEN,
        _MODEL_METADATA: _LEN,
        _MODEL_TRAINING_INFO: _LEN,
        _MODEL_FUNCTIONS: _LEN,
    },
    "opset": {_OPSET_DOMAIN: _LEN, _OPSET_VERSION: _VARINT},
    "entry": {_ENTRY_KEY: _LEN, _ENTRY_VALUE: _LEN},
    "graph": {_GRAPH_NODE: _LEN, _GRAPH_INITIALIZER: _LEN, _GRAPH_SPARSE_INITIALIZER: _LEN},
    "node": {_NODE_OP_TYPE: _LEN, _NODE_ATTRIBUTE: _LEN, _NODE_DOMAIN: _LEN},
    "attribute": {
        _ATTR_T: _LEN,
        _ATTR_G: _LEN,
        _ATTR_TENSORS: _LEN,
        _ATTR_GRAPHS: _LEN,
        _ATTR_SPARSE: _LEN,
        _ATTR_SPARSES: _LEN,
    },
    "tensor": {_TENSOR_NAME: _LEN, _TENSOR_EXTERNAL_DATA: _LEN, _TENSOR_DATA_LOCATION: _VARINT},
    "sparse": {_SPARSE_VALUES: _LEN, _SPARSE_INDICES: _LEN},
}


@dataclass(frozen=True)
class LoadLimits:
    """What :func:`check_model_file` accepts. The defaults fit every model nextword exports.

    Widen a limit only for files you trust, e.g. ``load(path, limits=LoadLimits(max_file_bytes=256 * MiB))``
    for a large vocabulary.
    """

    max_file_bytes: int = field(default=64 * MiB, metadata={"help": "largest model file read, in bytes"})
    max_tokenizer_bytes: int = field(
        default=4 * MiB, metadata={"help": "largest embedded tokenizer JSON, in UTF-8 bytes"}
    )
    ir_versions: tuple[int, int] = field(
        default=(7, 8), metadata={"help": "ONNX IR versions accepted, inclusive (tf2onnx writes 7 or 8)"}
    )
    opset_versions: tuple[int, int] = field(
        default=(13, 18), metadata={"help": "default-domain opsets accepted, inclusive (tested range)"}
    )
    allowed_ops: frozenset[tuple[str, str]] = field(
        default=DEFAULT_ALLOWED_OPS, metadata={"help": "(domain, op_type) pairs a graph may use"}
    )

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_tokenizer_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LoadLimits.{name} must be a positive integer, got {value!r}")
        for name in ("ir_versions", "opset_versions"):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple)
                or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                or not 1 <= value[0] <= value[1]
            ):
                raise ValueError(
                    f"LoadLimits.{name} must be an inclusive range (low, high) with 1 <= low <= high, "
                    f"got {value!r}"
                )
        if not isinstance(self.allowed_ops, frozenset) or not all(
            isinstance(op, tuple) and len(op) == 2 and all(isinstance(s, str) for s in op)
            for op in self.allowed_ops
        ):
            raise ValueError(
                "LoadLimits.allowed_ops must be a frozenset of (domain, op_type) string pairs, "
                f"got {self.allowed_ops!r:.200}"
            )


def check_model_file(source: str | os.PathLike[str] | bytes, limits: LoadLimits | None = None) -> bytes:
    """Read and check a nextword model file; return the bytes to hand to onnxruntime.

    ``source`` is a path or the file's bytes. Nothing here runs onnxruntime, and nothing in the file is
    executed or followed: a file that needs data from elsewhere is refused. Raises
    :class:`ModelFileError` naming the file, the problem and the fix (see the module docstring for the
    list); ``limits`` sets the caps and ranges.
    """
    limits = limits or LoadLimits()
    if not isinstance(limits, LoadLimits):
        raise TypeError(f"limits must be a LoadLimits, got {type(limits).__name__}")
    name, data = _read(source, limits)
    if not data:
        raise ModelFileError(f"{name} is empty (0 bytes); re-download or re-export the model")
    try:
        summary = _ModelSummary.parse(data)
    except _WireError as exc:
        raise ModelFileError(_corrupt(name, exc)) from None
    summary.check(name, data, limits)
    logger.debug("%s passed the model-file checks (%d bytes)", name, len(data))
    return data


def _read(source: str | os.PathLike[str] | bytes, limits: LoadLimits) -> tuple[str, bytes]:
    """(name for messages, the file's bytes), with the size cap enforced before reading."""
    cap = limits.max_file_bytes
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "<model bytes>"
        data = bytes(source)
        if len(data) > cap:
            raise ModelFileError(_too_big(name, len(data), cap))
        return name, data
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"model must be a path or bytes, got {type(source).__name__}")
    path = Path(source)
    name = str(path)
    try:
        info = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL character in the path
        raise ModelFileError(f"model file {name} does not exist (or cannot be read)") from None
    _check_stat(name, info, cap)
    # Non-blocking, so a file swapped for a FIFO after stat() cannot hang the open; fstat() re-checks.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(path, flags), "rb") as f:
            _check_stat(name, os.fstat(f.fileno()), cap)
            data = f.read(cap + 1)  # the file may have grown since fstat()
    except OSError as exc:
        raise ModelFileError(f"model file {name} cannot be read: {exc.strerror}") from None
    if len(data) > cap:
        raise ModelFileError(_too_big(name, len(data), cap))
    return name, data


def _check_stat(name: str, info: os.stat_result, cap: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"model file {name} is not a regular file; pass the path of a .onnx file")
    if info.st_size > cap:
        raise ModelFileError(_too_big(name, info.st_size, cap))


def _corrupt(name: str, exc: Exception) -> str:
    return (
        f"{name} could not be loaded as an ONNX model: it is not a valid ONNX protobuf ({exc}); the file "
        "is truncated or corrupted, or not a model at all: re-download or re-export it"
    )


def _too_big(name: str, size: int, cap: int) -> str:
    return (
        f"{name} is {size:,} bytes, over the {cap:,}-byte limit for model files; if you trust the file, "
        f"raise it with load(..., limits=LoadLimits(max_file_bytes=...))"
    )


# --------------------------------------------------------------------------- protobuf wire format


class _WireError(Exception):
    """The bytes do not follow the protobuf wire format (or exceed our bounds)."""


class _Budget:
    """Counts fields visited across the whole file, so a hostile file cannot make the walk slow."""

    def __init__(self) -> None:
        self.fields = 0

    def spend(self) -> None:
        self.fields += 1
        if self.fields > MAX_FIELDS:
            raise _WireError(f"more than {MAX_FIELDS:,} protobuf fields")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value as unsigned 64-bit, next position)."""
    value = shift = 0
    for i in range(10):
        if pos + i >= end:
            raise _WireError(f"varint runs past the end of its message at byte {pos}")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, pos + i + 1
        shift += 7
    raise _WireError(f"varint longer than 10 bytes at byte {pos}")


def _fields(
    data: bytes, start: int, end: int, budget: _Budget, kind: str
) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, a, b) for each field of the message in ``data[start:end]``.

    For varints ``a`` is the value; for length-delimited fields ``data[a:b]`` is the payload; fixed-width
    fields are skipped with ``a = b = 0``. Groups (wire types 3 and 4), unknown wire types, field number
    0 and lengths running past ``end`` are errors, and so is a known field with the wrong wire type.
    """
    expected = _EXPECTED_WIRE[kind]
    pos = start
    while pos < end:
        budget.spend()
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 0x1FFF_FFFF:
            raise _WireError(f"invalid field number {number} at byte {pos}")
        if wire == _VARINT:
            value, pos = _varint(data, pos, end)
            item = (number, wire, value, 0)
        elif wire == _LEN:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise _WireError(f"field {number} of {length:,} bytes runs past the end at byte {pos}")
            item = (number, wire, pos, pos + length)
            pos += length
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if size > end - pos:
                raise _WireError(f"fixed-width field {number} runs past the end at byte {pos}")
            item = (number, wire, 0, 0)
            pos += size
        elif wire in (_SGROUP, _EGROUP):
            raise _WireError(f"field {number} uses protobuf groups (wire type {wire}), which ONNX never does")
        else:
            raise _WireError(f"field {number} has invalid wire type {wire}")
        if number in expected and expected[number] != wire:
            raise _WireError(f"{kind} field {number} has wire type {wire}, expected {expected[number]}")
        yield item


def _text(data: bytes, a: int, b: int) -> str:
    """A string field for messages and comparisons (invalid UTF-8 shows as U+FFFD)."""
    return data[a:b].decode("utf-8", errors="replace")


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass
class _ModelSummary:
    """The top-level ModelProto fields the checks need; sub-messages kept as (start, end) ranges."""

    ir_version: int = 0
    opsets: list[tuple[str, int]] = field(default_factory=list)
    metadata: list[tuple[bytes, bytes]] = field(default_factory=list)
    graphs: list[tuple[int, int]] = field(default_factory=list)
    functions: int = 0
    training_info: int = 0
    budget: _Budget = field(default_factory=_Budget)

    @classmethod
    def parse(cls, data: bytes) -> _ModelSummary:
        summary = cls()
        for number, _, a, b in _fields(data, 0, len(data), summary.budget, "model"):
            if number == _MODEL_IR_VERSION:
                summary.ir_version = a  # protobuf semantics: the last occurrence wins
            elif number == _MODEL_OPSET_IMPORT:
                domain, version = "", 0
                for n, _, x, y in _fields(data, a, b, summary.budget, "opset"):
                    if n == _OPSET_DOMAIN:
                        domain = _text(data, x, y)
                    elif n == _OPSET_VERSION:
                        version = x
                summary.opsets.append((domain, version))
            elif number == _MODEL_METADATA:
                key = value = b""
                for n, _, x, y in _fields(data, a, b, summary.budget, "entry"):
                    if n == _ENTRY_KEY:
                        key = data[x:y]
                    elif n == _ENTRY_VALUE:
                        value = data[x:y]
                summary.metadata.append((key, value))
            elif number == _MODEL_GRAPH:
                summary.graphs.append((a, b))  # repeated occurrences merge: each one is walked
            elif number == _MODEL_FUNCTIONS:
                summary.functions += 1
            elif number == _MODEL_TRAINING_INFO:
                summary.training_info += 1
        return summary

    def check(self, name: str, data: bytes, limits: LoadLimits) -> None:
        self._check_metadata(name, limits)
        self._check_versions(name, limits)
        if not self.graphs:
            raise ModelFileError(f"{name} has no graph; re-export the model with `nextword export`")
        if self.functions or self.training_info:
            what = "model-local functions" if self.functions else "training information"
            raise ModelFileError(
                f"{name} contains {what}, which nextword model files never carry; "
                "re-export the model with `nextword export`"
            )
        walker = _GraphWalker(name, data, limits.allowed_ops, self.budget)
        try:
            for start, end in self.graphs:
                walker.graph(start, end, depth=1)
        except _WireError as exc:
            raise ModelFileError(_corrupt(name, exc)) from None

    def _check_metadata(self, name: str, limits: LoadLimits) -> None:
        meta: dict[str, str] = {}
        for raw_key, raw_value in self.metadata:
            try:
                key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                raise ModelFileError(
                    f"{name}: a metadata key ({_short(_text(raw_key, 0, len(raw_key)))}) is not valid "
                    "UTF-8; the file is corrupted or was not written by nextword: re-export it"
                ) from None
            try:
                value = raw_value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ModelFileError(
                    f"{name}: metadata {_short(key)} is not valid UTF-8 (byte {exc.start}); the file is "
                    "corrupted or was not written by nextword: re-export it"
                ) from None
            if key in meta:
                raise ModelFileError(
                    f"{name}: metadata key {_short(key)} appears more than once, so readers could disagree "
                    "on its value; re-export the model with `nextword export`"
                )
            meta[key] = value
        if KEY_FORMAT_VERSION not in meta:
            raise ModelFileError(
                f"{name} is not a nextword model (no {KEY_FORMAT_VERSION!r} metadata); "
                "export models with `nextword export`"
            )
        version = meta[KEY_FORMAT_VERSION]
        if not _FORMAT_VERSION.fullmatch(version) or int(version) not in SUPPORTED_FORMAT_VERSIONS:
            shown = version if _FORMAT_VERSION.fullmatch(version) else _short(version)
            raise ModelFileError(
                f"{name} uses nextword model format {shown}; this nextword reads "
                f"{sorted(SUPPORTED_FORMAT_VERSIONS)}. Upgrade nextword or re-export the model with this "
                "version"
            )
        tokenizer = len(self._raw_value(KEY_TOKENIZER))
        if tokenizer > limits.max_tokenizer_bytes:
            raise ModelFileError(
                f"{name}: the embedded tokenizer is {tokenizer:,} bytes, over the "
                f"{limits.max_tokenizer_bytes:,}-byte limit; if you trust the file, raise it with "
                "load(..., limits=LoadLimits(max_tokenizer_bytes=...))"
            )
        for key in JSON_KEYS:  # json.loads can raise RecursionError, or ValueError for huge integers
            if key in meta:
                try:
                    json.loads(meta[key])
                except RecursionError:
                    raise ModelFileError(
                        f"{name}: metadata {key!r} is JSON nested too deeply to read; the file was not "
                        "written by nextword: re-export it"
                    ) from None
                except ValueError as exc:
                    raise ModelFileError(
                        f"{name}: metadata {key!r} is not valid JSON ({_short(str(exc))}); re-export the "
                        "model with `nextword export`"
                    ) from None

    def _raw_value(self, key: str) -> bytes:
        wanted = key.encode("utf-8")
        return next((value for k, value in self.metadata if k == wanted), b"")

    def _check_versions(self, name: str, limits: LoadLimits) -> None:
        low, high = limits.ir_versions
        if not low <= self.ir_version <= high:
            raise ModelFileError(
                f"{name} has ONNX IR version {self.ir_version}; this nextword accepts IR versions "
                f"{low}-{high} (what its exporter writes). Re-export the model with `nextword export`, "
                "or, if you trust the file, widen LoadLimits(ir_versions=...)"
            )
        default = [version for domain, version in self.opsets if domain in _DEFAULT_DOMAINS]
        if not default:
            raise ModelFileError(
                f"{name} imports no default ONNX opset; re-export the model with `nextword export`"
            )
        low, high = limits.opset_versions
        bad = [v for v in default if not low <= v <= high]
        if bad:
            raise ModelFileError(
                f"{name} uses ONNX opset {bad[0]}; this nextword accepts opsets {low}-{high} "
                "(the tested range). Re-export with `nextword export --opset 17`, or, if you trust the "
                "file, widen LoadLimits(opset_versions=...)"
            )


class _GraphWalker:
    """Walks graphs, nodes, attributes and tensors; raises ModelFileError on the first refusal."""

    def __init__(self, name: str, data: bytes, allowed: frozenset[tuple[str, str]], budget: _Budget) -> None:
        self.name, self.data, self.allowed, self.budget = name, data, allowed, budget

    def _enter(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _WireError(f"messages nested more than {MAX_DEPTH} deep")

    def graph(self, start: int, end: int, depth: int) -> None:
        self._enter(depth)
        for number, _, a, b in _fields(self.data, start, end, self.budget, "graph"):
            if number == _GRAPH_NODE:
                self.node(a, b, depth + 1)
            elif number == _GRAPH_INITIALIZER:
                self.tensor(a, b, depth + 1, "initializer")
            elif number == _GRAPH_SPARSE_INITIALIZER:
                self.sparse(a, b, depth + 1, "sparse initializer")

    def node(self, start: int, end: int, depth: int) -> None:
        self._enter(depth)
        op_type, domain, attributes = "", "", []
        for number, _, a, b in _fields(self.data, start, end, self.budget, "node"):
            if number == _NODE_OP_TYPE:
                op_type = _text(self.data, a, b)
            elif number == _NODE_DOMAIN:
                domain = _text(self.data, a, b)
            elif number == _NODE_ATTRIBUTE:
                attributes.append((a, b))
        key = ("" if domain in _DEFAULT_DOMAINS else domain, op_type)
        if key not in self.allowed:
            shown = op_type if not key[0] else f"{key[0]}:{op_type}"
            raise ModelFileError(
                f"{self.name} uses the operator {_short(shown)}, which nextword models never contain "
                "(allowed: the ops `nextword export` and onnxruntime's quantize_dynamic emit). Re-export "
                "the model with `nextword export`, or, if you trust the file, extend "
                "LoadLimits(allowed_ops=...)"
            )
        for a, b in attributes:
            self.attribute(a, b, depth + 1, op_type)

    def attribute(self, start: int, end: int, depth: int, op_type: str) -> None:
        self._enter(depth)
        where = f"an attribute of a {op_type} node"
        for number, _, a, b in _fields(self.data, start, end, self.budget, "attribute"):
            if number in (_ATTR_T, _ATTR_TENSORS):
                self.tensor(a, b, depth + 1, where)
            elif number in (_ATTR_G, _ATTR_GRAPHS):
                self.graph(a, b, depth + 1)
            elif number in (_ATTR_SPARSE, _ATTR_SPARSES):
                self.sparse(a, b, depth + 1, where)

    def sparse(self, start: int, end: int, depth: int, where: str) -> None:
        self._enter(depth)
        for number, _, a, b in _fields(self.data, start, end, self.budget, "sparse"):
            if number in (_SPARSE_VALUES, _SPARSE_INDICES):
                self.tensor(a, b, depth + 1, where)

    def tensor(self, start: int, end: int, depth: int, where: str) -> None:
        self._enter(depth)
        name, external, location = "", [], 0
        for number, _, a, b in _fields(self.data, start, end, self.budget, "tensor"):
            if number == _TENSOR_NAME:
                name = _text(self.data, a, b)
            elif number == _TENSOR_EXTERNAL_DATA:
                external.append(self._entry(a, b))
            elif number == _TENSOR_DATA_LOCATION and a != 0:
                location = a  # any occurrence other than DEFAULT (0) counts
        if external or location:
            target = next((v for k, v in external if k == "location"), "")
            raise ModelFileError(
                f"{self.name}: tensor {_short(name)} ({where}) keeps its data outside the file"
                + (f" (location {_short(target)})" if target else "")
                + "; nextword models are one self-contained file and never read other files. "
                "Re-export the model with `nextword export`"
            )

    def _entry(self, start: int, end: int) -> tuple[str, str]:
        key = value = ""
        for number, _, a, b in _fields(self.data, start, end, self.budget, "entry"):
            if number == _ENTRY_KEY:
                key = _text(self.data, a, b)
            elif number == _ENTRY_VALUE:
                value = _text(self.data, a, b)
        return key, value
