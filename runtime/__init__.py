"""nextword runtime: load a nextword ``.onnx`` file and generate text with numpy and onnxruntime.

    >>> from nextword.runtime import load
    >>> model = load("model.onnx")
    >>> model.generate("a neural network", max_words=30, seed=1)

or, with the default model (``NEXTWORD_MODEL`` or the bundled one), ``generate("a neural network")``.

This package imports only numpy and onnxruntime; it never imports TensorFlow or onnx.
"""

from ._version import __version__
from .beam import BeamSearch
from .default import default_model, generate
from .errors import ModelFileError
from .evaluation import Evaluation, evaluate, evaluate_ids
from .generation import MAX_BATCH, MAX_WORDS, GenerationConfig
from .generator import FINISH_REASONS, Generator, Update
from .limits import LoadLimits
from .model import NextWordModel, load
from .scoring import TextScore, WordScore
from .step import StepModel
from .tokenizer import Tokenizer, TokenizerConfig

__all__ = [
    "FINISH_REASONS",
    "MAX_BATCH",
    "MAX_WORDS",
    "BeamSearch",
    "Evaluation",
    "GenerationConfig",
    "Generator",
    "LoadLimits",
    "ModelFileError",
    "NextWordModel",
    "StepModel",
    "TextScore",
    "Tokenizer",
    "TokenizerConfig",
    "Update",
    "WordScore",
    "__version__",
    "default_model",
    "evaluate",
    "evaluate_ids",
    "generate",
    "load",
]
