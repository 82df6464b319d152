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
* ``tiny model``: the same loop and batches with an LSTM of 8 units: the per-step cost of the loop and
  its input pipeline, which bounds a GPU's rate from the host side.

Words/s is the last epoch's ``train_words_per_second`` from the run's ``metrics.json`` (the first epoch
includes tracing the step functions); every word is one predicted next word (the tokenizer's tokens,
punctuation and ``<eod>`` included). Scaling efficiency: words/s over (workers x the matching
one-process words/s). ``--repeat`` runs every configuration that many times, taking turns, and keeps the
best rate of each (the machine may be shared). The estimates printed after the measurements say how
they are derived.

    python benchmarks/distributed.py [--corpus CSV] [--documents 2000] [--epochs 2] [--repeat 1]
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

import common

NAME = "distributed"
PATENTSVIEW_ABSTRACTS = 9_000_000  # rows of PatentsView's g_patent_abstract table, about
NETWORK_BYTES_PER_S = 10e9 / 8  # assumed link between machines: 10 Gbit/s Ethernet
NETWORK_LATENCY_S = 100e-6  # assumed per message
# Assumed sustained throughput of one GPU on this model with mixed precision (a quarter of the
# tensor-core peak; small LSTMs rarely reach more): NVIDIA T4 65 TFLOP/s fp16 peak, A100 312.
GPU_FLOPS = {"T4 (25% of 65 TFLOP/s)": 65e12 * 0.25, "A100 (25% of 312 TFLOP/s)": 312e12 * 0.25}
# What the tf.data pipeline of training windows delivers on this project's 2-core machine, from
# docs/scale.md (benchmarks/streaming_memory.py, one epoch of windows, 100 million words).
PIPELINE_WORDS_PER_S = 2.4e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default=str(common.DEFAULT_CORPUS), help="default: %(default)s")
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
    units: int | None = None  # LSTM units, when not --units


def setups(args: argparse.Namespace) -> list[Setup]:
    b = args.batch_size
    return [
        Setup("1 process", 1, b),
        Setup("2 workers sharing the cores", 2, b),
        Setup("2 workers sharing the cores, half the batch each", 2, b // 2),
        Setup("1 process on 1 core", 1, b, pinned=True),
        Setup("2 workers, 1 core each", 2, b, pinned=True),
        Setup("tiny model (8 units), 1 process", 1, b, units=8),
    ]


def run(args: argparse.Namespace, corpus: Path, out: Path, setup: Setup) -> dict[str, Any]:
    """Train once as ``setup`` says; the run's figures."""
    argv = [
        sys.executable, "-m", "nextword.cli.main", "-q", "train", str(corpus), "--out", str(out),
        "--epochs", str(args.epochs), "--batch-size", str(setup.batch), "--seq-len", str(args.seq_len),
        "--lstm-units", str(setup.units or args.units), "--embedding-dim", str(args.embedding_dim),
        "--patience", "0", "--verbose", "0",
    ]  # fmt: skip
    env = common.quiet_tf_env()
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
            log = open(Path(logs) / f"{index}.log", "w")  # noqa: SIM115 (closed below)
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
        "units": setup.units or args.units,
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
        # A worker per machine like this one: the rate measured here, times the efficiency of two pinned
        # workers, less the network's share of a step: a ring all-reduce of every float32 gradient
        # sends 2 (n-1)/n of the model in 2 (n-1) messages (the sparse embedding gradient counted dense).
        compute = step_words / (one["words_per_s"] * machinery)
        network = 2 * (n - 1) / n * 4 * params / NETWORK_BYTES_PER_S + 2 * (n - 1) * NETWORK_LATENCY_S
        rate = n * step_words / (compute + network)
        rows.append(
            {
                "machines": n,
                "words_per_s": rate,
                "efficiency": rate / (n * one["words_per_s"]),
                "epoch_h": epoch_tokens / rate / 3600,
            }
        )
    tiny = results["tiny model (8 units), 1 process"]
    step_s = step_words / tiny["words_per_s"]  # the loop's own cost per step, measured with a tiny model
    gpus = {}
    for name, peak in GPU_FLOPS.items():
        bounds = {
            "compute": peak / flops,
            "input pipeline": PIPELINE_WORDS_PER_S,
            "loop (batch 256)": 256 * args.seq_len / step_s,
        }
        limit = min(bounds, key=bounds.get)
        gpus[name] = {
            "bounds": bounds,
            "limit": limit,
            "words_per_s": bounds[limit],
            "epoch_h": epoch_tokens / bounds[limit] / 3600,
        }
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
        "loop_step_s": step_s,
        "machines": rows,
        "gpus": gpus,
    }


def report(
    results: dict[str, dict[str, Any]], est: dict[str, Any], info: dict[str, Any], args: argparse.Namespace
) -> str:
    lines = [common.machine_markdown(info), ""]
    base = {False: results["1 process"]["words_per_s"], True: results["1 process on 1 core"]["words_per_s"]}
    rows = [
        [
            r["label"],
            r["batch_per_worker"],
            r["global_batch"],
            f"{r['words_per_s']:,.0f}",
            "-"
            if r["units"] != args.units
            else f"{r['words_per_s'] / (r['workers'] * base[r['pinned']]):.0%}",
            f"{r['epoch_s']:.1f}",
            f"{r['first_epoch_s']:.1f}",
            f"{r['val_loss']:.3f}",
        ]
        for r in results.values()
    ]
    headers = [
        "run",
        "batch per worker",
        "global batch",
        "words/s",
        "scaling efficiency",
        "epoch s",
        "first epoch s",
        "val loss",
    ]
    lines += [common.markdown_table(headers, rows, "lrrrrrrr"), ""]
    lines.append(
        f"Corpus: {est['documents']:,} documents, {est['words_per_document']:.0f} words and "
        f"{est['tokens_per_document']:.0f} tokens per document (measured). PatentsView's abstract "
        f"table: about {est['patentsview_abstracts']:,} abstracts, so about "
        f"{est['patentsview_epoch_tokens'] / 1e9:.2f} billion training tokens per epoch (estimate: this "
        "corpus's tokens per abstract and training share)."
    )
    lines.append("")
    rows = [
        [
            "this machine, 1 process",
            "measured rate",
            f"{results['1 process']['words_per_s']:,.0f}",
            f"{est['this_machine_epoch_h']:.1f}",
        ]
    ]
    for r in est["machines"]:
        rows.append(
            [
                f"{r['machines']} machines like this one",
                f"estimate, {r['efficiency']:.0%} efficiency",
                f"{r['words_per_s']:,.0f}",
                f"{r['epoch_h']:.1f}",
            ]
        )
    for name, g in est["gpus"].items():
        rows.append(
            [
                f"one GPU: {name}",
                f"estimate, bound by the {g['limit']}",
                f"{g['words_per_s']:,.0f}",
                f"{g['epoch_h']:.2f}",
            ]
        )
    lines.append(
        common.markdown_table(["where", "figure", "words/s", "hours per PatentsView epoch"], rows, "llrr")
    )
    lines.append("")
    g = next(iter(est["gpus"].values()))["bounds"]
    lines.append(
        f"Model: {est['parameters']:,} parameters, about {est['flops_per_word'] / 1e6:.1f} MFLOP per "
        "trained word (6 x multiply-adds of the LSTM and output layer); this CPU sustains "
        f"{est['cpu_flops'] / 1e9:.1f} GFLOP/s on it. Two pinned workers reach "
        f"{est['machinery_efficiency']:.0%} of twice one pinned process. The loop costs "
        f"{est['loop_step_s'] * 1e3:.0f} ms a step with a tiny model; GPU bounds (words/s): "
        + "; ".join(f"{k} {v:,.0f}" for k, v in g.items())
        + " (the first GPU's)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.corpus).is_file():
        print(f"corpus {args.corpus} not found: pass --corpus", file=sys.stderr)
        return 2
    info = common.machine_info()
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
    common.save_result(
        NAME, {"machine": info, "args": vars(args), "results": best, "estimates": est}, args.result_json
    )
    print(report(best, est, info, args))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
