"""The model a command runs: ``--model`` (or the default one) on ``--device``, checked against its
``--cache``."""

from __future__ import annotations

import argparse
from pathlib import Path

from nextword.runtime import LoadLimits, ModelLimitError, NextWordModel, default_model
from nextword.runtime.limits import SIZE_LIMITS_HELP, advise_the_flag

__all__ = [
    "CACHE_HELP",
    "DEVICE_HELP",
    "add_device_argument",
    "add_size_limits_argument",
    "cached_model",
    "open_model",
]

CACHE_HELP = (
    "mix in the continuous cache stored in the model file (default: on when the file has one; "
    "--no-cache scores with the model alone)"
)
DEVICE_HELP = (
    "where the model's steps run: cpu (the default), cuda (the first GPU) or cuda:N; a GPU needs "
    "onnxruntime-gpu and pays off with a float32 model file (docs/gpu.md)"
)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--no-size-limits``, for the commands that run a model."""
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
    add_size_limits_argument(parser)


def add_size_limits_argument(parser: argparse.ArgumentParser) -> None:
    """``--size-limits`` / ``--no-size-limits``, for the commands that load a model file."""
    parser.add_argument(
        "--size-limits", action=argparse.BooleanOptionalAction, default=True, help=SIZE_LIMITS_HELP
    )


def open_model(path: str | None, device: str = "cpu", size_limits: bool = True) -> NextWordModel:
    """The model of ``--model`` (or the default one) on ``--device``, loaded with the size caps unless
    ``--no-size-limits``; a file over one of them is refused naming that flag, not ``LoadLimits``."""
    try:
        return default_model(
            path, device=device, limits=None if size_limits else LoadLimits().without_size_caps()
        )
    except ModelLimitError as exc:
        raise advise_the_flag(exc, lifted=not size_limits) from None
    except ValueError as exc:  # the device's own messages start with its name: the flag's, here
        if not str(exc).startswith("device"):
            raise
        raise ValueError(f"--{exc}") from None


def cached_model(
    path: str | None, cache: bool | None, device: str = "cpu", size_limits: bool = True
) -> NextWordModel:
    """:func:`open_model`, refused where ``--cache`` asks for a cache that the file does not hold: the
    flag is named, not the API's ``cache=True``."""
    model = open_model(path, device, size_limits)
    if cache and model.cache_settings is None:
        raise ValueError(
            f"--cache: {Path(model.source).name} has no continuous-cache settings (export tunes them on "
            "the run's development documents); drop --cache"
        )
    return model
