"""Timers of the runtime's ``generate()`` and the prompt the generation benchmarks share."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.timing import WARM_UP_SEED, Timer

__all__ = ["NO_EARLY_END", "PROMPT", "generate_timer"]

# A fixed prompt for the generation benchmarks: long enough (> 50 tokens) that the windowed methods
# start from a full 50-word window, as the notebook did.
PROMPT = (
    "A neural network system for processing sequential data includes an input layer that receives a "
    "sequence of feature vectors, a recurrent layer of long short-term memory cells that maintains a "
    "hidden state across time steps, and an output layer that computes a probability distribution over "
    "a vocabulary of words. The network is trained on a corpus of documents using backpropagation "
    "through time, and the trained network"
)
NO_EARLY_END = "`stop_at_end=False`"  # how a timed generation is kept from ending the document early


def generate_timer(
    model: Any, prompt: str, max_words: int, temperature: float, count: int
) -> tuple[Timer, list[int], str]:
    """A timer of ``model.generate(prompt, max_words=..., temperature=..., stop_at_end=False)``, the
    seeds to time it with, and how the model is kept from ending the document early.

    The timer returns the words actually produced (counted with ``generate_ids`` and the same settings,
    outside the timed call), so ms/word is divided by what was really generated.
    """
    from nextword.runtime import GenerationConfig

    ids = model.prompt_ids(prompt)
    options: dict[str, Any] = {"max_words": max_words, "temperature": temperature, "stop_at_end": False}
    model.generate(prompt, **{**options, "max_words": 5}, seed=WARM_UP_SEED)

    def timer(seed: int) -> tuple[float, int]:
        produced = len(model.generate_ids(ids, GenerationConfig(**options, seed=seed)))
        start = time.perf_counter()
        model.generate(prompt, **options, seed=seed)
        return time.perf_counter() - start, produced

    return timer, list(range(count)), NO_EARLY_END
