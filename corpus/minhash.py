"""Hashing documents for deduplication: an exact key and a MinHash signature per document.

- A document's *words* are the runs of letters and digits of its text after Unicode NFKC and case
  folding (:func:`document_words`): case, whitespace and punctuation do not count. With ``marks``
  (split scheme ``dedup-v4`` on), combining marks (Unicode categories Mn, Mc and Me: the vowel signs of
  Hindi and the other Indic scripts, Arabic harakat, Hebrew points) are letters too; without (the
  older schemes) they separate words, so ``दिन`` and ``दीन`` were both ``द``, ``न``. Its *exact key* is
  an 8-byte hash of them (:func:`exact_key`).
- Its *signature* is ``num_perm`` MinHash values of its shingles (runs of ``shingle_words`` words),
  16 bits of each: two documents agree on a value with a probability equal to the Jaccard similarity
  of their shingle sets (plus 1/65,536 by chance). From split scheme ``dedup-v5`` on (``mixed``) the
  16 bits are taken from a scramble of the whole 32-bit minimum. The older schemes kept its low 16
  bits, which with these permutations ((a x + b) mod 2**32) depend on the low 16 bits of the shingle's
  hash alone: a document of one shingle (five words or fewer) had one of 65,536 signatures, so
  unrelated short documents were near-duplicates by the thousand, whatever the threshold.

:class:`SignatureBuilder` hashes a batch of about 64 KiB of text at a time with numpy (a longer document
alone, in chunks of :data:`_CHUNK_WORDS` words whose minima it keeps) and keeps 1 byte a document in
memory; keys and signatures go to temporary files, the keys read back at the end (8 bytes
a document) and the signatures a band (a pair of values) at a time (:class:`SignatureFile`), so they
are never all in memory at once.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import unicodedata
from array import array
from typing import BinaryIO

import numpy as np

from nextword.runtime.provenance import DedupSettings
from nextword.runtime.splitting import newer_characters
from nextword.runtime.unicode_marks import ASTRAL_MARKS, BMP_MARKS

from .errors import CorpusError

__all__ = ["SignatureBuilder", "SignatureFile", "document_words", "exact_key"]

_WORD = re.compile(r"\w+")  # Python's \w: letters, digits and the underscore, never a combining mark
# With combining marks (dedup-v4; the tokenizer's table, runtime/unicode_marks.py). re tests a class's
# ranges past the Basic Multilingual Plane one by one, and every separator would try them all: the
# characters past it are made spaces first where they are neither word characters nor marks, and the
# pattern takes the rest whole.
_MARKED_WORD = re.compile(rf"[\w{BMP_MARKS}\U00010000-\U0010ffff]+")
_ASTRAL_MARK = re.compile(f"[{ASTRAL_MARKS}]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # a character past the Basic Multilingual Plane
# For ASCII text, what \w+ on the lowercased text finds, faster: letters lowercased, every character
# that is not a letter, digit or underscore made a space, then a split.
_ASCII_WORDS = str.maketrans(
    {chr(c): (chr(c).lower() if chr(c).isalnum() or chr(c) == "_" else " ") for c in range(128)}
)
_BATCH_BYTES = 1 << 16  # text hashed per numpy batch: its (shingles, num_perm) array is ~2.5 MB
_CHUNK_WORDS = 1 << 13  # words of a longer document hashed at a time (a 15 MB one-line text: 1.8 GB whole)
_BLOCK_ROWS = 1 << 13  # signatures read per block when a band is gathered (1 MiB of 64 values)
_U64 = np.uint64
# Fixed constants: signatures (and so splits) must be the same in every process and on every machine.
_BYTE_MULT, _OFFSET_MULT = _U64(0x9E3779B97F4A7C15), _U64(0xD6E8FEB86659FD93)
_SHINGLE_MULTS = np.random.default_rng(20240601).integers(1, 2**63, size=64, dtype=np.uint64) | _U64(1)
_PERM_SEED = 20240602


def document_words(text: str, *, marks: bool = False) -> list[str]:
    """The words that identify a document: runs of letters and digits after NFKC and case folding.

    With ``marks`` a word also takes in combining marks (categories Mn, Mc, Me), which NFKC leaves
    where no precomposed letter holds them (every Indic vowel sign; Arabic and Hebrew vowel points; a
    Latin ``e`` + U+0301 is composed to ``é`` either way). Without, they separate words (``dedup-v1`` to
    ``dedup-v3``)."""
    if text.isascii():  # NFKC leaves ASCII alone, and case folding is lowercasing there
        return text.translate(_ASCII_WORDS).split()
    newer = newer_characters(text)  # on Python 3.12+: what Unicode 14.0 leaves unassigned separates words
    if newer:  # there, as on 3.11 (where the split was made), so that a split rebuilt there is the same
        text = text.translate(dict.fromkeys(map(ord, newer), " "))
    folded = unicodedata.normalize("NFKC", text).casefold()
    if not marks:
        return _WORD.findall(folded)
    if _ASTRAL.search(folded):
        folded = _ASTRAL.sub(_astral_in_word, folded)
    return _MARKED_WORD.findall(folded)


def _astral_in_word(found: re.Match[str]) -> str:
    """A character past the BMP as it is where words take it (``\\w`` or a combining mark), else a space."""
    c = found[0]
    return c if c.isalnum() or _ASTRAL_MARK.match(c) else " "


def exact_key(words: list[str], text: str) -> int:
    """A 64-bit hash of ``words``; a document without words is keyed by its case-folded text."""
    joined = " ".join(words) if words else "\x00" + " ".join(text.casefold().split())
    digest = hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


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


def _signatures(
    texts: list[str], shingle_words: int, mults: np.ndarray, adds: np.ndarray, mixed: bool
) -> np.ndarray:
    """MinHash signatures (len(texts), len(mults)) uint16 of texts that are words joined by single spaces."""
    return _kept_bits(_minima(texts, shingle_words, mults, adds), mixed)


def _kept_bits(minima: np.ndarray, mixed: bool) -> np.ndarray:
    """The 16 bits kept of each uint32 minimum: with ``mixed`` (``dedup-v5``), the top bits of its
    scramble, which depend on all 32; else (the older schemes) its low bits, which depend on the low
    bits of the minimizing shingle's hash only (the module's docstring)."""
    if mixed:
        return (_mix(minima.astype(np.uint64)) >> _U64(48)).astype(np.uint16)
    return (minima & np.uint32(0xFFFF)).astype(np.uint16)


def _long_signature(
    words: list[str], shingle_words: int, mults: np.ndarray, adds: np.ndarray, mixed: bool
) -> np.ndarray:
    """:func:`_signatures` of one document of many ``words``, (len(mults),) uint16, hashed in chunks of
    :data:`_CHUNK_WORDS` words that overlap by ``shingle_words - 1``: together their shingles are the
    document's, each once, so the minima over the chunks are the document's minima."""
    step = _CHUNK_WORDS - (shingle_words - 1)
    minima = None
    for start in range(0, max(len(words) - shingle_words + 1, 1), step):  # a chunk starts a shingle
        chunk = " ".join(words[start : start + _CHUNK_WORDS])
        part = _minima([chunk], shingle_words, mults, adds)[0]
        minima = part if minima is None else np.minimum(minima, part)
    assert minima is not None  # words is not empty
    return _kept_bits(minima, mixed)


def _minima(texts: list[str], shingle_words: int, mults: np.ndarray, adds: np.ndarray) -> np.ndarray:
    """The minimum of each permutation over each text's shingles: (len(texts), len(mults)) uint32."""
    words = _word_hashes(" ".join(texts).encode("utf-8", "surrogatepass"))  # (W,)
    counts = np.array([t.count(" ") + 1 for t in texts], dtype=np.int64)  # (D,) words per document
    first_word = np.cumsum(counts) - counts  # (D,)
    per_doc = np.maximum(counts - shingle_words + 1, 1)  # (D,) a document shorter than k words: 1 shingle
    first_shingle = np.cumsum(per_doc) - per_doc  # (D,)
    doc = np.repeat(np.arange(len(texts)), per_doc)  # (S,) document of each shingle
    start = first_word[doc] + np.arange(len(doc)) - first_shingle[doc]  # (S,) its first word
    end = first_word[doc] + counts[doc]  # (S,) one past its document's last word
    shingles = np.zeros(len(doc), dtype=np.uint64)  # (S,) an order-sensitive sum of its words' hashes
    for j in range(shingle_words):
        at = start + j
        inside = at < end
        shingles += np.where(inside, words[np.minimum(at, len(words) - 1)] * _SHINGLE_MULTS[j], _U64(0))
    shingles32 = (_mix(shingles) >> _U64(32)).astype(np.uint32)  # (S,) 32 well-mixed bits each
    values = np.multiply.outer(shingles32, mults)  # (S, P) uint32: one permutation per column
    values += adds
    return np.minimum.reduceat(values, first_shingle, axis=0)  # (D, P)


class SignatureFile:
    """Signatures spilled to a file, row ``i`` for document ``i``: read a band or a few rows at a time."""

    def __init__(self, file: BinaryIO, rows: int, num_perm: int) -> None:
        self._file, self.rows, self.num_perm = file, rows, num_perm
        self._row_bytes = 2 * num_perm

    def band(self, band: int) -> np.ndarray:
        """The key of band ``band`` (values ``2 band`` and ``2 band + 1``) of every row: (rows,) uint32."""
        keys = np.empty(self.rows, dtype=np.uint32)
        self._file.seek(0)
        for low in range(0, self.rows, _BLOCK_ROWS):
            block = np.frombuffer(self._file.read(_BLOCK_ROWS * self._row_bytes), dtype=np.uint16)
            keys[low : low + _BLOCK_ROWS] = block.reshape(-1, self.num_perm).view(np.uint32)[:, band]
        return keys

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The signatures of ``rows`` (sorted, distinct): (len(rows), num_perm) uint16."""
        parts = []
        for row in rows.tolist():
            self._file.seek(row * self._row_bytes)
            parts.append(self._file.read(self._row_bytes))
        return np.frombuffer(b"".join(parts), dtype=np.uint16).reshape(-1, self.num_perm)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SignatureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SignatureBuilder:
    """Collects each document's exact key and MinHash signature, one document at a time (module doc).
    ``marks``: the words of :func:`document_words` take in combining marks (``dedup-v4`` on);
    ``mixed``: the values keep bits of the whole minimum (``dedup-v5`` on). Both default to what a
    new split does; False makes an older scheme's signatures."""

    def __init__(self, settings: DedupSettings, *, marks: bool = True, mixed: bool = True) -> None:
        if settings.value_bits != 16 or settings.band_rows != 2:
            raise ValueError("this nextword computes 16-bit MinHash values in bands of two")
        if settings.shingle_words > len(_SHINGLE_MULTS):
            raise ValueError(f"shingles of at most {len(_SHINGLE_MULTS)} words are supported")
        self.settings, self.marks, self.mixed = settings, marks, mixed
        rng = np.random.default_rng(_PERM_SEED)
        # (a * x + b) mod 2**32 with odd a: one permutation of the 32-bit shingle hashes per value
        self._mults = rng.integers(0, 2**31, size=settings.num_perm, dtype=np.uint32) * np.uint32(2) + 1
        self._adds = rng.integers(0, 2**32, size=settings.num_perm, dtype=np.uint32)
        self._has_words = bytearray()  # 1 byte a document
        # Keys and signatures wait in temporary files, so that nothing grows with the corpus in memory
        # while documents come and go (a growing array among them fragments the heap). The signatures'
        # file is handed over to the SignatureFile by finish(); both are deleted when closed.
        # A full or read-only temporary folder is a CorpusError naming it (see _spill_error).
        try:
            self._key_spill = tempfile.TemporaryFile(prefix="nextword-keys-")  # noqa: SIM115
        except OSError as exc:
            raise _spill_error(exc, self.settings.num_perm) from None
        try:
            self._spill = tempfile.TemporaryFile(prefix="nextword-signatures-")  # noqa: SIM115
        except OSError as exc:
            self._key_spill.close()
            raise _spill_error(exc, self.settings.num_perm) from None
        self._handed_over = False  # finish() gave the signatures' file to a SignatureFile
        self._batch_keys = array("Q")
        self._batch: list[str] = []
        self._batch_rows: list[int] = []  # the row of each batched text among the batch's documents
        self._long: dict[int, np.ndarray] = {}  # row -> signature of a document hashed alone
        self._batch_docs = 0
        self._batch_bytes = 0

    def add(self, text: str) -> None:
        """Hash one document (the next in corpus order)."""
        words = document_words(text, marks=self.marks)
        self._batch_keys.append(exact_key(words, text))
        self._has_words.append(bool(words))
        if len(words) > _CHUNK_WORDS:  # hashed alone, a chunk at a time
            settings = self.settings
            signature = _long_signature(words, settings.shingle_words, self._mults, self._adds, self.mixed)
            self._long[self._batch_docs] = signature
            self._batch_bytes += 2 * settings.num_perm
        elif words:
            joined = " ".join(words)
            self._batch.append(joined)
            self._batch_rows.append(self._batch_docs)
            self._batch_bytes += len(joined)
        else:  # no text to hash, but a row of the batch's signatures: millions of them filled no batch
            self._batch_bytes += 2 * self.settings.num_perm
        self._batch_docs += 1
        if self._batch_bytes >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        num_perm = self.settings.num_perm
        signatures = np.zeros((self._batch_docs, num_perm), dtype=np.uint16)  # no words: never compared
        if self._batch:
            rows = _signatures(self._batch, self.settings.shingle_words, self._mults, self._adds, self.mixed)
            signatures[self._batch_rows] = rows
        for row, signature in self._long.items():
            signatures[row] = signature
        try:
            self._spill.write(signatures.tobytes())
            self._key_spill.write(self._batch_keys.tobytes())
        except OSError as exc:
            raise _spill_error(exc, self.settings.num_perm) from None
        self._batch_keys = array("Q")
        self._batch, self._batch_rows, self._batch_docs, self._batch_bytes = [], [], 0, 0
        self._long = {}

    def finish(self) -> tuple[np.ndarray, np.ndarray, SignatureFile]:
        """``(keys, has_words, signatures)``: (D,) uint64, (D,) bool and the signatures' file."""
        self._flush()
        try:
            self._spill.flush()
            with self._key_spill:
                self._key_spill.flush()
                self._key_spill.seek(0)
                keys = np.fromfile(self._key_spill, dtype=np.uint64)
        except OSError as exc:
            raise _spill_error(exc, self.settings.num_perm) from None
        has_words = np.frombuffer(self._has_words, dtype=bool)
        self._handed_over = True
        return keys, has_words, SignatureFile(self._spill, len(keys), self.settings.num_perm)

    def close(self) -> None:
        """Delete the temporary files (a corpus that failed halfway leaves none open); the signatures'
        file, once :meth:`finish` handed it over, is its :class:`SignatureFile`'s to close."""
        try:
            self._key_spill.close()
        finally:
            if not self._handed_over:
                self._spill.close()

    def __enter__(self) -> SignatureBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spill_error(exc: OSError, num_perm: int) -> CorpusError:
    """A :class:`CorpusError` for a failure to write the deduplication's temporary files: it names the
    folder they go to (``TMPDIR``'s, else the system's) and what to do."""
    folder = tempfile.gettempdir()
    reason = exc.strerror or str(exc)
    return CorpusError(
        f"cannot write the temporary files of deduplication in {folder}: {reason} (they take "
        f"{2 * num_perm + 8} bytes a document); free some space there, or point TMPDIR at a folder with room "
        "(TMPDIR=/path/with/room nextword ...)"
    )
