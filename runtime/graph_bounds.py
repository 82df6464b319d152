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

from .errors import ModelFileError, shorten
from .limits import LoadLimits
from .onnx_proto import BOOL, FLOAT, INT32, INT64, ITEM_BYTES, UINT8, Graph, Node, Tensor

__all__ = ["GraphBounds", "bound_graph"]

SATURATE = 1 << 80  # coefficients stop growing here: far over any limit, and keeps arithmetic cheap
MAX_POWER = 4  # powers of B and T stop growing here (anything over 1 is refused anyway)
MAX_VALUES = 64  # longest integer tensor whose values are followed (shape vectors are a few long)
_STATE = re.compile(r"([hc])_(\d+)")
_BIG_END = 1 << 31  # a Slice end at least this large means "to the end"


@dataclass(frozen=True)
class Dim:
    """A size ``c * B**b * T**t``: exactly that when ``exact``, else at most that."""

    c: int
    b: int = 0
    t: int = 0
    exact: bool = True

    @property
    def const(self) -> bool:
        return self.b == 0 and self.t == 0

    def __mul__(self, other: Dim) -> Dim:
        return _dim(self.c * other.c, self.b + other.b, self.t + other.t, self.exact and other.exact)

    def __str__(self) -> str:
        terms = [str(self.c)] if self.c != 1 or self.const else []
        terms += [f"B^{self.b}" if self.b > 1 else "B"] * (self.b > 0)
        terms += [f"T^{self.t}" if self.t > 1 else "T"] * (self.t > 0)
        return ("" if self.exact else "<=") + "*".join(terms)


ONE = Dim(1)


def _dim(c: int, b: int, t: int, exact: bool) -> Dim:
    if abs(c) > SATURATE:
        c, exact = (SATURATE if c > 0 else -SATURATE), False
    return Dim(c, min(b, MAX_POWER), min(t, MAX_POWER), exact)


def _upper(x: Dim, y: Dim) -> Dim:
    """A bound on either of two sizes (B, T >= 1)."""
    if x == y:
        return x
    return _dim(max(x.c, y.c, 0), max(x.b, y.b), max(x.t, y.t), False)


def _plus(x: Dim, y: Dim) -> Dim:
    if (x.b, x.t) == (y.b, y.t):
        return _dim(x.c + y.c, x.b, x.t, x.exact and y.exact)
    return _dim(max(x.c, 0) + max(y.c, 0), max(x.b, y.b), max(x.t, y.t), False)


def _product(dims) -> Dim:
    total = ONE
    for d in dims:
        total = total * d
    return total


@dataclass
class _Value:
    """What is known of one tensor: its shape (a bound per dimension), element type, small values."""

    shape: tuple[Dim, ...]
    dtype: int
    values: tuple[Dim | None, ...] | None = None  # known integer contents of a rank <= 1 tensor


@dataclass(frozen=True)
class GraphBounds:
    """What the graph may use at most, per batch row and position."""

    largest_tensor_bytes: int
    total_bytes: int
    macs_per_token: int
    nodes: int


class _Refused(Exception):
    """A reason to refuse, raised deep in the walk and turned into a ModelFileError once."""


def bound_graph(graph: Graph, name: str, limits: LoadLimits, format_version: int) -> GraphBounds:
    """Work out upper bounds for ``graph`` and refuse it when they exceed ``limits``.

    Raises :class:`ModelFileError` naming the file ``name``, the tensor or node, and the limit to
    raise for a file one trusts. ``format_version`` is unused today; it is passed so a later format can
    bound a different signature.
    """
    del format_version
    try:
        return _Bounder(graph, limits).run()
    except _Refused as exc:
        raise ModelFileError(f"{name}: {exc}") from None
    except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:  # a case not foreseen
        raise ModelFileError(
            f"{name}: the graph's sizes could not be bounded (internal error {type(exc).__name__}: "
            f"{shorten(str(exc))}); if you trust the file, load it with LoadLimits(bound_graph=False)"
        ) from None


class _Bounder:
    def __init__(self, graph: Graph, limits: LoadLimits) -> None:
        self.graph, self.limits = graph, limits
        self.known: dict[str, _Value] = {}
        self.largest = self.total = self.macs = 0

    # ----------------------------------------------------------------- accounting

    def run(self) -> GraphBounds:
        limits = self.limits
        if len(self.graph.nodes) > limits.max_nodes:
            raise _Refused(
                f"the graph has {len(self.graph.nodes):,} nodes, over the limit of {limits.max_nodes:,}; "
                f"{limits.widen_hint('max_nodes')}"
            )
        for tensor in self.graph.initializers:
            self._set(tensor.name, self._constant(tensor), "an initializer")
        self._inputs()
        for node in self._ordered():
            outputs = self._node(node)
            if len(node.outputs) > len(outputs):
                raise _Refused(
                    f"a {node.op_type} node names {len(node.outputs)} outputs but makes at most "
                    f"{len(outputs)}; the graph is invalid"
                )
            for out, value in zip(node.outputs, outputs, strict=False):
                if out:
                    self._set(out, value, f"a {node.op_type} node")
        self._outputs()
        if self.total > limits.max_graph_bytes:
            raise _Refused(
                f"the graph's tensors together take up to {self.total:,} bytes per batch row and position, "
                f"over the {limits.max_graph_bytes:,}-byte limit; {limits.widen_hint('max_graph_bytes')}"
            )
        if self.macs > limits.max_macs_per_token:
            raise _Refused(
                f"one step of the graph takes up to {self.macs:,} multiply-accumulates per batch row and "
                f"position, over the limit of {limits.max_macs_per_token:,}; "
                f"{limits.widen_hint('max_macs_per_token')}"
            )
        return GraphBounds(self.largest, self.total, self.macs, len(self.graph.nodes))

    def _set(self, name: str, value: _Value, made_by: str) -> None:
        if name in self.known and made_by != "an initializer":
            raise _Refused(f"tensor {shorten(name)} is written twice (by {made_by}); the graph is invalid")
        numel = _product(value.shape)
        self._linear(numel, f"tensor {shorten(name)} ({made_by})")
        size = numel.c * ITEM_BYTES.get(value.dtype, 8)
        if size > self.limits.max_tensor_bytes:
            raise _Refused(
                f"tensor {shorten(name)} ({made_by}, shape {_shape(value.shape)}) takes up to {size:,} bytes "
                f"per batch row and position, over the {self.limits.max_tensor_bytes:,}-byte limit; "
                f"{self.limits.widen_hint('max_tensor_bytes')}"
            )
        self.largest = max(self.largest, size)
        self.total += size
        self.known[name] = value

    def _cost(self, macs: Dim, node: Node) -> None:
        self._linear(macs, f"the work of a {node.op_type} node")
        self.macs += macs.c

    @staticmethod
    def _linear(size: Dim, what: str) -> None:
        if size.b > 1 or size.t > 1:
            grows = "batch size" if size.b > 1 else "number of positions"
            raise _Refused(
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
                value = _Value((B, T), info.elem_type or INT64)
            elif info.name == "logits_from":
                value = _Value((), info.elem_type or INT64)
            elif _STATE.fullmatch(info.name):
                width = info.dims[-1] if info.dims else None
                if not isinstance(width, int) or width < 1:
                    raise _Refused(f"state input {shorten(info.name)} has no fixed width ({info.dims})")
                self._state_width(width, f"state input {shorten(info.name)}")
                value = _Value((B, Dim(width)), info.elem_type or FLOAT)
            else:
                raise _Refused(
                    f"graph input {shorten(info.name)} is not part of the nextword step signature "
                    "(input_ids, logits_from, h_0, c_0, ...)"
                )
            self._set(info.name, value, "a graph input")

    def _state_width(self, width: int, what: str) -> None:
        if width > self.limits.max_state_width:
            raise _Refused(
                f"{what} is {width:,} wide, over the limit of {self.limits.max_state_width:,}; "
                f"{self.limits.widen_hint('max_state_width')}"
            )

    def _outputs(self) -> None:
        for info in self.graph.outputs:
            declared = info.dims[-1] if info.dims else None
            if info.name == "logits" and isinstance(declared, int) and declared > self.limits.max_vocab_size:
                raise _Refused(
                    f"the logits are declared {declared:,} wide (the vocabulary), over the limit of "
                    f"{self.limits.max_vocab_size:,}; {self.limits.widen_hint('max_vocab_size')}"
                )
            value = self.known.get(info.name)
            if value is None:
                raise _Refused(f"graph output {shorten(info.name)} is not computed by any node")
            real = value.shape[-1] if value.shape else None
            if (
                isinstance(declared, int)
                and real is not None
                and real.exact
                and real.const
                and real.c != declared
            ):
                raise _Refused(
                    f"graph output {shorten(info.name)} is declared {declared} wide but the graph makes it "
                    f"{real.c} wide; the file is crafted or damaged: re-export the model"
                )

    def _ordered(self) -> list[Node]:
        """The nodes in dependency order (Kahn's algorithm); refuses cycles and dangling inputs."""
        producer: dict[str, int] = {}
        for i, node in enumerate(self.graph.nodes):
            for out in node.outputs:
                if out and (out in producer or out in self.known):
                    raise _Refused(f"tensor {shorten(out)} is written twice; the graph is invalid")
                if out:
                    producer[out] = i
        waiting = [0] * len(self.graph.nodes)
        users: dict[int, list[int]] = {}
        for i, node in enumerate(self.graph.nodes):
            for name in node.inputs:
                if not name or name in self.known:
                    continue
                if name not in producer:
                    raise _Refused(
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
            raise _Refused("the graph has a cycle; the file is crafted or damaged: re-export the model")
        return order

    # ----------------------------------------------------------------- values

    @staticmethod
    def _constant(tensor: Tensor) -> _Value:
        values = None
        if tensor.values is not None and len(tensor.dims) <= 1 and tensor.data_type in (INT64, INT32, BOOL):
            values = tuple(Dim(int(v)) for v in tensor.values)
        return _Value(tuple(Dim(d) for d in tensor.dims), tensor.data_type, values)

    def _get(self, node: Node, index: int) -> _Value | None:
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        return self.known[node.inputs[index]]

    def _need(self, node: Node, index: int) -> _Value:
        value = self._get(node, index)
        if value is None:
            raise _Refused(f"a {node.op_type} node lacks its input {index}; the graph is invalid")
        return value

    def _ints(self, node: Node, index: int) -> list[int] | None:
        """The constant integer values of input ``index``, or None when they are not known."""
        value = self._get(node, index)
        if value is None or value.values is None or any(v is None or not v.const for v in value.values):
            return None
        return [v.c for v in value.values]  # type: ignore[union-attr]

    # ----------------------------------------------------------------- operators

    def _node(self, node: Node) -> list[_Value]:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        handler = _HANDLERS.get(op)
        if handler is None:
            raise _Refused(
                f"the sizes of operator {shorten(op)} are not modelled, so the graph's memory cannot be "
                "bounded; if you trust the file, load it with LoadLimits(bound_graph=False)"
            )
        return handler(self, node)


def _shape(shape: tuple[Dim, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise _Refused(f"a {op} node uses axis {axis} of a rank-{rank} tensor; the graph is invalid")
    return axis % rank


def _broadcast(shapes: list[tuple[Dim, ...]]) -> tuple[Dim, ...]:
    rank = max(len(s) for s in shapes)
    padded = [(ONE,) * (rank - len(s)) + s for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        real = [d for d in dims if d != ONE]
        merged = real[0] if real else ONE
        for d in real[1:]:
            merged = _upper(merged, d)
        out.append(merged)
    return tuple(out)


def _elementwise(self: _Bounder, node: Node, dtype: int | None = None, arith=None) -> list[_Value]:
    inputs = [self._need(node, i) for i in range(len(node.inputs)) if node.inputs[i]]
    if not inputs:
        raise _Refused(f"a {node.op_type} node has no inputs; the graph is invalid")
    shape = _broadcast([v.shape for v in inputs])
    self._cost(_product(shape), node)
    values = None
    if arith and len(inputs) == 2 and all(v.values is not None for v in inputs) and len(shape) <= 1:
        a, b = inputs[0].values, inputs[1].values
        n = shape[0].c if shape and shape[0].const and shape[0].exact else 1 if not shape else -1
        if 0 < n <= MAX_VALUES and len(a) in (1, n) and len(b) in (1, n):  # type: ignore[arg-type]
            a, b = a * (n // len(a)), b * (n // len(b))  # type: ignore[operator]
            values = tuple(None if x is None or y is None else arith(x, y) for x, y in zip(a, b, strict=True))
    if dtype is None:
        dtype = inputs[1].dtype if node.op_type == "Where" and len(inputs) > 1 else inputs[0].dtype
    return [_Value(shape, dtype, values)]


def _mul_values(x: Dim, y: Dim) -> Dim | None:
    product = x * y
    return product if product.const or product.c > 0 else None  # a negative size is not a size


def _add_values(x: Dim, y: Dim) -> Dim | None:
    if x.const and y.const:
        return _dim(x.c + y.c, 0, 0, x.exact and y.exact)
    return None


def _identity(self: _Bounder, node: Node) -> list[_Value]:
    return [self._need(node, 0)]


def _cast(self: _Bounder, node: Node) -> list[_Value]:
    value = self._need(node, 0)
    to = node.attributes.get("to")
    dtype = to.i if to is not None and to.i is not None else value.dtype
    return [_Value(value.shape, dtype, value.values if dtype in (INT64, INT32, BOOL) else None)]


def _constant_node(self: _Bounder, node: Node) -> list[_Value]:
    attrs = node.attributes
    if "value" in attrs and attrs["value"].tensors:
        return [self._constant(attrs["value"].tensors[0])]
    if "value_int" in attrs and attrs["value_int"].i is not None:
        return [_Value((), INT64, (Dim(attrs["value_int"].i),))]
    if "value_ints" in attrs and attrs["value_ints"].ints is not None:
        ints = attrs["value_ints"].ints
        return [
            _Value((Dim(len(ints)),), INT64, tuple(Dim(v) for v in ints) if len(ints) <= MAX_VALUES else None)
        ]
    if "value_float" in attrs:
        return [_Value((), FLOAT)]
    if "value_floats" in attrs and attrs["value_floats"].floats is not None:
        return [_Value((Dim(len(attrs["value_floats"].floats)),), FLOAT)]
    if "value_strings" in attrs:
        return [_Value((Dim(len(attrs["value_strings"].strings)),), 8)]
    if "value_string" in attrs:
        return [_Value((), 8)]
    raise _Refused("a Constant node holds no value this runtime can bound; the graph is invalid")


def _concat(self: _Bounder, node: Node) -> list[_Value]:
    inputs = [self._need(node, i) for i in range(len(node.inputs)) if node.inputs[i]]
    if not inputs or len({len(v.shape) for v in inputs}) != 1 or not inputs[0].shape:
        raise _Refused("a Concat node joins tensors of different or zero rank; the graph is invalid")
    rank = len(inputs[0].shape)
    attr = node.attributes.get("axis")
    axis = _axis(attr.i if attr is not None and attr.i is not None else 0, rank, "Concat")
    shape = list(inputs[0].shape)
    for value in inputs[1:]:
        for i, d in enumerate(value.shape):
            shape[i] = _plus(shape[i], d) if i == axis else _upper(shape[i], d)
    self._cost(_product(shape), node)
    values = None
    if rank == 1 and all(v.values is not None for v in inputs):
        joined = tuple(x for v in inputs for x in v.values)  # type: ignore[union-attr]
        values = joined if len(joined) <= MAX_VALUES else None
    return [_Value(tuple(shape), inputs[0].dtype, values)]


def _gather(self: _Bounder, node: Node) -> list[_Value]:
    data, indices = self._need(node, 0), self._need(node, 1)
    if not data.shape:
        raise _Refused("a Gather node reads from a scalar; the graph is invalid")
    attr = node.attributes.get("axis")
    axis = _axis(attr.i if attr is not None and attr.i is not None else 0, len(data.shape), "Gather")
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1 :]
    self._cost(_product(shape), node)
    values = None
    picks = self._ints(node, 1)
    if data.values is not None and len(data.shape) == 1 and picks is not None and len(indices.shape) <= 1:
        n = len(data.values)
        if all(-n <= i < n for i in picks):
            values = tuple(data.values[i] for i in picks)
    return [_Value(shape, data.dtype, values)]


def _shape_op(self: _Bounder, node: Node) -> list[_Value]:
    data = self._need(node, 0)
    rank = len(data.shape)
    start = node.attributes.get("start")
    end = node.attributes.get("end")
    s = start.i if start is not None and start.i is not None else 0
    e = end.i if end is not None and end.i is not None else rank
    s, e = (max(0, min(rank, x + rank if x < 0 else x)) for x in (s, e))
    dims = data.shape[s:e]
    return [_Value((Dim(len(dims)),), INT64, dims)]


def _reshape(self: _Bounder, node: Node) -> list[_Value]:
    data, target = self._need(node, 0), self._need(node, 1)
    if len(target.shape) != 1 or not target.shape[0].const or not target.shape[0].exact:
        raise _Refused(
            "a Reshape node's target shape has no fixed length; the graph's sizes cannot be bounded"
        )
    numel = _product(data.shape)
    attr = node.attributes.get("allowzero")
    allowzero = bool(attr is not None and attr.i)
    wanted = target.values if target.values is not None else (None,) * target.shape[0].c
    if len(wanted) > MAX_VALUES:
        raise _Refused(f"a Reshape node asks for {len(wanted)} dimensions; the graph is invalid")
    out: list[Dim | None] = []
    infer = None
    for i, want in enumerate(wanted):
        if want is None:
            out.append(Dim(numel.c, numel.b, numel.t, False))  # no larger than the whole tensor
        elif want.const and want.c == 0 and not allowzero:
            out.append(data.shape[i] if i < len(data.shape) else ONE)
        elif want.const and want.c == -1:
            if infer is not None:
                raise _Refused("a Reshape node infers two dimensions (-1 twice); the graph is invalid")
            infer = i
            out.append(None)
        elif want.c < 0:
            raise _Refused(f"a Reshape node asks for dimension {want.c}; the graph is invalid")
        else:
            out.append(want)
    if infer is not None:
        known = _product(d for d in out if d is not None and d.exact)
        out[infer] = _divide(numel, known)
    return [_Value(tuple(out), data.dtype)]  # type: ignore[arg-type]


def _divide(numel: Dim, known: Dim) -> Dim:
    """The size a Reshape infers for -1: ``numel / known``, or a bound on it."""
    if known.c > 0 and numel.b >= known.b and numel.t >= known.t:
        exact = numel.exact and known.exact and numel.c % known.c == 0
        return _dim(-(-numel.c // known.c), numel.b - known.b, numel.t - known.t, exact)
    return Dim(numel.c, numel.b, numel.t, False)  # the other dimensions are at least 1


def _slice(self: _Bounder, node: Node) -> list[_Value]:
    data = self._need(node, 0)
    rank = len(data.shape)
    starts, ends = self._ints(node, 1), self._ints(node, 2)
    count = self._need(node, 1).shape  # starts is 1-D: its length is the number of axes sliced
    n = count[0].c if len(count) == 1 and count[0].const and count[0].exact else None
    axes = self._ints(node, 3) if self._get(node, 3) is not None else None if n is None else list(range(n))
    steps = (
        self._ints(node, 4) if self._get(node, 4) is not None else None if axes is None else [1] * len(axes)
    )
    shape = list(data.shape)
    if axes is None:  # unknown axes: any dimension may shrink
        return [_Value(tuple(Dim(d.c, d.b, d.t, False) for d in shape), data.dtype)]
    axes = [_axis(a, rank, "Slice") for a in axes]
    known = starts is not None and ends is not None and steps is not None
    if known and not len(starts) == len(ends) == len(axes) == len(steps):  # type: ignore[arg-type]
        raise _Refused("a Slice node's starts, ends, axes and steps differ in length; the graph is invalid")
    values = None
    for k, axis in enumerate(axes):
        d = shape[axis]
        if known and steps[k] != 0 and d.const and d.exact:  # type: ignore[index]
            picked = _slice_range(d.c, starts[k], ends[k], steps[k])  # type: ignore[index]
            shape[axis] = Dim(len(picked))
            if rank == 1 and data.values is not None and len(data.values) == d.c:
                values = tuple(data.values[i] for i in picked)
        elif known and steps[k] == 1 and starts[k] == 0 and ends[k] >= _BIG_END:  # type: ignore[index]
            pass  # the whole dimension
        else:
            shape[axis] = Dim(d.c, d.b, d.t, False)
    return [_Value(tuple(shape), data.dtype, values)]


def _slice_range(dim: int, start: int, end: int, step: int) -> range:
    """The indices ONNX Slice picks along one axis of size ``dim``."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return range(max(0, min(dim, start)), max(0, min(dim, end)), step)
    return range(max(-1, min(dim - 1, start)), max(-1, min(dim - 1, end)), step)


def _squeeze(self: _Bounder, node: Node) -> list[_Value]:
    data = self._need(node, 0)
    rank = len(data.shape)
    axes = self._ints(node, 1)
    if axes is None and self._get(node, 1) is None:
        attr = node.attributes.get("axes")
        axes = attr.ints if attr is not None else [i for i, d in enumerate(data.shape) if d == ONE]
    if axes is None:
        raise _Refused("a Squeeze node's axes are not constant; the graph's sizes cannot be bounded")
    drop = {_axis(a, rank, "Squeeze") for a in axes}
    shape = tuple(d for i, d in enumerate(data.shape) if i not in drop)
    values = data.values if data.values is not None and len(data.values) == 1 else None
    return [_Value(shape, data.dtype, values)]


def _unsqueeze(self: _Bounder, node: Node) -> list[_Value]:
    data = self._need(node, 0)
    axes = self._ints(node, 1)
    if axes is None and self._get(node, 1) is None:
        attr = node.attributes.get("axes")
        axes = attr.ints if attr is not None else None
    if axes is None or len(axes) > MAX_VALUES:
        raise _Refused("an Unsqueeze node's axes are not constant; the graph's sizes cannot be bounded")
    rank = len(data.shape) + len(axes)
    where = {_axis(a, rank, "Unsqueeze") for a in axes}
    if len(where) != len(axes):
        raise _Refused("an Unsqueeze node repeats an axis; the graph is invalid")
    rest = iter(data.shape)
    shape = tuple(ONE if i in where else next(rest) for i in range(rank))
    values = data.values if data.values is not None and len(data.shape) == 0 else None
    return [_Value(shape, data.dtype, values)]


def _transpose(self: _Bounder, node: Node) -> list[_Value]:
    data = self._need(node, 0)
    rank = len(data.shape)
    attr = node.attributes.get("perm")
    perm = attr.ints if attr is not None else list(reversed(range(rank)))
    if perm is None or sorted(perm) != list(range(rank)):
        raise _Refused(
            f"a Transpose node's perm {perm} is not a permutation of {rank} axes; the graph is invalid"
        )
    return [_Value(tuple(data.shape[p] for p in perm), data.dtype)]


def _matmul(self: _Bounder, node: Node) -> list[_Value]:
    a, b = self._need(node, 0), self._need(node, 1)
    if not a.shape or not b.shape:
        raise _Refused("a MatMul node multiplies a scalar; the graph is invalid")
    left = a.shape if len(a.shape) > 1 else (ONE, *a.shape)
    right = b.shape if len(b.shape) > 1 else (*b.shape, ONE)
    shape = (*_broadcast([left[:-2], right[:-2]]), left[-2], right[-1])
    inner = _upper(left[-1], right[-2])
    self._cost(_product(shape) * inner, node)
    if len(a.shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b.shape) == 1:
        shape = shape[:-1]
    return [_Value(shape, INT32 if node.op_type == "MatMulInteger" else a.dtype)]


def _dequantize(self: _Bounder, node: Node) -> list[_Value]:
    data, scale = self._need(node, 0), self._need(node, 1)
    self._cost(_product(data.shape), node)
    return [_Value(data.shape, scale.dtype)]


def _dynamic_quantize(self: _Bounder, node: Node) -> list[_Value]:
    data = self._need(node, 0)
    self._cost(_product(data.shape), node)
    return [_Value(data.shape, UINT8), _Value((), FLOAT), _Value((), UINT8)]


def _lstm(self: _Bounder, node: Node) -> list[_Value]:
    """ONNX LSTM, and com.microsoft DynamicQuantizeLSTM (weights stored transposed, int8)."""
    x, r = self._need(node, 0), self._need(node, 2)
    self._need(node, 1)  # the input weights: sized by the initializer check
    quantized = node.op_type == "DynamicQuantizeLSTM"
    if len(x.shape) != 3 or len(r.shape) != 3:
        raise _Refused(
            f"an {node.op_type} node's input or recurrent weights are not rank 3; the graph is invalid"
        )
    if self._get(node, 4) is not None:
        raise _Refused(
            f"an {node.op_type} node takes sequence_lens, which nextword step graphs never do (a constant "
            "there cannot follow the batch); the file is crafted or damaged: re-export the model"
        )
    attr = node.attributes.get("hidden_size")
    width = r.shape[1] if quantized else r.shape[2]
    if attr is not None and attr.i is not None:
        width = Dim(attr.i)
    if not (width.const and width.exact and width.c > 0):
        raise _Refused(
            f"an {node.op_type} node has no fixed hidden size; the graph's sizes cannot be bounded"
        )
    self._state_width(width.c, f"the hidden size of an {node.op_type} node")
    direction = node.attributes.get("direction")
    directions = Dim(2 if direction is not None and direction.s == "bidirectional" else 1)
    layout = node.attributes.get("layout")
    batch_first = bool(layout is not None and layout.i)
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    self._cost(steps * batch * directions * Dim(4) * width * _plus(x.shape[2], width), node)
    if batch_first:
        y, state = (batch, steps, directions, width), (batch, directions, width)
    else:
        y, state = (steps, directions, batch, width), (directions, batch, width)
    return [_Value(y, x.dtype), _Value(state, x.dtype), _Value(state, x.dtype)]


_HANDLERS = {
    "Identity": _identity,
    "Cast": _cast,
    "Constant": _constant_node,
    "Add": lambda self, node: _elementwise(self, node, arith=_add_values),
    "Mul": lambda self, node: _elementwise(self, node, arith=_mul_values),
    "And": lambda self, node: _elementwise(self, node, BOOL),
    "Less": lambda self, node: _elementwise(self, node, BOOL),
    "Not": lambda self, node: _elementwise(self, node, BOOL),
    "Where": lambda self, node: _elementwise(self, node),
    "Concat": _concat,
    "Gather": _gather,
    "Shape": _shape_op,
    "Reshape": _reshape,
    "Slice": _slice,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "DequantizeLinear": _dequantize,
    "DynamicQuantizeLinear": _dynamic_quantize,
    "LSTM": _lstm,
    "com.microsoft:DynamicQuantizeLSTM": _lstm,
}
