"""Where things are: the repository, the benchmarks' cache and results, the documents they write."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CACHE_DIR", "DEFAULT_CORPUS", "DOCS_DIR", "IMG_DIR", "REPO", "RESULTS_DIR", "SHARED", "shown"]

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
