"""Sampling heads for ``benchmarks.graph_sampling``: a model file's graph with the choice of the next token
appended, built in memory with the ``onnx`` package (a benchmark dependency; the runtime never imports it).

Every head works on the logits of one row and one position (1, 1, V) (``logits_from=-1``), along the
last axis, sets the banned ids to ``-inf`` first (one ``ScatterElements``), and adds one output,
:data:`TOKEN`, the chosen id (int64 (1, 1) or (1, 1, 1)). The graph keeps its own outputs (logits and
state), so a caller fetches the token and the state and leaves the logits. Inputs a head adds (only
those it uses; onnxruntime refuses a feed it does not know):

- :data:`BANNED` int64 (1, 1, n) and :data:`BANNED_SCORES` float32 (1, 1, n) of ``-inf``: ids that must
  not be chosen, and what they are set to (an input the caller keeps costs no node; making the ``-inf``
  in the graph costs a ``Shape`` and a ``ConstantOfShape``, about 4 us);
- :data:`SCALE` float32 (): ``1 / temperature``;
- :data:`UNIFORM` float64 (): the draw, in (0, 1] like ``runtime.sampling``'s ``1 - rng.random()``.

The draws keep ``runtime.sampling``'s arithmetic (float32 scores, float64 cumulative sums, the same
inverse CDF), so for the same draw they choose numpy's token up to rounding, except the one head that
draws among the top-k candidates in score order (the same distribution, another token for the same draw).
Node names start with :data:`PREFIX`, so onnxruntime's profile tells the head's kernels from the model's.
:func:`with_head` appends a head to the model's graph; :func:`head_alone` makes it a graph of its own, run
by a second session on the logits the unchanged model returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nextword.runtime.model_file import LOGITS

__all__ = [
    "BANNED",
    "BANNED_SCORES",
    "HEADS",
    "PREFIX",
    "SCALE",
    "TOKEN",
    "UNIFORM",
    "Head",
    "head_alone",
    "with_head",
]

PREFIX = "head_"
TOKEN = "next_token"
BANNED, BANNED_SCORES = "banned_ids", "banned_scores"
SCALE, UNIFORM = "inv_temperature", "uniform"
FLOAT, DOUBLE, INT64 = 1, 11, 7  # onnx.TensorProto element types
BLOCK = 128  # tokens per block of the two-level draw, as in runtime.sampling
TOP_K = 40


@dataclass(frozen=True)
class Head:
    """A way to choose the token in the graph: ``draws`` heads take :data:`SCALE` and :data:`UNIFORM`."""

    key: str
    label: str
    kind: str  # "greedy", "full" (the whole vocabulary) or "top_k"
    draws: bool
    id_order: bool = True  # a draw's cumulative sum runs over ids in increasing order, as numpy's does


HEADS = (
    Head("argmax", "`ArgMax`", "greedy", False),
    Head("topk1", "`TopK` k=1", "greedy", False),
    Head(
        "cdf", "inverse CDF, one `CumSum` over the vocabulary, `ReduceMax` total, int64 count", "full", True
    ),
    Head("cdf_f32count", "inverse CDF, one `CumSum`, `Gather` total, float32 count", "full", True),
    Head(
        "blocks",
        f"two-level inverse CDF: (blocks, {BLOCK}) `ReduceSum`, two small `CumSum`",
        "full",
        True,
    ),
    Head("topk40", f"`TopK` k={TOP_K}, draw in score order", "top_k", True, id_order=False),
    Head("topk40_ids", f"`TopK` k={TOP_K}, candidates re-sorted by id, draw in id order", "top_k", True),
)


class _Builder:
    """Nodes, constants and inputs appended to a graph, each name prefixed and numbered."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self.inputs: list[Any] = []
        self.vocab = 0
        self._count = 0

    def _name(self, what: str) -> str:
        self._count += 1
        return f"{PREFIX}{self._count:02d}_{what}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes: Any) -> Any:
        """Append one node; returns its output name (a list of names for ``outputs > 1``)."""
        from onnx import helper

        name = self._name(op_type)
        names = [name] if outputs == 1 else [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=name, **attributes))
        return names[0] if outputs == 1 else names

    def const(self, value: Any, dtype: Any) -> str:
        from onnx import numpy_helper

        name = self._name("const")
        self.constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def input(self, name: str, elem_type: int, shape: list[Any]) -> str:
        from onnx import helper

        if name not in {i.name for i in self.inputs}:
            self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def reduce(self, op_type: str, x: str, axis: int, keepdims: int = 1) -> str:
        """``ReduceMax``/``ReduceSum`` over ``axis``: axes an input from opset 18 (ReduceSum: 13) on."""
        since = 13 if op_type == "ReduceSum" else 18
        if self.opset >= since:
            return self.op(op_type, x, self.const([axis], np.int64), keepdims=keepdims)
        return self.op(op_type, x, axes=[axis], keepdims=keepdims)

    def count_below(self, cumulative: str, threshold: str, int64_sum: bool, keepdims: int = 1) -> str:
        """How many entries of ``cumulative`` lie below ``threshold`` along the last axis: numpy's
        ``searchsorted`` (left), int64. Summed as int64 (the obvious way) or as float32 (exact up to
        2**24 entries, and faster in onnxruntime)."""
        below = self.op("Less", cumulative, threshold)
        if int64_sum:
            return self.reduce("ReduceSum", self.op("Cast", below, to=INT64), -1, keepdims)
        counted = self.reduce("ReduceSum", self.op("Cast", below, to=FLOAT), -1, keepdims)
        return self.op("Cast", counted, to=INT64)


def _draw_full(b: _Builder, probs: str, vocab: int, prototype: bool) -> str:
    """Inverse CDF over the whole vocabulary: one float64 cumulative sum (1, 1, V); the id (1, 1, 1)."""
    cumulative = b.op("CumSum", b.op("Cast", probs, to=DOUBLE), b.const(-1, np.int64))  # (1, 1, V)
    if prototype:  # as first tried: the total by ReduceMax, the count by an int64 sum
        total = b.reduce("ReduceMax", cumulative, -1)
    else:
        total = b.op("Gather", cumulative, b.const([vocab - 1], np.int64), axis=-1)  # (1, 1, 1)
    threshold = b.op("Mul", total, b.input(UNIFORM, DOUBLE, []))  # in (0, total]
    return b.count_below(cumulative, threshold, prototype)


def _draw_blocks(b: _Builder, probs: str, vocab: int) -> str:
    """Inverse CDF in two levels, as ``runtime.sampling._draw_blocks``: a block by the blocks' float32
    masses accumulated in float64, then a token inside it by a float64 cumulative sum of its 128."""
    blocks = -(-vocab // BLOCK)
    padded = b.op("Pad", probs, b.const([0, 0, 0, 0, 0, blocks * BLOCK - vocab], np.int64))  # zeros after
    table = b.op("Reshape", padded, b.const([blocks, BLOCK], np.int64))  # (blocks, BLOCK)
    masses = b.op("Cast", b.reduce("ReduceSum", table, 1, keepdims=0), to=DOUBLE)  # (blocks,)
    cumulative = b.op("CumSum", masses, b.const(0, np.int64))  # (blocks,)
    total = b.op("Gather", cumulative, b.const([blocks - 1], np.int64))  # (1,)
    threshold = b.op("Mul", total, b.input(UNIFORM, DOUBLE, []))  # (1,) in (0, total]
    block = b.count_below(cumulative, threshold, False, keepdims=0)  # () < blocks: threshold <= total
    before = b.op("Concat", b.const([0.0], np.float64), cumulative, axis=0)  # (blocks + 1,)
    rest = b.op("Sub", threshold, b.op("Gather", before, block))  # (1,) in (0, mass of the block]
    row = b.op("Cast", b.op("Gather", table, block), to=DOUBLE)  # (BLOCK,)
    index = b.count_below(b.op("CumSum", row, b.const(0, np.int64)), rest, False)  # (1,) in 0..BLOCK
    index = b.op("Min", index, b.const([BLOCK - 1], np.int64))  # BLOCK only by rounding
    return b.op("Add", b.op("Mul", block, b.const(BLOCK, np.int64)), index)


def _head_nodes(b: _Builder, head: Head, logits: str, vocab: int) -> str:
    """The head's nodes after ``logits`` (1, 1, V); returns the name of the chosen id."""
    banned = b.input(BANNED, INT64, [1, 1, "banned"])
    scores = b.op("ScatterElements", logits, banned, b.input(BANNED_SCORES, FLOAT, [1, 1, "banned"]), axis=-1)
    if head.key == "argmax":
        return b.op("ArgMax", scores, axis=-1, keepdims=0)  # (1, 1): the next step's input_ids
    if head.key == "topk1":
        return b.op("TopK", scores, b.const([1], np.int64), axis=-1, outputs=2)[1]  # (1, 1, 1)
    ids = None
    if head.kind == "top_k":
        k = min(TOP_K, vocab)
        scores, ids = b.op(
            "TopK", scores, b.const([k], np.int64), axis=-1, outputs=2
        )  # (1, 1, k) largest first
        if head.id_order:  # the candidates in increasing id order, as numpy draws among them
            as_float = b.op("Cast", ids, to=FLOAT)
            order = b.op("TopK", as_float, b.const([k], np.int64), axis=-1, largest=0, outputs=2)[1]
            scores = b.op("GatherElements", scores, order, axis=-1)
            ids = b.op("GatherElements", ids, order, axis=-1)
        vocab = k
    scaled = b.op("Mul", scores, b.input(SCALE, FLOAT, []))
    probs = b.op("Exp", b.op("Sub", scaled, b.reduce("ReduceMax", scaled, -1)))  # (1, 1, n) unnormalized
    if head.key == "blocks":
        return _draw_blocks(b, probs, vocab)
    chosen = _draw_full(b, probs, vocab, head.key == "cdf")  # (1, 1, 1)
    return chosen if ids is None else b.op("GatherElements", ids, chosen, axis=-1)


def _head(model: Any, head: Head) -> _Builder:
    """``head``'s nodes, constants and inputs for the graph of ``model`` (a ModelProto), reading its
    ``logits`` and writing :data:`TOKEN`."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        raise ValueError(f"the graph's opset is {opset}; the sampling heads need 13 or later")
    logits = next((o for o in model.graph.output if o.name == LOGITS), None)
    vocab = logits.type.tensor_type.shape.dim[-1].dim_value if logits is not None else 0
    if logits is None or vocab <= 0:
        raise ValueError(f"the graph has no `{LOGITS}` output of a known vocabulary size")
    b = _Builder(opset)
    b.vocab = vocab
    chosen = _head_nodes(b, head, LOGITS, vocab)
    for node in b.nodes:  # the last node writes the token itself (an Identity would cost a kernel call)
        node.output[:] = [TOKEN if name == chosen else name for name in node.output]
    return b


def with_head(model_bytes: bytes, head: Head) -> bytes:
    """The model file ``model_bytes`` with ``head`` appended: new inputs, one new output :data:`TOKEN`."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(model_bytes)
    b = _head(model, head)
    model.graph.node.extend(b.nodes)
    model.graph.initializer.extend(b.constants)
    model.graph.input.extend(b.inputs)
    model.graph.output.append(helper.make_tensor_value_info(TOKEN, INT64, None))  # (1, 1) or (1, 1, 1)
    return model.SerializeToString()


def head_alone(model_bytes: bytes, head: Head) -> bytes:
    """``head`` as a graph of its own (issue 17's "second small graph"): :data:`LOGITS` (1, 1, V) of the
    model file ``model_bytes`` and the head's inputs in, :data:`TOKEN` out; the model file unchanged."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(model_bytes)
    b = _head(model, head)
    logits = helper.make_tensor_value_info(LOGITS, FLOAT, [1, 1, b.vocab])
    token = helper.make_tensor_value_info(TOKEN, INT64, None)
    graph = helper.make_graph(b.nodes, "sampling_head", [logits, *b.inputs], [token], initializer=b.constants)
    opsets = [helper.make_opsetid("", b.opset)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=model.ir_version).SerializeToString()
