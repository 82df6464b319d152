"""Summary statistics, and timers run in interleaved rounds so that load from other processes hits every
measured method alike.

A *timer* is a function ``seed -> (seconds, units)``: it runs the measured thing once (``units`` words,
steps or rows produced) and returns how long that took. :func:`interleaved` runs several timers round
by round and reports milliseconds per unit.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "Loop",
    "Timer",
    "add_round_arguments",
    "interleaved",
    "loop_timer",
    "per_second",
    "ratio",
    "summarize",
]

Timer = Callable[[int], tuple[float, int]]  # seed -> (seconds, units produced)
Loop = Callable[[int, int], int]  # (seed, units wanted) -> units produced
WARM_UP_SEED = 10_000  # the seed of every untimed warm-up run


def add_round_arguments(parser: argparse.ArgumentParser, rounds: int, max_seconds: float) -> None:
    """``--rounds`` (timed rounds at most) and ``--max-seconds`` (no new round after that long), with
    a benchmark's own defaults."""
    parser.add_argument(
        "--rounds", type=int, default=rounds, help="timed rounds at most (default: %(default)s)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=max_seconds,
        help="start no new round after this many seconds (default: %(default)s)",
    )


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and range of ``values`` (quartiles fall back to the range under 4 values)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("no values to summarize")
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def per_second(ms: dict[str, float]) -> dict[str, float]:
    """Units/s statistics from ms/unit statistics (the median and quartiles map over, swapped)."""
    return {
        "median": 1e3 / ms["median"],
        "q1": 1e3 / ms["q3"],
        "q3": 1e3 / ms["q1"],
        "min": 1e3 / ms["max"],
        "max": 1e3 / ms["min"],
        "n": ms["n"],
    }


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> float:
    """The ratio of two medians of :func:`summarize` (``{"median": ...}``)."""
    return numerator["median"] / denominator["median"]


def loop_timer(run: Loop, units: int) -> Timer:
    """A timer of ``run`` for ``units`` units, warmed up first (tracing and allocation left out)."""
    run(WARM_UP_SEED, min(units, 3))

    def timer(seed: int) -> tuple[float, int]:
        start = time.perf_counter()
        produced = run(seed, units)
        return time.perf_counter() - start, produced

    return timer


# onnxruntime's spinning pools stop spinning some tens of ms after their session's last run: ~40 ms on
# the first machine of docs/benchmarks.md, 50-70 ms on an AVX2 EPYC (a pool thread's CPU time read from
# /proc after one step). A timer started sooner shares the cores with the last one's spinning threads.
SETTLE_SECONDS = 0.1


def interleaved(
    timers: Mapping[str, tuple[Timer, Sequence[int]]],
    *,
    max_seconds: float | None = None,
    settle: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Run every timer once per seed, round-robin (round r runs each timer's r-th seed); ms per unit
    of each timer, with the units and seeds of its runs.

    With ``max_seconds``, no new round starts once that much time has passed (every timer still runs
    the first round, and all of them the same number of rounds wherever their seeds allow). With
    ``settle``, each timer starts that many seconds after the previous one ended (off its clock), so
    that the previous timer's thread pools are idle again (:data:`SETTLE_SECONDS`).
    """
    start = time.perf_counter()
    ms: dict[str, list[float]] = {name: [] for name in timers}
    units: dict[str, list[int]] = {name: [] for name in timers}
    rounds = max(len(seeds) for _, seeds in timers.values())
    for r in range(rounds):
        if r and max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
        for name, (timer, seeds) in timers.items():
            if r < len(seeds):
                if settle:
                    time.sleep(settle)
                seconds, produced = timer(seeds[r])
                ms[name].append(1e3 * seconds / max(produced, 1))
                units[name].append(produced)
    return {
        name: {
            "ms_per_word": summarize(ms[name]),
            "words": units[name],
            "seeds": list(seeds[: len(ms[name])]),
        }
        for name, (_, seeds) in timers.items()
    }
