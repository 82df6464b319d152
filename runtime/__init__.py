"""nextword runtime: load a nextword ``.onnx`` file and generate text with numpy and onnxruntime.

    >>> from nextword.runtime import load
    >>> model = load("model.onnx")
    >>> model.generate("a neural network", max_words=30, seed=1)

or, with the default model (``NEXTWORD_MODEL`` or the bundled one), ``generate("a neural network")``.

This package imports only numpy and onnxruntime; it never imports TensorFlow or onnx. Its names are
imported when first used, so ``from nextword.runtime.tokenizer import Tokenizer`` (the corpus tools
do that) does not load onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .aio import agenerate, astream
    from .beam import BeamSearch
    from .default import BUNDLED_MODEL, default_model, generate
    from .errors import InterruptedStepError, ModelFileError, ModelLimitError, ModelRunError, WrongTypeError
    from .evaluation import Evaluation, evaluate, evaluate_ids
    from .generation import MAX_BATCH, MAX_WORDS, GenerationConfig, OptionConflict
    from .generator import FINISH_REASONS, Generator, Update
    from .limits import LoadLimits
    from .model import NextWordModel, load
    from .model_check import check_model_file
    from .scoring import TextScore, WordScore
    from .step import StepModel
    from .text import PromptEnd
    from .tokenizer import Tokenizer, TokenizerConfig

# name -> the module that defines it
_EXPORTS = {
    "agenerate": "aio",
    "astream": "aio",
    "BeamSearch": "beam",
    "BUNDLED_MODEL": "default",
    "default_model": "default",
    "generate": "default",
    "InterruptedStepError": "errors",
    "ModelFileError": "errors",
    "ModelLimitError": "errors",
    "ModelRunError": "errors",
    "WrongTypeError": "errors",
    "Evaluation": "evaluation",
    "evaluate": "evaluation",
    "evaluate_ids": "evaluation",
    "MAX_BATCH": "generation",
    "MAX_WORDS": "generation",
    "GenerationConfig": "generation",
    "OptionConflict": "generation",
    "FINISH_REASONS": "generator",
    "Generator": "generator",
    "Update": "generator",
    "LoadLimits": "limits",
    "NextWordModel": "model",
    "load": "model",
    "check_model_file": "model_check",
    "TextScore": "scoring",
    "WordScore": "scoring",
    "StepModel": "step",
    "PromptEnd": "text",
    "Tokenizer": "tokenizer",
    "TokenizerConfig": "tokenizer",
}

__all__ = [
    "BUNDLED_MODEL",
    "FINISH_REASONS",
    "MAX_BATCH",
    "MAX_WORDS",
    "BeamSearch",
    "Evaluation",
    "GenerationConfig",
    "Generator",
    "InterruptedStepError",
    "LoadLimits",
    "ModelFileError",
    "ModelLimitError",
    "ModelRunError",
    "NextWordModel",
    "OptionConflict",
    "PromptEnd",
    "StepModel",
    "TextScore",
    "Tokenizer",
    "TokenizerConfig",
    "Update",
    "WordScore",
    "WrongTypeError",
    "__version__",
    "agenerate",
    "astream",
    "check_model_file",
    "default_model",
    "evaluate",
    "evaluate_ids",
    "generate",
    "load",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        imported = importlib.import_module(f".{module}", __name__)
    except (AttributeError, ImportError) as exc:
        if isinstance(exc, ImportError) and (exc.name or "").startswith("nextword"):
            raise  # nextword's own module: a bug to see whole, not an install to mend
        # an AttributeError escaping would read as "cannot import name {name!r} from 'nextword.runtime'"
        raise ImportError(
            f"cannot import {name} from {__name__}: importing {__name__}.{module} failed with "
            f"{type(exc).__name__}: {exc}" + ("" if "pip install" in str(exc) else _REINSTALL)
        ) from exc
    value = getattr(imported, name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


# the fix for an import failure whose message has none: a package it names is missing, broken or of
# another version
_REINSTALL = " (install the package it names, or reinstall it: `pip install --force-reinstall PACKAGE`)"


def __dir__() -> list[str]:
    # the public names and the module's dunders; not this file's own imports (importlib, Any), which
    # would show up in a notebook's completion list as if they were part of the API
    return sorted({*_EXPORTS, *(name for name in globals() if name.startswith("__"))})
