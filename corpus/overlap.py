"""Which documents copy those a model trained on: the training documents of a split made again, and
the documents of another set that are exact or near-duplicates of them.

Fine-tuning counts the held-out documents of its corpus that copy its base's training documents
(:mod:`nextword.train.base_overlap`); ``nextword evaluate --trained-on`` leaves out of its scores the
documents that copy the scored model's. Numpy only, like the rest of :mod:`nextword.corpus`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from nextword.runtime.provenance import DataCounts, DedupSettings, SplitRecord

from .dedup import shared_documents
from .dev import split_dev_mask
from .schemes import words_take_marks
from .split import DocumentSplit

if TYPE_CHECKING:
    from nextword.runtime.tokenizer import Tokenizer

__all__ = ["copies_of", "split_differs", "trained_documents", "training_side"]


def training_side(split: DocumentSplit, dev: np.ndarray | None) -> Iterator[str]:
    """The documents a model of ``split`` trains on, in corpus order: its training side less its
    development part (``dev``: a mask over the training documents, or None), read from the files."""
    index = 0
    for is_val, document in split.read():
        if is_val:
            continue
        if dev is None or not dev[index]:
            yield document
        index += 1


def trained_documents(split: DocumentSplit, dev_documents: int | None) -> Iterator[str]:
    """:func:`training_side` with the development part a model records (``dev_documents`` of them),
    chosen again as training chose it."""
    dev = split_dev_mask(split, dev_documents) if dev_documents else None
    return training_side(split, dev)


def copies_of(trained: Iterable[str], documents: Iterable[str], record: SplitRecord) -> np.ndarray:
    """(N,) bool for the N ``documents``: whether each copies or nearly copies one of ``trained``, as
    the deduplication of split ``record`` judges them (its settings, or the defaults for a split that
    kept duplicates; words as its scheme takes them). The MinHash values are always ``dedup-v5``'s:
    this check makes no split again, and the low bits of the older schemes called unrelated short
    documents copies (:mod:`.minhash`)."""
    settings = record.dedup or DedupSettings()
    return shared_documents(trained, documents, settings, marks=words_take_marks(record.scheme), mixed=True)


def split_differs(
    split: DocumentSplit,
    recorded: DataCounts,
    whose: str = "the model's",
    tokenizer: Tokenizer | None = None,
    digest: str | None = None,
) -> str | None:
    """How ``split``, made again from a model's corpus files, differs from the split the model recorded
    (``recorded``: its documents read, validation documents, and with ``tokenizer``, the model's, the
    words of its validation documents; a count not recorded is not compared): ``"N documents, the
    model's corpus M"`` (``whose`` names the model), or None where they agree. Files that differ are
    not the ones it trained on (other files, rows or files in another order, an edit), and the
    documents taken for its training documents would not be. ``digest``: the SHA-256 of the documents
    the model's corpus held (``Provenance.corpus_sha256``), compared last: the counts may agree where
    a word was changed."""
    for count, made, what in (
        (recorded.documents, split.counts.documents, "documents"),
        (recorded.val_documents, split.counts.val_documents, "validation documents"),
    ):
        if type(count) is int and count != made:
            return f"{made} {what}, {whose} corpus {count}"
    if tokenizer is not None and type(recorded.val_words) is int:
        # as encoding counts them: each document's tokens and the <eod> that closes it
        words = sum(len(tokenizer.encode(document)) + 1 for is_val, document in split.read() if is_val)
        if words != recorded.val_words:
            return (
                f"validation documents of {words} words, {whose} {recorded.val_words} (other documents: rows "
                "or files in another order, or edited)"
            )
    if digest is not None and split.digest is not None and split.digest != digest:
        return (
            f"documents whose text differs from {whose} corpus (its SHA-256 {digest[:12]}..., theirs "
            f"{split.digest[:12]}...: an edit, or rows in another order, that keeps the counts)"
        )
    return None
