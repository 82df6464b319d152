"""Exceptions the runtime raises on purpose."""

from __future__ import annotations

__all__ = ["ModelFileError"]


class ModelFileError(ValueError):
    """A file is not a usable nextword model; the message names the file, the problem and the fix."""
