"""Training a model on a corpus, and resuming an interrupted run."""

from __future__ import annotations

import logging
import math
import platform
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nextword.runtime import __version__
from nextword.runtime.tokenizer import Tokenizer

from .config import TrainConfig
from .corpus import load_documents, split_documents
from .data import WindowBatches, encode_stream
from .embeddings import load_glove
from .files import RunDir, atomic_path, atomic_write_json, atomic_write_text, read_json
from .model import build_model

__all__ = ["RunExistsError", "TrainResult", "resume", "train"]

logger = logging.getLogger(__name__)

N_SAMPLE_PROMPTS = 5  # validation document beginnings kept as real prompts for the export parity check
SAMPLE_PROMPT_WORDS = 20


class RunExistsError(FileExistsError):
    """The run folder already holds a run; the message says how to resume or replace it."""


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended."""

    run_dir: str
    epochs: int  # epochs finished in total, earlier sessions of a resumed run included
    best_epoch: int
    best_val_loss: float
    best_val_perplexity: float
    stopped_early: bool


def train(config: TrainConfig) -> TrainResult:
    """Train a model as ``config`` says and fill the run folder ``config.out``.

    Steps: read the corpus, split it by document, build the vocabulary from the training split, train
    with early stopping on validation loss, keep the best model. Everything the run needs later is
    written into the folder before the first epoch, so an interrupted run can be resumed with
    :func:`resume`. Raises ``ValueError`` subclasses for bad corpora, embeddings or settings before any
    training starts, and :class:`RunExistsError` if the folder holds a run and ``overwrite`` is off.
    """
    if not config.out:
        raise ValueError("the run folder is not set: pass --out RUN_DIR")
    run = RunDir(config.out)
    _claim_run_dir(run, config.overwrite)
    corpus = replace(config.corpus, paths=tuple(str(Path(p).resolve()) for p in config.corpus.paths))
    config = replace(config, corpus=corpus)

    documents = load_documents(corpus.paths, corpus)
    train_docs, val_docs = split_documents(documents, corpus.val_fraction, corpus.split_seed)
    tokenizer = Tokenizer.build(train_docs, config.tokenizer)
    logger.info(
        "%d documents: %d for training, %d for validation; vocabulary %d words",
        len(documents),
        len(train_docs),
        len(val_docs),
        len(tokenizer),
    )
    vectors = None
    if config.embeddings:
        vectors, _ = load_glove(config.embeddings, tokenizer, config.model.embedding_dim, config.seed)

    keras.utils.set_random_seed(config.seed)
    model = build_model(config.model, len(tokenizer))
    if vectors is not None:
        embedding = model.get_layer("embedding")
        embedding.set_weights([vectors])
        embedding.trainable = not config.freeze_embeddings
    _compile(model, config)

    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.tokenizer, tokenizer.to_json())
    data = {"documents": len(documents), "train_documents": len(train_docs), "val_documents": len(val_docs)}
    atomic_write_json(
        run.config, {**config.to_dict(), "vocab_size": len(tokenizer), "data": data, "versions": versions()}
    )
    prompts = [" ".join(d.split()[:SAMPLE_PROMPT_WORDS]) for d in val_docs[:N_SAMPLE_PROMPTS]]
    atomic_write_json(run.samples, {"prompts": prompts})
    atomic_write_json(run.metrics, {"epochs": []})
    return _fit(run, config, model, tokenizer, train_docs, val_docs, history=[])


def resume(
    run_dir: str | Path, epochs: int | None = None, patience: int | None = None, verbose: int | None = None
) -> TrainResult:
    """Continue an interrupted (or finished) run from its last checkpoint.

    The corpus files named in the run's config are read again and split the same way; the tokenizer,
    weights and optimizer state come from the folder. ``epochs`` raises the total number of epochs,
    ``patience`` changes early stopping, ``verbose`` the progress display; the rest stays as stored.
    """
    run = RunDir(run_dir)
    if not run.checkpoint.is_file():
        raise FileNotFoundError(
            f"{run.root} has no checkpoint.keras to resume from (the run stopped before its first epoch "
            "ended); start it again with --overwrite"
        )
    config, _ = run.read_config()
    config = replace(config, out=str(run.root))
    changes = {"epochs": epochs, "patience": patience, "verbose": verbose}
    config = replace(config, **{k: v for k, v in changes.items() if v is not None})
    history = read_json(run.metrics).get("epochs", [])
    tokenizer = Tokenizer.from_json(run.tokenizer.read_text(encoding="utf-8"))
    documents = load_documents(config.corpus.paths, config.corpus)
    train_docs, val_docs = split_documents(documents, config.corpus.val_fraction, config.corpus.split_seed)
    model = keras.saving.load_model(run.checkpoint)
    logger.info("resuming %s after epoch %d of %d", run.root, len(history), config.epochs)
    return _fit(run, config, model, tokenizer, train_docs, val_docs, history=history)


def versions() -> dict[str, str]:
    """Versions of the packages that shape a trained model."""
    import tensorflow as tf

    return {
        "nextword": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _claim_run_dir(run: RunDir, overwrite: bool) -> None:
    if run.root.exists() and not run.root.is_dir():
        raise RunExistsError(f"{run.root} exists and is not a folder; choose another --out")
    if run.root.is_dir() and any(run.root.iterdir()):
        if not overwrite:
            raise RunExistsError(
                f"run folder {run.root} is not empty; continue it with `nextword train --resume {run.root}` "
                "or replace it with --overwrite"
            )
        shutil.rmtree(run.root)


def _compile(model: keras.Model, config: TrainConfig) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm),
        # Averaged over real (weight 1) positions only: the padding at the end of the stream is ignored.
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        ],
    )


class _RunRecorder(keras.callbacks.Callback):
    """After each epoch: save the best model and the checkpoint, append metrics, stop early.

    Early stopping lives here rather than in ``keras.callbacks.EarlyStopping`` because its state (the
    best loss and the epochs since) must survive a resume; it is derived from the metrics history.
    Files are written best model, then checkpoint, then metrics, each atomically.
    """

    def __init__(self, run: RunDir, config: TrainConfig, history: list[dict[str, Any]], words_per_epoch: int):
        super().__init__()
        self.run, self.config, self.history, self.words_per_epoch = run, config, history, words_per_epoch
        self.stopped_early = False
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self._started
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in sorted(logs.items())}}
        entry["val_perplexity"] = math.exp(min(entry["val_loss"], 700.0))
        entry["seconds"] = round(seconds, 2)
        entry["train_words_per_second"] = round(self.words_per_epoch / seconds, 1)
        improved = not self.history or entry["val_loss"] < min(e["val_loss"] for e in self.history)
        self.history.append(entry)
        if improved:
            with atomic_path(self.run.model) as tmp:
                self.model.save(tmp)
        with atomic_path(self.run.checkpoint) as tmp:
            self.model.save(tmp)
        if self.config.patience and _epochs_since_best(self.history) >= self.config.patience:
            self.stopped_early = True
            self.model.stop_training = True
        atomic_write_json(self.run.metrics, metrics_document(self.history, self.stopped_early))


def _epochs_since_best(history: list[dict[str, Any]]) -> int:
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    return len(history) - 1 - best


def metrics_document(history: list[dict[str, Any]], stopped_early: bool) -> dict[str, Any]:
    """The metrics.json content: every epoch, plus the best one repeated under ``best``."""
    best = min(history, key=lambda e: e["val_loss"]) if history else None
    return {"epochs": history, "best": best, "stopped_early": stopped_early}


def _fit(
    run: RunDir,
    config: TrainConfig,
    model: keras.Model,
    tokenizer: Tokenizer,
    train_docs: list[str],
    val_docs: list[str],
    history: list[dict[str, Any]],
) -> TrainResult:
    train_stream = encode_stream(train_docs, tokenizer)
    val_stream = encode_stream(val_docs, tokenizer)
    logger.info("%d training words, %d validation words", len(train_stream) - 1, len(val_stream) - 1)
    train_batches = WindowBatches(
        train_stream, config.seq_len, config.batch_size, shuffle=True, seed=config.seed + len(history)
    )
    val_batches = WindowBatches(val_stream, config.seq_len, config.batch_size, shuffle=False)
    recorder = _RunRecorder(run, config, history, words_per_epoch=len(train_stream) - 1)
    already_stopped = bool(history) and config.patience and _epochs_since_best(history) >= config.patience
    if len(history) < config.epochs and not already_stopped:
        model.fit(
            train_batches,
            validation_data=val_batches,
            epochs=config.epochs,
            initial_epoch=len(history),
            callbacks=[recorder],
            verbose=config.verbose,
        )
    best = metrics_document(history, recorder.stopped_early)["best"]
    if best is None:
        raise RuntimeError("training finished no epoch")
    return TrainResult(
        run_dir=str(run.root),
        epochs=len(history),
        best_epoch=best["epoch"],
        best_val_loss=best["val_loss"],
        best_val_perplexity=best["val_perplexity"],
        stopped_early=recorder.stopped_early or bool(already_stopped),
    )
