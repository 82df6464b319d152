"""What :func:`~nextword.train.train` and :func:`~nextword.train.resume` return."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainResult"]


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended: the figures of its best epoch, the one whose model ``run_dir/model.keras``
    holds and :func:`nextword.export.export` converts. Every epoch's figures are in
    ``run_dir/metrics.json``.

    Attributes:
        run_dir: the run folder (``TrainConfig.out``); pass it to ``resume`` or ``ExportConfig``.
        epochs: epochs finished in total, earlier sessions of a resumed run included.
        best_epoch: the best epoch (1-based): the lowest loss on the development part, or on the
            validation documents without one (``selected_by`` says which).
        best_val_loss: the validation loss (mean cross-entropy per word, nats) of the best epoch.
        best_val_perplexity: ``exp(best_val_loss)``.
        stopped_early: early stopping (``patience``) ended the run before its planned epochs.
        out_of_time: the ``max_minutes`` budget ended this session; ``resume`` goes on.
        selected_by: the loss that chose the best epoch, ``"dev_loss"`` or ``"val_loss"``.
        chief: False on the workers of a multi-worker run other than the chief, which wrote the folder.
    """

    run_dir: str
    epochs: int  # epochs finished in total, earlier sessions of a resumed run included
    best_epoch: int
    best_val_loss: float
    best_val_perplexity: float
    stopped_early: bool
    out_of_time: bool = False  # the max_minutes budget ended this session
    selected_by: str = "val_loss"  # the loss that chose the best epoch: dev_loss or val_loss
    chief: bool = True  # False on the other workers of a multi-worker run: the chief wrote the run folder
