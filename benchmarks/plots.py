"""The figures of docs/benchmarks.md (matplotlib, from the ``bench`` extra), one function each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["batch_plot", "length_plot", "methods_plot"]

RUNTIME, WINDOWED, BASELINE = "#2a7", "#c84", "#999"  # colours: the runtime, the windowed methods, floor
COLOURS = {"keras_predict": "#c22", "keras_call": "#c55", "onnx_window": WINDOWED, "floor": BASELINE}
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def methods_plot(methods: dict[str, Any], labels: dict[str, str], words: int, img_dir: Path) -> Path:
    """Horizontal bars of ms/word by method (log scale), with the interquartile range."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    keys = [k for k in list(labels)[::-1] if k in methods]
    stats = [methods[k]["ms_per_word"] for k in keys]
    medians = [s["median"] for s in stats]
    spread = [[s["median"] - s["q1"] for s in stats], [s["q3"] - s["median"] for s in stats]]
    ax.barh(range(len(keys)), medians, xerr=spread, color=[COLOURS.get(k, RUNTIME) for k in keys])
    ax.set_yticks(range(len(keys)), [labels[k] for k in keys])
    ax.set_xscale("log")
    ax.set_xlim(right=max(max(s["median"], s["q3"]) for s in stats) * 3)  # room for the labels
    ax.set_xlabel("ms per word (log scale, lower is better)")
    for i, s in enumerate(stats):
        ax.text(max(s["median"], s["q3"]) * 1.15, i, f"{s['median']:.3g} ms", va="center", fontsize=8)
    ax.set_title(f"Generation, batch 1, {words} words")
    return _save(fig, img_dir / "generation-methods.png")


def length_plot(sweep: dict[str, Any], labels: dict[str, str], img_dir: Path) -> Path:
    """ms/word against the generated length, one line per method, with min–max error bars."""
    import matplotlib

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key, colour in (("onnx_window", WINDOWED), ("runtime", RUNTIME)):
        s = sweep[key]
        ax.errorbar(
            sweep["lengths"],
            [x["median"] for x in s],
            yerr=[[x["median"] - x["min"] for x in s], [x["max"] - x["median"] for x in s]],
            marker="o",
            color=colour,
            label=labels[key],
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
    return _save(fig, img_dir / "generation-length.png")


def batch_plot(batches: list[dict[str, Any]], img_dir: Path) -> Path:
    """Words/s by batch size: the hand-made batched step against batched ``generate()``."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    xs, width = np.arange(len(batches)), 0.38
    forward = [b["forward_words_per_s"]["median"] for b in batches]
    generate = [b.get("generate_words_per_s", {}).get("median", 0) for b in batches]
    ax.bar(xs, forward, width, color=RUNTIME, label="batched forward")
    ax.bar(xs + width, generate, width, color="#27a", label="batched generate()")
    ax.legend(fontsize=8)
    ax.set_xticks(xs + width / 2, [str(b["batch"]) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("words per second")
    ax.set_title("Runtime step throughput")
    return _save(fig, img_dir / "generation-batch.png")
