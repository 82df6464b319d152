"""Decoding's spacing and sentence capitals: which tokens are written without a space between them,
and which token begins a sentence (both runtimes follow these rules; web/src/spacing.js has them)."""

from __future__ import annotations

import re
import unicodedata

from .splitting import HAN
from .unicode_marks import ASTRAL_MARKS, BMP_MARKS

__all__ = ["capitalized", "ends_sentence", "glued", "may_end_sentence", "starts_after"]

# Decoding's spacing. Glued to the token before: closing punctuation (Arabic's comma, semicolon and
# question mark, the Urdu full stop, the Devanagari dandas, Armenian's full stop, comma, exclamation
# and question marks, Ethiopic punctuation U+1361-U+1368, and the CJK comma, full stop and closing
# brackets and quotes), and what continues an emoji or a word (skin tones, variation selectors, the
# zero-width joiner and non-joiner, the keycap mark). Glued to the token after: an opening
# parenthesis, Spanish's opening marks, the CJK opening brackets and quotes, and the joiners.
_NO_SPACE_BEFORE = frozenset(
    ".,;:)?!\u060c\u061b\u061f\u06d4\u0964\u0965\u0589\u055c\u055d\u055e\u200c\u200d\u20e3"
    "\u3001\u3002\u3009\u300b\u300d\u300f\u3011\u3015\u3017\u3019\u301b\u301e\u301f"
    "\uff01\uff0c\uff1a\uff1b\uff1f"
) | frozenset(map(chr, [*range(0x1361, 0x1369), *range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400)]))
_NO_SPACE_AFTER = frozenset(
    "(\u00bf\u00a1\u200c\u200d\u3008\u300a\u300c\u300e\u3010\u3014\u3016\u3018\u301a\u301d"
)
_REGIONAL_INDICATORS = frozenset(map(chr, range(0x1F1E6, 0x1F200)))  # two make a flag: 🇫 + 🇷 is 🇫🇷
# A token that begins with a combining mark or a tag character continues the character before it: a
# keycap's "️⃣" after "#", the tags of a subdivision flag after 🏴 (tested only past U+02FF: below it
# there are neither).
_CONTINUES = re.compile(f"[{BMP_MARKS}{ASTRAL_MARKS}\U000e0020-\U000e007f]")
# Scripts written without spaces between words: Han (splitting.HAN), Hiragana, Katakana and its phonetic
# extensions, CJK symbols and punctuation, Thai, Lao, Khmer and Myanmar, and the full-width marks that
# tokenizer format 5 keeps after ideographs (，！？：；). Two tokens meeting on
# characters of these, the last of the one before and the first of the next, are written together.
_UNSPACED = re.compile(
    f"[{HAN}\u3001-\u303f\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff"
    "\u0e01-\u0e5b\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f\uff01\uff0c\uff1a\uff1b\uff1f]"
)
_SENTENCE_END = frozenset(".?!\u3002\u0589\uff01\uff1f")  # the ideographic and Armenian full stops too
_PERCENT = frozenset("%\u066a")  # glued to a number before it: "90%", "٩٠٪"
# Initials: single letters (word characters but digits and "_") joined by dots, "e.g", "u.s.a"
_INITIALS = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")
# A token whose last character is a Greek letter: a ";" after it is the Greek question mark (U+037E,
# which NFKC makes ";")
_GREEK_LAST = re.compile(r"(?=[\u0370-\u03ff\u1f00-\u1fff])[^\W\d_]\Z")
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
        or (token in _PERCENT and previous[-1:].isdecimal())
        or (token[:1] > "\u02ff" and _CONTINUES.match(token) is not None)
        # (every such script lies past U+0E00: a string comparison spares most words the patterns)
        or (
            token[:1] > "\u0e00"
            and previous[-1:] > "\u0e00"
            and _UNSPACED.match(token) is not None
            and _UNSPACED.match(previous[-1:]) is not None
        )
    )


def may_end_sentence(token: str) -> bool:
    """Whether ``token`` ends a sentence after some token (:func:`ends_sentence` says after which)."""
    return token in _SENTENCE_END or token == ";"


def ends_sentence(token: str, previous: str | None = None) -> bool:
    """Whether ``token`` ends a sentence: ``.``, ``?``, ``!``, the ideographic full stop ``。`` or the
    Armenian ``։``, but not the dot that closes initials, ``previous`` being single letters joined by
    dots (``e.g.``, ``i.e.``, ``U.S.``: the tokenizer keeps their last dot apart); and ``;`` after a
    token ending in a Greek letter, the Greek question mark."""
    if token == ";":
        return previous is not None and _GREEK_LAST.search(previous) is not None
    return token in _SENTENCE_END and not (
        token == "." and previous is not None and _INITIALS.fullmatch(previous) is not None
    )


def starts_after(token: str, starts: bool, previous: str | None = None) -> bool:
    """Whether the token after ``token`` begins a sentence, ``starts`` saying whether ``token`` did and
    ``previous`` being the token before it: after a sentence end (:func:`ends_sentence`), or after a
    parenthesis, ``¿`` or ``¡`` where a sentence began."""
    return ends_sentence(token, previous) or (starts and token in _CARRY_START)


def capitalized(token: str) -> str:
    """``token`` with a capital: its first character uppercased (``str.upper``: ``ß`` is ``SS``), then
    composed (NFC): Turkish ``i̇`` (``i`` and a combining dot, ``İ`` lowercased) is ``İ`` again, not
    ``I`` and a dot."""
    capital = token[:1].upper() + token[1:]
    return capital if capital.isascii() else unicodedata.normalize("NFC", capital)
