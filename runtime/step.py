"""The step function every decoding loop builds on: what a model must offer, checking what a step is
fed, and feeding it text.

Decoding code (:mod:`.generator`, :mod:`.beam`, :mod:`.scoring`) types against :class:`StepModel`
rather than importing :class:`~nextword.runtime.model.NextWordModel`, so no module of the runtime
imports the model class except the model module itself.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from .checks import wrong_type
from .errors import WrongTypeError
from .tokenizer import Tokenizer

__all__ = [
    "PROMPTS_AS_IDS",
    "PROMPT_CHUNK",
    "State",
    "StepModel",
    "check_model",
    "check_state",
    "checked_ids",
    "feed_chunks",
    "prefill",
    "prefill_round",
    "prompt_ids_array",
]

State = list[np.ndarray]  # [h_0, c_0, h_1, c_1, ...], each float32 (batch, units)

PROMPT_CHUNK = 256  # tokens per session call when text is fed: bounds memory for any length
# What a decoding loop takes as its prompts (Generator.add_ids, BeamSearch), said in a refusal.
PROMPTS_AS_IDS = "a list of token-id lists, one per prompt (model.prompt_ids(text) gives one)"


class StepModel(Protocol):
    """What the decoding loops need from a model: its tokenizer and its stateful step function."""

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer."""
        ...

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, special ones included: the width of the logits."""
        ...

    def initial_state(self, batch_size: int = 1) -> State:
        """Zero state for ``batch_size`` sequences."""
        ...

    def forward(self, input_ids: np.ndarray, state: State, logits_from: int = 0) -> tuple[np.ndarray, State]:
        """Logits (batch, time', vocab) of positions ``logits_from`` on, and the state after the last."""
        ...


def feed_chunks(
    model: StepModel, ids: np.ndarray, state: State, *, logits_from: int, chunk: int = PROMPT_CHUNK
) -> Iterator[tuple[np.ndarray, State]]:
    """Feed ``ids`` (batch, time) through ``model`` ``chunk`` tokens at a time, carrying the state.

    Yields each chunk's logits (``logits_from`` as in :meth:`StepModel.forward`: ``-1`` for the last
    position of the chunk, ``0`` for all of them) and the state after it. Feeding a text in one call or
    in chunks gives the same result; this is the one loop that feeds text (prompts, scored texts).
    """
    for start in range(0, ids.shape[1], chunk):
        logits, state = model.forward(ids[:, start : start + chunk], state, logits_from=logits_from)
        yield logits, state


def prefill_round(
    model: StepModel,
    prompts: Sequence[np.ndarray],
    fed: np.ndarray,
    state: State,
    chunk: int = PROMPT_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """One session call that feeds the next piece of every prompt that has some left.

    ``prompts[i]`` is row ``i``'s token ids, of which ``fed[i]`` are already in ``state`` (a list of
    (rows, units) arrays, updated in place, as is ``fed``). The rows with prompt left each take as many
    tokens as the shortest remainder among them (at most ``chunk``), so every row sees exactly its own
    tokens. Returns the rows that just finished their prompt and their last logits, (F, vocab).
    """
    lengths = np.fromiter((len(p) for p in prompts), dtype=np.int64, count=len(prompts))
    todo = np.flatnonzero(fed < lengths)  # (A,) rows with prompt left
    step = int(min(chunk, (lengths[todo] - fed[todo]).min()))
    ids = np.stack([prompts[i][fed[i] : fed[i] + step] for i in todo.tolist()])  # (A, step)
    ((logits, new_state),) = feed_chunks(model, ids, [s[todo] for s in state], logits_from=-1, chunk=step)
    for s, new in zip(state, new_state, strict=True):
        s[todo] = new
    fed[todo] += step
    ended = fed[todo] == lengths[todo]
    return todo[ended], logits[ended, -1]


def prefill(
    model: StepModel, prompts: Sequence[np.ndarray], chunk: int = PROMPT_CHUNK
) -> tuple[np.ndarray, State]:
    """Feed every prompt through the model as one batch; return last logits (P, vocab) and the state.

    Prompts of different lengths are fed in rounds (:func:`prefill_round`).
    """
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (the start-of-document token)")
    state = model.initial_state(len(prompts))
    last = np.empty((len(prompts), model.vocab_size), dtype=np.float32)
    fed = np.zeros(len(prompts), dtype=np.int64)
    while (fed < [len(p) for p in prompts]).any():
        rows, logits = prefill_round(model, prompts, fed, state, chunk)
        last[rows] = logits
    return last, state


def check_model(model: Any) -> None:
    """Refuse a ``model`` that has no tokenizer and step function (a path where ``load(path)``'s
    model belongs), before an ``AttributeError`` far in."""
    if not hasattr(model, "tokenizer") or not callable(getattr(model, "forward", None)):
        raise wrong_type("model", "a loaded model (nextword.runtime.load(path))", model)


def checked_ids(input_ids: Any, vocab: int) -> np.ndarray:
    """``input_ids`` as (batch, time) int64, or ``ValueError`` saying what is wrong: a caller's mistake
    must not reach onnxruntime, which would blame the model file (and wraps negative ids round)."""
    ids = np.asarray(input_ids)
    if not ids.ndim:  # None or a number: no array at all
        raise wrong_type("input_ids", "token ids of shape (batch, time)", input_ids)
    if ids.ndim != 2 or not ids.size:
        raise ValueError(f"input_ids must be token ids of shape (batch, time), got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise WrongTypeError(f"input_ids must be integer token ids, got {ids.dtype.name}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab:
        raise ValueError(
            f"input_ids holds {low if low < 0 else high}, outside the vocabulary's ids 0..{vocab - 1}"
        )
    return ids.astype(np.int64, copy=False)


def checked_logits_from(logits_from: Any, positions: int) -> int:
    """``logits_from`` of :meth:`StepModel.forward` as an ``int`` that selects at least one of
    ``positions``, or ``ValueError`` (left unchecked, a float reached the graph, blamed on the file)."""
    if type(logits_from) is not int:
        if isinstance(logits_from, bool) or not isinstance(logits_from, numbers.Integral):
            raise wrong_type("logits_from", "an integer position (-1: the last)", logits_from)
        logits_from = int(logits_from)
    if not -positions <= logits_from < positions:
        raise ValueError(
            f"logits_from={logits_from} selects no position of an input of {positions} position(s); "
            f"use a value from {-positions} to {positions - 1} (-1 for the last position)"
        )
    return logits_from


def check_state(state: Any, batch: int, sizes: Sequence[int]) -> None:
    """``ValueError`` unless ``state`` is the model's state for ``batch`` rows: [h_0, c_0, h_1, ...]."""
    wanted = [(batch, units) for units in sizes for _ in ("h", "c")]
    got = [getattr(s, "shape", None) for s in state] if isinstance(state, list | tuple) else None
    where = f"(model.initial_state({batch}) or a state forward returned)"
    if got != wanted:
        refusal = (
            f"state must be {len(wanted)} float32 arrays of shapes {wanted} for {batch} row(s) {where}, "
            f"got {got}"
        )
        if got is None or None in got:  # not a list of arrays
            raise WrongTypeError(refusal)
        raise ValueError(refusal)
    kinds = [s.dtype.name for s in state]
    if any(kind != "float32" for kind in kinds):  # onnxruntime would blame the model file
        raise WrongTypeError(f"state must be float32 arrays {where}, got {kinds}")


def prompt_ids_array(prompt: Any, index: int, vocab: int, name: str = "prompt") -> np.ndarray:
    """Prompt ``index`` given as token ids (a decoding loop's input) as int64 (T,), or ``ValueError``
    saying what to pass: text, floats and bools (never taken as ids), an empty list and ids outside
    ``0..vocab - 1`` are refused. ``name``: what the caller calls it ("prompt", "document")."""
    what = f"{name} {index}"
    if isinstance(prompt, str | bytes):
        raise WrongTypeError(f"{what} is text, where token ids belong: model.prompt_ids(text) gives them")
    if isinstance(prompt, list | tuple) and any(isinstance(i, bool | np.bool_) for i in prompt):
        raise WrongTypeError(f"{what} holds True or False, where token ids (integers) belong")
    ids = np.asarray(prompt)
    if ids.ndim == 1 and not len(ids):
        raise ValueError(f"{what} is empty: it starts with the end-of-document id (model.prompt_ids(text))")
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        shape = f" of shape {ids.shape}" if ids.ndim != 1 else ""
        raise WrongTypeError(f"{what} must be a list of token ids (integers), got {ids.dtype.name}{shape}")
    if ids.min() < 0 or ids.max() >= vocab:
        raise ValueError(f"{what} holds ids outside 0..{vocab - 1}")
    return ids.astype(np.int64)
