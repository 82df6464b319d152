"""Exceptions the runtime raises on purpose, and the helper that quotes file contents in their messages."""

from __future__ import annotations

__all__ = ["ModelFileError", "ModelRunError", "shorten"]


class ModelFileError(ValueError):
    """A file is not a usable nextword model; the message names the file, the problem and the fix."""


class ModelRunError(ModelFileError):
    """onnxruntime failed while running a model that had loaded; the message names the file.

    A subclass of :class:`ModelFileError`, not a sibling: ``load()`` runs a probe step and checks every
    output before it returns, so a graph that fails later fails on inputs the probe did not try (a
    crafted or damaged file), and code that already handles bad model files handles this too. Catch
    this class to tell a failure during a call from a refusal at load time.
    """


def shorten(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error message: ``repr`` (which escapes control and format characters),
    cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
