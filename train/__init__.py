"""nextword.train: read a corpus, build the vocabulary, train the Keras LSTM model.

Needs the ``train`` extra (``pip install "nextword[train]"``). Importing this package is cheap: the
configuration is pure Python, the corpus helpers come from :mod:`nextword.corpus` (numpy only), and
TensorFlow loads only when :func:`train` or :func:`resume` is first called.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from typing import Any

from nextword.corpus import CorpusConfig, CorpusError, load_documents, split_documents
from nextword.runtime.checks import wrong_type

from ._deps import (
    EXPORT_STACK,
    TRAINING_STACK,
    MissingExtraError,
    install_command,
    require,
    require_installed,
)
from .config import ModelConfig, TrainConfig
from .distribute import DistributeError, PeerUnreachableError, WorkerLostError
from .files import NotARunError, RunBusyError, RunExistsError
from .prechecks import check_resume, check_train
from .progress import how_to_go_on
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
    "install_command",
    "load_documents",
    "require",
    "require_installed",
    "resume",
    "split_documents",
    "train",
]


def train(config: TrainConfig, command: str | None = None, *, given: Collection[str] = ()) -> TrainResult:
    """Train a model as ``config`` says and fill the run folder ``config.out`` (the model, its tokenizer,
    config, metrics and checkpoints); returns where the run ended. TensorFlow loads on the first call.

    The corpus is deduplicated and split by document, the vocabulary built from the training side, and the
    best epoch (by the development part's loss; the validation loss when ``dev_fraction=0``) kept as
    ``model.keras``, which :func:`nextword.export.export` converts. Bad corpora or settings raise
    ``ValueError`` subclasses before training starts (a ``config`` that is not a :class:`TrainConfig`, a
    :class:`~nextword.runtime.errors.WrongTypeError`); a folder that holds a run raises
    :class:`RunExistsError` unless ``config.overwrite``, one another process trains in (or an export reads)
    :class:`RunBusyError`; without the ``train`` extra, :class:`MissingExtraError`. An interrupt (Ctrl-C, a
    notebook's stop button) leaves the folder resumable with :func:`resume` once it has a checkpoint, and
    says so in a note on the ``KeyboardInterrupt``; before the first checkpoint an interrupt, like any
    failure, removes what the run wrote, and the note says to start it again. ``given``: with
    ``init_from``, the settings given (``"model.dropout"``...), which keep their value over the base's
    even where it is the default (else a default value counts as not given). The whole story:
    :func:`nextword.train.trainer.train`."""
    if not isinstance(config, TrainConfig):  # before TensorFlow loads
        raise wrong_type(
            "config", "a TrainConfig (TrainConfig(corpus=CorpusConfig(paths=...), out=...))", config
        )
    require_installed("training", TRAINING_STACK)
    check_train(config)  # a missing corpus file, a bad TF_CONFIG...: said before TensorFlow loads
    require("training", TRAINING_STACK)
    from .trainer import train as _train

    with _interruptible(config.out):
        return _train(config, command=command, given=given)


def resume(run_dir: str, **changes: Any) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint, with the corpus encoding, tokenizer,
    weights and optimizer state it holds, and return a :class:`TrainResult`. A finished run continues
    too: with ``epochs`` raised it trains on (unless early stopping ended it: raise ``patience`` too),
    else it returns its result at once. ``changes``: ``epochs`` (the new total), ``patience``,
    ``verbose``, ``max_minutes`` (this session's budget), ``distribute``, ``peer_timeout`` and
    ``checkpoint_steps``; every other setting stays as stored, and another name is a ``TypeError``.

    Raises :class:`MissingExtraError` without the ``train`` extra; ``FileNotFoundError`` for a folder that
    does not exist or has no checkpoint, ``NotADirectoryError`` for a file, :class:`NotARunError` for a folder
    that is no run; ``ValueError`` for a change out of range, a damaged checkpoint or id file, and
    (:class:`DistributeError`) a multi-worker run without ``TF_CONFIG``; :class:`RunBusyError` while another
    process trains in it or an export reads it. An interrupt leaves it resumable again (a note on the
    ``KeyboardInterrupt`` says how). The whole story: :func:`nextword.train.trainer.resume`."""
    require_installed("training", TRAINING_STACK)
    check_resume(run_dir, **changes)  # the same refusals, before TensorFlow loads
    require("training", TRAINING_STACK)
    from .trainer import resume as _resume

    with _interruptible(str(run_dir), changes.get("epochs")):
        return _resume(run_dir, **changes)


@contextlib.contextmanager
def _interruptible(run_dir: str, epochs: int | None = None) -> Iterator[None]:
    """A ``KeyboardInterrupt`` (Ctrl-C, a notebook's interrupt button) goes on as it is, with a note that
    says how to go on with the run in ``run_dir``, as ``nextword train`` says on the command line. The
    process stays usable: the folder is released and another run can start at once."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if hasattr(exc, "add_note"):  # Python 3.11 and later
            exc.add_note(f"nextword: training interrupted; {how_to_go_on(run_dir, epochs, exc)}")
        raise
