"""Rendering generated tokens as text, with stop strings and streaming that never takes text back."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .splitting import FULL_WIDTH
from .tokenizer import EOD, Tokenizer

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PromptEnd", "TextBuilder", "as_in_text", "stop_forms"]

_APOSTROPHES = str.maketrans(dict.fromkeys(map(ord, "\u2018\u2019\u201b\u2032"), "'"))


def as_in_text(stop: str) -> str:
    """``stop`` as generated text would hold it: in Unicode NFKC, curly apostrophes as ``'``, as every
    tokenizer normalizes text (a full-width ``！`` typed as a stop string is the ``!`` the text holds).
    Quotation marks, which tokenizers remove, stay: a stop string holding one never matches."""
    return stop if stop.isascii() else unicodedata.normalize("NFKC", stop).translate(_APOSTROPHES)


def stop_forms(stops: Iterable[str]) -> tuple[str, ...]:
    """The strings a text is cut at for ``stops``: each as the text would hold it (:func:`as_in_text`),
    and, where it holds ``, ! ? : ;``, also with them full-width, as tokenizer format 5 writes them after
    Chinese and Japanese words (``！`` or ``!`` typed: either form in the text)."""
    forms = (form for stop in stops for form in (as_in_text(stop), as_in_text(stop).translate(FULL_WIDTH)))
    return tuple(dict.fromkeys(forms))


@dataclass(frozen=True)
class PromptEnd:
    """How a prompt's text ends, which is all the first new word's spacing and capital depend on.

    ``previous``: the prompt's last token (``None``: a document start); ``starts``: whether the first
    new token begins a sentence; ``lstrip``: the prompt ends in whitespace, so the new text starts
    without a space. A prompt given as text is read from its tokens as written (:meth:`of_text`), so a
    mark the vocabulary lacks (``¿`` in an English model) still glues the word after it and carries a
    sentence start; a prompt given as ids is read from its ids' tokens (:meth:`of_ids`).
    """

    previous: str | None = None
    starts: bool = True
    lstrip: bool = False

    @classmethod
    def of_text(cls, tokenizer: Tokenizer, prompt: str) -> PromptEnd:
        """The end of ``prompt``, read from its tokens before the vocabulary maps any to ``<unk>``."""
        return cls.of_tokens(tokenizer, tokenizer.tokenize(prompt), prompt[-1:].isspace())

    @classmethod
    def of_tokens(cls, tokenizer: Tokenizer, tokens: Sequence[str], lstrip: bool = False) -> PromptEnd:
        """:meth:`of_text` for a prompt already split into ``tokens`` (``Tokenizer.tokenize``)."""
        return cls(tokens[-1] if tokens else None, tokenizer.begins_sentence(reversed(tokens)), lstrip)

    @classmethod
    def of_ids(cls, tokenizer: Tokenizer, ids: Sequence[int] | np.ndarray, lstrip: bool = False) -> PromptEnd:
        """The end of a prompt given as token ids (``ids`` not empty; a leading end-of-document id marks
        a document start)."""
        table = tokenizer.table
        last = table[int(ids[-1])]
        starts = tokenizer.begins_sentence(table[int(i)] for i in reversed(ids))
        return cls(None if last == EOD else last, starts, lstrip)

    def builder(self, tokenizer: Tokenizer, stops: tuple[str, ...]) -> TextBuilder:
        """An empty :class:`TextBuilder` for a continuation of this prompt, cut at ``stops``."""
        return TextBuilder(tokenizer, self.previous, stops, self.lstrip, self.starts)


class TextBuilder:
    """Renders one row's new tokens as text, cuts it at the first stop string, and tells how much of it
    can be streamed without ever taking a character back.

    ``previous`` is the token before the first new one (``None`` at a document start); with ``lstrip``
    the text starts without a space (the prompt already ends in one). ``starts``: whether the first new
    token begins a sentence (:meth:`Tokenizer.begins_sentence` of the prompt; ``None``: from
    ``previous`` alone).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        previous: str | None,
        stops: tuple[str, ...],
        lstrip: bool,
        starts: bool | None = None,
    ):
        stops = stop_forms(stops)
        self._tokenizer, self._previous, self._stops, self._lstrip = tokenizer, previous, stops, lstrip
        if starts is None:  # from previous alone: a text start or a sentence end
            starts = previous is None or tokenizer.starts_after(previous, False)
        self._starts = starts
        self._longest = max((len(s) for s in stops), default=0)
        self.text = ""
        self.stopped = False
        self.emitted = 0  # characters of ``text`` handed out by :meth:`take`
        self.start = 0  # where the last added token's piece starts in ``text`` (at most its length)

    def add(self, token: str) -> None:
        """Append one token's piece; sets :attr:`stopped` and cuts the text when a stop string appears."""
        piece = self._tokenizer.piece(token, self._previous, self._starts)
        self._previous, self._starts = (
            token,
            self._tokenizer.starts_after(token, self._starts, self._previous),
        )
        if self._lstrip and not self.text:
            piece = piece.lstrip(" ")
        self.start = len(self.text)
        if not self._stops:
            self.text += piece
            return
        start = max(0, len(self.text) - self._longest + 1)  # a new match must end in the new piece
        self.text += piece
        hits = [i for i in (self.text.find(s, start) for s in self._stops) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.start = min(self.start, len(self.text))  # a stop string may begin before the piece
            self.stopped = True

    def safe_length(self) -> int:
        """Length of the prefix of :attr:`text` that no later stop string can cut."""
        if self.stopped or not self._stops:
            return len(self.text)
        hold = 0
        for stop in self._stops:  # the longest text suffix that is a proper prefix of a stop string
            for k in range(min(len(stop) - 1, len(self.text)), hold, -1):
                if self.text.endswith(stop[:k]):
                    hold = k
                    break
        return len(self.text) - hold

    def take(self, final: bool = False) -> str:
        """The text not handed out yet that is safe to hand out now (all of it when ``final``)."""
        end = len(self.text) if final else self.safe_length()
        if end <= self.emitted:
            return ""
        piece, self.emitted = self.text[self.emitted : end], end
        return piece
