"""Child processes: run one and measure its wall time and peak resident memory, or run a benchmark
module of this package (``python -m benchmarks.NAME``) in a fresh interpreter, for instance to time the
runtime in a process that never imports TensorFlow (:func:`figures_without_tensorflow`)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.paths import REPO

__all__ = [
    "CHILD_JSON",
    "ChildResult",
    "add_child_json_argument",
    "child_env",
    "figures_without_tensorflow",
    "module_command",
    "peak_rss_self",
    "run_child",
    "snippet_json",
    "write_child_json",
]

CHILD_JSON = "--child-json"  # the hidden option of a benchmark run as the child of its own parent


@dataclass(frozen=True)
class ChildResult:
    """How a child process ended: exit status, wall time, peak resident memory and its output."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int | None  # None where the platform cannot tell (Windows)
    stdout: str
    stderr: str


def child_env(*, quiet_tf: bool = True) -> dict[str, str]:
    """This process's environment for a child: the repository on ``PYTHONPATH`` (so ``-m benchmarks...``
    works from any folder) and, with ``quiet_tf``, TensorFlow's C++ start-up chatter turned off."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    if quiet_tf:
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def module_command(module: str, *args: str) -> list[str]:
    """The command that runs benchmark ``module`` (``"benchmarks.training"``) with ``args``."""
    return [sys.executable, "-m", module, *args]


def snippet_json(code: str, *args: object, name: str, timeout: float | None = None) -> Any:
    """Run Python ``code`` in a fresh interpreter with ``args`` (as ``sys.argv[1:]``) and return the
    JSON value of its last line of output; a child that fails stops the benchmark (``SystemExit``
    naming ``name``, with the end of the child's error output)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_child(
    command: Sequence[str], *, env: dict[str, str] | None = None, timeout: float | None = None
) -> ChildResult:
    """Run ``command`` and measure its wall time and peak RSS (``ru_maxrss`` of that one child).

    The output goes to temporary files rather than pipes so the parent can ``wait4`` on the exact
    process and read its own resource usage, not the sum over all children. ``env`` defaults to this
    process's environment. A child still running after ``timeout`` seconds is killed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), stdout=out, stderr=err, env=env)
        peak = None
        if hasattr(os, "wait4"):
            status, usage = _wait4(proc, start, timeout)
            proc.returncode = os.waitstatus_to_exitcode(status)
            # ru_maxrss is in KiB on Linux and in bytes on macOS.
            peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
        else:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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


def _wait4(proc: subprocess.Popen, start: float, timeout: float | None) -> tuple[int, resource.struct_rusage]:
    if timeout is None:
        _, status, usage = os.wait4(proc.pid, 0)
        return status, usage
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage
        if time.perf_counter() - start > timeout:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            return status, usage
        time.sleep(0.01)


def peak_rss_self() -> int:
    """This process's peak resident memory in bytes, so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024


def add_child_json_argument(parser: argparse.ArgumentParser) -> None:
    """The hidden :data:`CHILD_JSON` option: measure only the child's part and write it to this file."""
    parser.add_argument(CHILD_JSON, dest="child_json", help=argparse.SUPPRESS)


def write_child_json(path: str, figures: dict[str, Any]) -> None:
    """Write a child's ``figures`` for :func:`figures_without_tensorflow`, saying whether TensorFlow
    was imported after all."""
    Path(path).write_text(
        json.dumps({"figures": figures, "tensorflow_loaded": "tensorflow" in sys.modules}), encoding="utf-8"
    )


def figures_without_tensorflow(module: str, *args: str) -> dict[str, Any]:
    """Run benchmark ``module`` with ``args`` and :data:`CHILD_JSON` in a fresh interpreter that never
    imports TensorFlow, and return the figures it wrote (:func:`write_child_json`).

    A process that has loaded TensorFlow runs onnxruntime's short steps slower and less evenly than an
    application of the runtime would (it never imports TensorFlow), so the benchmarks that compare
    against Keras time the runtime in such a child. Its progress goes to this process's stderr; a child
    that fails, or imported TensorFlow, ends this process with the reason.
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        command = [*module_command(module, *args), CHILD_JSON, str(out)]
        code = subprocess.run(command, env=child_env(), stdout=subprocess.DEVNULL, check=False).returncode
        if code != 0 or not out.is_file():
            raise SystemExit(f"{module}: its child process without TensorFlow failed (exit status {code})")
        written = json.loads(out.read_text())
    if written["tensorflow_loaded"]:
        raise SystemExit(f"{module}: its child process imported TensorFlow; its timings would not be clean")
    return written["figures"]
