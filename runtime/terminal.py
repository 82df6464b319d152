"""Text from files, made safe to print on a terminal or to write in a log.

A model file's metadata, a tokenizer's words and the messages that quote them come from whoever made
the file. Printed raw, an escape sequence in them could set the window title, clear the screen or
colour a fake warning, and a bidirectional override could make text read differently from what it
is. :func:`safe` writes every such character as a visible escape (``\\x1b``, ``\\u202e``);
:class:`SafeFormatter` does the same to log lines. The command line and the server both use them.
"""

from __future__ import annotations

import logging
import re

__all__ = ["OTHER_UNSAFE", "SafeFormatter", "escape_surrogates", "safe", "safe_json", "utf8_text"]

# C0 controls, DEL, C1 controls (ESC and CSI start escape sequences), the Unicode line and paragraph
# separators, and the bidirectional marks, embeddings, overrides and isolates.
OTHER_UNSAFE = "\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{OTHER_UNSAFE}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{OTHER_UNSAFE}]")  # keeps \t (09) and \n (0a)
# json.dumps escapes C0 controls itself; with ensure_ascii=False it leaves C1 controls, the line
# separators and the bidirectional controls as they are. Written as \uXXXX they stay valid JSON. So
# does a lone surrogate (an argument's byte that is not UTF-8), which no encoder could write.
_UNSAFE_IN_JSON = re.compile(f"[{OTHER_UNSAFE}\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_text(text: str) -> str:
    """``text`` (an argument, a file's name) as the UTF-8 it holds where Python read it in an encoding
    that is not UTF-8: ``PYTHONUTF8=0`` in the C locale reads the argument ``café`` as ``caf\\udcc3\\udca9``,
    each byte it cannot decode a lone surrogate (PEP 383). Such bytes that make UTF-8 are decoded; other
    text is returned as it is (a name whose bytes are Latin-1 keeps its surrogates)."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return text


def escape_surrogates(text: str) -> str:
    """``text`` as :func:`utf8_text` reads it, with each lone surrogate left written as a backslash
    escape (``\\xff`` for a byte that is not UTF-8, as Python's ``backslashreplace`` shows it, else
    ``\\udXXX``): text that encodes as UTF-8, for a model file's metadata or a JSON answer."""
    text = utf8_text(text)
    return _SURROGATE.sub(_escape_surrogate, text) if not text.isascii() else text


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    # 0xDC80..0xDCFF stand for the bytes 0x80..0xFF (PEP 383)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def safe(text: object, *, lines: bool = False) -> str:
    """``str(text)`` with every character that can steer a terminal written as a visible escape.

    With ``lines=True`` line breaks and tabs stay (text the user typed, or generated text); otherwise
    they are escaped too, so a file cannot forge extra lines of output.
    """
    text = str(text)
    pattern = _UNSAFE_KEEP_LINES if lines else _UNSAFE
    return pattern.sub(_escape, text) if pattern.search(text) else text


def safe_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``'s) with the characters that could steer a
    terminal, and lone surrogates, written as ``\\uXXXX`` escapes: the same JSON, safe to print or log."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class SafeFormatter(logging.Formatter):
    """A log formatter whose output is :func:`safe` (log messages may quote file contents)."""

    def format(self, record: logging.LogRecord) -> str:
        return safe(super().format(record), lines=True)
