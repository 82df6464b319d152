"""Abandoned and interrupted work: what a process that uses the runtime is left with after streams and
generators given up midway and ``generate()`` calls cut by Ctrl-C. Prints a Markdown table.

Every case runs in one fresh child process that loads ``--model`` (the bundled model by default),
makes one seeded call first thing (``model.generate(PROMPT, max_words=--words, seed=--seed,
stop_at_end=False)``: the reference text), warms each kind of call up once, and counts its Python
threads (``threading.enumerate()``), its OS threads and its open file descriptors (``/proc/self``;
Linux only, "n/a" elsewhere). Then, case after case, ``--repeats`` times each:

* a ``stream()`` closed after 3 pieces;
* a ``stream()`` dropped (``del``) after 3 pieces, the garbage collector run at the end of the case;
* a ``stream()`` whose first half is read by a new thread and the rest by the main thread (the text
  must equal ``generate()``'s for the same seed);
* a ``model.generator()`` of two prompts dropped after half of its steps;
* ``--calls`` seeded ``generate()`` calls, each cut by a ``KeyboardInterrupt``
  (``_thread.interrupt_main()`` from a timer thread) after a delay drawn at random (``--seed``)
  between 0 and the median time of one uncut call, measured first. An interrupt that arrives after
  the call has returned is waited for and absorbed: each call is counted as interrupted, finished
  before the interrupt, or interrupted before it started.

After each case: the threads and file descriptors the process holds beyond those it held before the
first case, ``nextword.runtime.session.runs_in_flight()`` (0 when no session run is counted as in
progress), and whether the same seeded call gives the reference text again. A second fresh process
makes only that call: its text must be the reference text too. The final line says whether
everything held; the exit status is 1 if anything did not (so the benchmark is also a check).

    python -m benchmarks.interrupts [--model MODEL.onnx] [--calls 300] [--repeats 50] [--words 40]
                                    [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from typing import Any

from benchmarks.childproc import snippet_json
from benchmarks.environment import features_text, machine_info
from benchmarks.paths import require_files
from benchmarks.report import markdown_table
from benchmarks.results import at_least, benchmark_parser
from nextword.runtime.default import BUNDLED_MODEL

PROMPT = "a neural network"
PIECES = 3  # pieces read from a stream before it is closed or dropped
LATE_WAIT_S = 5.0  # how long a call that returned first waits for its interrupt to land

CHILD = r"""
import _thread, gc, itertools, json, os, random, signal, statistics, sys, threading, time
from nextword.runtime import GenerationConfig, load
from nextword.runtime.session import runs_in_flight

path, case = sys.argv[1], sys.argv[2]
calls, repeats, words, seed, pieces, late_wait = map(float, sys.argv[3:9])
calls, repeats, words, seed, pieces = int(calls), int(repeats), int(words), int(seed), int(pieces)
PROMPT = sys.argv[9]
# Python raises KeyboardInterrupt for SIGINT only where it installed its handler: not when the child
# was started with SIGINT ignored (a background job of a script), so install it here.
signal.signal(signal.SIGINT, signal.default_int_handler)
model = load(path)

def call(s=seed):
    return model.generate(PROMPT, max_words=words, seed=s, stop_at_end=False)

def stream(s):
    return model.stream(PROMPT, max_words=words, seed=s, stop_at_end=False)

reference = call()
if case == "fresh":
    print(json.dumps({"text": reference}))
    sys.exit(0)

def os_count(folder):
    try:
        return len(os.listdir(folder))
    except OSError:
        return None

def held():
    gc.collect()
    return {"threads": len(threading.enumerate()), "os_threads": os_count("/proc/self/task"),
            "fds": os_count("/proc/self/fd")}

def closed(i):
    s = stream(i)
    list(itertools.islice(s, pieces))
    s.close()

def dropped(i):
    s = stream(i)
    list(itertools.islice(s, pieces))
    del s

def two_threads(i):
    s = stream(i)
    first = []
    reader = threading.Thread(target=lambda: first.extend(itertools.islice(s, words // 2)))
    reader.start()
    reader.join()
    return "".join(first) + "".join(s) == call(i)

def generator(i):
    gen = model.generator()
    gen.add([PROMPT, "the processor"], GenerationConfig(max_words=words, seed=i, stop_at_end=False))
    for _ in range(words // 2):
        gen.step()
    del gen

for warm in (closed, dropped, two_threads, generator):  # lazily made sessions and pools, counted below
    warm(seed)
before = held()
durations = []
for i in range(5):
    start = time.perf_counter()
    call(seed + i)
    durations.append(time.perf_counter() - start)
call_s = statistics.median(durations)
out = {"reference": reference, "call_s": call_s, "cases": []}

def check(name, runs, **extra):
    now = held()
    left = {k: None if now[k] is None or before[k] is None else now[k] - before[k] for k in now}
    out["cases"].append({"case": name, "runs": runs, **left, "in_flight": runs_in_flight(),
                         "next_text": call(), **extra})

for name, work in (("closed", closed), ("dropped", dropped), ("two_threads", two_threads),
                   ("generator", generator)):
    results = [work(seed + 1 + i) for i in range(repeats)]
    check(name, repeats, **({"same_text": sum(results)} if name == "two_threads" else {}))

rng = random.Random(seed)
counts = {"interrupted": 0, "finished": 0, "before": 0, "lost": 0, "stray": 0}
for i in range(calls):
    fired = threading.Event()
    def fire():
        _thread.interrupt_main()
        fired.set()
    timer = threading.Timer(rng.uniform(0.0, call_s), fire)
    stage = "before"
    try:
        try:
            timer.start()
            stage = "interrupted"
            call(seed + 1 + i)
            stage = "finished"
            fired.wait()  # the interrupt is on its way: let it land here, not in the next call
            deadline = time.perf_counter() + late_wait
            while time.perf_counter() < deadline:
                time.sleep(0.0002)
            stage = "lost"  # it never landed
        except KeyboardInterrupt:
            pass
        counts[stage] += 1
        timer.join()
    except KeyboardInterrupt:  # not expected: one interrupt per call, and it has landed above
        counts["stray"] += 1
        timer.join()
check("interrupts", calls, **counts)
print(json.dumps(out))
"""

CASES = {
    "closed": "a `stream()` closed after {pieces} pieces",
    "dropped": "a `stream()` dropped (`del`) after {pieces} pieces",
    "two_threads": "a `stream()` read half by one thread, finished by another",
    "generator": "a `Generator` of 2 prompts dropped after half its steps",
    "interrupts": "`generate()` cut by `KeyboardInterrupt` at a random point",
}


def child(args: argparse.Namespace, case: str) -> dict[str, Any]:
    """``case`` ("all" or "fresh") in a fresh process: what it reports."""
    numbers = (args.calls, args.repeats, args.words, args.seed, PIECES, LATE_WAIT_S)
    name = f"interrupts: the {case} process"
    return snippet_json(CHILD, args.model, case, *numbers, PROMPT, name=name, timeout=args.timeout)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("interrupts", __doc__)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="the model file to load")
    parser.add_argument("--calls", type=int, default=300, help="generate() calls cut by an interrupt")
    parser.add_argument("--repeats", type=int, default=50, help="runs of each abandoned-work case")
    parser.add_argument("--words", type=int, default=40, help="max_words of every call")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calls and of the delays")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per process at most")
    args = parser.parse_args(argv)
    at_least(parser, 1, {"--calls": args.calls, "--repeats": args.repeats, "--timeout": args.timeout})
    at_least(parser, 2 * PIECES, {"--words": args.words})
    at_least(parser, 0, {"--seed": args.seed})
    return args


def _left(value: int | None) -> str:
    return "n/a" if value is None else f"{value:+d}" if value else "0"


def rows_and_faults(got: dict[str, Any], fresh: str) -> tuple[list[list[str]], list[str]]:
    """The table's rows, and what did not hold (empty when everything did)."""
    rows, faults = [], []
    for case in got["cases"]:
        name = CASES[case["case"]].format(pieces=PIECES)
        same = case["next_text"] == got["reference"] == fresh
        threads = f"{_left(case['threads'])} (OS: {_left(case['os_threads'])})"
        interrupted = f"{case['interrupted']:,}" if case["case"] == "interrupts" else "–"
        rows.append(
            [
                name,
                f"{case['runs']:,}",
                interrupted,
                threads,
                _left(case["fds"]),
                str(case["in_flight"]),
                "yes" if same else "no",
            ]
        )
        for key, what in (("threads", "Python threads"), ("os_threads", "OS threads"), ("fds", "fds")):
            if case[key]:
                faults.append(f"{name}: {case[key]:+d} {what}")
        if case["in_flight"]:
            faults.append(f"{name}: runs_in_flight() is {case['in_flight']}")
        if not same:
            faults.append(f"{name}: the next call gave {case['next_text']!r}")
        if case.get("same_text", case["runs"]) != case["runs"]:
            faults.append(f"{name}: {case['runs'] - case['same_text']} texts differ from generate()'s")
        if case.get("lost") or case.get("stray"):
            faults.append(f"{name}: {case['lost']} interrupts never landed, {case['stray']} landed late")
    if got["reference"] != fresh:
        faults.append(f"the child's first call gave {got['reference']!r}, a fresh process {fresh!r}")
    return rows, faults


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    started = time.perf_counter()
    print("interrupts: the cases", file=sys.stderr, flush=True)
    got = child(args, "all")
    print("interrupts: a fresh process", file=sys.stderr, flush=True)
    fresh = child(args, "fresh")["text"]
    rows, faults = rows_and_faults(got, fresh)
    machine = machine_info()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Model: `{args.model}`; {now}; "
        f"{machine['cpu']} ({features_text(machine.get('cpu_features'))}), {machine['usable_cores']} cores; "
        f"Python {machine['python']}, onnxruntime {machine['versions'].get('onnxruntime')}.\n"
    )
    print(
        f"One process, the cases in this order; every call `generate({PROMPT!r}, max_words={args.words}, "
        f"seed=..., stop_at_end=False)` or its `stream()`. Threads and file descriptors are counted "
        "after each case beyond those held before the first one (after a warm-up); the next text is "
        f"the same seeded call's, compared with the process's first call and a fresh process's.\n"
    )
    print(
        markdown_table(
            ["case", "runs", "interrupted", "threads left", "fds left", "runs in flight", "next text same"],
            rows,
        )
    )
    last = got["cases"][-1]
    halves = next(c for c in got["cases"] if c["case"] == "two_threads")
    print(
        f"\nInterrupts: delays drawn between 0 and {1e3 * got['call_s']:.1f} ms (the median uncut call); "
        f"{last['interrupted']:,} calls cut, {last['finished']:,} finished before the interrupt landed "
        f"(absorbed after the call), {last['before']:,} interrupted before the call began, "
        f"{last['lost']:,} never landed."
    )
    print(
        f"Streams read by two threads that gave `generate()`'s text: {halves['same_text']:,} of "
        f"{halves['runs']:,}. The process's first call gave a fresh process's text: "
        f"{'yes' if got['reference'] == fresh else 'no'}."
    )
    print(f"\n(measured in {time.perf_counter() - started:.0f} s)")
    if faults:
        print("\nDid not hold:\n" + "\n".join(f"- {fault}" for fault in faults))
        return 1
    print("\nEverything held: no thread, file descriptor or session run left behind, and the same text.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
