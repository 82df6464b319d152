"""What a run keeps after each epoch (and within one): metrics, the checkpoint, the best model."""

from __future__ import annotations

import math
from typing import Any

import keras

from .config import TrainConfig
from .files import SAVING, RunDir, atomic_path, atomic_write_json
from .loop import EpochResult
from .model import build_model, copy_weights

__all__ = [
    "PATIENCE_STEPS",
    "RunRecorder",
    "best_index",
    "epochs_since_best",
    "metrics_document",
    "patience_reached",
    "selection_key",
]

# Early stopping also waits this many optimizer steps after the best epoch: on a corpus of a few steps
# an epoch, a few epochs are a few steps, and the loss of its few development words is mostly noise.
PATIENCE_STEPS = 100


class RunRecorder:
    """After each epoch: append metrics, save the checkpoint and the best model, stop early.

    Early stopping lives here because its state (the best loss and the epochs since) must survive a
    resume; it is derived from the metrics history. The best epoch is the one with the lowest loss
    on the run's development part (:func:`selection_key`), so that the validation documents, whose
    figures the run and the model file report, choose nothing. Files are written metrics, then
    checkpoint, then best model, each atomically; each metrics entry records the optimizer step
    count, so a resumed run can tell which entries the checkpoint holds, mend the files of an epoch
    that a kill interrupted, and find where in its epoch a checkpoint taken every
    ``checkpoint_steps`` steps was taken. Until the checkpoint and the best model are written, the
    metrics carry :data:`~.files.SAVING` (the epoch being saved): export refuses such a run, whose
    best model may be older than its metrics say, until ``--resume`` mends it.

    ``writes`` is False on the workers of a multi-worker run other than the chief: they keep the same
    history (the logs are all-reduced, so every worker decides to stop at the same epoch) and write
    nothing. With mixed precision the best model is saved as its float32 twin (the weights are float32
    either way), which is what export converts and compares with ONNX.
    """

    def __init__(
        self, run: RunDir, config: TrainConfig, history: list[dict[str, Any]], vocab_size: int, writes: bool
    ) -> None:
        self.run, self.config, self.history, self.writes = run, config, history, writes
        self.stopped_early = False
        self._twin = build_model(config.model, vocab_size) if config.mixed_precision and writes else None

    def checkpoint(self, model: keras.Model) -> None:
        """Save the model and its optimizer state to ``checkpoint.keras`` (the chief only)."""
        if self.writes:
            with atomic_path(self.run.checkpoint) as tmp:
                model.save(tmp)
            self.run.drop_aside()  # the run this one replaced is no longer needed to lose nothing

    def save_best(self, model: keras.Model) -> None:
        """Save ``model.keras`` (float32, see the class docstring)."""
        if not self.writes:
            return
        if self._twin is not None:
            copy_weights(model, self._twin)
            model = self._twin
        with atomic_path(self.run.model) as tmp:
            model.save(tmp)

    def epoch_end(self, model: keras.Model, result: EpochResult) -> bool:
        """Record ``result``; True when early stopping ends the run."""
        entry: dict[str, Any] = {"epoch": result.epoch + 1, **dict(sorted(result.logs.items()))}
        entry["val_perplexity"] = math.exp(min(entry["val_loss"], 700.0))
        entry["seconds"] = round(result.seconds, 2)
        if result.partial:  # cut short by the time budget
            entry["partial"] = True
        else:
            entry["train_words_per_second"] = round(result.words / max(result.seconds, 1e-9), 1)
        if result.first_step:
            entry["resumed_at_step"] = result.first_step
        entry["steps"] = int(model.optimizer.iterations.numpy())  # ties the entry to its checkpoint
        self.history.append(entry)
        improved = best_index(self.history) == len(self.history) - 1
        last = self.config.epochs is not None and result.epoch + 1 >= self.config.epochs
        if patience_reached(self.history, self.config.patience) and not last:
            self.stopped_early = True  # not on the last epoch: the run ends there anyway
        if self.writes:  # marked as being saved until its checkpoint and best model are written
            document = metrics_document(self.history, self.stopped_early, self.config.epochs)
            atomic_write_json(self.run.metrics, {**document, SAVING: entry["epoch"]})
        self.checkpoint(model)
        if improved:
            self.save_best(model)
        if self.writes:
            atomic_write_json(self.run.metrics, document)
        return self.stopped_early


def selection_key(history: list[dict[str, Any]]) -> str:
    """The loss that chooses the best epoch of ``history``: ``dev_loss``, the development part's, when
    every epoch has one; else ``val_loss`` (a run without a development part, ``dev_fraction=0``, or
    one begun before epochs were scored on it, whose earlier epochs have only the validation loss)."""
    return "dev_loss" if history and all("dev_loss" in e for e in history) else "val_loss"


def best_index(history: list[dict[str, Any]]) -> int:
    """Where in ``history`` (not empty) the best epoch is: the lowest :func:`selection_key` loss, the
    earliest of equal ones."""
    key = selection_key(history)
    return min(range(len(history)), key=lambda i: history[i][key])


def epochs_since_best(history: list[dict[str, Any]]) -> int:
    """Epochs after the best one (:func:`best_index`)."""
    return len(history) - 1 - best_index(history)


def patience_reached(history: list[dict[str, Any]], patience: int) -> bool:
    """Whether early stopping ends a run whose epochs are ``history``: ``patience`` epochs (0: never
    stop early) have passed since the best one, and :data:`PATIENCE_STEPS` optimizer steps or more.
    Epochs recorded without a step count (runs from before steps were recorded) count as epochs alone.

    Without the steps, a corpus of 40 short documents (2 steps an epoch, 2 development documents) was
    stopped after 8 steps, when the noise of its development loss first outlasted two epochs."""
    if not patience or not history or epochs_since_best(history) < patience:
        return False
    last, at_best = history[-1].get("steps"), history[best_index(history)].get("steps")
    return last is None or at_best is None or last - at_best >= PATIENCE_STEPS


def metrics_document(
    history: list[dict[str, Any]], stopped_early: bool, planned: int | None = None
) -> dict[str, Any]:
    """The metrics.json content: every epoch, the epochs ``planned`` (when known: export and the model
    file tell a run that stopped short of them), the best epoch repeated under ``best``, and
    ``selected_by``, the loss that chose it (:func:`selection_key`)."""
    plan = {"epochs_planned": planned} if planned is not None else {}
    if not history:
        return {"epochs": history, **plan, "best": None, "stopped_early": stopped_early}
    return {
        "epochs": history,
        **plan,
        "best": history[best_index(history)],
        "selected_by": selection_key(history),
        "stopped_early": stopped_early,
    }
