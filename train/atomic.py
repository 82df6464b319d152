"""Crash-safe writes of a run's files, and reading them back with the file named in errors: each file
is written to a temporary name in its folder and renamed into place, so a crash never leaves a
half-written file behind."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from nextword.corpus.files import atomic_path

__all__ = ["DAMAGED", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "read_json"]

# What to do about a run's JSON file that is missing or damaged (nextword writes each whole, atomically:
# an edit, a full disk when copying the folder or a damaged disk left it so).
DAMAGED = "restore it from a copy of the run folder, or start a new run"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, never in text that encodes as UTF-8


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON to ``target`` atomically (see :func:`_json_text`)."""
    atomic_write_bytes(target, (_json_text(data) + "\n").encode("utf-8"))


def _json_text(data: Any) -> str:
    """``data`` as indented JSON text that encodes as UTF-8 whatever its strings hold.

    Text other than ASCII is written as it is, except lone surrogates: a path whose name holds bytes
    that are not UTF-8 (Linux allows any) comes to Python with each such byte as a surrogate escape
    (``os.fsdecode(b"corpus-\\xff.csv")`` is ``"corpus-\\udcff.csv"``), which UTF-8 cannot encode.
    Those are written as JSON escapes (``\\udcff``), which :func:`read_json` reads back to the same
    str, so the record names the file exactly.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False)
    # structural characters are ASCII, so a surrogate can only stand inside a string, where its escape
    # means the same character
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def read_json(path: str | Path, fix: str = DAMAGED) -> Any:
    """Parse a JSON file, with the file named in the error when it is missing or cannot be read, and
    ``fix``, what to do (by default, for a run's files: :data:`DAMAGED`)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}; the file is damaged: {fix}") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise ValueError(
            f"{path} holds an integer too long to read (no file nextword writes does): the file is damaged: "
            f"{fix}"
        ) from None
    except RecursionError:
        raise ValueError(
            f"{path} holds JSON nested too deeply to read (no file nextword writes does): the file is "
            f"damaged: {fix}"
        ) from None
