"""Keeping TensorFlow's native start-up lines off the user's screen.

TensorFlow's C++ core writes lines such as "oneDNN custom operations are on" to file descriptor 2 while
it loads, before its logging settings (``TF_CPP_MIN_LOG_LEVEL``) apply, so Python cannot filter them.
The command line imports TensorFlow once with that descriptor pointed at a temporary file; if the import
fails, what TensorFlow wrote is shown with the error.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

from nextword.train.backend import use_tensorflow_backend

__all__ = ["import_tensorflow_quietly"]


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[IO[bytes]]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and Keras, on TensorFlow: :func:`~nextword.train.backend.use_tensorflow_backend`)
    with its native start-up lines captured; a failed import re-raises after printing them. Does nothing
    when TensorFlow is already imported or not installed (the caller's own check then names the missing
    extra)."""
    if "tensorflow" in sys.modules:
        return
    use_tensorflow_backend()  # before Keras reads its keras.json: a JAX backend named there fails
    with _native_stderr_captured() as captured:
        try:
            for name in ("tensorflow", "keras"):
                importlib.import_module(name)
        except ImportError:
            return
        except Exception:
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", errors="replace"))
            raise
