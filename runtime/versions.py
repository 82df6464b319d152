"""Version strings read as numbers, for the checks that depend on a release: onnxruntime's known faults
(:mod:`.onnxruntime_build`), a run folder's saving mark (``nextword.train.resumable``)."""

from __future__ import annotations

import re

__all__ = ["version_tuple"]


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"1.24.1"`` (or ``"1.25.0.dev2026..."``) as ``(1, 24, 1)``; missing or unreadable parts are 0."""
    numbers = [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3]]
    return (*numbers, 0, 0, 0)[:3]  # type: ignore[return-value]
