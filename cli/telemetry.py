"""The environment the ``nextword`` command gives onnxruntime: no telemetry, unless the user chose.

onnxruntime 1.29 and later (Linux, macOS and Windows releases) record usage and errors with a device id
under ``~/.cache`` and upload them, unless ``ORT_DISABLE_TELEMETRY=1`` is set before onnxruntime is
imported (it reads the variable then, once). The command is a program: it may set a default for its own
process and its children. The library never does (docs/security.md).
"""

from __future__ import annotations

import os

__all__ = ["ONNXRUNTIME_TELEMETRY", "telemetry_off"]

ONNXRUNTIME_TELEMETRY = "ORT_DISABLE_TELEMETRY"


def telemetry_off() -> None:
    """Turn onnxruntime's telemetry off for this process and those it starts, unless
    ``ORT_DISABLE_TELEMETRY`` is set already (``0`` keeps onnxruntime's default). Call it before
    anything imports onnxruntime."""
    os.environ.setdefault(ONNXRUNTIME_TELEMETRY, "1")
