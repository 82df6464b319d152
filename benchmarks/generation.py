"""Generation speed: the notebook's Keras loop against the exported, stateful runtime.

All methods use the same trained weights (the run's ``model.keras`` and the ONNX file exported from
it), the same prompt and batch 1, in one process:

1. ``keras_predict``: the notebook's way, ``model.predict`` on the last 50-word window once per word;
2. ``keras_call``: ``model(window, training=False)`` once per word;
3. ``onnx_window``: the exported step graph fed the last 50 words with zero state once per word, which
   is exactly a stateless window model (``model.forward``, output layer at the last position only);
4. ``runtime``: ``nextword.runtime`` ``generate()``: one single-step session call per word that
   carries the LSTM state; ``runtime_greedy`` the same at temperature 0, and ``runtime_steps`` only its
   per-word loop, the prompt fed before the clock starts (as in 5);
5. ``floor``: bare single-step ``session.run`` calls with carried state, no sampling or tokenization.

Also: ms/word against the generated length for (3) and (4), and words/s of (4)'s step at several
batch sizes. ``python benchmarks/generation.py --help`` lists the options.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np

NAME = "generation"
WINDOW = 50  # the notebook's window

METHODS = {
    "keras_predict": "(1) Keras `model.predict` on the last 50 words (the notebook)",
    "keras_call": "(2) Keras `model(x, training=False)` on the last 50 words",
    "onnx_window": "(3) ONNX window re-run: `model.forward` on the last 50 words, zero state",
    "runtime": "(4) nextword runtime `generate()`: one stateful step per word",
    "runtime_greedy": "(4g) the same, greedy (temperature 0): no sampling",
    "runtime_steps": "(4s) the same, words only: the prompt is fed before the clock starts, as in (5)",
    "floor": "(5) floor: bare single-step `session.run`, state carried, no sampling",
}
SPEEDUP_TARGETS = (("keras_predict", 300.0), ("onnx_window", 2.0))  # (4) this many times faster at least
FLOOR_TARGET = 1.3  # (4) at most this many times slower than (5)

Loop = Callable[[int, int], int]  # (seed, words) -> words produced


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common.add_common_arguments(parser)
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
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- generation loops


def windowed_loop(
    last_logits: Callable[[np.ndarray], np.ndarray],
    prompt_ids: list[int],
    temperature: float,
    banned: list[int],
) -> Loop:
    """The notebook's loop: re-run a stateless model on the last ``WINDOW`` ids for every new word."""

    def run(seed: int, words: int) -> int:
        rng = np.random.default_rng(seed)
        ids = list(prompt_ids)
        for _ in range(words):
            window = np.asarray([ids[-WINDOW:]])  # (1, W)
            logits = last_logits(window)  # (1, V): the last position's logits
            ids.append(int(common.sample_rows(logits, rng, temperature, banned)[0]))
        return words

    return run


def floor_loop(model: Any, first_id: int) -> Loop:
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
    session = model.session

    def run(seed: int, words: int) -> int:
        feed = {INPUT_IDS: np.asarray([[first_id]], dtype=np.int64)}
        feed.update(zip(state_names, model.initial_state(1), strict=True))
        if getattr(model.info, "has_logits_from", False):  # a format-2 file: one position, so 0 == -1
            feed[LOGITS_FROM] = np.asarray(0, dtype=np.int64)
        for _ in range(words):
            _, *state = session.run(outputs, feed)  # logits (1, 1, V), state [(1, U)] * 2L
            feed.update(zip(state_names, state, strict=True))
        return words

    return run


def steps_timer(model: Any, prompt_ids: list[int], words: int, temperature: float) -> common.Timer:
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

    timer(10_000)  # warm-up
    return timer


def loop_timer(run: Loop, words: int) -> common.Timer:
    """A timer of ``run`` for ``words`` words, warmed up first (tracing and allocation left out)."""
    run(10_000, 3)

    def timer(seed: int) -> tuple[float, int]:
        start = time.perf_counter()
        produced = run(seed, words)
        return time.perf_counter() - start, produced

    return timer


# ----------------------------------------------------------------------------- measurements


def measure(args: argparse.Namespace, bench: common.BenchModel) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from nextword.runtime import load

    model = load(bench.model_path)
    trained = keras.saving.load_model(Path(bench.run_dir) / "model.keras", compile=False)
    tok = model.tokenizer
    banned = [tok.pad_id, tok.unk_id, tok.eod_id]  # as the runtime run to full length: never <eod>
    prompt_ids = model.prompt_ids(common.PROMPT)
    zero = model.initial_state(1)
    n, t = args.words, args.temperature

    def keras_predict(x: np.ndarray) -> np.ndarray:
        return trained.predict(x.astype(np.int32), verbose=0)[:, -1]

    def keras_call(x: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(trained(x.astype(np.int32), training=False))[:, -1]

    def onnx_window(x: np.ndarray) -> np.ndarray:
        return model.forward(x, zero, logits_from=-1)[0][:, -1]  # the output layer at the last position

    print("generation: methods (1)-(5), interleaved", file=sys.stderr, flush=True)
    runtime, seeds, how = common.generate_timer(model, common.PROMPT, n, t, args.repeats)
    greedy, greedy_seeds, _ = common.generate_timer(model, common.PROMPT, n, 0.0, args.repeats)
    keras_seeds, seeds_all = list(range(args.keras_repeats)), list(range(args.repeats))
    timers = {
        "keras_predict": (loop_timer(windowed_loop(keras_predict, prompt_ids, t, banned), n), keras_seeds),
        "keras_call": (loop_timer(windowed_loop(keras_call, prompt_ids, t, banned), n), keras_seeds),
        "onnx_window": (loop_timer(windowed_loop(onnx_window, prompt_ids, t, banned), n), seeds_all),
        "runtime": (runtime, seeds),
        "runtime_greedy": (greedy, greedy_seeds),
        "runtime_steps": (steps_timer(model, prompt_ids, n, t), seeds_all),
        "floor": (loop_timer(floor_loop(model, prompt_ids[-1]), n), seeds_all),
    }
    methods = common.interleaved(timers)
    methods["runtime"]["no_early_end"] = how

    print("generation: length sweep", file=sys.stderr, flush=True)
    if "stop_at_end" in common.generation_fields():
        sweep_t, decoding = t, "`stop_at_end=False`"
    else:  # without stop_at_end a sampled text ends within a few hundred words: sweep greedily
        sweep_t, decoding = 0.0, "greedy decoding (this runtime has no `stop_at_end`)"
    sweep: dict[str, Any] = {"lengths": [], "onnx_window": [], "runtime": [], "runtime_words": []}
    sweep["decoding"] = decoding
    window = windowed_loop(onnx_window, prompt_ids, sweep_t, banned)
    for length in _ints(args.lengths):
        timer, seeds, _ = common.generate_timer(model, common.PROMPT, length, sweep_t, args.sweep_repeats)
        timed = common.interleaved(
            {"runtime": (timer, seeds), "onnx_window": (loop_timer(window, length), seeds)}
        )
        sweep["lengths"].append(length)
        for key in ("runtime", "onnx_window"):
            sweep[key].append(timed[key]["ms_per_word"])
        sweep["runtime_words"].append(timed["runtime"]["words"])

    print("generation: batch throughput", file=sys.stderr, flush=True)
    batches = [measure_batch(model, b, n, args.repeats, t, banned) for b in _ints(args.batches)]
    print("generation: session threads", file=sys.stderr, flush=True)
    threads = measure_threads(bench.model_path, n, args.repeats, prompt_ids[-1])
    return {
        "methods": methods,
        "sweep": sweep,
        "batches": batches,
        "threads": threads,
        "onnx_threads": _ort_threads(model),
    }


def measure_threads(path: str, steps: int, repeats: int, first_id: int) -> list[dict[str, Any]]:
    """ms per step of bare ``forward`` at batch 1 and 64 with one intra-op thread (the runtime's
    default) against two, timed in interleaved rounds."""
    from nextword.runtime import load
    from nextword.runtime.model import default_session_options

    models = {}
    for threads in (1, 2):
        options = default_session_options()
        options.intra_op_num_threads = threads
        models[threads] = load(path, session_options=options)

    def step_loop(model: Any, batch: int) -> Loop:
        def run(seed: int, words: int) -> int:
            ids, state = np.full((batch, 1), first_id, dtype=np.int64), model.initial_state(batch)
            for _ in range(words):
                _, state = model.forward(ids, state)
            return words

        return run

    rows = []
    for batch in (1, 64):
        timers = {
            f"{t}": (loop_timer(step_loop(m, batch), steps), list(range(repeats))) for t, m in models.items()
        }
        timed = common.interleaved(timers)
        rows.append({"batch": batch, **{f"threads_{t}": timed[str(t)]["ms_per_word"] for t in models}})
    return rows


def measure_batch(
    model: Any, batch: int, steps: int, repeats: int, temperature: float, banned: list[int]
) -> dict[str, Any]:
    """Words/s of the runtime's step for ``batch`` sequences at once: a batched ``forward`` that
    carries the state, plus sampling, ``steps`` times; and batched ``generate()`` where it exists
    (``num_return_sequences=batch`` with ``stop_at_end=False``, so every row runs ``steps`` words)."""
    first = np.full((batch, 1), model.prompt_ids(common.PROMPT)[-1], dtype=np.int64)  # (B, 1)

    def forward_loop(seed: int, words: int) -> int:
        rng = np.random.default_rng(seed)
        ids, state = first, model.initial_state(batch)
        for _ in range(words):
            logits, state = model.forward(ids, state)  # (B, 1, V)
            ids = common.sample_rows(logits[:, -1], rng, temperature, banned)[:, None]  # (B, 1)
        return batch * words

    timers = {"forward": (loop_timer(forward_loop, steps), list(range(repeats)))}
    if {"num_return_sequences", "stop_at_end"} <= common.generation_fields():  # batched generate() exists
        options = {"num_return_sequences": batch, "temperature": temperature, "stop_at_end": False}

        def generate_loop(seed: int, words: int) -> int:
            model.generate(common.PROMPT, max_words=words, seed=seed, **options)
            return batch * words

        timers["generate"] = (loop_timer(generate_loop, steps), list(range(repeats)))
    result: dict[str, Any] = {"batch": batch}
    for name, timed in common.interleaved(timers).items():
        result[f"{name}_words_per_s"] = per_second(timed["ms_per_word"])
    return result


def per_second(ms: dict[str, float]) -> dict[str, float]:
    """Words/s statistics from ms/word statistics (the median and quartiles map over, swapped)."""
    return {
        "median": 1e3 / ms["median"],
        "q1": 1e3 / ms["q3"],
        "q3": 1e3 / ms["q1"],
        "min": 1e3 / ms["max"],
        "max": 1e3 / ms["min"],
        "n": ms["n"],
    }


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _ort_threads(model: Any) -> str:
    options = model.session.get_session_options()
    intra = options.intra_op_num_threads
    return f"intra-op threads {intra or 'default (one per physical core)'}"


# ----------------------------------------------------------------------------- report


def ratios(result: dict[str, Any]) -> dict[str, float]:
    ms = {k: v["ms_per_word"]["median"] for k, v in result["methods"].items()}
    out = {f"{k}_over_runtime": ms[k] / ms["runtime"] for k in ms if k != "runtime"}
    return out


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value, whether it was met, and why."""
    ms = {k: v["ms_per_word"]["median"] for k, v in result["methods"].items()}
    runtime = ms["runtime"]
    vocab = result["settings"].get("vocab_size", "?")
    why = {
        "keras_predict": f"(1) spends {ms['keras_predict']:.0f} ms per word: every `predict` call sets up "
        "Keras's batch machinery, then re-runs the LSTM over all 50 window positions and the output layer "
        f"at each of them; (4) runs one LSTM step and one output row in {runtime:.2f} ms",
        "onnx_window": f"(3) runs the LSTM over 50 positions for every word ({ms['onnx_window']:.2f} ms) "
        "where (4) runs it over one; what (3) saves over (1) is Keras's per-call overhead and the output "
        "layer at 49 positions, not the recomputation",
    }
    checks = []
    for slower, factor in SPEEDUP_TARGETS:
        value = ms[slower] / runtime
        checks.append(
            {
                "key": slower,
                "target": f"(4) runtime ≥ {factor:g}× faster than {_short(slower)}",
                "measured": f"{value:,.1f}×",
                "met": value >= factor,
                "why": why[slower],
            }
        )
    value = runtime / ms["floor"]
    work = (
        f"sampling from the softmax over all {vocab:,} words (a few float32 passes over the vocabulary), "
        "the decoding rules and building the text, in Python"
    )
    if runtime <= ms["floor"]:
        reason = f"(4) measured no slower than the {ms['floor']:.3f} ms of bare `session.run`, within noise"
    elif "runtime_steps" in ms:
        prompt = result["settings"].get("prompt_tokens", "?")
        reason = (
            f"(4) adds {runtime - ms['floor']:.3f} ms per word to the {ms['floor']:.3f} ms of `session.run`. "
            f"{runtime - ms['runtime_steps']:.3f} ms of it is feeding the {prompt}-token prompt (one "
            "`session.run` over all its positions, spread over the words): model work that (5) leaves out; "
            f"{ms['runtime_steps'] - ms['floor']:.3f} ms is {work} (row (4s))"
        )
    else:
        reason = (
            f"(4) adds {runtime - ms['floor']:.3f} ms per word to the {ms['floor']:.3f} ms of `session.run`: "
            + work
        )
    if "runtime_greedy" in ms:
        greedy = ms["runtime_greedy"]
        reason += f". Greedy `generate()` takes {greedy:.3f} ms/word, {greedy / ms['floor']:.2f}× the floor"
    checks.append(
        {
            "target": f"(4) runtime within {FLOOR_TARGET:g}× of (5) bare `session.run`",
            "measured": f"{value:.2f}×",
            "met": value <= FLOOR_TARGET,
            "why": reason,
        }
    )
    if "runtime_steps" in ms:
        steps = ms["runtime_steps"]
        checks.append(
            {
                "target": f"(4s) `generate()`'s per-word loop within {FLOOR_TARGET:g}× of (5)",
                "measured": f"{steps / ms['floor']:.2f}×",
                "met": steps / ms["floor"] <= FLOOR_TARGET,
                "why": f"What sampling, the decoding rules and building the text add to each step: "
                f"{steps - ms['floor']:.3f} ms on top of {ms['floor']:.3f} ms; the same prompt-free "
                f"comparison as (5), which feeds no prompt either",
            }
        )
    return checks


def _short(key: str) -> str:
    return METHODS[key].split(":")[0].split(" on ")[0]


def render(result: dict[str, Any], img: str | None = None) -> str:
    """The Markdown section: tables, plots (when ``img`` names the image folder link) and notes."""
    methods, settings = result["methods"], result["settings"]
    runtime_ms = methods["runtime"]["ms_per_word"]["median"]
    predict_ms = methods["keras_predict"]["ms_per_word"]["median"]
    rows = []
    for key, label in METHODS.items():
        if key not in methods:
            continue  # results of a run from before this method was measured
        stat = methods[key]["ms_per_word"]
        rows.append(
            [
                label,
                common.fmt_stat(stat),
                stat["n"],
                common.fmt_num(1e3 / stat["median"]),
                f"{predict_ms / stat['median']:,.1f}×",
                f"{stat['median'] / runtime_ms:,.2f}×",
            ]
        )
    headers = ["method", "ms/word, median (spread)", "runs", "words/s", "speed vs (1)", "time vs (4)"]
    parts = [
        f"Batch 1, {settings['words']} words per generation after a {settings['prompt_tokens']}-token "
        f"prompt, temperature {settings['temperature']:g}; spread is the interquartile range from 4 runs "
        "on, else min–max. The runtime is kept from ending the document early with "
        f"{methods['runtime']['no_early_end']}; its ms/word divides by the words it actually produced "
        f"({_words(methods['runtime']['words'])}). (1)–(3) re-run the LSTM over the whole 50-word window for "
        "every word, then draw the next word with the notebook's float64 softmax sampling; (1) and (2) "
        "also compute the output layer at all 50 positions (the training model is many-to-many), (3) "
        "only at the last one (`logits_from=-1`). None of them may pick padding, unknown or end of "
        f"document. ONNX Runtime {result['onnx_threads']}. "
        "All methods are timed in interleaved rounds, so load from other processes hits them alike.",
        "",
        common.markdown_table(headers, rows),
        "",
        *[f"- {t['target']}: **{t['measured']}**, {_met(t['met'])}. {t['why']}." for t in targets(result)],
    ]
    if img:
        parts += ["", f"![ms/word by method]({img}/generation-methods.png)"]
    sweep = result["sweep"]
    rows = [
        [length, common.fmt_stat(w), common.fmt_stat(r), _words(words), f"{w['median'] / r['median']:.1f}×"]
        for length, w, r, words in zip(
            sweep["lengths"], sweep["onnx_window"], sweep["runtime"], sweep["runtime_words"], strict=True
        )
    ]
    parts += [
        "",
        f"**Length sweep** (ms/word, median of {settings['sweep_repeats']} runs with min–max; the runtime "
        f"runs to full length with {sweep['decoding']}):",
        "",
        common.markdown_table(
            ["words", "(3) ONNX window", "(4) runtime", "(4) words produced", "(3) / (4)"], rows
        ),
    ]
    if img:
        parts += ["", f"![ms/word against length]({img}/generation-length.png)"]
    batch_rows, has_generate = [], any("generate_words_per_s" in b for b in result["batches"])
    for b in result["batches"]:
        row = [b["batch"], common.fmt_stat(b["forward_words_per_s"])]
        if has_generate:
            row.append(common.fmt_stat(b.get("generate_words_per_s")))
        batch_rows.append(row)
    headers = ["batch", "step: batched `forward` + sampling, words/s"]
    note = (
        "The first column is the runtime's step run by hand: one batched `model.forward` on (batch, 1) ids "
        "with the state carried, then one softmax draw per row. "
        + (
            "Batched `generate()` is measured as well (one prompt, `num_return_sequences=batch`, "
            "`stop_at_end=False`)."
            if has_generate
            else "Batched `generate()` does not exist yet in this runtime, hence the hand-made loop."
        )
    )
    if has_generate:
        headers.append("batched `generate()`, words/s")
    parts += [
        "",
        f"**Throughput by batch size** ({settings['words']} steps, median of {settings['repeats']} runs with "
        f"interquartile range). {note}",
        "",
        common.markdown_table(headers, batch_rows),
    ]
    if img:
        parts += ["", f"![words/s by batch size]({img}/generation-batch.png)"]
    if result.get("threads"):
        rows = [
            [t["batch"], common.fmt_stat(t["threads_1"]), common.fmt_stat(t["threads_2"])]
            for t in result["threads"]
        ]
        parts += [
            "",
            "**Session threads** (ms per bare `forward` step, median with interquartile range): the runtime "
            "creates its sessions with one intra-op thread (`default_session_options`), against two threads "
            "on the same model:",
            "",
            common.markdown_table(["batch", "1 thread (default)", "2 threads"], rows),
        ]
    return "\n".join(parts)


def _words(words: list[int | None]) -> str:
    values = sorted({w for w in words if w is not None})
    return ", ".join(str(v) for v in values) if values else "–"


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(8, 3.2))
    keys = [k for k in list(METHODS)[::-1] if k in result["methods"]]
    stats = [result["methods"][k]["ms_per_word"] for k in keys]
    med = [s["median"] for s in stats]
    err = [[s["median"] - s["q1"] for s in stats], [s["q3"] - s["median"] for s in stats]]
    colors = {"keras_predict": "#c22", "keras_call": "#c55", "onnx_window": "#c84", "floor": "#999"}
    ax.barh(range(len(keys)), med, xerr=err, color=[colors.get(k, "#2a7") for k in keys])
    ax.set_yticks(range(len(keys)), [METHODS[k].split(" ", 1)[0] + " " + k.replace("_", " ") for k in keys])
    ax.set_xscale("log")
    ax.set_xlim(right=max(max(s["median"], s["q3"]) for s in stats) * 3)  # room for the labels
    ax.set_xlabel("ms per word (log scale, lower is better)")
    for i, s in enumerate(stats):
        ax.text(max(s["median"], s["q3"]) * 1.15, i, f"{s['median']:.3g} ms", va="center", fontsize=8)
    ax.set_title(f"Generation, batch 1, {result['settings']['words']} words")
    fig.tight_layout()
    paths.append(img_dir / "generation-methods.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    sweep = result["sweep"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key, color in (("onnx_window", "#c84"), ("runtime", "#2a7")):
        s = sweep[key]
        ax.errorbar(
            sweep["lengths"],
            [x["median"] for x in s],
            yerr=[[x["median"] - x["min"] for x in s], [x["max"] - x["median"] for x in s]],
            marker="o",
            color=color,
            label=METHODS[key].split(":")[0],
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sweep["lengths"], [f"{n:,}" for n in sweep["lengths"]], minor=False)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("words generated")
    ax.set_ylabel("ms per word")
    ax.set_title("Time per word against generated length, batch 1")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    paths.append(img_dir / "generation-length.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.4))
    batches = result["batches"]
    xs = np.arange(len(batches))
    width = 0.38 if any("generate_words_per_s" in b for b in batches) else 0.6
    ax.bar(
        xs,
        [b["forward_words_per_s"]["median"] for b in batches],
        width,
        color="#2a7",
        label="batched forward",
    )
    if width < 0.5:
        ax.bar(
            xs + width,
            [b.get("generate_words_per_s", {}).get("median", 0) for b in batches],
            width,
            color="#27a",
            label="batched generate()",
        )
        ax.legend(fontsize=8)
    ax.set_xticks(xs + (width / 2 if width < 0.5 else 0), [str(b["batch"]) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("words per second")
    ax.set_title("Runtime step throughput")
    fig.tight_layout()
    paths.append(img_dir / "generation-batch.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = common.get_bench_model(args, need_run=True, need_model=True)
    from nextword.runtime import load

    onnx_model = load(bench.model_path)
    prompt_tokens, vocab_size = len(onnx_model.prompt_ids(common.PROMPT)), onnx_model.vocab_size
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
        "machine": common.machine_info(),
        **measure(args, bench),
    }
    result["ratios"] = ratios(result)
    result["targets"] = targets(result)
    print(f"wrote {common.save_result(NAME, result, args.result_json)}", file=sys.stderr)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
