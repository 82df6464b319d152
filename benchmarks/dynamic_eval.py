"""Dynamic evaluation of the output layer, alone and under the file's continuous cache (issue 12's
top-5 target).

Dynamic evaluation (Krause et al. 2018, "Dynamic evaluation of neural sequence models") adapts a
model to the document it reads: after each word, a gradient step on that word's loss. What numpy can
do beside the exported graph is the output layer's part of it: per document, scores

    logits_t + D h_t + c

where h_t is the last LSTM layer's output at position t (unit length), and D (vocab, units) and c
(vocab) start at zero with each document and take, once the next word y_t is known, the gradient
step of log p_t(y_t) in D and c:

    D += eta_w (e_y - p_t) h_t^T,    c += eta_b (e_y - p_t)

with p_t the adapted distribution (before the cache). With the cache, the file's cache then mixes
with p_t as ``nextword evaluate`` mixes it with the model's own distribution. The rates are chosen
on the development documents (perplexity with the cache, ``evaluate``'s default), then the chosen
ones and the unadapted model are scored on the validation documents.

Documents are stepped one token per call, a batch side by side (as ``evaluate`` does with a cache),
so the unadapted rows here match ``nextword evaluate`` up to an int8 file's per-call quantization.

    python -m benchmarks.dynamic_eval                    # the bundled model, the reference corpus
    python -m benchmarks.dynamic_eval --documents 40     # the first 40 of each part

It is slow: each development document is scored under 12 settings, each validation document under 4,
one numpy step per word and setting. ``--documents 1`` took 23 s on a two-core AMD EPYC; in proportion,
expect up to 15 minutes for ``--documents 40`` there and roughly an hour for the whole split (142
development and 316 validation documents for the bundled model). Progress goes to stderr after each
document, with an estimate of the time left.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.cache_traces import batched_inputs
from benchmarks.environment import machine_info
from benchmarks.paths import DEFAULT_CORPUS, require_files, shown
from benchmarks.results import at_least, benchmark_parser

__all__ = ["Totals", "adapted_scores", "main", "traced_documents"]

BATCH = 16  # documents stepped side by side while tracing
GRID_W = (0.0, 1.0, 2.0, 4.0)  # eta_w tried on the development documents
GRID_B = (0.0, 0.2)  # eta_b tried


@dataclass
class Totals:
    """Summed over scored words: negative log-likelihood, words in the top 5, words."""

    nll: float = 0.0
    top5: int = 0
    words: int = 0

    def add(self, logprobs: np.ndarray, top5: np.ndarray) -> None:
        self.nll -= float(logprobs.sum())
        self.top5 += int(top5.sum())
        self.words += len(logprobs)

    @property
    def perplexity(self) -> float:
        return float(np.exp(self.nll / self.words)) if self.words else float("nan")

    @property
    def top5_accuracy(self) -> float:
        return self.top5 / self.words if self.words else float("nan")


def traced_documents(
    model: Any, documents: Sequence[np.ndarray]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each of ``documents`` (ids ``<eod> ... <eod>``): its ids, the model's logits at every
    position (T, vocab) and the last layer's output after every position (T, units), T = len(ids) - 1."""
    for docs, lengths, inputs in batched_inputs(documents, model.tokenizer.eod_id, BATCH):
        state = model.initial_state(len(docs))
        logits = np.empty((len(docs), inputs.shape[1], model.vocab_size), dtype=np.float32)
        states = np.empty((len(docs), inputs.shape[1], state[-2].shape[1]), dtype=np.float32)
        for t in range(inputs.shape[1]):
            out, state = model.forward(inputs[:, t : t + 1], state)
            logits[:, t], states[:, t] = out[:, 0], state[-2]
        for j, d in enumerate(docs):
            yield d, logits[j, : lengths[j]], states[j, : lengths[j]]


def adapted_scores(
    ids: np.ndarray,
    logits: np.ndarray,
    states: np.ndarray,
    eta_w: float,
    eta_b: float,
    cache: Any | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The log-probability of each of ``ids[1:]`` and whether it ranks in the top 5, reading the
    document with the adapted output layer (module docstring) and, with ``cache`` (a
    :class:`~nextword.runtime.cache.CacheConfig`), the file's cache mixed in after the adaptation."""
    from nextword.runtime.cache import ContinuousCache
    from nextword.runtime.logits import log_softmax
    from nextword.runtime.scoring import ranks_of

    steps, units = states.shape
    targets = ids[1:]
    unit = states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
    shift_w = np.zeros((units, logits.shape[1]), dtype=np.float32) if eta_w else None
    shift_b = np.zeros(logits.shape[1], dtype=np.float32) if eta_b else None
    rows = ContinuousCache(cache, 1, units) if cache is not None else None
    logprobs, top5 = np.empty(steps), np.empty(steps, dtype=bool)
    for t in range(steps):
        scores = logits[t].copy()
        if shift_w is not None:
            scores += unit[t] @ shift_w
        if shift_b is not None:
            scores += shift_b
        adapted = log_softmax(scores.astype(np.float64)[None])  # (1, V)
        mixed = adapted.copy()
        if rows is not None:
            rows.observe(ids[t : t + 1], states[t : t + 1])
            rows.mix_logprobs(mixed)
        target = mixed[0, targets[t]]
        logprobs[t], top5[t] = target, ranks_of(mixed, targets[t : t + 1])[0] < 5  # ties as evaluate()
        if shift_w is not None or shift_b is not None:
            step = -np.exp(adapted[0]).astype(np.float32)  # e_y - p_t
            step[targets[t]] += 1.0
            if shift_w is not None:
                shift_w += np.outer(eta_w * unit[t], step)
            if shift_b is not None:
                shift_b += eta_b * step
    return logprobs, top5


def score_part(
    model: Any,
    documents: Sequence[np.ndarray],
    settings: Sequence[tuple[float, float, bool]],
    part: str | None = None,
) -> dict[tuple[float, float, bool], Totals]:
    """Every ``(eta_w, eta_b, with the cache)`` of ``settings`` over ``documents``; with ``part`` (its
    name), a line of progress on stderr after each document."""
    from nextword.runtime.cache import required_cache

    cache = required_cache(model)
    totals = {s: Totals() for s in settings}
    started = time.monotonic()
    for n, (ids, logits, states) in enumerate(traced_documents(model, documents), 1):
        for eta_w, eta_b, cached in settings:
            totals[eta_w, eta_b, cached].add(
                *adapted_scores(ids, logits, states, eta_w, eta_b, cache if cached else None)
            )
        if part:
            elapsed = time.monotonic() - started
            print(
                f"dynamic_eval: {part} document {n}/{len(documents)}, {len(settings)} settings, "
                f"{elapsed:.0f} s (about {elapsed / n * (len(documents) - n):.0f} s left)",
                file=sys.stderr,
                flush=True,
            )
    return totals


def label(setting: tuple[float, float, bool]) -> str:
    eta_w, eta_b, cached = setting
    adapted = "unadapted" if not (eta_w or eta_b) else f"eta_w {eta_w:g}, eta_b {eta_b:g}"
    return f"{adapted}, {'with' if cached else 'without'} the cache"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("dynamic_eval", __doc__)
    parser.add_argument(
        "--model", metavar="MODEL.onnx", help="a file with a cache (default: the bundled model)"
    )
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="the corpus its split is rebuilt from")
    parser.add_argument(
        "--documents", type=int, help="score only the first N documents of each part (default: all)"
    )
    args = parser.parse_args(argv)
    at_least(parser, 1, {"--documents": args.documents})
    return args


def main(argv: list[str] | None = None) -> int:
    from benchmarks.quality import model_splits
    from nextword.runtime import load
    from nextword.runtime.default import BUNDLED_MODEL

    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", ""), "--corpus": (args.corpus, "corpus", "")})
    started = time.monotonic()
    path = args.model or str(BUNDLED_MODEL)
    model = load(path)
    tok = model.tokenizer
    splits = model_splits(model, args.corpus)

    def encoded(docs: Sequence[str]) -> list[np.ndarray]:
        docs = docs[: args.documents] if args.documents else docs
        return [np.asarray([tok.eod_id, *tok.encode(d), tok.eod_id], dtype=np.int64) for d in docs]

    dev, val = encoded(splits.dev), encoded(splits.val)
    grid = [(w, b, c) for (w, b), c in itertools.product(itertools.product(GRID_W, GRID_B), (True, False))]
    grid = [s for s in grid if s[2] or not s[1]]  # without the cache: eta_w alone
    on_dev = score_part(model, dev, grid, "development")
    best = {c: min((s for s in grid if s[2] == c), key=lambda s: on_dev[s].nll) for c in (True, False)}
    chosen = sorted({(0.0, 0.0, True), (0.0, 0.0, False), *best.values()}, key=lambda s: (not s[2], s))
    on_val = score_part(model, val, chosen, "validation")

    print(f"# Dynamic evaluation of the output layer: {shown(path)}")
    print(f"{machine_info()['cpu']}; {time.monotonic() - started:.0f} s")
    print(f"development: {len(dev)} documents; validation: {len(val)} documents ({splits.scheme})\n")
    print("| part | setting | perplexity | top-5 accuracy |\n| :--- | :--- | ---: | ---: |")
    for part, totals in (("development", on_dev), ("validation", on_val)):
        for setting, t in totals.items():
            mark = " (chosen)" if setting in best.values() and (setting[0] or setting[1]) else ""
            print(f"| {part} | {label(setting)}{mark} | {t.perplexity:.2f} | {100 * t.top5_accuracy:.2f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
