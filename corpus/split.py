"""Splitting a corpus into training and validation documents, and rebuilding a model's split.

A split is a label per document read from the corpus files, in file order (:class:`DocumentSplit`):
training, validation, or dropped (an exact duplicate of an earlier document). It is made in one pass
over the files (:func:`split_corpus`) and applied in later passes by reading the files again
(:meth:`DocumentSplit.read`), so no step holds the corpus. The schemes, named in the
:class:`~nextword.runtime.provenance.SplitRecord` that runs and model files keep:

- ``documents-v1`` (:data:`SPLIT_BY_DOCUMENT`; ``--keep-duplicates``, and every model exported before
  deduplication): a seeded permutation of the document indices, whose first ``val_fraction`` are held
  out (:func:`validation_indices`).
- ``dedup-v5`` (:data:`~nextword.runtime.provenance.SPLIT_DEDUPLICATED_V5`, the default): ``dedup-v4``'s
  split, with MinHash values that keep bits of the whole minimum (:func:`values_mixed`); the low bits
  the older schemes kept made unrelated documents of a few words near-duplicates (:mod:`.minhash`).
- ``dedup-v4`` (:data:`~nextword.runtime.provenance.SPLIT_DEDUPLICATED_V4`): ``dedup-v3``'s
  split, with combining marks (Unicode Mn, Mc, Me) part of the words deduplication compares
  (:func:`words_take_marks`). Under the older schemes they separate words, so Hindi, Arabic or Hebrew
  documents that differ only in vowel signs (``यह दिन है``, ``यह दीन है``) are exact duplicates there.
- ``dedup-v3`` (:data:`~nextword.runtime.provenance.SPLIT_DEDUPLICATED_V3`): ``dedup-v2``'s split, whose
  groups also decide the development part (:func:`nextword.corpus.dev.dev_mask`): it holds out whole
  groups of training documents, so none of its documents has a near-duplicate among those trained on.
- ``dedup-v2`` (:data:`SPLIT_DEDUPLICATED_V2`): exact duplicates are dropped, the first kept;
  near-duplicates form groups (:mod:`nextword.corpus.dedup`), so a group never straddles the split; a
  seeded permutation of the groups is walked, and each group that still fits in ``val_fraction`` of
  the kept documents is held out, until they are full. A group larger than the room left stays in
  training: the validation documents never exceed the fraction asked for. Its development part was
  drawn document by document.
- ``dedup-v1`` (:data:`SPLIT_DEDUPLICATED_V1`, models trained before ``dedup-v2``): the same walk, but
  every group is held out until the fraction is reached, whatever its size. One group of a templated
  corpus (hundreds of reports written from one form) could hold out most of the corpus, leaving a
  handful of training documents; it is kept so that those models' splits can be made again.

:func:`rebuild_split` makes the split a model file records, from the same corpus files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nextword.runtime.checks import check_int, check_real, wrong_type
from nextword.runtime.provenance import (
    SPLIT_BY_DOCUMENT,
    SPLIT_DEDUPLICATED_V1,
    DataCounts,
    Provenance,
    SplitRecord,
)

from .config import CorpusConfig, corpus_config
from .dedup import Duplicates, find_duplicates
from .errors import CorpusError
from .html_references import ReferenceCount
from .readers import check_options, no_documents, read_corpus
from .schemes import dedup_options, values_mixed, words_take_marks

__all__ = [
    "DROPPED",
    "TRAIN",
    "VAL",
    "DocumentSplit",
    "dedup_options",
    "fitting_groups",
    "rebuild_split",
    "recorded_corpus",
    "recorded_split",
    "split_corpus",
    "split_documents",
    "validation_indices",
    "values_mixed",
    "words_take_marks",
]

logger = logging.getLogger(__name__)

TRAIN, VAL, DROPPED = 0, 1, 2  # the label of a document in DocumentSplit.labels


@dataclass(frozen=True)
class DocumentSplit:
    """Which documents of ``corpus`` are for training and which for validation."""

    corpus: CorpusConfig  # the files, and how they are read
    record: SplitRecord  # how the split was made: enough to make it again
    labels: np.ndarray  # (documents,) uint8: TRAIN, VAL or DROPPED, in corpus order
    counts: DataCounts  # documents read, duplicates, and documents per side (no word counts)
    # (documents,) each document's near-duplicate group (the index of its first document), kept for a
    # scheme whose development part follows the groups (SplitRecord.dev_by_group); else None
    groups: np.ndarray | None = None
    digest: str | None = None  # SHA-256 (hex) of the documents read, in order (_digested); None: not taken

    def training_groups(self) -> np.ndarray | None:
        """The near-duplicate group of each training document, in corpus order, for
        :func:`~nextword.corpus.dev.dev_mask`; None where the development part ignores groups."""
        return None if self.groups is None else self.groups[self.labels == TRAIN]

    def read(self) -> Iterator[tuple[bool, str]]:
        """Yield ``(is_validation, document)`` for every document kept, in corpus order, reading the
        files again (one document in memory at a time). Raises :class:`CorpusError` if the files no
        longer hold the documents they held when the split was made (other text: once all are read)."""
        labels, n, index, digest = self.labels, len(self.labels), 0, hashlib.sha256()
        for document in _digested(read_corpus(self.corpus, log=False), digest):
            if index == n:
                raise _changed(self.corpus.paths, n, "more")
            label = labels[index]
            index += 1
            if label != DROPPED:
                yield bool(label == VAL), document
        if index != n:
            raise _changed(self.corpus.paths, n, str(index))
        if self.digest is not None and digest.hexdigest() != self.digest:  # a file replaced meanwhile
            raise _changed(self.corpus.paths, n, f"{n} with other text")

    def documents(self) -> tuple[list[str], list[str]]:
        """The training and the validation documents, in corpus order (for corpora that fit in memory)."""
        train: list[str] = []
        val: list[str] = []
        for is_val, document in self.read():
            (val if is_val else train).append(document)
        return train, val


def split_corpus(
    corpus: CorpusConfig, record: SplitRecord | None = None, *, log: bool = True
) -> DocumentSplit:
    """Read the files of ``corpus`` once and split their documents as ``record`` says (by default,
    as ``corpus`` says: :meth:`CorpusConfig.split_record`); with ``log``, the documents of each file
    and the split's counts are logged, and a validation side well short of its share is warned of
    (without: a split made again to compare documents with, whose own shape is not the caller's).

    Memory: 1 byte a document for the labels (8 while the document-index split is drawn) and, when
    deduplicating, what :func:`~nextword.corpus.dedup.find_duplicates` holds: 9 bytes a document while
    the files are read, about 30 while the groups are formed, then 4 a document for the groups that
    ``dedup-v3`` and later keep for the development part. Raises :class:`CorpusError` for unreadable
    files, an empty corpus, or one that cannot be split (fewer than two documents, or two groups, to
    share out); without ``record`` (a new split: the options are the caller's, not a model's record),
    also for a ``text_column`` or ``json_field`` that applies to none of the files
    (:func:`~nextword.corpus.readers.check_options`).
    """
    corpus = corpus_config("corpus", corpus)
    if record is not None and not isinstance(record, SplitRecord):
        raise wrong_type("record", "a SplitRecord, or None for the split `corpus` says", record)
    fresh = record is None
    record = record or corpus.split_record()
    try:
        record.check_known()
    except ValueError as exc:
        raise CorpusError(str(exc)) from None
    if not corpus.paths:
        raise CorpusError("no corpus files given")
    if fresh:  # the options are the caller's; a recorded split reads files as a model's were read
        check_options(corpus.paths, corpus)
    groups = None
    digest = hashlib.sha256()
    read = read_corpus(corpus, log=log)
    references = ReferenceCount() if fresh and log else None
    if references is not None:  # a new split of text that may come from HTML: say so once it is read
        read = references.passing(read)
    if record.dedup is None:
        n = sum(1 for _ in _digested(read, digest))
        if not n:
            raise no_documents(corpus.paths, corpus)
        labels = np.full(n, TRAIN, dtype=np.uint8)
        labels[validation_indices(n, record.val_fraction, record.seed)] = VAL
        counts = DataCounts(documents=n)
    else:
        documents = _digested(read, digest)
        duplicates = find_duplicates(documents, record.dedup, **dedup_options(record.scheme))
        if not len(duplicates.dropped):
            raise no_documents(corpus.paths, corpus)
        if len(duplicates.dropped) == 1:  # not a matter of near-duplicates: there is one document
            raise _too_few(1)
        labels = _assign_groups(
            duplicates, record.val_fraction, record.seed, fit=record.scheme != SPLIT_DEDUPLICATED_V1, warn=log
        )
        if record.dev_by_group:  # int32 where it can: 4 bytes a document
            groups = duplicates.group.astype(np.int32 if len(labels) < 2**31 else np.int64)
        counts = DataCounts(
            documents=len(labels),
            exact_duplicates=duplicates.exact_duplicates,
            near_duplicate_groups=duplicates.near_duplicate_groups,
            near_duplicate_documents=duplicates.near_duplicate_documents,
        )
    counts = dataclasses.replace(
        counts, train_documents=int((labels == TRAIN).sum()), val_documents=int((labels == VAL).sum())
    )
    if log:
        _log(counts, record)
    if references is not None and references.documents:
        logger.warning("%s", references.advice(len(labels), decoded=corpus.decode_html))
    return DocumentSplit(
        corpus=corpus, record=record, labels=labels, counts=counts, groups=groups, digest=digest.hexdigest()
    )


def _digested(documents: Iterator[str], digest: Any) -> Iterator[str]:
    """``documents``, each added to ``digest`` (a ``hashlib`` hash) as it passes: its UTF-8 length (8
    bytes, little-endian), then its UTF-8 bytes, so that no two lists of documents hash alike."""
    for document in documents:
        data = document.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
        yield document


def rebuild_split(provenance: Provenance, corpus: CorpusConfig) -> DocumentSplit:
    """The split a model was trained with, made again from the corpus files ``corpus.paths``.

    ``provenance`` is what the model file records (``load(path).info.provenance``): the split's scheme,
    fraction, seed and deduplication settings come from it, so the held-out documents are those the
    model never saw in training, files exported before deduplication existed included. ``corpus``
    names the files and how to read them (:func:`recorded_corpus` reads them as the model's were). A
    warning is logged when the files hold another number of documents than the model's corpus did,
    or other documents read otherwise than it records (format, column, field, ``decode_html``): the
    split made then is not the one it was trained with. A ``provenance`` of None (a file that records
    none) or without a split is a :class:`CorpusError`.
    """
    if provenance is None:  # model.info.provenance of a file exported before provenance was recorded
        raise CorpusError(
            "the model file records no provenance (it was exported before nextword recorded one), so not "
            "how its corpus was split: that split cannot be made again; split_corpus(corpus) makes a new one"
        )
    if not isinstance(provenance, Provenance):
        raise wrong_type("provenance", "a Provenance, as load(path).info.provenance gives it", provenance)
    if provenance.split is None:
        raise CorpusError("the model file does not record how its corpus was split")
    split = split_corpus(corpus, provenance.split)
    recorded = provenance.data.documents
    if recorded is not None and recorded != split.counts.documents:
        logger.warning(
            "%s hold %d documents, the model's training corpus %d: this is not the split it was trained with",
            list(corpus.paths),
            split.counts.documents,
            recorded,
        )
    elif otherwise := _read_otherwise(provenance, corpus, split.digest):
        logger.warning(
            "%s were read otherwise than the model's corpus (%s), and their documents differ from its: "
            "this is not the split it was trained with; recorded_corpus(provenance, paths) reads them as "
            "the model's were",
            list(corpus.paths),
            otherwise,
        )
    return split


def _read_otherwise(provenance: Provenance, corpus: CorpusConfig, digest: str | None) -> str:
    """The reading options of ``corpus`` that differ from those ``provenance`` records, as
    ``name=value (the model's: value)``, when the documents they gave (their ``digest``) differ from
    the recorded ones; empty when none does, or the documents are the same or not recorded."""
    if provenance.corpus_sha256 in (None, digest):
        return ""
    recorded = recorded_corpus(provenance)
    names = ("format", "text_column", "json_field", "decode_html")
    return ", ".join(
        f"{name}={getattr(corpus, name)!r} (the model's: {getattr(recorded, name)!r})"
        for name in names
        if getattr(corpus, name) != getattr(recorded, name)
    )


def recorded_corpus(provenance: Provenance | None, paths: Sequence[str] = ()) -> CorpusConfig:
    """``paths`` read as a model file records its corpus was read (format, CSV column, JSON field, HTML
    character references decoded or not), or with the defaults where it records none, or an option
    this version does not read."""
    if provenance is not None:
        try:
            return CorpusConfig(
                paths=tuple(paths),
                format=provenance.corpus_format,
                text_column=provenance.text_column,
                json_field=provenance.json_field,
                decode_html=provenance.decode_html,
            )
        except ValueError:
            pass
    return CorpusConfig(paths=tuple(paths))


def recorded_split(facts: dict[str, Any], corpus: CorpusConfig) -> SplitRecord:
    """The split a run recorded in its ``config.json`` facts (``data.split``); runs from before splits
    were recorded used the document-index split with the fraction and seed of ``corpus``."""
    record = facts.get("split")
    if record is None:
        return SplitRecord(SPLIT_BY_DOCUMENT, corpus.val_fraction, corpus.split_seed)
    split = SplitRecord.from_dict(record)
    split.check_known()  # a run folder of a later nextword: its split cannot be made again here
    return split


def validation_indices(n_documents: int, val_fraction: float, seed: int) -> np.ndarray:
    """Indices (sorted, int64) of the documents held out for validation among ``n_documents``, in the
    document-index split (``documents-v1``).

    A seeded permutation of the document indices; its first ``val_fraction`` (at least one document,
    never all) are held out. Memory is 8 bytes per document. Raises :class:`CorpusError` under 2 documents.
    """
    check_int("n_documents", n_documents, 0, None)
    check_real("val_fraction", val_fraction, low=0, low_open=True, high=1)
    check_int("seed", seed, 0, None)  # what numpy's generator takes
    if n_documents < 2:
        raise _too_few(n_documents)
    order = np.random.default_rng(seed).permutation(n_documents)
    return np.sort(order[: _held_out(n_documents, val_fraction)])


def split_documents(documents: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """The document-index split (``documents-v1``) of documents held in memory: the held-out documents
    are those at :func:`validation_indices`, both sides kept in corpus order. Under 2 documents:
    :class:`CorpusError`."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Collection):
        raise wrong_type("documents", "a list of documents (strings)", documents)
    val_idx = set(validation_indices(len(documents), val_fraction, seed).tolist())
    train = [d for i, d in enumerate(documents) if i not in val_idx]
    val = [d for i, d in enumerate(documents) if i in val_idx]
    return train, val


def _too_few(n_documents: int) -> CorpusError:
    return CorpusError(
        f"the corpus has {n_documents} document(s); at least 2 are needed to hold one out for validation "
        "(plain-text files separate documents with blank lines; format='lines' reads one "
        "document per line)"
    )


def _held_out(n: int, val_fraction: float) -> int:
    """How many of ``n`` documents are held out: ``val_fraction`` of them, at least one, never all."""
    return min(max(1, round(n * val_fraction)), n - 1)


def _assign_groups(
    duplicates: Duplicates, val_fraction: float, seed: int, *, fit: bool, warn: bool = True
) -> np.ndarray:
    """Labels for the deduplicated schemes: whole groups are held out, in a seeded random order of the
    groups, until ``val_fraction`` of the kept documents are; exact duplicates are DROPPED. With
    ``fit`` (``dedup-v2``) only groups that still fit are held out; without (``dedup-v1``) every group
    in the order until the fraction is reached. Raises :class:`CorpusError` when no group can be
    held out."""
    sizes = duplicates.group_sizes()  # (D,) the size of each group at its first document
    heads = np.flatnonzero(sizes)  # (G,) the groups, in order of their first document
    n_kept = int(sizes.sum())
    if len(heads) < 2 and n_kept == 1:  # the rest were exact copies: no threshold changes that
        raise CorpusError(
            f"the corpus's {len(duplicates.dropped):,} documents are all copies of the first "
            f"({duplicates.exact_duplicates:,} exact duplicates, ignoring case and punctuation); at least 2 "
            "distinct documents are needed to hold one out for validation: add distinct documents, or pass "
            "keep_duplicates=True to split the copies as they are"
        )
    if len(heads) < 2:
        raise CorpusError(
            f"the corpus has {n_kept} distinct document(s) in {len(heads)} group(s) of near-duplicates; "
            "at least 2 groups are needed to hold one out for validation: raise `near_duplicate_threshold` "
            "if they are not copies of one another, or pass keep_duplicates=True"
        )
    order = np.random.default_rng(seed).permutation(len(heads))
    ordered = sizes[heads[order]]  # (G,) group sizes in the walk's order
    target = _held_out(n_kept, val_fraction)
    if fit:
        chosen = fitting_groups(ordered, target)
        _check_fit(ordered, chosen, target, n_kept, warn)
    else:
        reached = np.cumsum(ordered)  # documents held out after each group
        chosen = np.arange(min(int(np.searchsorted(reached, target)) + 1, len(heads) - 1))
    held_out = np.zeros(len(sizes), dtype=bool)  # by the group's first document
    held_out[heads[order[chosen]]] = True
    del sizes, heads, order, ordered
    kept = ~duplicates.dropped
    labels = np.full(len(kept), DROPPED, dtype=np.uint8)
    labels[kept] = np.where(held_out[duplicates.group[kept]], VAL, TRAIN)
    return labels


def fitting_groups(sizes: np.ndarray, target: int) -> np.ndarray:
    """Positions in ``sizes`` (groups in walk order) of the groups ``dedup-v2`` and later hold out (and
    the development part from ``dedup-v3`` on): walking in order, each group that fits in the room
    left of ``target`` documents, until none is left. The leading run that fits is found at once; the walk
    goes on group by group only past it."""
    reached = np.cumsum(sizes)
    lead = int(np.searchsorted(reached, target, side="right"))  # groups 0..lead-1 fit together
    room = target - (int(reached[lead - 1]) if lead else 0)
    more: list[int] = []
    if room:  # past the lead only groups no larger than the room can ever fit
        for found in np.flatnonzero(sizes[lead:] <= room):  # read one by one: the walk stops early
            position = lead + int(found)
            size = int(sizes[position])
            if size <= room:
                more.append(position)
                room -= size
                if room == 0:
                    break
    return np.concatenate([np.arange(lead, dtype=np.int64), np.asarray(more, dtype=np.int64)])


def _check_fit(sizes: np.ndarray, chosen: np.ndarray, target: int, n_kept: int, warn: bool = True) -> None:
    """Refuse a ``dedup-v2`` split that holds nothing out; warn when groups too large to hold out
    left the validation documents well short of the share asked for."""
    held = int(sizes[chosen].sum())
    largest = int(sizes.max())
    if not held:
        raise CorpusError(
            f"no group of near-duplicates fits in the validation share ({target} of {n_kept} documents): "
            f"the smallest holds {int(sizes.min())}, the largest {largest}; raise `val_fraction`, raise "
            "`near_duplicate_threshold` (fewer documents count as near-duplicates), or pass "
            "keep_duplicates=True"
        )
    if warn and held < 0.9 * target:
        logger.warning(
            "%d documents held out for validation where %d were asked for: groups of near-duplicates "
            "larger than the room left stay in training (the largest holds %d of the %d documents). If "
            "those documents are not copies of one another, raise `near_duplicate_threshold`",
            held,
            target,
            largest,
            n_kept,
        )


def _log(counts: DataCounts, record: SplitRecord) -> None:
    if record.dedup is None:
        logger.info(
            "%d documents: %d for training, %d for validation",
            counts.documents,
            counts.train_documents,
            counts.val_documents,
        )
        return
    logger.info(
        "%d documents read: %d exact duplicates dropped; %d near-duplicate groups (%d documents) kept "
        "whole on one side; %d for training, %d for validation",
        counts.documents,
        counts.exact_duplicates,
        counts.near_duplicate_groups,
        counts.near_duplicate_documents,
        counts.train_documents,
        counts.val_documents,
    )


def _changed(paths: Sequence[str], expected: int, found: str) -> CorpusError:
    return CorpusError(
        f"the corpus {[str(p) for p in paths]} changed while it was read: it held {expected} documents, "
        f"then {found}; leave the files unchanged during training and start again"
    )
