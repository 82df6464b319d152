"""The Keras network, in two shapes that share weights by layer name.

* The training model: ``input_ids`` (batch, time) -> logits (batch, time, vocab), with dropout. Its
  LSTMs keep Keras's cuDNN-eligible settings (tanh, sigmoid, no recurrent dropout, no unroll, bias,
  ``use_cudnn="auto"``), so a GPU trains them with the fused kernel; with mixed precision they compute
  in float16 and the logits layer stays float32.
* The step model that the exporter converts: the same layers without dropout, with each LSTM's h and c
  as extra inputs and outputs, and cuDNN off (tf2onnx cannot convert CudnnRNN ops). The embedding does
  not mask padding, which would turn each LSTM into a Loop in ONNX.
"""

from __future__ import annotations

import keras

from .config import ModelConfig

__all__ = ["build_model", "build_step_model", "copy_weights"]


def build_model(config: ModelConfig, vocab_size: int, *, mixed_precision: bool = False) -> keras.Model:
    """The training model: Embedding -> (LSTM, Dropout) x num_layers -> Dense(vocab) logits.

    ``mixed_precision`` gives every layer but the logits the ``mixed_float16`` policy (float32
    weights, float16 computation); the logits, and so the loss, stay float32.
    """
    policy = "mixed_float16" if mixed_precision else None
    input_ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")  # (B, T)
    x = keras.layers.Embedding(vocab_size, config.embedding_dim, dtype=policy, name="embedding")(input_ids)
    if config.dropout:  # (B, T, E)
        x = keras.layers.Dropout(config.dropout, dtype=policy, name="embedding_dropout")(x)
    for layer in range(config.num_layers):
        lstm = keras.layers.LSTM(config.lstm_units, return_sequences=True, dtype=policy, name=f"lstm_{layer}")
        x = lstm(x)  # (B, T, U)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, dtype=policy, name=f"lstm_{layer}_dropout")(x)
    logits = keras.layers.Dense(vocab_size, dtype="float32", name="logits")(x)  # (B, T, V)
    return keras.Model(input_ids, logits, name="nextword")


def build_step_model(config: ModelConfig, vocab_size: int) -> keras.Model:
    """The inference model with explicit state: [ids, h_0, c_0, ...] -> [logits, h_0, c_0, ...].

    Copy trained weights in with :func:`copy_weights`.
    """
    input_ids = keras.Input(shape=(None,), dtype="int64", name="input_ids")  # (B, T)
    x = keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")(input_ids)  # (B, T, E)
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
    logits = keras.layers.Dense(vocab_size, name="logits")(x)  # (B, T, V)
    return keras.Model(inputs, [logits, *states], name="nextword_step")


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every weighted layer of ``source`` into the layer of the same name in ``target``."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
