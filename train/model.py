"""The Keras network, in two shapes that share weights by layer name.

* The training model: ``input_ids`` (batch, time) -> logits (batch, time, vocab), with dropout, and
  free to use cuDNN kernels on a GPU.
* The step model that the exporter converts: the same layers without dropout, with each LSTM's h and c
  as extra inputs and outputs, and cuDNN off (tf2onnx cannot convert CudnnRNN ops). The embedding does
  not mask padding, which would turn each LSTM into a Loop in ONNX.

With ``tie_embeddings`` the output layer reuses the embedding matrix (Press & Wolf 2017; Inan et al.
2017): logits = E x + b, where x is the last LSTM layer's output, projected to the embedding width by a
linear layer (``projection``) when the widths differ. The embedding layer then holds the output bias.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from .config import ModelConfig

__all__ = ["TiedEmbedding", "build_model", "build_step_model", "copy_weights", "output_bias"]


@keras.saving.register_keras_serializable(package="nextword")
class TiedEmbedding(keras.layers.Embedding):
    """An embedding whose matrix also gives the output logits: ``layer(ids)`` looks up vectors,
    ``layer(x, reverse=True)`` is ``x @ E^T + bias`` (float32, whatever the compute policy)."""

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        super().build(input_shape)
        self.bias = self.add_weight(shape=(self.input_dim,), initializer="zeros", name="bias")

    def call(self, inputs: Any, reverse: bool = False) -> Any:
        if not reverse:
            return super().call(inputs)
        x = ops.cast(inputs, "float32")  # (B, T, E)
        matrix = ops.cast(self.embeddings, "float32")  # (V, E)
        return ops.matmul(x, ops.transpose(matrix)) + ops.cast(self.bias, "float32")  # (B, T, V)

    # Keras's Embedding saves its matrix alone: save and load the bias with it, in that order.
    def save_own_variables(self, store: Any) -> None:
        if self.built:
            store["0"], store["1"] = self.embeddings, self.bias

    def load_own_variables(self, store: Any) -> None:
        if len(store.keys()) != 2:
            raise ValueError(f"layer {self.name!r} expects 2 saved variables, found {len(store.keys())}")
        self.embeddings.assign(store["0"])
        self.bias.assign(store["1"])

    def compute_output_spec(self, inputs: Any, reverse: bool = False) -> Any:
        if not reverse:
            return super().compute_output_spec(inputs)
        return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype="float32")


def _embedding(config: ModelConfig, vocab_size: int) -> keras.layers.Embedding:
    kind = TiedEmbedding if config.tie_embeddings else keras.layers.Embedding
    return kind(vocab_size, config.embedding_dim, name="embedding")


def _logits(config: ModelConfig, vocab_size: int, embedding: keras.layers.Embedding, x: Any) -> Any:
    """The output layer on the last LSTM layer's output ``x`` (B, T, U): logits (B, T, V)."""
    if not config.tie_embeddings:
        return keras.layers.Dense(vocab_size, name="logits")(x)
    if config.lstm_units != config.embedding_dim:
        x = keras.layers.Dense(config.embedding_dim, use_bias=False, name="projection")(x)  # (B, T, E)
    return embedding(x, reverse=True)


def output_bias(model: keras.Model) -> Any:
    """The output layer's bias variable (the ``logits`` layer's, or the tied embedding's)."""
    layer = model.get_layer("embedding")
    return layer.bias if isinstance(layer, TiedEmbedding) else model.get_layer("logits").bias


def build_model(config: ModelConfig, vocab_size: int) -> keras.Model:
    """The training model: Embedding -> (LSTM, Dropout) x num_layers -> Dense(vocab) logits."""
    input_ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")  # (B, T)
    embedding = _embedding(config, vocab_size)
    x = embedding(input_ids)  # (B, T, E)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    for layer in range(config.num_layers):
        x = keras.layers.LSTM(config.lstm_units, return_sequences=True, name=f"lstm_{layer}")(x)  # (B, T, U)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"lstm_{layer}_dropout")(x)
    logits = _logits(config, vocab_size, embedding, x)  # (B, T, V)
    return keras.Model(input_ids, logits, name="nextword")


def build_step_model(config: ModelConfig, vocab_size: int) -> keras.Model:
    """The inference model with explicit state: [ids, h_0, c_0, ...] -> [logits, h_0, c_0, ...].

    Copy trained weights in with :func:`copy_weights`.
    """
    input_ids = keras.Input(shape=(None,), dtype="int64", name="input_ids")  # (B, T)
    embedding = _embedding(config, vocab_size)
    x = embedding(input_ids)  # (B, T, E)
    inputs, states = [input_ids], []
    for layer in range(config.num_layers):
        h = keras.Input(shape=(config.lstm_units,), name=f"h_{layer}")  # (B, U)
        c = keras.Input(shape=(config.lstm_units,), name=f"c_{layer}")  # (B, U)
        inputs += [h, c]
        lstm = keras.layers.LSTM(
            config.lstm_units, return_sequences=True, return_state=True, use_cudnn=False, name=f"lstm_{layer}"
        )
        x, h_out, c_out = lstm(x, initial_state=[h, c])  # (B, T, U), (B, U), (B, U)
        states += [h_out, c_out]
    logits = _logits(config, vocab_size, embedding, x)  # (B, T, V)
    return keras.Model(inputs, [logits, *states], name="nextword_step")


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every weighted layer of ``source`` into the layer of the same name in ``target``."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
