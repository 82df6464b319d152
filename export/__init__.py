"""nextword.export: turn a training run into one self-contained, parity-checked ONNX file.

Needs the ``train`` extra. TensorFlow, tf2onnx and onnx load only when :func:`export` is first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nextword.runtime.checks import wrong_type
from nextword.train import EXPORT_STACK, require, require_installed

from .config import ExportConfig
from .errors import ExportError, ModelTooLargeError, ParityError
from .prechecks import check_export

if TYPE_CHECKING:
    from .exporter import ExportReport

# and ExportReport, loaded on first use
__all__ = ["ExportConfig", "ExportError", "ModelTooLargeError", "ParityError", "export"]


def export(config: ExportConfig, command: str | None = None) -> ExportReport:
    """Convert the best model of the run folder ``config.run_dir`` into one self-contained ONNX file,
    ``config.out``: the step graph, with the tokenizer, configs, metrics, parity figures and package
    versions in its metadata (optionally int8 weights and a tuned cache), written only once Keras and
    ONNX agree. Returns an :class:`ExportReport` of what was written and measured. ``command``, the
    command line, is recorded in the file. TensorFlow loads on the first call.

    Raises :class:`~nextword.runtime.errors.WrongTypeError` for a ``config`` that is not an
    :class:`ExportConfig`; :class:`~nextword.train.MissingExtraError` without the ``train`` extra;
    ``ValueError`` for an unset ``out``, one that is a folder or one of the run's files, or an existing
    file that is not a nextword model (unless ``config.overwrite``); ``FileNotFoundError`` for a run not
    trained (no finished model in it); :class:`ModelTooLargeError` (a ``ValueError`` too) for a model
    too big for one file, before any work; :class:`ParityError` when ONNX and Keras disagree, and
    :class:`ExportError` when the graph cannot be made valid, or when the run was replaced while it was
    read: nothing is written then. The whole story: :func:`nextword.export.exporter.export`."""
    if not isinstance(config, ExportConfig):  # before TensorFlow loads
        raise wrong_type("config", "an ExportConfig (ExportConfig(run_dir=..., out=...))", config)
    require_installed("export", EXPORT_STACK)
    check_export(config)  # an unwritable `out`, a run not trained...: said before TensorFlow loads
    require("export", EXPORT_STACK)
    from .exporter import export as _export

    return _export(config, command=command)


def __getattr__(name: str) -> Any:
    if name == "ExportReport":  # its module loads TensorFlow
        require("export", EXPORT_STACK)
        from .exporter import ExportReport

        return ExportReport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
