"""The errors export raises, importable without loading TensorFlow (``except ParityError:`` is cheap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .parity import ParityReport

__all__ = ["ExportError", "ParityError"]


class ExportError(RuntimeError):
    """The model could not be turned into a valid nextword ONNX graph."""


class ParityError(RuntimeError):
    """The ONNX graph disagrees with the Keras model; nothing was written."""

    def __init__(self, report: ParityReport) -> None:
        super().__init__(
            "parity check failed, no file written: "
            + ", ".join(f"{k}={v}" for k, v in report.to_dict().items())
        )
        self.report = report
