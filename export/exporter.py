"""Export a training run to one self-contained, parity-checked ONNX file."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import onnx
import onnxruntime
import tf2onnx

from nextword.runtime import load
from nextword.runtime.model_file import (
    FORMAT_VERSION,
    KEY_CONFIG,
    KEY_FORMAT_VERSION,
    KEY_METRICS,
    KEY_PARITY,
    KEY_TOKENIZER,
    KEY_VERSIONS,
)
from nextword.runtime.tokenizer import Tokenizer
from nextword.train.config import TrainConfig
from nextword.train.files import RunDir, atomic_write_bytes, read_json

from .config import ExportConfig
from .graph import check_graph, convert
from .parity import ParityError, ParityReport, check_parity

__all__ = ["ExportReport", "export"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export` wrote."""

    path: str
    bytes: int
    ops: dict[str, int]
    parity: ParityReport


def export(config: ExportConfig) -> ExportReport:
    """Convert the best model of run folder ``config.run_dir`` into the ONNX file ``config.out``.

    The file holds the stateful step graph (one fused LSTM node per layer) and, in its metadata, the
    tokenizer, the model and training config, the training metrics, the parity figures and package
    versions. Before anything is written, Keras and ONNX must agree (see :mod:`nextword.export.parity`)
    and ``onnx.checker`` must pass; the file is then written atomically. Raises :class:`ParityError`
    or :class:`~nextword.export.graph.ExportError` and writes nothing when a check fails.
    """
    if not config.out:
        raise ValueError("the output file is not set: pass --out MODEL.onnx")
    run = RunDir(config.run_dir)
    run.require_trained()
    train_config, stored = run.read_config()
    tokenizer = Tokenizer.from_json(run.tokenizer.read_text(encoding="utf-8"))
    metrics = read_json(run.metrics) if run.metrics.is_file() else {}
    prompts = read_json(run.samples).get("prompts", []) if run.samples.is_file() else []
    trained = keras.saving.load_model(run.model, compile=False)

    proto = convert(trained, train_config.model, len(tokenizer), config.opset)
    ops = check_graph(proto, train_config.model.num_layers)
    model_config = {
        "model": asdict(train_config.model),
        "train": _train_summary(train_config, stored),
        "export": {k: v for k, v in asdict(config).items() if k not in ("run_dir", "out")},
    }
    versions = {
        **stored.get("versions", {}),
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime_export": onnxruntime.__version__,
        "opset": config.opset,
    }
    _set_metadata(
        proto,
        {
            KEY_FORMAT_VERSION: str(FORMAT_VERSION),
            KEY_TOKENIZER: tokenizer.to_json(),
            KEY_CONFIG: json.dumps(model_config),
            KEY_METRICS: json.dumps(metrics),
            KEY_VERSIONS: json.dumps(versions),
        },
    )

    parity = check_parity(
        trained,
        load(proto.SerializeToString()),
        prompts,
        tolerance=config.tolerance,
        greedy_words=config.greedy_words,
        seed=config.parity_seed,
    )
    logger.info("parity: %s", parity.to_dict())
    if not parity.passed:
        raise ParityError(parity)
    _set_metadata(proto, {KEY_PARITY: json.dumps(parity.to_dict())})
    onnx.checker.check_model(proto, full_check=True)
    payload = proto.SerializeToString()
    atomic_write_bytes(config.out, payload)
    logger.info("wrote %s (%d bytes)", config.out, len(payload))
    return ExportReport(path=str(config.out), bytes=len(payload), ops=ops, parity=parity)


def _set_metadata(proto: onnx.ModelProto, entries: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in entries.items():
        prop = existing.get(key) or proto.metadata_props.add()
        prop.key, prop.value = key, value


def _train_summary(config: TrainConfig, stored: dict[str, Any]) -> dict[str, Any]:
    """Training settings for the model file. Corpus paths are reduced to file names: a model file
    that travels should not carry the trainer's folder layout."""
    data = config.to_dict()
    data.pop("model")
    data.pop("out")
    data["corpus"]["paths"] = [Path(p).name for p in config.corpus.paths]
    if data.get("embeddings"):
        data["embeddings"] = Path(data["embeddings"]).name
    data["vocab_size"] = stored.get("vocab_size")
    data["data"] = stored.get("data", {})
    return data
