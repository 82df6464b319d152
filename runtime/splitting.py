"""How text becomes tokens: normalization, then the word patterns of each tokenizer format version.
(:mod:`nextword.runtime.tokenizer` maps the tokens to ids and back.)

Text goes through these steps, in order:

1. Unicode NFKC, control characters and quotation marks removed, curly apostrophes to ``'``,
   whitespace collapsed.
2. Figure references such as ``(1)``, ``(12a)`` or ``(102, 104)`` removed (patent abstracts are full of
   them and they carry no meaning for the next word); optional.
3. Lowercasing; optional, on by default.
4. Splitting into tokens: words (hyphenated words, ``and/or`` and numbers such as ``3.5`` or
   ``1,000`` stay whole), the punctuation marks ``. , ; : ( ) ? !`` each as a token of its own, and
   any other symbol as a one-character token. The literal ``<unk>`` is one token, the unknown word
   (tokenizer format version 2): corpora that mark rare words that way (Penn Treebank, WikiText) keep
   one unknown word per mark, and a text generated with unknown words allowed reads back as it was
   made. Version 1 tokenizers, written before, split it into ``<``, ``unk``, ``>`` as they always did.
   From version 3, combining marks (Unicode categories Mn, Mc, Me) are word characters, so words whose
   vowels are marks stay whole (every Indic script, vowelled Arabic, pointed Hebrew, and Turkish
   ``İ`` lowercased, which is ``i`` and a combining dot), and a word may also continue across a middle
   dot (Catalan ``col·lecció``), the Hebrew maqaf, geresh and gershayim, and the zero-width non-joiner
   and joiner (Persian ``می‌خواهم``), and a number across the Arabic decimal and thousands separators
   (``٣٫٥``). Version 2 tokenizers split all of these.

From version 4, step 1 also drops the characters that only format text and show nothing, which
earlier versions made one-character symbols, invisible words of their own: the soft hyphen
(``infor\u00admation`` is ``information``), the word joiner, a byte-order mark inside a text (files
joined with ``cat``), the bidirectional marks, embeddings, overrides and isolates, the Arabic letter
mark, the Mongolian vowel separator, the invisible mathematical operators and the shorthand and musical
format controls; a zero-width space is a space (a break between words). The zero-width non-joiner and
joiner stay (inside words, as above), and so do variation selectors and tag characters (emoji). A
corpus that holds none of these characters makes the same tokens under versions 3 and 4, so training
records version 3 for it (:func:`oldest_version`), a model file that readers before version 4 open.

Version 5 is for scripts written without spaces between words, and two characters that split words in
right-to-left scripts. In step 1, after NFKC, the Arabic tatweel (U+0640, a stretching glyph: ``كبـــير``
is ``كبير``) is dropped (and the text composed again, so marks around it order as typed without it),
and an ASCII ``"`` between two Hebrew letters (U+05D0-U+05EA) is the gershayim (U+05F4), as Hebrew
keyboards type it: ``צה"ל`` stays one word instead of losing its quote and falling apart. In step 4
every Han ideograph is a token of its own (:data:`HAN`: U+3005-U+3007 ``々 〆 〇``, U+3400-U+4DBF,
U+4E00-U+9FFF, U+F900-U+FAFF, U+20000-U+3FFFF), as Chinese and Japanese separate no words with
spaces: a word-level vocabulary otherwise holds whole clauses. Kana runs stay whole, as BERT's basic
tokenizer keeps them (``食べます`` is ``食``, ``べます``), and the comma, exclamation and question marks,
colon and semicolon that NFKC made ASCII are full-width again right after an ideograph (of the Basic
Multilingual Plane) or kana, as Chinese and Japanese write them (``我想喝茶，你呢？``). Thai, Lao,
Khmer and Myanmar are still split only at spaces and punctuation. A corpus with none of these
(:func:`holds_version_5`) records the version it recorded before, 3 or 4.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import TYPE_CHECKING

from .errors import WrongTypeError
from .unicode_marks import ASTRAL_MARKS, ASTRAL_UNASSIGNED, BMP_MARKS, BMP_UNASSIGNED, UNICODE_VERSION

if TYPE_CHECKING:
    from .tokenizer import TokenizerConfig

__all__ = [
    "FULL_WIDTH",
    "HAN",
    "TOKENIZER_FORMAT_VERSION",
    "holds_invisible",
    "holds_version_5",
    "newer_characters",
    "normalize",
    "oldest_version",
    "tokenize",
    "version_needed",
]

TOKENIZER_FORMAT_VERSION = 5  # the newest: 3 keeps marks in words, 4 drops invisible ones, 5 splits Han

# Version 4: the characters dropped (the default-ignorable format controls but the joiners of words and
# emoji), and the zero-width space, read as a space
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a]"
)
_ZERO_WIDTH_SPACE = "\u200b"

# Version 5: the Han ideographs, each a token of its own (a regex class body; web/src/tokenizer.js has
# the same ranges), the Arabic tatweel, dropped, and an ASCII quote between two Hebrew letters, the
# gershayim
HAN = "\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_HAN = re.compile(f"[{HAN}]")
_TATWEEL = "\u0640"
_GERSHAYIM = re.compile('(?<=[\u05d0-\u05ea])"(?=[\u05d0-\u05ea])')
_VERSION_5 = re.compile(f"[{HAN}{_TATWEEL}]|{_GERSHAYIM.pattern}")
# ... and the marks NFKC makes ASCII (the full-width comma, exclamation and question marks, colon and
# semicolon) written back full-width right after an ideograph or kana: Chinese and Japanese text keeps
# them, and writes no space after them. Ideographs of the Basic Multilingual Plane only: those past it
# that Python's Unicode has and nextword-web's may not (read as stand-ins) must not change a mark.
FULL_WIDTH = str.maketrans(",!?:;", "\uff0c\uff01\uff1f\uff1a\uff1b")  # a str.translate table
_CJK_MARK = re.compile(
    "(?<=[\u3005-\u3007\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])[,!?:;]"
)

_QUOTES = re.compile(r"[\"“”„‟«»`´]")
_APOSTROPHES = re.compile(r"[‘’‛′]")
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# "(1)", "(12a)", "(102, 104)", "(10-12)": reference numerals of drawings.
# Starts only where a run of whitespace starts (or at no whitespace): tried from every space of a run,
# the leading \s* would scan the rest of the run each time, quadratic in its length (a prompt of 100,000
# spaces took 8.5 s). A match inside a run implies one from its start, so the matches are the same.
_FIGURE_REF = re.compile(r"(?<!\s)\s*\(\s*\d+[a-z]?'*(?:\s*[,-]\s*\d+[a-z]?'*)*\s*\)", re.IGNORECASE)
# A word is a run of letters/digits that may continue across "-", "/", "'" or "." (e.g. "feed-forward",
# "and/or", "e.g", "3.5") or across "," between digits ("1,000"). Anything else that is not
# whitespace is a token of its own.
_WORD_OR_SYMBOL = r"\w+(?:(?:[-/'.]|(?<=\d),(?=\d))\w+)*|[^\w\s]"
_TOKEN = re.compile(_WORD_OR_SYMBOL)  # version 1
_TOKEN_V2 = re.compile(r"<unk>|" + _WORD_OR_SYMBOL)  # version 2: "<unk>" is one token
# Version 3: a word character is also a combining mark; a word also continues across a middle dot,
# the Hebrew maqaf, geresh and gershayim, and the zero-width non-joiner and joiner, and a number across
# the Arabic decimal and thousands separators. re tests a class's ranges
# past the Basic Multilingual Plane one by one, so the marks there (a third of the ranges, for scripts
# such as Brahmi or Chakma) are in the pattern only for text that holds such a character.
_JOINED_V3 = r"(?:[-/'.\u00b7\u05be\u05f3\u05f4\u200c\u200d]|(?<=\d)[,\u066b\u066c](?=\d))"


def _pattern_v3(marks: str) -> re.Pattern[str]:
    return re.compile(rf"<unk>|[\w{marks}]+(?:{_JOINED_V3}[\w{marks}]+)*|[^\w{marks}\s]")


_TOKEN_V3 = _pattern_v3(BMP_MARKS)
_TOKEN_V3_ASTRAL = _pattern_v3(BMP_MARKS + ASTRAL_MARKS)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

# A Python newer than the tables' Unicode (3.12: 15.0) reads the characters assigned since by its own data
# (NFKC, letters, digits, case), where Python 3.11 and nextword-web see unassigned code points: symbols of
# one character that nothing changes. Such characters stand in for themselves as code points that every
# version treats so (private use, or unassigned in both) until the tokens are made: one model file splits
# a text alike on any of them. (Python 3.10's Unicode is older, 13.0: it cannot read 14.0's additions.)
_NEWER_UNICODE = tuple(map(int, unicodedata.unidata_version.split("."))) > tuple(
    map(int, UNICODE_VERSION.split("."))
)
# the Supplementary Private Use Areas, then planes 4 to 13, unassigned in every Unicode so far
_STAND_INS = (range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE), range(0x40000, 0xE0000))
_PRIVATE_USE = re.compile("[\U000f0000-\U0010ffff\U00040000-\U000dffff]")


@functools.cache
def _unassigned() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Patterns of the code points the tables' Unicode leaves unassigned, in and past the BMP (compiled
    on a newer Python only)."""
    return re.compile(f"[{BMP_UNASSIGNED}]"), re.compile(f"[{ASTRAL_UNASSIGNED}]")


def newer_characters(text: str) -> set[str]:
    """The characters of ``text`` that the tables' Unicode (:data:`UNICODE_VERSION`) leaves unassigned,
    on a Python whose Unicode is newer (none on one of that Unicode or older): what must be read as
    that version reads them, one-character symbols, for the same result on every Python."""
    if not _NEWER_UNICODE or text.isascii():
        return set()
    bmp, astral = _unassigned()
    found = set(bmp.findall(text))
    # the past-the-BMP class is long (re tries its ranges one by one): asked of each such character once
    found.update(c for c in set(_ASTRAL.findall(text)) if astral.match(c))
    return found


def _stand_ins(text: str) -> tuple[str, dict[str, str] | None]:
    """``text`` with each of its :func:`newer_characters` replaced by a code point it does not hold that
    every Unicode leaves alone, and the map back (None where there is nothing to replace). A stand-in is
    a token of its own (no word takes it in), so the map is from token to token."""
    found = newer_characters(text)
    if not found:
        return text, None
    held = set(_PRIVATE_USE.findall(text))
    free = (chr(c) for area in _STAND_INS for c in area if chr(c) not in held)
    back = {}
    for ch in sorted(found):
        stand_in = next(free, None)
        if stand_in is None:  # a text of nearly 800,000 distinct such code points: read by this Python
            return text, None
        back[stand_in] = ch
    if len(back) > 16:  # a text in a script added since (thousands of CJK characters): one pass
        return text.translate({ord(ch): stand_in for stand_in, ch in back.items()}), back
    for stand_in, ch in back.items():  # a few distinct characters: str.replace beats a translate table
        text = text.replace(ch, stand_in)
    return text, back


def holds_invisible(text: str) -> bool:
    """Whether ``text`` holds a character that tokenizer format 4 drops (or, a zero-width space, reads
    as a space): where versions 3 and 4 split it differently."""
    return not text.isascii() and _INVISIBLE.search(text) is not None


def holds_version_5(text: str) -> bool:
    """Whether ``text`` holds what tokenizer format 5 splits differently from 4 (where 4 would split it
    alike, looked for after what version 4 drops and NFKC, which make some of them): a Han ideograph,
    the Arabic tatweel, or an ASCII ``"`` between two Hebrew letters."""
    if text.isascii():
        return False
    return _VERSION_5.search(unicodedata.normalize("NFKC", _drop_invisible(text))) is not None


def oldest_version(invisible: bool, version_5: bool = False) -> int:
    """The tokenizer format a new vocabulary records: 5 where its corpus held what only version 5 splits
    apart or joins (:func:`holds_version_5`: Han, the tatweel, a Hebrew gershayim typed as ``"``), 4
    where it held a character that only formats text (:func:`holds_invisible`), else 3. Each splits
    that corpus as the newest does, and readers from before it open it (nextword 0.2.0 reads 3)."""
    return 5 if version_5 else 4 if invisible else 3


def version_needed(text: str) -> int:
    """:func:`oldest_version` for one text: the oldest format that splits ``text`` as the newest does."""
    if text.isascii():
        return 3
    return oldest_version(holds_invisible(text), holds_version_5(text))


def _drop_invisible(text: str) -> str:
    if not holds_invisible(text):
        return text
    return _INVISIBLE.sub(lambda found: " " if found.group() == _ZERO_WIDTH_SPACE else "", text)


def normalize(text: str, config: TokenizerConfig, version: int = TOKENIZER_FORMAT_VERSION) -> str:
    """Apply steps 1-3 of the module docstring: Unicode, quotes, figure references, case, whitespace
    (from ``version`` 4, characters that only format text dropped first; from 5, the tatweel dropped
    and a ``"`` between Hebrew letters read as the gershayim)."""
    if version >= 4:
        text = _drop_invisible(text)
    text = unicodedata.normalize("NFKC", text)
    if version >= 5 and not text.isascii():
        if _TATWEEL in text:  # composed again: marks on either side of it take their canonical order
            text = unicodedata.normalize("NFKC", text.replace(_TATWEEL, ""))
        if '"' in text:
            text = _GERSHAYIM.sub("\u05f4", text)
        text = _CJK_MARK.sub(lambda mark: mark.group().translate(FULL_WIDTH), text)
    text = _APOSTROPHES.sub("'", _QUOTES.sub(" ", _CONTROL.sub(" ", text)))
    if config.drop_figure_refs:
        text = _FIGURE_REF.sub("", text)
    if config.lowercase:
        text = text.lower()
    return _WHITESPACE.sub(" ", text).strip()


def tokenize(text: str, config: TokenizerConfig, version: int = TOKENIZER_FORMAT_VERSION) -> list[str]:
    """Split ``text`` into tokens according to ``config`` and the rules of tokenizer format ``version``
    (see the module docstring)."""
    if not isinstance(text, str):
        raise WrongTypeError(f"text must be a str, got {type(text).__name__}")
    text, back = _stand_ins(text)
    text = normalize(text, config, version)
    if version >= 5 and not text.isascii():
        text = _HAN.sub(r" \g<0> ", text)  # each ideograph a word of its own
    if version == 1:
        tokens = _TOKEN.findall(text)
    elif version == 2:
        tokens = _TOKEN_V2.findall(text)
    else:
        tokens = (_TOKEN_V3 if text.isascii() or not _ASTRAL.search(text) else _TOKEN_V3_ASTRAL).findall(text)
    return tokens if back is None else [back.get(token, token) for token in tokens]
