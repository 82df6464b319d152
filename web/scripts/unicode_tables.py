"""Write web/src/unicode-data.js: the Unicode facts the JavaScript tokenizer needs, taken from this Python;
and runtime/unicode_marks.py, the one table the Python tokenizer reads rather than its interpreter's.

The Python tokenizer leans on ``re`` (``\\w``, ``\\s``, ``\\d``, ``[a-z]`` under IGNORECASE),
``str.lower()``/``str.upper()`` and ``unicodedata.normalize("NFKC")``, all of which follow the Unicode
version compiled into the interpreter. JavaScript engines ship their own (usually newer) Unicode data and
different regex classes, so the JavaScript side does not use its engine's classes or case mappings at
all: it reads these tables, generated from the Python that the parity tests run against. For NFKC it
uses the engine's ``normalize`` on runs of characters that this Python's Unicode assigns (normalization
of assigned characters is stable across versions) and leaves the rest alone, as this Python does.

Run: ``.venv/bin/python web/scripts/unicode_tables.py`` (``make web-unicode``).

The tables are the tokenizer's: a Python with another Unicode version would silently change how both
runtimes split text (Python 3.12 ships Unicode 15.0, 3.13 15.1). So the script refuses to run when this
Python's ``unicodedata.unidata_version`` is not the version the committed files record, and says which
Python wrote them; ``--move-to VERSION`` (``make web-unicode UNICODE=VERSION``), with VERSION this
Python's Unicode, moves the tables on purpose (docs/web.md, "The tokenizer: identical").
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "unicode-data.js"
PYTHON_OUT = Path(__file__).resolve().parents[2] / "runtime" / "unicode_marks.py"
MARK_CATEGORIES = ("Mn", "Mc", "Me")
MAX = sys.maxunicode + 1
# A character each Unicode version added with an NFKC decomposition, and its NFKC form: an engine that
# normalizes the probe of the tables' version knows every character that version assigns.
NORMALIZATION_PROBES = {
    "14.0.0": ("\U00010781", "\u02d0"),  # MODIFIER LETTER SUPERSCRIPT TRIANGULAR COLON
    "15.0.0": ("\U0001e030", "\u0430"),  # MODIFIER LETTER CYRILLIC SMALL A
}


def ranges(predicate) -> list[tuple[int, int]]:
    """Inclusive code point ranges where ``predicate(chr(c))`` holds."""
    out: list[tuple[int, int]] = []
    start = None
    for c in range(MAX + 1):
        inside = c < MAX and predicate(chr(c))
        if inside and start is None:
            start = c
        elif not inside and start is not None:
            out.append((start, c - 1))
            start = None
    return out


def encode_ranges(spans: list[tuple[int, int]]) -> str:
    """Pairs (gap from the previous range's end, length - 1) in base 36, comma-separated."""
    parts, previous = [], -1
    for start, end in spans:
        parts.append(f"{_b36(start - previous - 1)}.{_b36(end - start)}")
        previous = end
    return ",".join(parts)


def encode_map(mapping: dict[int, str]) -> str:
    """Entries "gap:cp.cp..." in base 36 (gap from the previous key), comma-separated."""
    parts, previous = [], -1
    for key in sorted(mapping):
        parts.append(f"{_b36(key - previous - 1)}:{'.'.join(_b36(ord(ch)) for ch in mapping[key])}")
        previous = key
    return ",".join(parts)


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        n, r = divmod(n, 36)
        text = digits[r] + text
        if not n:
            return text


def _cased(ch: str) -> bool:
    return ch.islower() or ch.isupper() or ch.istitle()


def _case_ignorable(ch: str) -> bool:
    # str.lower() puts a final sigma where U+03A3 follows a cased letter, skipping case-ignorable
    # characters, and is not followed by one; CPython exposes the property no other way.
    before = ("A" + ch + "Σ").lower()[-1] == "ς"
    after = ("AΣ" + ch + "1").lower()[1] == "ς"
    return before and after


def build() -> str:
    word = re.compile(r"\w")
    space = re.compile(r"\s")
    digit = re.compile(r"\d")
    fig_letter = re.compile(r"[a-z]", re.IGNORECASE)
    surrogate = range(0xD800, 0xE000)
    lower = {c: chr(c).lower() for c in range(MAX) if c not in surrogate and chr(c).lower() != chr(c)}
    upper = {c: chr(c).upper() for c in range(MAX) if c not in surrogate and chr(c).upper() != chr(c)}
    tables = {
        "WORD": encode_ranges(ranges(lambda ch: bool(word.match(ch)))),
        "SPACE": encode_ranges(ranges(lambda ch: bool(space.match(ch)))),
        "DIGIT": encode_ranges(ranges(lambda ch: bool(digit.match(ch)))),
        "FIG_LETTER": encode_ranges(ranges(lambda ch: bool(fig_letter.match(ch)))),
        "MARK": encode_ranges(mark_ranges()),
        "CASED": encode_ranges(ranges(_cased)),
        "CASE_IGNORABLE": encode_ranges(ranges(_case_ignorable)),
        "UNASSIGNED": encode_ranges(ranges(lambda ch: unicodedata.category(ch) == "Cn")),
        "NONPRINTABLE": encode_ranges(ranges(lambda ch: not ch.isprintable())),
        "LOWER": encode_map(lower),
        "UPPER": encode_map(upper),
    }
    lines = [
        "// Generated by web/scripts/unicode_tables.py from Python "
        f"{sys.version.split()[0]}'s Unicode {unicodedata.unidata_version}. Do not edit.",
        "// Ranges: (gap, length - 1) pairs in base 36; maps: (gap: code points) in base 36.",
        f"export const UNICODE_VERSION = '{unicodedata.unidata_version}';",
    ]
    lines += [f"export const {name} = '{value}';" for name, value in tables.items()]
    version = tuple(int(p) for p in unicodedata.unidata_version.split("."))
    known = [v for v in NORMALIZATION_PROBES if tuple(int(p) for p in v.split(".")) <= version]
    probe, expected = NORMALIZATION_PROBES[max(known, key=lambda v: tuple(int(p) for p in v.split(".")))]
    assert unicodedata.normalize("NFKC", probe) == expected
    lines.append(f"export const PROBE = ['\\u{{{ord(probe):x}}}', '\\u{{{ord(expected):x}}}'];")
    return "\n".join(lines) + "\n"


def mark_ranges() -> list[tuple[int, int]]:
    """The combining marks (categories Mn, Mc, Me): word characters from tokenizer format 3 on."""
    return ranges(lambda ch: unicodedata.category(ch) in MARK_CATEGORIES)


def build_python_marks() -> str:
    """runtime/unicode_marks.py: the marks as regex class bodies, a fixed table for every Python (the
    interpreter's own would take most of a second to gather, and differ between Python versions). The
    marks past the Basic Multilingual Plane come apart: re tests a class's ranges there one by one, so
    patterns use them only for text that has such characters."""

    def char(c: int) -> str:
        return f"\\u{c:04x}" if c <= 0xFFFF else f"\\U{c:08x}"

    def constant(name: str, spans: list[tuple[int, int]]) -> list[str]:
        parts = [char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in spans]
        per_line = 6 if name.startswith("BMP") else 4
        lines = ['    "' + "".join(parts[i : i + per_line]) + '"' for i in range(0, len(parts), per_line)]
        return [f"{name} = (", *lines, ")"]

    spans = mark_ranges()
    unassigned = ranges(lambda ch: unicodedata.category(ch) == "Cn")
    assert not [(a, b) for a, b in [*spans, *unassigned] if a <= 0xFFFF < b], "a range across U+FFFF"
    return "\n".join(
        [
            f'"""Generated by web/scripts/unicode_tables.py from Python {sys.version.split()[0]}\'s Unicode '
            f"{unicodedata.unidata_version}. Do not edit.",
            "",
            "The combining marks (Unicode categories Mn, Mc and Me) as bodies of a regex character class,",
            "those of the Basic Multilingual Plane and those past it: tokenizer format 3 and split scheme",
            "dedup-v4 count them as word characters. JavaScript reads the same table",
            "(web/src/unicode-data.js, MARK). Then the code points this Unicode leaves unassigned (category",
            "Cn; web/src/unicode-data.js, UNASSIGNED): a newer Python's tokenizer reads those it assigns as",
            "this one does (runtime/splitting.py).",
            '"""',
            "",
            f'UNICODE_VERSION = "{unicodedata.unidata_version}"',
            *constant("BMP_MARKS", [(a, b) for a, b in spans if b <= 0xFFFF]),
            *constant("ASTRAL_MARKS", [(a, b) for a, b in spans if a > 0xFFFF]),
            *constant("BMP_UNASSIGNED", [(a, b) for a, b in unassigned if b <= 0xFFFF]),
            *constant("ASTRAL_UNASSIGNED", [(a, b) for a, b in unassigned if a > 0xFFFF]),
            "",
        ]
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path} ({len(text):,} bytes, Unicode {unicodedata.unidata_version})")


_RECORDED_VERSION = re.compile(r"""^(?:export const )?UNICODE_VERSION = ["'](\d+\.\d+\.\d+)["'];?$""", re.M)
_RECORDED_PYTHON = re.compile(r"from Python (\S+)'s Unicode")


def recorded_versions() -> dict[Path, tuple[str | None, str | None]]:
    """(Unicode version, version of the Python that wrote it) that each committed table file records;
    None where the file or the record is missing."""
    out: dict[Path, tuple[str | None, str | None]] = {}
    for path in (OUT, PYTHON_OUT):
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        version, python = _RECORDED_VERSION.search(text), _RECORDED_PYTHON.search(text)
        out[path] = (version and version.group(1), python and python.group(1))
    return out


def refusal(
    recorded: dict[Path, tuple[str | None, str | None]], current: str, move_to: str | None
) -> str | None:
    """Why the tables may not be written with this Python's Unicode ``current``, or None."""
    here = f"this Python ({sys.version.split()[0]}, {sys.executable}) has Unicode {current}"
    if move_to is not None:
        if move_to != current:
            return f"--move-to {move_to}, but {here}: run the Python whose Unicode is {move_to}"
        return None
    if all(version == current for version, _ in recorded.values()):
        return None
    root = PYTHON_OUT.parents[1]
    files = [str(path.relative_to(root)) for path in recorded]
    records = set(recorded.values())
    version, python = next(iter(records))
    if len(records) == 1 and version:
        held = f"the committed tables ({' and '.join(files)}) are Unicode {version}" + (
            f", written by Python {python}" if python else ""
        )
    else:
        held = "; ".join(
            f"{name} records "
            + (f"Unicode {version}" if version else "no Unicode version")
            + (f", written by Python {python}" if python else "")
            for name, (version, python) in zip(files, recorded.values(), strict=True)
        )
    pythons = sorted({".".join(python.split(".")[:2]) for version, python in recorded.values() if python})
    use = (
        f"run it with Python {' or '.join(pythons)} (make web-unicode UNICODE_PYTHON=python{pythons[0]}, or "
        f"python{pythons[0]} web/scripts/unicode_tables.py)"
        if pythons
        else "run it with the Python that wrote them"
    )
    return (
        f"refusing to rewrite the Unicode tables: {held}, but {here}. They are the tokenizers' tables "
        "(runtime/unicode_marks.py: the combining marks of tokenizer format 3 and split scheme dedup-v4; "
        "web/src/unicode-data.js: everything nextword-web's tokenizer reads), so another Unicode version "
        f"changes how both runtimes split text. To keep them, {use}. To write them from Unicode {current} "
        f"on purpose, pass --move-to {current} (make web-unicode UNICODE={current}) and follow docs/web.md "
        '("The tokenizer: identical").'
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--move-to",
        metavar="VERSION",
        help="write the tables from this Python's Unicode even where the committed ones record another "
        "version; VERSION must be this Python's unicodedata.unidata_version",
    )
    args = parser.parse_args(argv)
    problem = refusal(recorded_versions(), unicodedata.unidata_version, args.move_to)
    if problem:
        raise SystemExit(problem)
    _write(OUT, build())
    _write(PYTHON_OUT, build_python_marks())


if __name__ == "__main__":
    main()
