"""nextword.train: read a corpus, build the vocabulary, train the Keras LSTM model.

Needs the ``train`` extra (``pip install "nextword[train]"``). Importing this package is cheap: the
configuration is pure Python, the corpus helpers come from :mod:`nextword.corpus` (numpy only), and
TensorFlow loads only when :func:`train` or :func:`resume` is first called.
"""

from __future__ import annotations

import os
from typing import Any

from nextword.corpus import CorpusConfig, CorpusError, load_documents, split_documents

from ._deps import EXPORT_STACK, TRAINING_STACK, MissingExtraError, require
from .config import ModelConfig, TrainConfig
from .distribute import DistributeError, PeerUnreachableError, WorkerLostError, parse_tf_config
from .files import NotARunError, RunBusyError, RunExistsError
from .result import TrainResult

__all__ = [
    "EXPORT_STACK",
    "TRAINING_STACK",
    "CorpusConfig",
    "CorpusError",
    "DistributeError",
    "MissingExtraError",
    "ModelConfig",
    "NotARunError",
    "PeerUnreachableError",
    "RunBusyError",
    "RunExistsError",
    "TrainConfig",
    "TrainResult",
    "WorkerLostError",
    "load_documents",
    "require",
    "resume",
    "split_documents",
    "train",
]


def train(config: TrainConfig, command: str | None = None) -> TrainResult:
    """Train a model; see :func:`nextword.train.trainer.train`."""
    if config.distribute == "multi-worker":  # a bad TF_CONFIG fails at once, before TensorFlow loads
        parse_tf_config(os.environ.get("TF_CONFIG"))
    require("training", TRAINING_STACK)
    from .trainer import train as _train

    return _train(config, command=command)


def resume(run_dir: str, **changes: Any) -> TrainResult:
    """Continue an interrupted run; ``changes`` are ``epochs``, ``patience``, ``verbose``,
    ``max_minutes``, ``distribute``, ``peer_timeout`` and ``checkpoint_steps``. See
    :func:`nextword.train.trainer.resume`."""
    require("training", TRAINING_STACK)
    from .trainer import resume as _resume

    return _resume(run_dir, **changes)
