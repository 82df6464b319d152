"""The Keras network, in two shapes that share weights by layer name.

* The training model: ``input_ids`` (batch, time) -> logits (batch, time, vocab), with dropout. Its
  LSTMs keep Keras's cuDNN-eligible settings (tanh, sigmoid, no recurrent dropout, no unroll, bias,
  ``use_cudnn="auto"``), so a GPU trains them with the fused kernel; with mixed precision they compute
  in float16 and the logits layer stays float32.
* The step model that the exporter converts: the same layers without dropout, with each LSTM's h and c
  as extra inputs and outputs, and cuDNN off (tf2onnx cannot convert CudnnRNN ops). The embedding does
  not mask padding, which would turn each LSTM into a Loop in ONNX.

With ``tie_embeddings`` the output layer reuses the embedding matrix (Press & Wolf 2017; Inan et al.
2017): logits = E x + b, where x is the last LSTM layer's output, projected to the embedding width by a
linear layer (``projection``) when the widths differ; the output bias is a layer of its own.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import keras
from keras import ops

from .config import ModelConfig

__all__ = [
    "REPLICA_SEED_STRIDE",
    "OutputBias",
    "ReplicaDropout",
    "TiedEmbedding",
    "apply_output",
    "build_model",
    "build_step_model",
    "copy_seed_states",
    "copy_weights",
    "load_keras_model",
]


@keras.saving.register_keras_serializable(package="nextword")
class TiedEmbedding(keras.layers.Embedding):
    """An embedding whose matrix E also gives the output scores: ``layer(ids)`` looks up vectors,
    ``layer(x, reverse=True)`` is ``x @ E^T`` (float32, whatever the compute policy)."""

    def call(self, inputs: Any, reverse: bool = False) -> Any:
        if not reverse:
            return super().call(inputs)
        x = ops.cast(inputs, "float32")  # (B, T, E)
        return ops.matmul(x, ops.transpose(ops.cast(self.embeddings, "float32")))  # (B, T, V)

    def compute_output_spec(self, inputs: Any, reverse: bool = False) -> Any:
        if not reverse:
            return super().compute_output_spec(inputs)
        return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype="float32")


@keras.saving.register_keras_serializable(package="nextword")
class OutputBias(keras.layers.Layer):
    """The output bias of a tied model, a layer of its own (named ``logits``): freezing pretrained
    embeddings then freezes the matrix, not the bias."""

    def build(self, input_shape: Any) -> None:
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, inputs: Any) -> Any:
        return inputs + ops.cast(self.bias, inputs.dtype)


REPLICA_SEED_STRIDE = 1_000_003  # ReplicaDropout: replica r's seed is offset by r times this prime
SEED_STATE = "seed_generator_state"  # ReplicaDropout's entry in a saved model's variables


@keras.saving.register_keras_serializable(package="nextword")
class ReplicaDropout(keras.layers.Dropout):
    """Keras's ``Dropout``, except that the replicas of a distributed training step draw their own masks.

    Keras's layer draws every mask from its seed generator, whose state the replicas of a
    ``tf.distribute`` step read alike: replica r would drop the same units at the same places of its
    part of the global batch as replica 0, so N replicas would not train with the independent masks
    that one process training the whole batch draws. Here the first word of the seed is offset by
    ``REPLICA_SEED_STRIDE`` times the replica's id (in sync, across workers). Replica 0, and so any
    single process, draws exactly what ``keras.layers.Dropout`` draws: the same seed, the same call.

    Unlike Keras's layer it saves its seed generator's state with the model (see
    :meth:`save_own_variables`): a run resumed from a checkpoint draws the masks the uninterrupted run
    draws.
    """

    seed_state_restored = False  # whether load_own_variables found the seed generator's state

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or not self.rate:
            return inputs
        import tensorflow as tf

        seed = self.seed_generator.next()  # (2,): [the layer's seed, a counter]
        context = tf.distribute.get_replica_context()  # None in a cross-replica context
        replica = context.replica_id_in_sync_group if context is not None else 0
        offset = tf.cast(replica, seed.dtype) * REPLICA_SEED_STRIDE
        seed = seed + tf.stack([offset, tf.zeros_like(offset)])
        if seed.dtype != tf.int32:  # as Keras's TensorFlow backend maps its int64 seeds
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        shape = tf.shape(inputs)
        if self.noise_shape is not None:
            shape = [shape[i] if n is None else n for i, n in enumerate(self.noise_shape)]
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, noise_shape=shape, seed=seed)

    # Keras's Dropout saves no state, so a run resumed from its checkpoint drew its masks again from
    # the first one: it trained on, but no longer as the run left alone did. The seed generator's state
    # ([seed, masks drawn]) is saved with the layer, so a resumed run draws the masks it would have.
    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)
        store[SEED_STATE] = self.seed_generator.state

    def load_own_variables(self, store: Any) -> None:
        """Restore the seed generator's state; a file without it (an earlier nextword's) leaves the
        state as built, and :attr:`seed_state_restored` False."""
        self.seed_state_restored = store is not None and SEED_STATE in store
        if self.seed_state_restored:
            self.seed_generator.state.assign(store[SEED_STATE])


def _embedding(config: ModelConfig, vocab_size: int, policy: str = "float32") -> keras.layers.Embedding:
    kind = TiedEmbedding if config.tie_embeddings else keras.layers.Embedding
    return kind(vocab_size, config.embedding_dim, dtype=policy, name="embedding")


def _logits(
    config: ModelConfig, vocab_size: int, embedding: keras.layers.Embedding, x: Any, policy: str = "float32"
) -> Any:
    """The output layer on the last LSTM layer's output ``x`` (B, T, U): float32 logits (B, T, V), from
    a layer named ``logits`` either way (the trainer starts its bias at the unigram distribution)."""
    if not config.tie_embeddings:
        return keras.layers.Dense(vocab_size, dtype="float32", name="logits")(x)
    if config.lstm_units != config.embedding_dim:  # (B, T, E)
        x = keras.layers.Dense(config.embedding_dim, use_bias=False, dtype=policy, name="projection")(x)
    return OutputBias(dtype="float32", name="logits")(embedding(x, reverse=True))


def apply_output(model: keras.Model, x: Any) -> Any:
    """The output layer of a trained ``model`` applied to last-layer LSTM outputs ``x`` (..., U)."""
    layer = model.get_layer("embedding")
    if not isinstance(layer, TiedEmbedding):
        return model.get_layer("logits")(x)
    if any(other.name == "projection" for other in model.layers):
        x = model.get_layer("projection")(x)
    return model.get_layer("logits")(layer(x, reverse=True))


def build_model(config: ModelConfig, vocab_size: int, *, mixed_precision: bool = False) -> keras.Model:
    """The training model: Embedding -> (LSTM, Dropout) x num_layers -> Dense(vocab) logits.

    The embedding's output is dropped word by word (``word_dropout``) and then feature by feature like
    each LSTM's output (``dropout``: a new mask per time step, or one per window with
    ``locked_dropout``), each replica of a distributed step with masks of its own
    (:class:`ReplicaDropout`).

    ``mixed_precision`` gives every layer but the logits the ``mixed_float16`` policy (float32
    weights, float16 computation); the logits, and so the loss, stay float32. Without it every layer is
    float32 whatever Keras's global policy says: a notebook that set ``mixed_float16`` globally for a
    model of its own no longer trains this one in float16 (saved so, and then refused by export's
    parity check).
    """
    policy = "mixed_float16" if mixed_precision else "float32"
    input_ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")  # (B, T)
    embedding = _embedding(config, vocab_size, policy)
    x = embedding(input_ids)  # (B, T, E)
    if config.word_dropout:  # one mask entry per word: its whole vector kept or dropped
        x = ReplicaDropout(config.word_dropout, (None, None, 1), dtype=policy, name="word_dropout")(x)
    # Locked: one mask entry per feature, shared by every time step of the window.
    noise_shape = (None, 1, None) if config.locked_dropout else None
    if config.dropout:
        x = ReplicaDropout(config.dropout, noise_shape, dtype=policy, name="embedding_dropout")(x)
    for layer in range(config.num_layers):
        lstm = keras.layers.LSTM(config.lstm_units, return_sequences=True, dtype=policy, name=f"lstm_{layer}")
        x = lstm(x)  # (B, T, U)
        if config.dropout:
            name = f"lstm_{layer}_dropout"
            x = ReplicaDropout(config.dropout, noise_shape, dtype=policy, name=name)(x)
    logits = _logits(config, vocab_size, embedding, x, policy)  # (B, T, V), float32
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
            config.lstm_units,
            return_sequences=True,
            return_state=True,
            use_cudnn=False,
            dtype="float32",  # whatever Keras's global policy (see build_model)
            name=f"lstm_{layer}",
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


def copy_seed_states(source: keras.Model, target: keras.Model) -> bool:
    """Copy the dropout layers' random state of ``source`` (a loaded checkpoint) into the layers of the
    same name in ``target``; False when ``source`` has dropout layers whose file did not hold it (a
    checkpoint of an earlier nextword): ``target`` then keeps its own."""
    restored = True
    for layer in target.layers:
        if isinstance(layer, ReplicaDropout):
            saved = source.get_layer(layer.name)
            if getattr(saved, "seed_state_restored", False):
                layer.seed_generator.state.assign(saved.seed_generator.state.numpy())
            else:
                restored = False
    return restored


def load_keras_model(path: Any) -> keras.Model:
    """A run's ``model.keras``, loaded in Keras' safe mode (no code from the file runs) without its
    optimizer. Importing this module registers nextword's own layers (:class:`TiedEmbedding`,
    :class:`OutputBias`, :class:`ReplicaDropout`), which a plain ``keras.saving.load_model`` in a fresh
    process does not know. A file that is not a loadable model is a ``ValueError`` naming it (one that
    cannot be read, an ``OSError``)."""
    with Path(path).open("rb") as file:  # one that cannot be read: an OSError naming it, not "damaged"
        is_zip = zipfile.is_zipfile(file)
    if not is_zip:
        raise ValueError(
            f"{path} is not a .keras file (not a zip archive: truncated or damaged); re-run training"
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a file it cannot rebuild (TypeError...)
        reason = " ".join(str(exc).split())[:300]
        raise ValueError(
            f"{path} could not be loaded as a nextword Keras model ({type(exc).__name__}: {reason}); "
            "nothing from it was run. Re-run training"
        ) from None
