"""Frozen copy of the runtime's generation loops before the step-level Generator (nextword 0.x, format 2):
the reference the tests compare today's texts with. Do not change.

The generation loops: batched prompt prefill, then one batched single-step session call per word.

Sampling (:class:`SamplingRun`) and beam search (:func:`beam_search`) share the prefill, the rules that
forbid tokens (:class:`Rules`) and the text rendering with stop strings (:class:`TextBuilder`).
Every row of a batch evolves independently: a row's result does not depend on the other rows (up to
the per-tensor activation quantization of an int8 file, which the rows of one session call share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nextword.runtime.generation import GenerationConfig
from nextword.runtime.step import PROMPT_CHUNK
from nextword.runtime.tokenizer import EOD, Tokenizer

from .sampling_v1 import sample_next

if TYPE_CHECKING:
    from nextword.runtime.model import NextWordModel, State

__all__ = ["PromptContext", "Rules", "SamplingRun", "TextBuilder", "beam_search", "prefill"]


@dataclass
class PromptContext:
    """What the rules need to know about one prompt, computed once and shared by its rows."""

    ids: np.ndarray  # (T,) int64: <eod> followed by the prompt's tokens
    previous: str | None  # the token before the first generated one (None at a document start)
    ngrams: dict[tuple[int, ...], set[int]] = field(default_factory=dict)  # prompt n-gram prefix -> next
    seen: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # distinct prompt ids

    @classmethod
    def build(cls, ids: Sequence[int], tokenizer: Tokenizer, config: GenerationConfig) -> PromptContext:
        array = np.asarray(ids, dtype=np.int64)
        last = tokenizer.token_of(int(array[-1]))
        context = cls(ids=array, previous=None if last == EOD else last)
        n = config.no_repeat_ngram_size
        if n:
            for i in range(len(array) - n + 1):
                context.ngrams.setdefault(tuple(array[i : i + n - 1].tolist()), set()).add(
                    int(array[i + n - 1])
                )
        if config.repetition_penalty != 1:
            context.seen = np.unique(array)
        return context


class Rules:
    """Every rule that is not sampling itself, built once per generation call and applied in place
    to each step's logits (rows, vocab).

    Padding is never chosen; unknown only with ``allow_unknown``; end-of-document only once
    ``min_words`` are out, and never without ``stop_at_end``. ``repetition_penalty`` divides positive
    (multiplies negative) logits of tokens already in the prompt or the text; ``no_repeat_ngram_size``
    forbids tokens that would repeat an n-gram of the prompt or the text.
    """

    def __init__(self, config: GenerationConfig, tokenizer: Tokenizer) -> None:
        banned = [tokenizer.pad_id]
        if not config.allow_unknown:
            banned.append(tokenizer.unk_id)
        if not config.stop_at_end:
            banned.append(tokenizer.eod_id)
        self.banned = np.asarray(banned)
        self.eod = tokenizer.eod_id
        self.min_words = config.min_words
        self.penalty = config.repetition_penalty
        self.ngram = config.no_repeat_ngram_size

    def apply(
        self,
        logits: np.ndarray,
        rows: Sequence[int],
        prompts: Sequence[PromptContext],
        generated: Sequence[Sequence[int]],
    ) -> None:
        """Apply the rules to ``logits``, whose row ``j`` continues ``prompts[rows[j]]`` with
        ``generated[rows[j]]``."""
        logits[:, self.banned] = -np.inf
        if self.min_words:
            short = [j for j, row in enumerate(rows) if len(generated[row]) < self.min_words]
            logits[short, self.eod] = -np.inf
        if self.penalty == 1 and not self.ngram:
            return
        for j, row in enumerate(rows):
            prompt, new = prompts[row], generated[row]
            if self.penalty != 1:
                seen = np.union1d(prompt.seen, np.asarray(new, dtype=np.int64)) if new else prompt.seen
                values = logits[j, seen]
                logits[j, seen] = np.where(values > 0, values / self.penalty, values * self.penalty)
            if self.ngram:
                logits[j, list(_ngram_bans(prompt, new, self.ngram))] = -np.inf


def _ngram_bans(prompt: PromptContext, new: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already in prompt + generated text."""
    if n == 1:
        return {*prompt.ngrams.get((), ()), *new}
    window = [*prompt.ids[-(n - 1) :].tolist(), *new]  # the prompt's tail joined to the new tokens
    prefix = tuple(window[-(n - 1) :])
    bans = set(prompt.ngrams.get(prefix, ()))
    for i in range(len(window) - n + 1):  # n-grams that reach into the generated text
        if tuple(window[i : i + n - 1]) == prefix:
            bans.add(window[i + n - 1])
    return bans


class TextBuilder:
    """Renders one row's new tokens as text, cuts it at the first stop string, and tells how much of it
    can be streamed without ever taking a character back."""

    def __init__(self, tokenizer: Tokenizer, previous: str | None, stops: tuple[str, ...], lstrip: bool):
        self._tokenizer, self._previous, self._stops, self._lstrip = tokenizer, previous, stops, lstrip
        self._longest = max((len(s) for s in stops), default=0)
        self.text = ""
        self.stopped = False

    def add(self, token: str) -> None:
        """Append one token's piece; sets :attr:`stopped` and cuts the text when a stop string appears."""
        piece = self._tokenizer.piece(token, self._previous)
        self._previous = token
        if self._lstrip and not self.text:
            piece = piece.lstrip(" ")
        start = max(0, len(self.text) - self._longest + 1)  # a new match must end in the new piece
        self.text += piece
        if self._stops:
            hits = [i for i in (self.text.find(s, start) for s in self._stops) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True

    def safe_length(self) -> int:
        """Length of the prefix of :attr:`text` that no later stop string can cut."""
        if self.stopped or not self._stops:
            return len(self.text)
        hold = 0
        for stop in self._stops:  # the longest text suffix that is a proper prefix of a stop string
            for k in range(min(len(stop) - 1, len(self.text)), hold, -1):
                if self.text.endswith(stop[:k]):
                    hold = k
                    break
        return len(self.text) - hold


def prefill(
    model: NextWordModel, prompts: Sequence[np.ndarray], chunk: int = PROMPT_CHUNK
) -> tuple[np.ndarray, State]:
    """Feed every prompt through the model as one batch; return last logits (P, vocab) and state.

    Prompts of different lengths are handled in rounds: each round feeds the rows that still have
    prompt left, as many tokens as the shortest of them has (at most ``chunk``), so every row
    sees exactly its own tokens and ends on its own last one.
    """
    lengths = np.array([len(p) for p in prompts])
    if (lengths == 0).any():
        raise ValueError("every prompt needs at least one token (the start-of-document token)")
    state = model.initial_state(len(prompts))
    last = np.empty((len(prompts), model.vocab_size), dtype=np.float32)
    position = np.zeros(len(prompts), dtype=np.int64)
    while (todo := np.flatnonzero(position < lengths)).size:
        step = int(min(chunk, (lengths[todo] - position[todo]).min()))
        ids = np.stack([prompts[i][position[i] : position[i] + step] for i in todo])  # (A, step)
        logits, new_state = model.forward(ids, [s[todo] for s in state], logits_from=-1)  # (A, 1, V)
        for s, new in zip(state, new_state, strict=True):
            s[todo] = new
        position[todo] += step
        ended = position[todo] == lengths[todo]
        last[todo[ended]] = logits[ended, -1]
    return last, state


class SamplingRun:
    """Greedy or sampled generation for a batch of rows (prompts x ``num_return_sequences``).

    Call :meth:`step` until it returns False; each call picks one token for every unfinished row and
    runs one batched single-step session call for the rows that go on. Finished rows leave the batch.
    """

    def __init__(
        self, model: NextWordModel, prompts: Sequence[Sequence[int]], config: GenerationConfig, lstrip=()
    ):
        tok = model.tokenizer
        self.model, self.config = model, config
        self.rules = Rules(config, tok)
        contexts = [PromptContext.build(p, tok, config) for p in prompts]
        last, state = prefill(model, [c.ids for c in contexts])
        repeat = np.repeat(np.arange(len(contexts)), config.num_return_sequences)  # row -> prompt
        self.prompts = [contexts[p] for p in repeat]
        self.generated: list[list[int]] = [[] for _ in repeat]
        self.texts = [
            TextBuilder(tok, contexts[p].previous, config.stop, bool(lstrip) and lstrip[p]) for p in repeat
        ]
        seeds = np.random.SeedSequence(config.seed).spawn(len(repeat))  # one stream per row
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.active = list(range(len(repeat)))  # rows still generating, aligned with _last and _state
        self._last, self._state = last[repeat], [s[repeat] for s in state]  # (A, V), [(A, U)]
        self._tokens = tok.tokens  # id -> token, read once per step and row
        self.steps = 0

    def step(self) -> bool:
        """Generate one more token for every active row; False once every row is finished."""
        config, rows = self.config, self.active
        if not rows or self.steps >= config.max_words:
            self.active = []
            return False
        logits = self._last  # (A, V), ours to modify
        self.rules.apply(logits, rows, self.prompts, self.generated)
        next_ids = sample_next(
            logits,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            rngs=[self.rngs[r] for r in rows],
            copy=False,
        )
        keep = []
        for j, token in enumerate(next_ids.tolist()):
            if token == self.rules.eod:  # the model ended the document
                continue
            row = rows[j]
            self.generated[row].append(token)
            text = self.texts[row]
            text.add(self._tokens[token])
            if not text.stopped:
                keep.append(j)
        self.steps += 1
        if len(keep) < len(rows):
            self.active, next_ids = [rows[j] for j in keep], next_ids[keep]
            self._state = [s[keep] for s in self._state]
        if not self.active or self.steps >= config.max_words:
            self.active = []
            return False
        logits, self._state = self.model.forward(next_ids[:, None], self._state)  # (A, 1, V)
        self._last = logits[:, -1]
        return True

    def run(self) -> list[str]:
        """Step to the end and return each row's text."""
        while self.step():
            pass
        return [t.text for t in self.texts]


def beam_search(
    model: NextWordModel, prompts: Sequence[Sequence[int]], config: GenerationConfig, lstrip=()
) -> list[str]:
    """Deterministic beam search; returns the ``num_return_sequences`` best texts of each prompt.

    All prompts' beams run as one batch (prompts x ``num_beams`` rows). A hypothesis that ends the
    document is finished; a prompt is done once ``num_beams`` hypotheses are finished (or at
    ``max_words``, when the running beams count as finished). Hypotheses are ranked by total
    log-probability divided by ``length ** length_penalty``. Stop strings cut the finished texts.
    With ``num_beams=1`` this is exactly greedy decoding.
    """
    tok = model.tokenizer
    n_beams, vocab = config.num_beams, model.vocab_size
    rules = Rules(config, tok)
    contexts = [PromptContext.build(p, tok, config) for p in prompts]
    n_prompts = len(contexts)
    last, state = prefill(model, [c.ids for c in contexts])
    repeat = np.repeat(np.arange(n_prompts), n_beams)
    last, state = last[repeat], [s[repeat] for s in state]  # (P*B, V), [(P*B, U)]
    beams: list[list[list[int]]] = [[[] for _ in range(n_beams)] for _ in range(n_prompts)]
    scores = np.full((n_prompts, n_beams), -np.inf)
    scores[:, 0] = 0.0  # all beams start identical: only the first may expand at step one
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n_prompts)]
    done = np.zeros(n_prompts, dtype=bool)

    def normalized(score: float, ids: list[int]) -> float:
        return score / max(len(ids), 1) ** config.length_penalty

    for _ in range(config.max_words):
        flat_beams = [beams[p][b] for p in range(n_prompts) for b in range(n_beams)]
        rules.apply(last, range(len(flat_beams)), [contexts[p] for p in repeat], flat_beams)
        peak = last.max(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore"):  # rows whose every logit is -inf: done prompts only
            logp = last - (peak + np.log(np.exp(last - peak).sum(axis=-1, keepdims=True)))
        total = (scores[:, :, None] + logp.reshape(n_prompts, n_beams, vocab)).reshape(n_prompts, -1)
        total = np.nan_to_num(total, nan=-np.inf)
        width = min(2 * n_beams, total.shape[1])
        top = np.argpartition(-total, width - 1, axis=-1)[:, :width]  # (P, 2B) best candidates
        sources, tokens = (
            np.zeros((n_prompts, n_beams), dtype=np.int64),
            np.zeros((n_prompts, n_beams), dtype=np.int64),
        )
        new_scores = np.full((n_prompts, n_beams), -np.inf)
        new_beams: list[list[list[int]]] = [[[] for _ in range(n_beams)] for _ in range(n_prompts)]
        for p in range(n_prompts):
            if done[p]:
                continue
            order = top[p][np.argsort(-total[p, top[p]], kind="stable")]
            kept = 0
            for rank, candidate in enumerate(order.tolist()):
                score = float(total[p, candidate])
                if score == -np.inf:
                    break
                beam, token = divmod(candidate, vocab)
                if token == tok.eod_id:
                    if rank < n_beams:  # an end among the best candidates finishes a hypothesis
                        finished[p].append((normalized(score, beams[p][beam]), beams[p][beam]))
                    continue
                sources[p, kept], tokens[p, kept], new_scores[p, kept] = beam, token, score
                new_beams[p][kept] = [*beams[p][beam], token]
                kept += 1
                if kept == n_beams:
                    break
            if len(finished[p]) >= n_beams or kept == 0:
                done[p] = True
        beams, scores = new_beams, new_scores
        if done.all():
            break
        rows = (np.arange(n_prompts)[:, None] * n_beams + sources).reshape(-1)  # parent row of each beam
        logits, state = model.forward(tokens.reshape(-1, 1), [s[rows] for s in state])
        last = logits[:, -1]
    for p in range(n_prompts):
        if not done[p]:  # out of words: the running beams compete with the finished ones
            finished[p].extend(
                (normalized(s, b), b) for s, b in zip(scores[p], beams[p], strict=True) if s > -np.inf
            )

    texts = []
    for p, context in enumerate(contexts):
        best = sorted(finished[p], key=lambda h: -h[0])[: config.num_return_sequences]
        for _, ids in best:
            builder = TextBuilder(tok, context.previous, config.stop, bool(lstrip) and lstrip[p])
            for token in ids:
                builder.add(tok.token_of(token))
                if builder.stopped:
                    break
            texts.append(builder.text)
        texts.extend("" for _ in range(config.num_return_sequences - len(best)))
    return texts
