"""Training a model on a corpus, and resuming an interrupted run."""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nextword.runtime import __version__
from nextword.runtime.tokenizer import Tokenizer

from .config import TrainConfig
from .corpus import count_documents, validation_indices
from .data import DiskWindows, build_vocabulary, encode_corpus, token_counts
from .dev import hold_out_dev
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
    out_of_time: bool = False  # the max_minutes budget ended this session


def train(config: TrainConfig, command: str | None = None) -> TrainResult:
    """Train a model as ``config`` says and fill the run folder ``config.out``.

    Steps: count the corpus's documents and split them by index, build the vocabulary from the training
    split, encode both splits into ``train.ids``/``val.ids``, train on windows read from those files
    with early stopping on validation loss, keep the best model. Each step streams the corpus files
    (see :mod:`nextword.train.data`): memory does not grow with the corpus. Everything the run needs
    later is written into the folder before the first epoch, so an interrupted run can be resumed with
    :func:`resume`. Raises ``ValueError`` subclasses for bad corpora, embeddings or settings before any
    training starts, and :class:`RunExistsError` if the folder holds a run and ``overwrite`` is off.
    ``command``, the command line that started the run, is recorded in ``config.json``.
    """
    if not config.out:
        raise ValueError("the run folder is not set: pass --out RUN_DIR")
    run = RunDir(config.out)
    corpus = replace(config.corpus, paths=tuple(str(Path(p).resolve()) for p in config.corpus.paths))
    config = replace(config, corpus=corpus)
    replacing = _check_run_dir(run, config)

    n_documents = count_documents(corpus.paths, corpus)  # pass 1
    val_idx = validation_indices(n_documents, corpus.val_fraction, corpus.split_seed)
    tokenizer = build_vocabulary(corpus, n_documents, val_idx, config.tokenizer)  # pass 2
    logger.info(
        "%d documents: %d for training, %d for validation; vocabulary %d words",
        n_documents,
        n_documents - len(val_idx),
        len(val_idx),
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

    if replacing:  # only now: a bad corpus or embeddings file above must not cost the old run
        run.clear()
    run.mark()
    atomic_write_text(run.tokenizer, tokenizer.to_json())
    encoded = encode_corpus(  # pass 3
        corpus, n_documents, val_idx, tokenizer, run.train_ids, run.val_ids, N_SAMPLE_PROMPTS
    )
    data = {
        "documents": encoded.documents,
        "train_documents": encoded.train_documents,
        "val_documents": encoded.val_documents,
        "train_words": encoded.train_words,
        "val_words": encoded.val_words,
    }
    if config.dev_fraction:  # before anything reads train.ids: these documents are never trained on
        data |= hold_out_dev(run, config, tokenizer.eod_id)
    facts = {"vocab_size": len(tokenizer), "data": data, "versions": versions(), "command": command}
    atomic_write_json(run.config, {**config.to_dict(), **facts})
    prompts = [" ".join(d.split()[:SAMPLE_PROMPT_WORDS]) for d in encoded.first_val_documents]
    atomic_write_json(run.samples, {"prompts": prompts})
    atomic_write_json(run.metrics, {"epochs": []})
    # Start the output layer at the unigram distribution: the first steps then refine it rather than
    # discover that "the" and "," are common.
    counts = token_counts(run.train_ids, len(tokenizer)) + 1.0
    model.get_layer("logits").bias.assign(np.log(counts / counts.sum()).astype(np.float32))
    return _fit(run, config, model, history=[], compile_model=True)


def resume(
    run_dir: str | Path,
    epochs: int | None = None,
    patience: int | None = None,
    verbose: int | None = None,
    max_minutes: float | None = None,
) -> TrainResult:
    """Continue an interrupted (or finished) run from its last checkpoint.

    The encoded corpus (``train.ids``, ``val.ids``), tokenizer, weights and optimizer state come from
    the folder; a folder without the two id files (written by a nextword before streamed training)
    gets them first, from the corpus files named in its config, split the same way. ``epochs`` raises
    the total number of epochs, ``patience`` changes early stopping, ``verbose`` the progress display,
    ``max_minutes`` gives this session a time budget (a budget of the first session does not carry
    over); the rest stays as stored. The learning-rate schedule continues as it was built when the run
    started. Files left half-done by a killed session are mended first (see :func:`_reconcile`).
    """
    run = RunDir(run_dir)
    if not run.checkpoint.is_file():
        raise FileNotFoundError(
            f"{run.root} has no checkpoint.keras to resume from (the run stopped before its first epoch "
            "ended); start it again with --overwrite"
        )
    config, stored = run.read_config()
    config = replace(config, out=str(run.root))
    if "dev_fraction" not in stored:  # a run from before development parts trained on all its documents
        config = replace(config, dev_fraction=0.0)
    changes = {"epochs": epochs, "patience": patience, "verbose": verbose}
    config = replace(config, max_minutes=max_minutes, **{k: v for k, v in changes.items() if v is not None})
    _remove_stale_temporaries(run)
    run.mark()  # a run from before markers existed gains one: --overwrite may then replace it
    encoded = run.train_ids.is_file() and run.val_ids.is_file()
    if not encoded or (config.dev_fraction and not run.dev_ids.is_file()):
        _encode_again(run, config, stored.get("data", {}))
    model = keras.saving.load_model(run.checkpoint)
    history = _reconcile(run, model, read_json(run.metrics).get("epochs", []))
    logger.info("resuming %s after epoch %d of %d", run.root, len(history), config.epochs)
    return _fit(run, config, model, history=history, compile_model=False)


def _encode_again(run: RunDir, config: TrainConfig, data: dict[str, Any]) -> None:
    """Write ``train.ids``/``val.ids`` of a run folder that lacks them, with the run's own tokenizer."""
    corpus = config.corpus
    logger.info("%s has no train.ids/val.ids: encoding the corpus %s again", run.root, list(corpus.paths))
    tokenizer = Tokenizer.from_json(run.tokenizer.read_text(encoding="utf-8"))
    n_documents = count_documents(corpus.paths, corpus)
    if data.get("documents") not in (None, n_documents):
        logger.warning(
            "the corpus now holds %d documents, %d when the run started: the split differs from the "
            "one training began with",
            n_documents,
            data["documents"],
        )
    val_idx = validation_indices(n_documents, corpus.val_fraction, corpus.split_seed)
    encode_corpus(corpus, n_documents, val_idx, tokenizer, run.train_ids, run.val_ids)
    if config.dev_fraction:
        hold_out_dev(run, config, tokenizer.eod_id)


def _remove_stale_temporaries(run: RunDir) -> None:
    """Delete temporary files that a killed session left behind (see ``files.atomic_path``)."""
    for stale in run.root.glob(".*.tmp*"):
        logger.info("removing %s, left by an interrupted session", stale.name)
        stale.unlink(missing_ok=True)


def _reconcile(run: RunDir, model: keras.Model, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make the metrics history and the best model agree with the checkpoint after a kill.

    Entries newer than the checkpoint (metrics written, checkpoint not) are dropped: that epoch is
    trained again. If the checkpoint's epoch is the best one, the best model is saved from it again,
    in case the kill came before the best model was written.
    """
    steps = int(model.optimizer.iterations)
    kept = [e for e in history if e.get("steps", 0) <= steps]
    if len(kept) < len(history):
        logger.warning(
            "dropping metrics of epoch(s) %s: their checkpoint was never written",
            [e["epoch"] for e in history[len(kept) :]],
        )
        atomic_write_json(run.metrics, metrics_document(kept, stopped_early=False))
    if kept and kept[-1].get("steps") == steps and min(kept, key=lambda e: e["val_loss"]) is kept[-1]:
        with atomic_path(run.model) as tmp:
            model.save(tmp)
    return kept


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


def _check_run_dir(run: RunDir, config: TrainConfig) -> bool:
    """Refuse a run folder that holds something, unless ``config.overwrite`` and it holds a previous run
    and nothing else (:meth:`RunDir.check_replaceable`); True if it is to be replaced. A corpus file
    inside the folder is refused either way: the run's files would be written beside it."""
    if run.root.exists() and not run.root.is_dir():
        raise RunExistsError(f"{run.root} exists and is not a folder; choose another --out")
    root = run.root.resolve()
    inside = [p for p in config.corpus.paths if root in Path(p).resolve().parents]
    if inside:
        raise RunExistsError(
            f"the corpus file {inside[0]} is inside the run folder {run.root}; keep corpora outside --out "
            "(a run folder holds only what training writes)"
        )
    if run.root.is_dir() and any(run.root.iterdir()):
        if not config.overwrite:
            raise RunExistsError(
                f"run folder {run.root} is not empty; continue it with `nextword train --resume {run.root}` "
                "or replace it with --overwrite"
            )
        run.check_replaceable()
        return True
    return False


def _compile(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.05
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=config.clipnorm),
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
    """After each epoch: append metrics, save the checkpoint and the best model, stop early.

    Early stopping lives here rather than in ``keras.callbacks.EarlyStopping`` because its state (the
    best loss and the epochs since) must survive a resume; it is derived from the metrics history.
    Files are written metrics, then checkpoint, then best model, each atomically; each metrics entry
    records the optimizer step count, so :func:`resume` can tell which entries the checkpoint holds
    and mend the files of an epoch that a kill interrupted.
    """

    def __init__(
        self,
        run: RunDir,
        config: TrainConfig,
        history: list[dict[str, Any]],
        words_per_epoch: int,
        budget: _TimeBudget | None,
    ):
        super().__init__()
        self.run, self.config, self.history, self.words_per_epoch = run, config, history, words_per_epoch
        self.budget = budget
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
        if self.budget is not None and self.budget.partial_epoch == epoch:  # cut short by the time budget
            entry["partial"] = True
            del entry["train_words_per_second"]
        entry["steps"] = int(self.model.optimizer.iterations)  # ties the entry to its checkpoint
        improved = not self.history or entry["val_loss"] < min(e["val_loss"] for e in self.history)
        self.history.append(entry)
        if self.config.patience and _epochs_since_best(self.history) >= self.config.patience:
            self.stopped_early = True
            self.model.stop_training = True
        atomic_write_json(self.run.metrics, metrics_document(self.history, self.stopped_early))
        with atomic_path(self.run.checkpoint) as tmp:
            self.model.save(tmp)
        if improved:
            with atomic_path(self.run.model) as tmp:
                self.model.save(tmp)


class _TimeBudget(keras.callbacks.Callback):
    """Ends training once ``seconds`` have passed: the epoch in progress stops after its current
    batch, is validated and saved like any other (its metrics entry says ``"partial": true``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.deadline = math.inf
        self.ran_out = False
        self.partial_epoch: int | None = None  # the epoch cut short, if the budget ended one mid-way
        self._epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.deadline = time.monotonic() + self.seconds

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.ran_out and time.monotonic() > self.deadline:
            self.ran_out = self.model.stop_training = True
            if batch + 1 < (self.params.get("steps") or math.inf):
                self.partial_epoch = self._epoch


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
    history: list[dict[str, Any]],
    compile_model: bool,
) -> TrainResult:
    # Windows come from train.ids/val.ids; each epoch's offset and order depend on (seed, epoch) only.
    train_windows = DiskWindows(
        run.train_ids, config.seq_len, config.batch_size, shuffle=True, seed=config.seed
    )
    val_windows = DiskWindows(run.val_ids, config.seq_len, config.batch_size, shuffle=False)
    logger.info("%d training words, %d validation words", train_windows.words, val_windows.words)
    if compile_model:
        _compile(model, config, steps_per_epoch=len(train_windows))
    budget = _TimeBudget(config.max_minutes * 60) if config.max_minutes else None
    recorder = _RunRecorder(run, config, history, train_windows.words, budget)
    callbacks: list[keras.callbacks.Callback] = [recorder] if budget is None else [budget, recorder]
    already_stopped = bool(history) and config.patience and _epochs_since_best(history) >= config.patience
    if len(history) < config.epochs and not already_stopped:
        model.fit(
            train_windows.dataset(first_epoch=len(history)),  # endless: one iterator for all epochs
            steps_per_epoch=len(train_windows),
            shuffle=False,  # the dataset shuffles its windows itself, epoch by epoch
            validation_data=val_windows.dataset(),
            epochs=config.epochs,
            initial_epoch=len(history),
            callbacks=callbacks,
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
        out_of_time=budget is not None and budget.ran_out,
    )
