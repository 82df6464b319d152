"""Generation speed: the notebook's Keras loop against the exported, stateful runtime.

All methods use the same trained weights (the run's ``model.keras`` and the ONNX file exported from
it), the same prompt and batch 1:

1. ``keras_predict``: the notebook's way, ``model.predict`` on the last 50-word window once per word;
2. ``keras_call``: ``model(window, training=False)`` once per word;
3. ``onnx_window``: the exported step graph fed the last 50 words with zero state once per word, which
   is exactly a stateless window model (``model.forward``, output layer at the last position only);
4. ``runtime``: ``nextword.runtime`` ``generate()``: one single-step session call per word that
   carries the LSTM state; ``runtime_greedy`` the same at temperature 0, and ``runtime_steps`` only its
   per-word loop, the prompt fed before the clock starts (as in 5);
5. ``floor``: bare single-step ``session.run`` calls with carried state, no sampling or tokenization.

Also: ms/word against the generated length for (3) and (4), and words/s of (4)'s step at several
batch sizes. ``python -m benchmarks.generation --help`` lists the options; the report is written by
``benchmarks.generation_report``.

Everything that runs on onnxruntime, (3)-(5), the sweep and the batches, is timed first, in a child
process that never imports TensorFlow (``benchmarks.childproc``), in interleaved rounds; then (1) and (2)
in this process. Interleaved with Keras's rounds in one process, the runtime's per-word loop (4s) ran
about a tenth slower than in a process without TensorFlow, while the bare step (5) did not change, which
would charge TensorFlow's cost to the runtime.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import decoding, timing
from benchmarks.bench_model import BenchModel, add_model_arguments, get_bench_model
from benchmarks.childproc import add_child_json_argument, figures_without_tensorflow, write_child_json
from benchmarks.environment import machine_info
from benchmarks.generation_report import ratios, render, targets
from benchmarks.keras_loop import WINDOW, sample_rows, windowed_loop
from benchmarks.results import at_least, benchmark_parser, finish, positive_ints

NAME = "generation"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("generation", __doc__)
    add_model_arguments(parser)
    parser.add_argument("--words", type=int, default=200, help="words per generation (default: %(default)s)")
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed generations per ONNX method (default: %(default)s)"
    )
    parser.add_argument(
        "--keras-repeats",
        type=int,
        default=3,
        help="timed generations per Keras method (default: %(default)s)",
    )
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature, 0 greedy (default: %(default)s)"
    )
    parser.add_argument(
        "--lengths",
        default="50,100,200,500,1000,2000",
        help="lengths of the length sweep (default: %(default)s)",
    )
    parser.add_argument(
        "--sweep-repeats",
        type=int,
        default=3,
        help="timed generations per sweep point (default: %(default)s)",
    )
    parser.add_argument(
        "--batches", default="1,8,64", help="batch sizes of the throughput test (default: %(default)s)"
    )
    add_child_json_argument(parser)
    args = parser.parse_args(argv)
    positive_ints(parser, "--lengths", args.lengths)
    positive_ints(parser, "--batches", args.batches)
    at_least(
        parser,
        1,
        {
            "--words": args.words,
            "--repeats": args.repeats,
            "--keras-repeats": args.keras_repeats,
            "--sweep-repeats": args.sweep_repeats,
        },
    )
    return args


# ----------------------------------------------------------------------------- generation loops


def floor_loop(model: Any, first_id: int) -> timing.Loop:
    """Bare ``session.run`` calls: a (1, 1) input and the state carried, nothing else."""
    from nextword.runtime.model_file import (
        INPUT_IDS,
        LOGITS,
        LOGITS_FROM,
        state_input_names,
        state_output_names,
    )

    layers = len(model.info.state_sizes)
    state_names = state_input_names(layers)
    outputs = [LOGITS, *state_output_names(layers)]
    session = model.wide_session or model.session  # the session a single row's step alone runs on

    def run(seed: int, words: int) -> int:
        feed = {INPUT_IDS: np.asarray([[first_id]], dtype=np.int64)}
        feed.update(zip(state_names, model.initial_state(1), strict=True))
        if model.info.has_logits_from:  # a format-2 file: one position, so 0 == -1
            feed[LOGITS_FROM] = np.asarray(0, dtype=np.int64)
        for _ in range(words):
            _, *state = session.run(outputs, feed)  # logits (1, 1, V), state [(1, U)] * 2L
            feed.update(zip(state_names, state, strict=True))
        return words

    return run


def steps_timer(model: Any, prompt_ids: list[int], words: int, temperature: float) -> timing.Timer:
    """A timer of ``generate()``'s per-word loop alone: the rows are added and the prompt fed (one
    ``session.run`` over all its positions) before the clock starts; then every word is one
    :meth:`Generator.step`, which is all ``generate()`` does per word."""
    from nextword.runtime import GenerationConfig, Generator

    def timer(seed: int) -> tuple[float, int]:
        config = GenerationConfig.from_options(  # generate()'s settings, the model's defaults included
            model.info.generation, max_words=words, temperature=temperature, stop_at_end=False, seed=seed
        )
        gen = Generator(model)
        (row,) = gen.add_ids([prompt_ids], config)
        gen.step()  # feeds the prompt (shorter than one chunk)
        start = time.perf_counter()
        gen.run()
        return time.perf_counter() - start, len(gen.tokens(row))

    timer(timing.WARM_UP_SEED)
    return timer


# ----------------------------------------------------------------------------- measurements


def measure_onnx_methods(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """Methods (3)-(5), timed in interleaved rounds."""
    tok = model.tokenizer
    banned = [tok.pad_id, tok.unk_id, tok.eod_id]  # as the runtime run to full length: never <eod>
    prompt_ids = model.prompt_ids(decoding.PROMPT)
    zero = model.initial_state(1)
    n, t = args.words, args.temperature

    def onnx_window(x: np.ndarray) -> np.ndarray:
        return model.forward(x, zero, logits_from=-1)[0][:, -1]  # the output layer at the last position

    runtime, seeds, how = decoding.generate_timer(model, decoding.PROMPT, n, t, args.repeats)
    greedy, greedy_seeds, _ = decoding.generate_timer(model, decoding.PROMPT, n, 0.0, args.repeats)
    seeds_all = list(range(args.repeats))
    timers = {
        "onnx_window": (timing.loop_timer(windowed_loop(onnx_window, prompt_ids, t, banned), n), seeds_all),
        "runtime": (runtime, seeds),
        "runtime_greedy": (greedy, greedy_seeds),
        "runtime_steps": (steps_timer(model, prompt_ids, n, t), seeds_all),
        "floor": (timing.loop_timer(floor_loop(model, prompt_ids[-1]), n), seeds_all),
    }
    methods = timing.interleaved(timers, settle=timing.SETTLE_SECONDS)
    methods["runtime"]["no_early_end"] = how
    return methods


def measure_keras_methods(args: argparse.Namespace, model: Any, trained: Any) -> dict[str, Any]:
    """Methods (1) and (2), timed in interleaved rounds."""
    import keras

    tok = model.tokenizer
    banned = [tok.pad_id, tok.unk_id, tok.eod_id]
    prompt_ids = model.prompt_ids(decoding.PROMPT)

    def keras_predict(x: np.ndarray) -> np.ndarray:
        return trained.predict(x.astype(np.int32), verbose=0)[:, -1]

    def keras_call(x: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(trained(x.astype(np.int32), training=False))[:, -1]

    seeds = list(range(args.keras_repeats))
    timers = {
        name: (
            timing.loop_timer(windowed_loop(last, prompt_ids, args.temperature, banned), args.words),
            seeds,
        )
        for name, last in (("keras_predict", keras_predict), ("keras_call", keras_call))
    }
    return timing.interleaved(timers, settle=timing.SETTLE_SECONDS)


def measure_sweep(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """ms/word of (3) and (4) against the generated length."""
    tok = model.tokenizer
    banned = [tok.pad_id, tok.unk_id, tok.eod_id]
    prompt_ids = model.prompt_ids(decoding.PROMPT)
    zero = model.initial_state(1)

    def onnx_window(x: np.ndarray) -> np.ndarray:
        return model.forward(x, zero, logits_from=-1)[0][:, -1]

    sweep: dict[str, Any] = {"lengths": [], "onnx_window": [], "runtime": [], "runtime_words": []}
    sweep["decoding"] = decoding.NO_EARLY_END
    window = windowed_loop(onnx_window, prompt_ids, args.temperature, banned)
    for length in _ints(args.lengths):
        timer, seeds, _ = decoding.generate_timer(
            model, decoding.PROMPT, length, args.temperature, args.sweep_repeats
        )
        timed = timing.interleaved(
            {"runtime": (timer, seeds), "onnx_window": (timing.loop_timer(window, length), seeds)},
            settle=timing.SETTLE_SECONDS,
        )
        sweep["lengths"].append(length)
        for key in ("runtime", "onnx_window"):
            sweep[key].append(timed[key]["ms_per_word"])
        sweep["runtime_words"].append(timed["runtime"]["words"])
    return sweep


def measure_batch(
    model: Any, batch: int, steps: int, repeats: int, temperature: float, banned: list[int]
) -> dict[str, Any]:
    """Words/s of the runtime's step for ``batch`` sequences at once: a batched ``forward`` that
    carries the state, plus sampling, ``steps`` times; and batched ``generate()``
    (``num_return_sequences=batch`` with ``stop_at_end=False``, so every row runs ``steps`` words)."""
    first = np.full((batch, 1), model.prompt_ids(decoding.PROMPT)[-1], dtype=np.int64)  # (B, 1)

    def forward_loop(seed: int, words: int) -> int:
        rng = np.random.default_rng(seed)
        ids, state = first, model.initial_state(batch)
        for _ in range(words):
            logits, state = model.forward(ids, state)  # (B, 1, V)
            ids = sample_rows(logits[:, -1], rng, temperature, banned)[:, None]  # (B, 1)
        return batch * words

    options = {"num_return_sequences": batch, "temperature": temperature, "stop_at_end": False}

    def generate_loop(seed: int, words: int) -> int:
        model.generate(decoding.PROMPT, max_words=words, seed=seed, **options)
        return batch * words

    seeds = list(range(repeats))
    timers = {
        "forward": (timing.loop_timer(forward_loop, steps), seeds),
        "generate": (timing.loop_timer(generate_loop, steps), seeds),
    }
    result: dict[str, Any] = {"batch": batch}
    for name, timed in timing.interleaved(timers, settle=timing.SETTLE_SECONDS).items():
        result[f"{name}_words_per_s"] = timing.per_second(timed["ms_per_word"])
    return result


def measure_onnx(args: argparse.Namespace, bench: BenchModel) -> dict[str, Any]:
    """Everything that runs on onnxruntime: methods (3)-(5), the length sweep and the batches."""
    from nextword.runtime import load

    assert bench.model_path is not None  # get_bench_model(need_model=True)
    model = load(bench.model_path)
    tok = model.tokenizer
    banned = [tok.pad_id, tok.unk_id, tok.eod_id]
    print("generation: methods (3)-(5), interleaved", file=sys.stderr, flush=True)
    methods = measure_onnx_methods(args, model)
    print("generation: length sweep", file=sys.stderr, flush=True)
    sweep = measure_sweep(args, model)
    print("generation: batch throughput", file=sys.stderr, flush=True)
    batches = [
        measure_batch(model, b, args.words, args.repeats, args.temperature, banned)
        for b in _ints(args.batches)
    ]
    return {"methods": methods, "sweep": sweep, "batches": batches, "onnx_threads": _ort_threads(model)}


def measure(args: argparse.Namespace, bench: BenchModel) -> dict[str, Any]:
    """The ONNX figures from a child process without TensorFlow, then (1) and (2) here."""
    print(
        "generation: onnxruntime methods in a child process without TensorFlow", file=sys.stderr, flush=True
    )
    options = [
        "--words",
        str(args.words),
        "--repeats",
        str(args.repeats),
        "--temperature",
        str(args.temperature),
    ]
    options += [
        "--lengths",
        args.lengths,
        "--sweep-repeats",
        str(args.sweep_repeats),
        "--batches",
        args.batches,
    ]
    assert bench.run_dir is not None and bench.model_path is not None  # need_run=True, need_model=True
    model_files = ["--run", bench.run_dir, "--model", bench.model_path]
    onnx = figures_without_tensorflow("benchmarks.generation", *model_files, *options)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from nextword.runtime import load
    from nextword.train.model import load_keras_model

    model = load(bench.model_path)
    trained = load_keras_model(Path(bench.run_dir) / "model.keras")
    print("generation: Keras methods (1)-(2), interleaved", file=sys.stderr, flush=True)
    keras_methods = measure_keras_methods(args, model, trained)
    onnx["methods"] = {**keras_methods, **onnx["methods"]}
    return onnx


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _ort_threads(model: Any) -> str:
    intra = model.session.get_session_options().intra_op_num_threads
    text = f"intra-op threads {intra or 'default (one per physical core)'}"
    if model.wide_session is not None:
        text += "; a single row's step that runs alone: 2, spinning (load()'s second session)"
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = get_bench_model(args, need_run=True, need_model=True)
    if args.child_json:  # the child of measure(): the ONNX figures alone, TensorFlow never imported
        write_child_json(args.child_json, measure_onnx(args, bench))
        return 0
    from nextword.runtime import load

    assert bench.model_path is not None  # need_model=True
    onnx_model = load(bench.model_path)
    prompt_tokens, vocab_size = len(onnx_model.prompt_ids(decoding.PROMPT)), onnx_model.vocab_size
    del onnx_model
    result = {
        "name": NAME,
        "settings": {
            "words": args.words,
            "repeats": args.repeats,
            "keras_repeats": args.keras_repeats,
            "sweep_repeats": args.sweep_repeats,
            "temperature": args.temperature,
            "window": WINDOW,
            "prompt_tokens": prompt_tokens,
            "vocab_size": vocab_size,
        },
        "model": bench.to_dict(),
        "machine": machine_info(),
        **measure(args, bench),
    }
    result["ratios"] = ratios(result)
    return finish(NAME, result, targets, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
