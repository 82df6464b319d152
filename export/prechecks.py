"""The refusals an export makes before TensorFlow, tf2onnx and the run's model load: an ``out`` that
cannot be written or would replace what it should not, a run folder that is not there or not trained.
:func:`check_export` raises what :func:`nextword.export.export` would raise for them, and writes
nothing; ``export`` calls it first, and ``nextword export`` calls it before it imports TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nextword.train.files import RUN_FILES, RUN_MARKER, RunDir
from nextword.train.paths import loop_message, looping_link, resolved

from .config import ExportConfig

__all__ = ["check_export"]


def check_export(config: ExportConfig) -> None:
    """Refuse an unset or unwritable ``config.out``, one that names a folder, a file of another kind
    (unless ``config.overwrite``) or one of the run's own files, and a run folder that holds no trained
    model (``FileNotFoundError``), each with the fix."""
    if not config.out:
        raise ValueError("the output file is not set: pass out='MODEL.onnx'")
    _check_out(Path(config.out), config.overwrite)
    run = RunDir(config.run_dir)
    run.require_trained()  # a file or a looping link named as such, before any path in it is resolved
    _check_not_the_runs(Path(config.out), run)


def _check_not_the_runs(out: Path, run: RunDir) -> None:
    """Refuse an ``out`` that is one of the run's own files (``model.keras``, ``tokenizer.json``...),
    ``overwrite`` or not: written over, it would leave a run that neither export nor resume can read."""
    own = {resolved(run.root / name, "run file") for name in (*RUN_FILES, RUN_MARKER)}
    if resolved(out, "out") in own:
        raise ValueError(
            f"out={str(out)!r} is one of the files of the run {run.root} it exports, which the model file "
            f"would replace for good; write it elsewhere, such as {run.root / 'model.onnx'}"
        )


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that cannot be written before hours of checks are spent on it, and one that
    names a file of another kind (a corpus, a run's ``model.keras``, an ONNX model from elsewhere):
    export replaces an earlier export, anything else only with ``overwrite``."""
    try:
        longest = os.pathconf(out.parent if out.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no such limit known (Windows has no pathconf)
        longest = 255
    if len(os.fsencode(out.name)) > longest:  # before is_dir(), which raises on such a name
        raise ValueError(
            f"out={str(out)!r}: the name is longer than the {longest} bytes a file name may have there; "
            "give a shorter one"
        )
    if (link := looping_link(out)) is not None:
        raise ValueError(loop_message(f"out={str(out)!r}", out, link, "choose another `out`"))
    if out.is_dir():
        raise ValueError(f"out={str(out)!r} is a folder; pass the path of the .onnx file to write")
    if out.is_file() and out.stat().st_size and not overwrite:
        kind = _model_kind(out)
        if kind is None:
            raise ValueError(
                f"out={str(out)!r} exists and is not an ONNX model; choose another `out` "
                "(overwrite=True would replace the file all the same)"
            )
        if kind == "onnx":
            raise ValueError(
                f"out={str(out)!r} exists and is an ONNX model that nextword did not write; choose another "
                "`out`, or pass overwrite=True to replace it"
            )
    folder = out.parent
    while not folder.exists() and folder != folder.parent:  # export makes the missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"out={str(out)!r} cannot be written: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(
            f"out={str(out)!r} cannot be written: {exc.strerror} in {folder}; choose another `out`"
        ) from None


def _model_kind(path: Path) -> str | None:
    """``"nextword"`` for a model file nextword wrote, ``"onnx"`` for another ONNX model with a graph,
    None for anything else (its weights are not read)."""
    import onnx

    try:
        with path.open("rb") as f:
            if f.read(1) != b"\x08":  # every ONNX file opens with field 1, ir_version, a varint
                return None
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # a file onnx cannot read is not a model, whatever the reason
        return None
    if not proto.graph.node:
        return None
    return "nextword" if any(p.key.startswith("nextword.") for p in proto.metadata_props) else "onnx"
