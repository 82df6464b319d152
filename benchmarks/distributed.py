"""Distributed training: words/s of one process against two local workers, and what they mean for a
corpus the size of the PatentsView abstract table. Prints Markdown tables.

Each run is ``nextword train`` on the first ``--documents`` documents of ``--corpus`` for ``--epochs``
epochs, in fresh child processes (the workers of a multi-worker run talk over 127.0.0.1):

* ``1 process``: ``--distribute none``, ``--batch-size`` windows a step, on every core;
* ``2 workers sharing the cores``: ``--distribute multi-worker``, each worker ``--batch-size``
  windows (the global batch doubles: weak scaling), both free to use every core;
* ``2 workers, half the batch each``: the one process's global batch, split (strong scaling);
* ``1 process on 1 core`` and ``2 workers, 1 core each`` (pinned with ``sched_setaffinity``): the cost
  of the distributed machinery itself, without the sharing of cores: what a worker per machine pays;

Words/s is the last epoch's ``train_words_per_second`` from the run's ``metrics.json`` (the first epoch
includes tracing the step functions); every word is one predicted next word (the tokenizer's tokens,
punctuation and ``<eod>`` included). Scaling efficiency: words/s over (workers x the matching
one-process words/s). ``--repeat`` runs every configuration that many times, taking turns, and keeps the
best rate of each (the machine may be shared). The estimates printed after the measurements say how
they are derived.

    python -m benchmarks.distributed [--corpus CSV] [--documents 2000] [--epochs 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.childproc import child_env
from benchmarks.environment import machine_info, machine_markdown
from benchmarks.paths import DEFAULT_CORPUS
from benchmarks.report import markdown_table
from benchmarks.results import benchmark_parser, save_result

NAME = "distributed"
PATENTSVIEW_ABSTRACTS = 9_000_000  # rows of PatentsView's g_patent_abstract table, about
NETWORK_BYTES_PER_S = 10e9 / 8  # assumed link between machines: 10 Gbit/s Ethernet
NETWORK_LATENCY_S = 100e-6  # assumed per message
# One GPU, an estimate from three bounds (see gpu_estimate): its arithmetic, assumed to sustain a
# quarter of an NVIDIA T4's 65 TFLOP/s float16 peak (small LSTMs rarely reach more); the time of a
# step, at least 3 kernels per time step in sequence (the LSTM's forward and backward passes, ~10 us
# each) plus 2 ms of host work (the Python loop and dispatch); and what the tf.data pipeline of
# training windows delivers on this 2-core machine, measured (docs/scale.md, streaming_memory.py).
GPU_FLOPS = 65e12 * 0.25
GPU_KERNEL_S, GPU_HOST_STEP_S = 10e-6, 2e-3
PIPELINE_WORDS_PER_S = 2.4e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("distributed", __doc__)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="default: %(default)s")
    parser.add_argument("--documents", type=int, default=2000, help="documents used (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per step (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=50, help="words per window (default: %(default)s)")
    parser.add_argument("--units", type=int, default=64, help="LSTM units (default: %(default)s)")
    parser.add_argument("--embedding-dim", type=int, default=100, help="default: %(default)s")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run at most")
    parser.add_argument("--result-json", metavar="PATH", help="default: benchmarks/.cache/results/")
    return parser.parse_args(argv)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass(frozen=True)
class Setup:
    """One configuration of the benchmark."""

    label: str
    workers: int
    batch: int  # windows per worker and step
    pinned: bool = False  # each process on a core of its own (cores 0, 1, ...)


def setups(args: argparse.Namespace) -> list[Setup]:
    b = args.batch_size
    return [
        Setup("1 process", 1, b),
        Setup("2 workers sharing the cores", 2, b),
        Setup("2 workers sharing the cores, half the batch each", 2, b // 2),
        Setup("1 process on 1 core", 1, b, pinned=True),
        Setup("2 workers, 1 core each", 2, b, pinned=True),
    ]


def run(args: argparse.Namespace, corpus: Path, out: Path, setup: Setup) -> dict[str, Any]:
    """Train once as ``setup`` says; the run's figures."""
    argv = [
        sys.executable, "-m", "nextword.cli.main", "-q", "train", str(corpus), "--out", str(out),
        "--epochs", str(args.epochs), "--batch-size", str(setup.batch), "--seq-len", str(args.seq_len),
        "--lstm-units", str(args.units), "--embedding-dim", str(args.embedding_dim),
        "--patience", "0", "--verbose", "0",
    ]  # fmt: skip
    env = child_env()
    if setup.workers > 1:
        argv += ["--distribute", "multi-worker"]
        cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(setup.workers)]}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as logs:
        children = []
        for index in range(setup.workers):
            if setup.workers > 1:
                task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
                env = {**env, "TF_CONFIG": json.dumps(task)}
            cores = {index % (os.cpu_count() or 1)} if setup.pinned else None
            log = open(Path(logs) / f"{index}.log", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
            child = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda c=cores: os.sched_setaffinity(0, c)) if cores else None,
            )
            children.append((child, log))
        codes = []
        for child, log in children:
            try:
                codes.append(child.wait(timeout=max(args.timeout - (time.perf_counter() - started), 1)))
            except subprocess.TimeoutExpired:
                child.kill()
                codes.append(child.wait())
            log.close()
        if any(codes):
            tails = "\n".join((Path(logs) / f"{i}.log").read_text()[-2000:] for i in range(setup.workers))
            raise RuntimeError(f"{setup.label} failed ({codes}):\n{tails}")
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    config = json.loads((out / "config.json").read_text())
    return {
        "label": setup.label,
        "workers": setup.workers,
        "batch_per_worker": setup.batch,
        "pinned": setup.pinned,
        "global_batch": config["training"]["global_batch"],
        "words_per_s": epochs[-1]["train_words_per_second"],
        "epoch_s": epochs[-1]["seconds"],
        "first_epoch_s": epochs[0]["seconds"],
        "wall_s": time.perf_counter() - started,
        "val_loss": epochs[-1]["val_loss"],
        "data": config["data"],
        "vocab_size": config["vocab_size"],
    }


def subset(corpus: str, documents: int, folder: Path) -> tuple[Path, int, int]:
    """The first ``documents`` documents of ``corpus`` as a plain-text corpus in ``folder``, and the
    (documents, whitespace-separated words) of the whole corpus."""
    from nextword.train import CorpusConfig, load_documents

    texts = load_documents([corpus], CorpusConfig(paths=(corpus,)))
    path = folder / "corpus.txt"
    path.write_text("\n\n".join(" ".join(t.split()) for t in texts[:documents]) + "\n", encoding="utf-8")
    return path, len(texts), sum(len(t.split()) for t in texts)


def training_flops_per_word(units: int, embedding: int, vocab: int) -> float:
    """Multiply-adds of one word through the LSTM and the output layer, x2 for FLOPs, x3 for the
    backward pass (the usual rule): an estimate that leaves out the embedding lookup and the softmax."""
    return 6.0 * (4 * units * (embedding + units + 1) + units * vocab)


def estimates(
    results: dict[str, dict[str, Any]], args: argparse.Namespace, docs: int, words: int
) -> dict[str, Any]:
    """Time per epoch of PatentsView's abstracts here, on N machines like this one and on one GPU."""
    one = results["1 process"]
    data, vocab = one["data"], one["vocab_size"]
    tokens_per_doc = (data["train_words"] + data["val_words"]) / data["documents"]
    train_share = data["train_words"] / (data["train_words"] + data["val_words"])
    epoch_tokens = PATENTSVIEW_ABSTRACTS * tokens_per_doc * train_share  # training tokens of one epoch
    flops = training_flops_per_word(args.units, args.embedding_dim, vocab)
    params = (
        vocab * args.embedding_dim
        + 4 * args.units * (args.embedding_dim + args.units + 1)
        + (args.units + 1) * vocab
    )
    pinned_one, pinned_two = results["1 process on 1 core"], results["2 workers, 1 core each"]
    machinery = pinned_two["words_per_s"] / (2 * pinned_one["words_per_s"])  # measured, cores not shared
    step_words = args.batch_size * args.seq_len
    rows = []
    for n in (2, 4, 8, 16, 64):
        # A worker per machine like this one. Per step, a ring all-reduce of every float32 gradient
        # sends 2 (n-1)/n of the model in 2 (n-1) messages (the sparse embedding gradient counted
        # dense). Compute: the one-process rate measured here (an upper bound: the network is the only
        # cost), or that rate times the efficiency of two pinned workers (the measured cost of the
        # distributed machinery on loopback, which a busy machine inflates).
        network = 2 * (n - 1) / n * 4 * params / NETWORK_BYTES_PER_S + 2 * (n - 1) * NETWORK_LATENCY_S
        rates = [
            n * step_words / (step_words / r + network)
            for r in (one["words_per_s"], one["words_per_s"] * machinery)
        ]
        rows.append(
            {
                "machines": n,
                "words_per_s": rates,
                "efficiency": [r / (n * one["words_per_s"]) for r in rates],
                "epoch_h": [epoch_tokens / r / 3600 for r in rates],
            }
        )
    gpus = {batch: gpu_estimate(flops, batch, args.seq_len, epoch_tokens) for batch in (64, 256)}
    return {
        "documents": docs,
        "words_per_document": words / docs,
        "tokens_per_document": tokens_per_doc,
        "patentsview_abstracts": PATENTSVIEW_ABSTRACTS,
        "patentsview_epoch_tokens": epoch_tokens,
        "this_machine_epoch_h": epoch_tokens / one["words_per_s"] / 3600,
        "machinery_efficiency": machinery,
        "flops_per_word": flops,
        "cpu_flops": flops * one["words_per_s"],
        "parameters": params,
        "machines": rows,
        "gpus": gpus,
    }


def gpu_estimate(flops: float, batch: int, seq_len: int, epoch_tokens: float) -> dict[str, Any]:
    """One GPU's words/s at ``batch`` windows a step: the least of its three bounds (see GPU_FLOPS)."""
    bounds = {
        "arithmetic": GPU_FLOPS / flops,
        "step latency": batch * seq_len / (3 * seq_len * GPU_KERNEL_S + GPU_HOST_STEP_S),
        "input pipeline": PIPELINE_WORDS_PER_S,
    }
    limit = min(bounds, key=lambda k: bounds[k])
    return {
        "bounds": bounds,
        "limit": limit,
        "words_per_s": bounds[limit],
        "epoch_h": epoch_tokens / bounds[limit] / 3600,
    }


def report(
    results: dict[str, dict[str, Any]], est: dict[str, Any], info: dict[str, Any], args: argparse.Namespace
) -> str:
    """The machine, the measured runs, and the estimates for PatentsView's abstracts."""
    return "\n".join(
        [
            machine_markdown(info),
            "",
            runs_table(results),
            "",
            f"Corpus: {est['documents']:,} documents, {est['words_per_document']:.0f} words and "
            f"{est['tokens_per_document']:.0f} tokens per document (measured). PatentsView's abstract "
            f"table: about {est['patentsview_abstracts']:,} abstracts, so about "
            f"{est['patentsview_epoch_tokens'] / 1e9:.2f} billion training tokens per epoch (estimate: this "
            "corpus's tokens per abstract and training share).",
            "",
            estimates_table(results, est),
            "",
            f"Model: {est['parameters']:,} parameters, about {est['flops_per_word'] / 1e6:.1f} MFLOP per "
            "trained word (6 x multiply-adds of the LSTM and output layer); this CPU sustains "
            f"{est['cpu_flops'] / 1e9:.1f} GFLOP/s on it. Two pinned workers reach "
            f"{est['machinery_efficiency']:.0%} of twice one pinned process. GPU bounds (words/s): "
            + "; ".join(
                f"{batch} windows a step: " + ", ".join(f"{k} {v:,.0f}" for k, v in g["bounds"].items())
                for batch, g in est["gpus"].items()
            )
            + ".",
        ]
    )


def runs_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per configuration measured, with its scaling efficiency."""
    base = {False: results["1 process"]["words_per_s"], True: results["1 process on 1 core"]["words_per_s"]}
    rows = [
        [
            r["label"],
            r["batch_per_worker"],
            r["global_batch"],
            f"{r['words_per_s']:,.0f}",
            f"{r['words_per_s'] / (r['workers'] * base[r['pinned']]):.0%}",
            f"{r['epoch_s']:.1f}",
            f"{r['first_epoch_s']:.1f}",
            f"{r['val_loss']:.3f}",
        ]
        for r in results.values()
    ]
    headers = ["run", "batch per worker", "global batch", "words/s", "scaling efficiency", "epoch s"]
    return markdown_table([*headers, "first epoch s", "val loss"], rows, "lrrrrrrr")


def estimates_table(results: dict[str, dict[str, Any]], est: dict[str, Any]) -> str:
    """Hours per PatentsView epoch: measured here, estimated for N machines and for one GPU."""
    one = results["1 process"]["words_per_s"]
    rows = [["this machine, 1 process", "measured rate", f"{one:,.0f}", f"{est['this_machine_epoch_h']:.1f}"]]
    for r in est["machines"]:
        high, low = r["words_per_s"]
        rows.append(
            [
                f"{r['machines']} machines like this one",
                f"estimate: {r['efficiency'][1]:.0%}-{r['efficiency'][0]:.0%} efficiency",
                f"{low:,.0f}-{high:,.0f}",
                f"{r['epoch_h'][0]:.1f}-{r['epoch_h'][1]:.1f}",
            ]
        )
    for batch, g in est["gpus"].items():
        rows.append(
            [
                f"one GPU, {batch} windows a step",
                f"estimate, bound by the {g['limit']}",
                f"{g['words_per_s']:,.0f}",
                f"{g['epoch_h']:.2f}",
            ]
        )
    return markdown_table(["where", "figure", "words/s", "hours per PatentsView epoch"], rows, "llrr")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.corpus).is_file():
        print(f"corpus {args.corpus} not found: pass --corpus", file=sys.stderr)
        return 2
    info = machine_info()
    best: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        corpus, docs, words = subset(args.corpus, args.documents, Path(scratch))
        for turn in range(args.repeat):
            for i, setup in enumerate(setups(args)):
                print(f"{setup.label} (turn {turn + 1}): training...", file=sys.stderr, flush=True)
                result = run(args, corpus, Path(scratch) / f"run{turn}-{i}", setup)
                print(
                    f"  {result['words_per_s']:,.0f} words/s, {result['wall_s']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                if setup.label not in best or result["words_per_s"] > best[setup.label]["words_per_s"]:
                    best[setup.label] = result
    est = estimates(best, args, docs, words)
    save_result(
        NAME, {"machine": info, "args": vars(args), "results": best, "estimates": est}, args.result_json
    )
    print(report(best, est, info, args))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
