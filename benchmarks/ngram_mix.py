"""The model mixed with an n-gram of its training documents: how much of issue 12's top-5 gap an n-gram
can close.

Each validation word gets ``p(w) = (1 - lambda) p_model(w) + lambda p_ngram(w)``: ``p_model`` as
``nextword evaluate`` scores by default (the file's continuous cache mixed in, when it has one),
``p_ngram`` the interpolated modified Kneser-Ney model of :mod:`benchmarks.ngram`, counted on the
training side of the model's split (its development part included). Top-5 accuracy and perplexity are
reported for every ``lambda`` of a grid. The grid's best ``lambda`` is picked on the very documents it
is scored on, so the best row is an optimistic bound on what such a mixture gives, not a held-out
figure. ``lambda = 0`` is the model alone, as ``evaluate`` reports it.

    python -m benchmarks.ngram_mix                       # the bundled model, its validation documents
    python -m benchmarks.ngram_mix --sample 40           # a seeded sample of them (faster)
    python -m benchmarks.ngram_mix --model M.onnx --corpus C.csv --order 3
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from benchmarks.bench_model import split_documents
from benchmarks.environment import machine_info
from benchmarks.paths import require_files, shown
from benchmarks.report import markdown_table
from benchmarks.results import finish
from benchmarks.top5_misses import TOP5_TARGET, load_model, model_parser, pick

__all__ = ["LAMBDAS", "main", "measure", "model_distributions"]

LAMBDAS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = model_parser("ngram_mix", __doc__)
    parser.add_argument("--order", type=int, default=5, help="the n-gram's order (default: %(default)s)")
    parser.add_argument(
        "--sample", type=int, default=0, metavar="N", help="score N validation documents (default: all)"
    )
    parser.add_argument("--result-json", default=None, metavar="PATH", help="where to write the figures")
    args = parser.parse_args(argv)
    if args.order < 1:
        parser.error(f"--order must be 1 or more, got {args.order}")
    if args.sample < 0:
        parser.error(f"--sample must be 0 (all) or a number of documents, got {args.sample}")
    return args


def model_distributions(model: Any, ids: np.ndarray, cache: Any) -> Iterator[np.ndarray]:
    """The model's log-probabilities (V,) float64 predicting each of ``ids[1:]`` from the ids before
    it, one token per step from a zero state, with ``cache`` (a
    :class:`~nextword.runtime.cache.CacheConfig`, or None) mixed in as ``evaluate`` mixes it."""
    from nextword.runtime.cache import ContinuousCache
    from nextword.runtime.logits import log_softmax
    from nextword.runtime.stepper import stepper_for

    stepper = stepper_for(model)
    state = model.initial_state(1)
    rows = None if cache is None else ContinuousCache(cache, 1, state[-2].shape[1])
    for i in range(len(ids) - 1):
        token = ids[i : i + 1]
        logits, state = stepper.step(token, state)
        logp = log_softmax(logits)  # (1, V)
        if rows is not None:
            rows.observe(token, state[-2])
            rows.mix_logprobs(logp)
        yield logp[0]


def measure(
    model: Any,
    training: Sequence[str],
    documents: Sequence[str],
    cache: Any,
    order: int = 5,
    lambdas: Sequence[float] = LAMBDAS,
) -> dict[str, Any]:
    """Top-5 hits and total negative log-likelihood over ``documents`` (each scored as ``<eod> text
    <eod>``) of the model mixed with an ``order``-gram counted on ``training``, for each of
    ``lambdas`` (the n-gram's weight)."""
    from benchmarks.ngram import ModifiedKneserNey
    from benchmarks.quality import stream_of

    tok = model.tokenizer
    ngram = ModifiedKneserNey(stream_of(list(training), tok), model.vocab_size, order, tok.eod_id)
    weights = np.asarray(lambdas, dtype=np.float64)[:, None]  # (L, 1)
    hits, nll, words = np.zeros(len(lambdas), dtype=np.int64), np.zeros(len(lambdas)), 0
    for text in documents:
        ids = np.asarray([tok.eod_id, *tok.encode(text), tok.eod_id], dtype=np.int64)
        pairs = zip(model_distributions(model, ids, cache), ngram.distributions(ids), strict=True)
        for target, (logp, counted) in zip(ids[1:].tolist(), pairs, strict=True):
            mixed = (1 - weights) * np.exp(logp) + weights * counted  # (L, V)
            chosen = mixed[:, target]
            hits += (mixed > chosen[:, None]).sum(axis=1) < 5  # as evaluate ranks: ties favour the word
            nll -= np.log(chosen)
            words += 1
    return {
        "documents": len(documents),
        "words": words,
        "order": order,
        "cache": cache is not None,
        "lambdas": [float(x) for x in lambdas],
        "top5_hits": hits.tolist(),
        "nll": nll.tolist(),
    }


def render(result: dict[str, Any]) -> str:
    words = result["words"]
    top5 = [h / words for h in result["top5_hits"]]
    ppl = [float(np.exp(n / words)) for n in result["nll"]]
    best = int(np.argmax(top5))
    model = "the model with its cache" if result["cache"] else "the model"
    rows = [
        [f"{lam:g}" + (" (the model alone)" if lam == 0 else ""), f"{t:.2%}", f"{p:.2f}"]
        for lam, t, p in zip(result["lambdas"], top5, ppl, strict=True)
    ]
    of = (
        f" (a seeded sample of {result['of']:,})"
        if result.get("of", result["documents"]) > result["documents"]
        else ""
    )
    return "\n".join(
        [
            f"Model `{shown(result['model'])}` ({model}) mixed with an interpolated modified Kneser-Ney "
            f"{result['order']}-gram of its training documents; {result['documents']:,} validation "
            f"documents{of} of `{shown(result['corpus'])}`, {words:,} words.",
            "",
            markdown_table(["n-gram weight", "top-5 accuracy", "perplexity"], rows, align="lrr"),
            "",
            f"Best weight on these same documents (an optimistic bound): {result['lambdas'][best]:g}, "
            f"top-5 {top5[best]:.2%} against {top5[0]:.2%} for the model alone (issue 12's target: "
            f"{TOP5_TARGET:.0%}).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", ""), "--corpus": (args.corpus, "corpus", "")})
    model_path, model = load_model(args.model)
    training, validation = split_documents(args.corpus, model.info)
    result = measure(model, training, pick(validation, args.sample), model.cache_settings, args.order)
    result.update(model=model_path, corpus=args.corpus, machine=machine_info(), of=len(validation))
    return finish("ngram_mix", result, None, render, args.result_json)


if __name__ == "__main__":
    raise SystemExit(main())
