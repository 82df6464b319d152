"""Fine-tuning: what a run that starts from another model (``TrainConfig.init_from``) takes from it, the
base: its vocabulary, its network and its weights. The base is a run folder (its best model) or a model
file that ``nextword export`` wrote, such as the bundled model (its weights read back from the graph by
:mod:`nextword.train.model_file_weights`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nextword.runtime.tokenizer import Tokenizer

from .config import CorpusConfig, ModelConfig, TrainConfig
from .files import SAVING, RunDir, read_json
from .model_file_weights import FileWeights, NotReadable, check_rebuilt, read_file_weights, rebuild_model

if TYPE_CHECKING:
    import keras

    from nextword.corpus import DocumentSplit
    from nextword.runtime import NextWordModel

__all__ = [
    "ARCHITECTURE",
    "Base",
    "base_facts",
    "extended_vocabulary",
    "fine_tuning_config",
    "grow_vocabulary",
    "read_base",
    "unknown_share",
]

logger = logging.getLogger(__name__)
UNKNOWN_WARNING = 0.05  # a share of the training words outside the base vocabulary worth a warning

# The ModelConfig fields that the weights fix; the others (dropout) only say how the run trains.
ARCHITECTURE = ("embedding_dim", "lstm_units", "num_layers", "tie_embeddings")


@dataclass(frozen=True)
class Base:
    """The model a fine-tuning run starts from, as read and checked before anything is written."""

    source: Path  # the run folder, or the model file
    config: TrainConfig  # the base's own settings (of a model file: what the file records)
    stored: dict[str, Any]  # the run's config.json as stored (of a model file: its documents and command)
    tokenizer: Tokenizer
    best_epoch: int | None
    run: RunDir | None = None  # None: the base is a model file
    file_weights: FileWeights | None = None  # a model file's weights, read from its graph
    file_model: NextWordModel | None = None  # the model file loaded by the runtime, to check them against
    # a model file's decoding defaults (the GenerationConfig fields its export changed, JSON-ready):
    # a fine-tuned run does not take them, and its export says so (nextword.export.provenance)
    decoding_defaults: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        """``"run"`` or ``"model file"``: what ``init_from`` named."""
        return "run" if self.run is not None else "model file"

    def keras_model(self) -> keras.Model:
        """The base's network with its weights: the run's best model, or the network rebuilt from the model
        file's weights and checked against the file's own predictions (``ValueError`` when they differ)."""
        if self.run is not None:
            from .model import load_keras_model

            return load_keras_model(self.run.model)
        assert self.file_weights is not None and self.file_model is not None
        model = rebuild_model(self.file_weights, self.config.model)
        check_rebuilt(model, self.file_model, self.file_weights, str(self.source))
        return model


def base_source(config: TrainConfig) -> Path:
    """``config.init_from``, where it is there, and is neither in ``out`` (a model file, or a run folder's
    own file named in place of the folder) nor a folder that is not a finished run's, nor ``out`` or
    above it (a run folder); ``FileNotFoundError`` or ``ValueError`` with the fix. What
    :func:`read_base` checks first, reading no file."""
    source = Path(str(config.init_from))
    if not source.exists():
        raise FileNotFoundError(
            f"init_from: {source} does not exist; give the run folder or the model file to start from"
        )
    if source.is_file():
        if config.out and source.resolve().parent == Path(config.out).resolve():
            raise ValueError(
                f"init_from: {source} lies in the run folder out={config.out!r}, which the new run writes; "
                "move the model file elsewhere or give the fine-tuned run a folder of its own"
            )
        folder = RunDir(str(source.parent))
        if source.suffix.lower() != ".onnx" and folder.config.is_file() and folder.model.is_file():
            raise ValueError(
                f"init_from: {source} is one of the files of the run folder {folder.root}; give the folder "
                f"itself ({folder.root}), or a model file that `nextword export` wrote"
            )
        return source
    try:  # named first: a folder that holds runs, named in place of one of them, holds no run itself
        RunDir(str(source)).require_trained()
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"init_from: {exc}; give a run folder that `nextword train` finished, or a model file that "
            "`nextword export` wrote"
        ) from None
    if config.out and Path(config.out).resolve() == source.resolve():
        raise ValueError(
            f"`init_from` and `out` are the same folder ({source}): the new run would replace the model it "
            "starts from; give the fine-tuned run a folder of its own"
        )
    if config.out and Path(config.out).resolve().is_relative_to(source.resolve()):
        raise ValueError(
            f"out={config.out!r} lies inside the run folder init_from={str(source)!r}, which holds one "
            "run; give the fine-tuned run a folder of its own, outside it"
        )
    return source


def read_base(config: TrainConfig) -> Base:
    """Read and check ``config.init_from``: a run folder (a finished training run, not the folder this
    run writes, ``out``, and not cut off while it saved an epoch) or a nextword model file (one that
    :func:`nextword.runtime.load` accepts, with a graph as ``nextword export`` writes it). Raises
    ``FileNotFoundError`` (nothing there, or not a finished run), ``ValueError`` (damaged files, a file
    whose weights cannot be read back, the same folder as ``out``) with the fix in the message."""
    source = base_source(config)
    if source.is_file():
        return _read_model_file(source, config)
    run = RunDir(str(source))  # a finished run's folder: base_source() says so
    stored_config, stored = run.read_config()
    tokenizer = run.read_tokenizer()
    metrics = read_json(run.metrics) if run.metrics.is_file() else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    if metrics.get(SAVING) is not None:
        raise ValueError(
            f"init_from: {run.root} was cut off while it saved epoch {metrics[SAVING]!r}, so its best model "
            f"may be older than its metrics say; `nextword.train.resume({str(run.root)!r})` mends it first"
        )
    best = metrics.get("best")
    epoch = best.get("epoch") if isinstance(best, dict) else None
    if run.busy():
        logger.warning(
            "init_from: %s is being trained by another process: this run starts from its best model so far "
            "(epoch %s)",
            run.root,
            epoch if epoch is not None else "?",
        )
    return Base(
        run.root, stored_config, stored, tokenizer, epoch if isinstance(epoch, int) else None, run=run
    )


def _read_model_file(path: Path, config: TrainConfig) -> Base:
    """The base from a model file: its tokenizer, its weights (read, not yet rebuilt in Keras: that
    waits until training starts) and what it records of its training."""
    from nextword.corpus import recorded_corpus
    from nextword.runtime import LoadLimits, ModelFileError, load
    from nextword.runtime.model_check import inspect_model_file

    # The file the user chose to fine-tune from, as export's own file: any size loads (its weights are
    # read whole either way), every other check of the file holds.
    limits = LoadLimits().without_size_caps()
    try:
        model = load(path, limits=limits)
        weights = read_file_weights(inspect_model_file(path, limits).data, str(path))
    except (ModelFileError, NotReadable) as exc:  # each names the file and the fix
        raise ValueError(f"init_from: {exc}") from None
    recorded = model.info.config.get("model")
    dropout = {
        k: v
        for k, v in (recorded.items() if isinstance(recorded, dict) else ())
        if k in ("dropout", "locked_dropout", "word_dropout") and type(v) is type(getattr(ModelConfig(), k))
    }
    try:
        network = ModelConfig(**{**dropout, **weights.architecture()})
    except ValueError as exc:
        raise ValueError(f"init_from: {path}: {exc}") from None
    provenance = model.info.provenance
    corpus = CorpusConfig()
    data: dict[str, Any] = {}
    if provenance is not None:  # the files by name, read as they were (base_corpus gives where they are)
        corpus = recorded_corpus(provenance, provenance.corpus_files)
        data = {
            key: getattr(provenance.data, key)
            for key in ("documents", "val_documents", "val_words", "dev_documents")
        }
        data["split"] = dataclasses.asdict(provenance.split) if provenance.split is not None else None
        data["corpus_sha256"] = provenance.corpus_sha256
    base_config = TrainConfig(corpus=corpus, tokenizer=model.tokenizer.config, model=network)
    stored = {"data": data, "command": provenance.train_command if provenance else None}
    best = model.info.metrics.get("best")
    epoch = best.get("epoch") if isinstance(best, dict) else None
    if weights.quantized:
        logger.info(
            "init_from: %s holds int8 weights: the run starts from them as rounded (the fp32 export of the "
            "same run, or the run folder, starts from the exact ones)",
            path,
        )
    decoding = {k: list(v) if isinstance(v, tuple) else v for k, v in model.info.generation.changes().items()}
    return Base(
        path,
        base_config,
        stored,
        model.tokenizer,
        epoch if isinstance(epoch, int) else None,
        file_weights=weights,
        file_model=model,
        decoding_defaults=decoding,
    )


def fine_tuning_config(config: TrainConfig, base: Base, given: Collection[str] = ()) -> TrainConfig:
    """``config`` with the base run's tokenizer settings and network. The weights fix the network
    (:data:`ARCHITECTURE`) and the vocabulary fixes the tokenizer: a value there that differs from
    the base's is refused (``ValueError``) where it is not the default or is named in ``given``, but
    ``max_vocab`` with ``extend_vocabulary``, where it bounds the extended vocabulary. The other network
    fields (dropout) and the corpus's ``decode_html`` take the base's where ``config`` leaves them at
    their defaults and ``given`` does not name them.

    ``given``: the settings the caller gave, by their dotted names (``"model.dropout"``,
    ``"corpus.decode_html"``; as ``nextword train`` names its options): a value named there is the
    caller's even where it equals the default."""
    defaults, conflicts = TrainConfig(), []

    def left_out(section: str, name: str, mine: Any) -> bool:  # at its default, and not given
        return mine == getattr(getattr(defaults, section), name) and f"{section}.{name}" not in given

    tokenizer = base.config.tokenizer
    for field in dataclasses.fields(config.tokenizer):
        mine, theirs = getattr(config.tokenizer, field.name), getattr(base.config.tokenizer, field.name)
        if left_out("tokenizer", field.name, mine) or mine == theirs:
            continue
        if field.name == "max_vocab" and config.extend_vocabulary:  # the bound of the extended vocabulary
            if mine < len(base.tokenizer):
                raise ValueError(
                    f"max_vocab={mine} is below the base vocabulary's {len(base.tokenizer)} words, which a "
                    "fine-tuned run keeps; give a larger `max_vocab` to bound the words `extend_vocabulary` "
                    "adds"
                )
            tokenizer = replace(tokenizer, max_vocab=mine)
        else:
            conflicts.append(f"tokenizer {field.name}={mine!r} (the base's: {theirs!r})")
    model: dict[str, Any] = {}
    for field in dataclasses.fields(ModelConfig):
        mine, theirs = getattr(config.model, field.name), getattr(base.config.model, field.name)
        if left_out("model", field.name, mine):
            model[field.name] = theirs
        elif field.name in ARCHITECTURE and mine != theirs:
            conflicts.append(f"{field.name}={mine!r} (the base's: {theirs!r})")
    if conflicts:
        vocabulary = any(c.startswith("tokenizer max_vocab=") for c in conflicts)
        grow = (
            "; or, for max_vocab, add extend_vocabulary=True, where it bounds the words added"
            if vocabulary
            else ""
        )
        raise ValueError(
            f"a run fine-tuned from {base.source} keeps its vocabulary and network, but this config "
            f"asks for {', '.join(conflicts)}; leave these settings out (they come from the base {base.kind})"
            f"{grow}"
        )
    corpus = config.corpus
    if base.config.corpus.decode_html and left_out("corpus", "decode_html", corpus.decode_html):
        logger.info(
            "decode_html=True, as the base's corpus was read: HTML character references (&amp;) in this "
            "corpus are read as the characters they stand for (decode_html=False reads them as written)"
        )
        corpus = replace(corpus, decode_html=True)
    return replace(config, corpus=corpus, tokenizer=tokenizer, model=replace(config.model, **model))


def base_facts(base: Base) -> dict[str, Any]:
    """What the fine-tuned run records of its base in config.json (``base``), and its model file in
    turn: the folder or model file (``kind``; ``quantized``: a file's int8 weights), the epoch its
    weights come from, its corpus files (names) and documents, the command that trained it, and a
    file's decoding defaults (``decoding_defaults``; None for a run folder), which the export of the
    fine-tuned run names where it sets none of its own."""
    data = base.stored.get("data")
    documents = data.get("documents") if isinstance(data, dict) else None
    command = base.stored.get("command")
    return {
        "run": str(base.source.resolve()),
        "kind": base.kind,
        "quantized": base.file_weights is not None and base.file_weights.quantized,
        "best_epoch": base.best_epoch,
        "corpus_files": [Path(p).name for p in base.config.corpus.paths],
        "documents": documents if isinstance(documents, int) else None,
        "command": command if isinstance(command, str) else None,
        "decoding_defaults": base.decoding_defaults,
    }


def extended_vocabulary(
    base: Base, split: DocumentSplit, leave_out: np.ndarray | None, max_vocab: int
) -> Tokenizer:
    """The base vocabulary followed by the words of ``split``'s training documents (but those
    ``leave_out`` names: the development part) that it lacks, counted and chosen as a run from scratch
    chooses its own (the base's tokenizer settings and rules: seen ``min_count`` times or more, the
    most frequent first), up to ``max_vocab`` tokens in all (a warning names the words left out). The
    base's words keep their ids."""
    from nextword.corpus import build_vocabulary
    from nextword.runtime.tokenizer import MAX_VOCAB_SIZE

    own = base.tokenizer
    config = replace(own.config, max_vocab=max_vocab)
    every = replace(config, max_vocab=MAX_VOCAB_SIZE)  # counted without the bound, which applies below
    # its own coverage, of no vocabulary the run uses, is left out: unknown_share says what the base's
    # vocabulary and the words added cover
    counted = build_vocabulary(split, every, leave_out=leave_out, version=own.version, log_coverage=False)
    known = set(own.table)
    new = [word for word in counted.table if word not in known]
    room = max(max_vocab - len(own), 0)
    if len(new) > room:
        logger.warning(
            "extend_vocabulary: %d words of this corpus (seen min_count=%d times or more) are outside the "
            "base vocabulary, and max_vocab=%d leaves room for %d of them after the base's %d; the rest "
            "stay <unk>. A larger max_vocab makes room for them",
            len(new),
            config.min_count,
            max_vocab,
            room,
            len(own),
        )
    new = new[:room]
    logger.info("extend_vocabulary: %d words added to the base's %d", len(new), len(own))
    return Tokenizer([*own.table, *new], config, own.version)


def grow_vocabulary(model: keras.Model, config: ModelConfig, vocab_size: int) -> keras.Model:
    """``model`` (the base's network) with room for ``vocab_size`` words: the base's weights as they are,
    and for each added word the mean of the base's words (its embedding row, its output weights and
    bias), where training starts from."""
    from .model import build_model

    grown = build_model(config, vocab_size)
    for layer in grown.layers:
        if not layer.weights:
            continue
        weights = []
        for old, variable in zip(model.get_layer(layer.name).get_weights(), layer.weights, strict=True):
            shape = tuple(variable.shape)
            if old.shape != shape:  # the vocabulary axis (rows of the embedding, columns of the output)
                (axis,) = [i for i, (a, b) in enumerate(zip(old.shape, shape, strict=True)) if a != b]
                mean = old.mean(axis=axis, keepdims=True)
                old = np.concatenate(
                    [old, np.repeat(mean, shape[axis] - old.shape[axis], axis=axis)], axis=axis
                )
            weights.append(old)
        layer.set_weights(weights)
    return grown


def unknown_share(
    counts: np.ndarray, tokenizer: Tokenizer, base_size: int, extended: bool = False
) -> dict[str, Any]:
    """What the base's vocabulary misses of the training words (``counts``: each id's count in
    ``train.ids`` under ``tokenizer``: the base's, or with ``extended`` the base's first ``base_size``
    ids and words added after them): ``unknown_share``, the share outside the base vocabulary, and with
    ``extended``, ``added_words`` and ``added_share``, the share of the training words that are added
    words. Logged, with a warning where :data:`UNKNOWN_WARNING` of the words or more stay ``<unk>``."""
    words = float(counts.sum() - counts[tokenizer.eod_id])
    added = float(counts[base_size:].sum())
    unknown = float(counts[tokenizer.unk_id]) / words if words else 0.0
    share = unknown + (added / words if words else 0.0)
    facts: dict[str, Any] = {"unknown_share": round(share, 6)}
    if extended:
        facts |= {"added_words": len(tokenizer) - base_size, "added_share": round(share - unknown, 6)}
        logger.info(
            "%.2f%% of this corpus's training words are outside the base vocabulary; %.2f%% are among the %d "
            "words added to it",
            100 * share,
            100 * facts["added_share"],
            facts["added_words"],
        )
    if unknown >= UNKNOWN_WARNING:
        fix = (
            "words seen fewer than min_count times, and those max_vocab leaves out, stay unknown"
            if extended
            else "extend_vocabulary=True adds them to it, and training from scratch builds a vocabulary of "
            "this corpus"
        )
        logger.warning(
            "%.1f%% of this corpus's training words are <unk> to the fine-tuned run: the model learns them "
            "as one unknown word and never writes them; %s",
            100 * unknown,
            fix,
        )
    elif not extended:
        logger.info("%.2f%% of this corpus's training words are outside the base vocabulary", 100 * share)
    return facts
