"""The model a command runs: ``--model`` (or the default one) on ``--device``, checked against its
``--cache``."""

from __future__ import annotations

import argparse
from pathlib import Path

from nextword.runtime import NextWordModel, default_model

__all__ = ["CACHE_HELP", "DEVICE_HELP", "add_device_argument", "cached_model"]

CACHE_HELP = (
    "mix in the continuous cache stored in the model file (default: on when the file has one; "
    "--no-cache scores with the model alone)"
)
DEVICE_HELP = (
    "where the model's steps run: cpu (the default), cuda (the first GPU) or cuda:N; a GPU needs "
    "onnxruntime-gpu and pays off with a float32 model file (docs/gpu.md)"
)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``, for the commands that run a model."""
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)


def cached_model(path: str | None, cache: bool | None, device: str = "cpu") -> NextWordModel:
    """The model of ``--model`` (or the default one) on ``--device``, refused where ``--cache`` asks for
    a cache that its file does not hold: the flag is named, not the API's ``cache=True``."""
    try:
        model = default_model(path, device=device)
    except ValueError as exc:  # the device's own messages start with its name: the flag's, here
        if not str(exc).startswith("device"):
            raise
        raise ValueError(f"--{exc}") from None
    if cache and model.cache_settings is None:
        raise ValueError(
            f"--cache: {Path(model.source).name} has no continuous-cache settings (export tunes them on "
            "the run's development documents); drop --cache"
        )
    return model
