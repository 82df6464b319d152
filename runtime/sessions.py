"""Making onnxruntime sessions for a model: providers, session options, the cores a process may use."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import onnxruntime as ort

from .checks import check_int
from .errors import ModelFileError

__all__ = ["DEFAULT_PROVIDERS", "choose_providers", "default_session_options", "make_session", "usable_cores"]

logger = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def make_session(data: bytes, options: ort.SessionOptions, providers: list[str], source: str) -> Any:
    """An onnxruntime session of the model file's bytes; onnxruntime's refusal as :class:`ModelFileError`
    (a wrong ``options`` is the caller's ``ValueError``, not the file's fault)."""
    if not isinstance(options, ort.SessionOptions):
        raise ValueError(
            f"session_options must be an onnxruntime.SessionOptions, got {type(options).__name__} "
            "(or give threads=n)"
        )
    try:
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        reason = " ".join(str(exc).split())[:500]
        raise ModelFileError(f"{source} could not be loaded as an ONNX model: {reason}") from None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_session_options(threads: int = 1, *, spinning: bool = False) -> ort.SessionOptions:
    """Session options for generation: many small runs, often from several threads at once.

    One thread per run by default: a single step is a handful of small matrix products, too small to
    share out across cores, and a pool of worker threads waiting for a busy core makes each step
    several times slower as soon as anything else runs on the machine (measured in
    docs/benchmarks.md). Concurrency comes from running several generations at once, each on its own
    thread. Nodes run one after another (the step graph is a chain) and every graph optimization is on.

    ``threads > 1`` splits each run's matrix products over that many threads whose pool does not spin
    between runs (a spinning pool burns the cores the rest of the process needs): worth it for large
    batches on cores that would otherwise idle, such as the batched step of ``nextword serve``. With
    ``spinning`` the pool busy-waits between runs instead: the fastest for a step that runs alone (the
    bundled model's step takes a third less time on two such threads than on one), and the setting of
    the second session :func:`load` makes for such steps.
    """
    check_int("threads", threads, 1, 256)
    threads = int(threads)  # a numpy integer too
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def choose_providers(providers: Sequence[str] | None) -> list[str]:
    """The requested providers this onnxruntime build has (warning about the others), else the CPU."""
    if providers is None:
        return list(DEFAULT_PROVIDERS)
    if isinstance(providers, str):
        raise ValueError(f"providers must be a list of provider names, got the string {providers!r}")
    available = set(ort.get_available_providers())
    chosen = [p for p in providers if p in available]
    missing = [p for p in providers if p not in available]
    if missing:
        logger.warning(
            "execution provider(s) %s not available in this onnxruntime build (available: %s); "
            "install onnxruntime-gpu for CUDA",
            missing,
            sorted(available),
        )
    if not chosen:
        logger.warning("none of the requested providers is available; using the CPU")
        chosen = list(DEFAULT_PROVIDERS)
    return chosen
