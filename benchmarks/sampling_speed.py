"""Microseconds per ``runtime.sampling.sample`` call, before and after its one-row fast paths (issue 17).

The rows are the bundled model's own logits: ``--rows`` steps of a text it generates after a 3-word
prompt (temperature 1, seed 0), so each option meets the distributions it meets in ``generate()``. Each
case samples every row once per round (a fresh copy of the row each call, copied before the clock
starts; one generator per row, seeded by the round), "before" and "after" taking turns in interleaved
rounds; a figure is the median over ``--rounds`` rounds of the mean time per row. "before" is the
frozen copy of the sampler the fast paths replaced (``tests/reference/sampling_v2.py``: the same ids
for the same scores and generators, which ``tests/test_sampling.py`` checks). "after a step" is
today's sampler again, each call preceded (outside the clock) by one step of the model's bound stepper
for the case's rows, as in ``generate()``, where every draw follows a step: the step's weights pass
through the core's caches, and the sampler's code and data come back from further away.

    python -m benchmarks.sampling_speed                       # a few seconds
    python -m benchmarks.sampling_speed --rows 64 --rounds 1   # a smoke test, not figures
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks import timing
from benchmarks.environment import machine_info
from benchmarks.paths import REPO, require_files
from benchmarks.report import fmt_num, markdown_table
from benchmarks.results import benchmark_parser
from benchmarks.shipped import SHORT_PROMPT, bundled_path

BEFORE = REPO / "tests" / "reference" / "sampling_v2.py"


@dataclass(frozen=True)
class Case:
    """One way of sampling: ``sample(scores, rngs, temperature, top_k, top_p)`` on ``batch`` rows."""

    label: str
    temperature: float
    top_k: int | None = None
    top_p: float | None = None
    batch: int = 1


CASES = (
    Case("greedy (temperature 0)", 0.0),
    Case("temperature 1, whole vocabulary", 1.0),
    Case("temperature 0.7, whole vocabulary", 0.7),
    Case("top_k=40", 1.0, top_k=40),
    Case("top_p=0.9", 1.0, top_p=0.9),
    Case("top_p=0.9, temperature 0.7", 0.7, top_p=0.9),
    Case("top_p=0.99", 1.0, top_p=0.99),
    Case("top_k=40, top_p=0.9", 1.0, top_k=40, top_p=0.9),
    Case("64 rows, temperature 1 (per row)", 1.0, batch=64),
    Case("64 rows, top_k=40 (per row)", 1.0, top_k=40, batch=64),
    Case("64 rows, top_p=0.9 (per row)", 1.0, top_p=0.9, batch=64),
)

Sample = Callable[..., np.ndarray]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("sampling_speed", __doc__)
    parser.add_argument("--model", help="the model whose logits are sampled (default: the bundled model)")
    parser.add_argument("--rows", type=int, default=256, help="logit rows, one per generated word")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per case")
    args = parser.parse_args(argv)
    if args.rows < 64 or args.rounds < 1:
        parser.error("--rows must be at least 64 (the batched cases) and --rounds at least 1")
    return args


def model_rows(model_path: str, rows: int) -> np.ndarray:
    """``rows`` logit rows (rows, V) float32 of the model generating after the short prompt."""
    from nextword.runtime import load
    from nextword.runtime.sampling import sample

    model = load(model_path)
    ids = np.asarray([model.tokenizer.encode(SHORT_PROMPT)], dtype=np.int64)  # (1, T)
    logits, state = model.feed(ids, model.initial_state(1))  # (1, V)
    rng = np.random.default_rng(0)
    out = np.empty((rows, model.vocab_size), dtype=np.float32)
    for i in range(rows):
        out[i] = logits[0]
        chosen = sample(logits.astype(np.float32), [rng], 1.0)  # (1,)
        step, state = model.forward(chosen[:, None], state, logits_from=-1)  # (1, 1, V)
        logits = step[:, -1]
    return out


def load_before() -> ModuleType:
    """The frozen sampler that the fast paths replaced, loaded from its file."""
    spec = importlib.util.spec_from_file_location("nextword_sampling_before", BEFORE)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{BEFORE} is missing: run from a checkout of the repository")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def case_timer(
    sample: Sample, case: Case, rows: np.ndarray, before_each: Callable[[], object] | None = None
) -> timing.Timer:
    """A timer of ``sample`` over every row, in calls of ``case.batch`` rows: seconds and rows sampled.

    Only the calls are timed: each call's rows are copied just before it (sample() overwrites them), so
    they are in cache as the model's fresh logits would be; ``before_each`` runs before the copy."""
    batch, options = case.batch, (case.temperature, case.top_k, case.top_p)
    work = np.empty((batch, rows.shape[1]), dtype=np.float32)

    def timer(seed: int) -> tuple[float, int]:
        rngs = [np.random.default_rng([seed, i]) for i in range(len(rows))]
        seconds = 0.0
        for first in range(0, len(rows) - batch + 1, batch):
            if before_each is not None:
                before_each()
            np.copyto(work, rows[first : first + batch])
            generators = rngs[first : first + batch]
            start = time.perf_counter()
            sample(work, generators, *options)
            seconds += time.perf_counter() - start
        return seconds, len(rows) // batch * batch

    return timer


def stepping(model: Any, batch: int) -> Callable[[], object]:
    """One step of ``model``'s bound stepper for ``batch`` rows per call, its state carried."""
    stepper, state = model.stepper(), model.initial_state(batch)
    tokens = np.full(batch, model.tokenizer.eod_id, dtype=np.int64)

    def step() -> None:
        nonlocal state
        _, state = stepper.step(tokens, state)

    return step


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    from nextword.runtime import load
    from nextword.runtime.sampling import sample as after

    path = args.model or str(bundled_path())
    rows, model = model_rows(path, args.rows), load(path)
    before = load_before().sample
    seeds = list(range(args.rounds))
    results = []
    for case in CASES:
        timers = {
            "before": (case_timer(before, case, rows), seeds),
            "after": (case_timer(after, case, rows), seeds),
            "stepped": (case_timer(after, case, rows, stepping(model, case.batch)), seeds),
        }
        for timer, _ in timers.values():
            timer(timing.WARM_UP_SEED)
        runs = timing.interleaved(timers)
        us = {name: 1e3 * run["ms_per_word"]["median"] for name, run in runs.items()}
        results.append(
            {
                "case": case.label,
                "before_us": us["before"],
                "after_us": us["after"],
                "stepped_us": us["stepped"],
            }
        )
    return results


def render(results: list[dict[str, Any]]) -> str:
    """The markdown table: us per call (per row for the batched cases), before and after, the speedup,
    and after again with a model step before each call."""
    table = [
        [
            r["case"],
            fmt_num(r["before_us"]),
            fmt_num(r["after_us"]),
            f"{r['before_us'] / r['after_us']:.2f}x",
            fmt_num(r["stepped_us"]),
            f"{r['stepped_us'] / r['after_us']:.2f}x",
        ]
        for r in results
    ]
    header = ["case", "before (us/row)", "after (us/row)", "speedup", "after a step (us/row)", "vs after"]
    return markdown_table(header, table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    results = measure(args)
    info = machine_info()
    print(f"{info['cpu']}, numpy {info['versions'].get('numpy')}, {args.rows} rows x {args.rounds} rounds\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
