"""One training session: the model built under the strategy, its state set, epochs trained.

A session starts either fresh (seeded weights, the pretrained vectors and the unigram bias) or from
a checkpoint loaded without a strategy. In a multi-worker run only the chief has the run folder, so
the chief decides the session's *plan* -- the optimizer (with its learning-rate schedule), the global
batch, the metrics history, the epochs and budget -- and broadcasts it with the weights; each worker
then builds the same model and trains its replicas' share of every step (see
:mod:`nextword.train.distribute` and :mod:`nextword.train.loop`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np

from .config import AUTO_EPOCHS, AUTO_STEPS, TrainConfig
from .data import DiskWindows
from .distribute import Workers, broadcast_json, broadcast_variables, check_same, lost_workers
from .files import RunDir
from .loop import TrainingLoop
from .model import build_model, copy_seed_states, copy_weights
from .progress import counted
from .recorder import RunRecorder, patience_reached
from .resumable import say_what_resuming_does

__all__ = [
    "RECORD_WINDOWS_ENV",
    "SESSION_FIELDS",
    "SessionResult",
    "Start",
    "build_optimizer",
    "chiefs_batch",
    "compile_model",
    "fit_session",
    "global_batch",
    "settings_fingerprint",
]

logger = logging.getLogger(__name__)

RECORD_WINDOWS_ENV = "NEXTWORD_RECORD_WINDOWS"  # a file: every training part read, for tests
# TrainConfig fields that say how a session runs rather than what is trained: a run continued with
# other values of these is the same run.
SESSION_FIELDS = frozenset(
    {
        "out",
        "overwrite",
        "verbose",
        "max_minutes",
        "epochs",
        "patience",
        "distribute",
        "peer_timeout",
        "checkpoint_steps",
    }
)


@dataclass(frozen=True)
class Start:
    """Where a session's weights come from: a checkpoint (``saved``, with its optimizer state), the
    weights of a base run's model (``weights``: fine-tuning, with a new optimizer), or a fresh model
    whose embedding starts at ``vectors`` (if given) and whose logits bias starts at ``bias``."""

    saved: keras.Model | None = None
    vectors: np.ndarray | None = None
    bias: np.ndarray | None = None
    weights: keras.Model | None = None


@dataclass(frozen=True)
class SessionResult:
    history: list[dict[str, Any]]
    stopped_early: bool
    out_of_time: bool


def global_batch(config: TrainConfig, stored: dict[str, Any], replicas: int) -> int:
    """The run's global batch: what it started with (``config.json``), else ``batch_size x replicas``.
    A run keeps its global batch whatever the replicas of a later session, which must divide it."""
    batch = int(stored.get("training", {}).get("global_batch", 0)) or config.batch_size * replicas
    if batch % replicas:
        raise ValueError(
            f"this run trains a global batch of {batch} windows, which {replicas} replicas cannot split "
            "evenly; continue it with a number of replicas that divides it"
        )
    return batch


def chiefs_batch(workers: Workers, config: TrainConfig, stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with the chief's global batch on every worker (see :func:`global_batch`). The other
    workers made their data again and know only ``batch_size x replicas``, which is not the run's where it
    goes on with other replicas than it started with (a run of one process continued by two workers):
    they read other windows than the chief, and the cluster failed on mismatched collectives."""
    if workers.count == 1:
        return stored
    training = stored.get("training")
    training = training if isinstance(training, dict) else {}
    batch = int(training.get("global_batch", 0)) or config.batch_size * workers.replicas
    with lost_workers(workers):
        batch = int(broadcast_json(workers, batch))
    return {**stored, "training": {**training, "global_batch": batch}}


def fit_session(
    run: RunDir,
    config: TrainConfig,
    workers: Workers,
    vocab_size: int,
    history: list[dict[str, Any]],
    start: Start,
    stored: dict[str, Any],
) -> SessionResult:
    """Train ``config.epochs`` epochs at most (fewer if ``history`` holds some) on ``run``'s id files."""
    batch = global_batch(config, stored, workers.replicas)
    data = stored.get("data")
    run.check_id_files(data if isinstance(data, dict) else {})  # what the run recorded of its id files
    record = os.environ.get(RECORD_WINDOWS_ENV)
    windows = DiskWindows(run.train_ids, config.seq_len, batch, shuffle=True, seed=config.seed, record=record)
    val_windows = DiskWindows(run.val_ids, config.seq_len, batch, shuffle=False)
    dev_windows = _dev_windows(run, config, batch)
    try:
        logger.info(
            "%d training words, %d validation words, %d development words; %s, global batch %d "
            "(%d per replica)",
            windows.words,
            val_windows.words,
            dev_windows.words if dev_windows else 0,
            counted(workers.replicas, "replica"),
            batch,
            batch // workers.replicas,
        )
        parts = [w for w in (windows, val_windows, dev_windows) if w is not None]
        _warn_padding(config.seq_len, parts)
        _warn_short_windows(config.seq_len, parts)
        if dev_windows is None:
            logger.warning(
                "no development part (%s): the best epoch and early stopping go by the validation loss, "
                "so the validation figures of this run are not quite held out",
                f"dev_fraction {config.dev_fraction:g} held out no training document"
                if config.dev_fraction
                else "dev_fraction 0",
            )
        first_plan = stored.get("epochs")  # a run's first plan, or None: planned from the corpus's size
        if not isinstance(first_plan, int) or isinstance(first_plan, bool):
            first_plan = replace(config, epochs=None).planned_epochs(len(windows))
        if config.epochs is None:  # from the corpus's size: the same on every worker, and when resumed
            config = replace(config, epochs=config.planned_epochs(len(windows)))
            logger.info(
                "%d epochs planned, %d training steps each (`epochs` not set: %d steps at least, in %d to "
                "%d epochs)",
                config.epochs,
                len(windows),
                AUTO_STEPS,
                *AUTO_EPOCHS,
            )
        if history and workers.is_chief:  # resumed: what it will train, now that the epochs are known
            say_what_resuming_does(config, first_plan, history)
        plan = {
            "history": history,
            "epochs": config.epochs,
            "patience": config.patience,
            "max_minutes": config.max_minutes,
            "optimizer": keras.optimizers.serialize(
                start.saved.optimizer
                if start.saved is not None
                else build_optimizer(config, len(windows), replicas=workers.replicas)
            ),
        }
        with lost_workers(workers):
            check_same(workers, _fingerprint(run, vocab_size))
            plan = broadcast_json(workers, plan)  # the chief's, on every worker
        epochs: int = plan["epochs"]  # planned above when not set
        config = replace(config, epochs=epochs, patience=plan["patience"], max_minutes=plan["max_minutes"])
        history = plan["history"]
        with workers.strategy.scope():
            keras.utils.set_random_seed(config.seed)
            model = build_model(config.model, vocab_size, mixed_precision=config.mixed_precision)
            if config.embeddings and config.freeze_embeddings:
                model.get_layer("embedding").trainable = False
            compile_model(model, keras.optimizers.deserialize(plan["optimizer"]))
            model.optimizer.build(model.trainable_variables)
        if workers.is_chief:
            _set_start(model, start)
        with lost_workers(workers):
            broadcast_variables(workers, [*model.variables, *model.optimizer.variables])

        steps = int(model.optimizer.iterations.numpy())
        first_epoch = len(history)
        first_step = steps - (history[-1].get("steps", 0) if history else 0)
        if not 0 <= first_step < len(windows):  # a checkpoint that does not fit the history: start the epoch
            logger.warning(
                "checkpoint at step %d does not fall within epoch %d: starting it over",
                steps,
                first_epoch + 1,
            )
            first_step = 0
        recorder = RunRecorder(run, config, history, vocab_size, writes=workers.is_chief)
        already_stopped = patience_reached(history, config.patience)
        loop = TrainingLoop(
            model,
            workers,
            len(windows),
            len(val_windows),
            batch * config.seq_len,
            dev_steps=len(dev_windows) if dev_windows else 0,
            checkpoint_steps=config.checkpoint_steps,
            budget=config.max_minutes * 60 if config.max_minutes else None,
            verbose=config.verbose,
        )
        if len(history) < epochs and not already_stopped:
            if first_step:
                logger.info("resuming epoch %d at step %d of %d", first_epoch + 1, first_step, len(windows))
            strategy = workers.strategy

            def shard(windows: DiskWindows, **where: int) -> Any:
                def pipeline(context: Any) -> Any:
                    ids = workers.replica_ids(context.input_pipeline_id, context.num_input_pipelines)
                    return windows.dataset(replicas=ids, num_replicas=workers.replicas, **where)

                return strategy.distribute_datasets_from_function(pipeline)

            with lost_workers(workers):
                loop.run(
                    shard(windows, first_epoch=first_epoch, first_step=first_step),
                    shard(val_windows),
                    first_epoch,
                    first_step,
                    epochs,
                    on_checkpoint=lambda: recorder.checkpoint(model),
                    on_epoch_end=lambda result: recorder.epoch_end(model, result),
                    dev_data=shard(dev_windows) if dev_windows else None,
                )
        return SessionResult(
            history=history,
            stopped_early=recorder.stopped_early or bool(already_stopped),
            out_of_time=loop.ran_out,
        )
    finally:  # however the session ends (an interrupt in a notebook too), the process keeps none of them
        for part in (windows, val_windows, dev_windows):
            if part is not None:
                part.release()


def _warn_padding(seq_len: int, parts: list[DiskWindows]) -> None:
    """Warn when ``seq_len`` is longer than every document: each window is then one whole document
    padded to ``seq_len``, and the longest document's length trains the same windows for less time and
    memory (a padded position is computed, then weighted 0)."""
    longest = max(part.longest for part in parts)
    if seq_len <= longest:
        return
    slots = sum(part.n_windows for part in parts) * seq_len
    logger.warning(
        "`seq_len` %d is longer than every document (the longest has %d inputs): each window is one whole "
        "document, padded, so %.0f%% of every batch is padding; `seq_len` %d trains the same windows "
        "in less time and memory",
        seq_len,
        longest,
        100 * (1 - sum(part.words for part in parts) / slots),
        longest,
    )


#: ``seq_len`` below which training is warned that its windows are far shorter than the context the
#: model is run on (generation, ``evaluate``)
SHORT_WINDOWS = 10


def _warn_short_windows(seq_len: int, parts: list[DiskWindows]) -> None:
    """Warn when ``seq_len`` is below :data:`SHORT_WINDOWS` and some document is longer: each window
    starts from a zero state, so the model learns from at most ``seq_len`` words before each one, while
    generation and ``evaluate`` carry the state across a whole text, states it never saw in training
    (and training's own validation figures, from the same short windows, look better than evaluate's)."""
    longest = max(part.longest for part in parts)
    if seq_len >= SHORT_WINDOWS or seq_len >= longest:
        return
    logger.warning(
        "`seq_len` %d is short: each training window starts from a zero state, so the model learns from "
        "at most %d word(s) of context, while generation and `nextword evaluate` carry the state across "
        "whole texts (the longest document has %d inputs); the validation figures of training come from "
        "the same short windows and will look better than evaluate's. A `seq_len` of %d or more (the "
        "default is %d) trains on the context the model is used with",
        seq_len,
        seq_len,
        longest,
        SHORT_WINDOWS,
        TrainConfig.seq_len,
    )


def _dev_windows(run: RunDir, config: TrainConfig, batch: int) -> DiskWindows | None:
    """The development part's windows, which choose the best epoch; None without one."""
    if not config.dev_fraction or not run.dev_ids.is_file() or run.dev_ids.stat().st_size < 8:
        return None  # none held out, or no document to hold out (an empty dev.ids)
    windows = DiskWindows(run.dev_ids, config.seq_len, batch, shuffle=False)
    return windows if len(windows) else None


def build_optimizer(
    config: TrainConfig, steps_per_epoch: int, *, replicas: int = 1
) -> keras.optimizers.Optimizer:
    """The trainer's optimizer for a fresh run: Adam at ``config.learning_rate_for(replicas)`` with
    ``config.clipnorm``, cosine-decayed over the planned epochs of ``steps_per_epoch`` steps
    unless ``config.lr_schedule`` is constant; wrapped for loss scaling under mixed precision."""
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate_for(
        replicas
    )
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=config.planned_epochs(steps_per_epoch) * steps_per_epoch, alpha=0.05
        )
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=config.clipnorm)
    return keras.optimizers.LossScaleOptimizer(optimizer) if config.mixed_precision else optimizer


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Compile ``model`` with ``optimizer`` and the trainer's loss and metrics, as the run's saved files
    expect: cross-entropy on logits averaged over the real (weight 1) positions, accuracy and top-5
    accuracy. The trainer's own loop computes the same loss and metrics itself; with them, ``model.fit``
    on a :class:`~nextword.train.data.DiskWindows` dataset optimizes the trainer's objective."""
    model.compile(
        optimizer=optimizer,
        # Averaged over real (weight 1) positions only: the padding at the end of the stream is ignored.
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        ],
    )


def _set_start(model: keras.Model, start: Start) -> None:
    """Put the session's starting state into ``model`` (on the chief; the others get it by broadcast)."""
    if start.weights is not None:
        copy_weights(start.weights, model)
        return
    if start.saved is None:
        if start.vectors is not None:
            model.get_layer("embedding").embeddings.assign(start.vectors)
        if start.bias is not None:
            model.get_layer("logits").bias.assign(start.bias)
        return
    copy_weights(start.saved, model)
    if not copy_seed_states(start.saved, model):
        logger.warning(
            "the checkpoint holds no random state of the dropout layers (an earlier nextword wrote it): "
            "their masks start afresh, so this run will differ slightly from the same run left "
            "uninterrupted; runs started with this nextword resume exactly"
        )
    mine, saved = model.optimizer.variables, start.saved.optimizer.variables
    if [tuple(v.shape) for v in mine] != [tuple(v.shape) for v in saved]:
        raise ValueError("the checkpoint's optimizer state does not fit this model; start the run again")
    for target, source in zip(mine, saved, strict=True):
        target.assign(source.numpy())


def settings_fingerprint(config: TrainConfig) -> dict[str, int]:
    """A fingerprint of each training setting every worker must share (the session's own fields and
    the corpus paths, which may differ between machines, aside), by name: ``learning_rate``,
    ``corpus.val_fraction``, ``model.lstm_units``..."""
    settings = {k: v for k, v in config.to_dict().items() if k not in SESSION_FIELDS}
    for part in [k for k, v in settings.items() if isinstance(v, dict)]:  # corpus, tokenizer, model
        settings |= {
            f"{part}.{k}": v for k, v in settings.pop(part).items() if (part, k) != ("corpus", "paths")
        }
    return {name: _digest(repr(value).encode()) for name, value in settings.items()}


def _fingerprint(run: RunDir, vocab_size: int) -> dict[str, int]:
    """What every worker must share besides the settings (which ``confirm_workers`` compared before
    anything was read): the vocabulary and the encoded splits."""
    return {
        "vocabulary": _digest(run.tokenizer.read_bytes()) + vocab_size,
        "training split": run.train_ids.stat().st_size,
        "validation split": run.val_ids.stat().st_size,
        "development part": run.dev_ids.stat().st_size if run.dev_ids.is_file() else 0,
    }


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
