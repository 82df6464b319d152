"""A Keras model holding the weights of a nextword ONNX file: the network the file was exported from,
rebuilt for the Keras baselines when its run folder is not at hand (the bundled model ships alone).

The weights are read back from the file's graph (needs the ``onnx`` package, from the ``train`` extra):
int8 tensors (onnxruntime's dynamic quantization, ``X_quantized`` with ``X_scale`` and ``X_zero_point``)
are dequantized, ONNX's LSTM gate order (input, output, forget, cell) is put back into Keras's (input,
forget, cell, output), and ONNX's two LSTM biases are summed into Keras's one. The twin computes in
float32, so an int8 file's twin differs from the file only by the quantization of activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NetworkWeights", "build_twin", "read_weights"]

LSTM_OPS = ("LSTM", "DynamicQuantizeLSTM")
ONNX_TO_KERAS_GATES = (0, 2, 3, 1)  # Keras's (i, f, c, o) blocks taken from ONNX's (i, o, f, c)


@dataclass(frozen=True)
class NetworkWeights:
    """The weights of an embedding -> LSTM x layers -> dense network, in Keras's layouts."""

    embedding: np.ndarray  # (V, E)
    lstm: list[
        tuple[np.ndarray, np.ndarray, np.ndarray]
    ]  # per layer: kernel (in, 4U), recurrent (U, 4U), bias (4U,)
    output_kernel: np.ndarray  # (U, V)
    output_bias: np.ndarray  # (V,)


def read_weights(path: str | Path) -> NetworkWeights:
    """The network weights of the nextword ONNX file at ``path`` (fp32 or int8).

    Raises ``ValueError`` naming what is missing when the graph is not an embedding, LSTM layers and a
    dense output layer as ``nextword export`` writes them.
    """
    import onnx

    graph = onnx.load(str(path)).graph
    arrays = _initializers(graph)
    producers = {out: node for node in graph.node for out in node.output}

    def resolve(name: str) -> np.ndarray | None:
        """The constant an input holds: an initializer, or one behind a cast, transpose or dequantization."""
        if name in arrays:
            return arrays[name]
        node = producers.get(name)
        if node is None or not node.input:
            return None
        source = resolve(node.input[0])
        if source is None or node.op_type not in ("Identity", "Cast", "DequantizeLinear", "Transpose"):
            return None
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            return np.transpose(source, perm)
        return source

    lstm_nodes = [node for node in graph.node if node.op_type in LSTM_OPS]
    if not lstm_nodes:
        raise ValueError(f"{path} holds no LSTM node: not a nextword model file")
    lstm = [_lstm_weights(node, resolve) for node in lstm_nodes]
    units = lstm[-1][1].shape[0]
    embedding = _embedding(graph, resolve, path)
    vocab, dim = embedding.shape
    matmuls = ("MatMul", "MatMulInteger")
    try:
        kernel = _find(graph, matmuls, 1, resolve, lambda a: a.shape == (units, vocab), "")
    except ValueError:  # tied: logits = (h @ projection) @ embedding.T, the matrix stored once as (E, V)
        tied = _find(
            graph, matmuls, 1, resolve, lambda a: a.shape == (dim, vocab), f"{path}: no output layer"
        )
        projection = (
            np.eye(units, dtype=np.float32)
            if units == dim
            else _find(
                graph, matmuls, 1, resolve, lambda a: a.shape == (units, dim), f"{path}: no projection"
            )
        )
        kernel = projection @ tied
    bias = _find(graph, "Add", 1, resolve, lambda a: a.shape == (vocab,), f"{path}: no output bias")
    return NetworkWeights(embedding, lstm, kernel, bias)


def _embedding(graph: Any, resolve: Any, path: str | Path) -> np.ndarray:
    """The (V, E) table of the embedding Gather; a tied graph stores it as (E, V) and gathers columns."""
    for node in graph.node:
        if node.op_type == "Gather" and node.input:
            table = resolve(node.input[0])
            if table is not None and table.ndim == 2:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                return np.ascontiguousarray(table.T if axis == 1 else table)
    raise ValueError(f"{path}: no embedding table")


def _initializers(graph: Any) -> dict[str, np.ndarray]:
    """Every initializer as float32 (integer ones as they are), int8 ones dequantized under both names."""
    from onnx import numpy_helper

    raw = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    arrays = dict(raw)
    for name, q in raw.items():
        base = name.removesuffix("_quantized")
        if base != name and f"{base}_scale" in raw and f"{base}_zero_point" in raw:
            scale, zero = raw[f"{base}_scale"], raw[f"{base}_zero_point"]
            dequantized = (q.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)
            arrays[name] = arrays[base] = dequantized
    return arrays


def _find(
    graph: Any, ops: str | tuple[str, ...], index: int, resolve: Any, fits: Any, error: str
) -> np.ndarray:
    """The constant at input ``index`` of the first ``ops`` node where one ``fits``."""
    ops = (ops,) if isinstance(ops, str) else ops
    for node in graph.node:
        if node.op_type in ops and len(node.input) > index:
            value = resolve(node.input[index])
            if value is not None and fits(value):
                return value
    raise ValueError(error)


def _lstm_weights(node: Any, resolve: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras's (kernel, recurrent kernel, bias) of one ONNX LSTM node."""
    w, r, b = (resolve(node.input[i]) for i in (1, 2, 3))
    if w is None or r is None or b is None:
        raise ValueError(f"LSTM node {node.name!r}: its weights are not constants")
    if node.op_type == "DynamicQuantizeLSTM":  # stores W (1, in, 4U) and R (1, U, 4U): already transposed
        kernel, recurrent = w[0], r[0]
    else:  # ONNX's LSTM: W (1, 4U, in), R (1, 4U, U)
        kernel, recurrent = w[0].T, r[0].T
    units = recurrent.shape[0]
    bias = b[0, : 4 * units] + b[0, 4 * units :]  # input and recurrent biases: Keras has one
    return _gates(kernel, units), _gates(recurrent, units), _gates(bias, units)


def _gates(array: np.ndarray, units: int) -> np.ndarray:
    blocks = [array[..., g * units : (g + 1) * units] for g in range(4)]
    return np.ascontiguousarray(np.concatenate([blocks[g] for g in ONNX_TO_KERAS_GATES], axis=-1))


def build_twin(weights: NetworkWeights) -> Any:
    """A Keras model ``ids (B, T) -> logits (B, T, V)`` holding ``weights``: the training network
    without dropout, as the notebook's loop would call it."""
    import keras

    vocab, dim = weights.embedding.shape
    ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")  # (B, T)
    embedding = keras.layers.Embedding(vocab, dim, name="embedding")
    x = embedding(ids)  # (B, T, E)
    layers = []
    for i, (_, recurrent, _) in enumerate(weights.lstm):
        layers.append(keras.layers.LSTM(recurrent.shape[0], return_sequences=True, name=f"lstm_{i}"))
        x = layers[-1](x)  # (B, T, U)
    output = keras.layers.Dense(vocab, name="logits")
    model = keras.Model(ids, output(x), name="twin")  # (B, T, V)
    embedding.set_weights([weights.embedding])
    for layer, arrays in zip(layers, weights.lstm, strict=True):
        layer.set_weights(list(arrays))
    output.set_weights([weights.output_kernel, weights.output_bias])
    return model
