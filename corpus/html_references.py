"""HTML character references in corpus text: ``&#8220;``, ``&#x2014;``, ``&amp;``.

Text exported from web pages and from some databases (the PatentsView patent abstracts among them)
carries characters as references. Read as they are written, ``&#8220;`` is four words to a tokenizer
(``&``, ``#``, ``8220``, ``;``) that a model learns and then writes. :func:`decode_references` turns
them into the characters they stand for; ``CorpusConfig(decode_html=True)`` (``--decode-html``) reads a
corpus so.

Only complete references are decoded, those ending in a semicolon: ``AT&T``, ``R&D``, ``&copy 2024``
and a number of more than 8 digits stay as they are. Names are HTML's (``&eacute;``, ``&lE;``) and the
ISO 8879 Greek letters patent offices write (``&agr;`` for α, ``&Sgr;`` for Σ); a name that is neither
stays as written. Numbers follow HTML: one that is no character (``&#0;``, a surrogate, one past
U+10FFFF) is U+FFFD, and 128 to 159 are the Windows-1252 characters (``&#150;`` is an en dash). A
control character or a noncharacter (``&#1;``, ``&#xFFFE;``), which HTML drops, is read as a space, so
that the words on either side stay apart.
"""

from __future__ import annotations

import html
import html.entities
import re
from collections.abc import Iterator

__all__ = ["ReferenceCount", "decode_references", "first_reference"]

# Bounded: a number of thousands of digits is left as written (Python refuses to convert one, and no
# character needs more than 7 decimal or 6 hex digits; 8 allows a leading zero).
_REFERENCE = re.compile(r"&(?:#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|([A-Za-z][A-Za-z0-9]{0,31}));")

# ISO 8879's ISOgrk1 set (the Greek letters as the US patent office's full texts write them): name
# -> letter. Upper-case names spell the capital.
_GREEK_NAMES = (
    "agr bgr ggr dgr egr zgr eegr thgr igr kgr lgr mgr ngr xgr ogr pgr rgr sgr tgr ugr phgr khgr psgr ohgr"
)
_ISO_GREEK = dict(zip(_GREEK_NAMES.split(), "αβγδεζηθικλμνξοπρστυφχψω", strict=True))
_ISO_GREEK |= {name[:-2].upper() + "gr": letter.upper() for name, letter in _ISO_GREEK.items()}
_ISO_GREEK["sfgr"] = "ς"  # final sigma: no capital


def decode_references(text: str) -> str:
    """``text`` with its complete HTML character references replaced by the characters they stand
    for (see the module's docstring for which); everything else unchanged."""
    if "&" not in text:
        return text
    return _REFERENCE.sub(_character, text)


def first_reference(text: str) -> str | None:
    """The first reference in ``text`` that :func:`decode_references` would replace, as written; None
    when there is none."""
    if "&" not in text:
        return None
    for match in _REFERENCE.finditer(text):
        if _character(match) != match.group():
            return match.group()
    return None


def _character(match: re.Match[str]) -> str:
    name = match.group(1)
    if name is None:  # a number; one HTML drops (a control character) keeps words apart
        return html.unescape(match.group()) or " "
    # The whole name, never a prefix: html.unescape reads "&notit;" as "¬it;" (the old "&not")
    return html.entities.html5.get(name + ";") or _ISO_GREEK.get(name) or match.group()


class ReferenceCount:
    """Counts the documents that hold a reference :func:`decode_references` would replace, as they pass
    (:meth:`passing`), and keeps the first such reference as an example."""

    def __init__(self) -> None:
        self.documents = 0
        self.example: str | None = None

    def passing(self, documents: Iterator[str]) -> Iterator[str]:
        """``documents``, unchanged, each counted as it goes by."""
        for document in documents:
            found = first_reference(document)
            if found is not None:
                self.documents += 1
                self.example = self.example or found
            yield document

    def advice(self, total: int, decoded: bool = False) -> str:
        """What a user should know of the references counted among ``total`` documents: read as
        written; or, ``decoded``, left once the documents were decoded (text encoded twice)."""
        example = self.example or "&#8220;"
        pieces = ", ".join(re.findall(r"[A-Za-z0-9]+|[^A-Za-z0-9]", example))
        if decoded:
            return (
                f"{self.documents:,} of the {total:,} documents still hold HTML character references once "
                f"decoded (the first: {example}): text encoded twice (&amp;amp;, read as &amp;), whose "
                f"references are words to the model ({pieces}); decode the text once more before training"
            )
        return (
            f"{self.documents:,} of the {total:,} documents hold HTML character references (the first: "
            f"{example}), read as written: each is several words to the model ({pieces}). If the text "
            "comes from HTML, pass decode_html=True to read them as the characters they stand for"
        )
