"""Loading a model file and generating text from it with onnxruntime."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .errors import ModelFileError
from .generation import GenerationConfig
from .model_file import INPUT_IDS, LOGITS, ModelInfo, read_model_info, state_input_names, state_output_names
from .sampling import sample_next
from .tokenizer import Tokenizer

__all__ = ["NextWordModel", "State", "load"]

logger = logging.getLogger(__name__)

State = list[np.ndarray]  # [h_0, c_0, h_1, c_1, ...], each float32 (batch, units)

PROMPT_CHUNK = 256  # prompts are fed this many tokens per session call, so memory stays bounded
DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def load(
    model: str | os.PathLike[str] | bytes,
    providers: Sequence[str] | None = None,
    session_options: ort.SessionOptions | None = None,
) -> NextWordModel:
    """Load a nextword ``.onnx`` file (a path, or the file's bytes) for generation.

    ``providers`` lists onnxruntime execution providers in order of preference, for example
    ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` with onnxruntime-gpu installed; the default
    is the CPU. Providers this onnxruntime build lacks are skipped with a warning.

    Raises :class:`ModelFileError` when the file is missing, is not ONNX, or is not a nextword model.
    """
    if isinstance(model, bytes):
        source, payload = "<model bytes>", model
    else:
        path = Path(model)
        source = str(path)
        if not path.is_file():
            raise ModelFileError(f"model file {source} does not exist (or is not a file)")
        payload = source
    chosen = _choose_providers(providers)
    try:
        session = ort.InferenceSession(payload, sess_options=session_options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise ModelFileError(f"{source} could not be loaded as an ONNX model: {exc}") from None
    return NextWordModel(session, read_model_info(session, source), source)


def _choose_providers(providers: Sequence[str] | None) -> list[str]:
    if providers is None:
        return list(DEFAULT_PROVIDERS)
    if isinstance(providers, str):
        raise ValueError(f"providers must be a list of provider names, got the string {providers!r}")
    available = set(ort.get_available_providers())
    chosen = [p for p in providers if p in available]
    missing = [p for p in providers if p not in available]
    if missing:
        logger.warning(
            "execution provider(s) %s not available in this onnxruntime build (available: %s); "
            "install onnxruntime-gpu for CUDA",
            missing,
            sorted(available),
        )
    if not chosen:
        logger.warning("none of the requested providers is available; using the CPU")
        chosen = list(DEFAULT_PROVIDERS)
    return chosen


class NextWordModel:
    """A loaded model: a stateful onnxruntime session plus the tokenizer from the same file.

    Create one with :func:`load`. A model holds no state between calls, so one instance can serve many
    threads.
    """

    def __init__(self, session: ort.InferenceSession, info: ModelInfo, source: str) -> None:
        self.session = session
        self.info = info
        self.source = source
        self._state_inputs = state_input_names(len(info.state_sizes))
        self._outputs = [LOGITS, *state_output_names(len(info.state_sizes))]

    @property
    def tokenizer(self) -> Tokenizer:
        return self.info.tokenizer

    @property
    def vocab_size(self) -> int:
        return self.info.vocab_size

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
        return [
            np.zeros((batch_size, units), dtype=np.float32)
            for units in self.info.state_sizes
            for _ in ("h", "c")
        ]

    def forward(self, input_ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One session call: ``input_ids`` (batch, time) and state in, logits (batch, time, vocab) and
        the state after the last position out."""
        feed: dict[str, Any] = {INPUT_IDS: np.asarray(input_ids, dtype=np.int64)}
        feed.update(zip(self._state_inputs, state, strict=True))
        logits, *new_state = self.session.run(self._outputs, feed)
        return logits, new_state

    def feed(self, input_ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Run a sequence of any length through the model in chunks, carrying the state.

        Returns the logits after the last position, shape (batch, vocab), and the final state. Feeding a
        text in one call or in pieces gives the same result.
        """
        ids = np.asarray(input_ids, dtype=np.int64)  # (B, T)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"input_ids must have shape (batch, time) with time >= 1, got {ids.shape}")
        for start in range(0, ids.shape[1], PROMPT_CHUNK):
            logits, state = self.forward(ids[:, start : start + PROMPT_CHUNK], state)
        return logits[:, -1], state

    # ----------------------------------------------------------------- generation

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids the model is conditioned on for ``prompt``: start of a document, then the prompt."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        return [self.tokenizer.eod_id, *self.tokenizer.encode(prompt)]

    def generate_ids(self, prompt_ids: Sequence[int], config: GenerationConfig) -> list[int]:
        """Continue ``prompt_ids`` and return the new token ids (without the end-of-document token).

        Generation stops after ``config.max_words`` tokens or when the model ends the document. Each new
        token costs one single-step session call that carries the LSTM state.
        """
        tok = self.tokenizer
        banned = (tok.pad_id, tok.unk_id)
        rng = np.random.default_rng(config.seed)  # belongs to this call only
        last, state = self.feed(np.asarray([prompt_ids]), self.initial_state(1))  # (1, V)
        new_ids: list[int] = []
        while len(new_ids) < config.max_words:
            next_id = sample_next(
                last, temperature=config.temperature, top_k=config.top_k, rng=rng, banned=banned
            )
            if next_id[0] == tok.eod_id:  # the model ended the document
                break
            new_ids.append(int(next_id[0]))
            logits, state = self.forward(next_id[:, None], state)  # (1, 1, V)
            last = logits[:, -1]
        return new_ids

    def generate(self, prompt: str, config: GenerationConfig | None = None, **options: Any) -> str:
        """Continue ``prompt`` and return the new text (the prompt itself is not repeated).

        Options are the fields of :class:`GenerationConfig`: ``max_words=50``, ``temperature=1.0``
        (0 is greedy), ``top_k=None``, ``seed=None`` (the same seed gives the same text). The result
        is shaped to be appended to the prompt: it starts with a space where one belongs and is
        capitalized at sentence starts. An empty prompt generates from the start of a document.
        """
        config = GenerationConfig.from_options(config, **options)
        ids = self.prompt_ids(prompt)
        new_ids = self.generate_ids(ids, config)
        tok = self.tokenizer
        previous = tok.token_of(ids[-1]) if len(ids) > 1 else None
        text = "".join(tok.pieces((tok.token_of(i) for i in new_ids), previous=previous))
        if prompt[-1:].isspace():
            text = text.lstrip(" ")
        return text
