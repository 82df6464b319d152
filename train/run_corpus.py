"""The corpus a run started from: its files' sizes and times as the run records them, and its id files
encoded again from it when a resumed run lacks them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from nextword.corpus import encode_corpus, recorded_split, split_corpus

from .config import TrainConfig
from .dev import dev_part, hold_out_dev
from .files import ID_FILE_COUNTS, RunDir

__all__ = ["corpus_files", "encode_again"]

logger = logging.getLogger(__name__)


def corpus_files(config: TrainConfig) -> list[list[int]]:
    """Size and modification time (ns) of each corpus file: what tells a cluster restarted with the
    same command (the run goes on) from the same command on an edited corpus (it starts over)."""
    stats = [Path(path).stat() for path in config.corpus.paths]
    return [[stat.st_size, stat.st_mtime_ns] for stat in stats]


def encode_again(
    run: RunDir, config: TrainConfig, data: dict[str, Any], recorded_files: Any = None
) -> dict[str, Any]:
    """Write ``train.ids``/``val.ids`` (and ``dev.ids``) of a run folder that lacks them, with the run's
    own tokenizer; returns their counts (:data:`~nextword.train.files.ID_FILE_COUNTS`). A corpus that
    no longer holds the documents the run started with is a ``ValueError``: files of other sizes than
    ``recorded_files`` (config.json's ``corpus_files``), or as many documents but other ones. A corpus
    file that is gone is a ``FileNotFoundError`` saying so."""
    corpus = config.corpus
    _check_corpus_is_there(run, config)
    sizes = [size for size, _ in corpus_files(config)]
    if (
        isinstance(recorded_files, list)
        and [f[0] if isinstance(f, list) and f else None for f in recorded_files] != sizes
    ):
        # an edit that keeps the number of documents would make another split without a word (a copy
        # of the same files has new times, so sizes are compared)
        raise ValueError(
            f"the corpus files {list(corpus.paths)} are not the size they were when {run.root} started: "
            "resuming would encode them into another split, and the run's figures would mix two "
            "validation sets; restore the files the run started with (it needs them to encode its missing "
            "id files), or start a new run on the changed corpus"
        )
    logger.info("%s has no train.ids/val.ids: encoding the corpus %s again", run.root, list(corpus.paths))
    tokenizer = run.read_tokenizer()
    split = split_corpus(corpus, recorded_split(data, corpus))
    if data.get("documents") not in (None, split.counts.documents):
        # another split: validation documents may be ones the run trained on, and its figures would
        # not describe the model. Refused before any id file is written.
        raise ValueError(
            f"the corpus {list(corpus.paths)} now holds {split.counts.documents} documents, "
            f"{data['documents']} when {run.root} started: resuming would train and validate on another "
            "split; restore the corpus files the run started with (the run needs them to encode its "
            "missing train.ids/val.ids), or start a new run on the changed corpus"
        )
    if isinstance(data.get("corpus_sha256"), str) and split.digest != data["corpus_sha256"]:
        raise ValueError(
            f"the corpus {list(corpus.paths)} holds as many documents as when {run.root} started, but "
            "their text differs (its SHA-256 is not the one recorded in config.json): resuming would "
            "encode other words; restore the corpus files the run started with, or start a new run"
        )
    counts = encode_corpus(split, tokenizer, run.train_ids, run.val_ids).facts()
    if (dev := dev_part(split, config)) is not None:
        counts |= hold_out_dev(run, dev, tokenizer.eod_id, by_group=split.record.dev_by_group)
    return {k: v for k, v in counts.items() if k in ID_FILE_COUNTS}


def _check_corpus_is_there(run: RunDir, config: TrainConfig) -> None:
    """Raise ``FileNotFoundError`` naming the corpus files of ``run`` that are gone (moved, renamed,
    deleted) and the id files that :func:`encode_again` would make from them."""
    gone = [path for path in config.corpus.paths if not os.path.exists(path)]
    if not gone:
        return
    ids = [run.train_ids, run.val_ids] + ([run.dev_ids] if config.dev_fraction else [])
    names = [path.name for path in ids if not path.is_file()]
    missing = " and ".join(filter(None, (", ".join(names[:-1]), names[-1]))) if names else "id files"
    files, them = ("file", "it is") if len(gone) == 1 else ("files", "they are")
    raise FileNotFoundError(
        f"resuming {run.root} needs its corpus {files} {', '.join(gone)} (recorded in {run.config}) to "
        f"encode its missing {missing} again, and {them} gone: put the {files} back at "
        f"{'that path' if len(gone) == 1 else 'those paths'}, or start a new run"
    )
