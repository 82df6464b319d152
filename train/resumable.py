"""What ``--resume`` reads of a run folder, and mends: the checks of the folder, its checkpoint, its
metrics history, and the files a kill left disagreeing."""

from __future__ import annotations

import logging
import zipfile
import zlib
from typing import Any

import keras

from nextword.runtime.versions import version_tuple

from .config import TrainConfig
from .files import SAVING, RunDir, atomic_write_json, read_json
from .progress import counted
from .recorder import RunRecorder, best_index, epochs_since_best, metrics_document, patience_reached

__all__ = [
    "load_checkpoint",
    "read_history",
    "reconcile",
    "remove_stale_temporaries",
    "say_what_resuming_does",
]

logger = logging.getLogger(__name__)


def load_checkpoint(run: RunDir) -> keras.Model:
    """The run's ``checkpoint.keras`` with its optimizer state; ``ValueError`` naming the file and the
    fix when it is damaged (a kill cannot leave it so, as it is written atomically, but a full disk
    when copying the folder, or an edit, can)."""
    path = run.checkpoint

    def damaged(why: str) -> ValueError:
        return ValueError(
            f"{path} is damaged (not a readable .keras zip file: {why}); restore it from a copy of the "
            "run folder, or start the run again with overwrite=True"
        )

    with path.open("rb") as file:  # one that cannot be read: an OSError naming it, not "damaged"
        is_zip = zipfile.is_zipfile(file)
    if not is_zip:
        raise damaged("truncated or overwritten")
    try:
        return keras.saving.load_model(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise damaged(f"{type(exc).__name__}: {reason}") from None


def remove_stale_temporaries(run: RunDir) -> None:
    """Delete temporary files that a killed session left behind (see ``files.atomic_path``)."""
    for stale in run.temporaries():
        logger.info("removing %s, left by an interrupted session", stale.name)
        stale.unlink(missing_ok=True)


def read_history(run: RunDir) -> tuple[list[dict[str, Any]], Any]:
    """metrics.json's epochs and its :data:`~.files.SAVING` mark, checked for the shape training
    reads: a damaged or crafted file is a ``ValueError`` naming it, not a traceback."""
    metrics = read_json(run.metrics)
    epochs = metrics.get("epochs", []) if isinstance(metrics, dict) else None
    if not isinstance(epochs, list):
        raise ValueError(f"{run.metrics} does not hold a run's metrics (a JSON object with a list of epochs)")
    for i, entry in enumerate(epochs):
        keys = ("epoch", "val_loss", "val_perplexity", "dev_loss", "steps")
        read = (
            [entry.get(k, 0) for k in keys]
            if isinstance(entry, dict) and {"epoch", "val_loss"} <= entry.keys()
            else [None]
        )
        if not all(_is_number(v) for v in read):
            raise ValueError(
                f"{run.metrics}: epoch entry {i} is damaged (epoch, val_loss, dev_loss or steps missing "
                "or not a number)"
            )
    return epochs, metrics.get(SAVING)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def reconcile(
    run: RunDir,
    model: keras.Model,
    history: list[dict[str, Any]],
    recorder: RunRecorder,
    saving: Any = None,
    *,
    marked: bool = True,
) -> list[dict[str, Any]]:
    """Make the metrics history and the best model agree with the checkpoint after a kill.

    Entries newer than the checkpoint (metrics written, checkpoint not) are dropped: that epoch is
    trained again. If the checkpoint's epoch is the best one and the kill may have come before the best
    model was written (:func:`_best_may_be_older`), the best model is saved from it again. ``saving`` is
    the metrics' mark of an epoch whose saving a kill may have cut short (:data:`~.files.SAVING`); the
    metrics are written again without it. ``marked``: the run comes from a release that writes that
    mark (:func:`marks_saving`).
    """
    steps = int(model.optimizer.iterations.numpy())
    kept = [e for e in history if e.get("steps", 0) <= steps]
    if len(kept) < len(history):
        logger.warning(
            "dropping metrics of epoch(s) %s: their checkpoint was never written",
            [e["epoch"] for e in history[len(kept) :]],
        )
    at_best = bool(kept) and kept[-1].get("steps") == steps and best_index(kept) == len(kept) - 1
    if at_best and _best_may_be_older(run, saving, marked):
        recorder.save_best(model)
    if len(kept) < len(history) or saving is not None:  # the files agree again: say so
        atomic_write_json(run.metrics, metrics_document(kept, False, recorder.config.epochs))
    return kept


def marks_saving(stored: dict[str, Any]) -> bool:
    """Whether the run whose config.json is ``stored`` comes from a release that marks an epoch being
    saved (:data:`~.files.SAVING`): 0.2.0 and later. Trees that called themselves 0.1.0 wrote it only
    from some commit on, so a 0.1.0 run, or one that records no version, may lack it."""
    return version_tuple(str((stored.get("versions") or {}).get("nextword", "0")))[:2] >= (0, 2)


def _best_may_be_older(run: RunDir, saving: Any, marked: bool) -> bool:
    """Whether ``model.keras`` may hold an earlier epoch than the checkpoint, itself of the best epoch:
    an epoch's saving cut short (``saving``), no ``model.keras``, or, in a run from a release that wrote
    no such mark (``marked`` false), a ``model.keras`` written before the checkpoint (an epoch's end
    writes it after; a copy of the run that kept no times may say otherwise, and costs a rewrite). A
    resume that trains nothing wrote it again each time, in this release's layout, which the release
    that trained the run then could not read."""
    if saving is not None or not run.model.is_file():
        return True
    return not marked and run.model.stat().st_mtime_ns < run.checkpoint.stat().st_mtime_ns


def say_what_resuming_does(config: TrainConfig, first_plan: int, history: list[dict[str, Any]]) -> None:
    """Warn where a resumed run will train nothing, or train epochs its learning rate no longer moves
    (``config.epochs``: the epochs planned now; ``first_plan``: those of the run's first session, which
    its learning-rate schedule spans, whether given or planned from the corpus's size)."""
    done = len(history)
    if config.epochs is not None and done >= config.epochs:
        logger.warning(
            "the run has finished its %s: nothing to train; resume with `epochs` above %d to train more",
            counted(done, "epoch"),
            done,
        )
    elif history and patience_reached(history, config.patience):
        logger.warning(
            "the run stopped early (no better development loss for %s): nothing to train; resume with "
            "a larger `patience` (above %d), or patience=0 to train on regardless",
            counted(config.patience, "epoch"),
            epochs_since_best(history),
        )
    if config.lr_schedule == "cosine" and config.epochs and config.epochs > first_plan:
        logger.warning(
            "the learning rate decays over the run's first plan, %s: epochs past them train at "
            "its final rate (5%% of `learning_rate`)",
            counted(first_plan, "epoch"),
        )
