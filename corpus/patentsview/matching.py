"""Does a text contain one of the query phrases? :class:`PhraseMatcher`, on text and on raw bytes."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .scratch import Scratch

__all__ = ["PhraseMatcher", "is_word"]


class PhraseMatcher:
    """Does a text contain one of the query phrases?

    Matching ignores case (both sides are lowercased), needs word boundaries on both sides (``"neural
    network"`` matches neither "neural networks" nor "artificialneural network") and takes any run of
    whitespace, line breaks included, between the words of a phrase.
    """

    def __init__(self, phrases: Sequence[str]) -> None:
        words = [tuple(phrase.lower().split()) for phrase in phrases]
        if not words or not all(words):
            raise ValueError(f"each query phrase needs at least one word, got {list(phrases)!r}")
        # Per phrase: its longest word (a cheap necessary condition) and a regex that starts with a literal,
        # so that re skips ahead fast; the word boundary in front is checked by hand, since a lookbehind at
        # the start of a pattern makes re try every position of the text.
        self._checks = [
            (max(w, key=len), re.compile(r"\s+".join(map(re.escape, w)) + r"(?!\w)"))
            for w in dict.fromkeys(words)
        ]
        # For scanning raw bytes: each phrase written in ASCII, its words one space apart, with every byte
        # folded as `byte | 0x20` folds the text (see byte_offsets). Other phrases can only match on lines
        # with non-ASCII bytes, which are looked at anyway.
        self._needles = [
            bytes(c | 0x20 for c in " ".join(w).encode("ascii"))
            for w in dict.fromkeys(words)
            if all(x.isascii() for x in w)
        ]
        self._scratch = Scratch()

    def __call__(self, text: str) -> bool:
        lowered = text.lower()
        for key, regex in self._checks:
            if key in lowered:
                found = regex.search(lowered)
                while found is not None:
                    start = found.start()
                    if start == 0 or not is_word(lowered[start - 1]):
                        return True
                    found = regex.search(lowered, start + 1)
        return False

    def byte_offsets(self, data: bytes) -> list[int]:
        """Offsets in ``data`` (UTF-8) that flag the lines where a match may be: every match on a line of
        ASCII text whose words are apart by anything but a tab or a line break starts at or holds one.

        Such a match has its words one space apart, or other whitespace between them: two or more spaces
        in a row, or a control byte that ``\\s`` matches (``\\r``, except one that ends a line,
        ``\\v \\f \\x1c-\\x1f``). The offsets are those of each phrase written with single spaces in the
        text folded to lower case (each byte OR 0x20: that lowercases ASCII letters and can only add false
        alarms), and those of the other whitespace, all found with numpy.
        Word boundaries are not checked. Lines with non-ASCII bytes are not covered, nor words apart by
        a tab or a line break: the reader looks at those lines anyway.
        """
        if not self._needles or not data:
            return []
        n = len(data)
        folded, fold, hits, mask, pair = self._scratch.take(n)
        raw = np.frombuffer(data, dtype=np.uint8)
        np.bitwise_or(raw, 0x20, out=fold)
        # Where some needle has its first, middle and last bytes in place (numpy, which lets go of the GIL,
        # so the thread that decompresses gets it back sooner than during a bytes.find); then check those.
        hits[:] = False
        for needle in self._needles:
            size = len(needle)
            k = n - size + 1
            if k > 0:
                middle = size // 2
                found = np.equal(fold[:k], needle[0], out=mask[:k])
                np.logical_and(found, np.equal(fold[size - 1 :], needle[-1], out=pair[:k]), out=found)
                np.logical_and(
                    found, np.equal(fold[middle : middle + k], needle[middle], out=pair[:k]), out=found
                )
                np.logical_or(hits[:k], found, out=hits[:k])
        offsets = [
            at
            for at in np.flatnonzero(hits).tolist()
            if any(folded.startswith(needle, at) for needle in self._needles)
        ]
        # Two spaces in a row (the fold makes a NUL a space too: a false alarm at worst).
        space = np.equal(fold, 0x20, out=mask)
        if n > 1 and np.logical_and(space[1:], space[:-1], out=pair[1:]).any():
            offsets += np.flatnonzero(pair[1:]).tolist()
        # Control bytes other than tabs, line breaks and a \r that ends a line; counted first, since most
        # regions have none but tabs and line breaks.
        tabs_and_breaks = sum(np.count_nonzero(np.equal(raw, byte, out=mask)) for byte in (9, 10))
        if np.count_nonzero(np.less(raw, 0x20, out=mask)) > tabs_and_breaks:
            control = np.flatnonzero(np.less(raw, 0x20, out=mask))
            kind = raw[control]
            line_end = (control + 1 == n) | (raw[np.minimum(control + 1, n - 1)] == 10)
            other = (kind != 9) & (kind != 10) & ((kind != 13) | ~line_end)
            offsets += control[other].tolist()
        return offsets


def is_word(char: str) -> bool:
    """What ``\\w`` matches in a str pattern: letters and digits (``str.isalnum``) and the underscore."""
    return char.isalnum() or char == "_"
