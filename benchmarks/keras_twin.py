"""A Keras model holding the weights of a nextword ONNX file: the network the file was exported from,
rebuilt for the Keras baselines when its run folder is not at hand (the bundled model ships alone).

The weights are read back from the file's graph by :mod:`nextword.train.model_file_weights`, the
reader fine-tuning from a model file uses (the ``train`` extra): int8 tensors are dequantized, ONNX's
LSTM gate order is put back into Keras's, and ONNX's two LSTM biases are summed into Keras's one. The
twin computes in float32, so an int8 file's twin differs from the file only by the quantization of
activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NetworkWeights", "build_twin", "read_weights"]


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
    """The network weights of the nextword ONNX file at ``path`` (fp32 or int8), read by
    :func:`nextword.train.model_file_weights.read_file_weights` (what fine-tuning from a model file
    reads); a tied output layer becomes the dense one it computes (projection @ embedding.T).

    Raises ``ValueError`` naming what is missing when the graph is not an embedding, LSTM layers and an
    output layer as ``nextword export`` writes them.
    """
    from nextword.train.model_file_weights import read_file_weights

    weights = read_file_weights(Path(path).read_bytes(), str(path))
    kernel = weights.output_kernel
    if kernel is None:  # tied: logits = (h @ projection) @ embedding.T
        units = weights.lstm[-1][1].shape[0]
        projection = np.eye(units, dtype=np.float32) if weights.projection is None else weights.projection
        kernel = projection @ weights.embedding.T
    return NetworkWeights(weights.embedding, weights.lstm, kernel, weights.output_bias)


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
