"""nextword.export: turn a training run into one self-contained, parity-checked ONNX file.

Needs the ``train`` extra. TensorFlow, tf2onnx and onnx load only when :func:`export` is first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nextword.train import EXPORT_STACK, require

from .config import ExportConfig

if TYPE_CHECKING:
    from .exporter import ExportReport

__all__ = ["ExportConfig", "export"]


def export(config: ExportConfig, command: str | None = None) -> ExportReport:
    """Export a run; see :func:`nextword.export.exporter.export`."""
    require("export", EXPORT_STACK)
    from .exporter import export as _export

    return _export(config, command=command)
