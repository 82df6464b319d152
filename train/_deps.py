"""A clear message instead of a traceback when an optional extra (``train``, ``serve``) is not installed."""

from __future__ import annotations

import importlib

__all__ = ["EXPORT_STACK", "TRAINING_STACK", "MissingExtraError", "require"]

TRAINING_STACK = ("tensorflow", "keras")
EXPORT_STACK = ("tensorflow", "keras", "tf2onnx", "onnx")
INSTALL_HINT = (
    'install the training extra: pip install "nextword[train]" '
    '(or "nextword[train-gpu]" on a machine with an NVIDIA GPU)'
)


class MissingExtraError(ImportError):
    """A feature needs packages of an optional extra that are missing or do not import: ``train`` for
    training and export (TensorFlow, Keras, tf2onnx, onnx), ``serve`` for the server (FastAPI, uvicorn,
    prometheus_client); the message names the packages and the ``pip install`` that brings them."""


def require(feature: str, modules: tuple[str, ...], hint: str = INSTALL_HINT) -> None:
    """Import ``modules``; raise :class:`MissingExtraError` naming ``feature``, the culprits and the fix
    (``hint``: by default, installing the training extra).

    Importing (rather than looking the modules up) also catches installs that are present but broken,
    such as a TensorFlow built against another numpy.
    """
    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"{name} ({exc})")
    if problems:
        raise MissingExtraError(f"{feature} needs {', '.join(problems)}; {hint}")
