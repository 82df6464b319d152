"""Does a row's text depend on what else is in the batch? fp32 against int8, measured.

An fp32 model gives a row the same logits alone or in a batch, so continuous batching reproduces
``model.generate`` exactly. An int8 file quantizes activations dynamically, with one scale per tensor
of a session call, so the rows of one call share that scale and a row's logits move slightly with its
neighbours. This script measures by how much, with the runtime's public API only:

1. logits: one step of ``--rows`` different contexts as one batch against each context alone, the
   largest absolute difference (and the largest relative to the logits' spread);
2. texts: ``--texts`` seeded generations of ``--words`` words, each alone (``model.generate``) and as one
   row of a Generator that holds 31 other requests: how many are identical, and where the others first
   differ.

    python -m benchmarks.batch_int8 --model runs/bundled-fp32.onnx      # fp32: all identical
    python -m benchmarks.batch_int8                                     # the bundled (int8) model
"""

from __future__ import annotations

import argparse
from typing import cast

import numpy as np

from benchmarks.paths import require_files
from benchmarks.results import at_least, benchmark_parser
from nextword.runtime import GenerationConfig, default_model

PROMPTS = [
    "a neural network",
    "the present invention relates to",
    "the processor",
    "a method for training",
    "each neuron of the hidden layer",
    "the system",
    "",
    "an input signal is",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("batch_int8", __doc__)
    parser.add_argument("--model", help="the .onnx file (default: $NEXTWORD_MODEL, else the bundled model)")
    parser.add_argument("--rows", type=int, default=32, help="contexts of the one-step logits comparison")
    parser.add_argument("--texts", type=int, default=64, help="seeded generations compared alone and batched")
    parser.add_argument("--words", type=int, default=50, help="words per generated text")
    args = parser.parse_args(argv)
    at_least(parser, 1, {"--rows": args.rows, "--texts": args.texts, "--words": args.words})
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    model = default_model(args.model)
    precision = "int8" if "int8_vs_fp32" in model.info.parity else "fp32"

    # 1. logits of one step: the batch against each row alone
    rng = np.random.default_rng(0)
    contexts = [model.prompt_ids(PROMPTS[i % len(PROMPTS)]) for i in range(args.rows)]
    states, tokens = [], []
    for ids in contexts:
        _, state = model.feed(np.asarray([ids[:-1] or ids]), model.initial_state(1))
        states.append(state)
        tokens.append(ids[-1] if len(ids) > 1 else int(rng.integers(3, model.vocab_size)))
    batch_state = [np.concatenate(parts) for parts in zip(*states, strict=True)]
    batched, _ = model.forward(np.asarray(tokens)[:, None], batch_state)
    alone = np.concatenate(
        [model.forward(np.asarray([[t]]), s)[0] for t, s in zip(tokens, states, strict=True)]
    )
    diff = np.abs(batched - alone)
    spread = float(np.std(alone))

    # 2. texts: alone against inside a busy generator
    identical, first_diffs = 0, []
    config = GenerationConfig(max_words=args.words, stop_at_end=False)
    for i in range(args.texts):
        prompt, seed = PROMPTS[i % len(PROMPTS)], 1000 + i
        expected = cast(str, model.generate(prompt, config=config, seed=seed))  # one prompt: a str
        gen = model.generator()
        for j in range(31):  # neighbours: other prompts and seeds
            gen.add(PROMPTS[(i + j + 1) % len(PROMPTS)], GenerationConfig(max_words=args.words, seed=j))
        (row,) = gen.add(prompt, GenerationConfig(max_words=args.words, stop_at_end=False, seed=seed))
        gen.run()
        got = gen.text(row)
        if got == expected:
            identical += 1
        else:
            a, b = expected.split(), got.split()
            first_diffs.append(
                next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            )

    print(f"model {model.source} ({precision})")
    print(
        f"one step, {args.rows} rows batched vs alone: max |logit difference| {diff.max():.2e} "
        f"(logit spread {spread:.2f}), mean {diff.mean():.2e}"
    )
    print(f"{args.words}-word seeded texts identical alone and in a batch of 32: {identical}/{args.texts}")
    if first_diffs:
        print(
            f"  the others first differ at word {min(first_diffs)}..{max(first_diffs)} "
            f"(median {int(np.median(first_diffs))})"
        )


if __name__ == "__main__":
    main()
