"""A clear message instead of a traceback when an optional extra (``train``, ``serve``) is not installed."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from .backend import KerasBackendError, use_tensorflow_backend

__all__ = [
    "EXPORT_STACK",
    "TRAINING_STACK",
    "MissingExtraError",
    "install_command",
    "require",
    "require_installed",
    "training_hint",
]

TRAINING_STACK = ("tensorflow", "keras")
EXPORT_STACK = ("tensorflow", "keras", "tf2onnx", "onnx")
GPU_NOTE = '(or "nextword[train-gpu]" on a machine with an NVIDIA GPU)'


def install_command(requirement: str) -> str:
    """The command that installs ``requirement`` (``nextword[serve]``) where this Python runs: pip's, or,
    for a ``nextword`` command installed as a tool, pipx's or uv's. A tool's environment has no pip of its
    own, and the ``pip`` on PATH installs into another environment."""
    prefix = Path(sys.prefix)
    if (prefix / "pipx_metadata.json").is_file():  # a venv pipx made
        return f'pipx install --force "{requirement}"'
    if (prefix / "uv-receipt.toml").is_file():  # a venv `uv tool install` made
        return f'uv tool install "{requirement}"'
    return f'pip install "{requirement}"'


def training_hint() -> str:
    """What to install for training and export, in this environment's installer's words."""
    return f"install the training extra: {install_command('nextword[train]')} {GPU_NOTE}"


class MissingExtraError(ImportError):
    """A feature needs packages of an optional extra that are missing or do not import: ``train`` for
    training and export (TensorFlow, Keras, tf2onnx, onnx), ``serve`` for the server (FastAPI, uvicorn,
    prometheus_client); the message names the packages and the ``pip install`` that brings them."""


def require(feature: str, modules: tuple[str, ...], hint: str | None = None) -> None:
    """Import ``modules``; raise :class:`MissingExtraError` naming ``feature``, the culprits and the fix
    (``hint``: by default, installing the training extra, :func:`training_hint`).

    Importing (rather than looking the modules up) also catches installs that are present but broken,
    such as a TensorFlow built against another numpy. Keras is imported on TensorFlow, whatever backend
    ``KERAS_BACKEND`` or ``keras.json`` names (:func:`~.backend.use_tensorflow_backend`).
    """
    if "keras" in modules:
        try:
            use_tensorflow_backend()
        except KerasBackendError as exc:
            raise MissingExtraError(f"{feature} needs Keras on its TensorFlow backend: {exc}") from None
    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"{name} ({exc})")
    if problems:
        raise MissingExtraError(f"{feature} needs {', '.join(problems)}; {hint or training_hint()}")


def require_installed(feature: str, modules: tuple[str, ...], hint: str | None = None) -> None:
    """:func:`require` where one of ``modules`` is not installed at all, else nothing: each is looked up,
    not imported (milliseconds, where importing TensorFlow takes seconds). Called before the checks of a
    command's input, so that a missing extra is said first; :func:`require` follows before the work."""
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module half there (no __spec__), or a finder that refuses it
            found = False
        if not found:
            require(feature, modules, hint)
            return
