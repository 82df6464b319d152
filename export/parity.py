"""Export-time proof that the ONNX file computes what the Keras model computes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nextword.runtime.generation import GenerationConfig
from nextword.runtime.model import NextWordModel
from nextword.runtime.tokenizer import SPECIAL_TOKENS

from .errors import ParityError

__all__ = ["ParityError", "ParityReport", "check_parity"]  # ParityError: from .errors

N_RANDOM = 4  # random prompts, run as one batch
RANDOM_LEN = 32
SPLIT_AT = 13  # where the chunked-feeding check cuts the random prompts


@dataclass(frozen=True)
class ParityReport:
    """Figures of one parity check; stored in the model file's metadata."""

    tolerance: float
    random_prompts: int
    real_prompts: int
    max_abs_diff_random: float  # Keras vs ONNX logits on random id sequences
    max_abs_diff_real: float  # Keras vs ONNX logits on real text (validation documents of the run)
    max_abs_diff_chunked: float  # ONNX fed in two pieces with carried state vs in one call
    greedy_words: int
    greedy_sequences: int
    greedy_identical: int  # greedy generations where Keras and ONNX chose exactly the same words

    @property
    def passed(self) -> bool:
        worst = max(self.max_abs_diff_random, self.max_abs_diff_real, self.max_abs_diff_chunked)
        return worst <= self.tolerance and self.greedy_identical == self.greedy_sequences

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def check_parity(
    trained: keras.Model,
    model: NextWordModel,
    prompts: Sequence[str],
    *,
    tolerance: float,
    greedy_words: int,
    seed: int,
) -> ParityReport:
    """Compare ``trained`` (Keras) with ``model`` (the ONNX file through the runtime).

    Logits are compared on a batch of random id sequences and on each real prompt; the random batch is
    also fed in two chunks with carried state. Greedy generations of ``greedy_words`` words start from
    each real prompt and two random ones. Raises nothing: read :attr:`ParityReport.passed`.
    """
    keras_fn = _compiled(trained)
    rng = np.random.default_rng(seed)
    random_ids = rng.integers(len(SPECIAL_TOKENS), model.vocab_size, size=(N_RANDOM, RANDOM_LEN))  # (B, T)

    whole = _onnx_logits(model, random_ids)  # (B, T, V)
    diff_random = _max_diff(_keras_logits(keras_fn, random_ids), whole)
    first, state = model.forward(random_ids[:, :SPLIT_AT], model.initial_state(N_RANDOM))
    second, _ = model.forward(random_ids[:, SPLIT_AT:], state)
    diff_chunked = _max_diff(np.concatenate([first, second], axis=1), whole)

    real = [model.prompt_ids(p) for p in prompts]
    diff_real = max(
        (
            _max_diff(_keras_logits(keras_fn, np.asarray([ids])), _onnx_logits(model, np.asarray([ids])))
            for ids in real
        ),
        default=0.0,
    )

    greedy = GenerationConfig(max_words=greedy_words, temperature=0)
    starts = real + [[model.tokenizer.eod_id, *row[:8].tolist()] for row in random_ids[:2]]
    identical = sum(
        model.generate_ids(ids, greedy) == _keras_greedy(keras_fn, model, ids, greedy_words) for ids in starts
    )
    return ParityReport(
        tolerance=tolerance,
        random_prompts=N_RANDOM,
        real_prompts=len(real),
        max_abs_diff_random=diff_random,
        max_abs_diff_real=diff_real,
        max_abs_diff_chunked=diff_chunked,
        greedy_words=greedy_words,
        greedy_sequences=len(starts),
        greedy_identical=identical,
    )


def _compiled(trained: keras.Model) -> tf.types.experimental.GenericFunction:
    """``trained`` as one traced function for any (batch, time): eager calls are ~50x slower."""
    signature = [tf.TensorSpec([None, None], tf.int32)]
    return tf.function(lambda ids: trained(ids, training=False), input_signature=signature)


def _keras_logits(keras_fn: tf.types.experimental.GenericFunction, ids: np.ndarray) -> np.ndarray:
    return keras_fn(ids.astype(np.int32)).numpy()


def _onnx_logits(model: NextWordModel, ids: np.ndarray) -> np.ndarray:
    logits, _ = model.forward(ids, model.initial_state(ids.shape[0]))
    return logits


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _keras_greedy(
    keras_fn: tf.types.experimental.GenericFunction, model: NextWordModel, prompt_ids: list[int], n_words: int
) -> list[int]:
    """Greedy decoding the way the notebook did it: re-run Keras on the whole text for every word.

    Same rules as the runtime: padding and unknown are never chosen, end-of-document stops.
    """
    tok = model.tokenizer
    sequence, new_ids = list(prompt_ids), []
    for _ in range(n_words):
        logits = _keras_logits(keras_fn, np.asarray([sequence]))[0, -1].astype(np.float64)  # (V,)
        logits[[tok.pad_id, tok.unk_id]] = -np.inf
        next_id = int(np.argmax(logits))
        if next_id == tok.eod_id:
            break
        new_ids.append(next_id)
        sequence.append(next_id)
    return new_ids


def compare_models(
    reference: NextWordModel,
    candidate: NextWordModel,
    prompts: Sequence[str],
    *,
    greedy_words: int,
    seed: int,
) -> dict[str, Any]:
    """How far ``candidate`` (e.g. the int8 file) strays from ``reference`` (the fp32 file): the largest
    absolute logit difference on random and real prompts, and how many greedy generations agree."""
    rng = np.random.default_rng(seed)
    random_ids = rng.integers(len(SPECIAL_TOKENS), reference.vocab_size, size=(N_RANDOM, RANDOM_LEN))
    real = [reference.prompt_ids(p) for p in prompts]
    diffs = [_max_diff(_onnx_logits(reference, random_ids), _onnx_logits(candidate, random_ids))]
    diffs += [
        _max_diff(_onnx_logits(reference, np.asarray([i])), _onnx_logits(candidate, np.asarray([i])))
        for i in real
    ]
    greedy = GenerationConfig(max_words=greedy_words, temperature=0)
    starts = real + [[reference.tokenizer.eod_id, *row[:8].tolist()] for row in random_ids[:2]]
    identical = sum(reference.generate_ids(i, greedy) == candidate.generate_ids(i, greedy) for i in starts)
    return {"max_abs_logit_diff": max(diffs), "greedy_identical": identical, "greedy_sequences": len(starts)}
