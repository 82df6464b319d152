"""Collecting the patents that match a query into a corpus CSV, in one pass or three: :func:`collect`."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import CorpusError, os_error
from ..files import TargetExistsError, atomic_path
from .config import CollectSummary, PatentsViewConfig
from .matching import PhraseMatcher
from .progress import Progress
from .table import Table

__all__ = ["ABSTRACT_COLUMNS", "CORPUS_COLUMNS", "PATENT_COLUMNS", "collect"]

logger = logging.getLogger(__name__)

CORPUS_COLUMNS = ("patent_abstract", "patent_date", "patent_number", "patent_title")
ABSTRACT_COLUMNS = ("patent_id", "patent_abstract")
PATENT_COLUMNS = ("patent_id", "patent_date", "patent_title")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def collect(config: PatentsViewConfig) -> CollectSummary:
    """Write the patents matching ``config.query`` to ``config.out`` as a corpus CSV (docs/patentsview.md).

    Raises ``FileNotFoundError`` for a missing input, ``ValueError`` for an input that is not the
    PatentsView table it should be (the message names the file and the columns it has) or a damaged zip,
    and :class:`~nextword.corpus.CorpusError` for a file that cannot be read or written (permissions, a
    full or read-only file system, ``out`` a folder or one of the inputs, or an existing file without
    ``overwrite``). Malformed rows are skipped
    and counted, never fatal. The output is written atomically: on any error it is left as it was.
    """
    config.require_inputs()
    out = Path(config.out)
    if out.is_dir():
        raise CorpusError(f"out={str(out)!r} is a folder; give the path of the CSV file to write")
    inputs = {path for path in (config.abstracts, config.patents) if path is not None}
    for source in sorted(inputs):  # the CSV would replace the download it is read from
        if out.exists() and out.resolve() == Path(source).resolve():
            raise CorpusError(
                f"out={str(out)!r} is the input file {source}; writing the corpus there would replace the "
                "download: give the CSV another name"
            )
    if os.path.lexists(out) and not config.overwrite:  # a link to nothing too: the CSV would not go there
        raise CorpusError(f"out={str(out)!r} exists; pass overwrite=True to replace it, or give another path")
    try:
        summary = _collect(config, out)
    except TargetExistsError:  # written by another process while this one read the downloads
        raise CorpusError(
            f"out={str(out)!r} was written by another process while this one read the downloads; nothing "
            "was replaced: pass overwrite=True to replace it, or give another path"
        ) from None
    except FileNotFoundError:  # a missing input: its message names it and where to download it
        raise
    except OSError as exc:  # one line for the user: which file, what went wrong, what to do
        if exc.filename is not None and str(exc.filename) in inputs:
            raise os_error(exc, "read", exc.filename) from None
        raise os_error(exc, "write", out) from None
    if summary.skipped:
        logger.warning("skipped %d malformed rows; the first: %s", summary.skipped, summary.skipped_rows[0])
    logger.info("wrote %d of %d matching patents to %s", summary.written, summary.matched, out)
    if not summary.written:
        logger.warning(
            "no patent matched %s: %s holds only its header, and training on it would find no documents; "
            "check the `query` phrases (and `since`)",
            " or ".join(map(repr, config.query)),
            out,
        )
    return summary


def _collect(config: PatentsViewConfig, out: Path) -> CollectSummary:
    cap = config.max_record_bytes
    abstracts = Table(config.abstracts, "abstracts", ABSTRACT_COLUMNS, "g_patent_abstract.tsv.zip", cap)
    patents = None
    if config.patents:
        patents = Table(config.patents, "patents", PATENT_COLUMNS, "g_patent.tsv.zip", cap)
    matches = PhraseMatcher(config.query)
    summary = CollectSummary(out=str(out))
    show_progress = config.progress and sys.stderr.isatty()
    phrases = " or ".join(map(repr, config.query))
    logger.info("collecting patents matching %s from %s", phrases, abstracts.path)
    with atomic_path(out, replace=config.overwrite) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CORPUS_COLUMNS)
        if patents is None:
            _one_pass(abstracts, matches, config.limit, writer, summary, show_progress)
        else:
            _three_passes(abstracts, patents, matches, config, writer, summary, show_progress)
    return summary


def _one_pass(
    abstracts: Table,
    matches: PhraseMatcher,
    limit: int | None,
    writer: Any,
    summary: CollectSummary,
    show_progress: bool,
) -> None:
    """No patents file: every matching abstract is written as it is read."""
    written: set[str] = set()
    with Progress(show_progress, "abstracts") as progress:
        rows = abstracts.rows(ABSTRACT_COLUMNS, summary, progress, find=matches.byte_offsets)
        with contextlib.closing(rows):
            for _, (patent_id, abstract) in rows:
                if not matches(abstract):
                    continue
                if patent_id in written:
                    summary.duplicates += 1
                    continue
                written.add(patent_id)
                writer.writerow((abstract, "", patent_id, ""))
                progress.matched = len(written)
                if limit is not None and len(written) >= limit:
                    break
    summary.matched = summary.written = len(written)


def _three_passes(
    abstracts: Table,
    patents: Table,
    matches: PhraseMatcher,
    config: PatentsViewConfig,
    writer: Any,
    summary: CollectSummary,
    show_progress: bool,
) -> None:
    """Abstract matches (ids), then dates and titles (and title matches), then the abstracts to write."""
    # Pass 1: ids of the patents whose abstract matches.
    hits: set[str] = set()
    with Progress(show_progress, "1/3 abstracts") as progress:
        for _, (patent_id, abstract) in abstracts.rows(
            ABSTRACT_COLUMNS, summary, progress, find=matches.byte_offsets
        ):
            if matches(abstract):
                hits.add(patent_id)
                progress.matched = len(hits)
    logger.info("pass 1/3: %d abstracts match", len(hits))

    # Pass 2: date and title of every hit, and of every patent whose title matches; --since applies.
    meta: dict[str, tuple[str, str]] = {}
    title_only: set[str] = set()
    excluded: set[str] = set()
    since = config.since
    with Progress(show_progress, "2/3 patents") as progress:
        rows = patents.rows(PATENT_COLUMNS, summary, progress, find=matches.byte_offsets, ids=hits)
        for _, (patent_id, patent_date, title) in rows:
            if patent_id in meta or patent_id in excluded:
                continue  # a repeated row: the first one counts
            if patent_id not in hits:
                if not matches(title):
                    continue
                title_only.add(patent_id)
            if since is not None and not (_ISO_DATE.match(patent_date) and patent_date >= since):
                excluded.add(patent_id)
                continue
            meta[patent_id] = (patent_date, title)
            progress.matched = len(meta)
    without_metadata = hits - meta.keys() - excluded
    summary.matched = len(hits) + len(title_only)
    summary.matched_by_title_only = len(title_only)
    summary.excluded_by_since = len(excluded) + (len(without_metadata) if since is not None else 0)
    summary.without_metadata = 0 if since is not None else len(without_metadata)
    logger.info("pass 2/3: %d more patents match by title; %d kept", len(title_only), len(meta))

    # Pass 3: the abstracts of the kept patents, written in abstract-file order.
    keep = set(meta) if since is not None else set(meta) | without_metadata
    written: set[str] = set()
    empty = 0
    limit = config.limit
    with Progress(show_progress, "3/3 abstracts") as progress:
        # Malformed rows were counted in pass 1: no summary this time.
        rows = abstracts.rows(ABSTRACT_COLUMNS, None, progress, ids=keep)
        with contextlib.closing(rows):
            for _, (patent_id, abstract) in rows:
                if patent_id not in keep:
                    continue
                if patent_id in written:
                    summary.duplicates += 1
                    continue
                if not abstract.strip():
                    empty += 1
                    continue
                written.add(patent_id)
                patent_date, title = meta.get(patent_id, ("", ""))
                writer.writerow((abstract, patent_date, patent_id, title))
                progress.matched = len(written)
                if limit is not None and len(written) >= limit:
                    break
    summary.written = len(written)
    if limit is None or len(written) < limit:  # the whole file was read: absent title matches are known
        summary.without_abstract = len(title_only & keep) - len(title_only & written)
    else:
        summary.without_abstract = empty
