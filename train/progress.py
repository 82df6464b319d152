"""How far a run folder got, read from its files alone (no TensorFlow), and what its user can do next:
continue it, start it again, or, when it has finished, export it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import SAVING, RunDir
from .replacing import RESTORED

__all__ = [
    "RunProgress",
    "aside_note",
    "counted",
    "existing_run_advice",
    "how_to_go_on",
    "planned_epochs",
    "restored_by",
    "resume_call",
    "run_progress",
]


def counted(count: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: a count and its noun, singular where the count is 1."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class RunProgress:
    """What a run folder holds: files at all, a checkpoint, and the epochs its metrics record."""

    has_files: bool
    has_checkpoint: bool
    epochs_done: int
    epochs_planned: int | None  # None: not recorded (a run whose planned epochs came from its corpus)
    stopped_early: bool
    epochs_configured: int | None = None  # config.json's epochs: what resume() trains to unless told
    saving: bool = False  # metrics.json's SAVING mark: an epoch's models were still being written

    @property
    def finished(self) -> bool:
        """Whether the run has trained every epoch it planned, or stopped early: ``resume`` would train
        nothing more unless given more ``epochs``. Not while an epoch's models were still being written
        when it stopped (export refuses it then; ``resume`` mends it)."""
        planned = self.epochs_planned
        return (
            self.has_checkpoint
            and not self.saving
            and (self.stopped_early or (planned is not None and self.epochs_done >= planned))
        )


def planned_epochs(metrics: Any, stored: Any) -> int | None:
    """The epochs a run plans: what its metrics record (``epochs_planned``: the last session's total,
    resumed with more ``epochs`` or planned from the corpus's size), else what ``config.json`` (``stored``)
    says it started with; None when neither says."""
    for document, key in ((metrics, "epochs_planned"), (stored, "epochs")):
        value = document.get(key) if isinstance(document, dict) else None
        if type(value) is int and value > 0:
            return value
    return None


def run_progress(run_dir: str | Path) -> RunProgress:
    """How far the run in ``run_dir`` got; damaged or missing files count as recording nothing."""
    run = RunDir(run_dir)
    metrics, stored = _json(run.metrics), _json(run.config)
    epochs = metrics.get("epochs") if isinstance(metrics, dict) else None
    return RunProgress(
        has_files=run.root.is_dir() and any(run.root.iterdir()),
        has_checkpoint=run.checkpoint.is_file(),
        epochs_done=len(epochs) if isinstance(epochs, list) else 0,
        epochs_planned=planned_epochs(metrics, stored),
        stopped_early=isinstance(metrics, dict) and metrics.get("stopped_early") is True,
        epochs_configured=planned_epochs(None, stored),
        saving=isinstance(metrics, dict) and metrics.get(SAVING) is not None,
    )


def resume_call(run_dir: str, planned: int | None, configured: int | None) -> str:
    """``nextword.train.resume(RUN)``, with ``epochs=`` where the run plans other epochs than the ones
    ``config.json`` keeps (a session resumed with more): resume() alone would train to those and stop."""
    more = f", epochs={planned}" if planned is not None and planned != configured else ""
    return f"nextword.train.resume({run_dir!r}{more})"


def stopped_short(run_dir: str, metrics: Any, stored: Any) -> str | None:
    """Why the run in ``run_dir`` (its ``metrics.json`` and ``config.json`` contents) is not finished,
    and how to finish it; None when it trained the epochs it planned, stopped early, or does not say
    what it planned. A run killed, interrupted or out of time mid-run has a best model all the same."""
    epochs = metrics.get("epochs") if isinstance(metrics, dict) else None
    planned = planned_epochs(metrics, stored)
    if not isinstance(epochs, list) or planned is None or metrics.get("stopped_early") is True:
        return None
    if len(epochs) >= planned:
        return None
    return (
        f"the run in {run_dir} stopped after {len(epochs)} of {counted(planned, 'epoch')} (killed, "
        f"interrupted or out of time), so this exports its best epoch so far; to train the rest, continue "
        f"it with `{resume_call(run_dir, planned, planned_epochs(None, stored))}` and export again"
    )


def restored_by(ended: BaseException | None, run_dir: str) -> bool:
    """Whether ``ended`` stopped an ``overwrite`` of ``run_dir`` before its first checkpoint, so that the
    folder holds the run it replaced again (:meth:`~.replacing.Replacing.discarded_before_checkpoint`)."""
    restored = getattr(ended, RESTORED, None)
    return isinstance(restored, str) and Path(restored) == Path(run_dir)


def how_to_go_on(run_dir: str, epochs: int | None = None, ended: BaseException | None = None) -> str:
    """What to do with the run in ``run_dir`` after a session ended, in the Python API's terms (the
    command line says them as flags): resume only a run that has a checkpoint and epochs left to train.
    ``epochs``: the epoch total the session was given, which the folder does not keep. ``ended``: what
    ended the session; where it stopped an ``overwrite`` before its first checkpoint, the folder holds
    the run it replaced again, and that is said first."""
    if restored_by(ended, run_dir):
        return (
            f"this run stopped before its first checkpoint, so its files were removed and {run_dir} holds "
            f"the run it replaced again, as it was. That run: {how_to_go_on(run_dir)}; to replace it, start "
            "this run again with overwrite=True"
        )
    progress = run_progress(run_dir)
    if progress.finished and (epochs is None or progress.epochs_done >= epochs):
        said = f"the run has finished ({_epochs(progress)}): {_finished_advice(run_dir, progress)}"
    elif progress.has_checkpoint:
        planned = epochs if epochs is not None else progress.epochs_planned
        configured = None if epochs is not None else progress.epochs_configured  # a total given: say it
        said = (
            f"the run keeps its last checkpoint: continue it with {resume_call(run_dir, planned, configured)}"
        )
    elif progress.has_files:
        said = f"{run_dir} {_NO_CHECKPOINT}: start the run again with overwrite=True"
    else:
        said = "nothing was kept: start the run again"
    return said + aside_note(run_dir)


def aside_note(run_dir: str) -> str:
    """Where a killed ``overwrite`` left the run it replaces (``.RUN.replaced`` beside the folder,
    :meth:`~.files.RunDir.set_aside`), and what to do with it; "" where there is none."""
    run = RunDir(run_dir)
    if not run.aside.is_dir():
        return ""
    if run.checkpoint.is_file():
        return (
            f"; the run it replaced is still kept in {run.aside}, which this one no longer needs: delete it"
        )
    return (
        f"; the run it replaced is kept in {run.aside}: to keep that one, move its files back into "
        f"{run_dir} (replacing those there), else delete {run.aside}"
    )


def existing_run_advice(run_dir: str) -> str:
    """Why a new run will not start in ``run_dir``, which holds a run, and what to do instead."""
    progress = run_progress(run_dir)
    if progress.finished:
        said = (
            f"run folder {run_dir} holds a finished run ({_epochs(progress)}): "
            f"{_finished_advice(run_dir, progress)}; or replace it with overwrite=True"
        )
    elif progress.has_checkpoint:
        call = resume_call(run_dir, progress.epochs_planned, progress.epochs_configured)
        said = (
            f"run folder {run_dir} holds an unfinished run; continue it with `{call}` or replace it "
            "with overwrite=True"
        )
    else:
        said = f"run folder {run_dir} {_NO_CHECKPOINT}; replace it with overwrite=True"
    return said + aside_note(run_dir)


_NO_CHECKPOINT = "holds no checkpoint (its run stopped before the first one), so there is nothing to resume"


def _finished_advice(run_dir: str, progress: RunProgress) -> str:
    return (
        f"export it with `nextword.export.export(ExportConfig({run_dir!r}, out='MODEL.onnx'))`, or train "
        f"it further with `nextword.train.resume({run_dir!r}, epochs={progress.epochs_done + 1})` (or more)"
    )


def _epochs(progress: RunProgress) -> str:
    done = progress.epochs_done
    if progress.stopped_early:
        return f"stopped early after {counted(done, 'epoch')}"
    planned = progress.epochs_planned
    return f"{done} of {counted(planned, 'epoch')}" if planned else counted(done, "epoch")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
