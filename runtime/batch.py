"""The running batch of a :class:`~nextword.runtime.generator.Generator`: the rows whose prompts are fed,
each choosing one token per step, and the one batched session call that takes the rest one token on.

The :class:`Generator` adds, feeds and cancels rows; a :class:`Batch` decodes them: it applies each
group's rules (and mixes in its continuous cache), draws a token per row, records it in the row's text,
and steps the rows that go on. :class:`Update` and :data:`FINISH_REASONS` are public, as
``nextword.runtime.Update`` and ``nextword.runtime.FINISH_REASONS``; the rest is internal to the Generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .logits import log_softmax
from .rows import Draw, Group, Plan, Row, Span
from .sampling import largest, sample, sample_one
from .step import StepModel
from .stepper import TokenStepper

__all__ = ["FINISH_REASONS", "Batch", "Update", "finish"]

# Why a row finished: "length" (max_words reached), "stop" (a stop string), "end" (the model ended the
# document, or the rules left no token it may choose), "cancelled" (Generator.cancel).
FINISH_REASONS = ("length", "stop", "end", "cancelled")

TopLogprobs = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Update:
    """What one :meth:`Generator.step` did for one row."""

    row: int
    token: int | None  # the id chosen at this step (the end-of-document id when the model ended), or None
    text: str  # new text that no later stop string can cut; joined over the row's updates: its text
    finished: bool
    finish_reason: str | None = None  # one of FINISH_REASONS once finished
    logprob: float | None = None  # log-probability of ``token`` under the model (with ``logprobs``)
    top_logprobs: TopLogprobs | None = None  # the most likely tokens and theirs
    # where this step's word starts in the row's text (its leading space included; a word cut by a stop
    # string: where the cut text ends), None when the step added no word (the row ended or was cancelled)
    offset: int | None = None


def finish(
    row: Row,
    reason: str,
    token: int | None,
    updates: list[Update] | None,
    logprob: float | None = None,
    top: TopLogprobs | None = None,
    offset: int | None = None,
) -> None:
    """Mark ``row`` finished for ``reason`` and, when ``updates`` is collected, report its last text
    (``offset``: where the word of this step starts in it, if the step added one)."""
    row.finished, row.reason = True, reason
    if updates is not None:
        updates.append(Update(row.id, token, row.text.take(final=True), True, reason, logprob, top, offset))


class Batch:
    """The running rows, aligned with the logits they choose from next and the state they step from."""

    def __init__(self, model: StepModel, stepper: TokenStepper) -> None:
        self._stepper = stepper
        self._tokens = model.tokenizer.table  # id -> token, read once per generated token
        self._eod = model.tokenizer.eod_id
        self.rows: list[Row] = []
        self._last = np.zeros((0, model.vocab_size), dtype=np.float32)  # (A, V) logits to sample from
        self._state = model.initial_state(0)
        self._plan: Plan | None = None  # the batch by group and by draw, rebuilt when it changes
        self._token = np.zeros(1, dtype=np.int64)  # a single row's next token, fed to the stepper

    def join(self, group: Group) -> None:
        """Append a fed group's rows, their logits and their state; the group hands both over."""
        self.rows.extend(group.rows)
        self._plan = None
        self._last = np.concatenate([self._last, group.last])
        self._state = [np.concatenate(pair) for pair in zip(self._state, group.state, strict=True)]
        group.state, group.last = [], group.last[:0]

    def cancel(self, cancelled: set[int], updates: list[Update] | None) -> None:
        """Finish the running rows whose ids are in ``cancelled`` and take them out of the batch."""
        keep = [j for j, row in enumerate(self.rows) if row.id not in cancelled]
        if len(keep) == len(self.rows):
            return
        plan = self._plan or self._make_plan()
        if plan.caching:
            self._keep_caches(plan, lambda row: row.id not in cancelled)
        for row in self.rows:
            if row.id in cancelled:
                finish(row, "cancelled", None, updates)
        self.rows = [self.rows[j] for j in keep]
        self._last = self._last[keep]
        self._state = [s[keep] for s in self._state]
        self._plan = None

    def decode(self, updates: list[Update] | None) -> None:
        """Choose a token for every running row; one batched session call for the rows that go on."""
        plan = self._plan or self._make_plan()
        if plan.single is not None:
            self._decode_single(plan.single, updates)
            return
        logits = self._last  # (A, V), ours to modify
        raws = {}
        for span in plan.spans:  # the rules of each group, in place
            group = span.group
            block = logits[span.start : span.stop]
            if group.cache is not None:  # the model's distribution mixed with the rows' caches
                group.cache.mix_logits(block)
            if group.logprobs is not None and updates is not None:
                raws[span.start] = block.copy()  # the model's own logits, before any rule
            lengths = [len(r.generated) for r in span.rows] if group.rules.min_words else None
            group.rules.apply(block, span.histories, lengths)
        if len(plan.draws) == 1 and plan.draws[0].rows is None:  # one kind of draw for the whole batch
            chosen = sample(logits, plan.draws[0].rngs, *plan.draws[0].options)
        else:  # rows that draw alike are gathered, so the sampler works on them together
            chosen = np.empty(len(self.rows), dtype=np.int64)
            for draw in plan.draws:
                chosen[draw.rows] = sample(logits[draw.rows], draw.rngs, *draw.options)
        ended = False
        for span in plan.spans:
            picked = chosen[span.start : span.stop]
            raw = raws.get(span.start)
            if raw is not None and updates is not None:
                ended |= self._report_logprobs(span.rows, raw, picked, span.group.logprobs or 0, updates)
                continue
            for row, token in zip(span.rows, picked.tolist(), strict=True):
                ended |= self.take(row, token, updates)
        if ended:
            if plan.caching:
                self._keep_caches(plan, lambda row: not row.finished)
            keep = [j for j, row in enumerate(self.rows) if not row.finished]
            self.rows = [self.rows[j] for j in keep]
            chosen = chosen[keep]
            self._state = [s[keep] for s in self._state]
            self._plan = None
        if self.rows:
            self._last, self._state = self._stepper.step(chosen, self._state)  # (A, V), ours until next step
            if plan.caching:  # the batch as it runs now (rebuilt if rows left)
                for span in (self._plan or self._make_plan()).spans:
                    if span.group.cache is not None:  # the chosen token and the state after it
                        h = self._state[-2][span.start : span.stop]
                        span.group.cache.observe(chosen[span.start : span.stop], h)
        else:
            self._last = logits[:0]

    def _decode_single(self, row: Row, updates: list[Update] | None) -> None:
        """:meth:`decode` for a batch of one row without a cache or log-probabilities: the same rules,
        the same draw and the same step, with Python ints and the row's own objects in place of the
        batch's arrays and plan."""
        logits = self._last[0]  # (V,), ours to modify
        row.group.rules.apply_one(logits, row.history, len(row.generated))
        config = row.group.config
        token = sample_one(logits, row.rng, config.temperature, config.top_k, config.top_p)
        if self.take(row, token, updates):
            self.rows, self._plan = [], None
            self._state, self._last = [s[:0] for s in self._state], self._last[:0]
            return
        self._token[0] = token
        self._last, self._state = self._stepper.step(self._token, self._state)  # ours until next step

    def take(
        self,
        row: Row,
        token: int,
        updates: list[Update] | None,
        logprob: float | None = None,
        top: TopLogprobs | None = None,
    ) -> bool:
        """Record ``token`` (or -1: nothing allowed) for ``row``; True if that finishes it."""
        if token < 0 or token == self._eod:
            finish(row, "end", token if token >= 0 else None, updates, logprob, top)
            return True
        row.generated.append(token)
        row.history.add(token)
        text = row.text
        text.add(self._tokens[token])
        if text.stopped:
            finish(row, "stop", token, updates, logprob, top, text.start)
            return True
        if len(row.generated) >= row.group.config.max_words:
            finish(row, "length", token, updates, logprob, top, text.start)
            return True
        if updates is not None:
            updates.append(Update(row.id, token, text.take(), False, None, logprob, top, text.start))
        return False

    def _keep_caches(self, plan: Plan, keep: Callable[[Row], bool]) -> None:
        """Drop from each running group's cache the rows for which ``keep(row)`` is false."""
        for span in plan.spans:
            if span.group.cache is not None:
                span.group.cache.take([j for j, row in enumerate(span.rows) if keep(row)])

    def _make_plan(self) -> Plan:
        """The batch cut into its groups (contiguous: a group joins at once and rows leave in order) and
        into draws (rows with the same sampling options), gathered once per change of the batch rather
        than once per step."""
        spans: list[Span] = []
        for index, row in enumerate(self.rows):
            if spans and spans[-1].group is row.group:
                spans[-1].add(row, index + 1)
            else:
                spans.append(Span(row.group, index, row))
        draws: dict[tuple[float, int | None, float | None], Draw] = {}
        for span in spans:
            config = span.group.config
            key = (config.temperature, config.top_k, config.top_p)
            draws.setdefault(key, Draw(key)).add(span)
        plan = Plan(spans, list(draws.values()), len(self.rows))
        self._plan = plan
        return plan

    def _report_logprobs(
        self, rows: list[Row], raw: np.ndarray, chosen: np.ndarray, k: int, updates: list[Update]
    ) -> bool:
        scores = log_softmax(raw)  # (R, V) float64
        ended = False
        for j, (row, token) in enumerate(zip(rows, chosen.tolist(), strict=True)):
            logprob = float(scores[j, token]) if token >= 0 else None
            top = None
            if k:
                best = _best(scores[j], k)
                top = tuple((self._tokens[i], float(scores[j, i])) for i in best.tolist())
            ended |= self.take(row, token, updates, logprob, top)
        return ended


def _best(row: np.ndarray, k: int) -> np.ndarray:
    """The ids of the ``k`` largest entries of ``row``, largest first, ties by id: the first ``k`` of a
    stable argsort of ``-row``, found without sorting the whole vocabulary."""
    ids, values = largest(row, k)
    if len(ids) < k:  # NaN rows (every token banned): what the full sort gives
        return np.argsort(-row, kind="stable")[:k]
    return ids[np.argsort(-values, kind="stable")[:k]]
