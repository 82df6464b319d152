"""Sampling inside the ONNX graph against numpy: the bundled model's step with a sampling head appended.

Issue 17 names moving the last-layer work that only feeds sampling (banned-token masks, temperature,
top-k, softmax, an inverse-CDF draw) into the graph, so that numpy never touches the whole vocabulary.
This builds, in memory with the ``onnx`` package, variants of the model file with a sampling head
appended (``benchmarks.graph_sampling_heads`` says what each does) and times, per generated word, with
one onnxruntime intra-op thread, batch 1, the state carried and the chosen token fed back:

- the bare step: ``session.run`` of the unchanged file (logits and state fetched);
- each head: ``session.run`` of the file with the head, fetching the token and the state only;
- the exact head of each kind (:data:`SECOND_GRAPH`) as a graph of its own instead: the unchanged file's
  step, then a second session's ``run`` on the logits it returned (the model file stays as it is);
- numpy: the bare step, then ``runtime.sampling.sample`` on its logits (greedy; temperature 1 over the
  whole vocabulary; ``top_k=40``), with the same banned ids set to ``-inf`` by scalar stores.

Every figure is the median of ``--rounds`` rounds in which every variant runs ``--words`` steps
(interleaved, so load from other processes hits them alike). onnxruntime's profiler then gives the
median kernel time of each of a head's nodes (``--profile-steps`` steps; profiling slows the run a
little). Each head is checked over ``--check-steps`` steps against numpy on the same logits and the
same uniform draw: a greedy head's id must be numpy's argmax; a draw head's token must be one whose
cumulative mass brackets the draw, and the table says how often it is numpy's token.

    python -m benchmarks.graph_sampling              # about 25 seconds on two cores
    python -m benchmarks.graph_sampling --rounds 2 --words 20 --check-steps 20 --profile-steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import timing
from benchmarks.environment import machine_info
from benchmarks.graph_sampling_heads import (
    BANNED,
    BANNED_SCORES,
    HEADS,
    PREFIX,
    SCALE,
    TOKEN,
    TOP_K,
    UNIFORM,
    Head,
    head_alone,
    with_head,
)
from benchmarks.graph_sampling_report import render
from benchmarks.results import benchmark_parser, finish
from benchmarks.shipped import SHORT_PROMPT, bundled_path
from nextword.runtime.model_file import INPUT_IDS, LOGITS, LOGITS_FROM, state_input_names, state_output_names

NAME = "graph_sampling"
NUMPY = {"greedy": (0.0, None), "full": (1.0, None), "top_k": (1.0, TOP_K)}  # kind -> temperature, top_k
SECOND_GRAPH = ("topk1", "blocks", "topk40_ids")  # heads also run as a graph of their own: one per kind
LABELS = {"greedy": "greedy", "full": "temperature 1, whole vocabulary", "top_k": f"`top_k={TOP_K}`"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("graph_sampling", __doc__)
    parser.add_argument("--model", metavar="MODEL.onnx", help="model file (default: the bundled model)")
    parser.add_argument(
        "--words", type=int, default=500, help="steps per variant per round (default: %(default)s)"
    )
    timing.add_round_arguments(parser, rounds=15, max_seconds=120)
    parser.add_argument(
        "--check-steps", type=int, default=500, help="steps checked per head (default: %(default)s)"
    )
    parser.add_argument(
        "--profile-steps", type=int, default=500, help="profiled steps per variant (default: %(default)s)"
    )
    parser.add_argument(
        "--heads", default=",".join(h.key for h in HEADS), help="heads to measure (default: all)"
    )
    parser.add_argument("--result-json", metavar="PATH", help="default: benchmarks/.cache/results/")
    args = parser.parse_args(argv)
    unknown = set(args.heads.split(",")) - {h.key for h in HEADS}
    if unknown:
        parser.error(f"--heads: unknown head(s) {', '.join(sorted(unknown))}; choose from the default list")
    if min(args.words, args.rounds, args.check_steps, args.profile_steps) < 1:
        parser.error("--words, --rounds, --check-steps and --profile-steps must be at least 1")
    return args


class Variant:
    """One session (the file, or the file with a head) and how a generation loop steps on it."""

    def __init__(self, data: bytes, model: Any, head: Head | None, profile: str | None = None) -> None:
        self.session = session(data, profile)
        self.model, self.head = model, head
        self.state_inputs = state_input_names(len(model.info.state_sizes))
        self.state_outputs = state_output_names(len(model.info.state_sizes))
        self.banned = np.array(banned_ids(model), dtype=np.int64)
        self.first = model.prompt_ids(SHORT_PROMPT)[-1]

    def feed(self) -> dict[str, Any]:
        """The first step's feed: the prompt's last token, the zero state, the head's fixed inputs."""
        feed: dict[str, Any] = {INPUT_IDS: np.array([[self.first]], dtype=np.int64)}
        feed.update(zip(self.state_inputs, self.model.initial_state(1), strict=True))
        if self.model.info.has_logits_from:
            feed[LOGITS_FROM] = np.asarray(-1, dtype=np.int64)
        if self.head is not None:
            feed[BANNED] = self.banned[None, None]  # (1, 1, n)
            feed[BANNED_SCORES] = np.full((1, 1, len(self.banned)), -np.inf, dtype=np.float32)
            if self.head.draws:
                feed[SCALE] = np.asarray(1.0, dtype=np.float32)  # temperature 1
        return feed

    def step(self, feed: dict[str, Any], outputs: list[str]) -> list[Any]:
        """One ``session.run``; the state it returns is fed to the next."""
        results = self.session.run(outputs, feed)
        feed.update(zip(self.state_inputs, results[-len(self.state_inputs) :], strict=True))
        return results


class SecondGraph(Variant):
    """The unchanged file's step, then the head as a graph of its own (a second session) on its logits."""

    def __init__(self, data: bytes, model: Any, head: Head) -> None:
        super().__init__(data, model, None)
        self.head, self.second = head, session(head_alone(data, head))
        self.step_inputs = [i.name for i in self.session.get_inputs()]
        self.head_inputs = [i.name for i in self.second.get_inputs() if i.name != LOGITS]

    def step(self, feed: dict[str, Any], outputs: list[str]) -> list[Any]:
        """Two ``session.run`` calls, each fed its own inputs out of ``feed``."""
        logits, *state = self.session.run(
            [LOGITS, *self.state_outputs], {k: feed[k] for k in self.step_inputs}
        )
        head_feed = {k: feed[k] for k in self.head_inputs}
        head_feed[LOGITS] = logits
        token = self.second.run([TOKEN], head_feed)[0]
        feed.update(zip(self.state_inputs, state, strict=True))
        named = {TOKEN: token, LOGITS: logits, **dict(zip(self.state_outputs, state, strict=True))}
        return [named[name] for name in outputs]


def session(data: bytes, profile: str | None = None, *, threads: int = 1, spinning: bool = False) -> Any:
    """An onnxruntime session of the model bytes ``data`` with the runtime's options: ``threads``
    intra-op threads (one by default), whose pool spins between runs with ``spinning``."""
    import onnxruntime as ort

    from nextword.runtime.model import default_session_options

    options = default_session_options(threads, spinning=spinning)
    options.log_severity_level = 4
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def banned_ids(model: Any) -> list[int]:
    """The ids the runtime bans at every word by default (``runtime.rules``): padding and unknown."""
    return [model.tokenizer.pad_id, model.tokenizer.unk_id]


def head_loop(variant: Variant) -> timing.Loop:
    """Generate with the head: fetch the token and the state, feed the token back."""
    assert variant.head is not None
    outputs, draws = [TOKEN, *variant.state_outputs], variant.head.draws

    def run(seed: int, words: int) -> int:
        rng, feed = np.random.default_rng(seed), variant.feed()
        for _ in range(words):
            if draws:
                feed[UNIFORM] = np.asarray(1.0 - rng.random())  # (0, 1], as runtime.sampling draws it
            token = variant.step(feed, outputs)[0]
            feed[INPUT_IDS] = token.reshape(1, 1)
        return words

    return run


def numpy_loop(variant: Variant, kind: str | None, argmax_alone: bool = False) -> timing.Loop:
    """Generate with the bare step and numpy's sampler (``kind`` None: the bare step, no choice;
    ``argmax_alone``: greedy by ``ndarray.argmax`` alone, without ``sample``'s check for a row whose
    every entry is ``-inf``)."""
    from nextword.runtime.sampling import sample

    outputs, banned = [LOGITS, *variant.state_outputs], variant.banned.tolist()
    temperature, top_k = NUMPY[kind] if kind else (0.0, None)

    def run(seed: int, words: int) -> int:
        rngs, feed = [np.random.default_rng(seed)], variant.feed()
        for _ in range(words):
            logits = variant.step(feed, outputs)[0]  # (1, 1, V), a fresh array: ours to modify
            if kind is not None:
                scores = logits[:, -1]  # (1, V)
                for token in banned:  # scalar stores, as runtime.rules does for two or three ids
                    scores[0, token] = -np.inf
                chosen = scores.argmax(axis=1) if argmax_alone else sample(scores, rngs, temperature, top_k)
                feed[INPUT_IDS] = chosen.reshape(1, 1)
        return words

    return run


def check_head(variant: Variant, steps: int, seed: int = 0) -> dict[str, Any]:
    """Generate ``steps`` words with the head, fetching the logits too; compare each token with numpy's
    choice for the same logits and the same draw, and (draw heads) with the cumulative mass it covers."""
    from nextword.runtime.sampling import sample

    head = variant.head
    assert head is not None
    temperature, top_k = NUMPY[head.kind]
    graph_rng, numpy_rng = np.random.default_rng(seed), np.random.default_rng(seed)  # the same draws
    feed, same, bracketed = variant.feed(), 0, 0
    for _ in range(steps):
        u = 1.0 - graph_rng.random()
        if head.draws:
            feed[UNIFORM] = np.asarray(u)
        token, logits = variant.step(feed, [TOKEN, LOGITS, *variant.state_outputs])[:2]
        chosen = int(token.reshape(-1)[0])
        scores = logits[:, -1].copy()  # (1, V)
        scores[0, variant.banned] = -np.inf
        same += chosen == int(sample(scores.copy(), [numpy_rng], temperature, top_k)[0])
        bracketed += (
            _brackets(scores[0], chosen, u, head) if head.draws else chosen == int(scores[0].argmax())
        )
        feed[INPUT_IDS] = token.reshape(1, 1)
    return {"steps": steps, "same_as_numpy": same, "valid": bracketed}


def _brackets(scores: np.ndarray, chosen: int, u: float, head: Head) -> bool:
    """Whether ``chosen`` covers the draw ``u`` on the cumulative mass of the head's candidates, in the
    order the head accumulates them (a relative slack of 1e-6 for float32 and float64 rounding)."""
    if head.kind == "top_k":
        ids = np.argsort(-scores, kind="stable")[: min(TOP_K, len(scores))]  # score order, ties by id
        ids = np.sort(ids) if head.id_order else ids
    else:
        ids = np.arange(len(scores))
    probs = np.exp(scores[ids].astype(np.float64) - scores[ids].max())
    cumulative = np.cumsum(probs)
    where = np.flatnonzero(ids == chosen)
    if not len(where) or probs[where[0]] == 0:
        return False
    target, slack = u * cumulative[-1], 1e-6 * cumulative[-1]
    before = cumulative[where[0]] - probs[where[0]]
    return bool(before - slack <= target <= cumulative[where[0]] + slack)


def profile(data: bytes, model: Any, head: Head | None, steps: int, folder: str) -> dict[str, Any]:
    """Median kernel time of each node over ``steps`` profiled steps: the head's nodes one by one, the
    model's summed."""
    variant = Variant(data, model, head, profile=str(Path(folder) / (head.key if head else "bare")))
    run = head_loop(variant) if head else numpy_loop(variant, None)
    run(0, steps)
    trace = Path(variant.session.end_profiling())
    events = json.loads(trace.read_text(encoding="utf-8"))
    trace.unlink()
    times: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"].removesuffix("_kernel_time")
            times.setdefault(node, []).append(float(event["dur"]))
            ops[node] = event.get("args", {}).get("op_name", "?")
    medians = {node: float(np.median(us)) for node, us in times.items()}
    nodes = [{"node": n, "op": ops[n], "us": medians[n]} for n in medians if n.startswith(PREFIX)]
    model_nodes = [n for n in medians if not n.startswith(PREFIX)]
    return {
        "nodes": nodes,
        "head_us": sum(n["us"] for n in nodes),
        "model_us": sum(medians[n] for n in model_nodes),
        "model_nodes": len(model_nodes),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from nextword.runtime import load

    path = Path(args.model) if args.model else bundled_path()
    if not path.is_file():
        raise SystemExit(f"--model: {path} is not a file; give a nextword .onnx model")
    model, data = load(path), path.read_bytes()
    heads = [h for h in HEADS if h.key in args.heads.split(",")]
    print(f"graph_sampling: building {len(heads)} heads on {path}", file=sys.stderr, flush=True)
    bare = Variant(data, model, None)
    variants = {h.key: Variant(with_head(data, h), model, h) for h in heads}
    variants.update({f"{h.key}_alone": SecondGraph(data, model, h) for h in heads if h.key in SECOND_GRAPH})
    kinds = [k for k in NUMPY if any(h.kind == k for h in heads)]
    loops: dict[str, timing.Loop] = {"bare": numpy_loop(bare, None)}
    loops.update({f"numpy_{k}": numpy_loop(bare, k) for k in kinds})
    if "greedy" in kinds:
        loops["numpy_argmax"] = numpy_loop(bare, "greedy", argmax_alone=True)
    loops.update({key: head_loop(v) for key, v in variants.items()})
    checks = {key: check_head(v, args.check_steps) for key, v in variants.items()}
    seeds: Sequence[int] = range(args.rounds)
    timers: dict[str, tuple[timing.Timer, Sequence[int]]] = {
        key: (timing.loop_timer(loop, args.words), seeds) for key, loop in loops.items()
    }
    print(f"graph_sampling: {len(timers)} timers, {args.rounds} rounds at most", file=sys.stderr, flush=True)
    timed = timing.interleaved(timers, max_seconds=args.max_seconds)
    with tempfile.TemporaryDirectory(prefix="nextword-profile-") as folder:
        profiles = {"bare": profile(data, model, None, args.profile_steps, folder)}
        for head in heads:
            profiles[head.key] = profile(with_head(data, head), model, head, args.profile_steps, folder)
    rows: list[dict[str, Any]] = [
        {"key": "bare", "label": "bare step (logits and state fetched)", "kind": None}
    ]
    for kind in kinds:
        rows += [{"key": h.key, "label": f"graph: {h.label}", "kind": kind} for h in heads if h.kind == kind]
        for h in heads:
            if h.kind == kind and h.key in SECOND_GRAPH:
                rows.append({"key": f"{h.key}_alone", "label": f"second graph: {h.label}", "kind": kind})
        rows.append({"key": f"numpy_{kind}", "label": "bare step, then numpy `sample()`", "kind": kind})
        if kind == "greedy":
            label = "bare step, then numpy `argmax` alone (no check for an all-`-inf` row)"
            rows.append({"key": "numpy_argmax", "label": label, "kind": kind})
    for row in rows:
        row["us_per_word"] = {
            k: v * 1e3 if k != "n" else v for k, v in timed[row["key"]]["ms_per_word"].items()
        }
        row["check"] = checks.get(row["key"])
        row["profile"] = profiles.get(row["key"])
    return {
        "model": {"path": str(path), "vocab": model.vocab_size, "banned": banned_ids(model)},
        "rows": rows,
        "kinds": {k: LABELS[k] for k in kinds},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result: dict[str, Any] = {
        "name": NAME,
        "settings": {
            "words": args.words,
            "rounds": args.rounds,
            "max_seconds": args.max_seconds,
            "check_steps": args.check_steps,
            "profile_steps": args.profile_steps,
            "intra_op_threads": 1,
            "temperature": 1.0,
            "top_k": TOP_K,
        },
        "machine": machine_info(),
        **measure(args),
    }
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result["machine"]["load_average_1min"] = {"before": load_before, "after": load_after}
    return finish(NAME, result, None, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
