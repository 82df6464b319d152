"""What a model file may ask of the runtime: every cap and range the loader enforces, in one place.

:class:`LoadLimits` holds them; ``load(path, limits=...)`` and ``check_model_file`` take one. The
exporter reads :data:`OPSET_VERSIONS` from here, so it never writes a file the runtime refuses. The
defaults fit every model nextword exports under the 64 MiB file cap, with room to spare; the figures
behind them are in ``docs/security.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .checks import check_bool, plain_numbers, wrong_type
from .errors import ModelFileError, ModelLimitError, WrongTypeError
from .field_help import with_field_help

__all__ = [
    "DEFAULT_ALLOWED_OPS",
    "EXPORTED_OPS",
    "IR_VERSIONS",
    "MAX_JSON_DEPTH",
    "OPSET_VERSIONS",
    "PROTOBUF_LIMIT",
    "SIZE_LIMITS",
    "SIZE_LIMITS_HELP",
    "LoadLimits",
    "MiB",
    "advise_the_flag",
]

MiB = 1024 * 1024
PROTOBUF_LIMIT = 2**31 - 1  # the largest message protobuf serializes: one ONNX file without external data

IR_VERSIONS = (7, 8)  # tf2onnx 1.17 writes IR 7 for opsets 13-14 and IR 8 for 15-18
OPSET_VERSIONS = (13, 18)  # the default-domain opsets tested; tf2onnx converts to none above 18
# Objects and lists nested in one JSON metadata value, at most. The exporter writes 5 (provenance in
# "nextword.config"); a value nested a few hundred deep parses, then breaks whatever serializes it again
# (the server's /v1/models stops at 255 levels, `nextword info --json` at Python's recursion limit).
MAX_JSON_DEPTH = 32

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

# The limits that bound only how big and costly a file is, at the most any one file can ask for: what
# LoadLimits.without_size_caps() sets. The others (versions, operators, nodes, metadata, vocabulary) stay.
_UNCAPPED: dict[str, Any] = {
    "max_file_bytes": PROTOBUF_LIMIT,
    "max_tokenizer_bytes": PROTOBUF_LIMIT,
    "max_tensor_bytes": PROTOBUF_LIMIT,
    "max_graph_bytes": 2**62,
    "max_macs_per_token": 2**62,
    "max_state_width": 2**31,
}
SIZE_LIMITS = frozenset(_UNCAPPED)
# The commands' flag for the same (nextword generate, suggest, score, evaluate, info and serve).
SIZE_LIMITS_HELP = (
    "the size caps load() puts on a model file (64 MiB a file, a tensor; 128 Mi multiply-adds a word), "
    "which guard against hostile files; --no-size-limits lifts them for a file you trust, such as your "
    "own export, keeping every other check"
)


_TWO_LIMITS = re.compile(
    r"load\(\.\.\., limits=LoadLimits\(allowed_ops=.*, bound_graph=False\)\) \(DEFAULT_ALLOWED_OPS: .*?\)"
)


def advise_the_flag(
    exc: ModelFileError, also: str = "", *, lifted: bool = False, then: str = ""
) -> ModelFileError:
    """``exc`` with a command's advice in place of ``LoadLimits``, which a command cannot take: add
    ``--no-size-limits`` (then ``also``) for a cap the flag lifts, unless it is ``lifted`` already; for
    any other limit (versions, operators, nodes, metadata, vocabulary), that no option lifts it, and the
    Python call that does (then ``then``: what to do with the model loaded so). ``exc`` itself for a
    refusal of no limit, or of a cap already lifted."""
    if not isinstance(exc, ModelLimitError):
        return exc
    if exc.limit not in SIZE_LIMITS:
        # an operator outside the default allowlist: the call the refusal names widens two limits
        call = _TWO_LIMITS.search(exc.hint) if exc.limit == "allowed_ops" else None
        return exc.advising(
            "no command-line option lifts this check; if you trust the file, load it in Python with "
            + (call.group(0) if call else f"load(..., limits=LoadLimits({exc.limit}=...))")
            + then
        )
    if lifted:
        return exc
    return exc.advising(f"if you trust the file (your own export, say), add --no-size-limits{also}")


_POSITIVE_INTS = (
    "max_file_bytes",
    "max_tokenizer_bytes",
    "max_metadata_bytes",
    "max_vocab_size",
    "max_state_width",
    "max_tensor_bytes",
    "max_graph_bytes",
    "max_macs_per_token",
    "max_nodes",
)


@with_field_help  # help(LoadLimits) lists the fields with their --help
@dataclass(frozen=True)
class LoadLimits:
    """What :func:`~nextword.runtime.load` accepts. The defaults fit every model nextword exports.

    The graph limits (``max_tensor_bytes``, ``max_graph_bytes``, ``max_macs_per_token``) are worked
    out from the graph before onnxruntime sees it, for one batch row at one position: a call on
    ``batch`` rows of ``time`` positions may use up to ``batch * time`` times as much, and a graph whose
    tensors grow faster than that is refused. Widen a limit only for files you trust, e.g.::

        from nextword.runtime.limits import MiB

        load(path, limits=LoadLimits(max_file_bytes=256 * MiB, max_tensor_bytes=256 * MiB))
    """

    max_file_bytes: int = field(default=64 * MiB, metadata={"help": "largest model file read, in bytes"})
    max_tokenizer_bytes: int = field(
        default=4 * MiB, metadata={"help": "largest embedded tokenizer JSON, in UTF-8 bytes"}
    )
    max_metadata_bytes: int = field(
        default=1 * MiB,
        metadata={"help": "largest other JSON metadata value (config, metrics, decoding defaults...)"},
    )
    ir_versions: tuple[int, int] = field(
        default=IR_VERSIONS, metadata={"help": "ONNX IR versions accepted, inclusive (tf2onnx writes 7 or 8)"}
    )
    opset_versions: tuple[int, int] = field(
        default=OPSET_VERSIONS, metadata={"help": "default-domain opsets accepted, inclusive (tested range)"}
    )
    allowed_ops: frozenset[tuple[str, str]] = field(
        default=DEFAULT_ALLOWED_OPS, metadata={"help": "(domain, op_type) pairs a graph may use"}
    )
    max_vocab_size: int = field(
        default=1_000_000, metadata={"help": "largest vocabulary (logits width); the tokenizer's own cap"}
    )
    max_state_width: int = field(
        default=4096, metadata={"help": "widest LSTM state (h, c and the LSTM hidden size)"}
    )
    max_tensor_bytes: int = field(
        default=64 * MiB,
        metadata={"help": "largest tensor the graph may make, per batch row and position (weights included)"},
    )
    max_graph_bytes: int = field(
        default=256 * MiB,
        metadata={"help": "all of the graph's tensors together, per batch row and position"},
    )
    max_macs_per_token: int = field(
        default=128 * MiB,
        metadata={"help": "multiply-accumulates of one step, per batch row and position (bounds time)"},
    )
    max_nodes: int = field(
        default=10_000, metadata={"help": "most nodes in the graph (bounds onnxruntime's load time)"}
    )
    bound_graph: bool = field(
        default=True,
        metadata={"help": "work out the graph's tensor sizes and cost before loading (off: trust the file)"},
    )

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong_type(f"LoadLimits.{name}", "a positive integer", value)
            if value < 1:
                raise ValueError(f"LoadLimits.{name} must be a positive integer, got {value!r}")
        for name in ("ir_versions", "opset_versions"):
            value = getattr(self, name)
            refusal = (
                f"LoadLimits.{name} must be an inclusive range (low, high) with 1 <= low <= high, "
                f"got {value!r}"
            )
            if (
                not isinstance(value, tuple)
                or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                raise WrongTypeError(refusal)  # not a pair of integers
            if not 1 <= value[0] <= value[1]:
                raise ValueError(refusal)
        if not isinstance(self.allowed_ops, frozenset) or not all(
            isinstance(op, tuple) and len(op) == 2 and all(isinstance(s, str) for s in op)
            for op in self.allowed_ops
        ):
            raise WrongTypeError(
                "LoadLimits.allowed_ops must be a frozenset of (domain, op_type) string pairs, "
                f"got {self.allowed_ops!r:.200}"
            )
        check_bool("LoadLimits.bound_graph", self.bound_graph)

    def without_size_caps(self) -> LoadLimits:
        """These limits with every size cap (:data:`SIZE_LIMITS`: file, tokenizer, tensors, graph, work
        per word, state width) lifted, for a file one trusts, such as one's own export: a model of any
        size loads, while every check of what the file is and which operators it runs stays."""
        return replace(self, **_UNCAPPED)

    def refuse(self, problem: str, name: str) -> ModelLimitError:
        """The error for a file over limit ``name``: ``problem``, then how to raise the limit for a file
        one trusts."""
        assert name in {f.name for f in fields(self)}, name
        return ModelLimitError(
            problem, name, f"if you trust the file, raise it with load(..., limits=LoadLimits({name}=...))"
        )
