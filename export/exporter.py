"""Export a training run to one self-contained, parity-checked ONNX file."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import tf2onnx

from nextword.runtime import load
from nextword.runtime.cache import CacheConfig
from nextword.runtime.evaluation import evaluate_ids
from nextword.runtime.limits import LoadLimits
from nextword.runtime.model_check import inspect_model_file
from nextword.runtime.model_file import (
    FORMAT_VERSION,
    KEY_CACHE,
    KEY_CONFIG,
    KEY_FORMAT_VERSION,
    KEY_GENERATION,
    KEY_METRICS,
    KEY_PARITY,
    KEY_QUALITY,
    KEY_TOKENIZER,
    KEY_VERSIONS,
    format_version_for,
)
from nextword.runtime.sizes import PROTOBUF_LIMIT, limits_needed, limits_note
from nextword.runtime.tokenizer import Tokenizer
from nextword.train.config import TrainConfig
from nextword.train.data import stream_documents
from nextword.train.files import SAVING, RunDir, atomic_write_bytes, read_json
from nextword.train.model import load_keras_model
from nextword.train.progress import stopped_short
from nextword.train.sizes import check_exportable

from .cache_tuning import trace_documents, tune_cache
from .config import ExportConfig
from .errors import ExportError, ModelTooLargeError, ParityError
from .graph import check_graph, convert
from .parity import ParityReport, check_parity, compare_models
from .prechecks import check_export
from .provenance import escape_undecodable, file_name, provenance_of_run, travelling_command, warn_base_lost
from .quantize import int8_loss, quantize_int8
from .reading import RunRead, identity, reading

__all__ = ["ExportReport", "export"]

logger = logging.getLogger(__name__)

SNAPSHOT_TRIES = 3  # reads of a run whose model a training saves meanwhile, before export gives up


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export` wrote."""

    path: str
    bytes: int
    ops: dict[str, int]
    parity: ParityReport
    int8_vs_fp32: dict[str, Any] | None  # how far the int8 file strays from the fp32 one (``int8`` only)
    quality: dict[str, Any]  # validation figures per precision; empty when not evaluated


def export(config: ExportConfig, command: str | None = None) -> ExportReport:
    """Convert the best model of run folder ``config.run_dir`` into the ONNX file ``config.out``.

    The file holds the stateful step graph (one fused LSTM node per layer) and, in its metadata, the
    tokenizer, the model and training config, the training metrics, the parity figures, validation
    quality and package versions. Before anything is written, Keras and ONNX must agree (see
    :mod:`nextword.export.parity`) and ``onnx.checker`` must pass; the file is then written
    atomically. With ``config.int8`` the weights are quantized after the fp32 graph passed parity, and
    the int8 file's distance from the fp32 one is measured and stored. Raises :class:`ParityError` or
    :class:`~nextword.export.ExportError` and writes nothing when a check fails, or when the run was
    replaced while it was read (a training is refused meanwhile: :mod:`.reading`). ``command``, the
    command line of the export, is recorded in the file.
    """
    check_export(config)
    run = RunDir(config.run_dir)
    with reading(run) as read:  # held: a training that would replace the run meanwhile is refused
        return _export_read(config, command, run, read)


def _export_read(config: ExportConfig, command: str | None, run: RunDir, read: RunRead) -> ExportReport:
    """:func:`export` of the run folder ``run``, held for it (``read``)."""
    for _ in range(SNAPSHOT_TRIES):  # a training that saves meanwhile: its files are read again
        saved = identity(run.model)
        train_config, stored, tokenizer, metrics, prompts = _read_run(run)
        data = stored.get("data")
        run.check_id_files(data if isinstance(data, dict) else {})  # dev.ids and val.ids: after parity
        _check_dev_ids(run, data if isinstance(data, dict) else {}, config.tune_cache)
        tokenizer_json = tokenizer.to_json()
        try:  # before any work, and tf2onnx, which fails obscurely on a graph of 2 GiB or more
            check_exportable(
                train_config.model, len(tokenizer), len(tokenizer_json.encode()), warn=False, during="export"
            )
        except ValueError as exc:
            raise ModelTooLargeError(str(exc)) from None
        trained = load_keras_model(run.model)
        if identity(run.model) == saved:  # the model is the one the metrics read describe
            break
        logger.info("%s was saved again while it was read: reading the run again", run.model)
    else:
        raise ExportError(f"{run.model} was saved again each time it was read: export once the training ends")
    warn_base_lost(config, stored)  # a base model file's int8 and decoding defaults this export drops

    proto = convert(trained, train_config.model, len(tokenizer), config.opset)
    ops = check_graph(proto, train_config.model.num_layers)
    export_settings = {k: v for k, v in asdict(config).items() if k not in ("run_dir", "out", "overwrite")}
    model_config = escape_undecodable(  # file names and command lines may hold bytes that are not UTF-8
        {
            "model": asdict(train_config.model),
            "train": _train_summary(train_config, stored),
            "export": {**export_settings, "command": travelling_command(command)},
            "provenance": provenance_of_run(train_config, stored, command).to_dict(),
        }
    )
    versions = {
        **stored.get("versions", {}),
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime_export": onnxruntime.__version__,
        "opset": config.opset,
    }
    metadata = {
        KEY_FORMAT_VERSION: str(FORMAT_VERSION),
        KEY_TOKENIZER: tokenizer_json,
        KEY_CONFIG: json.dumps(model_config),
        KEY_METRICS: json.dumps(metrics),
        KEY_VERSIONS: json.dumps(versions),
        KEY_GENERATION: json.dumps(config.generation.changes()),
    }
    _set_metadata(proto, metadata)

    fp32 = load(_serialized(proto), limits=_OWN_FILE)  # this process made it: checked, but not capped
    parity = check_parity(
        trained,
        fp32,
        prompts,
        tolerance=config.tolerance,
        greedy_words=config.greedy_words,
        seed=config.parity_seed,
    )
    logger.info("parity: %s", parity.to_dict())
    if not parity.passed:
        raise ParityError(parity)
    cache = _tune_cache(config, run, fp32)
    if cache is not None:
        metadata[KEY_CACHE] = json.dumps(cache.to_dict())
        metadata[KEY_FORMAT_VERSION] = str(format_version_for(cache))
        _set_metadata(
            proto, {KEY_CACHE: metadata[KEY_CACHE], KEY_FORMAT_VERSION: metadata[KEY_FORMAT_VERSION]}
        )
    elif config.generation.cache:
        raise ValueError("the decoding default cache=True needs a cache, and none was stored (see the log)")
    measure = config.evaluate and run.val_ids.is_file()
    if config.evaluate and not measure:
        logger.warning("%s is missing: the model's validation quality is not measured", run.val_ids)
    quality: dict[str, Any] = {}
    if measure:
        quality |= _measure(fp32, "fp32", run, cache)
    final, parity_record, int8_vs_fp32 = proto, parity.to_dict(), None
    if config.int8:
        final = quantize_int8(proto)
        ops = dict(sorted(Counter(node.op_type for node in final.graph.node).items()))
        _set_metadata(final, metadata)
        int8 = load(_serialized(final), limits=_OWN_FILE)
        int8_vs_fp32 = compare_models(
            fp32, int8, prompts, greedy_words=config.greedy_words, seed=config.parity_seed
        )
        parity_record["int8_vs_fp32"] = int8_vs_fp32
        logger.info("int8 against fp32: %s", int8_vs_fp32)
        if measure:
            quality |= _measure(int8, "int8", run, cache)
    if quality:
        quality = {"split": "validation", "precision": "int8" if config.int8 else "fp32", **quality}
        logger.info("validation quality: %s", quality)
        if (lost := int8_loss(quality)) is not None:
            logger.warning(lost)
    _set_metadata(final, {KEY_PARITY: json.dumps(parity_record), KEY_QUALITY: json.dumps(quality)})
    onnx.checker.check_model(final, full_check=True)
    payload = _serialized(final)
    read.check_unchanged()  # what was read is one run's
    atomic_write_bytes(config.out, payload)
    logger.info("wrote %s (%d bytes)", config.out, len(payload))
    _warn_over_default_limits(
        config.out, payload, len(tokenizer_json.encode()), train_config.model.lstm_units, len(tokenizer)
    )
    return ExportReport(
        path=str(config.out),
        bytes=len(payload),
        ops=ops,
        parity=parity,
        int8_vs_fp32=int8_vs_fp32,
        quality=quality,
    )


# The exporter loads the file it has just made for its parity checks: every check of the loader runs,
# but none of its caps, which are there for files from elsewhere. Whether the file fits the caps that
# load() applies by default is said after it is written (:func:`_warn_over_default_limits`).
_OWN_FILE = LoadLimits().without_size_caps()


def _serialized(proto: onnx.ModelProto) -> bytes:
    """``proto``'s bytes, or an :class:`ExportError` saying why a model of 2 GiB or more has none."""
    size = proto.ByteSize()
    if size > PROTOBUF_LIMIT:
        raise ExportError(
            f"the ONNX model is {size:,} bytes, over the {PROTOBUF_LIMIT:,} bytes one protobuf message (one "
            "ONNX file) can hold; train a smaller model (`max_vocab`, `embedding_dim`, `lstm_units`, "
            "`num_layers`)"
        )
    return proto.SerializeToString()


def _warn_over_default_limits(
    out: str, payload: bytes, tokenizer_bytes: int, state_width: int, vocab_size: int
) -> None:
    """Log a warning, with the ``LoadLimits`` that load it, when ``load()`` with its default limits (and
    the browser's) would refuse the file just written."""
    bounds = inspect_model_file(payload, _OWN_FILE).bounds
    assert bounds is not None  # _OWN_FILE bounds the graph
    needed = limits_needed(
        file_bytes=len(payload),
        tokenizer_bytes=tokenizer_bytes,
        largest_tensor_bytes=bounds.largest_tensor_bytes,
        total_bytes=bounds.total_bytes,
        macs_per_token=bounds.macs_per_token,
        state_width=state_width,
        vocab_size=vocab_size,
    )
    if needed:
        logger.warning(
            "%s is over what load() accepts by default, so loading it needs %s; export with `int8` for "
            "a file about 4x smaller, or train a smaller model (`max_vocab`, `embedding_dim`, `lstm_units`)",
            out,
            limits_note(needed),
        )


def _read_run(run: RunDir) -> tuple[TrainConfig, dict[str, Any], Tokenizer, dict[str, Any], list[str]]:
    """The run folder's files, each checked for the type it must have: a run folder may come from
    elsewhere, and a crafted one must give a message naming the file, never a traceback."""
    train_config, stored = run.read_config()  # a ValueError naming the file if it is damaged
    tokenizer = run.read_tokenizer()
    metrics = read_json(run.metrics) if run.metrics.is_file() else {}
    samples = read_json(run.samples) if run.samples.is_file() else {}
    for path, value in ((run.metrics, metrics), (run.samples, samples)):
        if not isinstance(value, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(value).__name__}; re-run training")
    if metrics.get(SAVING) is not None:
        raise ValueError(
            f"{run.root} was cut off while it saved epoch {metrics[SAVING]!r}: its best model may be older "
            f"than its metrics say; `nextword.train.resume({str(run.root)!r})` mends the files (or, if it is "
            "training now, wait a moment and export again)"
        )
    busy = run.busy()  # a training holds it (not this export's own hold)
    short = None if busy else stopped_short(str(run.root), metrics, stored)  # a run in training is short
    if short is not None:
        logger.warning("%s", short)
    if busy:
        best = metrics.get("best")
        if not isinstance(best, dict):
            best = {}
        logger.warning(
            "%s is being trained by another process: this exports its best model so far (epoch %s)",
            run.root,
            best.get("epoch", "?"),
        )
    prompts = samples.get("prompts", [])
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{run.samples}: 'prompts' must be a list of strings; re-run training")
    return train_config, stored, tokenizer, metrics, prompts


def _validation_documents(path: Path, vocab_size: int) -> Iterator[np.ndarray]:
    """The validation documents of ``val.ids``, refusing token ids the tokenizer does not have."""
    for document in stream_documents(path):
        if document.size and (int(document.min()) < 0 or int(document.max()) >= vocab_size):
            bad = int(document.max()) if int(document.max()) >= vocab_size else int(document.min())
            raise ValueError(
                f"{path} holds token id {bad}, outside the vocabulary of {vocab_size} tokens; the run folder "
                "is damaged: re-run training, or export with evaluate=False"
            )
        yield document


def _check_dev_ids(run: RunDir, data: dict[str, Any], tune_cache: bool) -> None:
    """Refuse, before any work, a run whose ``dev.ids`` is gone though it recorded development
    documents: the cache would be left out for a cause it does not have (no development part)."""
    recorded = data.get("dev_documents")
    if tune_cache and type(recorded) is int and recorded > 0 and not run.dev_ids.is_file():
        raise ValueError(
            f"{run.dev_ids} is missing, but the run recorded {recorded} development documents, on which "
            f"export tunes the continuous cache: resume the run (`nextword.train.resume({str(run.root)!r})`"
            "), which encodes a missing id file again and trains nothing more once it has finished, or "
            "export with tune_cache=False"
        )


def _tune_cache(config: ExportConfig, run: RunDir, model: Any) -> CacheConfig | None:
    """The continuous-cache settings for the file, tuned on the run's development documents; None
    when not asked, when the run has none, or when the cache does not help there."""
    if not config.tune_cache:
        return None
    if not run.dev_ids.is_file():
        logger.warning(
            "%s is missing (a run trained with dev_fraction=0, or before development parts existed): "
            "the file gets no continuous cache",
            run.dev_ids,
        )
        return None
    if run.dev_ids.stat().st_size < 8:  # one <eod>: training found no document to hold out for it
        logger.warning(
            "%s holds no document (the training side was too small, or one group of near-duplicates, to "
            "set one apart): the file gets no continuous cache",
            run.dev_ids,
        )
        return None
    return tune_cache(trace_documents(model, _validation_documents(run.dev_ids, model.vocab_size)))


def _measure(model: Any, precision: str, run: RunDir, cache: CacheConfig | None) -> dict[str, Any]:
    """Validation figures of ``model`` alone and, when the file has one, with its cache."""
    documents = _validation_documents(run.val_ids, model.vocab_size)
    figures = {precision: evaluate_ids(model, documents, cache=False).to_dict()}
    if cache is not None:
        with_cache = evaluate_ids(model, _validation_documents(run.val_ids, model.vocab_size), cache=cache)
        figures[f"{precision}_cache"] = with_cache.to_dict()
        alone = figures[precision]["perplexity"]
        if with_cache.perplexity > alone:  # reported, not acted on: validation never chooses the cache
            logger.warning(
                "the continuous cache, tuned on the run's development documents, raises validation "
                "perplexity (%s: %.2f alone, %.2f with it): the development part may be too small to "
                "tune it; evaluate, score and suggest use it by default (cache=False turns it off), or "
                "export again with tune_cache=False",
                precision,
                alone,
                with_cache.perplexity,
            )
    return figures


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
    data["corpus"]["paths"] = [file_name(p) for p in config.corpus.paths]
    for key in ("embeddings", "init_from"):
        if data.get(key):
            data[key] = file_name(data[key])
    data["base_corpus"] = [file_name(p) for p in config.base_corpus]
    data["vocab_size"] = stored.get("vocab_size")
    data["data"] = stored.get("data", {})
    if isinstance(stored.get("training"), dict):  # replicas, global batch, learning rate as the run started
        data["training"] = stored["training"]
    data["command"] = travelling_command(stored.get("command"))
    return data
