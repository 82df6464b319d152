"""Deterministic beam search, one step at a time.

All prompts' beams run as one batch (prompts x ``num_beams`` rows). A hypothesis that ends the document,
or that the rules leave no token to choose, is finished (a banned token is never a candidate); a prompt
is done once ``num_beams`` hypotheses are finished (or at ``max_words``, when the running beams count as
finished). Hypotheses are ranked by total log-probability (float32, the precision of the logits)
divided by ``length ** length_penalty``; candidates with equal totals rank by beam, then by token id.
A candidate whose text reaches a stop string finishes its hypothesis there, as an end of the document
does (among the ``num_beams`` best candidates; its text is cut before the stop string), so the returned
texts are distinct hypotheses that each end at their first stop string. Candidates are looked at best
first until ``num_beams`` of them go on (usually among the ``2 * num_beams`` best; with stop strings,
which can finish more of those, further down), so every step keeps ``num_beams`` running beams while
any candidate is left.
With ``num_beams=1`` this is exactly greedy decoding.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .cache import ContinuousCache, prefill_with_cache, required_cache
from .checks import check_iterable
from .errors import InterruptedStepError, WrongTypeError
from .generation import MAX_BATCH, GenerationConfig
from .logits import log_softmax
from .rules import Rules, ngram_bans
from .sampling import largest
from .step import PROMPTS_AS_IDS, StepModel, check_model, prefill, prompt_ids_array
from .stepper import stepper_for
from .text import PromptEnd, TextBuilder

__all__ = ["BeamSearch", "Hypothesis", "beam_search"]


@dataclass(frozen=True)
class Hypothesis:
    """One text a beam search returns: the text, why it ended ("end": the model ended the document or
    the rules left no word; "stop": a stop string cut it; "length": ``max_words`` ran out) and how many
    words it holds (those before a stop string's cut included)."""

    text: str
    finish_reason: str
    words: int


class BeamSearch:
    """Beam search over a batch of prompts (token ids, each starting with the end-of-document id).

    Call :meth:`step` until it returns False (or :attr:`done`), then read :meth:`texts`. Each step
    expands every running beam by one token with one batched session call. Not thread-safe: one thread
    steps a search (a second thread's :meth:`step` meanwhile is a ``RuntimeError``).

    ``lstrip[i]``: prompt ``i`` ends in a space, so its texts start without one; ``ends[i]``: how
    prompt ``i`` ends (:class:`~.text.PromptEnd`, read from its text), which shapes the start of its
    texts, in place of ``lstrip`` (``None``: each read from the prompt's ids); one per prompt.
    """

    def __init__(
        self,
        model: StepModel,
        prompts: Sequence[Sequence[int]],
        config: GenerationConfig,
        lstrip: Sequence[bool] = (),
        *,
        ends: Sequence[PromptEnd] | None = None,
    ) -> None:
        check_model(model)
        check_iterable("prompts", prompts, PROMPTS_AS_IDS, ordered=True)
        if not isinstance(config, GenerationConfig):
            raise WrongTypeError(f"config must be a GenerationConfig, got {type(config).__name__}")
        self._model, self._config = model, config
        self._stepper = stepper_for(model)  # one token per beam at every step
        self._busy = threading.Lock()  # held by step(): a second thread is refused
        self._broken: str | None = None  # the exception that cut a step part way: beams then unknown
        self._tokenizer = model.tokenizer
        self._rules = Rules(config, self._tokenizer)
        self._prompts = [prompt_ids_array(p, i, model.vocab_size) for i, p in enumerate(prompts)]
        if ends is not None and len(ends) != len(self._prompts):
            raise ValueError(f"{len(ends)} prompt ends for {len(self._prompts)} prompts; give one per prompt")
        self._ends = ends or [
            PromptEnd.of_ids(self._tokenizer, p, bool(lstrip) and lstrip[i])
            for i, p in enumerate(self._prompts)
        ]
        self._words = [self._rules.words(p) for p in self._prompts]  # what the rules read of each prompt
        n_prompts, n_beams = len(self._prompts), config.num_beams
        if not n_prompts or n_prompts * n_beams > MAX_BATCH:
            raise ValueError(
                f"{n_prompts} prompt(s) x num_beams={n_beams} beams; a search runs 1..{MAX_BATCH} beams in "
                "all"
            )
        self._cache: ContinuousCache | None = None  # with config.cache: one cache per beam
        if config.cache:
            last, state, self._cache = prefill_with_cache(model, self._prompts, required_cache(model))
        else:
            last, state = prefill(model, self._prompts)
        self._repeat = np.repeat(np.arange(n_prompts), n_beams)  # row -> prompt
        self._last, self._state = last[self._repeat], [s[self._repeat] for s in state]  # (P*B, V)
        if self._cache is not None:
            self._cache.take(self._repeat)
        self.beams: list[list[list[int]]] = [[[] for _ in range(n_beams)] for _ in range(n_prompts)]
        # Each prompt's beams as one (beams, length) array of ids, prompt included, while its beams are
        # all of one length (None once they are not): the n-gram bans of all its beams in one pass.
        # Kept only where the rules read n-grams and nothing else of the ids.
        self._tracked = bool(self._rules.ngram) and self._rules.penalty == 1
        self._ids: list[np.ndarray | None] = [
            self._fresh(p) if self._tracked else None for p in range(n_prompts)
        ]
        self._scores = np.full((n_prompts, n_beams), -np.inf)
        self._scores[:, 0] = 0.0  # all beams start identical: only the first may expand at step one
        self.finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n_prompts)]
        self._done = np.zeros(n_prompts, dtype=bool)
        self.steps = 0
        # With stop strings, each running beam's text so far: a candidate is checked against the stop
        # strings as it is chosen (one copy of its beam's builder per candidate looked at).
        self._texts: list[list[TextBuilder]] | None = None
        if config.stop:
            self._texts = [[self._builder(p)] * n_beams for p in range(n_prompts)]

    @property
    def done(self) -> bool:
        """True once every prompt's search is finished or ``max_words`` steps have run (False after an
        interrupted step: the next :meth:`step` says so)."""
        return self._broken is None and (bool(self._done.all()) or self.steps >= self._config.max_words)

    def _normalized(self, score: float, ids: list[int]) -> float:
        return score / max(len(ids), 1) ** self._config.length_penalty

    def step(self) -> bool:
        """Expand every running beam by one token; False once the search is over.

        A search is driven by one thread: a step while another thread's step runs is a ``RuntimeError``
        (not a silently corrupted search)."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                "BeamSearch.step() was called while another thread was stepping this search; a search is "
                "driven by one thread (use one BeamSearch per thread, or a lock around its calls)"
            )
        try:
            self._check_whole()
            return self._step()
        except BaseException as exc:
            if self._broken is None and not isinstance(exc, InterruptedStepError):
                self._broken = type(exc).__name__  # the beams, scores and states may now disagree
            raise
        finally:
            self._busy.release()

    def _check_whole(self) -> None:
        if self._broken is not None:
            raise InterruptedStepError("BeamSearch", self._broken, "start a new search")

    def _step(self) -> bool:
        """:meth:`step`'s work, under the search's lock."""
        if self.done:
            return False
        config, eod = self._config, self._tokenizer.eod_id
        n_prompts, n_beams, vocab = len(self._prompts), config.num_beams, self._model.vocab_size
        last = self._last
        flat = [self.beams[p][b] for p in range(n_prompts) for b in range(n_beams)]
        if self._cache is not None:
            self._cache.mix_logits(last)
        self._apply_rules(last, flat)
        logp = log_softmax(last, dtype=np.float32)  # (P*B, V); NaN rows: every token banned
        exhausted = np.isnan(logp[:, 0])  # a NaN row is NaN throughout
        if exhausted.any():
            self._finish_exhausted(exhausted)
            logp[exhausted] = -np.inf  # no candidate from those rows
        # Banned tokens and beams not in use (score -inf) total -inf: never candidates.
        total = (self._scores[:, :, None] + logp.reshape(n_prompts, n_beams, vocab)).reshape(n_prompts, -1)
        width = min(2 * n_beams, total.shape[1])
        sources = np.zeros((n_prompts, n_beams), dtype=np.int64)
        tokens = np.zeros((n_prompts, n_beams), dtype=np.int64)
        new_scores = np.full((n_prompts, n_beams), -np.inf)
        new_beams: list[list[list[int]]] = [[[] for _ in range(n_beams)] for _ in range(n_prompts)]
        texts = self._texts
        new_texts = [list(beams) for beams in texts] if texts is not None else None
        for p in range(n_prompts):
            if self._done[p]:
                continue
            kept = 0
            for rank, candidate in enumerate(_ranked(total[p], width)):
                score = float(total[p, candidate])
                if score == -np.inf:
                    break
                beam, token = divmod(candidate, vocab)
                if token == eod:
                    if rank < n_beams:  # an end among the best candidates finishes a hypothesis
                        ids = self.beams[p][beam]
                        self.finished[p].append((self._normalized(score, ids), ids))
                    continue
                if texts is not None and new_texts is not None:
                    text = copy.copy(texts[p][beam])
                    text.add(self._tokenizer.token_of(token))
                    if text.stopped:  # a stop string: finished as an end is, with this word
                        if rank < n_beams:
                            ids = [*self.beams[p][beam], token]
                            self.finished[p].append((self._normalized(score, ids), ids))
                        continue
                    new_texts[p][kept] = text
                sources[p, kept], tokens[p, kept], new_scores[p, kept] = beam, token, score
                new_beams[p][kept] = [*self.beams[p][beam], token]
                kept += 1
                if kept == n_beams:
                    break
            if len(self.finished[p]) >= n_beams or kept == 0:
                self._done[p] = True
        if self._tracked:
            self._ids = [self._grown(p, sources[p], tokens[p], new_beams[p]) for p in range(n_prompts)]
        self.beams, self._scores, self._texts = new_beams, new_scores, new_texts
        self.steps += 1
        if self.done:
            return False
        rows = (np.arange(n_prompts)[:, None] * n_beams + sources).reshape(-1)  # parent row of each beam
        self._last, self._state = self._stepper.step(tokens.reshape(-1), [s[rows] for s in self._state])
        if self._cache is not None:  # each beam continues its parent's cache with its token
            self._cache.take(rows)
            self._cache.observe(tokens.reshape(-1), self._state[-2])
        return True

    def _builder(self, p: int) -> TextBuilder:
        """A text builder for a beam of prompt ``p`` that holds no word yet."""
        return self._ends[p].builder(self._tokenizer, self._config.stop)

    def _finish_exhausted(self, exhausted: np.ndarray) -> None:
        """Finish, as they stand, the hypotheses of the running beams (rows) flagged in ``exhausted``:
        the rules left them no token to choose (as sampling ends a text there)."""
        n_beams = self._config.num_beams
        for row in np.flatnonzero(exhausted).tolist():
            p, beam = divmod(row, n_beams)
            score = float(self._scores[p, beam])
            if not self._done[p] and score > -np.inf:  # a beam in use
                ids = self.beams[p][beam]
                self.finished[p].append((self._normalized(score, ids), ids))

    def _apply_rules(self, logits: np.ndarray, flat: list[list[int]]) -> None:
        """The decoding rules on every beam's logits: its n-gram bans read from its prompt's ids array
        where there is one, else (and for the repetition penalty) from a history of its ids."""
        rules, n_beams = self._rules, self._config.num_beams
        lengths = [len(beam) for beam in flat]
        if rules.penalty == 1 and not rules.ngram:  # no rule reads the beams' ids
            rules.apply(logits, (), lengths)
            return
        if self._tracked and all(ids is not None for ids in self._ids):
            found = [ngram_bans(ids, rules.ngram) for ids in self._ids if ids is not None]
            rows = np.concatenate([p * n_beams + where for p, (where, _) in enumerate(found)])
            rules.apply(logits, (), lengths, (rows, np.concatenate([tokens for _, tokens in found])))
            return
        histories = [
            rules.sequence_history(np.concatenate([self._words[p], np.asarray(beam, dtype=np.int64)]))
            for p, beam in zip(self._repeat, flat, strict=True)
        ]
        rules.apply(logits, histories, lengths)

    def _fresh(self, p: int) -> np.ndarray:
        """Prompt ``p``'s ids array (the ids the rules read) for beams that hold no token yet."""
        return np.tile(self._words[p], (self._config.num_beams, 1))

    def _grown(
        self, p: int, sources: np.ndarray, tokens: np.ndarray, beams: list[list[int]]
    ) -> np.ndarray | None:
        """Prompt ``p``'s ids array after a step whose new beams are ``beams`` (beam ``b`` extends beam
        ``sources[b]`` by ``tokens[b]``), or None where they are not all of one length."""
        if not any(beams):  # a prompt that is done, or one whose beams found no token
            return self._fresh(p)
        ids = self._ids[p]
        if ids is None or not all(beams):  # some beams empty: lengths differ
            return None
        return np.concatenate([ids[sources], tokens[:, None]], axis=1)

    def texts(self) -> list[str]:
        """The ``num_return_sequences`` best texts of each prompt, prompt-major ('' where fewer exist)."""
        return [h.text for h in self.results()]

    def results(self) -> list[Hypothesis]:
        """:meth:`texts` with why each text ended and its word count, prompt-major (an empty text with
        reason "end" where a prompt has fewer hypotheses)."""
        self._check_whole()
        config, tok = self._config, self._tokenizer
        results = []
        for p in range(len(self._prompts)):
            ranked = [(score, ids, "end") for score, ids in self.finished[p]]
            if not self._done[p]:  # out of words: the running beams compete with the finished ones
                ranked.extend(
                    (self._normalized(s, b), b, "length")
                    for s, b in zip(self._scores[p], self.beams[p], strict=True)
                    if s > -np.inf
                )
            best = sorted(ranked, key=lambda h: -h[0])[: config.num_return_sequences]
            for _, ids, reason in best:
                builder = self._builder(p)
                words = 0
                for token in ids:
                    builder.add(tok.token_of(token))
                    words += 1
                    if builder.stopped:
                        reason = "stop"
                        break
                results.append(Hypothesis(builder.text, reason, words))
            results.extend(Hypothesis("", "end", 0) for _ in range(config.num_return_sequences - len(best)))
        return results


def _ranked(row: np.ndarray, width: int) -> Iterator[int]:
    """The candidates of one prompt's totals ``row`` (beams x vocab), best first, equal totals by beam
    then token: the ``width`` best (and any tied with the last), then, for a caller that has not filled
    its beams with them (stop strings can finish more than ``num_beams`` of them), the next ones, the
    window widened fourfold each time. Each window's order begins with the previous one's."""
    done = 0
    while True:
        best, values = largest(row, width)  # the ``width`` best candidates and any tied with the last
        order = best[np.argsort(-values, kind="stable")]  # best first, ties by beam then token
        yield from order[done:].tolist()
        if width >= len(row):
            return
        done, width = len(order), min(4 * width, len(row))


def beam_search(
    model: StepModel,
    prompts: Sequence[Sequence[int]],
    config: GenerationConfig,
    ends: Sequence[PromptEnd] | None = None,
) -> list[str]:
    """Run :class:`BeamSearch` to the end; returns the ``num_return_sequences`` best texts of each prompt
    (each written after ``ends[i]``; ``None``: after its ids)."""
    search = BeamSearch(model, prompts, config, ends=ends)
    while search.step():
        pass
    return search.texts()
