"""How each operator a nextword graph may use changes shapes, as bounds: one function per operator.

Each rule takes the walk's context (:class:`Context`: the known values, and where to book work) and
a node, and returns a :class:`~.dims.Value` per output, or raises :class:`~.dims.Refused`. The rules
follow the ONNX operator specifications (and onnxruntime's for ``com.microsoft:DynamicQuantizeLSTM``),
and the integer values that shapes are computed from (``Shape`` -> ``Gather`` -> ``Concat`` -> ``Reshape``).
"""

from __future__ import annotations

from typing import Protocol

from .dims import (
    MAX_VALUES,
    ONE,
    Dim,
    Refused,
    Value,
    broadcast,
    normalize_axis,
    plus,
    product,
    saturated,
    shape_text,
    upper,
)
from .onnx_proto import BOOL, FLOAT, INT32, INT64, UINT8, Node, Tensor

__all__ = ["RULES", "Context", "constant_value"]

_BIG_END = 1 << 31  # a Slice end at least this large means "to the end"


class Context(Protocol):
    """What a rule may ask of the walk."""

    def get(self, node: Node, index: int) -> Value | None: ...
    def need(self, node: Node, index: int) -> Value: ...
    def ints(self, node: Node, index: int) -> list[int] | None: ...
    def cost(self, macs: Dim, node: Node) -> None: ...
    def state_width(self, width: int, what: str) -> None: ...


def constant_value(tensor: Tensor) -> Value:
    """What an initializer or a Constant node's tensor is: fixed dims, and small integer values."""
    values = None
    if tensor.values is not None and len(tensor.dims) <= 1 and tensor.data_type in (INT64, INT32, BOOL):
        values = tuple(Dim(int(v)) for v in tensor.values)
    return Value(tuple(Dim(d) for d in tensor.dims), tensor.data_type, values)


def _elementwise(ctx: Context, node: Node, dtype: int | None = None, arith=None) -> list[Value]:
    inputs = [ctx.need(node, i) for i in range(len(node.inputs)) if node.inputs[i]]
    if not inputs:
        raise Refused(f"a {node.op_type} node has no inputs; the graph is invalid")
    shape = broadcast([v.shape for v in inputs])
    ctx.cost(product(shape), node)
    values = None
    a, b = (inputs[0].values, inputs[1].values) if len(inputs) == 2 else (None, None)
    if arith and a is not None and b is not None and len(shape) <= 1:
        n = shape[0].c if shape and shape[0].const and shape[0].exact else 1 if not shape else -1
        if 0 < n <= MAX_VALUES and len(a) in (1, n) and len(b) in (1, n):
            a, b = a * (n // len(a)), b * (n // len(b))
            values = tuple(None if x is None or y is None else arith(x, y) for x, y in zip(a, b, strict=True))
    if dtype is None:
        dtype = inputs[1].dtype if node.op_type == "Where" and len(inputs) > 1 else inputs[0].dtype
    return [Value(shape, dtype, values)]


def _mul_values(x: Dim, y: Dim) -> Dim | None:
    product = x * y
    return product if product.const or product.c > 0 else None  # a negative size is not a size


def _add_values(x: Dim, y: Dim) -> Dim | None:
    if x.const and y.const:
        return saturated(x.c + y.c, 0, 0, x.exact and y.exact)
    return None


def _identity(ctx: Context, node: Node) -> list[Value]:
    return [ctx.need(node, 0)]


def _cast(ctx: Context, node: Node) -> list[Value]:
    value = ctx.need(node, 0)
    to = node.attributes.get("to")
    dtype = to.i if to is not None and to.i is not None else value.dtype
    return [Value(value.shape, dtype, value.values if dtype in (INT64, INT32, BOOL) else None)]


def _constant_node(ctx: Context, node: Node) -> list[Value]:
    attrs = node.attributes
    if "value" in attrs and attrs["value"].tensors:
        return [constant_value(attrs["value"].tensors[0])]
    if "value_int" in attrs and attrs["value_int"].i is not None:
        return [Value((), INT64, (Dim(attrs["value_int"].i),))]
    if "value_ints" in attrs and attrs["value_ints"].ints is not None:
        ints = attrs["value_ints"].ints
        return [
            Value((Dim(len(ints)),), INT64, tuple(Dim(v) for v in ints) if len(ints) <= MAX_VALUES else None)
        ]
    if "value_float" in attrs:
        return [Value((), FLOAT)]
    if "value_floats" in attrs and attrs["value_floats"].floats is not None:
        return [Value((Dim(len(attrs["value_floats"].floats)),), FLOAT)]
    if "value_strings" in attrs:
        return [Value((Dim(len(attrs["value_strings"].strings)),), 8)]
    if "value_string" in attrs:
        return [Value((), 8)]
    raise Refused("a Constant node holds no value this runtime can bound; the graph is invalid")


def _concat(ctx: Context, node: Node) -> list[Value]:
    inputs = [ctx.need(node, i) for i in range(len(node.inputs)) if node.inputs[i]]
    if not inputs or len({len(v.shape) for v in inputs}) != 1 or not inputs[0].shape:
        raise Refused("a Concat node joins tensors of different or zero rank; the graph is invalid")
    rank = len(inputs[0].shape)
    attr = node.attributes.get("axis")
    axis = normalize_axis(attr.i if attr is not None and attr.i is not None else 0, rank, "Concat")
    shape = list(inputs[0].shape)
    for value in inputs[1:]:
        for i, d in enumerate(value.shape):
            shape[i] = plus(shape[i], d) if i == axis else upper(shape[i], d)
    ctx.cost(product(shape), node)
    values = None
    if rank == 1 and all(v.values is not None for v in inputs):
        joined = tuple(x for v in inputs for x in v.values)  # type: ignore[union-attr]
        values = joined if len(joined) <= MAX_VALUES else None
    return [Value(tuple(shape), inputs[0].dtype, values)]


def _gather(ctx: Context, node: Node) -> list[Value]:
    data, indices = ctx.need(node, 0), ctx.need(node, 1)
    if not data.shape:
        raise Refused("a Gather node reads from a scalar; the graph is invalid")
    attr = node.attributes.get("axis")
    axis = normalize_axis(attr.i if attr is not None and attr.i is not None else 0, len(data.shape), "Gather")
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1 :]
    ctx.cost(product(shape), node)
    values = None
    picks = ctx.ints(node, 1)
    if data.values is not None and len(data.shape) == 1 and picks is not None and len(indices.shape) <= 1:
        n = len(data.values)
        if all(-n <= i < n for i in picks):
            values = tuple(data.values[i] for i in picks)
    return [Value(shape, data.dtype, values)]


def _shape_op(ctx: Context, node: Node) -> list[Value]:
    data = ctx.need(node, 0)
    rank = len(data.shape)
    start = node.attributes.get("start")
    end = node.attributes.get("end")
    s = start.i if start is not None and start.i is not None else 0
    e = end.i if end is not None and end.i is not None else rank
    s, e = (max(0, min(rank, x + rank if x < 0 else x)) for x in (s, e))
    dims = data.shape[s:e]
    return [Value((Dim(len(dims)),), INT64, dims)]


def _reshape(ctx: Context, node: Node) -> list[Value]:
    data, target = ctx.need(node, 0), ctx.need(node, 1)
    if len(target.shape) != 1 or not target.shape[0].const or not target.shape[0].exact:
        raise Refused(
            "a Reshape node's target shape has no fixed length; the graph's sizes cannot be bounded"
        )
    numel = product(data.shape)
    attr = node.attributes.get("allowzero")
    allowzero = bool(attr is not None and attr.i)
    wanted = target.values if target.values is not None else (None,) * target.shape[0].c
    if len(wanted) > MAX_VALUES:
        raise Refused(f"a Reshape node asks for {len(wanted)} dimensions; the graph is invalid")
    out: list[Dim | None] = []
    infer = None
    for i, want in enumerate(wanted):
        if want is None:
            out.append(Dim(numel.c, numel.b, numel.t, False))  # no larger than the whole tensor
        elif want.const and want.c == 0 and not allowzero:
            out.append(data.shape[i] if i < len(data.shape) else ONE)
        elif want.const and want.c == -1:
            if infer is not None:
                raise Refused("a Reshape node infers two dimensions (-1 twice); the graph is invalid")
            infer = i
            out.append(None)
        elif want.c < 0:
            raise Refused(f"a Reshape node asks for dimension {want.c}; the graph is invalid")
        else:
            out.append(want)
    if infer is not None:
        known = product(d for d in out if d is not None and d.exact)
        out[infer] = _divide(numel, known)
    return [Value(tuple(out), data.dtype)]  # type: ignore[arg-type]


def _divide(numel: Dim, known: Dim) -> Dim:
    """The size a Reshape infers for -1: ``numel / known``, or a bound on it."""
    if known.c > 0 and numel.b >= known.b and numel.t >= known.t:
        exact = numel.exact and known.exact and numel.c % known.c == 0
        return saturated(-(-numel.c // known.c), numel.b - known.b, numel.t - known.t, exact)
    return Dim(numel.c, numel.b, numel.t, False)  # the other dimensions are at least 1


def _slice(ctx: Context, node: Node) -> list[Value]:
    data = ctx.need(node, 0)
    rank = len(data.shape)
    starts, ends = ctx.ints(node, 1), ctx.ints(node, 2)
    count = ctx.need(node, 1).shape  # starts is 1-D: its length is the number of axes sliced
    n = count[0].c if len(count) == 1 and count[0].const and count[0].exact else None
    axes = ctx.ints(node, 3) if ctx.get(node, 3) is not None else None if n is None else list(range(n))
    steps = ctx.ints(node, 4) if ctx.get(node, 4) is not None else None if axes is None else [1] * len(axes)
    shape = list(data.shape)
    if axes is None:  # unknown axes: any dimension may shrink
        return [Value(tuple(Dim(d.c, d.b, d.t, False) for d in shape), data.dtype)]
    axes = [normalize_axis(a, rank, "Slice") for a in axes]
    known = starts is not None and ends is not None and steps is not None
    if known and not len(starts) == len(ends) == len(axes) == len(steps):  # type: ignore[arg-type]
        raise Refused("a Slice node's starts, ends, axes and steps differ in length; the graph is invalid")
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
    return [Value(tuple(shape), data.dtype, values)]


def _slice_range(dim: int, start: int, end: int, step: int) -> range:
    """The indices ONNX Slice picks along one axis of size ``dim``."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return range(max(0, min(dim, start)), max(0, min(dim, end)), step)
    return range(max(-1, min(dim - 1, start)), max(-1, min(dim - 1, end)), step)


def _squeeze(ctx: Context, node: Node) -> list[Value]:
    data = ctx.need(node, 0)
    rank = len(data.shape)
    axes = ctx.ints(node, 1)
    if axes is None and ctx.get(node, 1) is None:
        attr = node.attributes.get("axes")
        axes = attr.ints if attr is not None else [i for i, d in enumerate(data.shape) if d == ONE]
    if axes is None:
        raise Refused("a Squeeze node's axes are not constant; the graph's sizes cannot be bounded")
    drop = {normalize_axis(a, rank, "Squeeze") for a in axes}
    shape = tuple(d for i, d in enumerate(data.shape) if i not in drop)
    values = data.values if data.values is not None and len(data.values) == 1 else None
    return [Value(shape, data.dtype, values)]


def _unsqueeze(ctx: Context, node: Node) -> list[Value]:
    data = ctx.need(node, 0)
    axes = ctx.ints(node, 1)
    if axes is None and ctx.get(node, 1) is None:
        attr = node.attributes.get("axes")
        axes = attr.ints if attr is not None else None
    if axes is None or len(axes) > MAX_VALUES:
        raise Refused("an Unsqueeze node's axes are not constant; the graph's sizes cannot be bounded")
    rank = len(data.shape) + len(axes)
    where = {normalize_axis(a, rank, "Unsqueeze") for a in axes}
    if len(where) != len(axes):
        raise Refused("an Unsqueeze node repeats an axis; the graph is invalid")
    rest = iter(data.shape)
    shape = tuple(ONE if i in where else next(rest) for i in range(rank))
    values = data.values if data.values is not None and len(data.shape) == 0 else None
    return [Value(shape, data.dtype, values)]


def _transpose(ctx: Context, node: Node) -> list[Value]:
    data = ctx.need(node, 0)
    rank = len(data.shape)
    attr = node.attributes.get("perm")
    perm = attr.ints if attr is not None else list(reversed(range(rank)))
    if perm is None or sorted(perm) != list(range(rank)):
        raise Refused(
            f"a Transpose node's perm {perm} is not a permutation of {rank} axes; the graph is invalid"
        )
    return [Value(tuple(data.shape[p] for p in perm), data.dtype)]


def _matmul(ctx: Context, node: Node) -> list[Value]:
    a, b = ctx.need(node, 0), ctx.need(node, 1)
    if not a.shape or not b.shape:
        raise Refused("a MatMul node multiplies a scalar; the graph is invalid")
    left = a.shape if len(a.shape) > 1 else (ONE, *a.shape)
    right = b.shape if len(b.shape) > 1 else (*b.shape, ONE)
    shape = (*broadcast([left[:-2], right[:-2]]), left[-2], right[-1])
    inner = upper(left[-1], right[-2])
    ctx.cost(product(shape) * inner, node)
    if len(a.shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b.shape) == 1:
        shape = shape[:-1]
    return [Value(shape, INT32 if node.op_type == "MatMulInteger" else a.dtype)]


def _dequantize(ctx: Context, node: Node) -> list[Value]:
    data, scale = ctx.need(node, 0), ctx.need(node, 1)
    ctx.cost(product(data.shape), node)
    return [Value(data.shape, scale.dtype)]


def _dynamic_quantize(ctx: Context, node: Node) -> list[Value]:
    data = ctx.need(node, 0)
    ctx.cost(product(data.shape), node)
    return [Value(data.shape, UINT8), Value((), FLOAT), Value((), UINT8)]


def _lstm(ctx: Context, node: Node) -> list[Value]:
    """ONNX LSTM, and com.microsoft DynamicQuantizeLSTM (weights stored transposed, int8)."""
    x, r = ctx.need(node, 0), ctx.need(node, 2)
    ctx.need(node, 1)  # the input weights: sized by the initializer check
    quantized = node.op_type == "DynamicQuantizeLSTM"
    if len(x.shape) != 3 or len(r.shape) != 3:
        raise Refused(
            f"an {node.op_type} node's input or recurrent weights are not rank 3; the graph is invalid"
        )
    if ctx.get(node, 4) is not None:
        raise Refused(
            f"an {node.op_type} node takes sequence_lens, which nextword step graphs never do (a constant "
            "there cannot follow the batch); the file is crafted or damaged: re-export the model"
        )
    attr = node.attributes.get("hidden_size")
    width = r.shape[1] if quantized else r.shape[2]
    if attr is not None and attr.i is not None:
        width = Dim(attr.i)
    if not (width.const and width.exact and width.c > 0):
        raise Refused(f"an {node.op_type} node has no fixed hidden size; the graph's sizes cannot be bounded")
    ctx.state_width(width.c, f"the hidden size of an {node.op_type} node")
    direction = node.attributes.get("direction")
    directions = Dim(2 if direction is not None and direction.s == "bidirectional" else 1)
    _lstm_weights(ctx, node, width.c, directions.c, x.shape[2], quantized)
    layout = node.attributes.get("layout")
    batch_first = bool(layout is not None and layout.i)
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    ctx.cost(steps * batch * directions * Dim(4) * width * plus(x.shape[2], width), node)
    if batch_first:
        y, state = (batch, steps, directions, width), (batch, directions, width)
    else:
        y, state = (steps, directions, batch, width), (directions, batch, width)
    return [Value(y, x.dtype), Value(state, x.dtype), Value(state, x.dtype)]


# An LSTM's inputs that hold weights, by position (8 to 11: DynamicQuantizeLSTM's scales and zero points)
_WEIGHTS = {
    1: "input weights",
    2: "recurrent weights",
    3: "bias",
    8: "input weights' scale",
    9: "input weights' zero point",
    10: "recurrent weights' scale",
    11: "recurrent weights' zero point",
}
_SAME_SHAPE = ((8, 9), (10, 11), (8, 10))  # a zero point has its scale's shape; R's pair has W's


def _lstm_weights(
    ctx: Context, node: Node, hidden: int, directions: int, width: Dim, quantized: bool
) -> None:
    """Its weights must have, exactly, the shapes its hidden size and its input's ``width`` give them
    (stored transposed when quantized): onnxruntime before 1.29 did not check, and read past weights
    smaller than the hidden size said (microsoft/onnxruntime#29595), or past a recurrent zero point
    checked against the input's (#29462). A size known only when the graph runs is refused too: the
    exporter writes these as initializers."""
    gates, size = 4 * hidden, width.c if width.const and width.exact else None
    wanted: dict[int, tuple[tuple[int | None, ...], ...]] = {
        1: ((directions, size, gates) if quantized else (directions, gates, size),),
        2: ((directions, hidden, gates) if quantized else (directions, gates, hidden),),
        3: ((directions, 2 * gates),),
    }
    if quantized:  # a scale (and a zero point) per direction, or per direction and gate
        wanted |= dict.fromkeys((8, 9, 10, 11), ((directions,), (directions, gates)))
    shapes: dict[int, tuple[Dim, ...]] = {}
    node_a = f"{'a' if quantized else 'an'} {node.op_type} node"  # a DynamicQuantizeLSTM, an LSTM
    for index, allowed in wanted.items():
        value = ctx.get(node, index) if index < len(node.inputs) else None
        if value is None:
            continue
        shapes[index] = value.shape
        if any(_fits(value.shape, shape) for shape in allowed):
            continue
        expected = " or ".join(
            "(" + ", ".join("*" if n is None else str(n) for n in s) + ")" for s in allowed
        )
        raise Refused(
            f"{node_a} of hidden size {hidden} has {_WEIGHTS[index]} of shape "
            f"{shape_text(value.shape)}, not {expected}; the file is crafted or damaged: re-export the model"
        )
    for a, b in _SAME_SHAPE:
        if a in shapes and b in shapes and [d.c for d in shapes[a]] != [d.c for d in shapes[b]]:
            raise Refused(
                f"{node_a} has {_WEIGHTS[a]} of shape {shape_text(shapes[a])} and "
                f"{_WEIGHTS[b]} of shape {shape_text(shapes[b])}, which must be alike; the file is crafted "
                "or damaged: re-export the model"
            )


def _fits(shape: tuple[Dim, ...], wanted: tuple[int | None, ...]) -> bool:
    """Whether ``shape`` is ``wanted`` (None: any size), every size known exactly."""
    return len(shape) == len(wanted) and all(
        d.const and d.exact and (n is None or d.c == n) for d, n in zip(shape, wanted, strict=True)
    )


RULES = {
    "Identity": _identity,
    "Cast": _cast,
    "Constant": _constant_node,
    "Add": lambda ctx, node: _elementwise(ctx, node, arith=_add_values),
    "Mul": lambda ctx, node: _elementwise(ctx, node, arith=_mul_values),
    "And": lambda ctx, node: _elementwise(ctx, node, BOOL),
    "Less": lambda ctx, node: _elementwise(ctx, node, BOOL),
    "Not": lambda ctx, node: _elementwise(ctx, node, BOOL),
    "Where": lambda ctx, node: _elementwise(ctx, node),
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
