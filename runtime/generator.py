"""Step-level generation: a batch of sequences that join and leave between steps.

A :class:`Generator` holds any number of sequences ("rows"), each continuing its own prompt with its
own options. Every :meth:`Generator.step` feeds the next piece of newly added prompts (one bounded
session call for all of them; each prompt of an :meth:`~Generator.add` call once, however many
sequences it asks for: its rows then start from copies of its state), picks one token for every
running row, and runs one batched single-token session call for the rows that go on. ``generate()``,
``stream()`` and the server's continuous batching are all loops over ``step()``.

A row's random stream is its own, and with an fp32 model its logits are those it gets alone, so its text
does not depend on the other rows in the batch. An int8 model's rows share onnxruntime's dynamic
activation quantization (one scale per tensor of a session call), so their logits move with their
neighbours, by up to about 0.1, and a seeded text in a batch usually parts from its text alone after a
few words (measured in docs/serving.md).
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from .batch import FINISH_REASONS, Batch, Update, finish
from .cache import ContinuousCache, required_cache
from .checks import check_int, check_iterable, wrong_type
from .errors import InterruptedStepError, WrongTypeError
from .generation import GenerationConfig
from .rows import Group, Row
from .rules import Rules
from .step import PROMPT_CHUNK, PROMPTS_AS_IDS, StepModel, check_model, prefill_round, prompt_ids_array
from .stepper import TokenStepper, stepper_for
from .text import PromptEnd

__all__ = ["FINISH_REASONS", "Generator", "Update"]  # FINISH_REASONS and Update: from .batch


class Generator:
    """A batch of sequences generated step by step; rows may be added and cancelled between steps.

    Create one with ``model.generator()``, whose :meth:`add` defaults are the model file's decoding
    defaults (``Generator(model)`` starts from ``GenerationConfig()``'s own instead), :meth:`add`
    prompts, and call :meth:`step` until :attr:`done`::

        gen = model.generator()
        rows = gen.add(["a neural network", "the processor"], GenerationConfig(max_words=20, seed=1))
        while not gen.done:
            for update in gen.step():
                print(update.row, repr(update.text), update.finish_reason)

    The rows of one :meth:`add` call are seeded exactly as ``model.generate`` seeds the rows of one call
    with the same prompts and options, so with an fp32 model each row's text equals ``generate``'s,
    whatever else runs in the batch (an int8 model's: see the module docstring). A generator is not
    thread-safe: one thread drives it. A call of :meth:`step`, :meth:`run`, :meth:`add` or a step of
    :meth:`pieces` while another thread is in one of them is a ``RuntimeError``; :meth:`cancel`,
    :meth:`release` and the readers are not checked, so call them from the driving thread too (or hold
    your own lock around every call).

    ``chunk``: prompt tokens fed per session call (a prompt longer than that is fed over several steps);
    ``stepper``: the :class:`~.stepper.TokenStepper` that steps the rows (one no other loop uses while
    this generator steps), else a new one of the model's.
    """

    def __init__(
        self,
        model: StepModel,
        defaults: GenerationConfig | None = None,
        chunk: int = PROMPT_CHUNK,
        stepper: TokenStepper | None = None,
    ):
        check_model(model)
        if defaults is not None and not isinstance(defaults, GenerationConfig):
            raise wrong_type("defaults", "a GenerationConfig", defaults)
        check_int("chunk", chunk, 1, None)
        self._model = model
        self._tokenizer = model.tokenizer
        self._tokens = self._tokenizer.table  # id -> token, read once per generated token
        self._defaults = defaults  # None: GenerationConfig(), built when a row needs it
        self._chunk = chunk
        self._rows: dict[int, Row] = {}  # every row not released
        self._feeding: list[Group] = []  # groups whose prompts are being fed
        self._cancelled: set[int] = set()
        self._next_id = 0
        # The rows that decode, stepped one token per row by ``stepper`` (one no other loop uses while
        # this generator steps), else by the model's own new one.
        self._batch = Batch(model, stepper or stepper_for(model))
        self._busy = threading.Lock()  # held by step() and add_ids(): a second thread is refused
        # what interrupted a step part way (Ctrl-C between choosing the tokens and feeding them): the
        # rows' states are then unknown, so the generator steps and adds no more
        self._broken: str | None = None  # the exception's type

    # ----------------------------------------------------------------- adding and removing rows

    def add(
        self,
        prompts: str | Sequence[str],
        config: GenerationConfig | None = None,
        *,
        logprobs: int | None = None,
    ) -> list[int]:
        """Queue ``prompts`` (a string or a list of strings) and return their new row ids.

        Each prompt gets ``config.num_return_sequences`` rows (prompt-major). ``config`` defaults to the
        generator's defaults (the model's decoding defaults for ``model.generator()``); beam search is
        not stepped here (``num_beams`` must be 1). With ``logprobs=k`` every update carries the chosen
        token's log-probability under the model (the softmax of its raw logits, before temperature and
        rules) and the ``k`` most likely tokens with theirs.
        """
        if not isinstance(prompts, str) and (  # a set or a dict has no order to give rows in
            isinstance(prompts, bytes | bytearray | dict | set | frozenset)
            or not isinstance(prompts, Iterable)
        ):
            raise WrongTypeError(
                f"prompts must be a string or a list of strings, got {type(prompts).__name__}"
            )
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                kind = type(prompt).__name__
                raise WrongTypeError(f"prompt must be a string or a list of strings; item {i} is a {kind}")
        tok = self._tokenizer
        tokens = [tok.tokenize(p) for p in prompts]  # as Tokenizer.encode reads them, once
        ids = [[tok.eod_id, *map(tok.id_of, t)] for t in tokens]
        # how each ends, from its tokens as written: a mark the vocabulary lacks still counts
        ends = [PromptEnd.of_tokens(tok, t, p[-1:].isspace()) for t, p in zip(tokens, prompts, strict=True)]
        return self._add_checked(ids, config, logprobs, ends)

    def add_ids(
        self,
        prompts: Sequence[Sequence[int]],
        config: GenerationConfig | None = None,
        *,
        logprobs: int | None = None,
        lstrip: Sequence[bool] = (),
    ) -> list[int]:
        """:meth:`add` for prompts given as token ids, each starting with the end-of-document id when it
        starts a document. ``lstrip[i]``: prompt ``i`` ends in a space, so its text starts without one."""
        check_iterable("prompts", prompts, PROMPTS_AS_IDS, ordered=True)
        return self._add_checked(prompts, config, logprobs, lstrip=lstrip)

    def _add_checked(
        self,
        prompts: Sequence[Sequence[int]],
        config: GenerationConfig | None,
        logprobs: int | None,
        ends: Sequence[PromptEnd] | None = None,
        lstrip: Sequence[bool] = (),
    ) -> list[int]:
        """:meth:`add_ids`, each prompt's text written after ``ends[i]`` (``None``: read from its ids)."""
        given = config is not None
        if not given:
            config = self._defaults or GenerationConfig()
        if not isinstance(config, GenerationConfig):
            raise WrongTypeError(
                f"config must be a GenerationConfig, got {type(config).__name__}; options by name go to "
                "GenerationConfig(...) or GenerationConfig.from_options(model.info.generation, ...)"
            )
        if config.num_beams != 1:
            # the generator's defaults are, unless model.generator() was told otherwise, the model file's
            where = (
                ""
                if given
                else (
                    " (the generator's default, which model.generator() takes from the model file's decoding "
                    "defaults: pass num_beams=1 to model.generator())"
                )
            )
            raise ValueError(f"a Generator samples; num_beams must be 1, got {config.num_beams}{where}")
        if logprobs is not None:
            if isinstance(logprobs, bool) or not isinstance(logprobs, numbers.Integral):
                raise wrong_type("logprobs", "an integer in 0..20", logprobs)
            if not 0 <= logprobs <= 20:
                raise ValueError(f"logprobs must be an integer in 0..20, got {logprobs!r}")
            logprobs = int(logprobs)
        arrays = [prompt_ids_array(p, i, self._model.vocab_size) for i, p in enumerate(prompts)]
        if ends is None:
            ends = [
                PromptEnd.of_ids(self._tokenizer, a, bool(lstrip and lstrip[i])) for i, a in enumerate(arrays)
            ]
        self._enter("add()")
        try:
            return self._add(arrays, config, logprobs, ends)
        finally:
            self._busy.release()

    def _add(
        self,
        arrays: list[np.ndarray],
        config: GenerationConfig,
        logprobs: int | None,
        ends: Sequence[PromptEnd],
    ) -> list[int]:
        group = Group(config, Rules(config, self._tokenizer), logprobs)
        per_prompt = config.num_return_sequences
        seeds = np.random.SeedSequence(config.seed).spawn(len(arrays) * per_prompt)  # one stream per row
        for index, seed in enumerate(seeds):
            p = index // per_prompt
            text = ends[p].builder(self._tokenizer, config.stop)
            row = Row(self._next_id, group, arrays[p], np.random.default_rng(seed), text)
            self._next_id += 1
            group.rows.append(row)
            self._rows[row.id] = row
        if group.rows:  # each prompt is fed once; its rows get copies of its state when they join
            group.prompts = arrays
            group.owner = np.arange(len(group.rows), dtype=np.int64) // per_prompt
            group.fed = np.zeros(len(arrays), dtype=np.int64)
            group.state = self._model.initial_state(len(arrays))
            if config.cache:
                settings = required_cache(self._model)
                group.cache = ContinuousCache(settings, len(arrays), group.state[-2].shape[1])
            group.last = np.empty((len(arrays), self._model.vocab_size), dtype=np.float32)
            self._feeding.append(group)
        return [row.id for row in group.rows]

    def cancel(self, row: int) -> None:
        """Finish ``row`` at the next step (finish reason ``"cancelled"``); unknown or finished rows are
        ignored."""
        _check_row(row)
        if row in self._rows and not self._rows[row].finished:
            self._cancelled.add(row)

    def release(self, row: int) -> None:
        """Forget a finished row (its text and tokens); raises ``ValueError`` while it is running."""
        _check_row(row)
        found = self._rows.get(row)
        if found is not None and not found.finished:
            raise ValueError(f"row {row} is still running; cancel it first")
        self._rows.pop(row, None)

    # ----------------------------------------------------------------- reading rows

    @property
    def done(self) -> bool:
        """True when no row is being fed or generated (False after an interrupted step: the next
        :meth:`step` says so)."""
        return self._broken is None and not self._batch.rows and not self._feeding

    @property
    def active(self) -> int:
        """Rows being fed or generated."""
        return len(self._batch.rows) + sum(len(g.rows) for g in self._feeding)

    def text(self, row: int) -> str:
        """The row's text so far (stop strings cut); an unknown or released row is a ``ValueError``."""
        return self._row(row).text.text

    def tokens(self, row: int) -> list[int]:
        """The ids the row generated so far; an unknown or released row is a ``ValueError``."""
        return list(self._row(row).generated)

    def finish_reason(self, row: int) -> str | None:
        """Why the row finished (see :data:`FINISH_REASONS`), or None while it runs; an unknown or released
        row is a ``ValueError``."""
        return self._row(row).reason

    def _row(self, row: int) -> Row:
        _check_row(row)
        try:
            return self._rows[row]
        except KeyError:
            raise ValueError(f"no row {row} in this generator (never added, or released)") from None

    # ----------------------------------------------------------------- stepping

    def step(self) -> list[Update]:
        """One step: feed prompts, pick a token for every running row, run the batch one token on.

        Returns an update for every row that chose a token or finished in this step.
        """
        self._enter("step()")
        try:
            updates: list[Update] = []
            self._advance(updates)
            return updates
        finally:
            self._busy.release()

    def _enter(self, call: str) -> None:
        """Take the generator's lock without waiting (the caller releases it): a call while another
        thread's ``step()``, ``run()`` or ``add()`` runs is a RuntimeError, not a silently corrupted
        batch. A plain acquire, as ``step()`` runs once per generated token."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                f"{call} was called while another thread was stepping or adding to this Generator; a "
                "Generator is driven by one thread (use one per thread, or a lock around its calls)"
            )
        if self._broken is not None:
            self._busy.release()
            raise InterruptedStepError(
                "Generator",
                self._broken,
                "read what its rows wrote so far (text(), tokens()) and start a new one (model.generator()) "
                "for what is left",
            )

    def run(self) -> None:
        """Step until every row is finished."""
        self._enter("run()")
        try:
            while not self.done:
                self._advance(None)
        finally:
            self._busy.release()

    def pieces(self, row: int) -> Iterator[str]:
        """Step until ``row`` finishes, yielding its new text whenever some is safe to hand out: the
        texts its updates would carry, without building the updates (the other rows step along). Each
        step holds the generator's lock as :meth:`step` does: another thread's ``step()`` meanwhile is a
        ``RuntimeError``, and so is this one's while another thread steps. An unknown row, or a row id
        that is no ``int``, is refused at the call, not at the first piece."""
        return self._pieces(self._row(row))

    def _pieces(self, found: Row) -> Iterator[str]:
        while True:
            finished = found.finished  # a row that finished earlier still hands out what is left
            piece = found.text.take(final=finished)
            if piece:
                yield piece
            if finished:
                return
            self._enter("pieces()")
            try:
                self._advance(None)
            finally:
                self._busy.release()

    def __iter__(self) -> Iterator[list[Update]]:
        while not self.done:
            yield self.step()

    def _advance(self, updates: list[Update] | None) -> None:
        try:
            if self._cancelled:
                self._cancel_rows(updates)
            if self._feeding:
                self._feed_prompts(updates)
            if self._batch.rows:
                self._batch.decode(updates)
        except BaseException as exc:  # the rows' tokens, states and prompts may now disagree
            self._broken = type(exc).__name__
            raise

    def _feed_prompts(self, updates: list[Update] | None) -> None:
        """One prefill round for every group still being fed; groups whose rows are all fed join the batch.

        Groups with a continuous cache are fed one token per round in a call of their own: the cache
        needs the state after every position."""
        groups, self._feeding = self._feeding, []
        cached = [g for g in groups if g.cache is not None]
        if cached:
            groups = [g for g in groups if g.cache is None]
            self._feed_round(cached, 1, updates)
        if groups:
            self._feed_round(groups, self._chunk, updates)

    def _feed_round(self, groups: list[Group], chunk: int, updates: list[Update] | None) -> None:
        prompts = [prompt for g in groups for prompt in g.prompts]
        fed = np.concatenate([g.fed for g in groups])
        state = [np.concatenate(parts) for parts in zip(*(g.state for g in groups), strict=True)]
        todo = np.flatnonzero(fed < [len(p) for p in prompts]) if chunk == 1 else None
        finished, logits = prefill_round(self._model, prompts, fed, state, chunk)
        offsets = np.cumsum([0, *(len(g.prompts) for g in groups)])
        for g, start, stop in zip(groups, offsets[:-1], offsets[1:], strict=True):
            g.fed, g.state = fed[start:stop], [s[start:stop] for s in state]
            if g.cache is not None:  # the prompts fed one token: the state after it joins the cache
                assert todo is not None  # groups with a cache are fed one token at a time
                local = todo[(todo >= start) & (todo < stop)] - start
                tokens = [g.prompts[j][g.fed[j] - 1] for j in local.tolist()]
                g.cache.observe(np.asarray(tokens, dtype=np.int64), g.state[-2][local], local)
            mine = (finished >= start) & (finished < stop)
            g.last[finished[mine] - start] = logits[mine]
            if g.fed_all:
                self._join(g, updates)
            else:
                self._feeding.append(g)

    def _join(self, group: Group, updates: list[Update] | None) -> None:
        """Append a fed group's rows to the running batch, each with a copy of its prompt's state,
        logits and cache (rows with ``max_words=0`` finish at once)."""
        if group.config.max_words == 0:
            for row in group.rows:
                finish(row, "length", None, updates)
            return
        owner = group.owner
        group.state = [s[owner] for s in group.state]
        group.last = group.last[owner]
        if group.cache is not None:
            group.cache.take(owner)
        self._batch.join(group)

    def _cancel_rows(self, updates: list[Update] | None) -> None:
        cancelled, self._cancelled = self._cancelled, set()
        for g in list(self._feeding):
            keep = [j for j, row in enumerate(g.rows) if row.id not in cancelled]
            if len(keep) < len(g.rows):
                for row in g.rows:
                    if row.id in cancelled:
                        finish(row, "cancelled", None, updates)
                g.rows = [g.rows[j] for j in keep]
                used, g.owner = np.unique(g.owner[keep], return_inverse=True)  # the prompts still wanted
                g.prompts = [g.prompts[p] for p in used.tolist()]
                g.fed, g.last = g.fed[used], g.last[used]
                g.state = [s[used] for s in g.state]
                if g.cache is not None:
                    g.cache.take(used)
                if not g.rows:
                    self._feeding.remove(g)
                elif g.fed_all:  # only the prompts still being fed were dropped
                    self._feeding.remove(g)
                    self._join(g, updates)
        self._batch.cancel(cancelled, updates)


def _check_row(row: object) -> None:
    """A row id is an ``int`` that :meth:`Generator.add` returned: another type is a ``WrongTypeError``
    (a list would fail as unhashable, and ``"3"`` would pass as a row never added)."""
    if isinstance(row, bool) or not isinstance(row, numbers.Integral):
        raise wrong_type("row", "a row id (an int that add() returned)", row)
