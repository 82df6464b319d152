"""Start-up and footprint: what it costs to get one word out of a fresh process, and what it installs.

* Cold start: the wall time of a fresh ``python -c ...`` process, measured from outside, that imports
  the runtime, loads the model and generates one word; against a process that only imports
  TensorFlow, and one that does the notebook's equivalent (load ``model.keras``, one ``predict``).
  One untimed run first, so every timed run finds the files in the page cache.
* Peak RSS of each of those processes, and of a runtime process that generates 200 words.
* Disk: ``site-packages`` of a fresh venv holding ``pip install <repo>`` (the runtime) against one with
  ``pip install "<repo>[train]"``. Creating them downloads TensorFlow, so the result is cached in
  ``benchmarks/.cache/venv-sizes.json`` (``--venv-sizes refresh`` measures again, ``skip`` leaves it out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_model import BenchModel, add_model_arguments, get_bench_model
from benchmarks.childproc import child_env, run_child
from benchmarks.decoding import PROMPT
from benchmarks.environment import machine_info
from benchmarks.paths import CACHE_DIR, REPO
from benchmarks.report import fmt_bytes, fmt_stat, markdown_table
from benchmarks.results import benchmark_parser, finish, write_text
from benchmarks.timing import summarize

NAME = "startup"
COLD_START_TARGET_S = 0.5
VENV_CACHE = CACHE_DIR / "venv-sizes.json"
# Top-level entries of the repository that a package install does not need.
NOT_PACKAGED = {
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "runs",
    "benchmarks",
    "docs",
    "tests",
    ".ci",
    "scripts",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("startup", __doc__)
    add_model_arguments(parser)
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs per light process (default: %(default)s)"
    )
    parser.add_argument(
        "--tf-repeats", type=int, default=5, help="timed runs per TensorFlow process (default: %(default)s)"
    )
    parser.add_argument(
        "--venv-sizes",
        choices=("auto", "refresh", "skip"),
        default="auto",
        help="venv disk sizes: reuse the cached figures when the package metadata is unchanged (auto), "
        "measure again (refresh, several minutes), or leave out (default: %(default)s)",
    )
    return parser.parse_args(argv)


def processes(model_path: str, run_dir: str | None) -> dict[str, tuple[str, str]]:
    """Label and ``python -c`` code of each process measured."""
    prompt = json.dumps(PROMPT)
    load = f"from nextword.runtime import load; m = load({model_path!r}); "
    out = {
        "python": ("`python -c pass` (the interpreter alone)", "pass"),
        "runtime": (
            "nextword runtime: import, load the model, generate 1 word",
            load + f"m.generate({prompt}, max_words=1, seed=0)",
        ),
        "runtime_200": (
            "nextword runtime: the same, generating 200 words",
            load + f"m.generate({prompt}, max_words=200, seed=0)",
        ),
        "tensorflow": ("`import tensorflow` only", "import tensorflow"),
    }
    if run_dir:
        keras_model = str(Path(run_dir) / "model.keras")
        out["keras"] = (
            "the notebook's way: import Keras, load `model.keras`, `predict` 1 word",
            "import numpy as np; from nextword.train.model import load_keras_model; "
            f"m = load_keras_model({keras_model!r}); "
            "m.predict(np.zeros((1, 50), 'int32'), verbose=0)",
        )
    return out


BREAKDOWN = """
import json, sys, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import onnxruntime
t2 = time.perf_counter()
from nextword.runtime import load
t3 = time.perf_counter()
m = load(sys.argv[1])
t4 = time.perf_counter()
m.generate(sys.argv[2], max_words=1, seed=0)
t5 = time.perf_counter()
print(json.dumps({"import numpy": t1 - t0, "import onnxruntime": t2 - t1, "import nextword.runtime": t3 - t2,
                  "load the model": t4 - t3, "generate 1 word": t5 - t4}))
"""


def measure_breakdown(model_path: str, repeats: int) -> dict[str, Any]:
    """Where the runtime's cold start goes, timed inside fresh processes (interpreter start excluded)."""
    command = [sys.executable, "-c", BREAKDOWN, model_path, PROMPT]
    env = installed_env()
    run_child(command, env=env)
    phases: dict[str, list[float]] = {}
    for _ in range(repeats):
        done = run_child(command, env=env)
        if done.returncode != 0:
            return {}
        for phase, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
            phases.setdefault(phase, []).append(seconds)
    return {phase: summarize(values) for phase, values in phases.items()}


def installed_env() -> dict[str, str]:
    """:func:`child_env` for a process that imports packages as installed ones run: from their bytecode
    cache, which pip writes at install time. ``PYTHONDONTWRITEBYTECODE`` (set in some containers and CI
    images) is left out, so the untimed first run of each process writes the cache of this checkout's
    sources; with it, every timed run would compile nextword's modules again (over half of
    ``import nextword.runtime`` on a slow machine), a cost no installed copy pays."""
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure_processes(args: argparse.Namespace, bench: BenchModel) -> dict[str, Any]:
    env = installed_env()
    results = {}
    assert bench.model_path is not None  # get_bench_model(need_model=True)
    for key, (label, code) in processes(bench.model_path, bench.run_dir).items():
        print(f"startup: {key}", file=sys.stderr, flush=True)
        heavy = key in ("tensorflow", "keras")
        repeats = args.tf_repeats if heavy else args.repeats
        command = [sys.executable, "-c", code]
        warm = run_child(command, env=env)  # untimed: fills the page cache
        if warm.returncode != 0:
            results[key] = {"label": label, "failed": True, "error": warm.stderr.strip().splitlines()[-3:]}
            continue
        runs = [run_child(command, env=env) for _ in range(repeats)]
        results[key] = {
            "label": label,
            "wall_s": summarize([r.wall_s for r in runs]),
            "peak_rss_bytes": summarize([r.peak_rss_bytes or 0 for r in runs]),
            "failed": any(r.returncode for r in runs),
        }
    return results


# ----------------------------------------------------------------------------- venv sizes


def _packaging_key() -> dict[str, str]:
    """What the venv sizes depend on: the Python version and the runtime's and ``train``'s requirements
    (the whole pyproject.toml where ``tomllib`` is missing, before Python 3.11)."""
    text = (REPO / "pyproject.toml").read_bytes()
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            project = tomllib.loads(text.decode("utf-8"))["project"]
            text = json.dumps([project["dependencies"], project["optional-dependencies"]["train"]]).encode()
        except KeyError:
            pass
    return {"python": sys.version.split()[0], "requirements_sha256": hashlib.sha256(text).hexdigest()[:16]}


def venv_sizes(mode: str) -> dict[str, Any] | None:
    if mode == "skip":
        return None
    key = _packaging_key()
    if mode == "auto" and VENV_CACHE.is_file():
        cached = json.loads(VENV_CACHE.read_text())
        if cached.get("key") == key:
            return {**cached, "cached": True}
    print("startup: creating venvs to measure their size (downloads TensorFlow)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="nextword-venvs-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO, src, ignore=_ignore_unpackaged, symlinks=True)
        sizes = {}
        for name, spec in (("runtime", str(src)), ("train", f"{src}[train]")):
            venv = Path(tmp) / name
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
            bare = _site_packages_size(venv)
            start = time.perf_counter()
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                return {"failed": True, "error": done.stderr.strip().splitlines()[-5:], "key": key}
            sizes[name] = {
                **_site_packages_size(venv),
                "bare_venv_bytes": bare["bytes"],
                "install_seconds": time.perf_counter() - start,
            }
    result = {"key": key, "measured": time.strftime("%Y-%m-%d"), "venvs": sizes}
    VENV_CACHE.parent.mkdir(parents=True, exist_ok=True)
    write_text(VENV_CACHE, json.dumps(result, indent=2) + "\n")
    return {**result, "cached": False}


def _ignore_unpackaged(directory: str, names: list[str]) -> set[str]:
    if Path(directory).resolve() != REPO:
        return {n for n in names if n == "__pycache__"}
    return {n for n in names if n in NOT_PACKAGED or n.startswith(".") or n.endswith((".egg-info", ".onnx"))}


def _site_packages_size(venv: Path) -> dict[str, Any]:
    """Apparent size of the venv's site-packages, its distributions and the five largest of them."""
    candidates = list(venv.glob("lib/python*/site-packages")) + list(venv.glob("Lib/site-packages"))
    root = candidates[0]
    total, per_entry = 0, {}
    for entry in root.iterdir():
        size = _tree_size(entry)
        total += size
        per_entry[entry.name] = size
    dists = sorted(p.name for p in root.glob("*.dist-info"))
    largest = sorted(
        ((k, v) for k, v in per_entry.items() if not k.endswith(".dist-info")), key=lambda kv: -kv[1]
    )[:5]
    return {"bytes": total, "distributions": len(dists), "largest": largest}


def _tree_size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# ----------------------------------------------------------------------------- report


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The cold-start target, with the measured value and the reason it was met or not."""
    name = f"cold start (fresh process: import, load, 1 word) ≤ {COLD_START_TARGET_S:g} s"
    procs = result["processes"]
    runtime = procs.get("runtime", {})
    if "wall_s" not in runtime:
        return [{"target": name, "measured": "failed", "met": False, "why": "the runtime process failed"}]
    value = runtime["wall_s"]["median"]
    parts = []
    if "python" in procs and "wall_s" in procs["python"]:
        parts.append(f"interpreter {1e3 * procs['python']['wall_s']['median']:.0f} ms")
    parts += [f"{phase} {1e3 * stat['median']:.0f} ms" for phase, stat in result.get("breakdown", {}).items()]
    why = "; ".join(parts)
    if "tensorflow" in procs and "wall_s" in procs["tensorflow"]:
        tf = procs["tensorflow"]["wall_s"]["median"]
        why += f". Importing TensorFlow alone takes {tf:.2f} s ({tf / value:.0f}× as long)"
    if value > COLD_START_TARGET_S:
        why += ". Over the target on this machine; the figure is noisy when other jobs share the CPU"
    return [{"target": name, "measured": f"{value:.2f} s", "met": value <= COLD_START_TARGET_S, "why": why}]


def render(result: dict[str, Any], img: str | None = None) -> str:
    procs, settings = result["processes"], result["settings"]
    rows = []
    for proc in procs.values():
        if proc.get("failed") and "wall_s" not in proc:
            rows.append([proc["label"], "failed", "", ""])
            continue
        rows.append(
            [
                proc["label"],
                fmt_stat(proc["wall_s"]),
                proc["wall_s"]["n"],
                fmt_bytes(proc["peak_rss_bytes"]["median"]),
            ]
        )
    parts = [
        f"Wall time of a fresh `python -c` process measured from outside, median of {settings['repeats']} "
        f"runs ({settings['tf_repeats']} for the TensorFlow ones) with the interquartile range, after one "
        "untimed run that warms the page cache and writes Python's bytecode cache (as installing a package "
        "does; `PYTHONDONTWRITEBYTECODE` is unset for these processes); peak RSS is the median of the "
        "processes' maximum resident memory.",
        "",
        markdown_table(["process", "wall time, s (spread)", "runs", "peak RSS"], rows),
    ]
    t = targets(result)[0]
    parts += ["", f"Target: {t['target']}: **{t['measured']}** ({'met' if t['met'] else 'not met'})."]
    if result.get("breakdown"):
        rows = [[phase, f"{1e3 * stat['median']:.0f}"] for phase, stat in result["breakdown"].items()]
        parts += [
            "",
            "Where the runtime's cold start goes, timed inside the process (ms, median; the interpreter's "
            "own start-up is the `python -c pass` row above):",
            "",
            markdown_table(["phase", "ms"], rows),
        ]
    sizes = result.get("venv_sizes")
    if sizes and not sizes.get("failed"):
        venvs = sizes["venvs"]
        rows = []
        labels = {"runtime": "`pip install nextword` (runtime)", "train": '`pip install "nextword[train]"`'}
        for name, v in venvs.items():
            largest = ", ".join(f"{k} {fmt_bytes(b)}" for k, b in v["largest"][:3])
            rows.append(
                [
                    labels[name],
                    fmt_bytes(v["bytes"]),
                    v["distributions"],
                    f"{v['install_seconds']:.0f} s",
                    largest,
                ]
            )
        ratio = venvs["train"]["bytes"] / venvs["runtime"]["bytes"]
        when = f"measured {sizes['measured']}" + (", cached" if sizes.get("cached") else "")
        parts += [
            "",
            f"**Disk**: `site-packages` of a fresh venv (apparent size, pip included: a bare venv holds "
            f"{fmt_bytes(venvs['runtime']['bare_venv_bytes'])}); {when}. The runtime install is "
            f"{ratio:.0f}× smaller.",
            "",
            markdown_table(["venv", "site-packages", "distributions", "install time", "largest"], rows),
        ]
    elif sizes:
        parts += ["", f"Venv sizes could not be measured: {' '.join(sizes.get('error', []))}"]
    else:
        parts += ["", "Venv sizes were skipped (`--venv-sizes skip`)."]
    return "\n".join(parts)


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = get_bench_model(args, need_run=False, need_model=True)
    assert bench.model_path is not None  # need_model=True
    result = {
        "name": NAME,
        "settings": {"repeats": args.repeats, "tf_repeats": args.tf_repeats},
        "model": bench.to_dict(),
        "machine": machine_info(),
        "processes": measure_processes(args, bench),
        "breakdown": measure_breakdown(bench.model_path, args.repeats),
        "venv_sizes": venv_sizes(args.venv_sizes),
    }
    return finish(NAME, result, targets, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
