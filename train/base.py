"""Fine-tuning: what a run that starts from another run's best model (``TrainConfig.init_from``) takes
from that run, the base: its vocabulary, its network and its weights."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nextword.runtime.tokenizer import Tokenizer

from .config import ModelConfig, TrainConfig
from .files import SAVING, RunDir, read_json

__all__ = ["ARCHITECTURE", "Base", "base_facts", "fine_tuning_config", "read_base", "unknown_share"]

logger = logging.getLogger(__name__)
UNKNOWN_WARNING = 0.05  # a share of the training words outside the base vocabulary worth a warning

# The ModelConfig fields that the weights fix; the others (dropout) only say how the run trains.
ARCHITECTURE = ("embedding_dim", "lstm_units", "num_layers", "tie_embeddings")


@dataclass(frozen=True)
class Base:
    """The run a fine-tuning run starts from, as read and checked before anything is written."""

    run: RunDir
    config: TrainConfig  # the base run's own settings
    stored: dict[str, Any]  # its config.json as stored
    tokenizer: Tokenizer
    best_epoch: int | None


def read_base(config: TrainConfig) -> Base:
    """Read and check the run folder ``config.init_from``: a finished training run, not the folder
    this run writes (``out``), and not cut off while it saved an epoch. Raises ``FileNotFoundError``
    (no such folder, or not a finished run), ``ValueError`` (damaged files, the same folder as
    ``out``) with the fix in the message."""
    run = RunDir(str(config.init_from))
    if not run.root.exists():
        raise FileNotFoundError(f"init_from: {run.root} does not exist; give the run folder to start from")
    if config.out and Path(config.out).resolve() == run.root.resolve():
        raise ValueError(
            f"init_from and out are the same folder ({run.root}): the new run would replace the model it "
            "starts from; give the fine-tuned run a folder of its own"
        )
    run.require_trained()
    stored_config, stored = run.read_config()
    tokenizer = run.read_tokenizer()
    metrics = read_json(run.metrics) if run.metrics.is_file() else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    if metrics.get(SAVING) is not None:
        raise ValueError(
            f"init_from: {run.root} was cut off while it saved epoch {metrics[SAVING]!r}, so its best model "
            f"may be older than its metrics say; `nextword.train.resume({str(run.root)!r})` mends it first"
        )
    best = metrics.get("best")
    epoch = best.get("epoch") if isinstance(best, dict) else None
    if run.busy():
        logger.warning(
            "init_from: %s is being trained by another process: this run starts from its best model so far "
            "(epoch %s)",
            run.root,
            epoch if epoch is not None else "?",
        )
    return Base(run, stored_config, stored, tokenizer, epoch if isinstance(epoch, int) else None)


def fine_tuning_config(config: TrainConfig, base: Base) -> TrainConfig:
    """``config`` with the base run's tokenizer settings and network. The weights fix the network
    (:data:`ARCHITECTURE`) and the vocabulary fixes the tokenizer: a value there that differs from
    both the default and the base's is refused (``ValueError``). The other network fields (dropout)
    take the base's where ``config`` leaves them at their defaults."""
    defaults, conflicts = TrainConfig(), []
    for field in dataclasses.fields(config.tokenizer):
        mine, theirs = getattr(config.tokenizer, field.name), getattr(base.config.tokenizer, field.name)
        if mine != getattr(defaults.tokenizer, field.name) and mine != theirs:
            conflicts.append(f"tokenizer {field.name}={mine!r} (the base's: {theirs!r})")
    model: dict[str, Any] = {}
    for field in dataclasses.fields(ModelConfig):
        mine, theirs = getattr(config.model, field.name), getattr(base.config.model, field.name)
        if mine == getattr(defaults.model, field.name):
            model[field.name] = theirs
        elif field.name in ARCHITECTURE and mine != theirs:
            conflicts.append(f"{field.name}={mine!r} (the base's: {theirs!r})")
    if conflicts:
        raise ValueError(
            f"a run fine-tuned from {base.run.root} keeps its vocabulary and network, but this config "
            f"asks for {', '.join(conflicts)}; leave these settings out (they come from the base run)"
        )
    return replace(config, tokenizer=base.config.tokenizer, model=replace(config.model, **model))


def base_facts(base: Base) -> dict[str, Any]:
    """What the fine-tuned run records of its base in config.json (``base``), and its model file in
    turn: the folder, the epoch its weights come from, its corpus files (names) and documents, and the
    command that trained it."""
    data = base.stored.get("data")
    documents = data.get("documents") if isinstance(data, dict) else None
    command = base.stored.get("command")
    return {
        "run": str(base.run.root.resolve()),
        "best_epoch": base.best_epoch,
        "corpus_files": [Path(p).name for p in base.config.corpus.paths],
        "documents": documents if isinstance(documents, int) else None,
        "command": command if isinstance(command, str) else None,
    }


def unknown_share(counts: np.ndarray, tokenizer: Tokenizer) -> float:
    """The share of the training words (``counts``: each id's count in ``train.ids``) outside the base
    vocabulary, which read as ``<unk>``; logged, with a warning from :data:`UNKNOWN_WARNING` on."""
    words = float(counts.sum() - counts[tokenizer.eod_id])
    share = float(counts[tokenizer.unk_id]) / words if words else 0.0
    if share >= UNKNOWN_WARNING:
        logger.warning(
            "%.1f%% of this corpus's training words are outside the base run's vocabulary: the model learns "
            "them as <unk> and never writes them; training from scratch builds a vocabulary of this corpus",
            100 * share,
        )
    else:
        logger.info("%.2f%% of this corpus's training words are outside the base vocabulary", 100 * share)
    return round(share, 6)
