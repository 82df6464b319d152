"""Decoding's spacing and sentence capitals: which tokens are written without a space between them,
and which token begins a sentence (both runtimes follow these rules; web/src/spacing.js has them)."""

from __future__ import annotations

import re

from .unicode_marks import ASTRAL_MARKS, BMP_MARKS

__all__ = ["ends_sentence", "glued", "starts_after"]

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
_PERCENT = "%"  # glued to a number before it: "90%"
# Initials: single letters (word characters but digits and "_") joined by dots, "e.g", "u.s.a"
_INITIALS = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")
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
        or (token == _PERCENT and previous[-1:].isdecimal())
        or (token[:1] > "\u02ff" and _CONTINUES.match(token) is not None)
    )


def ends_sentence(token: str, previous: str | None = None) -> bool:
    """Whether ``token`` ends a sentence: ``.``, ``?`` or ``!``, but not the dot that closes initials,
    ``previous`` being single letters joined by dots (``e.g.``, ``i.e.``, ``U.S.``: the tokenizer keeps
    their last dot apart)."""
    return token in _SENTENCE_END and not (
        token == "." and previous is not None and _INITIALS.fullmatch(previous) is not None
    )


def starts_after(token: str, starts: bool, previous: str | None = None) -> bool:
    """Whether the token after ``token`` begins a sentence, ``starts`` saying whether ``token`` did and
    ``previous`` being the token before it: after a sentence end (:func:`ends_sentence`), or after a
    parenthesis, ``¿`` or ``¡`` where a sentence began."""
    return ends_sentence(token, previous) or (starts and token in _CARRY_START)
