"""Several greedy words per session call: the step graph unrolled K times with an ``ArgMax`` between steps.

A candidate for issue 17's greedy target, measured and not built. Every ``session.run`` has a fixed cost
on top of its kernels, paid once per word by the decoding loops. A graph that holds K copies of the
model's step, each feeding its ``ArgMax`` to the next, pays it once per K words, and still chooses
exactly what numpy would (the same kernels on the same numbers; ``ArgMax`` picks the first of equal
scores, as ``ndarray.argmax`` does; the banned ids are set to ``-inf`` by adding a mask of 0 and
``-inf``, which leaves every other score as it was). The runtime could use it for greedy decoding and
fall back to a single step wherever a rule (an n-gram ban, a stop) overrules the graph's choice.

This builds that graph in memory with the ``onnx`` package for K in ``--steps`` and times, per word,
batch 1, the state carried and the chosen token fed back, with one and with two onnxruntime threads:

- the runtime's bound stepper (``model.stepper()``) on ``load(path, threads=n)``, then numpy: the
  banned ids set to ``-inf`` by scalar stores and ``argmax`` (what greedy decoding does per word);
- the same on ``load(path)``: the runtime's default (one thread, or two for a step that runs alone);
- the unrolled graph (``session.run`` every K words, the K tokens and the last state fetched).

Each unrolled graph's tokens are checked against the stepper's over the whole generation. Then it counts
how often the file's decoding rules, greedy (an n-gram ban above all), choose another token than the
graph's ``ArgMax`` (``--words`` words after each of five prompts), and estimates from that what each K
would cost per word with the file's defaults: a call keeps its words only up to the first one a rule
overrules.

    python -m benchmarks.multistep                 # about a minute on two cores
    python -m benchmarks.multistep --steps 8 --rounds 2 --words 64
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import timing
from benchmarks.environment import machine_info
from benchmarks.graph_sampling import banned_ids, session
from benchmarks.multistep_report import BARE, render
from benchmarks.results import benchmark_parser, finish
from benchmarks.shipped import SHORT_PROMPT, bundled_path
from nextword.runtime.model_file import INPUT_IDS, LOGITS, LOGITS_FROM, state_input_names, state_output_names

NAME = "multistep"
TOKENS, MASK = "next_tokens", "banned_mask"
SETTINGS = ((1, False), (2, False), (2, True))  # intra-op threads, spinning pool
RULE_PROMPTS = (
    "a neural network",
    "the processor",
    "a method for training",
    "an image",
    "the system includes",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("multistep", __doc__)
    parser.add_argument("--model", metavar="MODEL.onnx", help="model file (default: the bundled model)")
    parser.add_argument(
        "--steps", default="4,8,16,32", help="words per call of the unrolled graphs (default: %(default)s)"
    )
    parser.add_argument(
        "--words", type=int, default=480, help="words per variant per round (default: %(default)s)"
    )
    timing.add_round_arguments(parser, rounds=9, max_seconds=120)
    parser.add_argument("--result-json", metavar="PATH", help="default: benchmarks/.cache/results/")
    args = parser.parse_args(argv)
    try:
        args.steps = sorted({int(k) for k in args.steps.split(",")})
    except ValueError:
        parser.error(f"--steps: {args.steps!r} is not a comma-separated list of whole numbers")
    if min(args.steps) < 1 or min(args.words, args.rounds) < 1:
        parser.error("--steps, --words and --rounds must be at least 1")
    if any(args.words % k for k in args.steps):
        parser.error(f"--words ({args.words}) must be a multiple of every --steps value {args.steps}")
    return args


def unrolled(model_bytes: bytes, steps: int) -> bytes:
    """The model file ``model_bytes`` as a graph of ``steps`` greedy steps: inputs the first token
    (1, 1), the state, the model's other inputs and :data:`MASK` (vocab,) float32 (0, or ``-inf`` for
    a banned id); outputs :data:`TOKENS` (1, steps) and the state after the last token."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    layers = len([i for i in graph.input if i.name.startswith("h_")])
    state_in, state_out = state_input_names(layers), state_output_names(layers)
    constants = {init.name for init in graph.initializer} | {i.name for i in graph.input}
    nodes: list[Any] = []
    ids, state = INPUT_IDS, list(state_in)
    tokens = []
    for k in range(steps):
        prefix = f"step{k}/"
        names = {INPUT_IDS: ids, **dict(zip(state_in, state, strict=True))}
        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = prefix + node.name
            for i, name in enumerate(copy.input):
                copy.input[i] = names.get(name, name if (not name or name in constants) else prefix + name)
            for i, name in enumerate(copy.output):
                copy.output[i] = prefix + name if name else name
            nodes.append(copy)
        masked, ids = prefix + "masked", prefix + "token"
        nodes.append(helper.make_node("Add", [prefix + LOGITS, MASK], [masked]))  # (1, 1, V)
        nodes.append(helper.make_node("ArgMax", [masked], [ids], axis=2, keepdims=0))  # (1, 1)
        tokens.append(ids)
        state = [prefix + name for name in state_out]
    nodes.append(helper.make_node("Concat", tokens, [TOKENS], axis=1))
    nodes += [helper.make_node("Identity", [s], [o]) for s, o in zip(state, state_out, strict=True)]
    outputs = [helper.make_tensor_value_info(TOKENS, onnx.TensorProto.INT64, [1, steps])]
    outputs += [o for o in graph.output if o.name in state_out]
    mask = helper.make_tensor_value_info(MASK, onnx.TensorProto.FLOAT, [None])
    new = helper.make_graph(nodes, f"{graph.name}_x{steps}", [*graph.input, mask], outputs, graph.initializer)
    result = helper.make_model(new, opset_imports=model.opset_import, ir_version=model.ir_version)
    return result.SerializeToString()


def overruled(model: Any, words: int, prompts: Sequence[str] = RULE_PROMPTS) -> dict[str, Any]:
    """How often the file's decoding rules, greedy (``temperature=0``, ``stop_at_end=False``, the
    file's other defaults), choose another token than the graph's ``ArgMax`` (padding and unknown
    banned): ``words`` greedy words after each of ``prompts``, the rules' choice fed back."""
    from dataclasses import replace

    from nextword.runtime.rules import Rules

    config = replace(model.info.generation, temperature=0.0, stop_at_end=False, max_words=words)
    rules, banned = Rules(config, model.tokenizer), banned_ids(model)
    total = over = 0
    flags: list[list[bool]] = []  # per prompt: whether the rules overruled the graph at each word
    for prompt in prompts:
        flags.append([])
        ids = model.prompt_ids(prompt)
        history = rules.history(ids)
        logits, state = model.feed(np.array([ids], dtype=np.int64), model.initial_state(1))
        row = logits[0].copy()
        for length in range(words):
            graph = row.copy()
            graph[banned] = -np.inf
            rules.apply_one(row, history, length)
            token = int(row.argmax())
            flags[-1].append(token != int(graph.argmax()))
            over += flags[-1][-1]
            total += 1
            history.add(token)
            logits, state = model.forward(np.array([[token]], dtype=np.int64), state)
            row = logits[0, -1].copy()
    return {
        "words": total,
        "overruled": over,
        "flags": flags,
        "prompts": list(prompts),
        "no_repeat_ngram_size": config.no_repeat_ngram_size,
        "repetition_penalty": config.repetition_penalty,
        "min_words": config.min_words,
    }


def stepper_loop(model: Any, out: list[int] | None = None, choose: bool = True) -> timing.Loop:
    """Greedy words through ``model.stepper()`` and numpy, as the runtime's decoding loop steps
    (``choose=False``: the bare step, the same token fed back every time)."""
    banned, first = banned_ids(model), model.prompt_ids(SHORT_PROMPT)[-1]

    def run(seed: int, words: int) -> int:
        stepper, state = model.stepper(), model.initial_state(1)
        tokens = np.array([first], dtype=np.int64)
        for _ in range(words):
            logits, state = stepper.step(tokens, state)
            if not choose:
                continue
            row = logits[0]
            for token in banned:
                row[token] = -np.inf
            tokens[0] = row.argmax()
            if out is not None:
                out.append(int(tokens[0]))
        return words

    return run


def unrolled_loop(sess: Any, model: Any, steps: int, out: list[int] | None = None) -> timing.Loop:
    """Greedy words through the unrolled graph, ``steps`` per ``session.run``."""
    layers = len(model.info.state_sizes)
    names = state_input_names(layers)
    mask = np.zeros(model.vocab_size, dtype=np.float32)
    mask[banned_ids(model)] = -np.inf
    first = model.prompt_ids(SHORT_PROMPT)[-1]
    fixed: dict[str, Any] = {MASK: mask}
    if model.info.has_logits_from:
        fixed[LOGITS_FROM] = np.asarray(-1, dtype=np.int64)
    fetch = [TOKENS, *state_output_names(layers)]

    def run(seed: int, words: int) -> int:
        feed = {**fixed, INPUT_IDS: np.array([[first]], dtype=np.int64)}
        feed.update(zip(names, model.initial_state(1), strict=True))
        for _ in range(words // steps):
            tokens, *state = sess.run(fetch, feed)
            feed[INPUT_IDS] = tokens[:, -1:]
            feed.update(zip(names, state, strict=True))
            if out is not None:
                out.extend(tokens[0].tolist())
        return words // steps * steps

    return run


@dataclass
class Variant:
    """One timed way to generate: ``loop(out)`` makes its loop (recording its tokens into ``out``)."""

    label: str
    setting: str  # the threads it runs on, as the table shows them
    steps: int | None  # words per session call of an unrolled graph; None for the stepper
    loop: Callable[[list[int] | None], timing.Loop]
    build_ms: float | None = None  # building the unrolled graph and its session


def setting_label(threads: int, spinning: bool) -> str:
    """How the table names an intra-op thread setting."""
    return f"{threads} thread{'s' if threads > 1 else ''}{', spinning' if spinning else ''}"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from nextword.runtime import load
    from nextword.runtime.model import default_session_options

    path = Path(args.model) if args.model else bundled_path()
    if not path.is_file():
        raise SystemExit(f"--model: {path} is not a file; give a nextword .onnx model")
    data = path.read_bytes()
    default = load(path)
    stepper = "stepper + numpy `argmax`"
    variants = {
        "bare": Variant(BARE, "default", None, partial(stepper_loop, default, choose=False)),
        "default": Variant(stepper, "default", None, partial(stepper_loop, default)),
    }
    for threads, spinning in SETTINGS:
        where = setting_label(threads, spinning)
        model = load(path, session_options=default_session_options(threads, spinning=spinning))
        key = f"t{threads}{'s' if spinning else ''}"
        variants[key] = Variant(stepper, where, None, partial(stepper_loop, model))
        for steps in args.steps:
            print(f"multistep: building {steps} steps, {where}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            sess = session(unrolled(data, steps), threads=threads, spinning=spinning)
            built = (time.perf_counter() - start) * 1e3
            label = f"unrolled graph, {steps} words per call"
            loop = partial(unrolled_loop, sess, model, steps)
            variants[f"x{steps}_{key}"] = Variant(label, where, steps, loop, built)
    reference: list[int] = []
    variants["default"].loop(reference)(0, args.words)
    checks = {}
    for key, variant in variants.items():
        if variant.steps is not None:
            got: list[int] = []
            variant.loop(got)(0, args.words)
            same = sum(a == b for a, b in zip(got, reference, strict=True))
            checks[key] = {"words": len(got), "same_as_stepper": same}
    timers = {
        key: (timing.loop_timer(variant.loop(None), args.words), range(args.rounds))
        for key, variant in variants.items()
    }
    timed = timing.interleaved(timers, max_seconds=args.max_seconds, settle=timing.SETTLE_SECONDS)
    rows = [
        {
            "key": key,
            "label": v.label,
            "setting": v.setting,
            "steps": v.steps,
            "us_per_word": {k: x * 1e3 if k != "n" else x for k, x in timed[key]["ms_per_word"].items()},
            "check": checks.get(key),
            "build_ms": v.build_ms,
        }
        for key, v in variants.items()
    ]
    rules = overruled(default, args.words)
    return {"model": {"path": str(path), "vocab": default.vocab_size}, "rows": rows, "rules": rules}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {
        "name": NAME,
        "settings": {
            "words": args.words,
            "rounds": args.rounds,
            "steps": args.steps,
            "threads": [setting_label(*t) for t in SETTINGS],
        },
        "machine": machine_info(),
        **measure(args),
    }
    return finish(NAME, result, None, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
