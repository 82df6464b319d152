"""nextword.export: turn a training run into one self-contained, parity-checked ONNX file.

Needs the ``train`` extra. TensorFlow, tf2onnx and onnx load only when :func:`export` is first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nextword.runtime.checks import wrong_type
from nextword.train import EXPORT_STACK, require

from .config import ExportConfig
from .errors import ExportError, ModelTooLargeError, ParityError

if TYPE_CHECKING:
    from .exporter import ExportReport

# and ExportReport, loaded on first use
__all__ = ["ExportConfig", "ExportError", "ModelTooLargeError", "ParityError", "export"]


def export(config: ExportConfig, command: str | None = None) -> ExportReport:
    """Export a run; see :func:`nextword.export.exporter.export`."""
    if not isinstance(config, ExportConfig):  # before TensorFlow loads
        raise wrong_type("config", "an ExportConfig (ExportConfig(run_dir=..., out=...))", config)
    require("export", EXPORT_STACK)
    from .exporter import export as _export

    return _export(config, command=command)


def __getattr__(name: str) -> Any:
    if name == "ExportReport":  # its module loads TensorFlow
        require("export", EXPORT_STACK)
        from .exporter import ExportReport

        return ExportReport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
