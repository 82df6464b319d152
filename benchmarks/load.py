"""One model under load: 32 threads x 200 generate calls against the same calls made one by one, and the
process's resident memory over 20,000 calls. Prints Markdown tables.

    python -m benchmarks.load [--model MODEL.onnx] [--calls 20000] [--threads 32]

Without ``--model`` the bundled model is used.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from benchmarks.paths import require_files
from benchmarks.results import at_least, benchmark_parser
from nextword.runtime import GenerationConfig, load
from nextword.runtime.default import BUNDLED_MODEL

PROMPTS = ("the present invention", "a neural network", "", "the system comprises a processor")


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    with open("/proc/self/statm", encoding="utf-8") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("load", __doc__)
    parser.add_argument(
        "--model", default=str(BUNDLED_MODEL), help="the model file (default: the bundled one)"
    )
    parser.add_argument("--threads", type=int, default=32, help="threads sharing the one model")
    parser.add_argument(
        "--calls-per-thread", type=int, default=200, help="generate calls per thread (and made one by one)"
    )
    parser.add_argument("--calls", type=int, default=20_000, help="calls of the memory run")
    parser.add_argument("--max-words", type=int, default=20, help="words per generate call at most")
    args = parser.parse_args(argv)
    at_least(
        parser,
        1,
        {
            "--threads": args.threads,
            "--calls-per-thread": args.calls_per_thread,
            "--calls": args.calls,
            "--max-words": args.max_words,
        },
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    model = load(args.model)
    config = GenerationConfig(max_words=args.max_words, top_k=40)
    jobs = [(PROMPTS[i % len(PROMPTS)], i) for i in range(args.threads * args.calls_per_thread)]

    def call(job: tuple[str, int]) -> str:
        return cast(str, model.generate(job[0], config, seed=job[1]))  # one prompt, one sequence: a str

    start = time.perf_counter()
    serial = [call(job) for job in jobs]
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        threaded = list(pool.map(call, jobs))
    threaded_s = time.perf_counter() - start
    mismatches = sum(a != b for a, b in zip(serial, threaded, strict=True))
    print(f"model: {args.model}; each call up to {args.max_words} words, top_k 40, its own seed\n")
    print("| run | calls | seconds | calls/s | outputs equal to serial |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(f"| serial | {len(jobs)} | {serial_s:.1f} | {len(jobs) / serial_s:.0f} | - |")
    print(
        f"| {args.threads} threads | {len(jobs)} | {threaded_s:.1f} | {len(jobs) / threaded_s:.0f} | "
        f"{'all' if not mismatches else f'{mismatches} differ'} |"
    )

    print("\n| calls so far | resident memory (MB) |")
    print("| ---: | ---: |")
    samples = []
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        done = 0
        step = max(args.calls // 10, 1)
        while done < args.calls:
            list(pool.map(call, [(PROMPTS[i % len(PROMPTS)], i) for i in range(done, done + step)]))
            done += step
            samples.append((done, rss_mb()))
            print(f"| {done} | {samples[-1][1]:.1f} |", flush=True)
    growth = samples[-1][1] - samples[1][1] if len(samples) > 1 else 0.0
    print(f"\ngrowth from {samples[1][0]} to {samples[-1][0]} calls: {growth:+.1f} MB")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
