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
import os
from collections.abc import Iterator, Sequence
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
    without it (validation), in file order. Every epoch has the same :meth:`__len__` steps of
    ``batch_size`` windows (the last one fewer).

    **Replicas.** ``batch_size`` is the *global* batch: with several replicas training in sync (see
    :mod:`nextword.train.distribute`), each step's batch is split into ``num_replicas`` contiguous parts
    (:meth:`shard`), and one process reads only the parts of the replicas it runs. The parts of a step
    are the global batch one replica would read alone, so every window is read once per epoch, by one
    replica, whatever the replica count. A part with no window (the last step of an epoch can hold
    fewer windows than replicas) is one window of padding with weight 0.

    The pipeline (:meth:`dataset`) is: a counter of epochs; per epoch, a ``tf.numpy_function`` draws
    the order and cuts this process's parts out of it (:meth:`shard`), ``from_tensor_slices`` yields
    them one by one, and a parallel ``map`` of a ``tf.numpy_function`` gathers each part's windows from
    the file (:func:`gather_windows`), then ``prefetch``. ``numpy_function`` over window *indices* is
    chosen over ``from_generator``: the order, batching, parallel reads and prefetching stay tf.data
    operations (a generator would run the whole pipeline in one Python thread), and the gather stays
    the few lines of numpy that tests compare with :func:`make_windows`.

    Each window is one positioned read of at most ``seq_len + 1`` ids from the file, not a slice of an
    ``np.memmap``: every page a memory map touches is counted in the process's resident memory, and on
    current Linux kernels a fault maps a whole large folio of the page cache (measured: ~1 MB per
    window, 66 MB for one batch of 64 windows of a 400 MB file), so a map's resident size would grow
    with the file and the batch. Plain reads go through the page cache too but leave nothing mapped;
    they were also faster when measured (about 250 us against 650 us for a batch of 64 windows of 50).

    The training dataset is infinite (epoch after epoch): the training loop takes ``len(windows)``
    steps per epoch from one iterator, so epoch ``first_epoch + k`` of the iterator is the loop's epoch
    ``first_epoch + k``. ``record``, a file name, appends one line per part read (``epoch step replica
    window...``): a check that every window is read once per epoch, used by the tests of distributed
    training (``nextword train`` sets it from ``$NEXTWORD_RECORD_WINDOWS``).
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
        record: str | Path | None = None,
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
        self.seed, self.pad_id, self.record = seed, pad_id, record
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

    @property
    def longest(self) -> int:
        """Inputs of the longest document (its ``<eod>`` and its words): a ``seq_len`` of this or more
        makes every window one whole document."""
        return int(np.diff(self._eods).max())

    def __len__(self) -> int:
        return math.ceil(self.n_windows / self.batch_size)

    def read(self, rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The windows ``rows`` (indices into the window starts), read from the file (each call opens
        it: thread-safe)."""
        with self.path.open("rb", buffering=0) as f:
            slices = _IdFileSlices(f, self.n_tokens)
            return gather_windows(slices, self._eods, self._starts[rows], self.seq_len, self.pad_id)

    def shard(
        self, order: np.ndarray, replicas: Sequence[int], num_replicas: int, first_step: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The parts of each step's global batch that ``replicas`` (of ``num_replicas``) read.

        Step ``k`` trains the windows ``order[k * batch_size : (k + 1) * batch_size]``; replica ``r``
        takes the ``r``-th of ``num_replicas`` contiguous, near-equal parts of them. Returns, for the
        steps from ``first_step`` on and each of ``replicas`` in turn: the step (P,) and replica (P,)
        of each part and its window indices (P, batch_size // num_replicas), -1 where a part is short.
        """
        n, batch = len(order), self.batch_size
        width, local = batch // num_replicas, np.asarray(replicas, dtype=np.int64)  # (R,)
        full = n // batch  # steps with a whole global batch
        parts, steps = [], []
        if first_step < full:  # whole steps: a reshape, each part `width` windows
            body = order[: full * batch].reshape(full, num_replicas, width)[first_step:, local]
            parts.append(body.reshape(-1, width))  # (S' * R, width)
            steps.append(np.arange(first_step, full))
        if n % batch and first_step <= full:  # the last step: near-equal parts of what is left
            left = order[full * batch :]
            bounds = (np.arange(num_replicas + 1) * len(left)) // num_replicas  # (G + 1,)
            tail = np.full((len(local), width), -1, dtype=order.dtype)
            for row, r in enumerate(local.tolist()):
                piece = left[bounds[r] : bounds[r + 1]]
                tail[row, : len(piece)] = piece
            parts.append(tail)
            steps.append(np.asarray([full]))
        rows = np.concatenate(parts) if parts else np.zeros((0, width), dtype=order.dtype)
        step_of = np.repeat(np.concatenate(steps) if steps else np.zeros(0, np.int64), len(local))
        return step_of.astype(np.int64), np.tile(local, len(step_of) // max(len(local), 1)), rows

    def _epoch_parts(self, epoch: Any, first_step: Any, replicas: Any, num_replicas: Any) -> tuple:
        order = epoch_order(self.n_windows, self.seed, int(epoch))
        return self.shard(order, replicas.tolist(), int(num_replicas), int(first_step))

    def _read_part(
        self, epoch: Any, step: Any, replica: Any, rows: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = rows[rows >= 0]
        if self.record is not None:  # one write of one line: appends from parallel reads stay whole
            line = f"{int(epoch)} {int(step)} {int(replica)} " + " ".join(map(str, rows.tolist())) + "\n"
            fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        if not len(rows):  # a replica with nothing left at the end of an epoch: one window of padding
            pad = np.full((1, self.seq_len), self.pad_id, dtype=np.int32)
            return pad, pad.copy(), np.zeros((1, self.seq_len), dtype=np.float32)
        return self.read(rows)

    def dataset(
        self,
        first_epoch: int = 0,
        *,
        first_step: int = 0,
        replicas: Sequence[int] = (0,),
        num_replicas: int = 1,
    ) -> tf.data.Dataset:
        """The ``tf.data.Dataset`` of the parts that ``replicas`` read (:meth:`shard`), step by step
        and replica by replica: endless from step ``first_step`` of epoch ``first_epoch`` with
        ``shuffle``, else one pass over the windows in order. With the defaults (one replica), each
        element is a whole step's batch."""
        import tensorflow as tf

        replicas = tuple(int(r) for r in replicas)
        if self.batch_size % num_replicas or not all(0 <= r < num_replicas for r in replicas):
            raise ValueError(
                f"replicas {replicas} of {num_replicas} cannot split a global batch of {self.batch_size}"
            )
        if not 0 <= first_step < len(self):
            raise ValueError(f"first_step must be in [0, {len(self)}), got {first_step}")
        seq_len, width = self.seq_len, self.batch_size // num_replicas
        row_type = tf.int32 if self.n_windows < 2**31 else tf.int64
        local = tf.constant(replicas, dtype=tf.int64)

        def epoch_parts(epoch: tf.Tensor, start: tf.Tensor | int) -> tf.data.Dataset:
            step, replica, rows = tf.numpy_function(
                self._epoch_parts,
                [epoch, start, local, num_replicas],
                (tf.int64, tf.int64, row_type),
                stateful=False,
            )
            step.set_shape([None])  # (P,)
            replica.set_shape([None])  # (P,)
            rows.set_shape([None, width])  # (P, width)
            epochs = tf.fill(tf.shape(step), epoch)  # (P,)
            return tf.data.Dataset.from_tensor_slices((epochs, step, replica, rows))

        if self.shuffle:
            # range, not counter: counter is a scan, whose function the default graph keeps for good
            parts = tf.data.Dataset.range(first_epoch, 2**62).flat_map(
                lambda epoch: epoch_parts(epoch, tf.where(epoch == first_epoch, first_step, 0))
            )
        else:
            step, replica, rows = self.shard(np.arange(self.n_windows), replicas, num_replicas)
            parts = tf.data.Dataset.from_tensor_slices((np.zeros_like(step), step, replica, rows))

        def read(epoch: tf.Tensor, step: tf.Tensor, replica: tf.Tensor, rows: tf.Tensor) -> tuple:
            x, y, w = tf.numpy_function(
                self._read_part,
                [epoch, step, replica, rows],
                (tf.int32, tf.int32, tf.float32),
                stateful=False,
            )
            for t in (x, y, w):
                t.set_shape((None, seq_len))  # (B, seq_len)
            return x, y, w

        parts = parts.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return parts.prefetch(tf.data.AUTOTUNE)

    def release(self) -> None:
        """Let go of what :meth:`dataset` left behind, once no dataset of these windows is read any more.

        ``tf.numpy_function`` keeps its callable alive for as long as the outermost graph it was made
        in, and a dataset made eagerly has the process's global default graph there, which lives as long
        as the process: every dataset of these windows kept them (their window arrays grow with the id
        file) until the process ended, so a notebook grew with every training run. A dataset read after
        this fails.
        """
        import tensorflow as tf

        kept = getattr(tf.compat.v1.get_default_graph(), "_py_funcs_used_in_graph", None) or []
        for func in list(kept):
            if getattr(getattr(func, "__wrapped__", func), "__self__", None) is self:
                kept.remove(func)
