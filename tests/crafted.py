"""Crafted model files: a valid exported model edited with the ``onnx`` package into a hostile one.

Shared by the hardening tests and the graph-mutation fuzz test. Each builder takes the ``ModelProto``
of a model the test fixtures exported (2 LSTM layers of 32 units, embedding 16, a vocabulary of a few
dozen words) and returns it edited; none of them is bigger than a few kilobytes more than the original.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT64_MAX = np.iinfo(np.int64).max


def proto(path) -> onnx.ModelProto:
    return onnx.load(str(path))


def initializer(proto: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in proto.graph.initializer if t.name == name)


def replace_initializer(proto: onnx.ModelProto, name: str, array: np.ndarray) -> onnx.ModelProto:
    initializer(proto, name).CopyFrom(numpy_helper.from_array(np.asarray(array), name))
    return proto


def find_initializer(proto: onnx.ModelProto, suffix: str) -> str:
    """The name of the initializer whose name ends with ``suffix`` (names differ between exports)."""
    return next(t.name for t in proto.graph.initializer if t.name.endswith(suffix))


def embedding_gather(proto: onnx.ModelProto) -> onnx.NodeProto:
    """The Gather that looks up token vectors: the one reading a 2-D initializer (vocab x width, or
    width x vocab gathered on axis 1 where the output layer shares the matrix)."""
    tables = {t.name for t in proto.graph.initializer if len(t.dims) == 2}
    return next(n for n in proto.graph.node if n.op_type == "Gather" and n.input[0] in tables)


def embedding_name(proto: onnx.ModelProto) -> str:
    return embedding_gather(proto).input[0]


def set_meta(proto: onnx.ModelProto, key: str, value: str) -> onnx.ModelProto:
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
            return proto
    proto.metadata_props.add(key=key, value=value)
    return proto


def meta(proto: onnx.ModelProto, key: str) -> str:
    return next(p.value for p in proto.metadata_props if p.key == key)


def declare_width(proto: onnx.ModelProto, names: tuple[str, ...], width: int) -> onnx.ModelProto:
    """Change the declared last dimension of the named graph inputs and outputs."""
    for value in [*proto.graph.input, *proto.graph.output]:
        if value.name in names:
            value.type.tensor_type.shape.dim[-1].dim_value = width
    return proto


def add_initializer(proto: onnx.ModelProto, name: str, array: np.ndarray) -> str:
    proto.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    return name


def rename_output(proto: onnx.ModelProto, old: str, new: str) -> None:
    """Make the node that writes ``old`` write ``new`` instead (so a new node can produce ``old``)."""
    for node in proto.graph.node:
        for i, out in enumerate(node.output):
            if out == old:
                node.output[i] = new


# --------------------------------------------------------------------------- files that load, then fail


def hidden_logits_width(proto: onnx.ModelProto, declared: int) -> onnx.ModelProto:
    """The graph makes logits as wide as before, but the metadata and the declared output say
    ``declared``: the tokenizer is cut to that many tokens, and the logits go through
    ``Reshape(x, Shape(x))``, which hides their width from onnxruntime's shape inference."""
    tokenizer = json.loads(meta(proto, "nextword.tokenizer"))
    tokenizer["tokens"] = tokenizer["tokens"][:declared]
    set_meta(proto, "nextword.tokenizer", json.dumps(tokenizer))
    declare_width(proto, ("logits",), declared)
    rename_output(proto, "logits", "real_logits")
    proto.graph.node.extend(
        [
            helper.make_node("Shape", ["real_logits"], ["real_shape"]),
            helper.make_node("Reshape", ["real_logits", "real_shape"], ["logits"]),
        ]
    )
    return proto


def short_embedding(proto: onnx.ModelProto, rows: int) -> onnx.ModelProto:
    """An embedding table with fewer rows than the tokenizer has tokens (along the gathered axis)."""
    gather = embedding_gather(proto)
    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    table = numpy_helper.to_array(initializer(proto, gather.input[0]))
    return replace_initializer(proto, gather.input[0], np.take(table, np.arange(rows), axis=axis))


def sequence_lens(proto: onnx.ModelProto, value: int) -> onnx.ModelProto:
    """The first LSTM gets a constant ``sequence_lens`` (one entry per probe row)."""
    add_initializer(proto, "crafted_sequence_lens", np.array([value, value], dtype=np.int32))
    lstm = next(n for n in proto.graph.node if n.op_type in ("LSTM", "DynamicQuantizeLSTM"))
    while len(lstm.input) < 5:
        lstm.input.append("")
    lstm.input[4] = "crafted_sequence_lens"
    return proto


def fails_below_batch_two(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The last LSTM's output (time, batch, units) goes through ``Reshape(x, [0, 2, -1])``: the identity
    for a batch of two (the probe's); for one row it halves the units, and the output layer's MatMul
    fails in onnxruntime."""
    lstm = [n for n in proto.graph.node if n.op_type in ("LSTM", "DynamicQuantizeLSTM")][-1]
    squeeze = next(n for n in proto.graph.node if n.op_type == "Squeeze" and n.input[0] == lstm.output[0])
    name = squeeze.output[0]
    rename_output(proto, name, "before_crafted_reshape")
    target = add_initializer(proto, "crafted_target", np.array([0, 2, -1], dtype=np.int64))
    proto.graph.node.append(helper.make_node("Reshape", ["before_crafted_reshape", target], [name]))
    return proto


# --------------------------------------------------------------------------- memory and time


def doubling_concats(proto: onnx.ModelProto, times: int = 34) -> onnx.ModelProto:
    """A 1 KiB constant joined to itself ``times`` times: 2**times KiB once onnxruntime folds it."""
    name = add_initializer(proto, "seed_0", np.zeros(256, dtype=np.float32))
    for i in range(times):
        proto.graph.node.append(helper.make_node("Concat", [name, name], [f"seed_{i + 1}"], axis=0))
        name = f"seed_{i + 1}"
    return proto


def constant_outer_product(proto: onnx.ModelProto, width: int) -> onnx.ModelProto:
    """``MatMul`` of a (width, 1) and a (1, width) constant: width**2 floats from 8 * width bytes."""
    column = add_initializer(proto, "column", np.ones((width, 1), dtype=np.float32))
    row = add_initializer(proto, "row", np.ones((1, width), dtype=np.float32))
    proto.graph.node.append(helper.make_node("MatMul", [column, row], ["outer"]))
    return proto


def broadcast_product(proto: onnx.ModelProto, width: int) -> onnx.ModelProto:
    """``Add`` of a (width, 1) and a (1, width) constant: broadcasting makes width**2 floats."""
    column = add_initializer(proto, "column", np.ones((width, 1), dtype=np.float32))
    row = add_initializer(proto, "row", np.ones((1, width), dtype=np.float32))
    proto.graph.node.append(helper.make_node("Add", [column, row], ["outer"]))
    return proto


def positions_outer_product(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The ids as floats, (B * T, 1) x (1, B * T): a tensor that grows with the square of the input."""
    column = add_initializer(proto, "as_column", np.array([-1, 1], dtype=np.int64))
    row = add_initializer(proto, "as_row", np.array([1, -1], dtype=np.int64))
    proto.graph.node.extend(
        [
            helper.make_node("Cast", ["input_ids"], ["ids_float"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["ids_float", column], ["ids_column"]),
            helper.make_node("Reshape", ["ids_float", row], ["ids_row"]),
            helper.make_node("MatMul", ["ids_column", "ids_row"], ["ids_outer"]),
        ]
    )
    return proto


def wide_lstm(proto: onnx.ModelProto, hidden: int) -> onnx.ModelProto:
    """The first LSTM claims ``hidden`` units (its weights stay small)."""
    lstm = next(n for n in proto.graph.node if n.op_type in ("LSTM", "DynamicQuantizeLSTM"))
    for attribute in lstm.attribute:
        if attribute.name == "hidden_size":
            attribute.i = hidden
    return proto


def lstm_outgrows_its_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The first LSTM claims twice its hidden units, as do the state its graph declares, while its
    weights stay as they are: onnxruntime before 1.29 read past them."""
    lstm = next(n for n in proto.graph.node if n.op_type in ("LSTM", "DynamicQuantizeLSTM"))
    hidden = next(a.i for a in lstm.attribute if a.name == "hidden_size")
    return declare_width(wide_lstm(proto, 2 * hidden), ("h_0", "c_0", "h_0_out", "c_0_out"), 2 * hidden)


def huge_scores(proto: onnx.ModelProto, factor: float = 1e30) -> onnx.ModelProto:
    """The logits times ``factor``: finite, but far past any trained model's (scaled by a temperature's
    1/T they overflowed float32 into NaN probabilities)."""
    rename_output(proto, "logits", "real_logits")
    scale = add_initializer(proto, "crafted_factor", np.float32([factor]))
    proto.graph.node.append(helper.make_node("Mul", ["real_logits", scale], ["logits"]))
    return proto


def bias_sized_at_run_time(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The first LSTM's bias read through a Slice whose end comes from the batch size: its size is known
    only when the graph runs (a bound, not a size), which shape checks cannot hold to the hidden size."""
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    for name, value in (("c_idx", [0]), ("c_thousand", [1000]), ("c_zero", [0]), ("c_axis", [1])):
        add_initializer(proto, name, np.asarray(value, dtype=np.int64))
    proto.graph.node.extend(
        [
            helper.make_node("Shape", ["h_0"], ["c_shape"]),
            helper.make_node("Gather", ["c_shape", "c_idx"], ["c_batch"]),
            helper.make_node("Mul", ["c_batch", "c_thousand"], ["c_end"]),
            helper.make_node("Slice", [lstm.input[3], "c_zero", "c_end", "c_axis"], ["c_bias"]),
        ]
    )
    lstm.input[3] = "c_bias"
    return proto


def missing_data(proto: onnx.ModelProto, dims: list[int]) -> onnx.ModelProto:
    """An initializer that declares ``dims`` but holds one float."""
    tensor = helper.make_tensor("hollow", TensorProto.FLOAT, [1], [0.0])
    del tensor.dims[:]
    tensor.dims.extend(dims)
    proto.graph.initializer.append(tensor)
    return proto


def cap_logits(proto: onnx.ModelProto, axis: int, end: int) -> onnx.ModelProto:
    """The logits go through ``Slice(x, [0], [end], [axis])``: fine for the probe (2 rows, 2
    positions) when ``end`` >= 2, wrong for larger batches (axis 0) or longer inputs (axis 1)."""
    rename_output(proto, "logits", "real_logits")
    starts = add_initializer(proto, "cap_starts", np.array([0], dtype=np.int64))
    ends = add_initializer(proto, "cap_ends", np.array([end], dtype=np.int64))
    axes = add_initializer(proto, "cap_axes", np.array([axis], dtype=np.int64))
    proto.graph.node.append(helper.make_node("Slice", ["real_logits", starts, ends, axes], ["logits"]))
    return proto


# --------------------------------------------------------------------------- tensors and scales


def dequantize(proto: onnx.ModelProto, scale: np.ndarray, raw: bool = True) -> onnx.ModelProto:
    """A ``DequantizeLinear`` of a small uint8 constant by the initializer ``crafted_scale`` (stored as
    raw_data, or in float_data when ``raw`` is false); its output feeds nothing."""
    add_initializer(proto, "crafted_codes", np.arange(4, dtype=np.uint8))
    scale = np.asarray(scale, dtype=np.float32)
    if raw:
        add_initializer(proto, "crafted_scale", scale)
    else:
        tensor = helper.make_tensor("crafted_scale", TensorProto.FLOAT, scale.shape, scale.ravel().tolist())
        proto.graph.initializer.append(tensor)
    node = helper.make_node("DequantizeLinear", ["crafted_codes", "crafted_scale"], ["crafted_dequantized"])
    proto.graph.node.append(node)
    return proto


def lstm_bias(proto: onnx.ModelProto, at: int, value: float, raw: bool = True) -> onnx.ModelProto:
    """The first LSTM's bias (its input 3, a float initializer) with element ``at`` set to ``value``,
    stored as raw_data or, ``raw`` false, in float_data: a NaN there loads and runs, its output finite
    nonsense, where the file is not refused."""
    name = next(n for n in proto.graph.node if n.op_type == "LSTM").input[3]
    bias = numpy_helper.to_array(initializer(proto, name)).copy()
    bias.flat[at] = value
    if raw:
        return replace_initializer(proto, name, bias)
    tensor = helper.make_tensor(name, TensorProto.FLOAT, bias.shape, bias.ravel().tolist())
    initializer(proto, name).CopyFrom(tensor)
    return proto


def sparse_initializer(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A sparse initializer of 3 floats in a (1000, 1000) tensor."""
    values = numpy_helper.from_array(np.ones(3, dtype=np.float32), "crafted_sparse")
    indices = numpy_helper.from_array(np.array([0, 5, 999_999], dtype=np.int64), "crafted_sparse_indices")
    proto.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [1000, 1000]))
    return proto


def sparse_constant(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A ``Constant`` node whose ``sparse_value`` holds 2 floats of a 10,000-element vector."""
    values = numpy_helper.from_array(np.ones(2, dtype=np.float32), "crafted_sparse_value")
    indices = numpy_helper.from_array(np.array([1, 9_999], dtype=np.int64), "crafted_sparse_at")
    sparse = helper.make_sparse_tensor(values, indices, [10_000])
    proto.graph.node.append(helper.make_node("Constant", [], ["crafted_constant"], sparse_value=sparse))
    return proto


def retyped(proto: onnx.ModelProto, data_type: int) -> onnx.ModelProto:
    """The first initializer claims element type ``data_type`` (its bytes unchanged)."""
    proto.graph.initializer[0].data_type = data_type
    return proto


def segmented(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The first initializer carries a ``segment`` (a part of a tensor split over several)."""
    proto.graph.initializer[0].segment.begin = 0
    proto.graph.initializer[0].segment.end = 1
    return proto
