"""Collect a corpus of patent abstracts from the PatentsView bulk downloads (``nextword corpus
patentsview``): the patents whose abstract or title contains a query phrase, streamed out of the zipped
tables and written as a CSV with the reference corpus's columns. How it reads the files, and why:
docs/patentsview.md.
"""

from __future__ import annotations

from .config import MAX_LISTED, CollectSummary, PatentsViewConfig, SkippedRow
from .matching import PhraseMatcher
from .passes import CORPUS_COLUMNS, collect

__all__ = [
    "CORPUS_COLUMNS",
    "MAX_LISTED",
    "CollectSummary",
    "PatentsViewConfig",
    "PhraseMatcher",
    "SkippedRow",
    "collect",
]
