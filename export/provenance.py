"""The provenance record a model file carries, made from a run folder's ``config.json``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nextword.corpus import recorded_split
from nextword.runtime.provenance import Architecture, DataCounts, Provenance
from nextword.train.config import TrainConfig

__all__ = ["provenance_of_run"]


def provenance_of_run(config: TrainConfig, stored: dict[str, Any], export_command: str | None) -> Provenance:
    """What the model file records about its training: ``config`` and the facts ``stored`` beside it in
    ``config.json`` (vocabulary size, ``data`` counts and split, command), and the export command.

    Runs trained before splits were recorded (no ``data.split``) were split by document index, which
    the record says. Counts of the wrong type are left out.
    """
    data = stored.get("data")
    data = data if isinstance(data, dict) else {}
    counts = {
        f.name: data[f.name]
        for f in dataclasses.fields(DataCounts)
        if type(data.get(f.name)) is int and data[f.name] >= 0
    }
    vocab_size, command = stored.get("vocab_size"), stored.get("command")
    corpus = config.corpus
    return Provenance(
        corpus_files=tuple(Path(p).name for p in corpus.paths),
        corpus_format=corpus.format,
        text_column=corpus.text_column,
        json_field=corpus.json_field,
        split=recorded_split(data, corpus),
        data=DataCounts(**counts),
        vocab_size=vocab_size if type(vocab_size) is int else None,
        architecture=Architecture(**dataclasses.asdict(config.model)),
        train_command=command if isinstance(command, str) else None,
        export_command=export_command,
    )
