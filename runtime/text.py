"""Rendering generated tokens as text, with stop strings and streaming that never takes text back."""

from __future__ import annotations

from .tokenizer import Tokenizer

__all__ = ["TextBuilder"]


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
        self._previous, self._starts = token, self._tokenizer.starts_after(token, self._starts)
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
