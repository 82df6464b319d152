"""Size checks made before the first epoch, so that a model too big to export or to train is refused
(or flagged) when the run starts rather than after hours of training.

* :func:`check_exportable`: the model file's estimated size (:mod:`nextword.runtime.sizes`) against
  the 2 GiB one ONNX file can hold (refused) and the limits ``load()`` applies by default (a warning
  that says what to pass to load such a file, or what to lower). Export repeats the first check
  before tf2onnx runs, for runs started before it existed.
* :func:`check_step_memory`: the output layer's activations of one training step (batch x window x
  vocabulary floats, a few copies) against the memory this machine has free, when training on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import os

from nextword.runtime.cgroups import memory_room
from nextword.runtime.limits import MiB
from nextword.runtime.sizes import PROTOBUF_LIMIT, ModelShape, limits_call, limits_note

from .config import ModelConfig, TrainConfig

__all__ = [
    "LOGITS_COPIES",
    "MARGIN",
    "available_memory",
    "check_exportable",
    "check_step_memory",
    "model_shape",
]

logger = logging.getLogger(__name__)

GB = 1e9
# Peak memory of one CPU training step, in copies of the (batch, window, vocabulary) float32 logits:
# the logits, the softmax and its gradient. Measured 2.3-2.6 (TensorFlow 2 CPU, vocabularies of 50,000
# and 100,000, batches of 16 and 32 windows of 50, tied and untied), first step included.
LOGITS_COPIES = 2.5
# The file estimate is within 1% of real files; a model that close to 2 GiB is refused rather than left
# to fail inside tf2onnx ("GraphDef cannot be larger than 2GB") after training.
MARGIN = 1.02


def model_shape(config: ModelConfig, vocab_size: int) -> ModelShape:
    """The sizes of ``config``'s network over a vocabulary of ``vocab_size`` words."""
    return ModelShape(
        vocab_size, config.embedding_dim, config.lstm_units, config.num_layers, config.tie_embeddings
    )


def check_exportable(
    config: ModelConfig, vocab_size: int, tokenizer_bytes: int, *, warn: bool = True, during: str = "train"
) -> None:
    """Raise ``ValueError`` when the model's ONNX file would reach protobuf's 2 GiB limit (no
    nextword file can hold it); with ``warn``, log a warning when it would exceed ``load()``'s default
    limits, naming the ``LoadLimits`` that load it and the int8 alternative. ``during`` names the
    command in the message (``train`` or ``export``)."""
    shape = model_shape(config, vocab_size)
    fp32 = shape.file_bytes(tokenizer_bytes)
    if fp32 * MARGIN > PROTOBUF_LIMIT:
        when, fix = "export would fail after training", _lower(shape)
        if during != "train":  # the run's settings: only a new run can change them
            when, fix = (
                "export cannot write it",
                f"Train the run again with a smaller model: {fix[0].lower()}{fix[1:]}",
            )
        raise ValueError(
            f"this model's ONNX file would be about {fp32 / GB:,.2f} GB ({_parts(shape)}), over (or within "
            f"2% of) the {PROTOBUF_LIMIT / GB:.2f} GB that one ONNX file (a single protobuf message) can "
            f"hold: {when} (int8 export starts from the float32 file too). {fix}"
        )
    if not warn:
        return
    needed = shape.needed(tokenizer_bytes)
    if not needed:
        return
    int8 = shape.file_bytes(tokenizer_bytes, int8=True)
    int8_needed = shape.needed(tokenizer_bytes, int8=True)
    int8_loads = (
        ", which loads with the defaults" if not int8_needed else f" (needing {limits_call(int8_needed)})"
    )
    lower = _lower(shape)
    logger.warning(
        "the exported model file will be about %.0f MB (%s), over what load() accepts by default: loading "
        "it will need %s. "
        "An int8 export writes about %.0f MB%s. To stay within the defaults: %s",
        fp32 / 1e6,
        _parts(shape),
        limits_note(needed),
        int8 / 1e6,
        int8_loads,
        lower[0].lower() + lower[1:],
    )


def _parts(shape: ModelShape) -> str:
    """Where the weights are: '20,000 words x 128 embedding = 10.2 MB, ...'."""
    v, e, u = shape.vocab_size, shape.embedding_dim, shape.lstm_units
    parts = [f"embedding {v:,} words x {e} = {4 * v * e / 1e6:,.1f} MB"]
    if not shape.tie_embeddings:
        parts.append(f"output layer {u} units x {v:,} words = {4 * u * v / 1e6:,.1f} MB")
    parts.append(f"{shape.num_layers} LSTM layer(s) of {u} units = {4 * shape.lstm / 1e6:,.1f} MB")
    return ", ".join(parts)


def _lower(shape: ModelShape) -> str:
    tied = "" if shape.tie_embeddings else ", or tie the embeddings (tie_embeddings=True)"
    return (
        f"Lower `max_vocab` (the vocabulary has {shape.vocab_size:,} words; `min_count` also shrinks it), "
        f"`embedding_dim`, `lstm_units` or `num_layers`{tied}"
    )


def available_memory() -> int | None:
    """Bytes of memory this machine can give a process now (Linux's MemAvailable; else its physical
    memory), or less where this process's memory cgroup (a container's limit) leaves less room, or
    None when it cannot be told."""
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no sysconf (Windows) or name
            free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = memory_room()
    return room if room is not None and (free is None or room < free) else free


def check_step_memory(config: TrainConfig, vocab_size: int, rows: int, *, on_gpu: bool) -> int:
    """Estimate the memory one training step's output layer takes on a replica training ``rows``
    windows (:data:`LOGITS_COPIES` copies of ``rows x seq_len x vocab_size`` floats) and warn when
    training on the CPU and that is more than this machine has free. Returns the estimate in bytes."""
    need = int(LOGITS_COPIES * rows * config.seq_len * vocab_size * 4)
    figures = f"{rows} windows x {config.seq_len} words x {vocab_size:,} words x 4 bytes x {LOGITS_COPIES}"
    free = None if on_gpu else available_memory()
    if free is not None and need > free:
        limited = free == memory_room()  # a cgroup's limit leaves less than the machine has free
        logger.warning(
            "one training step's output layer needs about %.1f GB (%s), more than the %.1f GB of memory "
            "%s: training will likely run out of memory at its first step (the system may kill "
            "it without a message). Lower `batch_size` or `seq_len` (the need follows each), or "
            "`max_vocab`%s",
            need / GB,
            figures,
            free / GB,
            "this process's memory limit leaves (its cgroup's: a container's)" if limited else "free here",
            ", or raise the limit" if limited else "",
        )
    elif need > 256 * MiB:
        logger.info(
            "one training step's output layer needs about %.1f GB per replica (%s)", need / GB, figures
        )
    return need
