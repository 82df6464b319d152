"""The development part of a split: training documents held out of training.

``nextword train`` moves ``--dev-fraction`` of the training documents out of ``train.ids`` into
``dev.ids`` after encoding (:func:`nextword.train.dev.hold_out_dev`); export tunes the model's
continuous cache on them. Which ones is a function of the number of training documents, the number
held out and the split seed alone, so the part can be rebuilt from a model file's provenance (its
``dev_documents`` count and split seed) with the training documents of the rebuilt split, in corpus
order (and, for a ``dedup-v3`` or later split, the near-duplicate groups of those documents:
the part then holds out whole groups). Numpy only: ``nextword evaluate --split dev`` runs without
TensorFlow.
"""

from __future__ import annotations

import numpy as np

from .split import DocumentSplit, fitting_groups

__all__ = ["MAX_DEV_DOCUMENTS", "dev_count", "dev_mask", "split_dev_mask"]

MAX_DEV_DOCUMENTS = 1000  # plenty to tune three numbers; a large corpus keeps the rest for training


def dev_count(train_documents: int, fraction: float) -> int:
    """How many of ``train_documents`` are held out: ``fraction`` of them (at least one when the
    fraction is above 0), at most :data:`MAX_DEV_DOCUMENTS`, and never all."""
    if fraction <= 0 or train_documents < 2:
        return 0
    return min(max(1, round(train_documents * fraction)), MAX_DEV_DOCUMENTS, train_documents - 1)


def dev_mask(
    train_documents: int, dev_documents: int, split_seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Which of ``train_documents`` (the training side of a split, in corpus order) form the
    development part: a bool mask with ``dev_documents`` True, chosen by a permutation seeded with
    ``[split_seed, 1]`` (apart from the validation split's own permutation).

    With ``groups`` (``(train_documents,)``: each document's near-duplicate group, any ids;
    :meth:`DocumentSplit.training_groups`), whole groups are held out, as the validation split holds
    them out: the groups, in order of their first document, are walked in the seeded order, and each
    that still fits in the room left is taken. No development document then has a near-duplicate
    among the documents trained on. The part may hold fewer than ``dev_documents`` documents, when
    only groups too large for the room are left; asked for the number it holds, this function
    chooses the same documents again (the walk takes the same groups)."""
    if not 0 <= dev_documents < max(train_documents, 1):
        raise ValueError(
            f"a development part of {dev_documents} documents does not fit {train_documents} "
            "training documents"
        )
    order = np.random.default_rng([split_seed, 1])
    if groups is None:
        chosen = np.zeros(train_documents, dtype=bool)
        chosen[order.permutation(train_documents)[:dev_documents]] = True
        return chosen
    if len(groups) != train_documents:
        raise ValueError(f"{len(groups)} groups given for {train_documents} training documents")
    _, first, inverse, sizes = np.unique(groups, return_index=True, return_inverse=True, return_counts=True)
    by_first = np.argsort(first, kind="stable")  # the groups in order of their first document
    walk = by_first[order.permutation(len(by_first))]
    held = np.zeros(len(by_first), dtype=bool)
    held[walk[fitting_groups(sizes[walk], dev_documents)]] = True
    return held[inverse.reshape(-1)]


def split_dev_mask(split: DocumentSplit, dev_documents: int) -> np.ndarray:
    """:func:`dev_mask` for the training documents of ``split``: its seed, and its near-duplicate
    groups where its scheme carves the part by groups. Training calls it with the count it asks for,
    a rebuild with the count a model file records."""
    train = split.counts.train_documents or 0
    return dev_mask(train, dev_documents, split.record.seed, split.training_groups())
