"""Child processes: run one and measure its wall time and peak resident memory, or run a benchmark
module of this package (``python -m benchmarks.NAME``) in a fresh interpreter."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.paths import REPO

__all__ = ["ChildResult", "child_env", "module_command", "peak_rss_self", "run_child"]


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
