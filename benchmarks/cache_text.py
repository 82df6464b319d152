"""What the continuous cache does to generated text: repetition, diversity and samples side by side.

For each decoding setting (sampling at temperature 1 and 0.7, greedy), every prompt is continued with
and without the cache, same seeds, and each text is measured on its own:

- distinct-n: distinct n-grams / n-grams of the text (n = 1, 2, 3): lower means more repetition;
- repeated n-grams: the share of the text's n-grams (n = 2, 3) that already occurred earlier in it;
- stutter: the share of words equal to the word before them ("the the");
- model perplexity: the text's perplexity under the model *without* the cache, given the prompt: how
  ordinary the words are, by the model's own standard.

The same statistics of real abstracts (their first ``--words`` words) say what is natural for the
register. Run: ``python -m benchmarks.cache_text --model MODEL.onnx`` (``--help``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.paths import require_files
from benchmarks.results import benchmark_parser, write_text
from nextword.runtime import GenerationConfig, load
from nextword.runtime.cache import CacheConfig
from nextword.runtime.model import NextWordModel

PROMPTS = (
    "the present invention",
    "a neural network",
    "a method for training",
    "the system includes a processor",
    "an apparatus for recognizing speech",
    "a semiconductor device",
    "the image data",
    "",
)
SETTINGS: dict[str, dict[str, Any]] = {  # generation options
    "sampling, temperature 1": {"temperature": 1.0},
    "sampling, temperature 0.7": {"temperature": 0.7},
    "greedy": {"temperature": 0},
}
FALLBACK_CACHE = CacheConfig(theta=0.07, mix=0.18, window=256)  # issue 12's probe, for files without one


def text_stats(tokens: Sequence[int]) -> dict[str, float]:
    """Repetition and diversity of one text (token ids)."""
    out: dict[str, float] = {}
    for n in (1, 2, 3):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        out[f"distinct_{n}"] = len(set(grams)) / len(grams) if grams else 1.0
        if n > 1:
            seen: set[tuple[int, ...]] = set()
            repeated = 0
            for gram in grams:
                repeated += gram in seen
                seen.add(gram)
            out[f"repeated_{n}"] = repeated / len(grams) if grams else 0.0
    pairs = list(itertools.pairwise(tokens))
    out["stutter"] = sum(a == b for a, b in pairs) / len(pairs) if pairs else 0.0
    return out


def continuation_perplexity(model: NextWordModel, prompt_ids: list[int], tokens: list[int]) -> float:
    """Perplexity of ``tokens`` after ``prompt_ids`` under the model alone."""
    from nextword.runtime.scoring import token_logprobs

    logprobs, _ = token_logprobs(model, np.asarray([*prompt_ids, *tokens]))
    return math.exp(-float(logprobs[len(prompt_ids) - 1 :].mean()))


def measure(model: NextWordModel, seeds: int, words: int, references: Sequence[str] = ()) -> dict[str, Any]:
    """Statistics per setting, with and without the cache, and a few samples side by side."""
    results: dict[str, Any] = {"settings": {}, "samples": []}
    for name, options in SETTINGS.items():
        row: dict[str, Any] = {}
        for cache in (False, True):
            stats, perplexities = [], []
            for prompt in PROMPTS:
                prompt_ids = model.prompt_ids(prompt)
                for seed in range(seeds if options["temperature"] else 1):
                    config = GenerationConfig.from_options(
                        model.info.generation, max_words=words, seed=seed, cache=cache, **options
                    )
                    tokens = model.generate_ids(prompt_ids, config)
                    if len(tokens) < 2:
                        continue
                    stats.append(text_stats(tokens))
                    perplexities.append(continuation_perplexity(model, prompt_ids, tokens))
            row["cache" if cache else "no_cache"] = {
                **{k: statistics.mean(s[k] for s in stats) for k in stats[0]},
                "model_perplexity": statistics.median(perplexities),
                "texts": len(stats),
            }
        results["settings"][name] = row
    for prompt, seed in (("the present invention", 1), ("a neural network", 2), ("", 3)):
        pair = {"prompt": prompt, "seed": seed}
        for cache in (False, True):
            pair["cache" if cache else "no_cache"] = model.generate(
                prompt, max_words=60, seed=seed, cache=cache
            )
        results["samples"].append(pair)
    if references:
        tok = model.tokenizer
        ref = [text_stats(tok.encode(d)[:words]) for d in references if len(tok.encode(d)) > 10]
        results["reference"] = {k: statistics.mean(s[k] for s in ref) for k in ref[0]} | {"texts": len(ref)}
    return results


def render(results: dict[str, Any]) -> str:
    """Markdown: one table per setting, then the samples."""
    keys = ("distinct_1", "distinct_2", "distinct_3", "repeated_2", "repeated_3", "stutter")
    lines = [
        "| decoding | cache | " + " | ".join(k.replace("_", "-") for k in keys) + " | model perplexity |",
        "| --- | --- |" + " ---: |" * (len(keys) + 1),
    ]
    for name, row in results["settings"].items():
        for label in ("no_cache", "cache"):
            r = row[label]
            cells = " | ".join(f"{r[k]:.3f}" for k in keys)
            lines.append(
                f"| {name} | {'on' if label == 'cache' else 'off'} | {cells} | {r['model_perplexity']:.1f} |"
            )
    if "reference" in results:
        r = results["reference"]
        cells = " | ".join(f"{r[k]:.3f}" for k in keys)
        lines.append(f"| real abstracts ({r['texts']}) | | {cells} | |")
    lines += ["", "Samples (temperature 1, the model's decoding defaults), without and with the cache:", ""]
    for pair in results["samples"]:
        for label in ("no_cache", "cache"):
            lines.append(
                f"- `{pair['prompt'] or '(empty prompt)'}`, seed {pair['seed']}, cache "
                f"{'on' if label == 'cache' else 'off'}: {pair['prompt']}{pair[label]}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("cache_text", __doc__)
    parser.add_argument("--model", required=True, help="the model file")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per prompt for sampling (default: 5)")
    parser.add_argument("--words", type=int, default=100, help="words per text (default: 100)")
    parser.add_argument("--corpus", help="a corpus whose first 200 documents serve as the real reference")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    require_files({"--model": (args.model, "model file", ""), "--corpus": (args.corpus, "corpus", "")})
    model = load(args.model)
    if model.info.cache is None:
        print(f"{args.model} has no cache settings: using {FALLBACK_CACHE}", file=sys.stderr)
        model = NextWordModel(
            model.session, dataclasses.replace(model.info, cache=FALLBACK_CACHE), model.source
        )
    references: list[str] = []
    if args.corpus:
        from nextword.train import CorpusConfig, load_documents

        references = load_documents([args.corpus], CorpusConfig())[:200]
    results = measure(model, args.seeds, args.words, references)
    if args.json:
        write_text(args.json, json.dumps(results, indent=2))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
