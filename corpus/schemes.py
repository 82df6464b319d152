"""What each split scheme's deduplication does with words and MinHash values
(:class:`~nextword.runtime.provenance.SplitRecord` names the scheme; :mod:`nextword.corpus.split` tells
the schemes apart in full)."""

from __future__ import annotations

from nextword.runtime.provenance import (
    SPLIT_DEDUPLICATED_V1,
    SPLIT_DEDUPLICATED_V2,
    SPLIT_DEDUPLICATED_V3,
    SPLIT_DEDUPLICATED_V4,
)

__all__ = ["dedup_options", "values_mixed", "words_take_marks"]

_WORDS_WITHOUT_MARKS = (SPLIT_DEDUPLICATED_V1, SPLIT_DEDUPLICATED_V2, SPLIT_DEDUPLICATED_V3)
_LOW_BIT_VALUES = (*_WORDS_WITHOUT_MARKS, SPLIT_DEDUPLICATED_V4)


def words_take_marks(scheme: str) -> bool:
    """Whether deduplication under split scheme ``scheme`` counts combining marks as letters of words
    (``dedup-v4`` and later), rather than as separators (``dedup-v1`` to ``dedup-v3``)."""
    return scheme not in _WORDS_WITHOUT_MARKS


def values_mixed(scheme: str) -> bool:
    """Whether deduplication under split scheme ``scheme`` keeps bits of each whole MinHash minimum
    (``dedup-v5`` and later), rather than its low bits (``dedup-v1`` to ``dedup-v4``)."""
    return scheme not in _LOW_BIT_VALUES


def dedup_options(scheme: str) -> dict[str, bool]:
    """The keyword arguments of :func:`~nextword.corpus.dedup.find_duplicates` (and
    ``shared_documents``) that deduplicate as split scheme ``scheme`` does."""
    return {"marks": words_take_marks(scheme), "mixed": values_mixed(scheme)}
