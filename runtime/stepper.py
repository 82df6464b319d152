"""Stepping a batch one token at a time: the decoding loops' inner call, with buffers bound once.

:meth:`NextWordModel.forward <nextword.runtime.model.NextWordModel.forward>` builds a feed for
onnxruntime at every call and gets freshly allocated arrays back: for the bundled model that is about a
tenth of a step's time, spent on every generated word. A :class:`BoundStepper` binds arrays it owns to
the session's inputs and outputs once (onnxruntime's I/O binding) and alternates between two bindings
whose state buffers are each other's outputs, so a step copies nothing but the tokens in and writes
its results where the next step reads them. It rebinds only when the batch grows past the buffers.

The results of :meth:`BoundStepper.step` are the stepper's own buffers: valid, and the caller's to
modify, until the step after next (the logits: until the next step). The decoding loops read and
modify them in between and never keep them longer; anything kept longer must be copied.

:class:`ForwardStepper` offers the same call on any :class:`~nextword.runtime.step.StepModel` through
its ``forward``; :func:`stepper_for` picks the bound one when the model offers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import WrongTypeError
from .session import run_bound
from .sessions import HoldsSessions
from .step import State, StepModel

if TYPE_CHECKING:
    from .session_plan import SessionPlan

__all__ = ["BoundStepper", "ForwardStepper", "TokenStepper", "stepper_for"]


class TokenStepper(Protocol):
    """One token per row in, each row's next logits and the state after it out."""

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed ``tokens`` (rows,) int64 with ``state``; returns logits (rows, vocab) and the new state."""
        ...


class ForwardStepper:
    """:class:`TokenStepper` on any model through its ``forward`` (fresh arrays every call)."""

    def __init__(self, model: StepModel) -> None:
        self._model = model

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        logits, new_state = self._model.forward(np.asarray(tokens)[:, None], state)  # forward checks them
        return logits[:, -1], new_state


def stepper_for(model: StepModel) -> TokenStepper:
    """The model's own stepper when it has one (``model.stepper()``), else a :class:`ForwardStepper`."""
    make = getattr(model, "stepper", None)
    return make() if callable(make) else ForwardStepper(model)


class _Buffers:
    """Arrays for up to ``capacity`` rows; bindings use their first rows (C order: rows lead)."""

    def __init__(self, capacity: int, vocab: int, widths: Sequence[int]) -> None:
        self.capacity = capacity
        self.ids = np.zeros((capacity, 1), dtype=np.int64)
        self.logits = np.zeros((capacity, 1, vocab), dtype=np.float32)
        # Two sets of state arrays: binding 0 reads set 0 and writes set 1, binding 1 the other way.
        self.states = [[np.zeros((capacity, w), dtype=np.float32) for w in widths] for _ in range(2)]


class _Turn:
    """One of the two alternating bindings (one per session, made when a step first runs there), with
    views of the rows it binds."""

    def __init__(
        self, bindings: list[Any | None], ids: np.ndarray, inputs: State, outputs: State, logits: np.ndarray
    ):
        self.bindings = bindings  # by the plan's session index; None until a step runs on that session
        self.ids = ids  # (rows,) view of the bound ids
        self.inputs = inputs  # the state arrays it reads: the other turn's outputs
        self.outputs = outputs
        self.logits = logits  # (rows, vocab) view of the bound logits


class BoundStepper(HoldsSessions):
    """Single-token steps of an onnxruntime session through I/O bindings made once per batch size.

    Made by ``NextWordModel.stepper()``; not thread-safe (one per decoding loop; the sessions are
    shared). The logits and states are bit for bit those of ``forward``: each step runs on the session
    ``plan`` chooses for its batch size, as in ``forward`` (see :mod:`~nextword.runtime.session_plan`).
    Not picklable, as the model is not: another process makes its own from the model it loads.
    """

    def __init__(
        self,
        plan: SessionPlan,
        source: str,
        vocab: int,
        state_inputs: Sequence[str],
        state_outputs: Sequence[str],
        widths: Sequence[int],
        logits_output: str,
        ids_input: str,
        extra_inputs: dict[str, np.ndarray] | None = None,
    ) -> None:
        self._plan = plan
        self._source = source
        self._vocab = vocab
        self._state_inputs = list(state_inputs)
        self._state_outputs = list(state_outputs)
        self._widths = [int(w) for w in widths]
        self._logits_output = logits_output
        self._ids_input = ids_input
        self._extra = dict(extra_inputs or {})  # inputs that never change (logits_from), kept alive here
        self._buffers: _Buffers | None = None
        self._turns: list[_Turn] = []
        self._rows = -1
        self._next = 0  # the turn the next step runs
        # By the plan's session index: whether binding an input copies it (see _binding).
        self._copies_inputs: dict[int, bool] = {}

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed one token per row; returns logits (rows, vocab) and the state after the token.

        ``state`` may be the state this stepper returned last (then nothing is copied) or any arrays of
        the model's state shapes. See the module docstring for how long the results stay valid.
        """
        rows = _checked_tokens(tokens, self._vocab)
        if rows != self._rows:
            self._bind(rows)
        turn = self._turns[self._next]
        if not isinstance(state, list | tuple) or len(state) != len(turn.inputs):
            listed = isinstance(state, list | tuple)
            got = f"{len(state)} arrays" if listed else type(state).__name__
            refusal = (
                f"state must be the model's {len(turn.inputs)} arrays (model.initial_state(rows) or a "
                f"state step returned), got {got}"
            )
            if listed:  # arrays, too many or too few
                raise ValueError(refusal)
            raise WrongTypeError(refusal)
        for given, mine in zip(state, turn.inputs, strict=True):
            if given is not mine:  # not the state this stepper returned last: copied in
                if given.shape != mine.shape:
                    shapes = [getattr(s, "shape", None) for s in state]
                    raise ValueError(f"state of shapes {shapes} does not fit {rows} tokens")
                mine[...] = given
        turn.ids[...] = tokens
        k = self._plan.choose(rows)  # as NextWordModel.forward
        binding = turn.bindings[k]
        if binding is None:
            binding = turn.bindings[k] = self._binding(k, turn)
        elif self._copies_inputs[k]:
            self._bind_inputs(binding, turn)
        run_bound(self._plan.sessions[k], binding, self._source, rows)
        self._next ^= 1
        return turn.logits, list(turn.outputs)

    def _bind(self, rows: int) -> None:
        """Point both alternating turns at the first ``rows`` rows of the buffers (grown if short);
        their bindings are made when a step first runs on each session (:meth:`_binding`)."""
        if self._buffers is None or self._buffers.capacity < rows:
            capacity = max(rows, 2 * self._buffers.capacity if self._buffers else 1)
            self._buffers = _Buffers(capacity, self._vocab, self._widths)  # step copies the state in
        buffers = self._buffers
        views = [[array[:rows] for array in arrays] for arrays in buffers.states]
        self._turns = [
            _Turn(
                [None] * len(self._plan.sessions),
                buffers.ids[:rows, 0],
                views[t],
                views[1 - t],
                buffers.logits[:rows, 0],
            )
            for t in (0, 1)
        ]
        self._rows = rows

    def _binding(self, k: int, turn: _Turn) -> Any:
        """An I/O binding of session ``k`` of the plan to ``turn``'s arrays.

        onnxruntime copies a bound input to the device of the node that reads it when the input is
        bound, not when the session runs: with the CPU provider alone the binding reads the arrays
        themselves, so one made once sees every later token and state; with another provider (CUDA)
        it would read the copies made at binding time, so the ids and states are bound again before
        every step on such a session. The outputs are copied back into the bound arrays at every run
        either way."""
        rows, buffers = self._rows, self._buffers
        assert buffers is not None
        session = self._plan.sessions[k]
        self._copies_inputs[k] = list(session.get_providers()) != ["CPUExecutionProvider"]
        binding = session.io_binding()
        for name, value in self._extra.items():
            _bind_array(binding.bind_input, name, value)
        self._bind_inputs(binding, turn)
        _bind_array(binding.bind_output, self._logits_output, buffers.logits[:rows])
        for name, array in zip(self._state_outputs, turn.outputs, strict=True):
            _bind_array(binding.bind_output, name, array)
        return binding

    def _bind_inputs(self, binding: Any, turn: _Turn) -> None:
        """Bind the ids and ``turn``'s state arrays to ``binding``'s inputs (again: replacing them)."""
        assert self._buffers is not None
        _bind_array(binding.bind_input, self._ids_input, self._buffers.ids[: self._rows])
        for name, array in zip(self._state_inputs, turn.inputs, strict=True):
            _bind_array(binding.bind_input, name, array)


def _checked_tokens(tokens: Any, vocab: int) -> int:
    """The number of rows of ``tokens``, or ``ValueError`` unless they are (rows,) integer ids in
    ``0..vocab - 1``: a float would be truncated and a negative id read from the end of the embedding.
    Once per step of every decoding loop, so a few rows are checked in Python, without numpy's
    reductions."""
    if not isinstance(tokens, np.ndarray) or tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        array = isinstance(tokens, np.ndarray)
        kind = f"an array of {tokens.dtype.name}, shape {tokens.shape}" if array else type(tokens).__name__
        refusal = f"tokens must be a numpy array of token ids, shape (rows,), got {kind}"
        if array and tokens.dtype.kind in "iu":  # integer ids of another shape
            raise ValueError(refusal)
        raise WrongTypeError(refusal)
    rows = len(tokens)
    if not rows:
        return 0
    values = tokens.tolist() if rows <= 16 else [int(tokens.min()), int(tokens.max())]
    low, high = min(values), max(values)
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise ValueError(f"tokens holds {bad}, outside the vocabulary's ids 0..{vocab - 1}")
    return rows


def _bind_array(bind: Any, name: str, array: np.ndarray) -> None:
    """Bind ``name`` to the memory of ``array`` (C-contiguous, on the CPU), which must outlive the binding."""
    assert array.flags.c_contiguous
    bind(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
