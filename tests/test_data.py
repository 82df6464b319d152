import numpy as np
import pytest

pytest.importorskip("keras", reason="keras missing: install nextword[train]")

from nextword.runtime import Tokenizer, TokenizerConfig
from nextword.train.data import WindowBatches, encode_stream, make_windows


def test_stream_marks_every_document_start_and_end():
    tok = Tokenizer.build(["a b", "c"], TokenizerConfig(min_count=1))
    stream = encode_stream(["a b", "c"], tok)
    assert stream.tolist() == [2, *tok.encode("a b"), 2, *tok.encode("c"), 2]
    assert stream.dtype == np.int32


def test_windows_train_every_position_exactly_once():
    stream = np.arange(1, 24, dtype=np.int32)  # 23 tokens -> 22 (input, target) pairs
    x, y, w = make_windows(stream, seq_len=5)
    assert x.shape == y.shape == w.shape == (5, 5)
    real = w.astype(bool)
    assert real.sum() == 22
    assert x[real].tolist() == list(range(1, 23)) and y[real].tolist() == list(range(2, 24))
    assert (y[~real] == 0).all()


def test_offset_shifts_windows_and_keeps_their_number():
    stream = np.arange(1, 24, dtype=np.int32)
    counts = set()
    for offset in range(1, 5):
        x, y, w = make_windows(stream, seq_len=5, offset=offset)
        counts.add(len(x))
        assert x.reshape(-1)[offset] == 1 and w.reshape(-1)[:offset].sum() == 0
        assert w.sum() == 22 and (y[w.astype(bool)] == x[w.astype(bool)] + 1).all()
    assert len(counts) == 1


def test_batches_reshuffle_between_epochs_with_constant_length():
    stream = np.arange(1, 500, dtype=np.int32)
    batches = WindowBatches(stream, seq_len=10, batch_size=8, shuffle=True, seed=0)
    n, first = len(batches), batches[0][0].copy()
    batches.on_epoch_end()
    assert len(batches) == n and not np.array_equal(batches[0][0], first)
    fixed = WindowBatches(stream, seq_len=10, batch_size=8, shuffle=False)
    x, y, w = fixed[0]
    assert (
        x[0].tolist() == list(range(1, 11)) and y[0].tolist() == list(range(2, 12)) and w.dtype == np.float32
    )
