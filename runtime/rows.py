"""The bookkeeping of a :class:`~nextword.runtime.generator.Generator`: its rows, the groups they were
added in, and the plan of one step over the running batch (which rows share rules, which share a
sampler). Internal to the Generator; not part of the public API."""

from __future__ import annotations

import numpy as np

from .cache import ContinuousCache
from .generation import GenerationConfig
from .rules import History, Rules
from .step import State

__all__ = ["Draw", "Group", "Plan", "Row", "Span"]


class Row:
    """One sequence: its prompt, random stream, history, text, and where it stands."""

    __slots__ = ("finished", "generated", "group", "history", "id", "prompt", "reason", "rng", "text")

    def __init__(self, row_id: int, group: Group, prompt: np.ndarray, rng: np.random.Generator, text):
        self.id, self.group, self.prompt, self.rng, self.text = row_id, group, prompt, rng, text
        self.history: History = group.rules.history(prompt)
        self.generated: list[int] = []
        self.finished = False
        self.reason: str | None = None


class Group:
    """The rows of one :meth:`Generator.add` call: one config, one set of rules, fed and run together."""

    def __init__(self, config: GenerationConfig, rules: Rules, logprobs: int | None) -> None:
        self.config, self.rules, self.logprobs = config, rules, logprobs
        self.rows: list[Row] = []
        # While the prompts are fed, each prompt of the call is fed once, for all its rows:
        # ``fed``, ``state``, ``last`` and ``cache`` then hold one entry per prompt of ``prompts``, and
        # ``owner[j]`` is the prompt of row j. When the group joins the running batch they are copied
        # out to one entry per row, in row order.
        self.prompts: list[np.ndarray] = []
        self.owner: np.ndarray = np.zeros(0, dtype=np.int64)
        self.cache: ContinuousCache | None = None  # with config.cache: the caches (per prompt, then row)
        self.fed: np.ndarray = np.zeros(0, dtype=np.int64)  # prompt tokens fed so far, per prompt
        self.state: State = []
        self.last = np.zeros((0, 0), dtype=np.float32)  # (prompts, vocab), then (rows, vocab): the logits

    @property
    def fed_all(self) -> bool:
        """Whether every prompt of the group is fed (its rows may join the running batch)."""
        return bool((self.fed == [len(p) for p in self.prompts]).all())


class Span:
    """The rows of one group in the running batch, ``[start, stop)``, and their histories and random
    streams, gathered once per change of the batch rather than once per step."""

    __slots__ = ("group", "histories", "rngs", "rows", "start", "stop")

    def __init__(self, group: Group, start: int, row: Row) -> None:
        self.group, self.start, self.stop = group, start, start + 1
        self.rows, self.histories, self.rngs = [row], [row.history], [row.rng]

    def add(self, row: Row, stop: int) -> None:
        self.rows.append(row)
        self.histories.append(row.history)
        self.rngs.append(row.rng)
        self.stop = stop


class Draw:
    """Rows of the batch that sample with the same options: their indices and random streams."""

    __slots__ = ("index", "options", "rngs", "rows")

    def __init__(self, options: tuple[float, int | None, float | None]) -> None:
        self.options = options
        self.index: list[int] = []
        self.rngs: list[np.random.Generator] = []
        self.rows: np.ndarray | None = None

    def add(self, span: Span) -> None:
        self.index.extend(range(span.start, span.stop))
        self.rngs.extend(span.rngs)


class Plan:
    """How one step treats the running batch: its groups (rules) and its draws (sampling)."""

    __slots__ = ("caching", "draws", "single", "spans")

    def __init__(self, spans: list[Span], draws: list[Draw], size: int) -> None:
        self.spans, self.draws = spans, draws
        self.caching = any(span.group.cache is not None for span in spans)  # some group has a cache
        # The batch is one row that only chooses (no cache to mix in, no log-probabilities to report):
        # the generation loop's usual case, stepped without the batch's bookkeeping.
        self.single: Row | None = None
        if size == 1 and not self.caching and spans[0].group.logprobs is None:
            self.single = spans[0].rows[0]
        for draw in draws:  # None: the draw covers the whole batch in order, no gathering needed
            draw.rows = None if draw.index == list(range(size)) else np.asarray(draw.index)
