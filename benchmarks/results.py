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

__all__ = ["finish", "load_result", "recorded_date", "result_path", "save_result"]


def benchmark_parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser: ``python -m benchmarks.NAME``, its module docstring as the help
    text, line breaks kept."""
    return argparse.ArgumentParser(
        prog=f"python -m benchmarks.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


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
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(stamped, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a file
    return out


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
