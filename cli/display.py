"""Text from files, made safe to print on a terminal.

A model file's metadata, a tokenizer's words and the messages that quote them come from whoever made
the file. Printed raw, an escape sequence in them could set the window title, clear the screen or
colour a fake warning, and a bidirectional override could make text read differently from what it
is. :func:`safe` writes every such character as a visible escape (``\\x1b``, ``\\u202e``), and
:func:`json_text` prints ``--json`` output with the same characters as JSON escapes.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

__all__ = ["SafeFormatter", "figure", "json_text", "safe"]

# C0 controls, DEL, C1 controls (ESC and CSI start escape sequences), the Unicode line and paragraph
# separators, and the bidirectional marks, embeddings, overrides and isolates.
_OTHER = "\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHER}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHER}]")  # keeps \t (09) and \n (0a)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object, *, lines: bool = False) -> str:
    """``str(text)`` with every character that can steer a terminal written as a visible escape.

    With ``lines=True`` line breaks and tabs stay (text the user typed, or generated text); otherwise
    they are escaped too, so a file cannot forge extra lines of output.
    """
    text = str(text)
    pattern = _UNSAFE_KEEP_LINES if lines else _UNSAFE
    return pattern.sub(_escape, text) if pattern.search(text) else text


class SafeFormatter(logging.Formatter):
    """A log formatter whose output is :func:`safe` (log messages may quote file contents)."""

    def format(self, record: logging.LogRecord) -> str:
        return safe(super().format(record), lines=True)


# json.dumps escapes C0 controls itself; with ensure_ascii=False it leaves C1 controls, the line
# separators and the bidirectional controls as they are. Written as \uXXXX they stay valid JSON.
_UNSAFE_IN_JSON = re.compile(f"[{_OTHER}]")


def json_text(data: Any) -> str:
    """``data`` as indented JSON (non-ASCII text kept readable), safe to print on a terminal. A number
    that is not finite (the perplexity of a diverged model) is null, as the server writes it: JSON has
    no Infinity or NaN, and parsers refuse them."""
    text = json.dumps(_finite(data), indent=2, ensure_ascii=False, allow_nan=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def figure(value: float, spec: str) -> str:
    """``value`` formatted with ``spec`` (e.g. ``".2f"``), or in three significant digits with an exponent
    where fixed-point would run past a dozen digits (the perplexity of a diverged model: ``1.23e+174``)."""
    if spec.endswith("f") and abs(value) >= 1e9:
        return format(value, ".3g")
    return format(value, spec)
