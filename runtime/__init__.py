"""nextword runtime: load a nextword ``.onnx`` file and generate text with numpy and onnxruntime.

    >>> from nextword.runtime import load
    >>> model = load("model.onnx")
    >>> model.generate("a neural network", max_words=30, seed=1)

This package imports only numpy and onnxruntime; it never imports TensorFlow or onnx.
"""

from ._version import __version__
from .errors import ModelFileError
from .evaluation import Evaluation, evaluate
from .generation import GenerationConfig
from .model import NextWordModel, load
from .tokenizer import Tokenizer, TokenizerConfig

__all__ = [
    "Evaluation",
    "GenerationConfig",
    "ModelFileError",
    "NextWordModel",
    "Tokenizer",
    "TokenizerConfig",
    "__version__",
    "evaluate",
    "load",
]
