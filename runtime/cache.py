"""A continuous cache: the model's next-word distribution mixed with the words that followed similar
states earlier in the same document (Grave, Joulin & Usunier 2017, "Improving neural language models
with a continuous cache").

After position ``t`` the model's last LSTM layer holds ``h_t``. The cache keeps, per row, the pairs
``(h_i, x_{i+1})`` of up to ``window`` earlier positions of the document (the newest ones), and

    p(w) = (1 - share_t) * p_model(w) + share_t * p_cache(w)
    p_cache(w) = sum over kept i with x_{i+1} = w of exp(theta * sim_ti) / sum over kept i of the same

where ``sim_ti`` is ``h_t . h_i`` (``similarity="dot"``) or the same of the unit-length states
(``"cosine"``), and the share is a constant ``mix`` or, with a ``gate (a, b)``, ``sigmoid(a + b * L_t)``
with ``L_t = log sum over kept i of exp(theta * sim_ti)``: the cache's own confidence. An empty cache
(the first position of a document) leaves ``p_model`` as it is. Nothing here changes the graph: the
step function already returns the state, and ``h_t`` is its last layer's ``h`` after a single-token step.
docs/model-format.md spells out the arithmetic for other runtimes.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import finite, wrong_type
from .errors import WrongTypeError
from .step import State, StepModel, prefill_round

__all__ = [
    "MAX_WINDOW",
    "SIMILARITIES",
    "CacheConfig",
    "ContinuousCache",
    "prefill_with_cache",
    "required_cache",
    "resolve_cache",
]

SIMILARITIES = ("dot", "cosine")
MAX_WINDOW = 4096  # positions kept at most: bounds memory (rows x window x units floats) and time per word
# theta and the gate's a and b at most (in size): far past what the tuner fits (its largest theta is 50; a
# gate that barely helps can reach hundreds), far below where theta * similarity and a + b * L_t
# overflow float64 into NaN scores (1.7e308 did)
MAX_CACHE_NUMBER = 1_000_000
_FIRST_CAPACITY = 64  # slots allocated per row at first; doubled as a row's cache fills, up to the window


@dataclass(frozen=True)
class CacheConfig:
    """Settings of the continuous cache, tuned per model at export and stored in the model file.

    Exactly one of ``mix`` (a constant share) and ``gate`` (a share per position) is set.
    """

    theta: float  # scale of the similarities: larger trusts the closest state more
    mix: float | None  # lambda, the cache distribution's constant share (0 < mix < 1); None with a gate
    window: int  # earlier positions of the document kept (the newest)
    # how the values were chosen (tables of every value tried: left out of the repr)
    tuning: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    similarity: str = "dot"  # "dot": h_t . h_i; "cosine": the same of unit-length states
    gate: tuple[float, float] | None = None  # (a, b): share sigmoid(a + b * L_t); None: the constant mix

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(
                f"cache similarity must be one of {', '.join(map(repr, SIMILARITIES))}, "
                f"got {self.similarity!r}"
            )
        if (self.mix is None) == (self.gate is None):
            raise ValueError(
                "cache settings need exactly one of mix (a constant share) and gate (a, b), got "
                + ("neither" if self.mix is None else f"both (mix {self.mix!r}, gate {self.gate!r})")
            )
        _check_finite("theta", self.theta)
        if self.theta < 0:
            raise ValueError(f"cache theta must be >= 0, got {self.theta}")
        if self.theta > MAX_CACHE_NUMBER:
            raise ValueError(f"cache theta must be at most {MAX_CACHE_NUMBER:,}, got {self.theta}")
        if self.mix is not None:
            _check_finite("mix", self.mix)
            if not 0 < self.mix < 1:
                raise ValueError(f"cache mix must be between 0 and 1 (exclusive), got {self.mix}")
        if self.gate is not None:
            if isinstance(self.gate, str | bytes | dict) or not isinstance(self.gate, Sequence | np.ndarray):
                raise WrongTypeError(f"cache gate must be two numbers [a, b], got {self.gate!r}")
            if len(self.gate) != 2:
                raise ValueError(f"cache gate must be two numbers [a, b], got {len(self.gate)}")
            for value in self.gate:
                _check_finite("gate", value, "two finite numbers [a, b]")
                if abs(value) > MAX_CACHE_NUMBER:
                    raise ValueError(
                        f"cache gate must be two numbers [a, b] within ±{MAX_CACHE_NUMBER:,}, got {value}"
                    )
            object.__setattr__(self, "gate", (float(self.gate[0]), float(self.gate[1])))
        if isinstance(self.window, bool) or not isinstance(self.window, numbers.Integral):
            raise WrongTypeError(f"cache window must be an integer, got {self.window!r}")
        if not 1 <= self.window <= MAX_WINDOW:
            raise ValueError(f"cache window must be in 1..{MAX_WINDOW}, got {self.window}")
        if not isinstance(self.tuning, dict):
            raise WrongTypeError(f"cache tuning must be a JSON object, got {type(self.tuning).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as the model file stores them: ``similarity`` only when not "dot", ``gate`` or
        ``mix`` (whichever is set), so files without the newer settings are written as before."""
        data: dict[str, Any] = {"theta": self.theta}
        if self.gate is None:
            data["mix"] = self.mix
        data |= {"window": self.window, "tuning": copy.deepcopy(self.tuning)}
        if self.similarity != "dot":
            data["similarity"] = self.similarity
        if self.gate is not None:
            data["gate"] = list(self.gate)
        return data

    @property
    def needs_format_3(self) -> bool:
        """Whether a model file holding these settings must say format 3 (a version-2 reader refuses
        ``similarity`` and ``gate``)."""
        return self.similarity != "dot" or self.gate is not None

    def describe(self) -> str:
        """One line for people: ``theta 10, gate (-7.62, 0.814), cosine similarity, window 256``."""
        share = f"mix {self.mix:g}" if self.gate is None else f"gate ({self.gate[0]:g}, {self.gate[1]:g})"
        return f"theta {self.theta:g}, {share}, {self.similarity} similarity, window {self.window}"

    @classmethod
    def from_dict(cls, data: Any) -> CacheConfig:
        """Rebuild settings written by :meth:`to_dict`; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"cache settings must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"theta", "mix", "window", "tuning", "similarity", "gate"})
        missing = sorted({"theta", "window"} - set(data))
        if unknown or missing:
            raise ValueError(f"cache settings: unknown keys {unknown}, missing keys {missing}")
        return cls(**{"mix": None, **data})


def _check_finite(name: str, value: Any, wanted: str = "a finite number") -> None:
    """``value``, the cache's ``name``, must be a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WrongTypeError(f"cache {name} must be {wanted}, got {value!r}")
    if not finite(value):
        raise ValueError(f"cache {name} must be {wanted}, got {value!r}")


def resolve_cache(model: Any, cache: bool | CacheConfig | None) -> CacheConfig | None:
    """The cache settings a call uses: ``None`` means the model file's own (if it has any), ``False``
    none, ``True`` the model file's (an error when it has none), a :class:`CacheConfig` itself."""
    if isinstance(cache, CacheConfig):
        return cache
    if isinstance(cache, np.bool_):  # a numpy comparison's result
        cache = bool(cache)
    if cache is not None and not isinstance(cache, bool):
        raise wrong_type("cache", "True, False, None or a CacheConfig", cache)
    if cache is False:
        return None
    return required_cache(model) if cache else getattr(model, "cache_settings", None)


def required_cache(model: Any) -> CacheConfig:
    """The model file's cache settings (``model.cache_settings``); ``ValueError`` when it has none."""
    stored = getattr(model, "cache_settings", None)  # NextWordModel: its file's settings, or None
    if stored is None:
        raise ValueError(
            "cache=True but this model file has no continuous-cache settings; re-export it with a "
            "nextword that tunes them, or leave cache unset"
        )
    return stored


class ContinuousCache:
    """Per-row ring buffers of earlier states ``h_i`` (float32) and the ids that followed them, plus each
    row's current state ``h_t`` (the query).

    Rows are positions in a batch; :meth:`take` reorders or drops them as the batch changes. Memory is
    ``rows x min(window, positions seen) x units`` float32.
    """

    def __init__(self, config: CacheConfig, rows: int, units: int) -> None:
        self.config = config
        self._cosine = config.similarity == "cosine"
        if config.mix is not None:  # today's exact expressions, so files with a mix score as before
            self._log_odds = math.log(config.mix / (1 - config.mix))  # log(mix / (1 - mix))
            self._log_keep = math.log1p(-config.mix)  # log(1 - mix)
            self._log_mix = math.log(config.mix)
        capacity = min(config.window, _FIRST_CAPACITY)
        self.keys = np.zeros((rows, capacity, units), dtype=np.float32)  # (R, slots, U)
        self.values = np.zeros((rows, capacity), dtype=np.int64)  # (R, slots) the id after each key
        self.count = np.zeros(rows, dtype=np.int64)  # pairs stored so far (the ring index is count % window)
        self.query = np.zeros((rows, units), dtype=np.float32)  # (R, U) h_t
        self.has_query = np.zeros(rows, dtype=bool)

    def __len__(self) -> int:
        return len(self.count)

    def observe(self, tokens: np.ndarray, h: np.ndarray, rows: np.ndarray | None = None) -> None:
        """The model read ``tokens`` (one per row) and its last layer now holds ``h`` (rows, units).

        Each row's previous state is stored with the token that followed it, then ``h`` becomes its
        query (unit-length first with cosine similarities). ``rows`` selects the rows (default: all).
        """
        if self._cosine:
            h = _unit_rows(h)
        index = np.arange(len(self.count)) if rows is None else np.asarray(rows, dtype=np.int64)
        tokens = np.asarray(tokens, dtype=np.int64)
        known = self.has_query[index]
        push = index[known]
        if len(push):
            window = self.config.window
            needed = int(min(self.count[push].max() + 1, window))
            if needed > self.keys.shape[1]:
                self._grow(min(window, max(needed, 2 * self.keys.shape[1])))
            slots = self.count[push] % window
            self.keys[push, slots] = self.query[push]
            self.values[push, slots] = tokens[known]
            self.count[push] += 1
        self.query[index] = h
        self.has_query[index] = True

    def take(self, rows: np.ndarray | list[int]) -> None:
        """Keep the rows ``rows`` in this order (drop the others, repeat a row to copy it)."""
        rows = np.asarray(rows, dtype=np.int64)
        self.keys, self.values = self.keys[rows], self.values[rows]
        self.count, self.query, self.has_query = self.count[rows], self.query[rows], self.has_query[rows]

    def reset(self, rows: np.ndarray | list[int]) -> None:
        """Empty the caches of ``rows`` (their slots are reused for documents that start now)."""
        self.count[rows] = 0
        self.has_query[rows] = False

    def _grow(self, capacity: int) -> None:
        rows, old, units = self.keys.shape
        keys = np.zeros((rows, capacity, units), dtype=np.float32)
        keys[:, :old] = self.keys
        values = np.zeros((rows, capacity), dtype=np.int64)
        values[:, :old] = self.values
        self.keys, self.values = keys, values

    def _cache_probs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``p_cache`` where it is not zero, as flat (row, token, probability) triples with each
        (row, token) once, sorted by row then token, and the log-odds of the share (R,) of every row
        (used only where the row has something cached); None when every row's cache is empty."""
        filled = np.minimum(self.count, self.config.window)  # (R,) kept pairs per row
        used = int(filled.max(initial=0))
        if used == 0:
            return None
        rows = np.flatnonzero(filled)
        similarity = np.matmul(self.keys[:, :used], self.query[:, :, None])[..., 0]  # (R, used) float32
        if len(rows) < len(self.count):
            similarity = similarity[rows]  # (R', used): rows with something cached
        scores = self.config.theta * similarity.astype(np.float64)
        values = self.values[rows, :used] if len(rows) < len(self.count) else self.values[:, :used]
        ragged = bool((filled[rows] < used).any())
        if ragged:
            valid = np.arange(used)[None, :] < filled[rows, None]  # (R', used) slots written
            scores[~valid] = -np.inf
        peak = scores.max(axis=1, keepdims=True)
        scores -= peak
        weights = np.exp(scores)
        total = weights.sum(axis=1, keepdims=True)
        weights /= total  # (R', used) p over the kept positions
        log_odds = self._row_log_odds(rows, peak[:, 0] + np.log(total[:, 0]))  # L_t = peak + log total
        if ragged:
            flat_rows, flat_tokens = np.broadcast_to(rows[:, None], valid.shape)[valid], values[valid]
            flat_weights = weights[valid]
        else:
            flat_rows, flat_tokens, flat_weights = np.repeat(rows, used), values.ravel(), weights.ravel()
        keys = flat_rows * (1 << 32) + flat_tokens
        order = np.argsort(keys, kind="stable")  # the same (row, token) entries side by side
        keys = keys[order]
        starts = _starts(keys)
        probs = np.add.reduceat(flat_weights[order], starts)  # summed per (row, token)
        pairs = keys[starts]
        return pairs >> 32, pairs & ((1 << 32) - 1), probs, log_odds

    def _row_log_odds(self, rows: np.ndarray, log_total: np.ndarray) -> np.ndarray:
        """z of every row (R,): log(mix / (1 - mix)), or a + b * L_t with a gate (``log_total`` (R',) is
        L_t of ``rows``; rows with an empty cache get 0, never read)."""
        z = np.zeros(len(self.count))
        if self.config.gate is None:
            z[:] = self._log_odds
        else:
            a, b = self.config.gate
            z[rows] = a + b * log_total
        return z

    def mix_logits(self, logits: np.ndarray) -> None:
        """Turn the model's logits (rows, vocab; float32, in place) into scores whose softmax is the
        mixture: only the tokens in a row's cache change, to ``log(exp(l_w) + exp(z) * p_cache(w) *
        sum_v exp(l_v))`` with ``z`` the log-odds of the row's share, so sampling and the rules see the
        mixed distribution."""
        found = self._cache_probs()
        if found is None:
            return
        rows, tokens, probs, log_odds = found
        wanted = _distinct(rows)
        every = len(wanted) == len(logits)
        block = (logits if every else logits[wanted]).astype(np.float64)  # (R', V)
        peak = block.max(axis=1, keepdims=True)
        block -= peak
        lse = peak[:, 0] + np.log(np.exp(block, out=block).sum(axis=1))  # log sum_v exp(l_v)
        if not every:
            lse_of = np.empty(len(self.count))
            lse_of[wanted] = lse
            lse = lse_of
        old = logits[rows, tokens].astype(np.float64)
        if self.config.gate is None:
            logits[rows, tokens] = np.logaddexp(old, self._log_odds + lse[rows] + np.log(probs))
        else:
            logits[rows, tokens] = np.logaddexp(old, log_odds[rows] + lse[rows] + np.log(probs))

    def mix_logprobs(self, logprobs: np.ndarray) -> None:
        """Turn the model's log-probabilities (rows, vocab; float64, in place) into the mixture's."""
        found = self._cache_probs()
        if found is None:
            return
        rows, tokens, probs, log_odds = found
        wanted = _distinct(rows)
        if self.config.gate is None:
            log_keep: float | np.ndarray = self._log_keep
            log_share: float | np.ndarray = self._log_mix
            keep_rows: float | np.ndarray = self._log_keep
        else:  # log(1 - share) = -softplus(z), log(share) = z - softplus(z), per row
            softplus = np.maximum(log_odds, 0) + np.log1p(np.exp(-np.abs(log_odds)))
            log_keep, log_share = -softplus[rows], (log_odds - softplus)[rows]
            keep_rows = -softplus[wanted, None]
        model_part = logprobs[rows, tokens] + log_keep
        if len(wanted) == len(logprobs):
            logprobs += keep_rows
        else:
            logprobs[wanted] += keep_rows
        logprobs[rows, tokens] = np.logaddexp(model_part, log_share + np.log(probs))


def _unit_rows(h: np.ndarray) -> np.ndarray:
    """Each row of ``h`` (rows, units) at unit length, float32 from a float64 norm; zero rows stay zero."""
    h64 = np.asarray(h, dtype=np.float64)
    norms = np.sqrt((h64 * h64).sum(axis=1, keepdims=True))  # (R, 1)
    return (h64 / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _starts(sorted_values: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted (non-empty) array starts."""
    new = np.empty(len(sorted_values), dtype=bool)
    new[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return np.flatnonzero(new)


def _distinct(sorted_rows: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted (non-empty) array."""
    return sorted_rows[_starts(sorted_rows)]


def prefill_with_cache(
    model: StepModel, prompts: Sequence[np.ndarray], config: CacheConfig
) -> tuple[np.ndarray, State, ContinuousCache]:
    """:func:`~nextword.runtime.step.prefill` one token per session call, filling a cache per prompt:
    the last logits (P, vocab), the state, and the cache."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (the start-of-document token)")
    state = model.initial_state(len(prompts))
    cache = ContinuousCache(config, len(prompts), state[-2].shape[1])
    last = np.empty((len(prompts), model.vocab_size), dtype=np.float32)
    lengths = np.array([len(p) for p in prompts])
    fed = np.zeros(len(prompts), dtype=np.int64)
    while (fed < lengths).any():
        todo = np.flatnonzero(fed < lengths)
        tokens = np.array([prompts[i][fed[i]] for i in todo.tolist()], dtype=np.int64)
        rows, logits = prefill_round(model, prompts, fed, state, chunk=1)
        cache.observe(tokens, state[-2][todo], todo)
        last[rows] = logits
    return last, state, cache
