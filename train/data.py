"""Turning documents into training windows.

Documents are encoded and joined into one id stream, each preceded by the end-of-document token::

    <eod> w w w ... <eod> w w ... <eod>

Each document -- its ``<eod>`` and its words -- is cut into windows of ``seq_len`` inputs, the first
starting at the ``<eod>``; the targets are the same positions shifted by one, the last target of a
document being the ``<eod>`` that ends it. Every position of every window is trained (many-to-many), and
a window never crosses into the next document: the model always meets a document's start with a fresh
(zero) state, exactly as generation and evaluation do. The last window of a document is padded (weight
0). Labels stay integer ids: memory is a few bytes per corpus word, whatever the vocabulary size.

Training streams the corpus instead of holding it (:func:`nextword.train.train` does this for every
run): :mod:`nextword.corpus` reads the files in three passes -- split (and deduplicate), vocabulary,
encode -- and writes each side of the split to an id file (``train.ids``/``val.ids``; see
:mod:`nextword.corpus.encode`). This module cuts the windows out of those files.

:class:`DiskWindows` cuts the windows of :func:`make_windows` out of an id file, a batch at a time, as a
``tf.data`` pipeline; it keeps 4 bytes per window (its start) and 8 per document. The in-memory
:class:`~nextword.train.batches.WindowBatches` (a Keras ``PyDataset``) remains for small corpora held as
lists (benchmarks, tests). Importing this module is cheap: TensorFlow loads only when a dataset is
built.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from nextword.corpus.encode import STREAM_DTYPE
from nextword.runtime.tokenizer import EOD_ID, PAD_ID

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "STREAM_DTYPE",
    "DiskWindows",
    "document_starts",
    "epoch_order",
    "gather_windows",
    "make_windows",
    "stream_documents",
    "token_counts",
    "window_starts",
]

logger = logging.getLogger(__name__)


def document_starts(stream: Any, eod_id: int) -> np.ndarray:
    """Positions (D + 1,) int64 of the ``<eod>`` tokens of ``stream`` (an id array, or an id file
    reader with ``len()`` and slices), read in chunks: document ``d`` is ``stream[p[d] : p[d + 1]]``."""
    chunk, found = 1 << 22, []
    for low in range(0, len(stream), chunk):
        found.append(np.flatnonzero(np.asarray(stream[low : low + chunk]) == eod_id) + low)
    positions = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if len(positions) < 2 or positions[0] != 0 or positions[-1] != len(stream) - 1:
        raise ValueError("an id stream must start and end with <eod>: <eod> doc <eod> doc ... <eod>")
    return positions.astype(np.int64)


def window_starts(eods: np.ndarray, seq_len: int) -> np.ndarray:
    """Start positions (W,) of the windows: every document from its ``<eod>`` in steps of ``seq_len``."""
    lengths = np.diff(eods)  # (D,) inputs per document: its <eod> and its words
    per_doc = -(-lengths // seq_len)  # (D,) windows per document, rounded up
    first = np.repeat(np.cumsum(per_doc) - per_doc, per_doc)  # (W,) index of its document's first window
    starts = np.repeat(eods[:-1], per_doc) + seq_len * (np.arange(per_doc.sum()) - first)
    return starts.astype(np.int32 if eods[-1] < 2**31 else np.int64)


def gather_windows(
    stream: Any, eods: np.ndarray, starts: np.ndarray, seq_len: int, pad_id: int = PAD_ID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows beginning at ``starts`` (B,) as (inputs, targets, weights), each (B, seq_len).

    A window runs from its start to ``seq_len`` inputs later or to its document's closing ``<eod>``,
    whichever comes first; one slice of the stream is read per window. Padding has weight 0.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = eods[np.searchsorted(eods, starts, side="right")]  # (B,) the <eod> closing each document
    stops = np.minimum(starts + seq_len, ends)  # (B,) one past each window's last input
    inputs = np.full((len(starts), seq_len), pad_id, dtype=np.int32)
    targets = np.full((len(starts), seq_len), pad_id, dtype=np.int32)
    for row, (start, stop) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        ids = stream[start : stop + 1]  # the inputs and one more id for the last target
        inputs[row, : stop - start] = ids[:-1]
        targets[row, : stop - start] = ids[1:]
    weights = (np.arange(seq_len) < (stops - starts)[:, None]).astype(np.float32)  # (B, seq_len)
    return inputs, targets, weights


def make_windows(
    stream: np.ndarray, seq_len: int, eod_id: int = EOD_ID, pad_id: int = PAD_ID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of an in-memory ``stream`` in stream order: (inputs, targets, weights), each
    (windows, seq_len). See the module docstring for how documents are cut."""
    eods = document_starts(stream, eod_id)
    return gather_windows(stream, eods, window_starts(eods, seq_len), seq_len, pad_id)


def stream_documents(path: str | Path, eod_id: int = EOD_ID) -> Iterator[np.ndarray]:
    """The documents of an id stream file one at a time, each ``<eod> ids... <eod>`` (the closing
    ``<eod>`` is the next document's opening one); only the document positions are held."""
    path = Path(path)
    n_tokens = path.stat().st_size // STREAM_DTYPE.itemsize
    with path.open("rb", buffering=0) as f:
        slices = _IdFileSlices(f, n_tokens)
        eods = document_starts(slices, eod_id)
        for start, end in zip(eods[:-1].tolist(), eods[1:].tolist(), strict=True):
            yield slices[start : end + 1]


def token_counts(path: str | Path, vocab_size: int) -> np.ndarray:
    """How often each id occurs in an id stream file, as float64 (vocab_size,), read in chunks."""
    counts = np.zeros(vocab_size, dtype=np.float64)
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 24):
            counts += np.bincount(np.frombuffer(chunk, dtype=STREAM_DTYPE), minlength=vocab_size)
    return counts


def epoch_order(n_windows: int, seed: int, epoch: int) -> np.ndarray:
    """The order training epoch ``epoch`` (0-based) visits ``n_windows`` windows in: a permutation that
    depends on ``seed`` and ``epoch`` only, so a resumed run trains what an uninterrupted one would."""
    order = np.arange(n_windows, dtype=np.int32 if n_windows < 2**31 else np.int64)
    np.random.default_rng([seed, epoch]).shuffle(order)  # in place: 4 bytes a window
    return order


# ---------------------------------------------------------------------- windows from disk


class _IdFileSlices:
    """``len()`` and slices of an id stream file, each slice one positioned read of the open file."""

    def __init__(self, f: BinaryIO, n_tokens: int) -> None:
        self._f, self._n_tokens = f, n_tokens

    def __len__(self) -> int:
        return self._n_tokens

    def __getitem__(self, index: slice) -> np.ndarray:
        self._f.seek(index.start * STREAM_DTYPE.itemsize)
        data = self._f.read((min(index.stop, self._n_tokens) - index.start) * STREAM_DTYPE.itemsize)
        return np.frombuffer(data, dtype=STREAM_DTYPE)


class DiskWindows:
    """Batches of ``(inputs, targets, weights)`` windows of an id stream file, as a ``tf.data`` pipeline.

    The windows are :func:`make_windows`'s, cut on the fly: the file is scanned once for its documents'
    ``<eod>`` positions (8 bytes a document) and their window starts (4 bytes a window). With
    ``shuffle=True`` (training) every epoch visits the windows in a new order (:func:`epoch_order`);
    without it (validation), in file order. Every epoch has the same :meth:`__len__` batches.

    The pipeline (:meth:`dataset`) is: a counter of epochs; per epoch, a ``tf.numpy_function`` draws
    the order, ``from_tensor_slices(order).batch(batch_size)`` splits it into batches of window indices,
    and a parallel ``map`` of a ``tf.numpy_function`` gathers each batch's windows from the file
    (:func:`gather_windows`), then ``prefetch``. ``numpy_function`` over window *indices* is chosen over
    ``from_generator``: the order, batching, parallel reads and prefetching stay tf.data operations (a
    generator would run the whole pipeline in one Python thread), and the gather stays the few lines of
    numpy that tests compare with :func:`make_windows`.

    Each window is one positioned read of at most ``seq_len + 1`` ids from the file, not a slice of an
    ``np.memmap``: every page a memory map touches is counted in the process's resident memory, and on
    current Linux kernels a fault maps a whole large folio of the page cache (measured: ~1 MB per
    window, 66 MB for one batch of 64 windows of a 400 MB file), so a map's resident size would grow
    with the file and the batch. Plain reads go through the page cache too but leave nothing mapped;
    they were also faster when measured (about 250 us against 650 us for a batch of 64 windows of 50).

    The training dataset is infinite (epoch after epoch): pass ``steps_per_epoch=len(windows)`` to
    ``model.fit``, which then keeps one iterator across epochs, so epoch ``first_epoch + k`` of the
    iterator is Keras's epoch ``first_epoch + k``.
    """

    def __init__(
        self,
        path: str | Path,
        seq_len: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        eod_id: int = EOD_ID,
        pad_id: int = PAD_ID,
    ) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size
        if size % STREAM_DTYPE.itemsize or size < 2 * STREAM_DTYPE.itemsize:
            raise ValueError(
                f"{self.path} is not an id stream ({size} bytes: not a whole number of int32 ids, or "
                "fewer than 2); delete it and resume the run to encode the corpus again"
            )
        self.n_tokens = size // STREAM_DTYPE.itemsize
        self.seq_len, self.batch_size, self.shuffle = seq_len, batch_size, shuffle
        self.seed, self.pad_id = seed, pad_id
        with self.path.open("rb", buffering=0) as f:
            try:
                self._eods = document_starts(_IdFileSlices(f, self.n_tokens), eod_id)
            except ValueError as exc:
                raise ValueError(
                    f"{self.path}: {exc}; delete it and resume the run to encode it again"
                ) from None
        self._starts = window_starts(self._eods, seq_len)
        self.n_windows = len(self._starts)

    @property
    def words(self) -> int:
        """(input, target) pairs in the file: the positions one epoch trains."""
        return self.n_tokens - 1

    def __len__(self) -> int:
        return math.ceil(self.n_windows / self.batch_size)

    def read(self, rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The windows ``rows`` (indices into the window starts), read from the file (each call opens
        it: thread-safe)."""
        with self.path.open("rb", buffering=0) as f:
            slices = _IdFileSlices(f, self.n_tokens)
            return gather_windows(slices, self._eods, self._starts[rows], self.seq_len, self.pad_id)

    def _order(self, epoch: Any) -> np.ndarray:
        return epoch_order(self.n_windows, self.seed, int(epoch))

    def dataset(self, first_epoch: int = 0) -> tf.data.Dataset:
        """The ``tf.data.Dataset`` of batches: endless from epoch ``first_epoch`` with ``shuffle``, else
        one pass over the windows in order (a finite dataset of ``len(self)`` batches)."""
        import tensorflow as tf

        seq_len, batch_size = self.seq_len, self.batch_size
        if self.shuffle:
            row_type = tf.int32 if self.n_windows < 2**31 else tf.int64

            def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
                order = tf.numpy_function(self._order, [epoch], row_type, stateful=False)
                order.set_shape([self.n_windows])  # (windows,)
                return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)  # (B,) each

            batches = tf.data.Dataset.counter(first_epoch).flat_map(epoch_batches)
        else:
            batches = tf.data.Dataset.range(self.n_windows).batch(batch_size)

        def read(rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            x, y, w = tf.numpy_function(self.read, [rows], (tf.int32, tf.int32, tf.float32), stateful=False)
            for t in (x, y, w):
                t.set_shape((None, seq_len))  # (B, seq_len)
            return x, y, w

        batches = batches.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return batches.prefetch(tf.data.AUTOTUNE)
