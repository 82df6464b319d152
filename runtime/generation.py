"""Generation settings shared by the Python API and the CLI."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["MAX_WORDS", "GenerationConfig"]

MAX_WORDS = 10_000  # cap on max_words: each word is one session call, so this bounds a call's time


@dataclass(frozen=True)
class GenerationConfig:
    """How :meth:`NextWordModel.generate` continues a prompt. A "word" is one token: a word or a
    punctuation mark."""

    max_words: int = field(default=50, metadata={"help": f"words to generate at most (0..{MAX_WORDS})"})
    temperature: float = field(
        default=1.0, metadata={"help": "softmax temperature; 0 is greedy (always the most likely word)"}
    )
    top_k: int | None = field(
        default=None, metadata={"help": "sample only among the K most likely words (default: all)"}
    )
    seed: int | None = field(
        default=None, metadata={"help": "random seed; the same seed and settings give the same text"}
    )

    def __post_init__(self) -> None:
        _check_int("max_words", self.max_words, 0, MAX_WORDS)
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), got {t!r}")
        if self.top_k is not None:
            _check_int("top_k", self.top_k, 1, None)
        if self.seed is not None:
            _check_int("seed", self.seed, 0, None)

    @classmethod
    def from_options(cls, config: GenerationConfig | None = None, **options: Any) -> GenerationConfig:
        """``config`` (or the defaults) with ``options`` replacing its fields; unknown names raise."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown generation option(s) {unknown}; valid options are {sorted(known)}")
        return replace(config or cls(), **options)


def _check_int(name: str, value: Any, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {allowed}, got {value}")
