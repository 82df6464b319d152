"""nextword.train: read a corpus, build the vocabulary, train the Keras LSTM model.

Needs the ``train`` extra (``pip install "nextword[train]"``). Importing this package is cheap: the
configuration and corpus helpers are pure Python, and TensorFlow loads only when :func:`train` or
:func:`resume` is first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._deps import EXPORT_STACK, TRAINING_STACK, MissingExtraError, require
from .config import CorpusConfig, ModelConfig, TrainConfig
from .corpus import CorpusError, load_documents, split_documents

if TYPE_CHECKING:
    from .trainer import TrainResult

__all__ = [
    "EXPORT_STACK",
    "TRAINING_STACK",
    "CorpusConfig",
    "CorpusError",
    "MissingExtraError",
    "ModelConfig",
    "TrainConfig",
    "TrainResult",
    "load_documents",
    "require",
    "resume",
    "split_documents",
    "train",
]


def train(config: TrainConfig, command: str | None = None) -> TrainResult:
    """Train a model; see :func:`nextword.train.trainer.train`."""
    require("training", TRAINING_STACK)
    from .trainer import train as _train

    return _train(config, command=command)


def resume(run_dir: str, **changes: Any) -> TrainResult:
    """Continue an interrupted run; ``changes`` are ``epochs``, ``patience``, ``verbose`` and
    ``max_minutes``. See :func:`nextword.train.trainer.resume`."""
    require("training", TRAINING_STACK)
    from .trainer import resume as _resume

    return _resume(run_dir, **changes)


def __getattr__(name: str) -> Any:
    if name == "TrainResult":
        from .trainer import TrainResult

        return TrainResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
