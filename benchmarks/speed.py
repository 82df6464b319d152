"""Per-word cost of the shipped model: ``generate()`` and ``stream()`` against the bare step (issue 17).

For the bundled int8 file and its fp32 twin (``benchmarks.shipped`` says which file and why): ``--words``
words after a 3-word prompt, ``stop_at_end=False`` so that every generation runs its full length, each
figure the median of ``--rounds`` rounds in which every case runs once (interleaved, so load from other
processes hits them all alike):

- the floors: bare ``model.forward`` steps, state carried, at batch 1, 4 and 64 (the floor issue 17
  names), and the same single-token steps through ``model.stepper()`` (buffers bound once: what the
  decoding loops step on, and the faster of the two);
- ``generate()`` with the bundled file's decoding defaults; greedy (``temperature=0``); ``top_k=40``,
  ``top_p=0.9`` and ``repetition_penalty=1.2`` (each with ``no_repeat_ngram_size=0``, so that the row
  costs its own option alone); beam search (``num_beams=4``, against the bare step of batch 4); 64 rows
  (``num_return_sequences=64``, against the bare step of batch 64); ``stream()`` with the defaults.

Both files run with the bundled file's decoding defaults, so each case does the same work on both.
Reported: ms per word (per row for batch 64; per beam step for beam search) and the ratio to each floor
of the same batch; a target (1.2×; 1.3× for repetition penalty and beam search) counts as met only
against the faster floor, the stepper's.
``benchmarks.speed_report`` writes the table.

    python -m benchmarks.speed                       # about 3 minutes on two cores
    python -m benchmarks.speed --rounds 2 --words 50 --max-seconds 30   # a smoke test, not figures
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks import timing
from benchmarks.environment import machine_info
from benchmarks.results import at_least, benchmark_parser, finish
from benchmarks.shipped import SHORT_PROMPT, add_shipped_arguments, shipped_files
from benchmarks.speed_report import render, targets

NAME = "speed"


@dataclass(frozen=True)
class Case:
    """One way of generating, compared with the bare step of ``batch`` rows."""

    key: str
    label: str
    options: dict[str, Any] = field(default_factory=dict)  # on top of the bundled file's defaults
    batch: int = 1  # rows of each session call
    rows: int = 1  # texts produced: ms/word is per text
    target: float = 1.2  # at most this many times the bare step
    stream: bool = False


CASES = (
    Case("defaults", "`generate()`, the file's defaults"),
    Case("greedy", "`generate(temperature=0)`", {"temperature": 0.0}),
    Case("top_k", "`generate(top_k=40, no_repeat_ngram_size=0)`", {"top_k": 40, "no_repeat_ngram_size": 0}),
    Case("top_p", "`generate(top_p=0.9, no_repeat_ngram_size=0)`", {"top_p": 0.9, "no_repeat_ngram_size": 0}),
    Case(
        "repetition_penalty",
        "`generate(repetition_penalty=1.2, no_repeat_ngram_size=0)`",
        {"repetition_penalty": 1.2, "no_repeat_ngram_size": 0},
        target=1.3,
    ),
    Case("beam", "`generate(num_beams=4)`, per beam step", {"num_beams": 4}, batch=4, target=1.3),
    Case("batch64", "`generate(num_return_sequences=64)`, per row", {"num_return_sequences": 64}, 64, 64),
    Case("stream", "`stream()`, the file's defaults", stream=True),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("speed", __doc__)
    add_shipped_arguments(parser)
    parser.add_argument("--words", type=int, default=400, help="words per generation (default: %(default)s)")
    timing.add_round_arguments(parser, rounds=7, max_seconds=240)
    parser.add_argument(
        "--cases", default=",".join(c.key for c in CASES), help="cases to measure (default: all)"
    )
    args = parser.parse_args(argv)
    keys = [c.key for c in CASES]
    asked = [k for k in args.cases.split(",") if k]
    unknown = [k for k in asked if k not in keys]
    if unknown or not asked:
        parser.error(
            f"argument --cases: unknown case(s) {unknown or [args.cases]}; choose from {','.join(keys)}"
        )
    at_least(parser, 1, {"--words": args.words, "--rounds": args.rounds})
    return args


def floor_timer(model: Any, batch: int, words: int) -> timing.Timer:
    """``words`` bare ``model.forward`` steps of ``batch`` rows, the state carried."""
    ids = np.full((batch, 1), model.prompt_ids(SHORT_PROMPT)[-1], dtype=np.int64)  # (B, 1)

    def timer(seed: int) -> tuple[float, int]:
        state = model.initial_state(batch)
        start = time.perf_counter()
        for _ in range(words):
            _, state = model.forward(ids, state)  # logits (B, 1, V)
        return time.perf_counter() - start, words

    timer(timing.WARM_UP_SEED)
    return timer


def bound_timer(model: Any, batch: int, words: int) -> timing.Timer:
    """``words`` bare single-token steps of ``batch`` rows through ``model.stepper()`` (buffers bound
    once), the state carried: the floor the decoding loops themselves step on."""
    tokens = np.full(batch, model.prompt_ids(SHORT_PROMPT)[-1], dtype=np.int64)  # (B,)

    def timer(seed: int) -> tuple[float, int]:
        stepper, state = model.stepper(), model.initial_state(batch)
        start = time.perf_counter()
        for _ in range(words):
            _, state = stepper.step(tokens, state)  # logits (B, V)
        return time.perf_counter() - start, words

    timer(timing.WARM_UP_SEED)
    return timer


def case_timer(model: Any, case: Case, defaults: Any, words: int) -> timing.Timer:
    """``case`` once per call: the steps it took are counted outside the clock (a run of the same
    settings through the step-level API), so ms per step divides by what was really generated."""
    from nextword.runtime import BeamSearch, GenerationConfig, Generator

    prompt_ids = model.prompt_ids(SHORT_PROMPT)

    def steps(config: Any) -> int:
        if config.num_beams > 1:
            search = BeamSearch(model, [prompt_ids], config)
            while search.step():
                pass
            return search.steps
        gen = Generator(model)
        rows = gen.add_ids([prompt_ids], config)
        gen.run()
        return max(len(gen.tokens(row)) for row in rows)

    def timer(seed: int) -> tuple[float, int]:
        options = {"max_words": words, "stop_at_end": False, "seed": seed, **case.options}
        config = GenerationConfig.from_options(defaults, **options)
        produced = steps(config)
        start = time.perf_counter()
        if case.stream:
            for _ in model.stream(SHORT_PROMPT, config):
                pass
        else:
            model.generate(SHORT_PROMPT, config)
        return time.perf_counter() - start, produced

    timer(timing.WARM_UP_SEED)
    return timer


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from nextword.runtime import load

    files = shipped_files(args)
    models = {name: load(file.path) for name, file in files.items()}
    defaults = models["int8"].info.generation  # the shipped file's decoding defaults, for both files
    cases = [c for c in CASES if c.key in args.cases.split(",")]
    batches = sorted({1, *(c.batch for c in cases)})  # the bare step of every batch a case runs
    seeds = list(range(args.rounds))
    timers: dict[str, tuple[timing.Timer, list[int]]] = {}
    for name, model in models.items():
        print(f"speed: preparing {name} ({files[name].path})", file=sys.stderr, flush=True)
        for batch in batches:
            timers[f"{name}/step{batch}"] = (floor_timer(model, batch, args.words), seeds)
            timers[f"{name}/bound{batch}"] = (bound_timer(model, batch, args.words), seeds)
        for case in cases:
            timers[f"{name}/{case.key}"] = (case_timer(model, case, defaults, args.words), seeds)
    print(f"speed: {len(timers)} timers, {args.rounds} rounds at most", file=sys.stderr, flush=True)
    timed = timing.interleaved(timers, max_seconds=args.max_seconds, settle=timing.SETTLE_SECONDS)
    result: dict[str, Any] = {
        "files": {k: f.to_dict() for k, f in files.items()},
        "defaults": defaults.changes(),
    }
    for name in models:
        result[name] = {
            "steps": {str(b): timed[f"{name}/step{b}"]["ms_per_word"] for b in batches},
            "bound_steps": {str(b): timed[f"{name}/bound{b}"]["ms_per_word"] for b in batches},
            "cases": {c.key: timed[f"{name}/{c.key}"]["ms_per_word"] for c in cases},
            "words": {c.key: timed[f"{name}/{c.key}"]["words"] for c in cases},
        }
    result["cases"] = [
        {"key": c.key, "label": c.label, "batch": c.batch, "rows": c.rows, "target": c.target} for c in cases
    ]
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = {
        "name": NAME,
        "settings": {
            "words": args.words,
            "rounds": args.rounds,
            "max_seconds": args.max_seconds,
            "prompt": SHORT_PROMPT,
        },
        "machine": machine_info(),
        **measure(args),
    }
    return finish(NAME, result, targets, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
