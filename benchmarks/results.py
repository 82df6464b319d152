"""Each benchmark's figures as a JSON file, by default ``benchmarks/.cache/results/NAME.json``."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.paths import RESULTS_DIR

__all__ = [
    "at_least",
    "benchmark_parser",
    "finish",
    "load_result",
    "positive_ints",
    "recorded_date",
    "result_path",
    "save_result",
    "write_text",
]


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description's line breaks kept, and each option's default after its help, unless the help
    already tells it or there is none to tell (None, a flag that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def benchmark_parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser: ``python -m benchmarks.NAME``, its module docstring as the help
    text, line breaks kept, and the defaults shown."""
    return argparse.ArgumentParser(
        prog=f"python -m benchmarks.{name}", description=description, formatter_class=HelpFormatter
    )


def positive_ints(parser: argparse.ArgumentParser, flag: str, text: str) -> list[int]:
    """The comma-separated whole numbers that ``flag`` was given, each at least 1; ``parser.error``
    (exit status 2, before any work) otherwise."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        parser.error(f"argument {flag}: {text!r} is not a comma-separated list of whole numbers")
    if not values or min(values) < 1:
        parser.error(f"argument {flag}: {text!r}: give whole numbers of at least 1")
    return values


def at_least(parser: argparse.ArgumentParser, low: float, values: dict[str, float | None]) -> None:
    """Each ``flag -> value`` given must be at least ``low``; ``parser.error`` names the first that is not."""
    for flag, value in values.items():
        if value is not None and value < low:
            parser.error(f"argument {flag}: must be at least {low:g}, got {value:g}")


def result_path(name: str, path: str | Path | None = None) -> Path:
    """``path`` if given, else the default place of benchmark ``name``'s figures."""
    return Path(path) if path else RESULTS_DIR / f"{name}.json"


def save_result(name: str, data: dict[str, Any], path: str | Path | None = None) -> Path:
    """Write ``data`` as the figures of benchmark ``name``, stamped with when and how they were made
    (``data["recorded"]``: the UTC date and this process's arguments, so that a document that keeps an
    earlier run's figures can date them); returns the file written."""
    out = result_path(name, path)
    out.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    stamped = {**data, "recorded": {"date": now, "argv": sys.argv[1:]}}
    write_text(out, json.dumps(stamped, indent=2) + "\n")
    return out


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) as nextword writes its own files: a temporary file beside it,
    renamed into place, so that a run stopped midway leaves the old file whole and no temporary."""
    from nextword.corpus.files import atomic_path

    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def load_result(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """The figures benchmark ``name`` last wrote."""
    return json.loads(result_path(name, path).read_text(encoding="utf-8"))


def recorded_date(result: dict[str, Any]) -> str | None:
    """When ``result`` was written (its ``save_result`` stamp); None for a file written before the stamp."""
    recorded = result.get("recorded")
    return recorded.get("date") if isinstance(recorded, dict) else None


def finish(
    name: str,
    result: dict[str, Any],
    targets: Callable[[dict[str, Any]], Any] | None,
    render: Callable[[dict[str, Any]], str],
    path: str | Path | None = None,
) -> int:
    """A benchmark's last step: ``result["targets"] = targets(result)`` (none for a benchmark without
    targets of its own), the figures saved (the file named on stderr), the report ``render(result)``
    printed; returns 0, the exit status."""
    if targets is not None:
        result["targets"] = targets(result)
    print(f"wrote {save_result(name, result, path)}", file=sys.stderr)
    print(render(result))
    return 0
