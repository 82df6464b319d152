"""A development part of the training documents: held out of training, read at export.

Training chooses its best epoch (and stops early) by the loss on documents the model never trained
on and that are not the validation documents, whose figures the run and the model file report; the
exporter tunes a model's continuous cache (:mod:`nextword.export.cache_tuning`) on the same
documents. A model scores the text it trained on far better than new text (the bundled model of
issue 12: perplexity 8 on its training abstracts, 73 on new ones), and a cache tuned there would be
tuned for memorized text. So after the corpus is encoded, a seeded share of the training documents
of ``train.ids`` moves to ``dev.ids``: same format, never trained on.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nextword.corpus import STREAM_DTYPE, DocumentSplit
from nextword.corpus.dev import dev_count, split_dev_mask
from nextword.corpus.files import atomic_path

from .config import TrainConfig
from .data import stream_documents
from .files import RunDir
from .progress import counted

__all__ = ["dev_part", "hold_out_dev"]

logger = logging.getLogger(__name__)


def dev_part(split: DocumentSplit, config: TrainConfig) -> np.ndarray | None:
    """Which training documents of ``split`` (in corpus order) form the development part:
    ``config.dev_fraction`` of them chosen with the split seed, whole near-duplicate groups where the
    split's scheme says so (:meth:`~nextword.corpus.DocumentSplit.training_groups`), else document by
    document; None without a development part."""
    if not config.dev_fraction:
        return None
    asked = dev_count(split.counts.train_documents or 0, config.dev_fraction)
    chosen = split_dev_mask(split, asked)
    if (held := int(chosen.sum())) < asked / 2:
        groups = split.training_groups()
        largest = (
            int(np.unique(groups, return_counts=True)[1].max()) if groups is not None and len(groups) else 0
        )
        logger.warning(
            "the development part holds %d of the %d training documents asked for: it takes whole "
            "groups of near-duplicates, and the training side's groups are too large for it. It chooses "
            "the best epoch and tunes the cache, so a small one makes both noisy; %s",
            held,
            asked,
            # a group of most documents leaves no room at any fraction: then the grouping is the matter
            "a larger `dev_fraction` makes room for whole groups"
            if largest < len(chosen) / 2
            else "one group of near-duplicates holds most of the documents, which no `dev_fraction` "
            "splits: a higher `near_duplicate_threshold` groups fewer of them together",
        )
    return chosen


def hold_out_dev(run: RunDir, chosen: np.ndarray, eod_id: int, by_group: bool = False) -> dict[str, Any]:
    """Move the documents of ``train.ids`` that ``chosen`` (from :func:`dev_part`) names into
    ``dev.ids``; ``by_group`` says that they are whole groups of near-duplicates (for the log).

    Both files are written atomically (``dev.ids`` first), one document in memory at a time. Returns
    the counts for the run's ``config.json``: ``train_documents``, ``train_words``, ``dev_documents``,
    ``dev_words`` (words as in :class:`~nextword.train.data.EncodedCorpus`: ids minus one).
    """
    train_ids, dev_ids = run.train_ids, run.dev_ids
    n_train = sum(1 for _ in stream_documents(train_ids, eod_id))
    if len(chosen) != n_train:
        raise ValueError(f"{train_ids} holds {n_train} documents, the split {len(chosen)} training documents")
    n_dev = int(chosen.sum())  # whole groups: possibly a few short of the share
    tokens = {False: 1, True: 1}  # each stream starts with its <eod>
    with (  # left in reverse: dev_ids is in place before train_ids loses its documents
        atomic_path(train_ids) as train_tmp,
        atomic_path(dev_ids) as dev_tmp,
        dev_tmp.open("wb") as dev_f,
        train_tmp.open("wb") as train_f,
    ):
        files = {False: train_f, True: dev_f}
        for f in files.values():
            f.write(np.asarray([eod_id], dtype=STREAM_DTYPE).tobytes())
        for is_dev, document in zip(chosen.tolist(), stream_documents(train_ids, eod_id), strict=True):
            files[is_dev].write(np.asarray(document[1:], dtype=STREAM_DTYPE).tobytes())  # ids... <eod>
            tokens[is_dev] += len(document) - 1
    if n_dev:
        logger.info(
            "development part: %d of %d training documents (%d words%s) held out of training: they choose "
            "the best epoch, and export tunes the cache on them",
            n_dev,
            n_train,
            tokens[True] - 1,
            ", whole groups of near-duplicates" if by_group else "",
        )
    else:  # one training document (training keeps it), or groups too large: fit_session warns what follows
        logger.info(
            "development part: none of the %s held out of training", counted(n_train, "training document")
        )
    return {
        "train_documents": n_train - n_dev,
        "train_words": tokens[False] - 1,
        "dev_documents": n_dev,
        "dev_words": tokens[True] - 1,
    }
