"""Checks a model file from anywhere before onnxruntime sees a byte of it.

A nextword model may come from elsewhere: a download, an upload, a colleague. :func:`check_model_file`
reads the file (size checked with ``stat`` first), decodes its ONNX protobuf with the bounded reader
of :mod:`.onnx_proto`, and refuses, with a :class:`ModelFileError` that names the file, the problem and
the fix:

- files over the size cap, empty, truncated or corrupted files, random bytes;
- ONNX files that are not nextword models, or use a nextword format version this runtime does not read,
  or whose metadata is invalid (:func:`~nextword.runtime.model_file.parse_metadata`);
- IR or default-domain opset versions outside the tested range;
- any tensor whose data lives outside the file (``data_location = EXTERNAL`` or any ``external_data``
  entry), wherever it sits: initializers, sparse initializers, node attributes, subgraphs;
- tensors whose data does not match their declared size, sparse and segmented tensors;
- operators outside an allowlist (what our exporter and onnxruntime's ``quantize_dynamic`` emit);
- model-local functions and training information, which nextword files never carry;
- graphs that would make the runtime allocate or compute more than :class:`LoadLimits` allows
  (:mod:`.graph_bounds`).

The runtime depends on numpy and onnxruntime only: nothing here imports ``onnx`` or ``protobuf``. See
``docs/security.md`` for what is left to onnxruntime.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFileError, ModelLimitError, WrongTypeError, shorten
from .graph_bounds import GraphBounds, bound_graph
from .limits import DEFAULT_ALLOWED_OPS, QUANTIZED_OPS, LoadLimits, MiB
from .model_file import Metadata, is_step_graph, parse_metadata
from .onnx_proto import FLOAT, INT8, ITEM_BYTES, Graph, ModelSummary, Tensor, parse_model
from .wire import WireError

__all__ = [
    "DEFAULT_ALLOWED_OPS",
    "CheckedModel",
    "LoadLimits",
    "MiB",
    "check_model_file",
    "inspect_model_file",
    "signed_weights",
]

logger = logging.getLogger(__name__)

_DEFAULT_DOMAINS = ("", "ai.onnx")
ORT_FORMAT = b"ORTM"  # bytes 4-8 of an onnxruntime ORT-format file (a FlatBuffer)
RUN_MARKER = ".nextword-run"  # the file nextword's training writes into every run folder (train/files.py)
# how to accept a file outside the versions or operators nextword exports: for files one trusts
_WIDEN = "if you trust the file, widen them with load(..., limits=LoadLimits({}=...))"


@dataclass(frozen=True)
class CheckedModel:
    """A model file that passed every check: the bytes to hand to onnxruntime and what was read."""

    name: str  # the path, or "<model bytes>": names the file in messages
    data: bytes
    metadata: Metadata
    bounds: GraphBounds | None  # None when LoadLimits.bound_graph is off
    quantized: bool = False  # the graph holds integer products (an int8 file: `nextword export --int8`)


def check_model_file(source: str | os.PathLike[str] | bytes, limits: LoadLimits | None = None) -> bytes:
    """Read and check a nextword model file; return the bytes to hand to onnxruntime.

    ``source`` is a path or the file's bytes. Nothing here runs onnxruntime, and nothing in the file is
    executed or followed: a file that needs data from elsewhere is refused. Raises
    :class:`ModelFileError` naming the file, the problem and the fix (see the module docstring for the
    list); ``limits`` sets the caps and ranges.
    """
    return inspect_model_file(source, limits).data


def inspect_model_file(
    source: str | os.PathLike[str] | bytes, limits: LoadLimits | None = None
) -> CheckedModel:
    """:func:`check_model_file`, returning what the checks read as well as the bytes."""
    limits = LoadLimits() if limits is None else limits  # an empty dict is refused, not the default
    if not isinstance(limits, LoadLimits):
        raise WrongTypeError(f"limits must be a LoadLimits, got {type(limits).__name__}")
    name, data = _read(source, limits)
    if not data:
        raise ModelFileError(f"{name} is empty (0 bytes); re-download or re-export the model")
    try:
        model = parse_model(data)
    except WireError as exc:
        if data[4:8] == ORT_FORMAT:  # not ONNX, and marked as onnxruntime's own format
            raise ModelFileError(
                f"{name} is in onnxruntime's ORT format (convert_onnx_models_to_ort's output), not ONNX: "
                "nextword reads the .onnx file it was converted from"
            ) from None
        raise ModelFileError(_corrupt(name, exc)) from None
    metadata = parse_metadata(model.metadata, name, limits, step_graph=_step_graph(model.graphs))
    _check_versions(model, name, limits)
    if not model.graphs:
        raise ModelFileError(f"{name} has no graph; re-export the model with `nextword export`")
    if model.functions or model.training_info:
        what = "model-local functions" if model.functions else "training information"
        raise ModelFileError(
            f"{name} contains {what}, which nextword model files never carry; "
            "re-export the model with `nextword export`"
        )
    for graph in model.graphs:
        _check_graph(graph, name, limits.allowed_ops, model.graphs)
        _check_floats(graph, data, name)
    signed = [weight for graph in model.graphs for weight in signed_weights(graph)]
    if signed:
        logger.warning(
            "%s stores the int8 weights of its integer products as signed int8 (%s): on x86-64 CPUs "
            "without VNNI onnxruntime computes those products with saturating 16-bit sums, so its logits "
            "differ there from other CPUs' and the browser's. Store them as uint8, which every CPU "
            "computes exactly: export the run again (`nextword export --int8`), or convert a file you "
            "quantized yourself in place, proto = onnx.load(PATH); "
            "nextword.export.quantize.store_weights_unsigned(proto); onnx.save(proto, OUT)",
            name,
            ", ".join(shorten(w) for w in signed[:3]) + (", ..." if len(signed) > 3 else ""),
        )
    bounds = None
    if limits.bound_graph:
        bounds = bound_graph(_merged(model.graphs), name, limits)
    logger.debug("%s passed the model-file checks (%d bytes): %s", name, len(data), bounds)
    quantized = any((n.domain, n.op_type) in QUANTIZED_OPS for graph in model.graphs for n in graph.nodes)
    return CheckedModel(name=name, data=data, metadata=metadata, bounds=bounds, quantized=quantized)


def _read(source: str | os.PathLike[str] | bytes, limits: LoadLimits) -> tuple[str, bytes]:
    """(name for messages, the file's bytes), with the size cap enforced before reading."""
    cap = limits.max_file_bytes
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "<model bytes>"
        if len(data) < 4096 and _names_a_file(data):  # a path passed as bytes: read as contents
            name = f"<model bytes> (bytes are the model's contents; {data!r} names a file: pass it as a str)"
        if len(data) > cap:
            raise _too_big(name, len(data), limits)
        return name, data
    if not isinstance(source, (str, os.PathLike)):
        raise WrongTypeError(f"model must be a path or bytes, got {type(source).__name__}")
    if not os.fspath(source):  # Path("") is the current folder: name the real mistake
        raise ModelFileError("the model file's path is empty; pass the path of a .onnx file")
    path = Path(source)
    name = str(path)
    try:
        info = path.stat()
    except ValueError:  # a NUL character: no file name holds one
        raise ModelFileError(
            f"model file name {shorten(name)} holds a NUL character, which no file name can"
        ) from None
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(f"model file {name} does not exist (or cannot be read)") from None
    except OSError as exc:  # a symbolic link loop, a name too long, no permission...
        raise ModelFileError(f"model file {name} cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode) and (path / RUN_MARKER).is_file():
        raise ModelFileError(
            f"{name} is a training run folder, not a model file: export it first, nextword export {name} "
            "--out MODEL.onnx"
        )
    _check_stat(name, info, limits)
    # Non-blocking, so a file swapped for a FIFO after stat() cannot hang the open; fstat() re-checks.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(path, flags), "rb") as f:
            opened = os.fstat(f.fileno())
            _check_stat(name, opened, limits)
            # the file's size, not the cap, is what a read sets aside first (2 GB with size_limits off)
            data = f.read(min(cap, opened.st_size) + 1)
            if len(data) > opened.st_size:  # it grew since fstat(): the rest, up to the cap
                data += f.read(cap + 1 - len(data))
    except OSError as exc:
        raise ModelFileError(f"model file {name} cannot be read: {exc.strerror}") from None
    if len(data) > cap:
        raise _too_big(name, len(data), limits)
    return name, data


def _check_stat(name: str, info: os.stat_result, limits: LoadLimits) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"model file {name} is not a regular file; pass the path of a .onnx file")
    if info.st_size > limits.max_file_bytes:
        raise _too_big(name, info.st_size, limits)


def _corrupt(name: str, exc: Exception) -> str:
    return (
        f"{name} could not be loaded as an ONNX model: it is not a valid ONNX protobuf ({exc}); the file "
        "is truncated or corrupted, or not a model at all: re-download or re-export it"
    )


def _too_big(name: str, size: int, limits: LoadLimits) -> ModelLimitError:
    return limits.refuse(
        f"{name} is {size:,} bytes, over the {limits.max_file_bytes:,}-byte limit for model files",
        "max_file_bytes",
    )


def _step_graph(graphs: list[Graph]) -> bool:
    """Whether the (merged) graph's inputs, initializers left out, and outputs are nextword's."""
    graph = _merged(graphs)
    stored = {tensor.name for tensor in graph.initializers}
    inputs = [value.name for value in graph.inputs if value.name not in stored]
    return is_step_graph(inputs, [value.name for value in graph.outputs])


def _check_versions(model: ModelSummary, name: str, limits: LoadLimits) -> None:
    low, high = limits.ir_versions
    if not low <= model.ir_version <= high:
        fix = (
            "the tool that saved it wrote a newer one (onnx.helper.make_model writes the newest); where "
            f"the file uses nothing newer, set `model.ir_version = {high}` before saving it"
            if model.ir_version > high
            else f"set `model.ir_version = {low}` before saving it (newer IR versions read older files)"
        )
        raise ModelLimitError(
            f"{name} has ONNX IR version {model.ir_version}; this nextword accepts IR versions "
            f"{low}-{high} (what its exporter writes): {fix}",
            "ir_versions",
            _WIDEN.format("ir_versions"),
        )
    default = [version for domain, version in model.opsets if domain in _DEFAULT_DOMAINS]
    if not default:
        raise ModelFileError(
            f"{name} imports no default ONNX opset; re-export the model with `nextword export`"
        )
    low, high = limits.opset_versions
    bad = [v for v in default if not low <= v <= high]
    if bad:
        raise ModelLimitError(
            f"{name} uses ONNX opset {bad[0]}; this nextword accepts opsets {low}-{high} "
            "(the tested range): re-export with `nextword export --opset 17`",
            "opset_versions",
            _WIDEN.format("opset_versions"),
        )


def _check_graph(graph: Graph, name: str, allowed: frozenset[tuple[str, str]], top: list[Graph]) -> None:
    """Operators against the allowlist, then every tensor of the graph and its subgraphs (``top``: the
    model's graphs, whose other operators a refusal names)."""
    for node in graph.nodes:
        key = ("" if node.domain in _DEFAULT_DOMAINS else node.domain, node.op_type)
        if key not in allowed:
            raise _operator_refused(name, key, top)
        where = f"an attribute of a {node.op_type} node"
        for attribute in node.attributes.values():
            for tensor in attribute.tensors:
                _check_tensor(tensor, name, where)
            for values, indices in attribute.sparse:
                _check_sparse(values, indices, name, where)
            for subgraph in attribute.graphs:
                _check_graph(subgraph, name, allowed, top)
    for tensor in graph.initializers:
        _check_tensor(tensor, name, "initializer")
    for values, indices in graph.sparse_initializers:
        _check_sparse(values, indices, name, "sparse initializer")


_LISTED_OPS = 8  # operators a refusal lists in the allowed_ops it suggests, at most


def _operator_refused(name: str, key: tuple[str, str], top: list[Graph]) -> ModelLimitError:
    """The refusal of operator ``key``. One that nextword export and quantize_dynamic never write comes
    from a tool that rewrote the graph: the fix is the exported file, or, for a file one trusts, the
    allowlist widened with every such operator of the graph, and the graph bounds turned off, as they
    model only the default allowlist (a test holds shape_rules.RULES to it)."""
    shown = shorten(key[1] if not key[0] else f"{key[0]}:{key[1]}")
    if key in DEFAULT_ALLOWED_OPS:  # left out of a narrower allowlist given
        problem = f"{name} uses the operator {shown}, which the limits given do not allow"
        return ModelLimitError(problem, "allowed_ops", _WIDEN.format("allowed_ops"))
    found = {key: None}
    for graph in top:
        for node in graph.nodes:
            other = ("" if node.domain in _DEFAULT_DOMAINS else node.domain, node.op_type)
            if other not in DEFAULT_ALLOWED_OPS:
                found.setdefault(other)
    pairs = [f"({shorten(domain)}, {shorten(op)})" for domain, op in found]
    listed = ", ".join(pairs[:_LISTED_OPS]) + (", ..." if len(pairs) > _LISTED_OPS else "")
    return ModelLimitError(
        f"{name} uses the operator {shown}, which neither `nextword export` nor onnxruntime's "
        "quantize_dynamic writes: if a tool rewrote the graph (onnxruntime's optimized_model_filepath, "
        "static or QDQ quantization, 4-bit quantization...), load the file `nextword export` wrote, "
        "which onnxruntime optimizes as it loads",
        "allowed_ops",
        "if you trust the file, widen two limits at once: load(..., limits=LoadLimits(allowed_ops="
        f"DEFAULT_ALLOWED_OPS | {{{listed}}}, bound_graph=False)) (DEFAULT_ALLOWED_OPS: from "
        "nextword.runtime.limits); with allowed_ops alone the graph bounds refuse it next, as they do "
        "not model those operators' sizes",
    )


def _check_sparse(values: Tensor, indices: Tensor, name: str, where: str) -> None:
    for tensor in (values, indices):
        _check_external(tensor, name, where)
    raise ModelFileError(
        f"{name}: {where} {shorten(values.name)} is a sparse tensor, which nextword models never contain "
        "(onnxruntime would expand it to its full size when loading); re-export the model with "
        "`nextword export`"
    )


def _check_external(tensor: Tensor, name: str, where: str) -> None:
    if tensor.external or tensor.data_location:
        target = next((v for k, v in tensor.external if k == "location"), "")
        raise ModelFileError(
            f"{name}: tensor {shorten(tensor.name)} ({where}) keeps its data outside the file"
            + (f" (location {shorten(target)})" if target else "")
            + "; nextword models are one self-contained file and never read other files. If you "
            "trust the file, bring its data in with onnx, onnx.save(onnx.load(PATH), OUT) (onnx.load "
            "reads the external data), or re-export the model with `nextword export`"
        )


def _check_tensor(tensor: Tensor, name: str, where: str) -> None:
    """No external data, a known element type, and exactly as many elements as its dims declare."""
    _check_external(tensor, name, where)
    label = f"{name}: tensor {shorten(tensor.name)} ({where})"
    if tensor.segmented:
        raise ModelFileError(f"{label} is segmented, which nextword models never are; re-export the model")
    if tensor.data_type not in ITEM_BYTES:
        raise ModelFileError(f"{label} has unknown element type {tensor.data_type}; re-export the model")
    if any(d < 0 for d in tensor.dims):
        raise ModelFileError(f"{label} has a negative dimension {tensor.dims}; re-export the model")
    if tensor.stored != tensor.numel:
        raise ModelFileError(
            f"{label} declares {tensor.numel:,} elements (dims {tensor.dims}) but holds "
            f"{max(tensor.stored, 0):,}; the file is damaged or crafted: re-export the model"
        )


# The stored weight of each integer product, by input index: MatMulInteger's B, DynamicQuantizeLSTM's
# W and R (export/quantize.py stores them as uint8; docs/model-format.md).
_PRODUCT_WEIGHTS = {("", "MatMulInteger"): (1,), ("com.microsoft", "DynamicQuantizeLSTM"): (1, 2)}


def signed_weights(graph: Graph) -> list[str]:
    """The initializers of ``graph`` that integer products read as signed int8 weights."""
    signed = {t.name for t in graph.initializers if t.data_type == INT8}
    found: dict[str, None] = {}
    for node in graph.nodes:
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        for i in _PRODUCT_WEIGHTS.get((domain, node.op_type), ()):
            if i < len(node.inputs) and node.inputs[i] in signed:
                found[node.inputs[i]] = None
    return list(found)


# Inputs that hold quantization scales: (domain, op_type) -> input positions.
_SCALE_INPUTS = {("", "DequantizeLinear"): (1,), ("com.microsoft", "DynamicQuantizeLSTM"): (8, 10)}


def _finite(data: bytes, a: int, b: int) -> bool:
    """Whether the little-endian float32 values in ``data[a:b]`` are all finite, a million at a time
    (no second copy of a large weight)."""
    count = (b - a) // 4
    for start in range(0, count, 1 << 20):
        chunk = np.frombuffer(data, dtype="<f4", count=min(1 << 20, count - start), offset=a + 4 * start)
        if not np.isfinite(chunk).all():
            return False
    return True


def _check_floats(graph: Graph, data: bytes, name: str) -> None:
    """Float initializers stored in the file must be finite. A NaN or infinite quantization scale or
    weight does not make onnxruntime fail: the LSTM's clamped activations turn it into finite nonsense
    (a NaN in the LSTM's bias moved the bundled model's perplexity by less than 1%), so it is refused
    here. Scales are named as such."""
    floats = {t.name: t for t in graph.initializers if t.data_type == FLOAT}
    scales: dict[str, str] = {}  # initializer name -> the op type of a node that reads it as a scale
    for node in graph.nodes:
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        for i in _SCALE_INPUTS.get((domain, node.op_type), ()):
            if i < len(node.inputs) and node.inputs[i] in floats:
                scales.setdefault(node.inputs[i], node.op_type)
    for tensor in sorted(floats.values(), key=lambda t: t.name not in scales):  # the scales first
        # raw_data, else float_data's packed runs and single values (checked: each holds its elements)
        ranges = [tensor.raw] if tensor.raw is not None else tensor.float_data
        if all(_finite(data, a, b) for a, b in ranges):
            continue
        what = (
            f"the quantization scale {shorten(tensor.name)} of a {scales[tensor.name]} node"
            if tensor.name in scales
            else f"the weights {shorten(tensor.name)}"
        )
        raise ModelFileError(
            f"{name}: {what} holds NaN or infinite values; the file is damaged or crafted: "
            "re-export the model"
        )


def _merged(graphs: list[Graph]) -> Graph:
    """Repeated ``graph`` fields merge in protobuf: their nodes, initializers and values concatenate."""
    if len(graphs) == 1:
        return graphs[0]
    merged = Graph()
    for graph in graphs:
        merged.nodes += graph.nodes
        merged.initializers += graph.initializers
        merged.inputs += graph.inputs
        merged.outputs += graph.outputs
    return merged


def _names_a_file(data: bytes) -> bool:
    """Whether ``data`` (short bytes given as a model) is the path of an existing file."""
    try:
        return os.path.isfile(os.fsdecode(data))
    except (ValueError, UnicodeDecodeError):  # a NUL byte, or not a path at all
        return False
