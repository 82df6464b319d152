"""The training loop: one custom loop for every strategy of :mod:`nextword.train.distribute`.

Why not ``model.fit``: under ``tf.distribute``, Keras 3.15's ``fit`` (a) clips each replica's gradient
before the replicas' gradients are summed, so ``clipnorm`` bounds every replica's share rather than the
gradient of the global batch; (b) averages per-replica means of the masked loss, so a replica whose
windows hold few real words weighs as much as one whose windows are full; (c) fails under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585: its symbolic build and its metric reduction
both break on per-replica values). This loop computes each step's loss as the mean over the real words
of the *global* batch, sums the replicas' gradients, then lets the optimizer clip and apply them: N
replicas take the step that one process takes on the same global batch, up to floating-point
summation order.

Every epoch reports, over the words it trained: ``loss`` (mean cross-entropy per word), ``accuracy``
and ``top5_accuracy``, and the same three on the validation windows (``val_*``) and, when the run
has a development part, on its windows (``dev_*``), all weighted per word, never per batch. Per step
the replicas exchange one all-reduce, of the gradients together with the step's word count, metric
sums and time-budget flags: when any worker's budget runs out, every worker stops after the same
step.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from .distribute import Workers

__all__ = ["EpochResult", "TrainingLoop"]

logger = logging.getLogger(__name__)

METRICS = ("loss", "accuracy", "top5_accuracy")


@dataclass(frozen=True)
class EpochResult:
    """What one epoch of a session did (the part after ``first_step`` when it resumed mid-epoch)."""

    epoch: int  # 0-based
    logs: dict[str, float]  # METRICS and their val_ (and dev_) twins
    seconds: float
    words: float  # positions trained in this session's part of the epoch
    first_step: int  # > 0: resumed from a checkpoint taken within the epoch
    steps_done: int  # steps of the epoch trained, first_step included
    partial: bool  # cut short by the time budget


def _already_summed(grads_and_vars: Any) -> Any:
    return grads_and_vars


class TrainingLoop:
    """Trains ``model`` (compiled, built under ``workers.strategy``) epoch by epoch.

    ``val_steps`` and ``dev_steps`` are the steps of one pass over the validation and the
    development windows (0: the run has no development part). ``positions_per_step`` (global batch x
    window length) only scales the loss before it is differentiated. ``budget`` seconds end training
    after the step during which they run out.
    """

    def __init__(
        self,
        model: keras.Model,
        workers: Workers,
        steps_per_epoch: int,
        val_steps: int,
        positions_per_step: int,
        *,
        dev_steps: int = 0,
        checkpoint_steps: int = 0,
        budget: float | None = None,
        verbose: int = 1,
    ) -> None:
        self.model, self.workers = model, workers
        self.steps_per_epoch, self.val_steps, self.dev_steps = steps_per_epoch, val_steps, dev_steps
        self.positions_per_step = positions_per_step  # global batch x seq_len
        self.checkpoint_steps, self.budget, self.verbose = checkpoint_steps, budget, verbose
        self.ran_out = False
        # The gradients reach the optimizer summed over the replicas (see the module docstring):
        # Keras must not sum them again.
        optimizer = model.optimizer
        for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
            if opt is not None:
                opt._all_reduce_sum_gradients = _already_summed
        self._train_step, self._eval_step = self._compile_steps()

    def _compile_steps(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        import tensorflow as tf

        model, strategy = self.model, self.workers.strategy
        optimizer, variables = model.optimizer, model.trainable_variables
        total = tf.distribute.ReduceOp.SUM

        def sums(y: tf.Tensor, logits: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
            """(4,): summed loss, words, hits and top-5 hits of one replica's batch."""
            losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)  # (B, T)
            hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)  # (B, T)
            flat = tf.reshape(logits, [-1, tf.shape(logits)[-1]])  # (B*T, V)
            top5 = tf.cast(tf.math.in_top_k(tf.reshape(y, [-1]), flat, 5), tf.float32)  # (B*T,)
            top5 = tf.reshape(top5, tf.shape(y))  # (B, T)
            return tf.stack([tf.reduce_sum(s * w) for s in (losses, tf.ones_like(w), hits, top5)])

        positions = float(self.positions_per_step)

        def replica_train(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor, stop: tf.Tensor) -> tf.Tensor:
            ctx = tf.distribute.get_replica_context()
            with tf.GradientTape() as tape:
                local = sums(y, model(x, training=True), w)  # (4,)
                # Divided by a constant for now (the global batch's positions, real or padding), so
                # the loss keeps the scale of a mean (float16 gradients must not overflow)...
                scaled = optimizer.scale_loss(local[0] / positions)
            grads = tape.gradient(scaled, variables)
            # ... one all-reduce sums the gradients with the step's metric sums and stop flags (one
            # replica has nothing to sum: TensorFlow's gradient registry would keep every traced
            # all-reduce, each train() in a notebook's process 6 MB more) ...
            summed = [*grads, tf.concat([local, [stop]], 0)]
            *grads, totals = ctx.all_reduce(total, summed) if ctx.num_replicas_in_sync > 1 else summed
            # ... and the sum becomes the mean over the real words of the global batch.
            factor = positions / tf.maximum(totals[1], 1.0)
            grads = [_scaled(g, factor) for g in grads]
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return totals  # (5,) the same on every replica

        def first(per_replica: Any) -> tf.Tensor:
            return strategy.experimental_local_results(per_replica)[0]

        def replica_eval(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
            return sums(y, model(x, training=False), w)

        @tf.function
        def train_step(iterator: Any, stop: tf.Tensor) -> tf.Tensor:
            x, y, w = next(iterator)
            return first(strategy.run(replica_train, args=(x, y, w, stop)))

        @tf.function
        def eval_step(iterator: Any) -> tf.Tensor:
            return strategy.reduce(total, strategy.run(replica_eval, args=next(iterator)), axis=None)

        return train_step, eval_step

    def run(
        self,
        train_data: Any,
        val_data: Any,
        first_epoch: int,
        first_step: int,
        epochs: int,
        on_checkpoint: Callable[[], None],
        on_epoch_end: Callable[[EpochResult], bool],
        dev_data: Any = None,
    ) -> None:
        """Train epochs ``first_epoch`` (from step ``first_step``) to ``epochs - 1``.

        ``train_data`` is the endless distributed dataset starting at that step; ``val_data`` a finite
        one of ``val_steps`` steps, read again for every validation; ``dev_data`` the same for the
        development part (``dev_steps`` steps), or None. ``on_checkpoint()`` is called
        every ``checkpoint_steps`` steps within an epoch (not after its last step: the epoch's end
        saves then), ``on_epoch_end(result)`` after each epoch's validation, returning True to stop.
        """
        import tensorflow as tf

        deadline = time.monotonic() + self.budget if self.budget else math.inf
        iterator = iter(train_data)
        show = self.verbose if self.workers.is_chief else 0
        if show == 1 and not _redraws(sys.stdout):  # a bar redrawn in a log file is one endless line
            show = 2
        evaluated = [("val", val_data, self.val_steps)]
        if dev_data is not None and self.dev_steps:
            evaluated.append(("dev", dev_data, self.dev_steps))
        for epoch in range(first_epoch, epochs):
            start = first_step if epoch == first_epoch else 0
            if show:  # as Keras's fit heads each epoch's bar: its line alone does not say which epoch it is
                _say(f"Epoch {epoch + 1}/{epochs}")
            progress = keras.utils.Progbar(
                self.steps_per_epoch,
                verbose=show,
                stateful_metrics=[*METRICS, *(f"{p}_{m}" for p, _, _ in evaluated for m in METRICS)],
            )
            began, totals, step = time.perf_counter(), np.zeros(5), start
            for step in range(start, self.steps_per_epoch):
                stop = tf.constant(1.0 if time.monotonic() > deadline else 0.0)
                totals += self._train_step(iterator, stop).numpy()
                progress.update(step + 1, list(_averages(totals).items()), finalize=False)
                if totals[4] > 0:  # some worker's budget ran out: every worker stops here
                    self.ran_out = True
                    break
                done = step + 1
                if (
                    self.checkpoint_steps
                    and done % self.checkpoint_steps == 0
                    and done < self.steps_per_epoch
                ):
                    on_checkpoint()
            seconds = time.perf_counter() - began
            logs = _averages(totals)
            for prefix, data, steps in evaluated:
                logs |= {f"{prefix}_{k}": v for k, v in _averages(self._evaluate(data, steps)).items()}
            progress.update(step + 1, list(logs.items()), finalize=True)
            result = EpochResult(
                epoch=epoch,
                logs=logs,
                seconds=seconds,
                words=float(totals[1]),
                first_step=start,
                steps_done=step + 1,
                partial=step + 1 < self.steps_per_epoch,
            )
            if on_epoch_end(result) or self.ran_out:
                return

    def _evaluate(self, data: Any, steps: int) -> np.ndarray:
        """(4,): summed loss, words, hits and top-5 hits over ``steps`` steps of ``data``."""
        sums, iterator = np.zeros(4), iter(data)
        for _ in range(steps):
            sums += self._eval_step(iterator).numpy()
        return sums


def _say(line: str) -> None:
    """A line of the progress display, written where Keras's progress bar writes: standard output, or
    the log when Keras's interactive logging is off (``keras.config.disable_interactive_logging``)."""
    if keras.config.is_interactive_logging_enabled():
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    else:
        logger.info("%s", line)


def _scaled(gradient: Any, factor: Any) -> Any:
    """``gradient * factor``, for a dense gradient or an embedding's ``IndexedSlices``."""
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def _averages(sums: np.ndarray) -> dict[str, float]:
    """Per-word means from (loss, words, hits, top-5 hits, ...) sums."""
    words = max(float(sums[1]), 1.0)
    return {name: float(sums[i]) / words for name, i in zip(METRICS, (0, 2, 3), strict=True)}


def _redraws(stream: object) -> bool:
    """Whether a progress bar written to ``stream`` can redraw its line: a terminal, or a Jupyter
    kernel's output (no terminal, but a notebook cell that honours carriage returns, as Keras's own
    progress bar assumes there)."""
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty()) or "ipykernel" in sys.modules
