"""In-memory training windows as a Keras ``PyDataset``: :class:`WindowBatches`.

For small corpora held as lists (benchmarks, tests); training itself reads its windows from disk
(:class:`~nextword.train.data.DiskWindows`). Imports Keras, so :mod:`nextword.train.data` loads this
module only when :class:`WindowBatches` is asked for.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from nextword.runtime.tokenizer import EOD_ID

from .data import epoch_order, make_windows

__all__ = ["WindowBatches"]


class WindowBatches(keras.utils.PyDataset):
    """Batches of ``(inputs, targets, weights)`` windows of an in-memory stream for ``model.fit``: the
    windows of :func:`make_windows`, in :func:`epoch_order` when ``shuffle`` (a new order each epoch),
    else in stream order."""

    def __init__(
        self,
        stream: np.ndarray,
        seq_len: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        eod_id: int = EOD_ID,
    ):
        super().__init__()
        self._x, self._y, self._w = make_windows(stream, seq_len, eod_id)
        self._batch_size, self._shuffle, self._seed, self._epoch = batch_size, shuffle, seed, 0
        self._order = epoch_order(len(self._x), seed, 0) if shuffle else np.arange(len(self._x))

    def __len__(self) -> int:
        return math.ceil(len(self._x) / self._batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self._order[index * self._batch_size : (index + 1) * self._batch_size]
        return self._x[rows], self._y[rows], self._w[rows]

    def on_epoch_end(self) -> None:
        if self._shuffle:
            self._epoch += 1
            self._order = epoch_order(len(self._x), self._seed, self._epoch)
