"""Beam search over HTTP: a request whose ``num_beams`` is over 1 (its own, or the model file's
default) runs :class:`~nextword.runtime.BeamSearch` on a worker thread, outside the continuous
batching of sampled requests, and is answered whole once the search is over.

The searches run on a few threads of their own (:func:`beam_threads`; the others wait for one,
holding their ``--max-streams`` slot), not in the thread pool that suggestions and scores share with
the rest of the app: however many searches are asked for, those answer."""

from __future__ import annotations

import threading
from dataclasses import replace

from nextword.runtime import BeamSearch, NextWordModel
from nextword.runtime.beam import Hypothesis
from nextword.runtime.sessions import usable_cores

from .options import Completion

__all__ = ["BeamJob", "beam_threads"]


def beam_threads(workers: int = 1) -> int:
    """How many beam searches one server process runs at once: its share of the machine's cores
    (``workers`` processes share them), at least 2; more wait for a thread."""
    return max(2, usable_cores() // max(1, workers))


class BeamJob:
    """One beam-search request. :meth:`run` (on a worker thread) steps the search until it is over or
    :meth:`cancel` is called (the client went away, or the server is shutting down); a cancelled search
    answers its best texts so far, each with the reason "cancelled"."""

    def __init__(self, model: NextWordModel, completion: Completion) -> None:
        self.model, self.completion = model, completion
        self.cancelled = threading.Event()
        self.finished = False
        self.words = 0  # words of the texts returned, once the search is over
        self.first_word: float | None = None  # answered whole: no first word to time

    def cancel(self) -> None:
        self.cancelled.set()

    def cancel_unless_finished(self) -> None:
        if not self.finished:
            self.cancel()

    def run(self) -> list[Hypothesis]:
        prompts, config = self.completion.prompts, self.completion.config
        ids = [self.model.prompt_ids(p) for p in prompts]
        search = BeamSearch(self.model, ids, config, [p[-1:].isspace() for p in prompts])
        while not self.cancelled.is_set() and search.step():
            pass
        self.finished = True
        results = search.results()
        self.words = sum(h.words for h in results)
        if not search.done:  # cancelled before the search was over
            results = [replace(h, finish_reason="cancelled") for h in results]
        return results
