"""Training settings: one dataclass per concern, shared by :func:`nextword.train.train` and the CLI.

The corpus settings (:class:`~nextword.corpus.CorpusConfig`) live in :mod:`nextword.corpus`; they are
imported here so that ``TrainConfig`` holds them and ``from nextword.train import CorpusConfig`` works.

Every field carries its help text in ``metadata``; the CLI builds its flags from these fields, so the
options and their defaults are written down once, here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from nextword.corpus.config import CORPUS_FORMATS, CorpusConfig
from nextword.runtime.checks import as_path, check_bool, check_int, check_real, plain_numbers, wrong_type
from nextword.runtime.errors import WrongTypeError
from nextword.runtime.field_help import with_field_help
from nextword.runtime.tokenizer import TokenizerConfig

from .keywords import nested_keywords, unknown_keys

__all__ = [
    "AUTO_EPOCHS",
    "AUTO_STEPS",
    "CORPUS_FORMATS",
    "DISTRIBUTE_MODES",
    "FINE_TUNING_RATE",
    "LEARNING_RATE",
    "LR_SCALINGS",
    "LR_SCHEDULES",
    "MAX_SEED",
    "CorpusConfig",
    "ModelConfig",
    "TrainConfig",
]

LR_SCHEDULES = ("cosine", "constant")
DISTRIBUTE_MODES = ("none", "mirrored", "multi-worker")
LR_SCALINGS = ("sqrt", "linear", "none")
AUTO_STEPS = 1000  # optimizer steps that epochs=None plans at least...
AUTO_EPOCHS = (10, 200)  # ...in this many epochs at least and at most
LEARNING_RATE = 2e-3  # learning_rate when not set...
# ...times this when fine-tuning (init_from): at training's rate, fine-tuning a base on 270 new documents
# of its kind did worse than the base alone, at a quarter of it better (python -m benchmarks.fine_tune)
FINE_TUNING_RATE = 0.25
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (keras.utils.set_random_seed) takes 0..2**32 - 1
_SECTIONS = ("corpus", "tokenizer", "model")  # the nested configs: a mapping each in TrainConfig.from_dict
# a share of units (dropout) or of documents (dev_fraction), for check_real
_SHARE: dict[str, Any] = {"low": 0, "low_open": False, "high": 1, "high_open": True, "wanted": "in [0, 1)"}


@with_field_help  # help(ModelConfig) lists the fields with their --help
@dataclass(frozen=True)
class ModelConfig:
    """The network: Embedding -> LSTM x num_layers -> Dense over the vocabulary (logits)."""

    embedding_dim: int = field(default=128, metadata={"help": "word vector size"})
    lstm_units: int = field(default=256, metadata={"help": "units of each LSTM layer"})
    num_layers: int = field(default=1, metadata={"help": "number of stacked LSTM layers"})
    dropout: float = field(default=0.2, metadata={"help": "dropout after the embedding and each LSTM layer"})
    locked_dropout: bool = field(
        default=False,
        metadata={
            "help": "each window keeps one dropout mask for all its time steps (variational dropout) "
            "instead of a new mask per word"
        },
    )
    word_dropout: float = field(
        default=0.0,
        metadata={"help": "share of input words whose whole embedding is dropped in training"},
    )
    tie_embeddings: bool = field(
        default=True,
        metadata={
            "help": "the output layer reuses the embedding matrix (with a linear projection when "
            "--lstm-units differs from --embedding-dim): fewer weights, a smaller file"
        },
    )

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("embedding_dim", "lstm_units", "num_layers"):
            check_int(name, getattr(self, name), 1, None, wanted="a positive integer")
        for name in ("dropout", "word_dropout"):
            check_real(
                name, getattr(self, name), low=0, low_open=False, high=1, high_open=True, wanted="in [0, 1)"
            )
        check_bool("locked_dropout", self.locked_dropout)
        check_bool("tie_embeddings", self.tie_embeddings)


@with_field_help  # help(TrainConfig) lists the fields with their --help
@nested_keywords  # TrainConfig(lstm_units=64) says that lstm_units goes in model=ModelConfig(...)
@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; stored as ``config.json`` in the run folder."""

    out: str = field(
        default="",
        metadata={"help": "run folder to create (model, tokenizer, config, metrics)", "metavar": "RUN_DIR"},
    )
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    seq_len: int = field(default=50, metadata={"help": "words per training window (the unrolled length)"})
    batch_size: int = field(
        default=64,
        metadata={"help": "windows per training step on each replica; the global batch is this x replicas"},
    )
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Adam learning rate for one replica (see --lr-scaling)",
            "unset": f"{LEARNING_RATE:g}, with --init-from {LEARNING_RATE * FINE_TUNING_RATE:g}",
        },
    )
    lr_scaling: str = field(
        default="sqrt",
        metadata={
            "help": "how the learning rate follows the global batch when several replicas train: sqrt "
            "multiplies it by the square root of the replica count, linear by the count, none keeps it",
            "choices": LR_SCALINGS,
        },
    )
    lr_schedule: str = field(
        default="cosine",
        metadata={
            "help": "cosine: decay the learning rate to 5%% of its start over --epochs; constant: keep it",
            "choices": LR_SCHEDULES,
        },
    )
    clipnorm: float = field(default=1.0, metadata={"help": "clip each gradient to this norm"})
    epochs: int | None = field(
        default=None,
        metadata={
            "help": "passes over the training split at most (default: enough for 1,000 optimizer steps, "
            "at least 10 and at most 200, so a small corpus gets the passes it needs; early stopping "
            "usually ends sooner)"
        },
    )
    patience: int = field(
        default=2,
        metadata={
            "help": "stop after this many epochs without a better development loss (validation loss "
            "without a development part), and at least 100 optimizer steps; 0: never stop early"
        },
    )
    dev_fraction: float = field(
        default=0.05,
        metadata={
            "help": "share of the training documents (at most 1,000) held out of training: their loss "
            "chooses the best epoch and export tunes the continuous cache on them; 0: none (the "
            "validation loss then chooses the epoch, and the model file has no cache)"
        },
    )
    seed: int = field(
        default=0, metadata={"help": "seed of weight initialization and window shuffling, 0..4294967295"}
    )
    max_minutes: float | None = field(
        default=None,
        metadata={
            "help": "wall-clock budget of this session's training steps: the epoch in progress is cut "
            "short, validated and saved when it runs out (reading the corpus before, validating and saving "
            "after, come on top)"
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "fine-tune: start from the best model of this run folder, or from this model file "
            "(.onnx, such as the bundled model), keeping its vocabulary and network (its tokenizer and "
            "network options; dropout too unless given) and training its weights further on this corpus "
            "with a new optimizer",
            "metavar": "RUN_DIR|MODEL",
        },
    )
    extend_vocabulary: bool = field(
        default=False,
        metadata={
            "help": "with init_from: add the words of this corpus's training documents that the base "
            "vocabulary lacks (seen min_count times, the base's tokenizer settings; up to max_vocab in "
            "all: the base's, or as given) after the base's own, their vectors starting at their mean"
        },
    )
    base_corpus: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "with init_from: the corpus files the base was trained on, read as it read them, to "
            "count this corpus's held-out documents that copy them (default: a base run's own files, where "
            "unchanged; a model file's documents are not at hand without this)",
            "metavar": "FILE",
        },
    )
    embeddings: str | None = field(
        default=None, metadata={"help": "pretrained word vectors, GloVe text format (word v1 v2 ...)"}
    )
    freeze_embeddings: bool = field(
        default=False, metadata={"help": "keep the pretrained vectors fixed instead of fine-tuning them"}
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "replace an existing run folder; only one nextword wrote, holding nothing but run files"
        },
    )
    verbose: int = field(
        default=1,
        metadata={
            "help": "Keras verbosity: 0 silent, 1 progress bar (one line per epoch where output is "
            "neither a terminal nor a Jupyter notebook), 2 one line per epoch"
        },
    )
    distribute: str = field(
        default="none",
        metadata={
            "help": "none: this process alone; mirrored: tf.distribute.MirroredStrategy over this machine's "
            "GPUs (its CPU when it has none); multi-worker: MultiWorkerMirroredStrategy over the workers "
            "that TF_CONFIG lists, one process per machine (docs/scale.md)",
            "choices": DISTRIBUTE_MODES,
        },
    )
    mixed_precision: bool = field(
        default=False,
        metadata={"help": "compute in float16 (mixed_float16: float32 weights and output layer); for GPUs"},
    )
    checkpoint_steps: int = field(
        default=1000,
        metadata={
            "help": "also save checkpoint.keras every this many training steps within an epoch (0: at "
            "epoch ends only); a killed run resumes from the last one"
        },
    )
    peer_timeout: float = field(
        default=120.0,
        metadata={
            "help": "multi-worker: seconds to wait at start-up for every worker of TF_CONFIG to answer"
        },
    )

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name, kind in (("corpus", CorpusConfig), ("tokenizer", TokenizerConfig), ("model", ModelConfig)):
            if not isinstance(getattr(self, name), kind):
                raise WrongTypeError(
                    f"{name} must be a {kind.__name__}, got {type(getattr(self, name)).__name__} "
                    f"(build one: {name}={kind.__name__}(...))"
                )
        object.__setattr__(
            self, "out", as_path("out", self.out)
        )  # a pathlib.Path, stored as config.json's str
        for name in ("embeddings", "init_from"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, as_path(name, getattr(self, name), empty=False))
        files = (self.base_corpus,) if isinstance(self.base_corpus, (str, os.PathLike)) else self.base_corpus
        if not isinstance(files, (tuple, list)):
            raise WrongTypeError(f"base_corpus must be a list of file paths, got {type(files).__name__}")
        files = tuple(as_path("`base_corpus`", f, empty=False) for f in files)
        object.__setattr__(self, "base_corpus", files)
        if files and self.init_from is None:
            raise ValueError(
                "base_corpus names the corpus of the base a run is fine-tuned from: pass init_from='BASE' "
                "too, or leave it out"
            )
        if self.init_from is not None and self.embeddings is not None:
            raise ValueError(
                "`init_from` and `embeddings` both give the starting weights: the base that `init_from` "
                "names brings its own word vectors; pass one of them"
            )
        for name in ("freeze_embeddings", "overwrite", "mixed_precision", "extend_vocabulary"):
            check_bool(name, getattr(self, name))
        for name in ("seq_len", "batch_size", "epochs"):
            if name == "epochs" and self.epochs is None:  # chosen from the corpus's size (planned_epochs)
                continue
            check_int(name, getattr(self, name), 1, None, wanted="a positive integer")
        check_int("seed", self.seed, 0, MAX_SEED, wanted=f"in 0..{MAX_SEED}")
        check_int("patience", self.patience, 0, None, wanted="an integer >= 0")
        check_int("verbose", self.verbose, 0, 2, wanted="0 (silent), 1 (progress bar) or 2 (one line)")
        for name in ("learning_rate", "clipnorm", "peer_timeout"):
            if name == "learning_rate" and self.learning_rate is None:  # LEARNING_RATE, or its share
                continue
            check_real(name, getattr(self, name), low=0, low_open=True, wanted="a positive number")
        check_real(
            "dev_fraction",
            self.dev_fraction,
            low=0,
            low_open=False,
            high=1,
            high_open=True,
            wanted="in [0, 1)",
        )
        for name, choices in (
            ("lr_schedule", LR_SCHEDULES),
            ("lr_scaling", LR_SCALINGS),
            ("distribute", DISTRIBUTE_MODES),
        ):
            _check_choice(name, getattr(self, name), choices)
        check_int("checkpoint_steps", self.checkpoint_steps, 0, None, wanted="an integer >= 0")
        if self.max_minutes is not None:
            check_real(
                "max_minutes", self.max_minutes, low=0, low_open=True, wanted="a positive number of minutes"
            )
        if self.init_from is not None and self.distribute == "multi-worker":
            raise ValueError(
                "init_from fine-tunes on one machine: distribute='multi-worker' does not take it; use "
                "'none', or 'mirrored' for this machine's GPUs"
            )
        if self.extend_vocabulary and self.init_from is None:
            raise ValueError(
                "extend_vocabulary adds words to the vocabulary of the base a run is fine-tuned from: pass "
                "init_from='BASE' too, or leave it out (a run from scratch builds its own vocabulary)"
            )
        if self.freeze_embeddings and not self.embeddings:
            raise ValueError("freeze_embeddings needs pretrained vectors: pass embeddings='FILE'")

    def planned_epochs(self, steps_per_epoch: int) -> int:
        """The epochs to plan (the learning-rate schedule's length and the most to train): ``epochs``
        when set, else enough epochs of ``steps_per_epoch`` optimizer steps for :data:`AUTO_STEPS`
        steps, within :data:`AUTO_EPOCHS`.

        A fixed number of passes undertrains a small corpus: 10 passes over 200 abstracts are 90 steps,
        and planning 112 (early stopping ended them at 22) took validation perplexity from 105.0 to
        94.4 (``python -m benchmarks.small_corpus``). The reference corpus's epoch is 142 steps,
        so it keeps 10."""
        if self.epochs is not None:
            return self.epochs
        low, high = AUTO_EPOCHS
        return min(high, max(low, -(-AUTO_STEPS // max(steps_per_epoch, 1))))

    def learning_rate_for(self, replicas: int) -> float:
        """The learning rate when ``replicas`` replicas train in sync on a global batch of
        ``batch_size * replicas`` windows: ``learning_rate`` scaled by ``lr_scaling``.

        ``sqrt`` (the default) follows the square-root rule that keeps Adam's updates of similar
        variance when the batch grows; ``linear`` is Goyal et al.'s rule for SGD, which tends to
        overshoot with Adam on large replica counts; ``none`` keeps the rate (then a bigger global batch
        makes fewer, equally long steps per epoch). One replica always gets ``learning_rate``; when it is
        not set, :data:`LEARNING_RATE`, times :data:`FINE_TUNING_RATE` when fine-tuning (``init_from``).
        """
        factor = {"sqrt": math.sqrt(replicas), "linear": float(replicas), "none": 1.0}[self.lr_scaling]
        rate = self.learning_rate
        if rate is None:
            rate = LEARNING_RATE * (FINE_TUNING_RATE if self.init_from is not None else 1.0)
        return rate * factor

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data (nested dataclasses become objects)."""
        data = asdict(self)
        data["corpus"]["paths"] = list(self.corpus.paths)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Rebuild a config written by :meth:`to_dict`; raises ``ValueError`` naming unknown fields, and
        :class:`~nextword.runtime.errors.WrongTypeError` for ``data``, or a section of it (``corpus``,
        ``tokenizer``, ``model``), that is not a mapping. A ``model`` section without ``tie_embeddings``
        (or no ``model`` section) reads as ``tie_embeddings=False``, not :class:`ModelConfig`'s default
        ``True``: configs written before tying existed trained untied models."""
        data = _settings("data", data)
        for name in _SECTIONS:
            if name in data:
                data[name] = _settings(name, data[name])
        unknown = unknown_keys(data, cls)
        if unknown:
            raise ValueError(
                f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: a misspelt key, "
                "or the file comes from another nextword version"
            )
        sections = {name: data.pop(name, {}) for name in _SECTIONS}
        try:
            return cls(
                corpus=CorpusConfig(**sections["corpus"]),  # its paths: a list, or one path as a str
                tokenizer=TokenizerConfig(**sections["tokenizer"]),
                model=ModelConfig(**{"tie_embeddings": False, **sections["model"]}),  # untied before
                **data,
            )
        except WrongTypeError:  # a field's value of the wrong type: its own message says which
            raise
        except TypeError as exc:
            raise ValueError(f"config does not match this nextword version: {exc}") from None


def _settings(name: str, value: Any) -> dict[str, Any]:
    """A copy of ``value``, the mapping of settings that :meth:`TrainConfig.from_dict` reads as
    ``name`` (the whole config, or one of its sections)."""
    if not isinstance(value, Mapping):
        raise wrong_type(name, "a mapping of settings (a JSON object, as to_dict() writes)", value)
    return dict(value)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """``value`` must be one of the strings ``choices``: another type is a wrong type, another string a
    wrong value."""
    if not isinstance(value, str):
        raise wrong_type(name, f"one of {choices}", value)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
