"""Keras on TensorFlow, the one backend nextword trains and exports with.

Keras 3 chooses its backend once, when it is first imported: ``KERAS_BACKEND`` if set, else the
``backend`` of its ``keras.json`` (``$KERAS_HOME``, else ``~/.keras``, else ``/tmp/.keras`` where the home
folder cannot be written, a file another user of the machine may have made). One that names JAX or
PyTorch made training and export fail with "training needs keras (No module named 'jax')", though Keras
was installed. So before Keras is first imported, ``KERAS_BACKEND`` is set to ``tensorflow``, which Keras
reads over its ``keras.json``; a value of the user's own is replaced, with a warning.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["BACKEND", "KerasBackendError", "use_tensorflow_backend"]

logger = logging.getLogger(__name__)

BACKEND = "tensorflow"
VARIABLE = "KERAS_BACKEND"
# The module of Keras 3 that reads its settings; it stays imported (with the backend it read) even
# after an import of Keras failed for want of that backend's package.
_KERAS_SETTINGS = "keras.src.backend.config"


class KerasBackendError(ImportError):
    """Keras was already imported in this process with another backend than TensorFlow, which it keeps
    for the life of the process."""


def use_tensorflow_backend() -> None:
    """Have Keras use TensorFlow when it is first imported: set ``KERAS_BACKEND=tensorflow`` (a warning
    says so where it held another backend). Raises :class:`KerasBackendError` where Keras was already
    imported in this process with another backend (by the program, before nextword): the message says
    to set the variable before that import, or to start a new process."""
    settings = sys.modules.get(_KERAS_SETTINGS)
    loaded = getattr(settings, "backend", None)
    if callable(loaded) and (backend := loaded()) != BACKEND:
        raise KerasBackendError(
            f"Keras was already imported in this process with its {backend!r} backend ({VARIABLE}, or the "
            "backend in keras.json), which it keeps until the process ends, and nextword trains and exports "
            f"with Keras on TensorFlow; set os.environ[{VARIABLE!r}] = {BACKEND!r} before anything imports "
            "Keras, or restart Python (a notebook: its kernel)"
        )
    chosen = os.environ.get(VARIABLE)
    if chosen and chosen != BACKEND and settings is None:
        logger.warning(
            "%s=%s is set, but nextword trains and exports with Keras on TensorFlow: using %s=%s in this "
            "process",
            VARIABLE,
            chosen,
            VARIABLE,
            BACKEND,
        )
    os.environ[VARIABLE] = BACKEND
