"""Exact and near-duplicate documents, found in one pass with memory bounded by hashes, not texts.

What counts as a duplicate, how the settings were chosen and what the method misses: docs/dedup.md.

- A document's *words* are the runs of letters and digits of its text after Unicode NFKC and case
  folding (:func:`document_words`): case, whitespace and punctuation do not count.
- Two documents with the same words in the same order are *exact duplicates*; the first one is kept.
  Each document leaves an 8-byte hash of its words (:func:`exact_key`).
- *Near-duplicates* share most of their shingles (runs of ``shingle_words`` words). Each document
  leaves a MinHash signature of its shingles: ``num_perm`` values of 16 bits, 64 bytes for the default
  32. Documents whose signatures agree on a band of two values are candidates; a candidate pair whose
  signatures agree on at least ``threshold`` of their values (an estimate of the Jaccard similarity of
  the shingle sets) is a near-duplicate pair. Groups are the connected components of those pairs.

Memory: 72 bytes a document for the hashes, plus a few arrays of one integer a document while the
groups are formed (:func:`find_duplicates`). Hashing is vectorized with numpy, a batch of documents
at a time.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import unicodedata
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nextword.runtime.provenance import DedupSettings

__all__ = ["Duplicates", "SignatureBuilder", "document_words", "exact_key", "find_duplicates"]

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")
_BATCH_BYTES = 1 << 18  # text hashed per numpy batch
_VERIFY_PAIRS = 1 << 16  # candidate pairs compared per numpy step
_U64 = np.uint64
# Fixed constants: signatures (and so splits) must be the same in every process and on every machine.
_BYTE_MULT, _OFFSET_MULT = _U64(0x9E3779B97F4A7C15), _U64(0xD6E8FEB86659FD93)
_SHINGLE_MULTS = np.random.default_rng(20240601).integers(1, 2**63, size=64, dtype=np.uint64) | _U64(1)
_PERM_SEED = 20240602


def document_words(text: str) -> list[str]:
    """The words that identify a document: runs of letters and digits after NFKC and case folding."""
    if text.isascii():  # NFKC leaves ASCII alone, and case folding is lowercasing there
        return _WORD.findall(text.lower())
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def exact_key(words: list[str], text: str) -> int:
    """A 64-bit hash of ``words``; a document without words is keyed by its case-folded text."""
    joined = " ".join(words) if words else "\x00" + " ".join(text.casefold().split())
    return int.from_bytes(
        hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def _mix(x: np.ndarray) -> np.ndarray:
    """A bijective scramble of uint64 values (splitmix64's finalizer); works in place on ``x``."""
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _word_hashes(joined: bytes) -> np.ndarray:
    """A uint64 hash of each word of ``joined`` (words separated by single spaces), in order."""
    data = np.frombuffer(joined, dtype=np.uint8)  # (L,)
    space = data == 0x20
    starts = np.concatenate(([0], np.flatnonzero(space) + 1))  # (W,) first byte of each word
    word_of_byte = np.cumsum(space) - space  # (L,) the word each byte belongs to (a space: the one before)
    offset = np.arange(len(data), dtype=np.uint64) - starts[word_of_byte].astype(np.uint64)  # (L,)
    per_byte = _mix(data.astype(np.uint64) * _BYTE_MULT + offset * _OFFSET_MULT)  # (L,)
    per_byte[space] = 0  # the separators add nothing to their word
    return _mix(np.add.reduceat(per_byte, starts))  # (W,)


def _signatures(texts: list[str], settings: DedupSettings, mults: np.ndarray, adds: np.ndarray) -> np.ndarray:
    """MinHash signatures (len(texts), num_perm) uint16 of texts that are words joined by single spaces."""
    words = _word_hashes(" ".join(texts).encode("utf-8", "surrogatepass"))  # (W,)
    counts = np.array([t.count(" ") + 1 for t in texts], dtype=np.int64)  # (D,) words per document
    first_word = np.cumsum(counts) - counts  # (D,)
    k = settings.shingle_words
    shingles_per_doc = np.maximum(counts - k + 1, 1)  # (D,) a document shorter than k words is one shingle
    first_shingle = np.cumsum(shingles_per_doc) - shingles_per_doc  # (D,)
    doc = np.repeat(np.arange(len(texts)), shingles_per_doc)  # (S,) document of each shingle
    start = first_word[doc] + np.arange(len(doc)) - first_shingle[doc]  # (S,) its first word
    end = first_word[doc] + counts[doc]  # (S,) one past its document's last word
    shingles = np.zeros(len(doc), dtype=np.uint64)  # (S,) an order-sensitive sum of its words' hashes
    for j in range(k):
        at = start + j
        inside = at < end
        shingles += np.where(inside, words[np.minimum(at, len(words) - 1)] * _SHINGLE_MULTS[j], _U64(0))
    shingles = (_mix(shingles) >> _U64(32)).astype(np.uint32)  # (S,) 32 well-mixed bits each
    values = np.multiply.outer(shingles, mults)  # (S, P) uint32: one permutation per column
    values += adds
    minima = np.minimum.reduceat(values, first_shingle, axis=0)  # (D, P)
    return (minima & np.uint32(0xFFFF)).astype(np.uint16)  # the low bits of each minimum are uniform


class SignatureBuilder:
    """Collects each document's exact key and MinHash signature, one document at a time.

    Texts wait in a batch of about 256 KiB, hashed together with numpy. What stays is 8 + 2 x num_perm
    bytes a document; the signatures wait in a temporary file until :meth:`finish` reads them back in
    one array, so no second copy of them is ever in memory.
    """

    def __init__(self, settings: DedupSettings) -> None:
        if settings.value_bits != 16 or settings.band_rows != 2:
            raise ValueError("this nextword computes 16-bit MinHash values in bands of two")
        if settings.shingle_words > len(_SHINGLE_MULTS):
            raise ValueError(f"shingles of at most {len(_SHINGLE_MULTS)} words are supported")
        self.settings = settings
        rng = np.random.default_rng(_PERM_SEED)
        # (a * x + b) mod 2**32 with odd a: one permutation of the 32-bit shingle hashes per value
        self._mults = rng.integers(0, 2**31, size=settings.num_perm, dtype=np.uint32) * np.uint32(
            2
        ) + np.uint32(1)
        self._adds = rng.integers(0, 2**32, size=settings.num_perm, dtype=np.uint32)
        self._keys = array("Q")  # 8 bytes a document
        self._has_words = bytearray()  # 1 byte a document
        # Closed (and so deleted) by finish(), or when the builder is dropped after an error.
        self._spill = tempfile.TemporaryFile(prefix="nextword-signatures-")  # noqa: SIM115
        self._batch: list[str] = []
        self._batch_rows: list[int] = []  # the row of each batched text among the batch's documents
        self._batch_docs = 0
        self._batch_bytes = 0

    def add(self, text: str) -> None:
        """Hash one document (the next in corpus order)."""
        words = document_words(text)
        self._keys.append(exact_key(words, text))
        self._has_words.append(bool(words))
        if words:
            joined = " ".join(words)
            self._batch.append(joined)
            self._batch_rows.append(self._batch_docs)
            self._batch_bytes += len(joined)
        self._batch_docs += 1
        if self._batch_bytes >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        signatures = np.zeros((self._batch_docs, self.settings.num_perm), dtype=np.uint16)
        if self._batch:
            signatures[self._batch_rows] = _signatures(self._batch, self.settings, self._mults, self._adds)
        self._spill.write(signatures.tobytes())
        self._batch, self._batch_rows, self._batch_docs, self._batch_bytes = [], [], 0, 0

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(keys, signatures, has_words)``: (D,) uint64, (D, num_perm) uint16, (D,) bool."""
        self._flush()
        with self._spill:
            self._spill.seek(0)
            signatures = np.fromfile(self._spill, dtype=np.uint16).reshape(-1, self.settings.num_perm)
        keys = np.frombuffer(self._keys, dtype=np.uint64)
        has_words = np.frombuffer(self._has_words, dtype=bool)
        return keys, signatures, has_words


@dataclass(frozen=True)
class Duplicates:
    """What :func:`find_duplicates` found among ``len(dropped)`` documents, in corpus order."""

    dropped: np.ndarray  # (D,) bool: an exact duplicate of an earlier document
    group: np.ndarray  # (D,) int64: the first document of each kept document's near-duplicate group

    @property
    def exact_duplicates(self) -> int:
        return int(self.dropped.sum())

    def group_sizes(self) -> np.ndarray:
        """The size of each group of kept documents, groups of one included, in order of first document."""
        return np.unique(self.group[~self.dropped], return_counts=True)[1]

    @property
    def near_duplicate_groups(self) -> int:
        return int((self.group_sizes() > 1).sum())

    @property
    def near_duplicate_documents(self) -> int:
        sizes = self.group_sizes()
        return int(sizes[sizes > 1].sum())


def find_duplicates(documents: Iterable[str], settings: DedupSettings) -> Duplicates:
    """Read ``documents`` once and find exact duplicates and near-duplicate groups (module docstring)."""
    builder = SignatureBuilder(settings)
    for document in documents:
        builder.add(document)
    keys, signatures, has_words = builder.finish()
    return duplicates_of(keys, signatures, has_words, settings)


def duplicates_of(
    keys: np.ndarray, signatures: np.ndarray, has_words: np.ndarray, settings: DedupSettings
) -> Duplicates:
    """Exact duplicates and near-duplicate groups from what :class:`SignatureBuilder` collected."""
    n = len(keys)
    dropped = np.ones(n, dtype=bool)
    dropped[np.unique(keys, return_index=True)[1]] = False  # the first of each key is kept
    del keys
    a, b = near_duplicate_pairs(signatures, has_words & ~dropped, settings)
    return Duplicates(dropped=dropped, group=components(n, a, b))


def near_duplicate_pairs(
    signatures: np.ndarray, eligible: np.ndarray, settings: DedupSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(a, b)`` of ``eligible`` documents whose signatures agree on a band and on at least
    ``settings.threshold`` of their values. Within each band, the documents that share a key are
    compared with the first of them only: memory and time stay linear in the documents."""
    need = int(np.ceil(settings.threshold * settings.num_perm - 1e-9))
    rows = np.flatnonzero(eligible)
    bands = np.ascontiguousarray(signatures).view(np.uint32)  # (D, num_perm / 2): two values a band
    found_a, found_b = [], []
    for band in range(bands.shape[1]):
        keys = bands[rows, band]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        same = keys[1:] == keys[:-1]  # position i + 1 shares its key with position i
        if not same.any():
            continue
        members = np.flatnonzero(same) + 1  # positions that are not the first of their run
        run_starts = np.flatnonzero(np.concatenate(([True], ~same)))
        heads = run_starts[np.searchsorted(run_starts, members, side="right") - 1]
        a, b = rows[order[heads]], rows[order[members]]
        del keys, order, same, members, run_starts, heads
        for low in range(0, len(a), _VERIFY_PAIRS):
            pa, pb = a[low : low + _VERIFY_PAIRS], b[low : low + _VERIFY_PAIRS]
            agree = (signatures[pa] == signatures[pb]).sum(axis=1)  # (pairs,) values in common
            keep = agree >= need
            found_a.append(pa[keep])
            found_b.append(pb[keep])
    if not found_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found_a), np.concatenate(found_b)


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each of ``n`` nodes, the smallest node of its connected component under the edges
    ``(a[i], b[i])``: hook each edge's roots to the smaller one, then jump pointers, until every edge
    has both ends under one root."""
    label = np.arange(n, dtype=np.int64)  # label[x] <= x throughout; a root is its own label
    while len(a):
        la, lb = label[a], label[b]
        if np.array_equal(la, lb):
            break
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
    return label
