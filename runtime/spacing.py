"""Decoding's spacing and sentence capitals: which tokens are written without a space between them,
and which token begins a sentence (both runtimes follow these rules; web/src/tokenizer.js has them)."""

from __future__ import annotations

import re

from .unicode_marks import ASTRAL_MARKS, BMP_MARKS

__all__ = ["glued", "starts_after"]

# Decoding's spacing. Glued to the token before: closing punctuation (Arabic's comma, semicolon and
# question mark, the Urdu full stop and the Devanagari dandas too), and what continues an emoji or a
# word (skin tones, variation selectors, the zero-width joiner and non-joiner, the keycap mark). Glued
# to the token after: an opening parenthesis, Spanish's opening marks and the joiners.
_NO_SPACE_BEFORE = frozenset(".,;:)?!\u060c\u061b\u061f\u06d4\u0964\u0965\u200c\u200d\u20e3") | frozenset(
    map(chr, [*range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400)])
)
_NO_SPACE_AFTER = frozenset("(\u00bf\u00a1\u200c\u200d")
_REGIONAL_INDICATORS = frozenset(map(chr, range(0x1F1E6, 0x1F200)))  # two make a flag: 🇫 + 🇷 is 🇫🇷
# A token that begins with a combining mark or a tag character continues the character before it: a
# keycap's "️⃣" after "#", the tags of a subdivision flag after 🏴 (tested only past U+02FF: below it
# there are neither).
_CONTINUES = re.compile(f"[{BMP_MARKS}{ASTRAL_MARKS}\U000e0020-\U000e007f]")
_SENTENCE_END = frozenset(".?!")
# Marks that pass a sentence start on to the token after them: opening marks before a sentence's first
# word ("(It works.)", "¿Por qué?") and a parenthesis closed after a sentence end ("(Done.) Then").
_CARRY_START = frozenset("()\u00bf\u00a1")


def glued(token: str, previous: str | None) -> bool:
    """Whether ``token`` is written right after ``previous`` (``None``: the text's start), no space."""
    return (
        previous is None
        or previous in _NO_SPACE_AFTER
        or token in _NO_SPACE_BEFORE
        or (token in _REGIONAL_INDICATORS and previous in _REGIONAL_INDICATORS)
        or (token[:1] > "\u02ff" and _CONTINUES.match(token) is not None)
    )


def starts_after(token: str, starts: bool) -> bool:
    """Whether the token after ``token`` begins a sentence, ``starts`` saying whether ``token`` did:
    after a sentence end, or after a parenthesis, ``¿`` or ``¡`` where a sentence began."""
    return token in _SENTENCE_END or (starts and token in _CARRY_START)
