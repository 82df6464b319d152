"""``nextword corpus``: build a training corpus from public data.

``nextword corpus patentsview`` collects patent abstracts from the PatentsView bulk downloads; its options
are the fields of :class:`nextword.corpus.patentsview.PatentsViewConfig`.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from nextword.corpus.patentsview import PatentsViewConfig
from nextword.runtime.terminal import utf8_text

from .args import add_config_arguments, config_from_args
from .display import printing_result

__all__ = ["add_corpus_parser"]


def add_corpus_parser(commands: Any) -> None:
    """Register ``nextword corpus patentsview`` on ``commands`` (the object ``add_subparsers`` returned)."""
    parser = commands.add_parser("corpus", help="build a training corpus from public data")
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    p = sources.add_parser(
        "patentsview",
        help="patent abstracts matching a query, from the PatentsView bulk files",
        description="Collect the patents whose abstract (or, with --patents, title) contains one of the "
        "--query phrases from PatentsView's g_patent_abstract.tsv.zip (and g_patent.tsv.zip), read as "
        "streams, into a corpus CSV for nextword train. Download the files from "
        "https://patentsview.org/download/data-download-tables.",
    )
    add_config_arguments(p, PatentsViewConfig, skip=("query",))
    # --query repeats (--query A --query B) rather than taking a list: built by hand from its field. One
    # phrase a flag, so that a phrase the shell split (--query neural network) is refused, not searched
    # for as "neural" or "network".
    query = next(f for f in dataclasses.fields(PatentsViewConfig) if f.name == "query")
    p.add_argument(
        "--query",
        dest="query",
        action="append",
        type=utf8_text,  # text, as typed (positionals.py)
        default=argparse.SUPPRESS,
        metavar=query.metadata["metavar"],
        help=query.metadata["help"],
    )
    p.set_defaults(handler=_patentsview)


def _patentsview(args: argparse.Namespace) -> int:
    from nextword.corpus.patentsview import collect

    config = config_from_args(PatentsViewConfig(), vars(args))
    summary = collect(config)
    with printing_result(f"{summary.out} was written"):
        print(summary.describe())
    return 0
