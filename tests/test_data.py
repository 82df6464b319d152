import numpy as np
import pytest

pytest.importorskip("keras", reason="keras missing: install nextword[train]")

from nextword.corpus import encode_stream
from nextword.runtime import Tokenizer, TokenizerConfig
from nextword.train.batches import WindowBatches
from nextword.train.data import make_windows


def test_stream_marks_every_document_start_and_end():
    tok = Tokenizer.build(["a b", "c"], TokenizerConfig(min_count=1))
    stream = encode_stream(["a b", "c"], tok)
    assert stream.tolist() == [2, *tok.encode("a b"), 2, *tok.encode("c"), 2]
    assert stream.dtype == np.int32


STREAM = np.array([2, 5, 6, 7, 2, 8, 2, 9, 10, 11, 12, 13, 14, 15, 2], dtype=np.int32)  # 3 documents


def test_windows_follow_documents_and_train_every_position_once():
    x, y, w = make_windows(STREAM, seq_len=4)
    assert x.tolist() == [[2, 5, 6, 7], [2, 8, 0, 0], [2, 9, 10, 11], [12, 13, 14, 15]]
    assert y.tolist() == [[5, 6, 7, 2], [8, 2, 0, 0], [9, 10, 11, 12], [13, 14, 15, 2]]
    assert w.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    real = w.astype(bool)
    assert real.sum() == len(STREAM) - 1  # every (input, target) pair once
    assert sorted(zip(x[real].tolist(), y[real].tolist(), strict=True)) == sorted(
        zip(STREAM[:-1].tolist(), STREAM[1:].tolist(), strict=True)
    )


def test_every_document_starts_a_window_with_its_eod():
    stream = np.random.default_rng(0).integers(3, 50, size=400).astype(np.int32)
    stream[np.random.default_rng(1).choice(np.arange(1, 399), size=30, replace=False)] = 2
    stream[[0, -1]] = 2
    for seq_len in (1, 3, 8, 50):
        x, _y, w = make_windows(stream, seq_len)
        doc_starts = np.flatnonzero(stream[:-1] == 2)
        assert (x[:, 0] == 2).sum() >= len(doc_starts)  # each document's first window opens with <eod>
        assert w.sum() == len(stream) - 1
        assert not ((x == 2) & (np.arange(seq_len) > 0)).any()  # no window crosses into a new document


def test_stream_must_start_and_end_with_eod():
    with pytest.raises(ValueError, match="start and end with <eod>"):
        make_windows(np.array([5, 6, 2], dtype=np.int32), 4)


def test_batches_reshuffle_between_epochs_with_constant_length():
    stream = np.concatenate([[2], np.arange(3, 500), [2]]).astype(np.int32)
    batches = WindowBatches(stream, seq_len=10, batch_size=8, shuffle=True, seed=0)
    n, first = len(batches), batches[0][0].copy()
    batches.on_epoch_end()
    assert len(batches) == n and not np.array_equal(batches[0][0], first)
    fixed = WindowBatches(stream, seq_len=10, batch_size=8, shuffle=False)
    x, y, w = fixed[0]
    assert (
        x[0].tolist() == [2, *range(3, 12)] and y[0].tolist() == list(range(3, 13)) and w.dtype == np.float32
    )


# ----------------------------------------------------------------------------- streamed training data


def _split_documents_before_streaming(documents, val_fraction, seed):
    """``split_documents`` as it was before the split was defined by index: the reference."""
    order = np.random.default_rng(seed).permutation(len(documents))
    n_val = min(max(1, round(len(documents) * val_fraction)), len(documents) - 1)
    val_idx = set(order[:n_val].tolist())
    train = [d for i, d in enumerate(documents) if i not in val_idx]
    val = [d for i, d in enumerate(documents) if i in val_idx]
    return train, val


def test_validation_indices_keep_the_split_of_earlier_runs():
    from nextword.corpus import split_documents, validation_indices

    pinned = {  # held-out indices that runs before streamed training got: they must never change
        (2, 0.1, 0): [0],
        (10, 0.1, 0): [4],
        (13, 0.3, 7): [0, 6, 7, 8],
        (40, 0.25, 42): [4, 5, 7, 16, 18, 25, 28, 32, 37, 39],
    }
    for (n, fraction, seed), expected in pinned.items():
        assert validation_indices(n, fraction, seed).tolist() == expected
    for n in (2, 3, 7, 50, 333):
        for fraction in (0.01, 0.1, 0.5, 0.99):
            for seed in (0, 1, 123):
                docs = [f"document {i}" for i in range(n)]
                reference = _split_documents_before_streaming(docs, fraction, seed)
                assert split_documents(docs, fraction, seed) == reference
                held_out = validation_indices(n, fraction, seed)
                assert [docs[i] for i in held_out] == reference[1]


def test_a_split_streams_the_split_of_split_documents(tmp_path, corpus_files, documents):
    from dataclasses import replace

    from nextword.corpus import CorpusConfig, CorpusError, split_corpus, split_documents

    config = CorpusConfig(
        paths=(str(corpus_files["csv"]), str(corpus_files["text"])), keep_duplicates=True, val_fraction=0.2
    )
    split = split_corpus(replace(config, split_seed=5))
    assert len(split.labels) == split.counts.documents == 2 * len(documents)
    pairs = list(split.read())
    train, val = split_documents(documents * 2, 0.2, 5)
    assert [d for is_val, d in pairs if not is_val] == train and [d for is_val, d in pairs if is_val] == val
    assert split.documents() == (train, val)
    with pytest.raises(CorpusError, match="changed while it was read"):
        list(replace(split, labels=split.labels[:-1]).read())
    with pytest.raises(CorpusError, match="changed while it was read"):
        list(replace(split, labels=np.append(split.labels, 0)).read())
    # as many documents, other text: a file replaced between the passes of a training (the vocabulary
    # came from one file and the training words from the other, nearly all <unk>, and nothing said so)
    own = tmp_path / "own.txt"
    own.write_text("the first document\n\nthe second one\n\na third\n", encoding="utf-8")
    split = split_corpus(CorpusConfig(paths=(str(own),), keep_duplicates=True, val_fraction=0.4))
    own.write_text("the first document\n\nthe second one\n\na fourth\n", encoding="utf-8")
    with pytest.raises(
        CorpusError, match=r"changed while it was read: it held 3 documents, then 3 with other"
    ):
        list(split.read())


def test_vocabulary_and_id_files_equal_the_in_memory_path(tmp_path, corpus_files, documents):
    from collections import Counter

    from nextword.corpus import (
        STREAM_DTYPE,
        CorpusConfig,
        build_vocabulary,
        encode_corpus,
        split_corpus,
        split_documents,
    )

    for keep_duplicates in (True, False):
        corpus = CorpusConfig(
            paths=(str(corpus_files["jsonl"]),),
            val_fraction=0.25,
            split_seed=3,
            keep_duplicates=keep_duplicates,
        )
        config = TokenizerConfig(min_count=2, max_vocab=30)
        split = split_corpus(corpus)
        train_docs, val_docs = split.documents()
        if keep_duplicates:
            assert (train_docs, val_docs) == split_documents(documents, 0.25, 3)
        tokenizer = build_vocabulary(split, config)
        assert tokenizer == Tokenizer.build(train_docs, config)

        encoded = encode_corpus(split, tokenizer, tmp_path / "train.ids", tmp_path / "val.ids", 3)
        train_ids = np.fromfile(tmp_path / "train.ids", dtype=STREAM_DTYPE)
        val_ids = np.fromfile(tmp_path / "val.ids", dtype=STREAM_DTYPE)
        np.testing.assert_array_equal(train_ids, encode_stream(train_docs, tokenizer))
        np.testing.assert_array_equal(val_ids, encode_stream(val_docs, tokenizer))
        counts = encoded.counts
        assert (counts.train_documents, counts.val_documents) == (len(train_docs), len(val_docs))
        assert (counts.train_words, counts.val_words) == (len(train_ids) - 1, len(val_ids) - 1)
        assert encoded.first_val_documents == tuple(val_docs[:3])
        assert encoded.facts()["split"]["scheme"] == ("documents-v1" if keep_duplicates else "dedup-v5")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["train.ids", "val.ids"]  # no temporaries left
    counts = Counter({"<eod>": 5, "a": 2, "b": 2, "c": 1})
    assert Tokenizer.from_counts(counts, config).tokens == ["<pad>", "<unk>", "<eod>", "a", "b"]
    assert counts["<eod>"] == 5  # the caller's counts are left alone


def _random_stream(seed: int, size: int, documents: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stream = rng.integers(3, 60, size=size).astype(np.int32)
    stream[rng.choice(np.arange(1, size - 1), size=documents - 1, replace=False)] = 2
    stream[[0, -1]] = 2
    return stream


@pytest.mark.parametrize("seq_len", [1, 2, 5, 7])
def test_gather_windows_reads_exactly_the_windows_of_make_windows(seq_len):
    from nextword.train.data import document_starts, gather_windows, window_starts

    stream = _random_stream(seq_len, 60, 6)
    eods = document_starts(stream, 2)
    starts = window_starts(eods, seq_len)
    expected = make_windows(stream, seq_len)
    rows = np.random.default_rng(0).permutation(len(starts))
    for e, g in zip(expected, gather_windows(stream, eods, starts[rows], seq_len), strict=True):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e[rows])


def _collect(batches, n):
    """The first ``n`` batches of a dataset iterator, concatenated into (x, y, w)."""
    parts = [next(batches) for _ in range(n)]
    return tuple(np.concatenate([p[i].numpy() for p in parts]) for i in range(3))


def test_disk_windows_are_make_windows_in_the_epoch_order(tmp_path):
    from nextword.corpus import STREAM_DTYPE
    from nextword.train.data import DiskWindows, epoch_order

    stream = _random_stream(1, 503, 9)
    path = tmp_path / "train.ids"
    stream.astype(STREAM_DTYPE).tofile(path)
    windows = DiskWindows(path, seq_len=10, batch_size=8, shuffle=True, seed=3)
    ex, ey, ew = make_windows(stream, 10)
    assert windows.words == 502 and windows.n_windows == len(ex) and len(windows) == -(-len(ex) // 8)
    batches = iter(windows.dataset(first_epoch=4))
    for epoch in (4, 5, 6):  # one endless dataset: epoch after epoch, each len(windows) batches
        order = epoch_order(len(ex), 3, epoch)
        x, y, w = _collect(batches, len(windows))
        np.testing.assert_array_equal(x, ex[order])
        np.testing.assert_array_equal(y, ey[order])
        np.testing.assert_array_equal(w, ew[order])
        assert w.dtype == np.float32 and w.sum() == 502  # every position trained once per epoch
    np.testing.assert_array_equal(epoch_order(50, 3, 5), epoch_order(50, 3, 5))  # (seed, epoch) alone
    assert not np.array_equal(epoch_order(50, 3, 5), epoch_order(50, 3, 6))

    fixed = DiskWindows(path, seq_len=10, batch_size=8, shuffle=False)
    for _ in range(2):  # validation: the same batches every pass, file order
        batches = list(fixed.dataset())
        assert len(batches) == len(fixed)
        got = [np.concatenate([b[i].numpy() for b in batches]) for i in range(3)]
        for e, g in zip((ex, ey, ew), got, strict=True):
            np.testing.assert_array_equal(g, e)


def test_disk_windows_train_the_batches_of_window_batches(tmp_path):
    """The same seed gives the in-memory path's batches, epoch for epoch, also after a resume."""
    from nextword.corpus import STREAM_DTYPE
    from nextword.train.data import DiskWindows

    stream = _random_stream(2, 777, 12)
    path = tmp_path / "train.ids"
    stream.astype(STREAM_DTYPE).tofile(path)
    disk = DiskWindows(path, seq_len=12, batch_size=5, shuffle=True, seed=9)
    memory = WindowBatches(stream, seq_len=12, batch_size=5, shuffle=True, seed=9)
    assert len(disk) == len(memory)
    batches = iter(disk.dataset())
    for _ in range(3):
        for index in range(len(memory)):
            for got, expected in zip(next(batches), memory[index], strict=True):
                np.testing.assert_array_equal(got.numpy(), expected)
        memory.on_epoch_end()
    resumed = iter(disk.dataset(first_epoch=2))  # a resumed run starts where the first one was
    memory = WindowBatches(stream, seq_len=12, batch_size=5, shuffle=True, seed=9)
    memory.on_epoch_end()
    memory.on_epoch_end()
    for index in range(len(memory)):
        for got, expected in zip(next(resumed), memory[index], strict=True):
            np.testing.assert_array_equal(got.numpy(), expected)


def test_disk_windows_refuse_a_file_that_is_not_an_id_stream(tmp_path):
    from nextword.train.data import DiskWindows

    path = tmp_path / "train.ids"
    path.write_bytes(b"\x02\x00\x00\x00\x05\x00")
    with pytest.raises(ValueError, match=r"train\.ids is not an id stream .*delete it and resume"):
        DiskWindows(path, seq_len=4, batch_size=2, shuffle=True)


def test_disk_windows_refuse_a_stream_without_document_marks(tmp_path):
    from nextword.corpus import STREAM_DTYPE
    from nextword.train.data import DiskWindows

    path = tmp_path / "train.ids"
    np.array([5, 6, 7, 2], dtype=STREAM_DTYPE).tofile(path)
    with pytest.raises(ValueError, match=r"train\.ids: an id stream must start and end with <eod>"):
        DiskWindows(path, seq_len=4, batch_size=2, shuffle=True)
