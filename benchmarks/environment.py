"""The machine a benchmark ran on and the versions of the packages that matter, recorded with every
result and printed at the end of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.report import markdown_table

__all__ = ["PACKAGES", "machine_info", "machine_markdown"]

PACKAGES = ("nextword", "numpy", "onnxruntime", "onnx", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE")  # environment that changes thread pools


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and the versions of :data:`PACKAGES` installed."""
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "environment": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
    }


def machine_markdown(info: dict[str, Any]) -> str:
    """:func:`machine_info` as a two-column Markdown table."""
    rows = [
        ["CPU", f"{info['cpu']} ({info['usable_cores']} usable of {info['logical_cores']} logical cores)"],
        ["memory", f"{info['memory_gib']} GiB"],
        ["OS", info["os"]],
        ["Python", info["python"]],
        *[[name, version] for name, version in info["versions"].items()],
        *[[f"${k}", v] for k, v in info.get("environment", {}).items()],
    ]
    return markdown_table(["", ""], rows, align="ll")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None
