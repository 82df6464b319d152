"""The decoding rules that are not sampling itself: which tokens a row may not choose next.

Padding is never chosen; unknown only with ``allow_unknown``; end-of-document only once ``min_words``
are out, and never without ``stop_at_end``. ``repetition_penalty`` divides positive (multiplies
negative) logits of tokens already in the prompt or the text; ``no_repeat_ngram_size`` forbids tokens
that would repeat an n-gram of the prompt or the text. The end-of-document id that opens a prompt marks
where the document starts; it is not a word of the text, so neither rule reads it (else
``no_repeat_ngram_size=1`` could never end a document, and a penalty would make every document longer).
Rows keep their own history (:class:`History`), updated once per token, so a rule costs the same at the
thousandth word as at the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

from .generation import GenerationConfig
from .tokenizer import Tokenizer

__all__ = ["History", "Rules", "SequenceHistory", "ngram_bans"]

_Ids = TypeVar("_Ids", np.ndarray, Sequence[int])  # token ids: an int64 array or a list


class History:
    """What the rules remember of one row's text (prompt included): its n-grams and its distinct ids."""

    def __init__(self, prompt_ids: Iterable[int], ngram: int, penalty: bool) -> None:
        self._n = ngram
        self._follow: dict[tuple[int, ...], set[int]] = {}  # (n-1)-gram -> tokens that followed it
        self._tail: tuple[int, ...] = ()  # the last n-1 tokens
        self._seen: set[int] | None = set() if penalty else None  # distinct ids
        self._seen_ids = np.empty(64 if penalty else 0, dtype=np.int64)  # the same, in first-seen order
        for token in prompt_ids:
            self.add(int(token))

    def add(self, token: int) -> None:
        """Record the row's next token."""
        if self._n:
            tail = self._tail
            if len(tail) == self._n - 1:  # a full (n-1)-gram: it was followed by ``token``
                follow = self._follow.get(tail)
                if follow is None:
                    self._follow[tail] = {token}
                else:
                    follow.add(token)
                self._tail = (*tail, token)[1:]  # () for 1-grams
            else:
                self._tail = (*tail, token)
        if self._seen is not None and token not in self._seen:
            count = len(self._seen)
            if count == len(self._seen_ids):  # grow by doubling: amortized O(1) per new id
                self._seen_ids = np.concatenate([self._seen_ids, np.empty_like(self._seen_ids)])
            self._seen_ids[count] = token
            self._seen.add(token)

    def ngram_bans(self) -> set[int] | tuple[()]:
        """Tokens that would complete an n-gram already in the text."""
        if len(self._tail) < self._n - 1:
            return ()
        return self._follow.get(self._tail, ())

    def seen(self) -> np.ndarray:
        """The distinct ids of the text so far (int64; a view, valid until the next :meth:`add`)."""
        return self._seen_ids[: len(self._seen or ())]


class SequenceHistory:
    """:class:`History`'s answers read from a row's whole token ids on demand, for rows that are
    reordered and copied every step (beam search), where keeping a :class:`History` per row would mean
    copying or rebuilding it each time. A few vectorized passes over the ids per call."""

    def __init__(self, ids: np.ndarray, ngram: int, penalty: bool) -> None:
        self._ids, self._n, self._penalty = ids, ngram, penalty

    def ngram_bans(self) -> set[int] | tuple[()]:
        """Tokens that would complete an n-gram already in the text (as :meth:`History.ngram_bans`)."""
        ids, k = self._ids, self._n - 1
        if not self._n or (k and len(ids) <= k):  # no (n-1)-gram followed by a token yet
            return ()
        if k == 0:  # 1-grams: every token seen
            return set(ids.tolist())
        count, tail = len(ids) - k, ids[len(ids) - k :].tolist()  # (n-1)-grams followed by a token
        match = ids[:count] == tail[0]  # where ids[i : i + k] is the tail, ids[i + k] follows it
        for j in range(1, k):
            match &= ids[j : j + count] == tail[j]
        return set(ids[k:][match].tolist())

    def seen(self) -> np.ndarray:
        """The distinct ids of the text so far (int64), with the repetition penalty; else empty."""
        return np.unique(self._ids) if self._penalty else self._ids[:0]


def ngram_bans(ids: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`SequenceHistory.ngram_bans` for every row of ``ids`` (rows, length) at once, rows of the
    same length (the beams of one prompt): the bans as ``(rows, tokens)`` index arrays, a token
    possibly more than once. The same vectorized passes as one row's, over all rows together."""
    rows, length = ids.shape
    k = ngram - 1
    if not ngram or (k and length <= k):  # no (n-1)-gram followed by a token yet
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=ids.dtype)
    if k == 0:  # 1-grams: every token seen
        return np.repeat(np.arange(rows), length), ids.reshape(-1)
    count = length - k  # (n-1)-grams followed by a token, per row
    match = ids[:, :count] == ids[:, count : count + 1]  # where ids[r, i : i + k] is row r's tail...
    for j in range(1, k):
        match &= ids[:, j : j + count] == ids[:, count + j : count + j + 1]
    where, start = match.nonzero()
    return where, ids[where, start + k]  # ...the token after it


class Rules:
    """The rules of one :class:`GenerationConfig`, applied in place to a batch of rows' logits."""

    def __init__(self, config: GenerationConfig, tokenizer: Tokenizer) -> None:
        banned = [tokenizer.pad_id]
        if not config.allow_unknown:
            banned.append(tokenizer.unk_id)
        if not config.stop_at_end:
            banned.append(tokenizer.eod_id)
        self.banned = tuple(banned)
        self.eod = tokenizer.eod_id
        self.min_words = config.min_words
        self.penalty = config.repetition_penalty
        self.ngram = config.no_repeat_ngram_size

    def words(self, prompt_ids: _Ids) -> _Ids:
        """The ids of ``prompt_ids`` that the repetition rules read: all but a leading end-of-document
        id, the document-start marker (an array stays an array)."""
        return prompt_ids[1:] if len(prompt_ids) and prompt_ids[0] == self.eod else prompt_ids

    def history(self, prompt_ids: _Ids) -> History:
        """A fresh history for a row that continues ``prompt_ids`` (a leading end-of-document id
        included where the prompt starts a document)."""
        return History(self.words(prompt_ids), self.ngram, self.penalty != 1)

    def sequence_history(self, ids: np.ndarray) -> SequenceHistory:
        """What the rules need of a row whose text so far (prompt included) is ``ids`` (int64)."""
        return SequenceHistory(ids, self.ngram, self.penalty != 1)

    def apply(
        self,
        logits: np.ndarray,
        histories: Sequence[History | SequenceHistory],
        lengths: Sequence[int] | None = None,
        bans: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Forbid, in place, what row ``j`` of ``logits`` (rows, vocab) may not choose next; the row
        remembers ``histories[j]`` and has generated ``lengths[j]`` tokens so far (needed with
        ``min_words`` only). ``bans``: the n-gram bans as ``(rows, tokens)``, already found (see
        :func:`ngram_bans`); the histories are then read for the repetition penalty alone."""
        if self.min_words and lengths is None:
            raise ValueError("min_words needs the rows' lengths")
        if len(logits) == 1 and len(histories) == 1 and bans is None:  # one row (most calls)
            self.apply_one(logits[0], histories[0], lengths[0] if lengths is not None else 0)
            return
        for token in self.banned:  # two or three ids: plain indexing beats a fancy index here
            logits[:, token] = -np.inf
        if self.min_words and lengths is not None:  # lengths is None only without min_words (above)
            short = [j for j, n in enumerate(lengths) if n < self.min_words]
            logits[short, self.eod] = -np.inf
        if self.penalty != 1:
            for j, history in enumerate(histories):
                seen = history.seen()
                values = logits[j, seen]
                logits[j, seen] = np.where(values > 0, values / self.penalty, values * self.penalty)
        if self.ngram and bans is not None:
            logits[bans] = -np.inf
        elif self.ngram:
            rows: list[int] = []
            tokens: list[int] = []
            for j, history in enumerate(histories):
                found = history.ngram_bans()
                rows.extend([j] * len(found))
                tokens.extend(found)
            if tokens:
                logits[rows, tokens] = -np.inf

    def apply_one(self, row: np.ndarray, history: History | SequenceHistory, length: int) -> None:
        """:meth:`apply` for a single row ``row`` (vocab,) that remembers ``history`` and has generated
        ``length`` tokens: scalar stores into the row, no per-batch bookkeeping."""
        for token in self.banned:  # a scalar store costs a fifth of a fancy index's
            row[token] = -np.inf
        if length < self.min_words:
            row[self.eod] = -np.inf
        if self.penalty != 1:
            seen = history.seen()
            values = row[seen]
            row[seen] = np.where(values > 0, values / self.penalty, values * self.penalty)
        if self.ngram:
            found = history.ngram_bans()
            if found:
                row[list(found)] = -np.inf
