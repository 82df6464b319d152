"""Export settings, shared by :func:`nextword.export.export` and ``nextword export``."""

from __future__ import annotations

from dataclasses import dataclass, field

from nextword.runtime.checks import as_path, check_bool, check_int, check_real, plain_numbers
from nextword.runtime.errors import WrongTypeError
from nextword.runtime.field_help import with_field_help
from nextword.runtime.generation import MAX_WORDS, GenerationConfig
from nextword.runtime.limits import OPSET_VERSIONS
from nextword.train.keywords import nested_keywords

__all__ = ["ExportConfig"]


@with_field_help  # help(ExportConfig) lists the fields with their --help
@nested_keywords  # ExportConfig(max_words=20) says that max_words goes in generation=GenerationConfig(...)
@dataclass(frozen=True)
class ExportConfig:
    """What to export and how strictly to check it."""

    run_dir: str = field(
        default="",
        metadata={"help": "run folder written by `nextword train`", "positional": True, "metavar": "RUN_DIR"},
    )
    out: str = field(default="", metadata={"help": "the .onnx file to write", "metavar": "MODEL.onnx"})
    opset: int = field(
        default=17,
        metadata={
            "help": f"ONNX opset of the graph ({OPSET_VERSIONS[0]}..{OPSET_VERSIONS[1]}, what the runtime "
            "loads)"
        },
    )
    tolerance: float = field(
        default=1e-4,
        metadata={
            "help": "largest absolute difference allowed between Keras and ONNX logits, above 0 and at most 1"
        },
    )
    greedy_words: int = field(
        default=50,
        metadata={
            "help": "length of the greedy generations that must match between Keras and ONNX "
            f"(1..{MAX_WORDS})"
        },
    )
    parity_seed: int = field(default=0, metadata={"help": "seed of the random parity prompts (0..2**32-1)"})
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "replace --out even when it is not a model file nextword wrote (an earlier export is "
            "always replaced)"
        },
    )
    int8: bool = field(
        default=False,
        metadata={
            "help": "write the model with int8 weights (onnxruntime dynamic quantization): ~4x smaller"
        },
    )
    generation: GenerationConfig = field(
        default_factory=GenerationConfig,
        metadata={
            "group": "decoding defaults stored in the model: generate() uses them wherever a call does not "
            "set the option itself"
        },
    )
    tune_cache: bool = field(
        default=True,
        metadata={
            "help": "tune a continuous cache on the run's development documents (dev.ids: training "
            "documents held out of training) and store it in the file when it helps"
        },
    )
    evaluate: bool = field(
        default=True,
        metadata={
            "help": "score the model on the run's validation documents (val.ids in the run folder) and "
            "store the figures in the file"
        },
    )

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("run_dir", "out"):  # a pathlib.Path is stored as the str a model file records
            object.__setattr__(self, name, as_path(name, getattr(self, name)))
        for name in ("overwrite", "int8", "tune_cache", "evaluate"):
            check_bool(name, getattr(self, name))
        if not isinstance(self.generation, GenerationConfig):
            raise WrongTypeError(
                f"generation must be a GenerationConfig, got {type(self.generation).__name__} "
                "(GenerationConfig.from_options(**options) builds one)"
            )
        low, high = OPSET_VERSIONS  # the runtime's default LoadLimits accept these, and tf2onnx writes them
        check_int("opset", self.opset, low, high)  # '17' is said to be no integer, not out of range
        check_real("tolerance", self.tolerance, low=0, low_open=True, high=1)
        check_int("parity_seed", self.parity_seed, 0, 2**32 - 1)
        check_int("greedy_words", self.greedy_words, 1, MAX_WORDS)
        if self.generation.cache and not self.tune_cache:
            raise ValueError("the decoding default cache=True needs a tuned cache: drop tune_cache=False")
        if self.generation.seed is not None:
            raise ValueError("a model cannot carry a default seed: pass seed to each generate() call")
