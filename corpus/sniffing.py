"""What a file's first bytes say it is: compressed, an archive, a workbook, UTF-16/32 text or binary
data, rather than the UTF-8 text that corpora, word-vector files and texts to score must be."""

from __future__ import annotations

from pathlib import Path

from .errors import CorpusError

__all__ = ["BINARY", "HEAD_BYTES", "check_is_utf8_text", "not_text"]

# The first bytes of files that are not UTF-8 text, what they are, and how to make text of them. None of
# them starts a UTF-8 text file (the UTF-32 BE mark and "PK\x03\x04" only in theory); a UTF-8
# byte-order mark (EF BB BF) is skipped by the readers.
_NOT_UTF8 = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip) and pass the decompressed file"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz) and pass the decompressed file"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd) and pass the decompressed file"),
    (
        b"PK\x03\x04",
        "a ZIP archive (as .xlsx workbooks are)",
        "extract the text file from it (unzip), or save a spreadsheet as CSV UTF-8",
    ),
    (
        b"\xff\xfe\x00\x00",
        "UTF-32 text (it starts with a UTF-32 byte-order mark)",
        "re-save the file as UTF-8",
    ),
    (
        b"\x00\x00\xfe\xff",
        "UTF-32 text (it starts with a UTF-32 byte-order mark)",
        "re-save the file as UTF-8",
    ),
    (b"\xff\xfe", "UTF-16 text (it starts with a UTF-16 byte-order mark)", "re-save the file as UTF-8"),
    (b"\xfe\xff", "UTF-16 text (it starts with a UTF-16 byte-order mark)", "re-save the file as UTF-8"),
    *(
        (
            b"BZh%d1AY&SY" % level,
            "bzip2-compressed",
            "decompress it first (bunzip2) and pass the decompressed file",
        )
        for level in range(1, 10)
    ),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an Excel 97-2003 workbook or another OLE2 document (.xls, .doc)",
        "open it and save it as CSV UTF-8 (or as plain text)",
    ),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "extract the text file from it (7z x) and pass that"),
)
HEAD_BYTES = 4096  # read to recognise a file that is not UTF-8 text (magic numbers, NUL bytes)


# what a file with zero bytes is said to be, and the fix: text never holds one
BINARY = "binary data (it holds zero bytes, which text does not)", "pass a UTF-8 text file"


def not_text(head: bytes) -> tuple[str, str] | None:
    """``(what the file is, how to make UTF-8 text of it)`` when a file's first bytes ``head`` (up to
    :data:`HEAD_BYTES`) say it is compressed, an archive, a workbook, or UTF-16/32 text (with or
    without a byte-order mark); None otherwise. Corpora, word-vector and scored files use it."""
    found = next(((what, fix) for magic, what, fix in _NOT_UTF8 if head.startswith(magic)), None)
    if found is not None or b"\x00" not in head:
        return found
    # UTF-16 without a byte-order mark decodes as "valid" UTF-8 with a zero byte beside every ASCII
    # character: read on, it would train a model of single letters.
    pairs = len(head) // 2
    zeros = sorted((head[0 : 2 * pairs : 2].count(0), head[1 : 2 * pairs : 2].count(0)))
    if zeros[1] > pairs // 2 and zeros[0] < pairs // 8:  # zeros on one side of the pairs only
        return "UTF-16 text without a byte-order mark", "re-save the file as UTF-8"
    return None


def check_is_utf8_text(path: Path) -> None:
    """Refuse ``path`` if its first bytes say it is compressed, an archive, UTF-16/32 text or binary:
    read as UTF-8 it would fail on line 1 with nothing said about what the file is, or be read as text."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    found = not_text(head)
    if found is None and b"\x00" in head:
        found = BINARY
    if found is not None:
        raise CorpusError(f"{path}: the file is {found[0]}, and nextword reads UTF-8 text; {found[1]}")
