"""What :func:`~nextword.train.train` and :func:`~nextword.train.resume` return."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainResult"]


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
    selected_by: str = "val_loss"  # the loss that chose the best epoch: dev_loss or val_loss
    chief: bool = True  # False on the other workers of a multi-worker run: the chief wrote the run folder
