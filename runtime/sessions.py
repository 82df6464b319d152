"""Making onnxruntime sessions for a model: providers, session options, the cores a process may use."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import onnxruntime as ort

from .cgroups import cpu_quota
from .checks import check_int, shown, wrong_type
from .errors import ModelFileError, WrongTypeError
from .onnxruntime_build import (
    PROVIDER_DISTRIBUTIONS,
    needs_cuda,
    preload_cuda_libraries,
    provider_library_error,
    several_builds_note,
    warn_if_int8_scores_wrong,
)

__all__ = [
    "DEFAULT_PROVIDERS",
    "HoldsSessions",
    "Provider",
    "ThreadsUnavailable",
    "choose_providers",
    "cpu_providers",
    "default_session_options",
    "device_providers",
    "gpu_number",
    "make_session",
    "optional_session",
    "quiet_options",
    "usable_cores",
    "warn_about_int8",
]

logger = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
#: onnxruntime's providers that run nothing of a model's themselves (the Azure one, which the CPU build
#: lists first, runs remote models only): a session with them runs where its other providers do
NOT_RUNNING = ("AzureExecutionProvider",)

#: An execution provider as onnxruntime takes it: its name, or its name and its options
#: (``("CUDAExecutionProvider", {"device_id": 1})``).
Provider: TypeAlias = str | tuple[str, Mapping[str, Any]]


class HoldsSessions:
    """For objects that hold onnxruntime sessions, which cannot be pickled: a ``TypeError`` that says
    what to do (pickle's own names an onnxruntime type, deep in a multiprocessing traceback).
    ``copy.copy`` shares the sessions, as a second name for the object would."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(
            f"a loaded {type(self).__name__} cannot be pickled or deep-copied (it holds onnxruntime "
            "sessions): send the model file's path to the other process and load() it there"
        )

    def __copy__(self) -> Any:
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied


def make_session(
    data: bytes,
    options: ort.SessionOptions,
    providers: list[Provider],
    source: str,
    device: str | None = None,
) -> Any:
    """An onnxruntime session of the model file's bytes; onnxruntime's refusal as :class:`ModelFileError`
    (a wrong ``options`` is the caller's ``ValueError``, not the file's fault). Where a session with
    other providers than the CPU's fails and the file loads on the CPU, the provider is named: a
    ``ValueError`` for ``device``, else a warning and the CPU session. A provider that onnxruntime
    replaced by the CPU itself: :func:`check_device`."""
    if not isinstance(options, ort.SessionOptions):
        raise WrongTypeError(
            f"session_options must be an onnxruntime.SessionOptions, got {type(options).__name__} "
            "(or give threads=n)"
        )
    if needs_cuda([_provider_name(p) for p in providers]):
        preload_cuda_libraries()  # CUDA libraries from pip, which onnxruntime does not look for itself
    said = io.StringIO()  # onnxruntime prints a failed provider's "EP Error" banner: not on stdout,
    try:  # which carries a command's text (generate --json)
        with contextlib.redirect_stdout(said):
            session = ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        reason = " ".join(str(exc).split())[:500]
        if _NO_MEMORY.search(reason):  # not the file's fault either: a limit on the process's memory
            raise MemoryError(
                f"onnxruntime ran out of memory making a session of {source} ({reason})"
            ) from None
        if _NO_THREAD.search(reason):  # not the file's fault: the process may start no more threads
            fewer = (
                "" if options.intra_op_num_threads <= 1 else ", or load the model on one thread (threads=1)"
            )
            raise ThreadsUnavailable(
                f"onnxruntime could not start the threads of a session of {source} ({reason}): this "
                f"process has reached a limit on threads or processes (ulimit -u, a container's pids "
                f"limit); raise it{fewer}"
            ) from None
        if providers != list(DEFAULT_PROVIDERS):  # the file, or the provider? The CPU alone tells
            cpu = make_session(data, options, list(DEFAULT_PROVIDERS), source)  # the file's error if not
            names = [_provider_name(p) for p in providers if _provider_name(p) not in DEFAULT_PROVIDERS]
            why = (
                f"onnxruntime could not start {', '.join(names)} for {source}, which loads on the CPU: "
                f"{reason}{_library_errors(names)}; check the device number and its libraries (docs/gpu.md)"
            )
            if device is not None:
                raise ValueError(f"{why}, or use the CPU") from None
            logger.warning("%s; running on the CPU", why)
            return cpu
        raise ModelFileError(f"{source} could not be loaded as an ONNX model: {reason}") from None
    finally:
        if said.getvalue().strip():
            logger.debug(
                "onnxruntime said, making a session of %s: %s", source, " ".join(said.getvalue().split())
            )
    check_device(session, providers, device, source)
    return session


# How onnxruntime says it could not start a thread (Linux's pthread_create, Windows' CreateThread), and
# that it could not allocate (C++'s std::bad_alloc, its allocators' own words)
_NO_THREAD = re.compile(r"pthread_create|CreateThread", re.IGNORECASE)
_NO_MEMORY = re.compile(r"bad_alloc|bad allocation|Failed to allocate memory", re.IGNORECASE)


class ThreadsUnavailable(RuntimeError):
    """onnxruntime could not start a session's threads: the process is at a limit on threads or
    processes, not holding a bad file."""


def optional_session(data: bytes, options: ort.SessionOptions, providers: list[Provider], source: str) -> Any:
    """A session :func:`~nextword.runtime.load` makes beside its first (its two-thread ones), or None,
    with a warning, where the process may start no more threads: the model then runs on the session it
    has. The spinning one only makes steps faster; without the other, an int8 file's batches of 5 rows
    or more get one thread's numbers, as on a one-core machine, where two threads' differ."""
    try:
        return make_session(data, options, providers, source)
    except ThreadsUnavailable as exc:
        logger.warning("%s; going on with the one session made", exc)
        return None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it), at most as many as
    a cgroup's CPU quota gives it, rounded up (``docker run --cpus 1``: 1 on any machine)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


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


def quiet_options(threads: int, *, spinning: bool) -> ort.SessionOptions:
    """:func:`default_session_options` for one of load()'s own sessions, which log nothing (onnxruntime's
    errors reach the caller as exceptions; a provider that failed to start, through :func:`check_device`)."""
    options = default_session_options(threads, spinning=spinning)
    options.log_severity_level = 4
    return options


def choose_providers(providers: Sequence[Provider] | None, device: str | None = None) -> list[Provider]:
    """The requested providers this onnxruntime build has (warning about the others), else the CPU.
    Each is a name or a (name, options) pair, passed on to onnxruntime as given. Or those of
    ``device`` (:func:`device_providers`), not with ``providers``."""
    if device is not None:
        if providers is not None:
            raise ValueError("give providers or device, not both")
        return device_providers(device)
    if providers is None:
        return list(DEFAULT_PROVIDERS)
    if isinstance(providers, Mapping):
        raise WrongTypeError(
            f"providers must be a list, not a {type(providers).__name__} (its keys would be taken and their "
            f"options dropped), got {shown(providers)}: give a list of names or (name, options) pairs, such "
            "as [('CUDAExecutionProvider', {'device_id': 1}), 'CPUExecutionProvider']"
        )
    if isinstance(providers, str | bytes) or not isinstance(providers, Iterable):
        raise wrong_type("providers", "a list of provider names", providers)
    providers = list(providers)  # read twice below: a generator too
    if not providers:
        raise ValueError("providers is empty: leave it out (or device='cpu') for the CPU")
    names = [_provider_name(p) for p in providers]
    # (name, {}) is the name itself to onnxruntime: said so, the CPU's keeps load()'s default sessions
    providers = [
        name if not isinstance(p, str) and not p[1] else p for p, name in zip(providers, names, strict=True)
    ]
    available = set(ort.get_available_providers())
    chosen = [p for p, name in zip(providers, names, strict=True) if name in available]
    missing = [name for name in names if name not in available]
    if missing:
        logger.warning(
            "execution provider(s) %s not available in this onnxruntime build (available: %s)%s",
            missing,
            sorted(available),
            _install_advice(missing),
        )
    if not chosen:
        logger.warning("none of the requested providers is available; using the CPU")
        chosen = list(DEFAULT_PROVIDERS)
    return chosen


def _install_advice(missing: Sequence[str]) -> str:
    """What to install for the ``missing`` providers, for :func:`choose_providers`'s warning: their
    distributions (``onnxruntime-gpu`` for CUDA and TensorRT), and where two builds are installed, that."""
    wanted = sorted({PROVIDER_DISTRIBUTIONS[name] for name in missing if name in PROVIDER_DISTRIBUTIONS})
    several = several_builds_note()
    if several:
        return f"; {several}"
    if not wanted:
        return "; install an onnxruntime build that has them, in place of this one (docs/gpu.md)"
    return f"; install {' or '.join(wanted)} in place of this build (docs/gpu.md)"


def _library_errors(names: Sequence[str]) -> str:
    """Why the libraries of the providers ``names`` could not be loaded, as the system's loader says it
    (a missing CUDA library, by name), or ``""``: onnxruntime logs it only to standard error."""
    found = [(name, provider_library_error(name)) for name in names]
    return "".join(f"; loading {name}'s library failed: {why}" for name, why in found if why)


def _provider_name(provider: Any) -> str:
    """The name of one entry of ``providers``, or ``ValueError`` naming the shapes it may take (left
    to onnxruntime, a wrong one is printed and replaced by the CPU)."""
    if isinstance(provider, str):
        return provider
    if (
        isinstance(provider, tuple)
        and len(provider) == 2
        and isinstance(provider[0], str)
        and isinstance(provider[1], Mapping)
    ):
        return provider[0]
    raise WrongTypeError(
        f"each provider must be a name or a (name, options dict) pair, such as "
        f"('CUDAExecutionProvider', {{'device_id': 1}}); got {provider!r}"
    )


def gpu_number(device: str) -> int | None:
    """``device`` checked: None for ``"cpu"``, N for ``"cuda:N"`` (0 for ``"cuda"``), else ``ValueError``."""
    wanted = "'cpu', 'cuda' or 'cuda:N' (GPU number N)"
    if not isinstance(device, str):
        raise wrong_type("device", wanted, device)
    match = re.fullmatch(r"cuda(?::([0-9]{1,3}))?", device)
    if device == "cpu":
        return None
    if match is None:
        raise ValueError(f"device must be {wanted}, got {device!r}")
    return int(match.group(1) or 0)


def device_providers(device: str) -> list[Provider]:
    """The providers for ``device``: ``"cpu"``, ``"cuda"`` (the first GPU) or ``"cuda:N"`` (GPU N), the
    CPU after a GPU for the nodes it has no kernel for. A GPU this onnxruntime build cannot use is a
    ``ValueError`` naming the fix; :func:`check_device` checks that the session took it."""
    number = gpu_number(device)
    if number is None:
        return list(DEFAULT_PROVIDERS)
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        lacks = (
            f"device {device!r} needs onnxruntime's CUDAExecutionProvider, which this onnxruntime build "
            f"lacks (it has {', '.join(available)})"
        )
        several = several_builds_note()
        if several:
            raise ValueError(f"{lacks}: {several}; or use the CPU")
        raise ValueError(f"{lacks}: install onnxruntime-gpu as docs/gpu.md says, or use the CPU")
    return [("CUDAExecutionProvider", {"device_id": number}), "CPUExecutionProvider"]


def check_device(session: Any, chosen: Sequence[Provider], device: str | None, source: str) -> None:
    """After a session is made: onnxruntime falls back to the CPU when a GPU provider fails to start
    (its CUDA or cuDNN libraries missing or of other versions). For ``device`` that is an error; for
    providers asked by name, a warning."""
    using = session.get_providers()
    lost = [name for name in map(_provider_name, chosen) if name not in using]
    if not lost:
        return
    reason = _library_errors(lost) or "; onnxruntime may have logged its reason to standard error"
    why = (
        f"onnxruntime could not start {', '.join(lost)} for {source} and fell back to {', '.join(using)}: "
        "the libraries it needs are missing or of other versions (for CUDA: the CUDA and cuDNN major "
        "versions of this onnxruntime-gpu release, docs/gpu.md), or the GPU asked for does not exist"
        f"{reason}"
    )
    if device is not None:
        raise ValueError(f"{why}; fix them, or use the CPU")
    logger.warning("%s", why)


def cpu_providers(session: Any, chosen: Sequence[Provider]) -> list[Provider] | None:
    """The providers of the second CPU sessions :func:`~.model.load` makes for ``session``, from what
    it really runs on (a GPU asked for by name that fell back, or the Azure provider that
    ``get_available_providers()`` lists, leave the CPU alone), or None: it runs on another provider, or
    the CPU's was given options, which those sessions would not carry."""
    using = [name for name in session.get_providers() if name not in NOT_RUNNING]
    cpu_options = any(not isinstance(p, str) and p[0] in DEFAULT_PROVIDERS for p in chosen)
    return list(DEFAULT_PROVIDERS) if using == list(DEFAULT_PROVIDERS) and not cpu_options else None


def warn_about_int8(session: Any, config: Mapping[str, Any], source: str, *, quantized: bool = False) -> None:
    """Warnings for an int8 file (``nextword export --int8``, or a graph of integer products:
    ``quantized``) where it is known to run badly: an onnxruntime release that computes it wrongly
    (:func:`~.onnxruntime_build.warn_if_int8_scores_wrong`); a provider other than the CPU's, where its
    quantized LSTM has no kernel (onnxruntime runs it on the CPU, with copies of the state to and from
    the device around it) or a slow one, slower than the CPU alone (docs/gpu.md)."""
    export = config.get("export")
    if not quantized and not (isinstance(export, Mapping) and export.get("int8") is True):
        return
    warn_if_int8_scores_wrong(source)
    first = next((name for name in session.get_providers() if name not in NOT_RUNNING), None)
    if first is not None and first not in DEFAULT_PROVIDERS:
        logger.warning(
            "%s has int8 weights, which run slower on %s than on the CPU alone: a GPU has no kernel for "
            "its quantized LSTM (onnxruntime runs it on the CPU, with copies to and from the device at "
            "every step), and OpenVINO ran the bundled model 4.5 times slower than the CPU. Load it on the "
            "CPU, or export without --int8 for a GPU or any device but the CPU (docs/gpu.md)",
            source,
            first,
        )
