"""Exact and near-duplicate documents, found in one pass with memory bounded by hashes, not texts.

What counts as a duplicate, how the settings were chosen and what the method misses: docs/dedup.md.

- Two documents with the same words (:func:`~nextword.corpus.minhash.document_words`: case, whitespace
  and punctuation folded; combining marks part of words or not, as ``marks`` says) are *exact
  duplicates*; the first one is kept.
- *Near-duplicates* share most of their shingles. Documents whose MinHash signatures
  (:mod:`nextword.corpus.minhash`) agree on a band of two values are candidates; a candidate pair whose
  signatures agree on at least ``threshold`` of their values (an estimate of the Jaccard similarity of
  the shingle sets) is a near-duplicate pair. Groups are the connected components of those pairs.

Memory, a document: 8 bytes for its exact key until the exact duplicates are known, then about 30
bytes while a band is sorted, and at most one kept pair (16 bytes); the signatures stay in a temporary
file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nextword.runtime.provenance import DedupSettings

from .minhash import SignatureBuilder, SignatureFile

__all__ = [
    "Duplicates",
    "components",
    "find_duplicates",
    "first_of_key",
    "later_repeats",
    "near_duplicate_groups",
    "shared_documents",
]

_VERIFY_PAIRS = 1 << 12  # candidate pairs compared per step


@dataclass(frozen=True)
class Duplicates:
    """What :func:`find_duplicates` found among ``len(dropped)`` documents, in corpus order."""

    dropped: np.ndarray  # (D,) bool: an exact duplicate of an earlier document
    group: np.ndarray  # (D,) int: the first document of each document's near-duplicate group

    @property
    def exact_duplicates(self) -> int:
        return int(self.dropped.sum())

    def group_sizes(self) -> np.ndarray:
        """(D,) int32: for the first document of each group, the group's number of kept documents
        (1 for a document alone); 0 for every other document."""
        return np.bincount(self.group[~self.dropped], minlength=len(self.group)).astype(np.int32)

    @property
    def near_duplicate_groups(self) -> int:
        """Groups of two or more kept documents."""
        return int((self.group_sizes() > 1).sum())

    @property
    def near_duplicate_documents(self) -> int:
        """Kept documents that have a near-duplicate."""
        sizes = self.group_sizes()
        return int(sizes[sizes > 1].sum())


def find_duplicates(
    documents: Iterable[str], settings: DedupSettings, *, marks: bool = True, mixed: bool = True
) -> Duplicates:
    """Read ``documents`` once; find the exact duplicates and the near-duplicate groups among the rest,
    by default as a new split does (``dedup-v5``). ``marks``: combining marks are letters of the words
    compared, as split scheme ``dedup-v4`` and later have it; False: they separate words, as in the
    older schemes. ``mixed``: signature values as ``dedup-v5`` keeps them; False: as the older schemes
    did, which made unrelated documents of five words or fewer near-duplicates (:mod:`.minhash`). A
    caller that makes an older scheme's split again passes
    ``**nextword.corpus.schemes.dedup_options(scheme)``."""
    with SignatureBuilder(settings, marks=marks, mixed=mixed) as builder:
        for document in documents:
            builder.add(document)
        keys, has_words, signatures = builder.finish()
    del builder
    with signatures:
        dropped = later_repeats(keys)
        del keys
        group = near_duplicate_groups(signatures, has_words & ~dropped, settings.threshold)
    return Duplicates(dropped=dropped, group=group)


def shared_documents(
    reference: Iterable[str],
    documents: Iterable[str],
    settings: DedupSettings,
    *,
    marks: bool = True,
    mixed: bool = True,
) -> np.ndarray:
    """(N,) bool for the N ``documents``: whether each is an exact or a near-duplicate of one of the
    ``reference`` documents, as :func:`find_duplicates` judges them over the reference documents followed
    by these (a near-duplicate group holding a reference document). Both are read once; memory as
    :func:`find_duplicates` holds for all of them."""
    n_reference = 0
    with SignatureBuilder(settings, marks=marks, mixed=mixed) as builder:
        for document in reference:
            builder.add(document)
            n_reference += 1
        for document in documents:
            builder.add(document)
        keys, has_words, signatures = builder.finish()
    del builder
    with signatures:
        first = first_of_key(keys)  # an exact copy stands for the first document with its words
        del keys
        kept = first == np.arange(len(first))
        group = near_duplicate_groups(signatures, has_words & kept, settings.threshold)
    # A group's root is its smallest document: one that holds a reference document has one of theirs.
    return group[first][n_reference:] < n_reference


def first_of_key(keys: np.ndarray) -> np.ndarray:
    """(D,) int: for each position, the first position holding the same key."""
    order = np.argsort(keys, kind="stable")  # equal keys stay in corpus order
    in_order = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = in_order[1:] != in_order[:-1]
    heads = np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))  # each run's first place
    first = np.empty(len(keys), dtype=np.int64)
    first[order] = order[heads]
    return first


def later_repeats(keys: np.ndarray) -> np.ndarray:
    """(D,) bool: True where a key repeats an earlier one (the first of each key is kept)."""
    order = np.argsort(keys, kind="stable")  # equal keys stay in corpus order
    in_order = keys[order]
    repeats = np.zeros(len(keys), dtype=bool)
    repeats[order[1:][in_order[1:] == in_order[:-1]]] = True
    return repeats


def near_duplicate_groups(signatures: SignatureFile, eligible: np.ndarray, threshold: float) -> np.ndarray:
    """For each document, the first document of its group: the connected components of the pairs of
    ``eligible`` documents whose signatures agree on a band and on at least ``threshold`` of their values.

    In each band the documents that share a key are compared with the first of them only, and pairs
    already in one group are not compared again: memory and time stay linear in the documents."""
    need = int(np.ceil(threshold * signatures.num_perm - 1e-9))  # values two signatures must share
    rows = np.flatnonzero(eligible).astype(np.int32 if len(eligible) < 2**31 else np.int64)
    group = np.arange(len(eligible), dtype=np.int32 if len(eligible) < 2**31 else np.int64)
    for band in range(signatures.num_perm // 2):
        a, b = _band_candidates(signatures.band(band)[rows], rows)
        fresh = group[a] != group[b]  # pairs already in one group are not compared again
        a, b = a[fresh], b[fresh]
        found_a, found_b = [], []
        for low in range(0, len(a), _VERIFY_PAIRS):
            pa, pb = a[low : low + _VERIFY_PAIRS], b[low : low + _VERIFY_PAIRS]
            needed = np.union1d(pa, pb)
            held = signatures.take(needed)  # (rows, num_perm)
            agree = (held[np.searchsorted(needed, pa)] == held[np.searchsorted(needed, pb)]).sum(axis=1)
            found_a.append(pa[agree >= need])
            found_b.append(pb[agree >= need])
        if found_a:
            group = components(group, np.concatenate(found_a), np.concatenate(found_b))
    return group


def _band_candidates(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of ``rows`` whose band ``keys`` are equal: each one with the first row of its key."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    repeat = np.flatnonzero(keys[1:] == keys[:-1])  # (R,) i: position i + 1 has the key of position i
    del keys
    if not len(repeat):
        return rows[:0], rows[:0]
    # A run of equal keys shows as consecutive positions in ``repeat``; its first row is at the first.
    starts_run = np.concatenate(([True], repeat[1:] != repeat[:-1] + 1))  # (R,)
    heads = repeat[np.flatnonzero(starts_run)[np.cumsum(starts_run) - 1]]  # (R,) the run's first position
    return rows[order[heads]], rows[order[repeat + 1]]


def components(group: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``group`` (each node's smallest node so far: ``group[x] <= x``, roots their own) merged along the
    edges ``(a[i], b[i])``: hook each edge's roots to the smaller one, then jump pointers, until every
    edge has both ends under one root. ``np.arange(n)`` as ``group`` gives the connected components."""
    group = group.copy()
    while len(a):
        ga, gb = group[a], group[b]
        if np.array_equal(ga, gb):
            break
        low = np.minimum(ga, gb)
        np.minimum.at(group, ga, low)
        np.minimum.at(group, gb, low)
        while True:
            jumped = group[group]
            if np.array_equal(jumped, group):
                break
            group = jumped
    return group
