"""The original notebook's training recipe, rebuilt with Keras 3 for comparisons.

The notebook (WillKoehrsen/recurrent-neural-networks, "trained embeddings" model) cut every document
into overlapping 50-word windows, each labelled with the one word that follows it, held the labels
one-hot as an int8 numpy array of (windows, vocabulary), and trained::

    Embedding(vocab, 100) -> LSTM(64, dropout 0.1, recurrent dropout 0.1) -> Dense(64, relu)
    -> Dropout(0.5) -> Dense(vocab, softmax)

with Adam and categorical cross-entropy, in batches of 2,048 windows. Here the words come from
nextword's tokenizer, so both recipes see the same vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BATCH_SIZE", "SEQ_LEN", "build_notebook_model", "notebook_windows", "one_hot_int8"]

SEQ_LEN = 50  # words per window
BATCH_SIZE = 2048  # windows per step


def build_notebook_model(
    vocab_size: int,
    embedding_dim: int = 100,
    lstm_units: int = 64,
    dense_units: int = 64,
    seq_len: int = SEQ_LEN,
) -> Any:
    """The notebook's many-to-one model, compiled as the notebook compiled it."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(seq_len,), dtype="int32"),  # (B, 50)
            keras.layers.Embedding(vocab_size, embedding_dim),  # (B, 50, 100)
            keras.layers.LSTM(
                lstm_units, return_sequences=False, dropout=0.1, recurrent_dropout=0.1
            ),  # (B, 64)
            keras.layers.Dense(dense_units, activation="relu"),  # (B, 64)
            keras.layers.Dropout(0.5),
            keras.layers.Dense(vocab_size, activation="softmax"),  # (B, V) probabilities
        ],
        name="notebook",
    )
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def notebook_windows(
    documents: Sequence[str], tokenizer: Any, seq_len: int = SEQ_LEN
) -> tuple[np.ndarray, np.ndarray]:
    """Every ``seq_len``-word window inside each document and the word after it, as the notebook built
    them: ``features`` int32 (windows, seq_len) and ``targets`` int32 (windows,). Documents no longer
    than ``seq_len`` words give none; windows never cross documents."""
    features, targets = [], []
    for document in documents:
        ids = np.asarray(tokenizer.encode(document), dtype=np.int32)
        if len(ids) <= seq_len:
            continue
        view = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)  # (n, seq_len + 1)
        features.append(view[:, :-1])
        targets.append(view[:, -1])
    if not features:
        return np.zeros((0, seq_len), np.int32), np.zeros(0, np.int32)
    return np.concatenate(features), np.concatenate(targets)


def one_hot_int8(targets: np.ndarray, vocab_size: int) -> np.ndarray:
    """The notebook's labels: a dense (windows, vocab) int8 array with a single 1 per row."""
    labels = np.zeros((len(targets), vocab_size), dtype=np.int8)
    labels[np.arange(len(targets)), targets] = 1
    return labels
