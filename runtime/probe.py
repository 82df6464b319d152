"""The probe step ``load()`` runs before it returns: proof that the graph is what its metadata says.

The file checks bound the graph's sizes, and the metadata reader compares the graph's *declared*
signature with the tokenizer; neither runs the graph. A graph can still declare 20 logits and make 30
(a ``Reshape`` whose target is computed hides the width from shape inference), run an LSTM whose hidden
width differs from the declared state, gather embeddings past the end of a too-short table, or carry
damaged int8 scales. :func:`probe_model` runs one step on a batch of 2, feeding the largest token id
and the special ids, and checks every output's real dtype and shape and that the numbers are finite.
"""

from __future__ import annotations

import threading

import numpy as np

from .errors import ModelFileError, ModelRunError
from .model_file import INPUT_IDS, LOGITS, LOGITS_FROM, ModelInfo, state_input_names, state_output_names
from .session import run_session

__all__ = ["MAX_ROWS", "WideCheck", "probe_model", "wide_rows"]

PROBE_LOGITS_FROM = -2  # with 3 positions, the last 2: tells "all positions" and "last only" apart
# Scores larger than this (a trained model's stay within a few tens) are a damaged file: scaled by a
# temperature's 1/T they overflow float32 into NaN probabilities, and a log-sum-exp loses every digit
MAX_LOGIT = 1_000_000


def probe_model(session, info: ModelInfo, source: str) -> None:
    """Run one probe step and check every output; raise :class:`ModelFileError` naming ``source``."""
    tokenizer, vocab = info.tokenizer, info.vocab_size
    largest = vocab - 1
    ids = np.array(  # (2, 3): every special id and the largest id, in both rows
        [[tokenizer.eod_id, largest, tokenizer.unk_id], [largest, tokenizer.pad_id, tokenizer.eod_id]],
        dtype=np.int64,
    )
    layers = len(info.state_sizes)
    rng = np.random.default_rng(0)
    state = [
        rng.uniform(-1, 1, size=(2, width)).astype(np.float32) for width in info.state_sizes for _ in "hc"
    ]
    feed: dict[str, np.ndarray] = {INPUT_IDS: ids, **dict(zip(state_input_names(layers), state, strict=True))}
    positions = ids.shape[1]
    if info.has_logits_from:
        feed[LOGITS_FROM] = np.asarray(PROBE_LOGITS_FROM, dtype=np.int64)
        positions = -PROBE_LOGITS_FROM
    names = [LOGITS, *state_output_names(layers)]
    try:
        outputs = run_session(session, names, feed, source)
    except ModelRunError as exc:
        reason = " ".join(str(exc.__cause__).split())[:500]
        raise ModelFileError(
            f"{source} loads but fails a probe step (2 rows, token ids up to {largest}): onnxruntime says "
            f"{reason}; the file is damaged or crafted: re-download or re-export it"
        ) from None
    expected = [(2, positions, vocab), *((2, width) for width in info.state_sizes for _ in "hc")]
    for name, value, shape in zip(names, outputs, expected, strict=True):
        problem = None
        if not isinstance(value, np.ndarray) or value.dtype != np.float32:
            problem = f"is {getattr(value, 'dtype', type(value).__name__)}, not float32"
        elif value.shape != shape:
            problem = f"has shape {value.shape}, not {shape}"
        elif not np.isfinite(value).all():
            problem = "holds NaN or infinite values"
        elif name == LOGITS and np.abs(value).max(initial=0) > MAX_LOGIT:  # sampling's 1/T would overflow
            problem = f"holds scores beyond ±{MAX_LOGIT:,}, which no trained model makes"
        if problem:
            raise ModelFileError(
                f"{source}: on a probe step of 2 rows the graph's output {name!r} {problem} (the metadata "
                f"declares a vocabulary of {vocab} and state widths {list(info.state_sizes)}); the file is "
                "damaged or crafted: re-download or re-export it"
            )


# (rows, positions) fed to both sessions by WideCheck, in order: one row over many positions, then every
# batch size up to 8 (the thread count that splits an int8 model's rows depends on the rows alone), then 64.
WIDE_CHECKS = ((1, 64), *((rows, 2) for rows in range(2, 9)), (64, 1))

MAX_ROWS = 1 << 30  # "any number of rows"


class WideCheck:
    """Which batch sizes may run on ``wide`` (the model's two-thread session) and give the numbers
    ``session`` (one thread) gives, found by stepping both on the same random rows, one check of
    :data:`WIDE_CHECKS` at a time and only when a step first needs its verdict: a process that only
    ever steps one row never pays for the checks of 2 to 64 rows (for the benchmarks' fp32 model about
    60 of the checks' 95 ms on a 2-core AVX2 machine).

    The verdicts are those of running every check at once (:func:`wide_rows`): the checks run in the
    same order on the same random numbers, and a batch size between two checks counts as agreeing
    when both do (where a batch is split between threads depends on its size, and a larger batch is
    split no less). Thread-safe: one lock serializes the checks, and a verdict already found is read
    without it. Every answer is exact, also while another thread checks (``agreed`` only grows, and
    never after ``_final`` is set): a no sends a batch of 5 rows or more to two threads
    (:mod:`~nextword.runtime.session_plan`), whose numbers would differ from one thread's.
    """

    def __init__(self, session, wide, info: ModelInfo, source: str) -> None:
        self._session, self._wide, self._info, self._source = session, wide, info, source
        self._rng = np.random.default_rng(1)
        self._done = 0  # checks run so far, all agreeing
        self._final = False  # no check left to run: a check differed or failed, or all agreed
        self._lock = threading.Lock()
        self.agreed = 0  # the most rows known to give the same numbers on both sessions

    def allows(self, rows: int) -> bool:
        """Whether a step of ``rows`` rows may run on the wide session; runs the checks it needs."""
        if rows <= self.agreed:
            return True
        if self._final:  # set after the last change to agreed: read again, it may have just grown
            return rows <= self.agreed
        with self._lock:
            while not self._final and self.agreed < rows:
                self._run_next()
            return rows <= self.agreed

    def settle(self) -> int:
        """Run every check still to run; the most rows a step may run on the wide session (see
        :func:`wide_rows`)."""
        self.allows(MAX_ROWS)
        return self.agreed

    def _run_next(self) -> None:
        rows, positions = WIDE_CHECKS[self._done]
        info, layers = self._info, len(self._info.state_sizes)
        names = [LOGITS, *state_output_names(layers)]
        rng = self._rng
        feed: dict[str, np.ndarray] = {INPUT_IDS: rng.integers(0, info.vocab_size, (rows, positions))}
        state = [rng.uniform(-1, 1, (rows, w)).astype(np.float32) for w in info.state_sizes for _ in "hc"]
        feed.update(zip(state_input_names(layers), state, strict=True))
        if info.has_logits_from:
            feed[LOGITS_FROM] = np.asarray(0, dtype=np.int64)
        try:
            one = run_session(self._session, names, feed, self._source)
            two = run_session(self._wide, names, feed, self._source)
        except ModelRunError:  # a graph that breaks on these shapes: its calls will say so, not the check
            self.agreed = 0
            self._settled()
            return
        if not all(np.array_equal(a, b) for a, b in zip(one, two, strict=True)):
            self._settled()
            return
        self._done += 1
        self.agreed = rows
        if self._done == len(WIDE_CHECKS):
            self.agreed = MAX_ROWS
            self._settled()

    def _settled(self) -> None:
        """No check is left to run: the sessions are not needed here any more."""
        self._final = True
        self._session = self._wide = None


def wide_rows(session, wide, info: ModelInfo, source: str) -> int:
    """The most rows a step may have to run on ``wide`` (the model's two-thread session) and give the
    numbers ``session`` (one thread) gives, every check of :data:`WIDE_CHECKS` run now: the rows of the
    last check before the first whose numbers differ (0 when one row over 64 positions already
    differs; 4 for the bundled int8 model, whose batches of 5 rows or more differ: onnxruntime
    quantizes each thread's share of the rows on its own), or :data:`MAX_ROWS` when every check
    agrees; 0 as well when a check fails in onnxruntime. Random ids and state, the same on both."""
    return WideCheck(session, wide, info, source).settle()
