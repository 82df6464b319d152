"""The process-wide default model behind the module-level :func:`generate`."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from .checks import wrong_type
from .errors import ModelFileError, WrongTypeError, noted
from .limits import LoadLimits
from .model import NextWordModel, load
from .sessions import gpu_number

__all__ = ["BUNDLED_MODEL", "ENV_VAR", "MAX_MODELS", "default_model", "generate"]

ENV_VAR = "NEXTWORD_MODEL"
BUNDLED_MODEL = Path(__file__).resolve().parent / "data" / "nextword-patents.onnx"

MAX_MODELS = 8  # models kept loaded by path; the least recently used one is dropped beyond this

_lock = threading.Lock()
# (path, device, limits) -> (the file's stamp when loaded, model), least recently used first
_models: dict[tuple[str, str, LoadLimits], tuple[tuple[int, ...] | None, NextWordModel]] = {}


def _unlock_in_child() -> None:
    """After a fork: a fresh lock. One copied while another thread loaded a model stays locked in the
    child, where that thread does not exist, and its first generate() would wait forever. The child has
    one thread, so nothing else can hold the new lock; a model being loaded then was never stored."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_unlock_in_child)


def default_model(
    model: str | os.PathLike[str] | bytes | NextWordModel | None = None,
    *,
    device: str | None = None,
    limits: LoadLimits | None = None,
) -> NextWordModel:
    """The model to use when none is loaded by hand, loaded once per process, path and device.

    ``model`` may be a loaded model (returned as is), a file's bytes (loaded at every call) or a path;
    without it, the ``NEXTWORD_MODEL`` environment variable names the file, else the model bundled
    with the package is used. ``device`` and ``limits`` are :func:`~.model.load`'s. Loading is
    guarded by a lock, so many threads asking at once load the file once. At most
    :data:`MAX_MODELS` models stay loaded: asking for more paths drops the least recently used one. A
    file replaced since it was loaded (a new export to the same path) is loaded again; while the file
    cannot be read (deleted, or being replaced), the model loaded before is used.

    Raises ``ValueError`` for ``device`` or ``limits`` with a loaded model, an empty path, or no model
    given where the bundled one is missing; :class:`WrongTypeError` for a ``model`` of another type; and
    what :func:`~.model.load` raises (:class:`ModelFileError` naming ``$NEXTWORD_MODEL`` where the path
    came from it).
    """
    if isinstance(model, NextWordModel):
        if device is not None or limits is not None:
            raise ValueError(
                "device and limits are for a model loaded here: a loaded model runs where load() put it"
            )
        return model
    if isinstance(model, bytes | bytearray | memoryview):  # a file's contents: loaded, not kept
        return load(bytes(model), device=device, limits=limits)
    if model is not None and not isinstance(model, str | os.PathLike):
        raise WrongTypeError(
            "model must be a path to a .onnx file, a file's bytes or a loaded model "
            f"(nextword.runtime.load), got {type(model).__name__}"
        )
    if isinstance(model, str) and not model:  # Path("") is the current folder, "not a regular file"
        raise ValueError(
            f"model is an empty string: give a .onnx file's path, or leave it out for ${ENV_VAR} or the "
            "bundled model"
        )
    from_env = model is None and bool(os.environ.get(ENV_VAR))
    if model is None:
        model = os.environ.get(ENV_VAR) or BUNDLED_MODEL
        if model == BUNDLED_MODEL and not BUNDLED_MODEL.is_file():
            raise ValueError(
                f"no model given and no bundled model at {BUNDLED_MODEL}: pass model=PATH or set "
                f"{ENV_VAR}=PATH to a nextword .onnx file"
            )
    try:
        where = str(Path(model).resolve())
    except (OSError, RuntimeError, ValueError):  # a symbolic link loop before Python 3.13; a NUL character
        where = os.path.abspath(model)  # load() names what is wrong with it
    if limits is not None and not isinstance(limits, LoadLimits):  # before it is part of a key
        raise wrong_type("limits", "a LoadLimits, or None for the defaults", limits)
    if device is not None and not isinstance(device, str):
        raise wrong_type("device", "cpu, cuda or cuda:N", device)
    gpu = None if device is None else gpu_number(device)  # "cuda" and "cuda:0": one GPU, one model
    place = "cpu" if gpu is None else f"cuda:{gpu}"
    key = (where, place, limits if limits is not None else LoadLimits())
    with _lock:
        stamp, cached = _models.get(key, (None, None))
        now = _stamp(where)
        # not loaded yet, or the file was replaced since (one that cannot be read now keeps the model)
        if cached is None or (now is not None and now != stamp):
            try:
                # a missing or bad file raises ModelFileError naming it; a model loaded before stays
                cached, stamp = load(key[0], device=device, limits=limits), now
            except ModelFileError as exc:
                if not from_env:
                    raise
                # the user typed no path: say where this one came from
                raise noted(exc, f"(the path comes from ${ENV_VAR}; fix or unset it)") from None
        _models.pop(key, None)
        _models[key] = (stamp, cached)  # now the most recently used
        while len(_models) > MAX_MODELS:
            del _models[next(iter(_models))]
    return cached


def _stamp(path: str) -> tuple[int, ...] | None:
    """What tells a file at ``path`` from the one loaded from it before: a new file written and renamed
    over it (as ``nextword export`` does) has another inode, one rewritten in place another size or
    modification time. None when it cannot be read (load() names why)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def generate(
    prompt: str | list[str],
    model: str | os.PathLike[str] | bytes | NextWordModel | None = None,
    **options: Any,
) -> str | list[str]:
    """Continue ``prompt`` with the default model (see :func:`default_model`); options as in
    :meth:`NextWordModel.generate`."""
    return default_model(model).generate(prompt, **options)
