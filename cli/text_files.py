"""Text that a command reads from a file or standard input (``--file``): the text to score, a prompt."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from nextword.corpus.sniffing import BINARY, HEAD_BYTES, not_text

__all__ = ["read_prompt_file", "read_text_file"]


def read_text_file(path: str) -> str:
    """A regular file's text, or standard input's for ``-``; a folder, FIFO or device named as a file
    is refused before it is opened (a FIFO would block, /dev/zero would never end). A UTF-8 byte-order
    mark is not text (it would be scored as an unknown word); UTF-16 and compressed files are named."""
    if path == "-":  # asked for by name: read to its end, as cat does
        if sys.stdin is None:  # started with standard input closed
            raise ValueError("standard input is closed; give the text, or --file PATH")
        return _decoded(sys.stdin.buffer.read(), "standard input")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file (a folder, pipe or device); pass a text file")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror}") from None
    return _decoded(data, path)


def _decoded(data: bytes, name: str) -> str:
    """``data`` as text, refused as the corpus readers refuse a file: what it is (compressed, UTF-16,
    binary with zero bytes, another encoding) and how to make UTF-8 text of it."""
    found = not_text(data[:HEAD_BYTES])
    if found is None and b"\x00" in data:  # a model file, an image: its text would be scored as words
        found = BINARY
    if found is not None:
        raise ValueError(f"{name} is {found[0]}, and nextword reads UTF-8 text; {found[1]}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start:,}, line {line}; Latin-1 or "
            "another encoding?): re-save the file as UTF-8"
        ) from None


def read_prompt_file(path: str) -> str:
    """A prompt from a file or standard input (:func:`read_text_file`), less the line break that ends it
    (``echo``'s, an editor's), as a shell's ``$(cat FILE)`` drops it: the text continues its last line.
    Windows line breaks (CRLF) are read as line breaks, as Python's text files read them."""
    text = read_text_file(path).replace("\r\n", "\n")
    return text.removesuffix("\n").removesuffix("\r")
