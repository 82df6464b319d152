"""Resident memory of a process that uses the runtime: over many calls, over models loaded and dropped,
and at the limits of one call. Prints Markdown tables.

Every case runs in a fresh child process that loads ``--model`` (the bundled model by default) and
reads its own resident memory (``VmRSS``) and peak (``VmHWM``) from /proc (Linux):

* calls: ``--calls`` mixed calls, each with a new prompt, taking turns: seeded ``generate`` without
  and with the cache (the model alone when the file has none), ``stream`` with a stop string,
  ``next_words``, ``score`` with and without the cache, beam search and a batch of two prompts;
  resident memory after a tenth of the calls and after all of them;
* steps: ``--steps`` bound steps of one ``model.stepper()``, state carried; resident memory after a
  sixth of them and after all;
* models: the model loaded, used and dropped ``--models`` times; resident memory after half of them
  and after all, and whether each was freed as soon as it was dropped (before any garbage collection);
* limits: one call each, the process's peak: a one-word ``generate``; a one-word ``generate``, and
  ``score`` without and with the cache, after a prompt of ``--prompt-words`` words; 256 rows of 50
  words; ``num_beams=256`` for 50 words; a ``Generator`` of 1,000 rows of 50 words.

Memory hardly depends on what else runs on the machine, so the figures can be compared across runs.

    python -m benchmarks.runtime_memory [--model MODEL.onnx] [--calls 20000] [--steps 60000]
                                        [--models 100] [--prompt-words 100000]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.childproc import snippet_json
from benchmarks.environment import features_text, machine_info
from benchmarks.paths import require_files
from benchmarks.report import markdown_table
from benchmarks.results import at_least, benchmark_parser
from nextword.runtime.default import BUNDLED_MODEL

CHILD = """
import gc, json, sys, weakref
import numpy as np
from nextword.runtime import GenerationConfig, load

def memory():
    fields = {}
    for line in open("/proc/self/status", encoding="utf-8"):
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields

path, case, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = load(path)
out = {"after_load_mb": memory()["VmRSS"]}
has_cache = model.info.cache is not None
LONG = " ".join(("the neural network of claim 1 receives an input signal and computes an output "
                 "signal from a plurality of weights").split() * (count // 17 + 1))
LONG = " ".join(LONG.split()[:count])
if case == "calls":
    checkpoints = {max(1, count // 10): "first_mb", count: "last_mb"}
    for i in range(1, count + 1):
        prompt = f"a neural network {i} with {i % 97} layers"
        kind = i % 8
        if kind == 0:
            model.generate(prompt, max_words=10, seed=i)
        elif kind == 1:
            model.generate(prompt, max_words=10, seed=i, cache=has_cache)
        elif kind == 2:
            "".join(model.stream(prompt, max_words=10, seed=i, stop=["."]))
        elif kind == 3:
            model.next_words(prompt, k=5)
        elif kind == 4:
            model.score(prompt)
        elif kind == 5:
            model.score(prompt, cache=False)
        elif kind == 6:
            model.generate(prompt, max_words=5, num_beams=3)
        else:
            model.generate([prompt, prompt + " and"], max_words=10, seed=i)
        if i in checkpoints:
            out[checkpoints[i]] = memory()["VmRSS"]
elif case == "steps":
    stepper = model.stepper()
    tokens = np.array([2], dtype=np.int64)
    state = model.initial_state(1)
    checkpoints = {max(1, count // 6): "first_mb", count: "last_mb"}
    for i in range(1, count + 1):
        logits, state = stepper.step(tokens, state)
        tokens = np.array([int(np.argmax(logits[0]))], dtype=np.int64)
        if i in checkpoints:
            out[checkpoints[i]] = memory()["VmRSS"]
elif case == "models":
    del model
    freed = 0
    checkpoints = {max(1, count // 2): "first_mb", count: "last_mb"}
    for i in range(1, count + 1):
        other = load(path)
        other.generate("a neural network", max_words=5, seed=i)
        ref = weakref.ref(other)
        del other
        freed += ref() is None
        if i in checkpoints:
            out[checkpoints[i]] = memory()["VmRSS"]
    out["freed_at_once"] = freed
elif case == "one_word":
    model.generate("a neural network", max_words=1, seed=0)
elif case == "long_generate":
    model.generate(LONG, max_words=1, seed=0)
elif case == "long_score":
    model.score(LONG, cache=False)
elif case == "long_score_cache":
    model.score(LONG, cache=has_cache)
elif case == "rows_256":
    model.generate(["a neural network"] * 256, max_words=50, seed=0, stop_at_end=False)
elif case == "beams_256":
    model.generate("a neural network", max_words=50, num_beams=256, stop_at_end=False)
elif case == "generator_1000":
    gen = model.generator()
    gen.add(["a neural network"] * 1000, GenerationConfig(max_words=50, seed=0, stop_at_end=False))
    gen.run()
else:
    raise SystemExit(f"unknown case {case}")
out["peak_mb"] = memory()["VmHWM"]
out["has_cache"] = has_cache
print(json.dumps(out))
"""

LIMITS = {
    "one_word": "`generate`, 1 word",
    "long_generate": "`generate`, 1 word after a prompt of {words:,} words",
    "long_score": "`score` of {words:,} words, without the cache",
    "long_score_cache": "`score` of {words:,} words, with the cache",
    "rows_256": "`generate`, 256 rows of 50 words",
    "beams_256": "`generate`, `num_beams=256`, 50 words",
    "generator_1000": "a `Generator` of 1,000 rows of 50 words",
}


def child(model: str, case: str, count: int, timeout: float) -> dict[str, Any]:
    """One case in a fresh process: its memory figures."""
    return snippet_json(CHILD, model, case, count, name=f"runtime_memory: case {case}", timeout=timeout)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("runtime_memory", __doc__)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="the model file to load")
    parser.add_argument("--calls", type=int, default=20_000, help="mixed calls of the calls case")
    parser.add_argument("--steps", type=int, default=60_000, help="bound steps of the steps case")
    parser.add_argument("--models", type=int, default=100, help="models loaded and dropped")
    parser.add_argument(
        "--prompt-words", type=int, default=100_000, help="words of the long prompt of the limits"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per case at most")
    args = parser.parse_args(argv)
    at_least(
        parser,
        1,
        {
            "--calls": args.calls,
            "--steps": args.steps,
            "--models": args.models,
            "--prompt-words": args.prompt_words,
            "--timeout": args.timeout,
        },
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    if not Path("/proc/self/status").is_file():
        raise SystemExit("runtime_memory reads /proc/self/status: it runs on Linux only")
    started = time.perf_counter()
    over_time = {
        "calls": (args.calls, "mixed calls, a new prompt each", "after {n:,}"),
        "steps": (args.steps, "bound steps of one stepper", "after {n:,}"),
        "models": (args.models, "models loaded, used and dropped", "after {n:,}"),
    }
    rows, models_freed = [], None
    for case, (count, label, _) in over_time.items():
        print(f"runtime_memory: {case}", file=sys.stderr, flush=True)
        got = child(args.model, case, count, args.timeout)
        first = {"calls": count // 10, "steps": count // 6, "models": count // 2}[case] or 1
        rows.append(
            [
                f"{count:,} {label}",
                f"{got['after_load_mb']:.1f}",
                f"{got['first_mb']:.1f} (after {first:,})",
                f"{got['last_mb']:.1f}",
                f"{got['peak_mb']:.1f}",
            ]
        )
        if case == "models":
            models_freed = (got["freed_at_once"], count)
    limits = []
    has_cache = False
    for case, label in LIMITS.items():
        print(f"runtime_memory: {case}", file=sys.stderr, flush=True)
        got = child(args.model, case, args.prompt_words, args.timeout)
        has_cache = got["has_cache"]
        limits.append(
            [label.format(words=args.prompt_words), f"{got['after_load_mb']:.0f}", f"{got['peak_mb']:.0f}"]
        )
    machine = machine_info()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Model: `{args.model}` ({'with' if has_cache else 'without'} a continuous cache); {now}; "
        f"{machine['cpu']} ({features_text(machine.get('cpu_features'))}), {machine['usable_cores']} cores; "
        f"Python {machine['python']}, onnxruntime {machine['versions'].get('onnxruntime')}.\n"
    )
    print("Over time (one process each; resident memory, MB):\n")
    print(markdown_table(["work", "after load", "early", "at the end", "peak"], rows))
    if models_freed:
        print(f"\nModels freed as soon as they were dropped (before any garbage collection): "
              f"{models_freed[0]} of {models_freed[1]}")  # fmt: skip
    print("\nLimits (one call in a fresh process; MB):\n")
    print(markdown_table(["call", "resident after load", "peak"], limits))
    print(f"\n(measured in {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
