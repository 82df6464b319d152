"""Upper bounds on what a graph can make the runtime allocate and compute, before onnxruntime sees it.

A few kilobytes of ONNX can ask for gigabytes: ``Concat`` doubling a tensor 34 times, a ``MatMul``
outer product of two state vectors, an LSTM whose hidden size is 100,000. onnxruntime folds constant
subgraphs while it creates the session and sizes buffers from the shapes it meets, so the bound has
to come first. :func:`bound_graph` walks the nodes in dependency order with every tensor's shape
known as an upper bound in terms of the batch size ``B`` and the number of positions ``T`` (the only
sizes a caller chooses), following the small integer tensors that ``Shape``, ``Gather``, ``Concat``...
compute for ``Reshape`` targets, and refuses a graph when

- a state width, the LSTM hidden size or the vocabulary is over its limit;
- a tensor grows faster than ``B * T`` (an outer product over the batch or the positions);
- one tensor, all tensors together, or the multiply-accumulates of one step exceed
  :class:`~nextword.runtime.limits.LoadLimits` (counted for one batch row at one position);
- a shape cannot be bounded at all (an operator this module does not model, a shape from data).

Dimensions are monomials ``c * B**b * T**t``, exact or an upper bound (B, T >= 1): enough for the
step graphs tf2onnx writes, where every size is a constant, the batch, the positions or a product.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .dims import Dim, Refused, Value, product, shape_text
from .errors import ModelFileError, ModelLimitError, shorten
from .limits import LoadLimits
from .onnx_proto import FLOAT, INT64, ITEM_BYTES, Graph, Node
from .shape_rules import RULES, constant_value

__all__ = ["GraphBounds", "bound_graph"]

_STATE = re.compile(r"([hc])_(\d+)")


@dataclass(frozen=True)
class GraphBounds:
    """What the graph may use at most, per batch row and position."""

    largest_tensor_bytes: int
    total_bytes: int
    macs_per_token: int
    nodes: int


def bound_graph(graph: Graph, name: str, limits: LoadLimits) -> GraphBounds:
    """Work out upper bounds for ``graph`` and refuse it when they exceed ``limits``.

    Raises :class:`ModelFileError` naming the file ``name``, the tensor or node, and the limit to
    raise for a file one trusts.
    """
    try:
        return _Bounder(graph, limits).run()
    except Refused as exc:
        raise ModelFileError(f"{name}: {exc}") from None
    except ModelLimitError as exc:
        raise ModelLimitError(f"{name}: {exc.problem}", exc.limit, exc.hint) from None
    except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:  # a case not foreseen
        raise ModelFileError(
            f"{name}: the graph's sizes could not be bounded (internal error {type(exc).__name__}: "
            f"{shorten(str(exc))}); if you trust the file, load it with LoadLimits(bound_graph=False)"
        ) from None


class _Bounder:
    def __init__(self, graph: Graph, limits: LoadLimits) -> None:
        self.graph, self.limits = graph, limits
        self.known: dict[str, Value] = {}
        self.largest = self.total = self.macs = 0

    # ----------------------------------------------------------------- accounting

    def run(self) -> GraphBounds:
        limits = self.limits
        if len(self.graph.nodes) > limits.max_nodes:
            raise limits.refuse(
                f"the graph has {len(self.graph.nodes):,} nodes, over the limit of {limits.max_nodes:,}",
                "max_nodes",
            )
        for tensor in self.graph.initializers:
            self._set(tensor.name, constant_value(tensor), "an initializer")
        self._inputs()
        for node in self._ordered():
            outputs = self._node(node)
            if len(node.outputs) > len(outputs):
                raise Refused(
                    f"a {node.op_type} node names {len(node.outputs)} outputs but makes at most "
                    f"{len(outputs)}; the graph is invalid"
                )
            for out, value in zip(node.outputs, outputs, strict=False):
                if out:
                    self._set(out, value, f"a {node.op_type} node")
        self._outputs()
        if self.total > limits.max_graph_bytes:
            raise limits.refuse(
                f"the graph's tensors together take up to {self.total:,} bytes per batch row and position, "
                f"over the {limits.max_graph_bytes:,}-byte limit",
                "max_graph_bytes",
            )
        if self.macs > limits.max_macs_per_token:
            raise limits.refuse(
                f"one step of the graph takes up to {self.macs:,} multiply-accumulates per batch row and "
                f"position, over the limit of {limits.max_macs_per_token:,}",
                "max_macs_per_token",
            )
        return GraphBounds(self.largest, self.total, self.macs, len(self.graph.nodes))

    def _set(self, name: str, value: Value, made_by: str) -> None:
        if name in self.known and made_by != "an initializer":
            raise Refused(f"tensor {shorten(name)} is written twice (by {made_by}); the graph is invalid")
        numel = product(value.shape)
        self._linear(numel, f"tensor {shorten(name)} ({made_by})")
        size = numel.c * ITEM_BYTES.get(value.dtype, 8)
        if size > self.limits.max_tensor_bytes:
            raise self.limits.refuse(
                f"tensor {shorten(name)} ({made_by}, shape {shape_text(value.shape)}) takes up to "
                f"{size:,} bytes per batch row and position, over the "
                f"{self.limits.max_tensor_bytes:,}-byte limit",
                "max_tensor_bytes",
            )
        self.largest = max(self.largest, size)
        self.total += size
        self.known[name] = value

    def cost(self, macs: Dim, node: Node) -> None:
        self._linear(macs, f"the work of a {node.op_type} node")
        self.macs += macs.c

    @staticmethod
    def _linear(size: Dim, what: str) -> None:
        if size.b > 1 or size.t > 1:
            grows = "batch size" if size.b > 1 else "number of positions"
            raise Refused(
                f"{what} grows with the square of the {grows} ({size}), which a nextword step never does; "
                "the graph is crafted or damaged: re-export the model"
            )

    # ----------------------------------------------------------------- the signature

    def _inputs(self) -> None:
        B, T = Dim(1, b=1), Dim(1, t=1)
        for info in self.graph.inputs:
            if info.name in self.known:  # an initializer listed as an input (old IR): its default
                continue
            if info.name == "input_ids":
                value = Value((B, T), info.elem_type or INT64)
            elif info.name == "logits_from":
                value = Value((), info.elem_type or INT64)
            elif _STATE.fullmatch(info.name):
                width = info.dims[-1] if info.dims else None
                if not isinstance(width, int) or width < 1:
                    raise Refused(f"state input {shorten(info.name)} has no fixed width ({info.dims})")
                self.state_width(width, f"state input {shorten(info.name)}")
                value = Value((B, Dim(width)), info.elem_type or FLOAT)
            else:
                raise Refused(
                    f"graph input {shorten(info.name)} is not part of the nextword step signature "
                    "(input_ids, logits_from, h_0, c_0, ...)"
                )
            self._set(info.name, value, "a graph input")

    def state_width(self, width: int, what: str) -> None:
        if width > self.limits.max_state_width:
            raise self.limits.refuse(
                f"{what} is {width:,} wide, over the limit of {self.limits.max_state_width:,}",
                "max_state_width",
            )

    def _outputs(self) -> None:
        for info in self.graph.outputs:
            declared = info.dims[-1] if info.dims else None
            if info.name == "logits" and isinstance(declared, int) and declared > self.limits.max_vocab_size:
                raise self.limits.refuse(
                    f"the logits are declared {declared:,} wide (the vocabulary), over the limit of "
                    f"{self.limits.max_vocab_size:,}",
                    "max_vocab_size",
                )
            value = self.known.get(info.name)
            if value is None:
                raise Refused(f"graph output {shorten(info.name)} is not computed by any node")
            real = value.shape[-1] if value.shape else None
            if (
                isinstance(declared, int)
                and real is not None
                and real.exact
                and real.const
                and real.c != declared
            ):
                raise Refused(
                    f"graph output {shorten(info.name)} is declared {declared} wide but the graph makes it "
                    f"{real.c} wide; the file is crafted or damaged: re-export the model"
                )

    def _ordered(self) -> list[Node]:
        """The nodes in dependency order (Kahn's algorithm); refuses cycles and dangling inputs."""
        producer: dict[str, int] = {}
        for i, node in enumerate(self.graph.nodes):
            for out in node.outputs:
                if out and (out in producer or out in self.known):
                    raise Refused(f"tensor {shorten(out)} is written twice; the graph is invalid")
                if out:
                    producer[out] = i
        waiting = [0] * len(self.graph.nodes)
        users: dict[int, list[int]] = {}
        for i, node in enumerate(self.graph.nodes):
            for name in node.inputs:
                if not name or name in self.known:
                    continue
                if name not in producer:
                    raise Refused(
                        f"node input {shorten(name)} is not computed by any node; the graph is invalid"
                    )
                waiting[i] += 1
                users.setdefault(producer[name], []).append(i)
        ready = [i for i, count in enumerate(waiting) if count == 0]
        order: list[Node] = []
        while ready:
            i = ready.pop()
            order.append(self.graph.nodes[i])
            for user in users.get(i, ()):
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)
        if len(order) != len(self.graph.nodes):
            raise Refused("the graph has a cycle; the file is crafted or damaged: re-export the model")
        return order

    # ----------------------------------------------------------------- values

    def get(self, node: Node, index: int) -> Value | None:
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        return self.known[node.inputs[index]]

    def need(self, node: Node, index: int) -> Value:
        value = self.get(node, index)
        if value is None:
            raise Refused(f"a {node.op_type} node lacks its input {index}; the graph is invalid")
        return value

    def ints(self, node: Node, index: int) -> list[int] | None:
        """The constant integer values of input ``index``, or None when they are not known."""
        value = self.get(node, index)
        if value is None or value.values is None or any(v is None or not v.const for v in value.values):
            return None
        return [v.c for v in value.values]  # type: ignore[union-attr]

    # ----------------------------------------------------------------- operators

    def _node(self, node: Node) -> list[Value]:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        handler = RULES.get(op)
        if handler is None:
            raise Refused(
                f"the sizes of operator {shorten(op)} are not modelled, so the graph's memory cannot be "
                "bounded; if you trust the file, load it with LoadLimits(bound_graph=False)"
            )
        return handler(self, node)
