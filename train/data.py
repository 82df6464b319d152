"""Turning documents into training windows.

Documents are encoded and joined into one id stream, each preceded by the end-of-document token::

    <eod> w w w ... <eod> w w ... <eod>

The stream is cut into windows of ``seq_len`` inputs; the targets are the same windows shifted by one,
so every position of every window is trained (many-to-many). Labels stay integer ids: memory is a few
bytes per corpus word, whatever the vocabulary size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from nextword.runtime.tokenizer import Tokenizer

__all__ = ["WindowBatches", "encode_stream", "make_windows"]


def encode_stream(documents: Sequence[str], tokenizer: Tokenizer) -> np.ndarray:
    """Encode ``documents`` into one int32 stream: ``<eod> doc1 <eod> doc2 ... <eod>``."""
    eod = tokenizer.eod_id
    stream = [eod]
    for document in documents:
        stream.extend(tokenizer.encode(document))
        stream.append(eod)
    return np.asarray(stream, dtype=np.int32)


def make_windows(
    stream: np.ndarray, seq_len: int, offset: int = 0, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``stream`` into (inputs, targets, weights), each shaped (windows, seq_len).

    The first window starts ``offset`` positions early (0 <= offset < seq_len) and the last one is cut
    short; the missing positions are padding with weight 0, so they count in no loss or metric.
    """
    n_pairs = len(stream) - 1
    # Every offset > 0 gets the same number of windows, so an epoch's length does not change.
    extra = seq_len - 1 if offset else 0
    n_windows = math.ceil((n_pairs + extra) / seq_len)
    size = n_windows * seq_len
    inputs = np.full(size, pad_id, dtype=np.int32)
    targets = np.full(size, pad_id, dtype=np.int32)
    inputs[offset : offset + n_pairs] = stream[:-1]
    targets[offset : offset + n_pairs] = stream[1:]
    weights = (targets != pad_id).astype(np.float32)
    shape = (n_windows, seq_len)
    return inputs.reshape(shape), targets.reshape(shape), weights.reshape(shape)


class WindowBatches(keras.utils.PyDataset):
    """Batches of ``(inputs, targets, weights)`` windows for ``model.fit``.

    With ``shuffle=True`` every epoch shifts the windows by a new random offset in ``[0, seq_len)`` and
    visits them in a new order, so across epochs each word is seen at different places in a window.
    """

    def __init__(self, stream: np.ndarray, seq_len: int, batch_size: int, *, shuffle: bool, seed: int = 0):
        super().__init__()
        self._stream, self._seq_len, self._batch_size, self._shuffle = stream, seq_len, batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        self._new_epoch()

    def _new_epoch(self) -> None:
        offset = int(self._rng.integers(1, self._seq_len)) if self._shuffle and self._seq_len > 1 else 0
        self._x, self._y, self._w = make_windows(self._stream, self._seq_len, offset)
        n = len(self._x)
        self._order = self._rng.permutation(n) if self._shuffle else np.arange(n)

    def __len__(self) -> int:
        return math.ceil(len(self._x) / self._batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self._order[index * self._batch_size : (index + 1) * self._batch_size]
        return self._x[rows], self._y[rows], self._w[rows]

    def on_epoch_end(self) -> None:
        if self._shuffle:
            self._new_epoch()
