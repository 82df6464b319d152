"""Variants of the continuous cache, every parameter chosen on the development documents: perplexity and
top-5 accuracy on the development and validation documents of the model's own split.

The model is stepped once over both sets of documents (one token per session call, as ``evaluate`` does
with a cache); the variants are then pure numpy on the traces (benchmarks.cache_mixture):

    (a) the file's own cache, as the runtime computes it from the settings stored (a constant mix or a
        gate, dot products or cosines), then the constant-mix dot-product cache re-chosen here:
        p = (1 - mix) p_model + mix p_cache, p_cache(w) from exp(theta h_t . h_i) over the earlier
        positions i of the document whose next word was w;
    (b) a share growing with what the cache holds: mix * n / (n + k), n the positions held;
    (c) a gate from the cache's own confidence: sigmoid(a + b f), f = log sum_i exp(theta h_t . h_i)
        (c1), its mean over the held positions in log space (c2), or the largest h_t . h_i (c3);
    (d) cosine similarities (unit-length h) instead of dot products;
    (e) a second component: the document's earlier words counted alike (theta 0, a unigram cache; e1)
        or the same cache at a second theta (e2);
    (f) combinations: (b) with cosine (f1), (b) times (c1)'s gate (f2), (c1)'s gate with cosine (f3),
        and both with cosine (f4);
    (g) the best of these on the development documents with its window chosen there too.

Every variant's theta comes from a grid, its shares and gates from a compass search of the development
negative log-likelihood; the window stays the file's but in (g). Rerun: ``python -m benchmarks.cache_variants
--corpus PATH`` (``--help``; ``--traces FILE`` keeps the traces for the next run).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from benchmarks.cache_mixture import (
    cache_view,
    compass_search,
    gate_share,
    mixture,
    ranks_below,
    similarities,
)
from benchmarks.cache_traces import Traced, load_traces, save_traces, trace
from benchmarks.paths import DEFAULT_CORPUS, require_files
from benchmarks.report import markdown_table
from benchmarks.results import benchmark_parser, save_result

NAME = "cache_variants"
DOT_THETAS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
SIZES = {"fixed": 1, "count": 2, "gate": 2, "count_gate": 3}  # parameters of each share kind
WINDOWS = (64, 128, 256, 512, 1024)  # tried for the best variant on the development documents
WINDOW_TOLERANCE = 0.002  # the smallest window within this share of the best perplexity, as export picks
COS_THETAS = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 14.0, 20.0, 30.0, 50.0, 70.0, 100.0)


@dataclass(frozen=True)
class Component:
    """One cache mixed in: its similarity, theta, and how its share is set (gate_share's kinds)."""

    cosine: bool
    theta: float
    share: str  # fixed | count | gate
    feature: str | None = None  # for a gate: log_total | log_mean | peak


@overload
def _feature(view: Any, name: str) -> np.ndarray: ...
@overload
def _feature(view: Any, name: None) -> None: ...
@overload
def _feature(view: Any, name: str | None) -> np.ndarray | None: ...
def _feature(view: Any, name: str | None) -> np.ndarray | None:
    if name is None:
        return None
    if name == "log_total":
        return view.log_total
    if name == "log_mean":
        return view.log_total - np.log(np.maximum(view.count, 1))
    return view.peak


def _params_for(components: Sequence[Component], params: np.ndarray) -> list[np.ndarray]:
    if not components:
        return []
    sizes = [SIZES[c.share] for c in components]
    return np.split(np.asarray(params, dtype=np.float64), np.cumsum(sizes)[:-1])


class Columns:
    """What fitting needs of a set of documents, per cache (similarity, theta): each position's p_cache of
    its target and the gate features, all documents concatenated; computed once per cache."""

    def __init__(self, docs: list[Traced], window: int) -> None:
        self.docs, self.window = docs, window
        self.p_model = np.exp(
            np.concatenate([d.logprobs[np.arange(len(d.logprobs)), d.target_index] for d in docs])
        )
        self._sims: dict[bool, list[np.ndarray]] = {}
        self._views: dict[tuple[bool, float], dict[str, np.ndarray]] = {}

    def view(self, cosine: bool, theta: float) -> dict[str, np.ndarray]:
        key = (cosine, theta)
        if key not in self._views:
            sims = self._sims.setdefault(cosine, [similarities(d.states, cosine) for d in self.docs])
            parts: dict[str, list[np.ndarray]] = {
                "p": [],
                "count": [],
                "log_total": [],
                "log_mean": [],
                "peak": [],
            }
            for d, s in zip(self.docs, sims, strict=True):
                v = cache_view(s, theta, self.window, d.target_index, len(d.vocab))
                parts["p"].append(v.probs[np.arange(len(s)), d.target_index])
                parts["count"].append(v.count)
                for name in ("log_total", "log_mean", "peak"):
                    parts[name].append(_feature(v, name))
            self._views[key] = {k: np.concatenate(v) for k, v in parts.items()}
        return self._views[key]

    def nll(self, components: Sequence[Component], params: np.ndarray) -> float:
        """Mean negative log-likelihood of the targets under the mixture."""
        parts, shares = [], []
        for c, p in zip(components, _params_for(components, params), strict=True):
            v = self.view(c.cosine, c.theta)
            feature = v[c.feature] if c.feature else None
            parts.append(v["p"])
            shares.append(gate_share(c.share, p, v["count"], feature))
        q, _ = mixture(self.p_model, parts, shares)
        return float(-np.log(np.maximum(q, 1e-300)).mean())


def start_params(components: Sequence[Component]) -> list[float]:
    start: list[float] = []
    for c in components:
        start += {"fixed": [-1.5], "count": [-1.0, 1.0], "gate": [-1.5, 0.0], "count_gate": [-1.0, 0.0, 1.0]}[
            c.share
        ]
    return start


def fit(columns: Columns, components: Sequence[Component]) -> tuple[np.ndarray, float]:
    """Shares and gate parameters minimizing the development NLL, for fixed similarities and thetas."""
    # gate features standardized while searching, so one step size fits every parameter
    scales: list[tuple[float, float] | None] = []  # (mean, sd) of each component's feature, or None
    for c in components:
        if c.feature is not None:
            view = columns.view(c.cosine, c.theta)
            f = view[c.feature][view["count"] > 0]
            scales.append((float(f.mean()), float(f.std()) or 1.0))
        else:
            scales.append(None)

    def raw(params: np.ndarray) -> np.ndarray:
        out = []
        for p, s in zip(_params_for(components, params), scales, strict=True):
            if s is not None:  # a + b (f - mu) / sd  ->  (a - b mu / sd) + (b / sd) f
                p = np.array([p[0] - p[1] * s[0] / s[1], p[1] / s[1], *p[2:]])
            out.append(p)
        return np.concatenate(out)

    best, _ = compass_search(lambda x: columns.nll(components, raw(x)), start_params(components))
    params = raw(best)
    return params, columns.nll(components, params)


def search(columns: Columns, make: Any, grid: Sequence[Any]) -> tuple[list[Component], np.ndarray, float]:
    """The best over ``grid`` of ``make(value)`` (a list of components), each fitted on the columns."""
    results = [(make(g), *fit(columns, make(g))) for g in grid]
    return min(results, key=lambda r: r[2])


def score(
    docs: list[Traced], components: Sequence[Component], params: np.ndarray, window: int
) -> dict[str, Any]:
    """Perplexity, accuracy and top-5 accuracy of the mixture on ``docs``, and each document's (NLL,
    words) under ``per_document``."""
    nll, hits1, hits5, words = 0.0, 0, 0, 0
    per_document = []  # (nll, words) of each document
    for d in docs:
        parts, shares = [], []
        for c, p in zip(components, _params_for(components, params), strict=True):
            v = cache_view(similarities(d.states, c.cosine), c.theta, window, d.target_index, len(d.vocab))
            parts.append(v.probs)
            shares.append(gate_share(c.share, p, v.count, _feature(v, c.feature)))
        q, keep = mixture(np.exp(d.logprobs), parts, shares)
        n = len(q)
        per_document.append((-float(np.log(q[np.arange(n), d.target_index]).sum()), n))
        nll += per_document[-1][0]
        ranks = ranks_below(q, d.target_index, keep, d.vocab, d.top_ids, np.exp(d.top_logprobs))
        hits1, hits5, words = hits1 + int((ranks == 0).sum()), hits5 + int((ranks < 5).sum()), words + n
    return {
        "perplexity": math.exp(nll / words),
        "accuracy": hits1 / words,
        "top5": hits5 / words,
        "words": words,
        "per_document": per_document,
    }


def paired(
    variant: dict[str, Any], base: dict[str, Any], resamples: int = 1000
) -> tuple[float, float, float]:
    """``variant`` against ``base`` on the same documents: the share of documents whose perplexity it
    lowers, and a 95% bootstrap interval (documents resampled) of its perplexity over the base's."""
    nll, words = np.array(variant["per_document"]).T
    base_nll = np.array(base["per_document"])[:, 0]
    draws = np.random.default_rng(0).integers(0, len(words), (resamples, len(words)))
    ratios = np.exp((nll[draws].sum(axis=1) - base_nll[draws].sum(axis=1)) / words[draws].sum(axis=1))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float((nll < base_nll).mean()), float(low), float(high)


def describe(components: Sequence[Component], params: np.ndarray) -> str:
    """The chosen settings in words."""
    words = []
    for c, p in zip(components, _params_for(components, params), strict=True):
        sim = "cos" if c.cosine else "dot"
        if c.share == "fixed":
            share = f"mix {1 / (1 + math.exp(-p[0])):.3f}"
        elif c.share == "count":
            share = f"mix {1 / (1 + math.exp(-p[0])):.3f} n/(n+{math.exp(p[1]):.2f})"
        else:
            share = f"sigmoid({p[0]:.3g} {p[1]:+.3g} {c.feature})"
            share += f" n/(n+{math.exp(p[2]):.2f})" if c.share == "count_gate" else ""
        words.append(f"{sim} theta {c.theta:g}, {share}")
    return "; ".join(words)


Variant = tuple[str, list[Component], np.ndarray, int]  # label, components, parameters, window


def variants(docs: list[Traced], file_cache: Any) -> list[Variant]:
    """Every variant with its parameters chosen on ``docs`` (the development documents)."""
    window = file_cache.window
    columns = Columns(docs, window)
    dot = DOT_THETAS[1:]  # theta 0 is the unigram cache of (e1)
    cosine = file_cache.similarity == "cosine"
    if file_cache.gate is None:
        logit = math.log(file_cache.mix / (1 - file_cache.mix))
        own = ([Component(cosine, file_cache.theta, "fixed")], np.array([logit]))
    else:  # the gate's feature is the cache's log-sum-exp, as the runtime computes it
        own = ([Component(cosine, file_cache.theta, "gate", "log_total")], np.array(file_cache.gate))
    found: list[Variant] = [("model alone", [], np.zeros(0), window), ("(a) file's cache", *own, window)]
    plans = {
        "(a) re-tuned": (lambda th: [Component(False, th, "fixed")], dot),
        "(b) count share": (lambda th: [Component(False, th, "count")], dot),
        "(c1) gate log-sum-exp": (lambda th: [Component(False, th, "gate", "log_total")], dot),
        "(c2) gate log-mean-exp": (lambda th: [Component(False, th, "gate", "log_mean")], dot),
        "(c3) gate max similarity": (lambda th: [Component(False, th, "gate", "peak")], dot),
        "(d) cosine": (lambda th: [Component(True, th, "fixed")], COS_THETAS),
        "(e1) + unigram cache": (
            lambda th: [Component(False, th, "fixed"), Component(False, 0.0, "fixed")],
            dot,
        ),
        "(f1) cosine, count share": (lambda th: [Component(True, th, "count")], COS_THETAS),
        "(f2) count share x gate log-sum-exp": (
            lambda th: [Component(False, th, "count_gate", "log_total")],
            dot,
        ),
        "(f3) cosine, gate log-sum-exp": (lambda th: [Component(True, th, "gate", "log_total")], COS_THETAS),
        "(f4) cosine, count share x gate log-sum-exp": (
            lambda th: [Component(True, th, "count_gate", "log_total")],
            COS_THETAS,
        ),
    }
    nlls = {}
    for label, (make, grid) in plans.items():
        components, params, nlls[label] = search(columns, make, grid)
        found.append((label, components, params, window))
        _log(label, components, params, nlls[label], window)
        if label == "(e1) + unigram cache":  # (e2): a second theta beside (a)'s re-tuned one
            first = found[2][1][0]
            second = [th for th in dot if th != first.theta]
            pair = search(columns, lambda th, c=first: [c, Component(False, th, "fixed")], second)
            found.append(("(e2) two thetas", pair[0], pair[1], window))
            _log("(e2) two thetas", pair[0], pair[1], pair[2], window)
    best = min(nlls, key=nlls.__getitem__)  # (g): the best variant, its window chosen too
    make, grid = plans[best]
    tried = {w: search(Columns(docs, w), make, grid) for w in WINDOWS}
    least = min(r[2] for r in tried.values())
    w = min(w for w, r in tried.items() if r[2] <= least + math.log1p(WINDOW_TOLERANCE))
    found.append((f"(g) {best[: best.index(')') + 1]} + window", tried[w][0], tried[w][1], w))
    _log(found[-1][0], tried[w][0], tried[w][1], tried[w][2], w)
    return found


def _log(label: str, components: list[Component], params: np.ndarray, nll: float, window: int) -> None:
    print(
        f"{label}: {describe(components, params)}, window {window}: dev ppl {math.exp(nll):.2f}", flush=True
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from nextword.runtime.default import BUNDLED_MODEL

    parser = benchmark_parser("cache_variants", __doc__)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="model file (default: the bundled one)")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="the corpus its split is rebuilt from")
    parser.add_argument("--traces", help="NPZ file of the traces: read when it exists, else written")
    parser.add_argument(
        "--json", help="figures file (default: benchmarks/.cache/results/cache_variants.json)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", ""), "--corpus": (args.corpus, "corpus", "")})
    from benchmarks.quality import model_splits
    from nextword.runtime import load

    model = load(args.model)
    cache = model.info.cache
    if cache is None:
        raise SystemExit(f"{args.model} has no cache settings to compare against")
    started = time.monotonic()
    tag = f"{hashlib.sha256(Path(args.model).read_bytes()).hexdigest()} {Path(args.corpus).resolve()}"
    traced = None
    if args.traces and Path(args.traces).is_file():
        traced = load_traces(Path(args.traces), ("dev", "val"), tag)
        print(f"{args.traces}: {'reused' if traced else 'made from another model or corpus, traced again'}")
    if traced is None:
        splits = model_splits(model, args.corpus)
        tok = model.tokenizer
        traced = {
            name: trace(model, [[tok.eod_id, *tok.encode(d), tok.eod_id] for d in docs])
            for name, docs in (("dev", splits.dev), ("val", splits.val))
        }
        if args.traces:
            save_traces(Path(args.traces), traced, tag)
    seconds = time.monotonic() - started
    print(
        f"{len(traced['dev'])} dev and {len(traced['val'])} val documents traced in {seconds:.0f} s",
        flush=True,
    )
    rows: list[list[str]] = []
    figures: list[dict[str, Any]] = []
    for label, components, params, window in variants(traced["dev"], cache):
        dev, val = (score(traced[s], components, params, window) for s in ("dev", "val"))
        settings = (describe(components, params) + f"; window {window}") if components else "–"
        against = ["–", "–"]
        if len(figures) >= 2:  # against the file's cache, the second row
            lower, low, high = paired(val, figures[1]["val"])
            val["against_file"] = {"documents_lower": lower, "ratio_95": [low, high]}
            against = [f"{low:.3f}–{high:.3f}", f"{lower:.0%}"]
        figures.append({"variant": label, "settings": settings, "window": window, "dev": dev, "val": val})
        numbers = (dev["perplexity"], dev["top5"], val["perplexity"], val["top5"], val["accuracy"])
        rows.append([label, settings, *(f"{x:.2f}" if x > 1 else f"{x:.1%}" for x in numbers), *against])
    words = f"{figures[0]['dev']['words']:,} dev and {figures[0]['val']['words']:,} val words"
    print(f"\nCache variants of {Path(args.model).name} ({words}); every parameter chosen on dev.")
    print("Against the file's cache on the validation documents: a 95% bootstrap interval of the perplexity")
    print("ratio (documents resampled) and the share of documents whose perplexity the variant lowers.\n")
    headers = ["variant", "chosen on dev", "dev ppl", "dev top-5", "val ppl", "val top-5", "val top-1"]
    headers += ["val ppl / (a)", "val docs lower"]
    print(markdown_table(headers, rows, "llrrrrrrr"))
    for row in figures:
        for split in ("dev", "val"):
            del row[split]["per_document"]
    save_result(NAME, {"name": NAME, "model": str(args.model), "rows": figures}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
