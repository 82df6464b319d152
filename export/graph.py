"""Keras step model -> ONNX graph with tf2onnx, and checks of the graph's structure."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import keras
import onnx
import tensorflow as tf
import tf2onnx

from nextword.runtime.model_file import INPUT_IDS, LOGITS, LOGITS_FROM, state_input_names, state_output_names
from nextword.train.config import ModelConfig
from nextword.train.model import build_step_model, copy_weights

from .canonical import canonical_names
from .errors import ExportError

__all__ = ["ExportError", "check_graph", "convert"]

logger = logging.getLogger(__name__)

# Ops that mean the LSTM was not fused into ONNX LSTM nodes (a per-step loop, or cuDNN kernels).
FORBIDDEN_OPS = frozenset({"Loop", "Scan", "If"})


def convert(trained: keras.Model, config: ModelConfig, vocab_size: int, opset: int) -> onnx.ModelProto:
    """Convert the trained weights into a stateful ONNX step graph.

    Inputs: ``input_ids`` int64 (batch, time), ``h_i``/``c_i`` float32 (batch, units) per layer, and
    ``logits_from`` int64 scalar. Outputs: ``logits`` float32 (batch, time', vocab) for the positions
    ``logits_from`` on (``[:, logits_from:]``; -1 is the last position alone), ``h_i_out``/``c_i_out``
    per layer. The output layer runs only at those positions: feeding a prompt with ``logits_from=-1``
    skips it everywhere but at the end. Every other name in the graph is canonical
    (:func:`~.canonical.canonical_names`): converting the same weights twice gives the same graph.
    """
    step = build_step_model(config, vocab_size)
    copy_weights(trained, step)
    state_names = state_input_names(config.num_layers)
    signature = [
        tf.TensorSpec([None, None], tf.int64, name=INPUT_IDS),
        *[tf.TensorSpec([None, config.lstm_units], tf.float32, name=name) for name in state_names],
        tf.TensorSpec([], tf.int64, name=LOGITS_FROM),
    ]
    embedding, output = _input_output(step, config)
    lstms = [step.get_layer(f"lstm_{layer}") for layer in range(config.num_layers)]

    @tf.function(input_signature=signature)
    def step_fn(input_ids, *rest):
        *state, logits_from = rest
        x, new_state = embedding(input_ids), []  # (B, T, E)
        for layer, lstm in enumerate(lstms):
            x, h, c = lstm(x, initial_state=state[2 * layer : 2 * layer + 2], training=False)  # (B, T, U)
            new_state += [h, c]
        logits = output(x[:, logits_from:, :])  # (B, T', V)
        return {LOGITS: logits, **dict(zip(state_output_names(config.num_layers), new_state, strict=True))}

    proto, _ = tf2onnx.convert.from_function(step_fn, input_signature=signature, opset=opset)
    _name_dynamic_dims(proto)
    proto.producer_name = "nextword"
    return canonical_names(proto)  # the same run converts to the same bytes


def _input_output(step: keras.Model, config: ModelConfig) -> tuple[Callable, Callable]:
    """The embedding lookup (ids (B, T) -> (B, T, E)) and the output layer ((B, T', U) -> logits).

    With tied embeddings both read one constant, the transposed matrix (E, V): the lookup gathers its
    columns and the output layer multiplies by it, so the file holds the matrix once.
    """
    embedding = step.get_layer("embedding")
    if not config.tie_embeddings:
        return embedding, step.get_layer("logits")
    (matrix,) = embedding.get_weights()  # (V, E)
    (bias,) = step.get_layer("logits").get_weights()  # (V,)
    table = tf.Variable(matrix.T.copy(), trainable=False)  # (E, V); frozen into a constant by tf2onnx
    projection = step.get_layer("projection") if config.lstm_units != config.embedding_dim else None

    def lookup(ids):
        return tf.transpose(tf.gather(table, ids, axis=1), [1, 2, 0])  # (E, B, T) -> (B, T, E)

    def output(x):
        x = projection(x) if projection is not None else x  # (B, T', E)
        return tf.matmul(x, table) + bias  # (B, T', V)

    return lookup, output


def _name_dynamic_dims(proto: onnx.ModelProto) -> None:
    """Give the graph's free dimensions readable names (batch, time, positions) instead of unk__123."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        names = {INPUT_IDS: ["batch", "time"], LOGITS: ["batch", "positions"]}.get(value.name, ["batch"])
        for dim, name in zip(dims, names, strict=False):
            if not dim.HasField("dim_value"):
                dim.dim_param = name


def check_graph(proto: onnx.ModelProto, num_layers: int) -> dict[str, int]:
    """Require one fused ``LSTM`` node per layer and no loop or cuDNN op; return the op counts."""
    ops = Counter(node.op_type for node in proto.graph.node)
    bad = sorted(op for op in ops if op in FORBIDDEN_OPS or "cudnn" in op.lower())
    if bad:
        raise ExportError(
            f"the exported graph contains {bad}: the LSTM was not converted into fused LSTM nodes"
        )
    if ops["LSTM"] != num_layers:
        raise ExportError(
            f"the exported graph has {ops['LSTM']} LSTM nodes, expected one per layer ({num_layers})"
        )
    return dict(sorted(ops.items()))
