"""Whether a fine-tuning run's held-out documents are documents its base trained on.

A new corpus may share documents with the base's: a newer dump of the same source, or the base's
corpus with documents added. The fine-tuned run splits the new corpus as any corpus, so some of its
validation documents (its reported figures) and development documents (which choose its best epoch)
may be copies or near-duplicates of text the base was trained on; the base then scores them well for
having seen them, not for having learnt the language. :func:`base_overlap` counts them, with the
deduplication that made the new split, against the base's training documents made again from the
base run's corpus files, or from those ``base_corpus`` names (a model file does not hold its documents).
The other way round, it counts the base's validation documents that the new training documents copy:
scored on the base's split, the fine-tuned model has seen them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nextword.runtime.provenance import DataCounts

if TYPE_CHECKING:
    from nextword.corpus import DocumentSplit

    from .base import Base

__all__ = ["base_overlap"]

logger = logging.getLogger(__name__)


def base_overlap(
    base: Base, split: DocumentSplit, dev: np.ndarray | None, base_corpus: tuple[str, ...] = ()
) -> dict[str, Any]:
    """For the config.json facts of a fine-tuning run's ``base``: ``val_overlap`` and ``dev_overlap``,
    how many of ``split``'s validation documents, and of its development part (``dev``: a mask over its
    training documents, or None), are exact or near-duplicates of the documents the base trained on
    (its training side, less its own development part); a warning names them when there are any. And
    ``val_trained`` of the base's ``val_documents`` validation documents: those that the documents this
    run trains on copy or nearly copy (logged).

    The base's documents are read from ``base_corpus`` (``TrainConfig.base_corpus``) when given, read
    as the base recorded (a ``ValueError`` when they cannot be split again, or give other counts than
    it recorded: documents, validation documents, validation words), else from a base run's own corpus
    files. When they cannot be counted (logged): ``overlap_unchecked``, why in a few words without
    paths (a model-file base without ``base_corpus``, a base run whose files are gone or changed), so
    that ``nextword info`` tells an unchecked file from one older than the check. The base's files are
    read four times (split, counted, its training and its validation documents), the new corpus's
    twice."""
    from nextword.corpus import CorpusError, split_corpus
    from nextword.corpus.overlap import copies_of, split_differs, trained_documents, training_side

    corpus = replace(base.config.corpus, paths=base_corpus) if base_corpus else base.config.corpus
    reason, short = (None, None) if base_corpus else _unreadable(base)
    base_split = None
    if reason is None:
        logger.info(
            "reading the base's corpus %s to compare its documents with this one's", list(corpus.paths)
        )
        try:
            base_split = split_corpus(corpus, _base_record(base), log=False)
        except (CorpusError, OSError, ValueError) as exc:
            if base_corpus:
                raise ValueError(f"`base_corpus`: {exc}") from None
            reason, short = (
                f"its corpus could not be split again ({exc})",
                "its corpus could not be split again",
            )
    digest = _data(base).get("corpus_sha256")
    differs = base_split and split_differs(
        base_split, _counts(base), "the base's", base.tokenizer, digest if isinstance(digest, str) else None
    )
    if differs:
        reason, short = f"{list(corpus.paths)} hold {differs}", "its corpus files changed since it trained"
        if base_corpus:
            raise ValueError(
                f"`base_corpus`: {reason}: they are not the files it was trained on; give those files, or "
                "leave `base_corpus` out"
            )
    if base_split is None or reason is not None:
        logger.info(
            "the held-out documents of this corpus are not checked against those the base trained on: %s",
            reason,
        )
        return {"overlap_unchecked": short}
    record = split.record
    is_val: list[bool] = []  # filled as the held-out documents are read

    def held_out() -> Iterator[str]:
        for validation, document in _held_out(split, dev):
            is_val.append(validation)
            yield document

    dev_documents = _data(base).get("dev_documents")
    base_trained = trained_documents(base_split, dev_documents if isinstance(dev_documents, int) else None)
    shared = copies_of(base_trained, held_out(), record)
    val = np.asarray(is_val, dtype=bool)
    facts = {"val_overlap": int(shared[val].sum()), "dev_overlap": int(shared[~val].sum())}
    _report(base, facts, int(val.sum()), int((~val).sum()))
    # The other way: the base's validation documents this run trains on copies of. Scored on the
    # base's split (evaluate --split-of BASE), the fine-tuned model has seen them.
    base_val = (document for is_val, document in base_split.read() if is_val)
    seen = copies_of(training_side(split, dev), base_val, record)
    facts |= {"val_trained": int(seen.sum()), "val_documents": len(seen)}
    if facts["val_trained"]:
        logger.info(
            "this corpus's training documents copy or nearly copy %d of the base's %d validation documents: "
            "scored on the base's split, the fine-tuned model has seen them; compare the two on this run's "
            "validation documents (`nextword evaluate` with `--split-of` the fine-tuned model file)",
            facts["val_trained"],
            len(seen),
        )
    return facts


def _unreadable(base: Base) -> tuple[str, str] | tuple[None, None]:
    """Why a base's own corpus files cannot be read as they were, and that in a few words without
    paths (for the model file); or Nones."""
    if base.run is None:
        return (
            "a model file does not hold the documents it was trained on; `base_corpus` names its "
            "corpus files",
            "a model-file base, its corpus files not given",
        )
    paths = [Path(p) for p in base.config.corpus.paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        return (
            f"its corpus files {missing} are gone; `base_corpus` names where they are now",
            "its corpus files are gone",
        )
    # Sizes, not times: a copy of the same files (restored, provisioned again) has new times. An edit
    # that keeps the size shows in the documents counted, checked once the files are split again.
    stats = base.stored.get("corpus_files")
    sizes = [p.stat().st_size for p in paths]
    if isinstance(stats, list) and [s[0] if isinstance(s, list) and s else s for s in stats] != sizes:
        changed = "its corpus files changed since it trained"
        return f"{changed}: {[str(p) for p in paths]}", changed
    return None, None


def _data(base: Base) -> dict[str, Any]:
    data = base.stored.get("data")
    return data if isinstance(data, dict) else {}


def _counts(base: Base) -> DataCounts:
    """What the base recorded of its split: the counts a split made again must match."""
    data = _data(base)
    keys = ("documents", "val_documents", "val_words")
    return DataCounts(**{key: data[key] for key in keys if type(data.get(key)) is int})


def _base_record(base: Base) -> Any:
    from nextword.corpus import recorded_split

    if base.run is None and _data(base).get("split") is None:
        raise ValueError(
            f"{base.source} does not record how its corpus was split, so the documents it trained on "
            "cannot be told from those it held out"
        )
    return recorded_split(_data(base), base.config.corpus)


def _held_out(split: DocumentSplit, dev: np.ndarray | None) -> Iterator[tuple[bool, str]]:
    """``(is_validation, document)`` for the validation documents of ``split`` and those of its
    development part (``dev``: a mask over its training documents), in corpus order."""
    index = 0
    for is_val, document in split.read():
        if is_val:
            yield True, document
            continue
        if dev is not None and dev[index]:
            yield False, document
        index += 1


def _report(base: Base, facts: dict[str, int], val: int, dev: int) -> None:
    shared = facts["val_overlap"] + facts["dev_overlap"]
    if not shared:
        logger.info(
            "none of this corpus's %d validation and %d development documents is a copy or near-duplicate "
            "of the documents the base trained on",
            val,
            dev,
        )
        return
    parts = [
        f"{count} of {owner} {total} {side} documents"
        for count, total, side, owner in (
            (facts["val_overlap"], val, "validation", "this corpus's"),
            (facts["dev_overlap"], dev, "development", "its" if facts["val_overlap"] else "this corpus's"),
        )
        if count
    ]
    logger.warning(
        "%s %s of documents the base (%s) trained on: the fine-tuned run's validation figures and its choice "
        "of epoch reward what the base saw, not what it learnt. To score it on unseen text, leave the base's "
        "documents out of this corpus (give only the documents that are new)",
        " and ".join(parts),
        "is a copy or near-duplicate" if shared == 1 else "are copies or near-duplicates",
        base.source,
    )
