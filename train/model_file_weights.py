"""The weights of a nextword model file, read back from its ONNX graph into the Keras network, so that a
run can be fine-tuned from a ``.onnx`` file (the bundled model, or any file ``nextword export`` wrote)
when the run folder that made it is not at hand.

The graph is the one :mod:`nextword.export` writes: a ``Gather`` of the embedding table on
``input_ids``, one fused ``LSTM`` node per layer (``DynamicQuantizeLSTM`` in an int8 file), then the
output layer: a product with the output matrix (the embedding table itself when tied, after a
``projection`` product where the LSTM is wider than the embedding) and an ``Add`` of the output bias
that yields ``logits``. int8 weights are dequantized (``(q - zero_point) * scale``), so a run started
from an int8 file starts from its rounded weights. What is read is checked: the network rebuilt from
it must give the file's own next-word probabilities (:func:`check_rebuilt`), or nothing is trained.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import ModelConfig

__all__ = ["FileWeights", "check_rebuilt", "read_file_weights", "rebuild_model"]

logger = logging.getLogger(__name__)

# ONNX stores an LSTM's four gates in the order input, output, forget, cell; Keras in the order input,
# forget, cell, output: Keras's block k is ONNX's block _GATES[k].
_GATES = (0, 2, 3, 1)
_LSTM_OPS = ("LSTM", "DynamicQuantizeLSTM")
_PRODUCTS = ("MatMul", "MatMulInteger")
# How far the rebuilt network's log-probabilities may stray from the file's: fp32 files agree to
# rounding; an int8 file computes its products on 8-bit activations, which the rebuilt float network
# does not (measured: a mean absolute difference of 0.02 nats on the bundled model).
FP32_TOLERANCE = 1e-3  # the largest absolute difference, nats
INT8_TOLERANCE = 0.1  # the mean absolute difference, nats


class NotReadable(ValueError):
    """The file's graph is not laid out as :mod:`nextword.export` writes it."""


@dataclass(frozen=True)
class FileWeights:
    """A model file's weights in Keras's layout, and the network they fix."""

    embedding: np.ndarray  # (V, E)
    lstm: list[
        tuple[np.ndarray, np.ndarray, np.ndarray]
    ]  # per layer: kernel (in, 4U), recurrent (U, 4U), bias (4U,)
    projection: np.ndarray | None  # (U, E) when tied and U != E
    output_kernel: np.ndarray | None  # (U, V) when untied
    output_bias: np.ndarray  # (V,)
    quantized: bool  # read from int8 weights

    def architecture(self) -> dict[str, Any]:
        """The :data:`~nextword.train.base.ARCHITECTURE` fields of :class:`ModelConfig` these weights fix."""
        return {
            "embedding_dim": int(self.embedding.shape[1]),
            "lstm_units": int(self.lstm[0][1].shape[0]),
            "num_layers": len(self.lstm),
            "tie_embeddings": self.output_kernel is None,
        }


def read_file_weights(data: bytes, name: str) -> FileWeights:
    """The weights of the model file ``data`` (its bytes; ``name`` names it in messages). Raises
    :class:`NotReadable` (a ``ValueError``) when the graph is not one :mod:`nextword.export` writes."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(data).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def fail(what: str) -> NotReadable:
        return NotReadable(
            f"{name}: {what}, so its weights cannot be read back for fine-tuning; fine-tune from the run "
            "folder that made it, or export that run again with `nextword export`"
        )

    def weight(input_name: str) -> np.ndarray:
        """An initializer as float32, dequantized when the int8 quantizer wrote it (``X_quantized``
        beside ``X_scale`` and ``X_zero_point``)."""
        if input_name not in arrays:
            raise fail(f"{input_name!r} is not a stored weight")
        values = arrays[input_name]
        if values.dtype in (np.uint8, np.int8):
            stem = input_name.removesuffix("_quantized")
            if stem == input_name or f"{stem}_scale" not in arrays or f"{stem}_zero_point" not in arrays:
                raise fail(f"the 8-bit weight {input_name!r} has no scale and zero point beside it")
            return _dequantize(values, arrays[f"{stem}_scale"], arrays[f"{stem}_zero_point"])
        return values.astype(np.float32)

    layers = [node for node in graph.node if node.op_type in _LSTM_OPS]
    if not layers:
        raise fail("it has no LSTM node")
    lstm = [_lstm_weights(node, arrays, weight, fail) for node in layers]
    embedding = _embedding(graph, producer, arrays, weight, fail)

    bias_node = producer.get("logits")
    if bias_node is None or bias_node.op_type != "Add":
        raise fail("its logits are not the sum of a product and a bias")
    biases = [i for i in bias_node.input if i in arrays]
    if len(biases) != 1:
        raise fail("its logits have no stored bias")
    output_bias = weight(biases[0])
    vocab_size = output_bias.shape[-1]
    products = [node for node in graph.node if node.op_type in _PRODUCTS and node.input[1] in arrays]
    matrices = [weight(node.input[1]) for node in products]
    output = [m for m in matrices if m.ndim == 2 and m.shape[1] == vocab_size]
    others = [m for m in matrices if m.ndim == 2 and m.shape[1] != vocab_size]
    if len(output) != 1 or len(others) > 1:
        raise fail("its output layer is not one product with an output matrix")
    units, dim = lstm[0][1].shape[0], embedding.shape[1]
    tied = output[0].shape == (dim, vocab_size) and np.array_equal(output[0].T, embedding)
    projection = others[0] if others else None
    if tied and units != dim and (projection is None or projection.shape != (units, dim)):
        raise fail(f"its tied output layer has no ({units}, {dim}) projection")
    if not tied and (projection is not None or output[0].shape != (units, vocab_size)):
        raise fail("its output matrix is neither the embedding table nor the LSTM's width by the vocabulary")
    return FileWeights(
        embedding=embedding,
        lstm=lstm,
        projection=projection if tied else None,
        output_kernel=None if tied else output[0],
        output_bias=output_bias.reshape(vocab_size),
        quantized=any(a.dtype in (np.uint8, np.int8) for a in arrays.values() if a.ndim >= 2),
    )


def _dequantize(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """``(values - zero_point) * scale``; a per-channel scale runs along the last axis."""
    return ((values.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)).astype(
        np.float32
    )


def _embedding(
    graph: Any, producer: dict[str, Any], arrays: dict[str, np.ndarray], weight: Any, fail: Any
) -> np.ndarray:
    """The embedding table (V, E): the stored table a ``Gather`` reads rows (axis 0) or columns (axis 1:
    the tied layout, (E, V)) of, where the indices come from ``input_ids``."""
    from onnx import helper

    def from_input_ids(name: str, depth: int = 0) -> bool:
        if name == "input_ids":
            return True
        node = producer.get(name)
        return depth < 8 and node is not None and any(from_input_ids(i, depth + 1) for i in node.input)

    tables = []
    for node in graph.node:
        if node.op_type == "Gather" and node.input[0] in arrays and from_input_ids(node.input[1]):
            axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
            table = weight(node.input[0])
            tables.append(table.T if axis == 1 else table)
    if len(tables) != 1 or tables[0].ndim != 2:
        raise fail("it has no single embedding table read by input_ids")
    return np.ascontiguousarray(tables[0])


def _lstm_weights(
    node: Any, arrays: dict[str, np.ndarray], weight: Any, fail: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One LSTM node's kernel (in, 4U), recurrent kernel (U, 4U) and bias (4U,) in Keras's layout."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    direction = attributes.get("direction", b"forward")
    if direction not in (b"forward", "forward") or attributes.get("clip") or attributes.get("input_forget"):
        raise fail(f"its LSTM node {node.name!r} is not a plain forward LSTM")
    activations = [a.decode() if isinstance(a, bytes) else a for a in attributes.get("activations", [])]
    if activations and activations != ["Sigmoid", "Tanh", "Tanh"]:
        raise fail(f"its LSTM node {node.name!r} has activations {activations}")
    peepholes = node.input[7] if len(node.input) > 7 else ""
    if len(node.input) < 4 or not node.input[3] or peepholes:
        raise fail(f"its LSTM node {node.name!r} lacks a bias or has peepholes")
    w, r, b = (weight(node.input[i])[0] for i in (1, 2, 3))  # inputs X, W, R, B; the one direction
    if node.op_type == "LSTM":  # (4U, in), (4U, U): transposed to Keras's (in, 4U), (U, 4U)
        w, r = w.T, r.T
    units = r.shape[0]
    if w.shape[1] != 4 * units or r.shape != (units, 4 * units) or b.shape != (8 * units,):
        raise fail(f"its LSTM node {node.name!r} has weights of unexpected shapes")

    def keras_order(x: np.ndarray) -> np.ndarray:
        blocks = np.split(x, 4, axis=-1)
        return np.ascontiguousarray(np.concatenate([blocks[k] for k in _GATES], axis=-1))

    return keras_order(w), keras_order(r), keras_order(b[: 4 * units] + b[4 * units :])


def rebuild_model(weights: FileWeights, config: ModelConfig) -> Any:
    """The training network (:func:`~nextword.train.model.build_model`) of ``config``, whose
    architecture fields must be the weights', holding ``weights``."""
    from .model import build_model

    model = build_model(config, weights.output_bias.shape[0])
    model.get_layer("embedding").set_weights([weights.embedding])
    for index, layer_weights in enumerate(weights.lstm):
        model.get_layer(f"lstm_{index}").set_weights(list(layer_weights))
    if weights.output_kernel is not None:
        model.get_layer("logits").set_weights([weights.output_kernel, weights.output_bias])
    else:
        if weights.projection is not None:
            model.get_layer("projection").set_weights([weights.projection])
        model.get_layer("logits").set_weights([weights.output_bias])
    return model


def check_rebuilt(keras_model: Any, file_model: Any, weights: FileWeights, name: str, seed: int = 0) -> float:
    """Compare the next-word log-probabilities of ``keras_model`` (rebuilt from ``weights``) with those
    of the file itself (``file_model``, loaded by the runtime) on random word sequences; return the
    measured difference, or raise :class:`NotReadable` when it is over the tolerance."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, file_model.vocab_size, size=(4, 24))
    theirs, _ = file_model.forward(ids, file_model.initial_state(ids.shape[0]))
    mine = np.asarray(keras_model(ids.astype(np.int32), training=False))

    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    gaps = np.abs(log_softmax(mine) - log_softmax(theirs))
    if weights.quantized:
        measured, tolerance, what = float(gaps.mean()), INT8_TOLERANCE, "mean"
    else:
        measured, tolerance, what = float(gaps.max()), FP32_TOLERANCE, "largest"
    logger.info(
        "%s: the network rebuilt from its weights agrees with it to %.2g nats (%s)", name, measured, what
    )
    if not measured <= tolerance:
        raise NotReadable(
            f"{name}: the network rebuilt from its weights does not give the file's predictions ({what} "
            f"difference {measured:.3g} nats, over {tolerance}); fine-tune from the run folder that made it"
        )
    return measured
