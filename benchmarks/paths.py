"""Where things are: the repository, the benchmarks' cache and results, the documents they write."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = [
    "CACHE_DIR",
    "DEFAULT_CORPUS",
    "DOCS_DIR",
    "IMG_DIR",
    "REPO",
    "RESULTS_DIR",
    "SHARED",
    "MissingInput",
    "require_files",
    "shown",
]

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / "benchmarks" / ".cache"  # trained models, exports, corpora: reused between runs
RESULTS_DIR = CACHE_DIR / "results"  # one JSON file of figures per benchmark
DOCS_DIR = REPO / "docs"
IMG_DIR = DOCS_DIR / "img"
SHARED = REPO.parent / "shared"
DEFAULT_CORPUS = SHARED / "data" / "neural_network_patent_query.csv"


def shown(path: str | Path) -> str:
    """``path`` as a report shows it: relative to the repository when inside it (no machine's own
    folders in the documents), else as given."""
    full = Path(path).resolve()
    return str(full.relative_to(REPO)) if full.is_relative_to(REPO) else str(path)


class MissingInput(SystemExit):
    """A benchmark's input file is missing: exit status 2, one line naming the file and the flag to pass
    (printed by :func:`require_files`; a ``SystemExit``, so no traceback)."""


def require_files(inputs: dict[str, tuple[str | Path | None, str, str]], prog: str | None = None) -> None:
    """Before any work: for each ``flag -> (path, what it is, how to make it)``, a path that is given
    must be a file; the first that is not ends the program with one line on stderr, ``PROG: WHAT PATH not
    found: pass FLAG FILE`` (then how to make it, when not empty), and exit status 2. ``prog`` defaults
    to the benchmark running (``benchmarks.speed`` for ``python -m benchmarks.speed``)."""
    prog = prog or f"benchmarks.{Path(sys.argv[0]).stem}"
    for flag, (path, what, how) in inputs.items():
        if path is None or Path(path).is_file():
            continue
        line = f"{prog}: {what} {path} not found: pass {flag} FILE" + (f"; {how}" if how else "")
        print(line, file=sys.stderr)
        raise MissingInput(2)
