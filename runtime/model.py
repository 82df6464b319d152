"""Loading a model file and generating text from it with onnxruntime."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .beam import beam_search
from .cache import CacheConfig
from .checks import check_int, wrong_type
from .errors import WrongTypeError
from .generation import MAX_BATCH, GenerationConfig, call_config, stream_config
from .generator import Generator
from .limits import LoadLimits
from .model_check import inspect_model_file
from .model_file import (
    INPUT_IDS,
    LOGITS,
    LOGITS_FROM,
    ModelInfo,
    read_model_info,
    state_input_names,
    state_output_names,
)
from .probe import WideCheck, probe_model
from .scoring import TextScore, next_words, prompt_ids, score_text
from .session import run_session, wrong_shapes
from .session_plan import ONE, PAIR, WIDE, SessionPlan
from .sessions import (
    HoldsSessions,
    Provider,
    choose_providers,
    cpu_providers,
    default_session_options,
    make_session,
    optional_session,
    quiet_options,
    usable_cores,
    warn_about_int8,
)
from .step import PROMPT_CHUNK, State, check_state, checked_ids, checked_logits_from, feed_chunks
from .stepper import BoundStepper
from .text import PromptEnd
from .tokenizer import Tokenizer

__all__ = ["NextWordModel", "State", "default_session_options", "load", "usable_cores"]

logger = logging.getLogger(__name__)

_LOGITS_FROM = {n: np.asarray(n, dtype=np.int64) for n in (0, -1)}  # the two values every loop passes
IDLE_STEPPERS = 4  # steppers a model keeps for later calls (each holds its batch's logits and state)


def load(
    model: str | os.PathLike[str] | bytes,
    providers: Sequence[Provider] | None = None,
    session_options: ort.SessionOptions | None = None,
    *,
    limits: LoadLimits | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> NextWordModel:
    """Load a nextword ``.onnx`` file (a path, or the file's bytes) for generation.

    ``providers`` lists onnxruntime execution providers in order of preference, for example
    ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` with onnxruntime-gpu installed; the default
    is the CPU. An entry may carry options, as onnxruntime takes them: ``("CUDAExecutionProvider",
    {"device_id": 1})``. Providers this onnxruntime build lacks are skipped with a warning. Or
    ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, where a GPU that cannot be used is an error.

    Threads: by default (neither ``threads`` nor ``session_options``) a step on the CPU runs on one
    onnxruntime thread, except a step that runs alone (no other step of this process in progress, or just
    ended on another thread) on a machine with two cores or more: that one runs on two threads from a pool
    that spins between steps (a second session of the same file), a quarter faster for the bundled model at
    one row (docs/benchmarks.md, "Session threads"). A call must give the same text whatever else runs, so
    both sessions step the same random rows (:class:`~.probe.WideCheck`): one row at load, which decides
    whether the second session is kept, and each larger batch size when a step first has that many rows. An
    int8 model's numbers depend on the thread count from a few rows on (onnxruntime quantizes each thread's
    rows on its own; the bundled model's from 5 rows): such a batch of 5 rows or more runs on two threads
    whatever else runs (alone on the second session, else on a third whose pool does not spin, made at the
    first such step, on any number of cores), and a smaller one on one thread; an fp32 model's numbers match
    at any batch. The steps and their sessions: :mod:`~nextword.runtime.session_plan`. ``threads=n`` runs
    every step on ``n`` threads (:func:`default_session_options`); ``session_options`` replaces all of that.

    The file is checked before onnxruntime sees it (size, structure, versions, operators, no external
    data, bounded memory and work per step; see :func:`~nextword.runtime.model_check.check_model_file`
    and ``docs/security.md``); ``limits`` widens or tightens those checks. Then one probe step on a
    batch of 2 proves the graph makes outputs of the shapes and types its metadata declares.

    Raises :class:`ModelFileError` when the file is missing, is not ONNX, is not a nextword model, or its
    graph does not do what its metadata says (:class:`ModelLimitError`, one, past ``limits``); ``ValueError``
    for ``threads`` outside 1..256 or with ``session_options``, ``device`` with ``providers``, or a
    ``device`` not ``cpu``/``cuda``/``cuda:N`` or one this onnxruntime cannot use.
    """
    if threads is not None and session_options is not None:
        raise ValueError("give threads or session_options, not both (session_options sets the threads too)")
    chosen = choose_providers(providers, device)  # a wrong device before the file is read
    checked = inspect_model_file(model, limits)  # the bytes onnxruntime gets; nothing is read twice
    source = checked.name
    default = session_options is None and threads is None
    if session_options is None:
        session_options = quiet_options(1 if threads is None else threads, spinning=False)
    session = make_session(checked.data, session_options, chosen, source, device)
    info = read_model_info(session, source, checked.metadata)
    warn_about_int8(session, info.config, source, quantized=checked.quantized)
    probe_model(session, info, source)
    cpu = cpu_providers(session, chosen) if default else None  # where it runs: a GPU may have fallen back
    if cpu is None:
        return NextWordModel(session, info, source)
    wide, check = None, None
    if usable_cores() >= 2:
        wide = optional_session(checked.data, quiet_options(2, spinning=True), cpu, source)
    if wide is not None:
        probe_model(wide, info, source)
        check = WideCheck(session, wide, info, source)
        if not check.allows(1):  # a single row's numbers differ: the second session would never run
            wide, check = None, None
    make_pair = partial(optional_session, checked.data, quiet_options(2, spinning=False), cpu, source)
    plan = SessionPlan(session, info, source, wide=wide, check=check, make_pair=make_pair)
    return NextWordModel(session, info, source, plan=plan)


class _PlanSession:
    """A model attribute that reads and replaces one of its plan's sessions (tests and benchmarks wrap
    them to count runs)."""

    def __init__(self, index: int, doc: str) -> None:
        self.index, self.__doc__ = index, doc

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        return self if model is None else model._plan.sessions[self.index]

    def __set__(self, model: Any, session: Any) -> None:
        model._plan.sessions[self.index] = session


class NextWordModel(HoldsSessions):
    """A loaded model: a stateful onnxruntime session plus the tokenizer from the same file.

    Create one with :func:`load`. A model holds no state between calls: one instance serves many threads.
    ``info``: the file's :class:`~.model_file.ModelInfo`; ``source``: its path, or ``"<model bytes>"``.
    """

    session = _PlanSession(ONE, "The one-thread session (or the only one): the steps no other one takes.")
    wide_session = _PlanSession(
        WIDE, "The session of two spinning threads for steps that run alone (see :func:`load`), or None."
    )
    pair_session = _PlanSession(
        PAIR,
        "The session of two threads without spinning for batches whose numbers differ on two threads "
        "(see :func:`load`); None until a step first needs it, and for models that never do.",
    )

    def __init__(
        self, session: ort.InferenceSession, info: ModelInfo, source: str, *, plan: SessionPlan | None = None
    ) -> None:
        # Sessions a step may run on and which it takes (load, session_plan); one session runs every step.
        self._plan = plan if plan is not None else SessionPlan.single(session, info, source)
        self.info, self.source = info, source
        self._idle: list[BoundStepper] = []  # steppers of finished calls, bound already (_borrow_stepper)
        self._state_inputs = state_input_names(len(info.state_sizes))
        self._outputs = [LOGITS, *state_output_names(len(info.state_sizes))]

    @property
    def tokenizer(self) -> Tokenizer:
        """The file's tokenizer (``info.tokenizer``): text to ids and back."""
        return self.info.tokenizer

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, the 3 special ones included: the width of the logits."""
        return self.info.vocab_size

    @property
    def wide_rows(self) -> int:
        """The most rows a step may run on the two-thread session (same numbers as one thread; 0 without
        that session, :data:`~.probe.MAX_ROWS` for any number): every check still to run, run now."""
        return self._plan.wide_rows

    @property
    def cache_settings(self) -> CacheConfig | None:
        """The continuous-cache settings stored in the file (tuned at export), or None."""
        return self.info.cache

    def summary(self) -> dict[str, Any]:
        """What the file says about itself as plain JSON values: sizes, config, metrics, quality and
        parity figures, cache settings, versions, provenance and decoding defaults (``nextword info
        --json``, the server's ``/v1/models``)."""
        info, path = self.info, Path(self.source)
        config = info.config
        if info.provenance is not None:  # shown once, as read, under "provenance"
            config = {key: value for key, value in config.items() if key != "provenance"}
        return {
            "file": self.source,
            "bytes": path.stat().st_size if path.is_file() else None,
            "format_version": info.format_version,
            "vocab_size": info.vocab_size,
            "tokenizer_version": self.tokenizer.version,
            "layers": len(info.state_sizes),
            "units": list(info.state_sizes),
            "config": config,
            "metrics": info.metrics.get("best") or {},
            "quality": info.quality,
            "parity": info.parity,
            "cache": info.cache.to_dict() if info.cache else None,
            "versions": info.versions,
            "provenance": info.provenance.to_dict() if info.provenance else None,
            "generation_defaults": info.generation.changes(),
        }

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually uses."""
        return self.session.get_providers()

    def __repr__(self) -> str:
        return (
            f"NextWordModel({self.source!r}, vocab_size={self.vocab_size}, "
            f"layers={len(self.info.state_sizes)}, units={list(self.info.state_sizes)})"
        )

    # ----------------------------------------------------------------- the step function

    def initial_state(self, batch_size: int = 1) -> State:
        """Zero LSTM state for ``batch_size`` sequences: the state at the start of a text."""
        check_int("batch_size", batch_size, 0, None)
        return [
            np.zeros((batch_size, units), dtype=np.float32)
            for units in self.info.state_sizes
            for _ in ("h", "c")
        ]

    def forward(self, input_ids: np.ndarray, state: State, logits_from: int = 0) -> tuple[np.ndarray, State]:
        """One session call: ``input_ids`` (batch, time) and state in; logits and the state after the
        last position out.

        The logits are those of positions ``logits_from`` on, as in ``logits[:, logits_from:]``: shape
        (batch, time, vocab) by default, (batch, 1, vocab) with ``logits_from=-1``. A format-2 file
        skips the output layer, the graph's largest matrix product, at the other positions; with a
        format-1 file the graph computes them all and the unwanted ones are dropped. ``logits_from``
        must select at least one position: ``-time <= logits_from < time``. Ids that are not (batch,
        time) integers of the vocabulary, and a state of other shapes, are a ``ValueError``.
        """
        ids = checked_ids(input_ids, self.info.vocab_size)
        check_state(state, len(ids), self.info.state_sizes)
        positions = ids.shape[-1]
        logits_from = checked_logits_from(logits_from, positions)
        feed: dict[str, Any] = dict(zip(self._state_inputs, state, strict=True))
        feed[INPUT_IDS] = ids
        if self.info.has_logits_from:
            cached = _LOGITS_FROM.get(logits_from)
            feed[LOGITS_FROM] = cached if cached is not None else np.asarray(logits_from, dtype=np.int64)
        session = self._plan.sessions[self._plan.choose(len(ids))]
        logits, *new_state = run_session(session, self._outputs, feed, self.source)
        # The probe at load tried one batch size and length; a graph can still break on others. A wrong
        # shape here would surface as a numpy error far away, or as a score over the wrong words.
        batch, wanted, vocab = len(ids), positions, self.info.vocab_size  # checked in about 0.4 us
        if logits_from and self.info.has_logits_from:
            wanted = positions - logits_from if logits_from > 0 else -logits_from
        if logits.shape != (batch, wanted, vocab):
            raise wrong_shapes(self.source, ids.shape, logits, new_state, (batch, wanted, vocab))
        for rows in new_state:
            if len(rows) != batch:
                raise wrong_shapes(self.source, ids.shape, logits, new_state, (batch, wanted, vocab))
        if logits_from and not self.info.has_logits_from:
            logits = logits[:, logits_from:]
        return logits, new_state

    def stepper(self) -> BoundStepper:
        """A stepper for loops that feed one token per row at every call (generation, beam search,
        scoring with the cache): ``stepper.step(tokens, state)`` gives what ``forward(tokens[:, None],
        state, logits_from=-1)`` gives, logits (rows, vocab) and the new state, bit for bit, without
        building a feed or allocating results at every call (see :mod:`nextword.runtime.stepper` for how
        long its results stay valid). One per loop: a stepper is not thread-safe; the model is."""
        extra = {LOGITS_FROM: np.asarray(-1, dtype=np.int64)} if self.info.has_logits_from else {}
        return BoundStepper(
            self._plan,
            self.source,
            self.vocab_size,
            self._state_inputs,
            self._outputs[1:],
            [units for units in self.info.state_sizes for _ in ("h", "c")],
            LOGITS,
            INPUT_IDS,
            extra_inputs=extra,
        )

    def _borrow_stepper(self) -> BoundStepper:
        """A stepper for one call's decoding loop (see :meth:`_give_back`): one that an earlier call
        left, its buffers and I/O bindings made (a new one spends ~0.3 ms on them at its first step),
        else a new one. ``list.pop`` and ``append`` are atomic, so two threads never get the same."""
        try:
            return self._idle.pop()
        except IndexError:
            return self.stepper()

    def _give_back(self, stepper: BoundStepper) -> None:
        """Keep ``stepper``, whose loop has ended, for a later call (up to :data:`IDLE_STEPPERS`)."""
        if len(self._idle) < IDLE_STEPPERS:
            self._idle.append(stepper)

    def feed(
        self, input_ids: np.ndarray, state: State, chunk: int = PROMPT_CHUNK
    ) -> tuple[np.ndarray, State]:
        """Run a sequence of any length through the model in chunks, carrying the state.

        Returns the logits after the last position, shape (batch, vocab), and the final state. Feeding a
        text in one call or in pieces of ``chunk`` tokens gives the same result with float32 weights; an
        int8 file's logits may differ by a few hundredths (each call quantizes its own inputs).
        """
        ids = checked_ids(input_ids, self.info.vocab_size)  # (B, T)
        check_int("chunk", chunk, 1, None)
        *_, (logits, state) = feed_chunks(self, ids, state, logits_from=-1, chunk=chunk)
        return logits[:, -1], state

    # ----------------------------------------------------------------- generation

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids the model is conditioned on for ``prompt``: start of a document, then the prompt."""
        return prompt_ids(self, prompt)

    def generator(self, config: GenerationConfig | None = None, **options: Any) -> Generator:
        """An empty :class:`~nextword.runtime.generator.Generator` over this model: add prompts, then
        step. Its default options are the model's decoding defaults with ``options`` applied."""
        return Generator(self, call_config(self.info.generation, config, options))

    def generate_ids(self, prompt_ids: Sequence[int], config: GenerationConfig) -> list[int]:
        """Continue ``prompt_ids`` by sampling (or greedily) and return the new token ids: ``config`` as
        given (the file's defaults not merged in), ``num_beams`` and ``num_return_sequences`` set to 1."""
        if not isinstance(config, GenerationConfig):
            raise wrong_type(
                "config", "a GenerationConfig, such as model.info.generation (the file's defaults)", config
            )
        stepper = self._borrow_stepper()
        try:
            gen = Generator(self, stepper=stepper)
            (row,) = gen.add_ids([prompt_ids], replace(config, num_return_sequences=1, num_beams=1))
            gen.run()
            return gen.tokens(row)
        finally:
            self._give_back(stepper)

    def generate(
        self, prompt: str | Sequence[str], config: GenerationConfig | None = None, **options: Any
    ) -> str | list[str]:
        """Continue ``prompt`` and return the new text (the prompt itself is not repeated).

        ``prompt`` is a string or a list of strings. Options are the fields of :class:`GenerationConfig`
        (``max_words``, ``min_words``, ``temperature`` (0 is greedy), ``top_k``, ``top_p``,
        ``repetition_penalty``, ``no_repeat_ngram_size``, ``stop``, ``stop_at_end``, ``allow_unknown``,
        ``num_return_sequences``, ``num_beams``, ``length_penalty``, ``seed``, ``cache``), passed one by
        one or as ``config``. Options not given take the model's decoding defaults (``model.info.generation``,
        stored at export), which start from :class:`GenerationConfig`'s. The result is a list (prompt-major:
        every sequence of the first prompt, then of the second...) when ``prompt`` is a list or
        ``num_return_sequences > 1``, else a string. All prompts and sequences run as one batch.

        Each text is shaped to be appended to its prompt: it starts with a space where one belongs and
        is capitalized at sentence starts. An empty prompt generates from the start of a document.
        """
        config = call_config(self.info.generation, config, options)
        prompts, single = _as_prompt_list(prompt)
        rows = len(prompts) * max(config.num_return_sequences, config.num_beams)
        if rows > MAX_BATCH:
            raise ValueError(
                f"batch of {len(prompts)} prompt(s) x {max(config.num_return_sequences, config.num_beams)} "
                f"sequences or beams = {rows} rows exceeds the cap of {MAX_BATCH}; split the prompts"
            )
        if not prompts:
            return []
        if config.num_beams > 1:
            ids = [self.prompt_ids(p) for p in prompts]
            texts = beam_search(self, ids, config, [PromptEnd.of_text(self.tokenizer, p) for p in prompts])
        else:
            stepper = self._borrow_stepper()
            try:
                gen = Generator(self, stepper=stepper)
                rows_ids = gen.add(prompts, config)
                gen.run()
                texts = [gen.text(row) for row in rows_ids]
            finally:
                self._give_back(stepper)
        return texts[0] if single and config.num_return_sequences == 1 else texts

    def stream(self, prompt: str, config: GenerationConfig | None = None, **options: Any) -> Iterator[str]:
        """Yield the continuation of ``prompt`` in pieces as words are produced.

        Takes the same options as :meth:`generate` (one prompt, one sequence, no beam search); the
        pieces joined equal what :meth:`generate` returns for the same arguments and seed. Text that a
        stop string could still cut is held back until it is certain.
        """
        config = stream_config(self.info.generation, config, prompt, options)
        stepper = self._borrow_stepper()
        try:
            gen = Generator(self, stepper=stepper)
            (row,) = gen.add(prompt, config)
        except BaseException:
            self._give_back(stepper)
            raise
        return self._pieces(gen, row, stepper)

    def _pieces(self, gen: Generator, row: int, stepper: BoundStepper) -> Iterator[str]:
        """:meth:`stream`'s pieces; the stepper goes back when the stream ends or is closed (one never
        iterated keeps it, and the garbage collector takes both)."""
        try:
            yield from gen.pieces(row)
        finally:
            self._give_back(stepper)

    def next_words(
        self, prompt: str, k: int = 5, cache: bool | CacheConfig | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` most likely next words after ``prompt`` with their probabilities, most likely first.

        Probabilities are the model's softmax over the vocabulary, mixed with the continuous cache when the
        file has one (``cache=False``: the model alone; ``True``: the file's, a ``ValueError`` without one;
        or a :class:`~.cache.CacheConfig`). ``k``: 1..``vocab_size``; the 3 special tokens are never
        listed, so the probabilities sum to at most 1 and ``k >= vocab_size - 3`` lists every word.
        """
        return next_words(self, prompt, k, cache)

    def score(self, text: str, cache: bool | CacheConfig | None = None) -> TextScore:
        """How likely the model finds ``text`` as the start of a document.

        Returns the total log-probability (natural log), the per-word perplexity and every word's
        :class:`WordScore`: ``word`` the vocabulary token (``<unk>`` when unknown), ``token`` the word
        as read, its log-probability and whether it was outside the vocabulary; the continuous cache
        is used when the file has one (``cache`` as in :meth:`next_words`). No words: ``ValueError``.
        """
        return score_text(self, text, cache)


def _as_prompt_list(prompt: Any) -> tuple[list[str], bool]:
    if isinstance(prompt, str):
        return [prompt], True
    if isinstance(prompt, (list, tuple)):
        for i, p in enumerate(prompt):
            if not isinstance(p, str):
                raise WrongTypeError(
                    f"prompt must be a string or a list of strings; item {i} is {type(p).__name__}"
                )
        return list(prompt), False
    raise WrongTypeError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}")
