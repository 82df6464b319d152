"""Session thread settings: ms per bare step of the shipped model's files under each setting (issue 17).

For the bundled int8 file and its fp32 twin (``benchmarks.shipped``), at batch 1, 8 and 64, alone and
while 8 other threads of the same process generate (``Generator`` steps of the same batch, on the same
model, as a server does), one bare ``model.forward`` step with the state carried is timed under each
setting of onnxruntime's session:

- ``default``: ``load(path)`` as the runtime ships it: one thread; for a step that runs alone (no
  other step of the process in progress or just ended on another thread) a second session with two
  spinning threads; a batch of 5 rows or more whose numbers differ on two threads (an int8 file's) on
  two threads whatever else runs: alone on that second session, otherwise on a third one, two threads
  without spinning (``nextword.runtime.session_plan``);
- ``1 thread``: one intra-op thread (no pool, so spinning does not apply);
- ``2 threads, spinning`` and ``2 threads, no spinning``: two intra-op threads, with
  ``session.intra_op.allow_spinning`` on (the pool's threads busy-wait for work) and off.

Each cell runs steps for ``--cell-seconds`` (at least ``--min-steps``); rounds take the settings in
turns (their order rotating) so load from other processes hits them alike, and a cell's figure is the
median over rounds. Every round loads its models afresh, in the order it measures them: four copies of
the fp32 file under one setting, loaded once and measured in turns under 8 generating threads, gave
medians up to 14% apart, a gap one set of models would carry into every round as a difference between
settings. The default's steps are counted by the session they ran on (its pair session is made at
load here, so that it is counted from its first run), so the report can tell which setting the default
was in each case. Reported per case: each setting's ms per step, the
best one, and how far the runtime's default is from it (target: within 10%); and the words/s the 8
generating threads made.

    python -m benchmarks.threads                      # about 5 minutes on two cores
    python -m benchmarks.threads --rounds 1 --cell-seconds 0.05 --batches 1,8   # a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from benchmarks import timing
from benchmarks.environment import machine_info
from benchmarks.results import at_least, benchmark_parser, finish, positive_ints
from benchmarks.shipped import SHORT_PROMPT, add_shipped_arguments, shipped_files
from benchmarks.threads_report import render, targets

NAME = "threads"
SETTINGS = {  # name -> (intra-op threads, allow spinning); None: the runtime's default as it is
    "default": None,
    "1 thread": (1, None),
    "2 threads, spinning": (2, True),
    "2 threads, no spinning": (2, False),
}
LOADS = ("alone", "8 generating threads")
BACKGROUND_THREADS = 8
BACKGROUND_WORDS = 50  # words per generation of a background thread before it starts another


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("threads", __doc__)
    add_shipped_arguments(parser)
    parser.add_argument("--batches", default="1,8,64", help="batch sizes (default: %(default)s)")
    timing.add_round_arguments(parser, rounds=9, max_seconds=600)
    parser.add_argument(
        "--cell-seconds", type=float, default=0.5, help="seconds of steps per cell (default: %(default)s)"
    )
    parser.add_argument(
        "--min-steps", type=int, default=5, help="steps per cell at least (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    positive_ints(parser, "--batches", args.batches)
    at_least(parser, 1, {"--rounds": args.rounds, "--min-steps": args.min_steps})
    return args


def session_options(setting: tuple[int, bool | None] | None) -> Any:
    """The runtime's default session options, with ``setting``'s threads and spinning applied."""
    from nextword.runtime.model import default_session_options

    options = default_session_options()
    options.log_severity_level = 4  # as load() does with its own options
    if setting is not None:
        threads, spinning = setting
        options.intra_op_num_threads = threads
        if spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


def describe_default() -> dict[str, Any]:
    """What ``load()``'s default sessions say about threads and spinning."""
    from nextword.runtime.model import usable_cores

    options = session_options(None)
    try:
        spinning = options.get_session_config_entry("session.intra_op.allow_spinning")
    except Exception:  # onnxruntime raises when the entry was never set: its own default (on) holds
        spinning = "unset (onnxruntime's default: on)"
    wide = usable_cores() >= 2
    return {
        "intra_op_num_threads": options.intra_op_num_threads,
        "allow_spinning": spinning,
        "wide_session": wide,
        "description": "`load()` without options: one intra-op thread; "
        + (
            "a step that runs while no other step of the process does (none in progress, none "
            "ended on another thread in the last 20 ms) takes a second session with two intra-op "
            "threads whose pool spins. "
            if wide
            else "no second session (one usable core). "
        )
        + "Where a batch's numbers differ on two threads (an int8 file's from a few rows on; the "
        "bundled model's from 5), a batch of 5 rows or more runs on two threads whatever else runs: "
        + ("alone on the spinning session, otherwise " if wide else "")
        + "on a third session, two intra-op threads without spinning; a smaller one keeps one thread",
    }


class CountingSession:
    """An onnxruntime session that counts the runs each thread makes on it (the default model's
    two-thread sessions, to see how often the measuring thread's steps took them)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.runs: dict[int, int] = {}  # thread ident -> runs; each thread writes its own key

    def _count(self) -> None:
        me = threading.get_ident()
        self.runs[me] = self.runs.get(me, 0) + 1

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self._count()
        return self._session.run(*args, **kwargs)

    def run_with_iobinding(self, *args: Any, **kwargs: Any) -> Any:
        self._count()
        return self._session.run_with_iobinding(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # io_binding() and the rest: the session's own
        return getattr(self._session, name)


COUNTED = ("wide_session", "pair_session")  # the default model's two-thread sessions, by attribute


def load_setting(path: str, setting: str) -> Any:
    """``path`` loaded under ``setting`` (a key of :data:`SETTINGS`); the default's two-thread sessions
    count their runs (:class:`CountingSession`): the wide one when it has one, and its pair, made now
    with the options the runtime makes it with (two threads, no spinning) instead of at its first use."""
    from nextword.runtime import load

    options = SETTINGS[setting]
    if options is not None:
        return load(path, session_options=session_options(options))
    model = load(path)
    if model.wide_session is not None:
        model.wide_session = CountingSession(model.wide_session)
    model.pair_session = CountingSession(load(path, threads=2).session)
    return model


def counted_runs(model: Any) -> dict[str, int]:
    """Runs this thread made on each of ``model``'s counted two-thread sessions (0 without them)."""
    me = threading.get_ident()
    out = {}
    for name in COUNTED:
        session = getattr(model, name, None)
        out[name] = session.runs.get(me, 0) if isinstance(session, CountingSession) else 0
    return out


def step_ms(model: Any, batch: int, seconds: float, min_steps: int) -> tuple[float, dict[str, float]]:
    """ms per bare ``forward`` step of ``batch`` rows, the state carried, over ``seconds`` at least; and
    the share of those steps that ran on each of the model's counted two-thread sessions
    (:func:`counted_runs`: ``wide_session`` and ``pair_session``)."""
    ids = np.full((batch, 1), model.prompt_ids(SHORT_PROMPT)[-1], dtype=np.int64)  # (B, 1)
    state = model.initial_state(batch)
    model.forward(ids, state)  # warm: this batch size's first call allocates
    before = counted_runs(model)
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < seconds:
        _, state = model.forward(ids, state)
        steps += 1
    ms = 1e3 * (time.perf_counter() - start) / steps
    return ms, {name: (runs - before[name]) / steps for name, runs in counted_runs(model).items()}


@contextmanager
def generating(model: Any, batch: int, threads: int) -> Iterator[list[int]]:
    """``threads`` threads generating with ``model`` (``batch`` rows each) until the block ends; yields
    the list of words they have made so far, one count per thread."""
    from nextword.runtime import GenerationConfig

    stop, started = threading.Event(), threading.Barrier(threads + 1)
    words = [0] * threads

    def work(index: int) -> None:
        started.wait()
        seed = index
        while not stop.is_set():
            config = GenerationConfig(
                max_words=BACKGROUND_WORDS, stop_at_end=False, num_return_sequences=batch, seed=seed
            )
            gen = model.generator()
            gen.add(SHORT_PROMPT, config)
            while not gen.done and not stop.is_set():
                gen.step()
                words[index] += batch
            seed += threads

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    started.wait()
    time.sleep(0.05)  # every thread past its first prompt
    try:
        yield words
    finally:
        stop.set()
        for thread in pool:
            thread.join()


def measure_cell(model: Any, batch: int, load: str, args: argparse.Namespace) -> dict[str, float]:
    """One cell: ms per step of the measuring thread, the shares of its steps that ran on the model's
    two-thread sessions (the default's), and with generating threads their words/s."""
    if load == "alone":
        ms, shares = step_ms(model, batch, args.cell_seconds, args.min_steps)
        return {"ms": ms, "wide_share": shares["wide_session"], "pair_share": shares["pair_session"]}
    with generating(model, batch, BACKGROUND_THREADS) as words:
        before, start = sum(words), time.perf_counter()
        ms, shares = step_ms(model, batch, args.cell_seconds, args.min_steps)
        rate = (sum(words) - before) / (time.perf_counter() - start)
    return {
        "ms": ms,
        "wide_share": shares["wide_session"],
        "pair_share": shares["pair_session"],
        "background_words_per_s": rate,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    files = shipped_files(args)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    cells: dict[str, dict[str, list[dict[str, float]]]] = {}
    models: dict[tuple[str, str], Any] = {}
    start = time.perf_counter()
    for r in range(args.rounds):
        if r and time.perf_counter() - start > args.max_seconds:
            break
        print(f"threads: round {r + 1}", file=sys.stderr, flush=True)
        order = list(SETTINGS)[r % len(SETTINGS) :] + list(SETTINGS)[: r % len(SETTINGS)]
        models.clear()  # the last round's models go before this round's load
        models.update({(name, s): load_setting(file.path, s) for name, file in files.items() for s in order})
        for name in files:
            for batch in batches:
                for load_kind in LOADS:
                    case = cells.setdefault(f"{name}|{batch}|{load_kind}", {s: [] for s in SETTINGS})
                    for setting in order:
                        time.sleep(timing.SETTLE_SECONDS)  # the previous setting's pool idle again
                        case[setting].append(measure_cell(models[name, setting], batch, load_kind, args))
    return {
        "files": {k: f.to_dict() for k, f in files.items()},
        "default": describe_default(),
        "cases": [_summary(key, case) for key, case in cells.items()],
    }


def _summary(key: str, case: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    name, batch, load_kind = key.split("|")
    out: dict[str, Any] = {"file": name, "batch": int(batch), "load": load_kind, "ms": {}, "background": {}}
    out["samples"] = {setting: [r["ms"] for r in runs] for setting, runs in case.items()}
    out["default_wide_share"] = statistics.fmean(r["wide_share"] for r in case["default"])
    out["default_pair_share"] = statistics.fmean(r["pair_share"] for r in case["default"])
    for setting, runs in case.items():
        out["ms"][setting] = timing.summarize([r["ms"] for r in runs])
        if "background_words_per_s" in runs[0]:
            out["background"][setting] = timing.summarize([r["background_words_per_s"] for r in runs])
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = {
        "name": NAME,
        "settings": {
            "rounds": args.rounds,
            "cell_seconds": args.cell_seconds,
            "min_steps": args.min_steps,
            "background_threads": BACKGROUND_THREADS,
        },
        "machine": machine_info(),
        **measure(args),
    }
    return finish(NAME, result, targets, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
