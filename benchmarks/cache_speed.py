"""What the continuous cache costs: per word in generation, and in scoring words per second.

- Generation: ms per word of the Generator's per-word loop (the prompt fed before the clock starts, as
  in generation.py), cache off and on, one row and 16 rows, timers interleaved round-robin so load
  from other processes hits both alike. The cost of the cache per word is the difference.
- Scoring: words per second of ``evaluate`` over validation documents, the model alone (text fed in
  chunks) and with the cache (one token per session call, 32 documents side by side), and of
  ``score`` on one long text. Measured with the process pinned to one core.

A model file without cache settings is measured with issue 12's probe settings (theta 0.07, mix 0.18,
window 256), said so in the result. Run: ``python -m benchmarks.cache_speed [--model MODEL.onnx]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from benchmarks import timing
from benchmarks.bench_model import add_model_arguments, get_bench_model, validation_documents
from benchmarks.decoding import PROMPT
from benchmarks.environment import machine_info
from benchmarks.report import fmt_stat, markdown_table, spread_label
from benchmarks.results import benchmark_parser, finish

NAME = "cache_speed"
FALLBACK: dict[str, Any] = {"theta": 0.07, "mix": 0.18, "window": 256}  # CacheConfig's arguments


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("cache_speed", __doc__)
    add_model_arguments(parser)
    parser.add_argument("--words", type=int, default=200, help="words per timed generation (default: 200)")
    parser.add_argument("--repeats", type=int, default=15, help="timed generations per setting (default: 15)")
    parser.add_argument(
        "--documents", type=int, default=150, help="validation documents scored (default: 150)"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Pin the process to one core (Linux); elsewhere, nothing."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def step_timer(model: Any, prompt_ids: list[int], words: int, rows: int, cache: bool) -> timing.Timer:
    """Time the per-word loop of ``rows`` sequences; the prompt is fed before the clock starts."""
    from nextword.runtime import GenerationConfig, Generator

    def timer(seed: int) -> tuple[float, int]:
        config = GenerationConfig.from_options(
            model.info.generation, max_words=words, stop_at_end=False, seed=seed, cache=cache
        )
        gen = Generator(model)
        added = gen.add_ids([prompt_ids] * rows, config)
        while any(not gen.tokens(r) for r in added) and not gen.done:  # feed the prompts
            gen.step()
        before = len(gen.tokens(added[0]))  # chosen with the last prompt piece, before the clock
        start = time.perf_counter()
        gen.run()
        return time.perf_counter() - start, len(gen.tokens(added[0])) - before

    timer(10_000)
    return timer


def measure(args: argparse.Namespace, model: Any, documents: list[str]) -> dict[str, Any]:
    from nextword.runtime import evaluate

    prompt = model.prompt_ids(PROMPT)
    timers = {}
    for rows in (1, 16):
        for cache in (False, True):
            timers[f"{rows}_{'cache' if cache else 'plain'}"] = (
                step_timer(model, prompt, args.words, rows, cache),
                list(range(args.repeats)),
            )
    with one_core():
        generation = timing.interleaved(timers)
        scoring = {}
        for label, use_cache in (("plain", False), ("cache", None)):
            evaluate(model, documents[:5], cache=use_cache)  # warm-up
            start = time.perf_counter()
            result = evaluate(model, documents, cache=use_cache)
            scoring[f"evaluate_{label}"] = result.words / (time.perf_counter() - start)
            text = " ".join(documents[:8])
            start = time.perf_counter()
            scored = model.score(text, cache=cache)
            scoring[f"score_{label}"] = len(scored.words) / (time.perf_counter() - start)
            scoring[f"perplexity_{label}"] = result.perplexity
        scoring["words"] = result.words
        scoring["score_words"] = len(scored.words)
    return {"generation": generation, "scoring": scoring}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    speed = result["scoring"]["evaluate_cache"]
    return [
        {
            "key": "cache_scoring",
            "target": "scoring with the continuous cache: at least 2,000 words/s on one core",
            "measured": f"{speed:,.0f} words/s (`evaluate`, 32 documents side by side)",
            "met": speed >= 2000,
            "why": "one session call per token, so every position's state reaches the cache",
        }
    ]


def render(result: dict[str, Any], img: str | None = None) -> str:
    g, s = result["generation"], result["scoring"]
    settings = result["settings"]
    rows = []
    for n in (1, 16):
        plain, cached = g[f"{n}_plain"]["ms_per_word"], g[f"{n}_cache"]["ms_per_word"]
        extra = cached["median"] - plain["median"]
        rows.append(
            [
                f"{n} row{'s' if n > 1 else ''}",
                fmt_stat(plain),
                fmt_stat(cached),
                f"{extra:+.3f} ({extra / plain['median']:+.0%})",
            ]
        )
    lines = [
        f"Cache settings: {settings['cache']}"
        + (
            " (issue 12's probe: the model file has none)"
            if settings["fallback"]
            else " (from the model file)"
        )
        + f". Generation: {settings['words']} words after a {settings['prompt_tokens']}-token prompt, "
        f"{settings['repeats']} runs per setting, interleaved; ms per step (every row one word on), median "
        f"({spread_label(settings['repeats'])}).",
        "",
        markdown_table(["batch", "cache off", "cache on", "cost of the cache per word"], rows),
        "",
        f"Scoring on one core ({s['words']:,} words of validation documents; `score` on one text of "
        f"{s['score_words']:,} words):",
        "",
        markdown_table(
            ["", "model alone", "with the cache"],
            [
                ["`evaluate`, words/s", f"{s['evaluate_plain']:,.0f}", f"{s['evaluate_cache']:,.0f}"],
                ["`score`, words/s", f"{s['score_plain']:,.0f}", f"{s['score_cache']:,.0f}"],
                ["perplexity", f"{s['perplexity_plain']:.1f}", f"{s['perplexity_cache']:.1f}"],
            ],
        ),
        "",
        "With the cache every token is its own session call (the cache needs the state after each "
        "position), so `evaluate` steps 32 documents side by side and `score`, one text, pays a call "
        "per word; generation already runs one call per word, and the cache adds its dot products "
        "with the kept states, one log-sum-exp over the vocabulary and the mixing of the cached tokens.",
    ]
    return "\n".join(lines)


def plots(result: dict[str, Any], img_dir: Any) -> list[Any]:
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = get_bench_model(args, need_run=False, need_model=True)
    from nextword.runtime import load
    from nextword.runtime.cache import CacheConfig
    from nextword.runtime.model import NextWordModel

    assert bench.model_path is not None  # need_model=True
    model = load(bench.model_path, threads=1)  # timed pinned to one core: one session of one thread
    fallback = model.info.cache is None
    if fallback:
        info = dataclasses.replace(model.info, cache=CacheConfig(**FALLBACK))
        model = NextWordModel(model.session, info, model.source)
    documents = validation_documents(bench.corpus, model.info)[: args.documents]
    cache = model.info.cache
    assert cache is not None  # the file's, or FALLBACK above
    result = {
        "name": NAME,
        "settings": {
            "words": args.words,
            "repeats": args.repeats,
            "prompt_tokens": len(model.prompt_ids(PROMPT)),
            "cache": cache.describe(),
            "fallback": fallback,
        },
        "model": bench.to_dict(),
        "machine": machine_info(),
        **measure(args, model, documents),
    }
    return finish(NAME, result, targets, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
