"""Helpers shared by the benchmark scripts: machine facts, statistics, tables, child processes, and the
trained model every benchmark measures.

The scripts are plain programs (``python benchmarks/generation.py``); each writes its figures as JSON
under ``benchmarks/.cache/results/`` and prints Markdown tables. ``run_all.py`` runs them all and
writes ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = CACHE_DIR / "results"
DOCS_DIR = REPO / "docs"
IMG_DIR = DOCS_DIR / "img"
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "neural_network_patent_query.csv"

# The model the benchmarks train when given none: one epoch of the bundled model's network.
DEFAULT_MODEL_SETTINGS = {  # the bundled model's architecture (Makefile: bundled-model), one epoch
    "embedding_dim": 256,
    "lstm_units": 448,
    "num_layers": 1,
    "dropout": 0.25,
    "epochs": 1,
}
PACKAGES = ("nextword", "numpy", "onnxruntime", "onnx", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx")

# A fixed prompt for the generation benchmarks: long enough (> 50 tokens) that the windowed methods
# start from a full 50-word window, as the notebook did.
PROMPT = (
    "A neural network system for processing sequential data includes an input layer that receives a "
    "sequence of feature vectors, a recurrent layer of long short-term memory cells that maintains a "
    "hidden state across time steps, and an output layer that computes a probability distribution over "
    "a vocabulary of words. The network is trained on a corpus of documents using backpropagation "
    "through time, and the trained network"
)


# ----------------------------------------------------------------------------- machine and versions


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and the versions of the packages that matter here."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE") if k in os.environ}
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "environment": threads,
    }


def machine_markdown(info: dict[str, Any]) -> str:
    rows = [
        ["CPU", f"{info['cpu']} ({info['usable_cores']} usable of {info['logical_cores']} logical cores)"],
        ["memory", f"{info['memory_gib']} GiB"],
        ["OS", info["os"]],
        ["Python", info["python"]],
        *[[name, version] for name, version in info["versions"].items()],
        *[[f"${k}", v] for k, v in info.get("environment", {}).items()],
    ]
    return markdown_table(["", ""], rows, align="ll")


# ----------------------------------------------------------------------------- statistics and tables


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and range of ``values`` (quartiles fall back to the range under 4 values)."""
    values = sorted(float(v) for v in values)
    if not values:
        raise ValueError("no values to summarize")
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1, q3 = values[0], values[-1]
    return {
        "median": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "min": values[0],
        "max": values[-1],
        "n": len(values),
    }


def fmt_num(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, no exponent for ordinary magnitudes."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = max(0, digits - 1 - int(_floor_log10(magnitude)))
    return f"{value:.{decimals}f}"


def _floor_log10(x: float) -> float:
    import math

    return math.floor(math.log10(x))


def fmt_stat(stat: dict[str, float] | None, digits: int = 3) -> str:
    """``median (q1–q3)``: the median with the spread it came with."""
    if not stat:
        return "–"
    if stat["n"] == 1:
        return fmt_num(stat["median"], digits)
    low, high = (stat["q1"], stat["q3"]) if stat["n"] >= 4 else (stat["min"], stat["max"])
    return f"{fmt_num(stat['median'], digits)} ({fmt_num(low, digits)}–{fmt_num(high, digits)})"


def spread_label(n: int) -> str:
    return "interquartile range" if n >= 4 else "min–max"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub Markdown table. ``align`` holds one letter per column, ``l`` or ``r``; by default the
    first column is left-aligned and the others (numbers) right-aligned."""
    align = align or "l" + "r" * (len(headers) - 1)
    align = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if n < 100 * size else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


# ----------------------------------------------------------------------------- child processes


@dataclass(frozen=True)
class ChildResult:
    """How a child process ended: exit status, wall time, peak resident memory and its output."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int | None  # None where the platform cannot tell (Windows)
    stdout: str
    stderr: str


def run_child(
    command: Sequence[str], *, env: dict[str, str] | None = None, timeout: float | None = None
) -> ChildResult:
    """Run ``command`` and measure its wall time and peak RSS (``ru_maxrss`` of that one child).

    The output goes to temporary files rather than pipes so the parent can ``wait4`` on the exact
    process and read its own resource usage, not the sum over all children.
    """
    child_env = dict(os.environ if env is None else env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), stdout=out, stderr=err, env=child_env)
        peak = None
        if hasattr(os, "wait4"):
            deadline = None if timeout is None else start + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.01)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            # ru_maxrss is in KiB on Linux and in bytes on macOS.
            peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
        else:
            proc.wait(timeout)
            wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return ChildResult(
            proc.returncode,
            wall,
            peak,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def quiet_tf_env() -> dict[str, str]:
    """The environment for children that load TensorFlow, minus its C++ start-up chatter."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


# ----------------------------------------------------------------------------- results


def save_result(name: str, data: dict[str, Any], path: str | Path | None = None) -> Path:
    out = Path(path) if path else RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out


def load_result(name: str, path: str | Path | None = None) -> dict[str, Any]:
    return json.loads((Path(path) if path else RESULTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the benchmark model


@dataclass(frozen=True)
class BenchModel:
    """A trained run folder and the ONNX file exported from it (either may be missing)."""

    run_dir: str | None  # holds model.keras, the training model: needed by the Keras baselines
    model_path: str | None  # the exported .onnx file
    corpus: str
    trained_here: bool  # True when this call trained or exported it (the first, slow call)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run``, ``--model``, ``--corpus`` and ``--result-json``, shared by every benchmark script."""
    parser.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="a trained run folder (default: train one, cached in benchmarks/.cache)",
    )
    parser.add_argument(
        "--model", metavar="MODEL.onnx", help="its exported model (default: export --run, cached)"
    )
    parser.add_argument(
        "--corpus",
        default=str(DEFAULT_CORPUS),
        help="the reference corpus, used to train the default model and for validation documents "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--result-json",
        metavar="PATH",
        help="where to write the figures (default: benchmarks/.cache/results/)",
    )


def get_bench_model(args: argparse.Namespace, *, need_run: bool, need_model: bool) -> BenchModel:
    """The run folder and model file to benchmark, training and exporting one if none is given.

    Without ``--run`` and ``--model``, the default model (one epoch, 256 units, on ``--corpus``) is
    trained with :func:`nextword.train.train` and exported once, then reused from
    ``benchmarks/.cache/default/`` as long as the corpus and settings are unchanged. With ``--run``
    only, the run is exported to ``benchmarks/.cache/exports/``. With ``--model`` only, the Keras
    baselines cannot run (``need_run`` raises).
    """
    corpus = str(Path(args.corpus).resolve())
    run_dir, model_path = args.run, args.model
    trained_here = False
    if run_dir is None and model_path is None:
        if not Path(corpus).is_file():
            raise SystemExit(f"corpus {corpus} not found: pass --corpus FILE, or --run/--model")
        run_dir, model_path, trained_here = _default_model(corpus)
    elif model_path is None and need_model:
        model_path = str(CACHE_DIR / "exports" / f"{Path(run_dir).resolve().name}.onnx")
        if not Path(model_path).is_file() or _mtime(Path(run_dir) / "model.keras") > _mtime(model_path):
            _export(run_dir, model_path)
            trained_here = True
    if need_run and run_dir is None:
        raise SystemExit("this benchmark compares against Keras and needs the run folder: pass --run RUN_DIR")
    if run_dir is not None and not (Path(run_dir) / "model.keras").is_file():
        raise SystemExit(f"{run_dir} holds no trained model.keras")
    if model_path is not None and not Path(model_path).is_file():
        raise SystemExit(f"model file {model_path} does not exist")
    return BenchModel(run_dir, model_path, corpus, trained_here)


def _mtime(path: str | Path) -> float:
    return Path(path).stat().st_mtime if Path(path).exists() else 0.0


def _default_model(corpus: str) -> tuple[str, str, bool]:
    root = CACHE_DIR / "default"
    run_dir, model_path, stamp_path = root / "run", root / "model.onnx", root / "stamp.json"
    from nextword.runtime.model_file import FORMAT_VERSION

    stat = Path(corpus).stat()
    stamp = {"corpus": corpus, "size": stat.st_size, "mtime": stat.st_mtime, **DEFAULT_MODEL_SETTINGS}
    stamp["format_version"] = FORMAT_VERSION  # a model file of an older format is exported again
    old = json.loads(stamp_path.read_text()) if stamp_path.is_file() else None
    if old == stamp and model_path.is_file():
        return str(run_dir), str(model_path), False
    if (
        old is not None
        and {**old, "format_version": FORMAT_VERSION} == stamp
        and (run_dir / "model.keras").is_file()
    ):
        _export(str(run_dir), str(model_path))  # same training, older model format
        stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
        return str(run_dir), str(model_path), False
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train

    settings = dict(DEFAULT_MODEL_SETTINGS)
    epochs = settings.pop("epochs")
    print(f"training the benchmark model on {corpus} ({epochs} epoch, {settings})", file=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    stamp_path.unlink(missing_ok=True)
    train(
        TrainConfig(
            out=str(run_dir),
            corpus=CorpusConfig(paths=(corpus,)),
            model=ModelConfig(**settings),
            epochs=epochs,
            overwrite=True,
            verbose=2,
        )
    )
    _export(str(run_dir), str(model_path))
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    return str(run_dir), str(model_path), True


def _export(run_dir: str, model_path: str) -> None:
    from nextword.export import ExportConfig, export

    print(f"exporting {run_dir} to {model_path}", file=sys.stderr)
    Path(model_path).parent.mkdir(parents=True, exist_ok=True)
    export(ExportConfig(run_dir=run_dir, out=model_path))


def validation_documents(corpus: str, model_info: Any | None = None) -> list[str]:
    """The validation documents of ``corpus``: those the model was held out from, made again from what
    its file records (:func:`nextword.corpus.rebuild_split`: fraction, seed, deduplication), or, without
    a model, those of the split `nextword train` makes by default."""
    from nextword.corpus import CorpusConfig, rebuild_split, split_corpus

    config = CorpusConfig(paths=(corpus,))
    provenance = getattr(model_info, "provenance", None)
    if provenance is not None and provenance.split is not None:
        return rebuild_split(provenance, config).documents()[1]
    return split_corpus(config).documents()[1]


# ----------------------------------------------------------------------------- generation timing


def generation_fields() -> set[str]:
    """The options this version of ``GenerationConfig`` knows (the runtime grows new ones)."""
    from dataclasses import fields

    from nextword.runtime import GenerationConfig

    return {f.name for f in fields(GenerationConfig)}


def sample_rows(logits: Any, rng: Any, temperature: float, banned: Sequence[int]) -> Any:
    """One token id per row of ``logits`` (rows, vocab): the softmax draw the notebook made.

    The benchmark's own sampler, used by the baselines that have no runtime: float64 softmax at
    ``temperature`` (0 is greedy), one inverse-CDF draw per row, ``banned`` ids never chosen.
    """
    import numpy as np

    scores = np.array(logits, dtype=np.float64)  # (B, V)
    scores[:, list(banned)] = -np.inf
    if temperature == 0:
        return np.argmax(scores, axis=-1)
    scores /= temperature
    scores -= scores.max(axis=-1, keepdims=True)
    cdf = np.cumsum(np.exp(scores), axis=-1)  # (B, V)
    u = (1.0 - rng.random((scores.shape[0], 1))) * cdf[:, -1:]  # (B, 1) in (0, total]
    return np.minimum((cdf < u).sum(axis=-1), scores.shape[1] - 1)


def full_length_seeds(model: Any, prompt: str, max_words: int, count: int, temperature: float) -> list[int]:
    """Seeds for which generation runs the full ``max_words`` without the model ending the document
    (the longest runs found when ``count`` full ones are not). For runtimes without ``stop_at_end``."""
    from nextword.runtime import GenerationConfig

    if temperature == 0:  # greedy: every seed gives the same text
        return list(range(count))
    ids = model.prompt_ids(prompt)
    lengths: dict[int, int] = {}
    for seed in range(50 * count):
        config = GenerationConfig(max_words=max_words, temperature=temperature, seed=seed)
        lengths[seed] = len(model.generate_ids(ids, config))
        if sum(n == max_words for n in lengths.values()) >= count:
            break
    return sorted(lengths, key=lambda s: (-lengths[s], s))[:count]


Timer = Callable[[int], tuple[float, int]]  # seed -> (seconds, words produced)


def generate_timer(
    model: Any, prompt: str, max_words: int, temperature: float, count: int
) -> tuple[Timer, list[int], str]:
    """A timer of ``model.generate(prompt, max_words=...)``, the seeds to time it with, and how the
    model is kept from ending the document early (which would time fewer words).

    With ``stop_at_end=False`` where the runtime has it, else on seeds screened to run the full length.
    Either way the timer returns the words actually produced (counted with ``generate_ids`` and the
    same settings, outside the timed call), so ms/word is divided by what was really generated.
    """
    from nextword.runtime import GenerationConfig

    ids = model.prompt_ids(prompt)
    options: dict[str, Any] = {"max_words": max_words, "temperature": temperature}
    if "stop_at_end" in generation_fields():
        options["stop_at_end"] = False
        seeds, how = list(range(count)), "`stop_at_end=False`"
    else:
        seeds, how = full_length_seeds(model, prompt, max_words, count, temperature), "screened seeds"
    model.generate(prompt, **{**options, "max_words": 5}, seed=0)  # warm-up

    def timer(seed: int) -> tuple[float, int]:
        produced = len(model.generate_ids(ids, GenerationConfig(**options, seed=seed)))
        start = time.perf_counter()
        model.generate(prompt, **options, seed=seed)
        return time.perf_counter() - start, produced

    return timer, seeds, how


def interleaved(timers: dict[str, tuple[Timer, Sequence[int]]]) -> dict[str, dict[str, Any]]:
    """Run every timer once per seed, round-robin (round r runs each timer's r-th seed), so that a
    burst of load from other processes hits all of them alike; ms/word per timer."""
    ms: dict[str, list[float]] = {name: [] for name in timers}
    words: dict[str, list[int]] = {name: [] for name in timers}
    for r in range(max(len(seeds) for _, seeds in timers.values())):
        for name, (timer, seeds) in timers.items():
            if r < len(seeds):
                seconds, produced = timer(seeds[r])
                ms[name].append(1e3 * seconds / max(produced, 1))
                words[name].append(produced)
    return {
        name: {"ms_per_word": summarize(ms[name]), "words": words[name], "seeds": list(seeds)}
        for name, (_, seeds) in timers.items()
    }
