"""Encoding a split corpus into id streams: the vocabulary pass and the encoding pass of training.

Documents are encoded and joined into one id stream, each preceded by the end-of-document token::

    <eod> w w w ... <eod> w w ... <eod>

:func:`encode_stream` builds it in memory; :func:`encode_corpus` writes it for each side of a split to
an id file (``train.ids``/``val.ids`` of a run folder): raw little-endian int32 (:data:`STREAM_DTYPE`),
no header. Both passes read the corpus files again through :meth:`DocumentSplit.read`, one document at
a time: memory is the vocabulary's ``Counter`` and a buffer of ids, whatever the corpus size. Needs
numpy and the tokenizer only.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nextword.runtime.checks import check_iterable, wrong_type
from nextword.runtime.provenance import DataCounts, SplitRecord
from nextword.runtime.splitting import version_needed
from nextword.runtime.tokenizer import (
    MAX_TOKEN_CHARS,
    SPECIAL_TOKENS,
    TOKENIZER_FORMAT_VERSION,
    Tokenizer,
    TokenizerConfig,
    tokenize,
)

from .errors import os_error
from .files import atomic_path
from .split import DocumentSplit

__all__ = [
    "STREAM_DTYPE",
    "EncodedCorpus",
    "IdStreamWriter",
    "build_vocabulary",
    "encode_corpus",
    "encode_stream",
]

logger = logging.getLogger(__name__)

STREAM_DTYPE = np.dtype("<i4")  # train.ids / val.ids: little-endian int32 ids, no header


def encode_stream(documents: Sequence[str], tokenizer: Tokenizer) -> np.ndarray:
    """Encode ``documents`` into one int32 stream: ``<eod> doc1 <eod> doc2 ... <eod>``."""
    check_iterable(
        "documents", documents, "a list (or any iterable) of strings", "pass [text] to encode one document"
    )
    if not isinstance(tokenizer, Tokenizer):
        raise wrong_type("tokenizer", "a Tokenizer (Tokenizer.build(documents, config) makes one)", tokenizer)
    eod = tokenizer.eod_id
    stream = [eod]
    for document in documents:
        stream.extend(tokenizer.encode(document))
        stream.append(eod)
    return np.asarray(stream, dtype=np.int32)


def build_vocabulary(
    split: DocumentSplit,
    config: TokenizerConfig,
    leave_out: np.ndarray | None = None,
    version: int | None = None,
    *,
    log_coverage: bool = True,
) -> Tokenizer:
    """Pass 2: count the words of the training documents in one pass and keep the most frequent.

    The same vocabulary as ``Tokenizer.build(train_documents, config)``, without the documents in
    memory: only the ``Counter`` of distinct words is held. ``leave_out`` (bool, one per training
    document in corpus order) names training documents whose words are not counted: the development
    part, never trained on, whose own words would otherwise enter the vocabulary untrained.
    ``version``: the tokenizer format whose rules split the words (a run's own, when it is made again);
    None, for a new vocabulary, the oldest that splits every document of the corpus alike
    (:func:`~nextword.runtime.splitting.oldest_version`: 5 where one holds a Han ideograph, the Arabic
    tatweel or a Hebrew gershayim typed as ``"``, 4 where one holds a character that only formats text,
    else 3, which older readers open). ``log_coverage`` false leaves out the line on the share of words
    the vocabulary leaves out, for a caller that uses another vocabulary (its warnings stay).
    """
    if not isinstance(split, DocumentSplit):
        raise wrong_type("split", "a DocumentSplit (split_corpus(config) or rebuild_split(...))", split)
    if not isinstance(config, TokenizerConfig):
        raise wrong_type("config", "a TokenizerConfig (TokenizerConfig(max_vocab=..., ...))", config)
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    splitting = TOKENIZER_FORMAT_VERSION if version is None else version  # the newest: 3 splits alike
    index = 0
    needed = 3  # by any document, validation ones too: they are encoded with this tokenizer
    for is_val, document in split.read():
        if version is None and needed < TOKENIZER_FORMAT_VERSION:
            needed = max(needed, version_needed(document))
        if not is_val:
            if leave_out is None or not leave_out[index]:
                counts.update(tokenize(document, config, splitting))
            index += 1
    words, seconds = sum(counts.values()), time.perf_counter() - started
    logger.info(
        "vocabulary pass: %d training words, %d distinct, in %.1f s (%.0f words/s)",
        words,
        len(counts),
        seconds,
        words / max(seconds, 1e-9),
    )
    tokenizer = Tokenizer.from_counts(counts, config, needed if version is None else version)
    _check_coverage(counts, tokenizer, split.counts.exact_duplicates or 0, log_coverage)
    return tokenizer


UNKNOWN_WARNING = 0.2  # share of the training words outside the vocabulary that earns a warning
# Text in Thai, Lao, Khmer or Myanmar whose words are not separated by spaces: each phrase is one
# "word". Measured share of the training words holding a run of UNSEGMENTED_RUN letters of these
# scripts: 40-100% of unsegmented text (real Thai, Lao, Khmer and Myanmar prose, a generated Thai
# corpus), at most 1.6% of the same text segmented into words, 0% of English, Chinese or Japanese.
UNSEGMENTED_RUN = 12  # characters
UNSEGMENTED_WARNING = 0.1  # share of the training words that earns the warning
_UNSEGMENTED = re.compile(f"[\u0e01-\u0e5b\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f]{{{UNSEGMENTED_RUN},}}")


def _shown(word: str) -> str:
    """``word`` quoted for a message, its first 60 characters at most."""
    return repr(word) if len(word) <= 60 else repr(word[:60]) + "..."


def _unsegmented(counts: Counter[str], words: int) -> str | None:
    """What to say of a corpus whose training words are mostly phrases of a script written without
    spaces that the tokenizer does not split (:data:`UNSEGMENTED_WARNING`), or None."""
    long = Counter({w: n for w, n in counts.items() if not w.isascii() and _UNSEGMENTED.search(w)})
    share = sum(long.values()) / words
    if share < UNSEGMENTED_WARNING:
        return None
    ((example, _),) = long.most_common(1)
    return (
        f"{100 * share:.0f}% of the training words are runs of {UNSEGMENTED_RUN} or more Thai, Lao, Khmer "
        f"or Myanmar letters ({len(long):,} distinct, such as {_shown(example)}): the text has no spaces "
        "between words, so each phrase became one word, which a word-level model cannot learn. Segment "
        "the text into words separated by spaces before training (for Thai, PyThaiNLP's word_tokenize; "
        "for Lao, Khmer and Myanmar, a word segmenter such as ICU's word break iterator)"
    )


def _check_coverage(
    counts: Counter[str], tokenizer: Tokenizer, duplicates: int = 0, log: bool = True
) -> None:
    """Log the share of the training words the vocabulary leaves out (they become ``<unk>``), and warn
    when it reaches :data:`UNKNOWN_WARNING`: a model then learns little but ``<unk>``. Warn, whatever that
    share, when the words are mostly phrases of Thai, Lao, Khmer or Myanmar (:data:`UNSEGMENTED_WARNING`),
    with the fix: segmenting the text, not a lower ``min_count``. A vocabulary with no word at all is a
    ``ValueError``; ``duplicates``: the exact duplicates the split dropped, which its message names (a
    corpus of one word a line loses every repeat)."""
    words = sum(counts.values())
    if not words:  # trained on nothing but document ends, then export's checks failed in numpy
        config = tokenizer.config
        dropped = (
            " (`drop_figure_refs` removes every parenthesized number, such as (12): text made of those "
            "holds none; drop_figure_refs=False keeps them)"
            if config.drop_figure_refs
            else ""
        )
        raise ValueError(
            f"the training documents hold no word once tokenized{dropped}: give a corpus with text in it"
        )
    known = set(tokenizer.tokens) - set(SPECIAL_TOKENS)  # a corpus's own "<unk>" marks are unknown words
    if not known:  # every word would be <unk>: nothing to learn, and nothing export could check
        words_only = Counter({w: n for w, n in counts.items() if len(w) <= MAX_TOKEN_CHARS})
        if not words_only:
            raise ValueError(
                f"every word of the training documents is longer than {MAX_TOKEN_CHARS:,} characters (the "
                f"first: {_shown(next(iter(counts)))}), the most a vocabulary entry may hold: give text "
                "whose words are separated by spaces or punctuation"
            )
        ((word, count),) = words_only.most_common(1)
        unsegmented = _unsegmented(counts, words)
        if unsegmented:
            raise ValueError(
                f"no word of the training documents occurs min_count={tokenizer.config.min_count} times or "
                f"more: {unsegmented}"
            )
        copies = (
            f" (the split dropped {duplicates:,} documents as exact duplicates of others, with their words: "
            "keep_duplicates=True keeps them)"
            if duplicates
            else ""
        )
        raise ValueError(
            f"no word of the training documents occurs min_count={tokenizer.config.min_count} times or "
            f"more (the most frequent, {_shown(word)}, occurs {count} times){copies}: the vocabulary would "
            "hold only the special tokens; lower `min_count`"
        )
    unknown = sum(n for word, n in counts.items() if word not in known)
    share = unknown / words
    if log:
        logger.info("%.1f%% of the training words are outside the vocabulary (<unk>)", 100 * share)
    unsegmented = _unsegmented(counts, words)
    if unsegmented:  # a lower min_count would only keep more phrases
        become = (
            f". {100 * share:.0f}% of the training words become <unk>" if share >= UNKNOWN_WARNING else ""
        )
        logger.warning("%s%s", unsegmented, become)
    elif share >= UNKNOWN_WARNING:
        config = tokenizer.config
        logger.warning(
            "%.0f%% of the training words (%d of %d) fall outside the vocabulary of %d tokens "
            "(min_count=%d, max_vocab=%d) and become <unk>: %s. "
            "Words are runs of letters and digits between spaces and punctuation (each Chinese or Japanese "
            "ideograph a word of its own), so text that does not separate its words with spaces makes each "
            "clause one rare word: a word-level model cannot learn it",
            100 * share,
            unknown,
            words,
            len(tokenizer),
            config.min_count,
            config.max_vocab,
            "lower `min_count` or raise `max_vocab`" if config.min_count > 1 else "raise `max_vocab`",
        )


@dataclass(frozen=True)
class EncodedCorpus:
    """What :func:`encode_corpus` wrote, and the split it followed."""

    record: SplitRecord
    counts: DataCounts  # the split's counts, with the words of each side
    first_val_documents: tuple[str, ...]  # the first few validation documents, in corpus order

    def facts(self) -> dict[str, Any]:
        """The ``data`` facts of a run's ``config.json``: the counts known, and the split record."""
        known = {k: v for k, v in dataclasses.asdict(self.counts).items() if v is not None}
        return {**known, "split": dataclasses.asdict(self.record)}


class IdStreamWriter:
    """Appends documents to an open id stream file as ``<eod> doc <eod> doc ... <eod>``, in chunks."""

    CHUNK = 1 << 20  # ids buffered between writes: 4 MiB

    def __init__(self, f: BinaryIO, eod: int) -> None:
        self._f, self._eod = f, eod
        self._buffer = array("i", [eod])  # 4 bytes an id, not a Python int object each
        self.tokens = 1
        self.documents = 0

    def add(self, ids: list[int]) -> None:
        """Append one document's ids and the ``<eod>`` that closes it."""
        self._buffer.extend(ids)
        self._buffer.append(self._eod)
        self.tokens += len(ids) + 1
        self.documents += 1
        if len(self._buffer) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        """Write the buffered ids."""
        self._f.write(np.frombuffer(self._buffer, dtype=np.intc).astype(STREAM_DTYPE, copy=False).tobytes())
        self._buffer = array("i")


def encode_corpus(
    split: DocumentSplit,
    tokenizer: Tokenizer,
    train_path: str | Path,
    val_path: str | Path,
    keep_val_documents: int = 0,
) -> EncodedCorpus:
    """Pass 3: encode every document kept by ``split`` into ``train_path`` or ``val_path``.

    Both files are written atomically: a crash leaves neither half-written. The first
    ``keep_val_documents`` validation documents are returned as text. Raises :class:`CorpusError` if
    the files changed since the split was made, or naming the id file that cannot be written (a full or
    read-only file system); nothing is written then.
    """
    started = time.perf_counter()
    first_val: list[str] = []
    writing = Path(train_path)
    try:
        with (
            atomic_path(train_path) as train_tmp,
            atomic_path(val_path) as val_tmp,
            train_tmp.open("wb") as train_f,
            val_tmp.open("wb") as val_f,
        ):
            writers = {
                False: IdStreamWriter(train_f, tokenizer.eod_id),
                True: IdStreamWriter(val_f, tokenizer.eod_id),
            }
            for is_val, document in split.read():
                writing = Path(val_path if is_val else train_path)
                writers[is_val].add(tokenizer.encode(document))
                if is_val and len(first_val) < keep_val_documents:
                    first_val.append(document)
            for is_val, writer in writers.items():
                writing = Path(val_path if is_val else train_path)
                writer.flush()
    except OSError as exc:
        raise os_error(exc, "write", writing) from None
    train_words, val_words = writers[False].tokens - 1, writers[True].tokens - 1
    seconds = time.perf_counter() - started
    logger.info(
        "encoding pass: %d training and %d validation words in %.1f s (%.0f words/s)",
        train_words,
        val_words,
        seconds,
        (train_words + val_words) / max(seconds, 1e-9),
    )
    counts = dataclasses.replace(
        split.counts,
        train_documents=writers[False].documents,
        val_documents=writers[True].documents,
        train_words=train_words,
        val_words=val_words,
    )
    return EncodedCorpus(record=split.record, counts=counts, first_val_documents=tuple(first_val))
