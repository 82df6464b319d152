"""The errors export raises, importable without loading TensorFlow (``except ParityError:`` is cheap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .parity import ParityReport

__all__ = ["ExportError", "ModelTooLargeError", "ParityError"]


class ExportError(RuntimeError):
    """The model could not be turned into a valid nextword ONNX graph."""


class ModelTooLargeError(ExportError, ValueError):
    """The run's model is too big for one ONNX file, found before any work: a setting of the run (its
    vocabulary, embedding and LSTM sizes) rather than a failed check, so also a ``ValueError`` (the
    command line's bad input, exit status 2). The message names the settings that shrink it."""


class ParityError(RuntimeError):
    """The ONNX graph disagrees with the Keras model; nothing was written."""

    def __init__(self, report: ParityReport) -> None:
        super().__init__(
            "parity check failed, no file written: "
            + ", ".join(f"{k}={v}" for k, v in report.to_dict().items())
        )
        self.report = report
