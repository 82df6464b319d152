"""A Keras model holding the weights of a nextword ONNX file: the network the file was exported from,
rebuilt for the Keras baselines when its run folder is not at hand (the bundled model ships alone).

The weights are read back from the file's graph by :mod:`nextword.train.model_file_weights`, the
reader fine-tuning from a model file uses (the ``train`` extra): int8 tensors are dequantized, ONNX's
LSTM gate order is put back into Keras's, and ONNX's two LSTM biases are summed into Keras's one. The
twin computes in float32, so an int8 file's twin differs from the file only by the quantization of
activations.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nextword.train.model_file_weights import FileWeights

__all__ = ["build_twin", "dense_output", "read_weights"]


def read_weights(path: str | Path) -> FileWeights:
    """The network weights of the nextword ONNX file at ``path`` (fp32 or int8), read by
    :func:`nextword.train.model_file_weights.read_file_weights` (what fine-tuning from a model file
    reads). Raises ``ValueError`` naming what is missing when the graph is not an embedding, LSTM layers
    and an output layer as ``nextword export`` writes them."""
    from nextword.train.model_file_weights import read_file_weights

    return read_file_weights(Path(path).read_bytes(), str(path))


def dense_output(weights: FileWeights) -> np.ndarray:
    """The (U, V) output matrix the network computes: its own, or for a tied one projection @ embedding.T."""
    if weights.output_kernel is not None:
        return weights.output_kernel
    units = weights.lstm[-1][1].shape[0]
    projection = np.eye(units, dtype=np.float32) if weights.projection is None else weights.projection
    return projection @ weights.embedding.T


def build_twin(weights: FileWeights) -> Any:
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
    output.set_weights([dense_output(weights), weights.output_bias])
    return model
