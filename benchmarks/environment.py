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

__all__ = ["CPU_FEATURES", "PACKAGES", "cpu_features", "features_text", "machine_info", "machine_markdown"]

PACKAGES = ("nextword", "numpy", "onnxruntime", "onnx", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE")  # environment that changes thread pools
# CPU features that change what numpy and onnxruntime run: vector width, and the integer dot-product
# instructions behind onnxruntime's int8 kernels (their speed, and on x86-64 without VNNI the exactness
# of signed int8 weights: docs/model-format.md). /proc/cpuinfo names: x86-64 "flags", Arm "Features".
CPU_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and the versions of :data:`PACKAGES` installed."""
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    from nextword.runtime.sessions import usable_cores

    usable = usable_cores()  # affinity within a cgroup's CPU quota: the cores load() and serve go by
    cpuinfo = _read_cpuinfo()  # read once: the model name and the features
    return {
        "cpu": _cpu_model(cpuinfo),
        "cpu_features": cpu_features(cpuinfo),
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
        *([["CPU features", features_text(info["cpu_features"])]] if "cpu_features" in info else []),
        ["memory", f"{info['memory_gib']} GiB"],
        ["OS", info["os"]],
        ["Python", info["python"]],
        *[[name, version] for name, version in info["versions"].items()],
        *[[f"${k}", v] for k, v in info.get("environment", {}).items()],
    ]
    return markdown_table(["", ""], rows, align="ll")


def cpu_features(cpuinfo: str) -> list[str] | None:
    """Which of :data:`CPU_FEATURES` the first processor of ``cpuinfo`` (the text of /proc/cpuinfo)
    lists, in that order; None where it lists no features at all (not Linux, or an unknown layout)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            present = set(value.split())
            return [name for name in CPU_FEATURES if name in present]
    return None


def features_text(features: list[str] | None) -> str:
    """:func:`cpu_features`'s list for a reader, naming on x86-64 the AVX-512 and VNNI it lacks."""
    if features is None:
        return "unknown (no /proc/cpuinfo)"
    if not features:
        return "none of " + ", ".join(CPU_FEATURES)
    x86 = "avx2" in features or "fma" in features
    missing = []
    if x86 and "avx512f" not in features:
        missing.append("avx512f")
    if x86 and "avx512_vnni" not in features and "avx_vnni" not in features:
        missing.append("avx512_vnni or avx_vnni")  # no int8 dot-product instructions
    return ", ".join(features) + (f"; no {', '.join(missing)}" if missing else "")


def _read_cpuinfo() -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return Path("/proc/cpuinfo").read_text(encoding="utf-8")
    return ""


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None
