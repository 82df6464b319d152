"""``nextword info``: a model file's network, provenance, quality figures, cache and decoding defaults.

Everything shown comes from the file, so any field may be missing or of the wrong type: such fields
show as "?", and every string goes through :func:`~nextword.cli.display.safe`.
"""

from __future__ import annotations

import argparse
import numbers
from typing import Any, TypeGuard

from .display import figure, json_text, safe
from .models import open_model

__all__ = ["SELECTED_BY", "cache_text", "show_info"]

SELECTED_BY = {"dev_loss": "the development loss", "val_loss": "the validation loss"}  # metrics.json


def cache_text(cache: Any) -> str:
    """The cache settings in one line (``CacheConfig.describe``), or "off"."""
    return "off" if cache is None else cache.describe()


def show_info(args: argparse.Namespace) -> int:
    """``nextword info``: what the model file says about itself, as text or ``--json``."""
    if args.model is not None and args.model_option is not None:
        raise ValueError("give the model once: nextword info MODEL.onnx, or --model MODEL.onnx")
    model = open_model(
        args.model_option if args.model_option is not None else args.model, size_limits=args.size_limits
    )
    info = model.info
    summary = model.summary()
    if args.json:
        print(json_text(summary))
        return 0
    # Everything below comes from the file: any field may be missing or of the wrong type (shown as
    # "?"), and every string goes through safe().
    embedding = info.provenance.architecture.embedding_dim if info.provenance else None
    print(f"{safe(model.source)}  ({summary['bytes'] / 1e6:.2f} MB, nextword format {info.format_version})")
    version = model.tokenizer.version
    reads = {
        1: "a literal <unk> is read as <, unk, >",
        2: "a literal <unk> is one unknown word; combining marks split words",
        3: "combining marks stay inside words; invisible formatting characters are words of their own",
        4: "combining marks stay inside words; invisible formatting characters are dropped",
    }.get(version, "as 4, and each Han ideograph is a word of its own")
    print(f"  vocabulary     {info.vocab_size} words (tokenizer format {version}: {reads})")
    print(
        f"  network        embedding {_text(embedding)}, "
        f"{len(info.state_sizes)} LSTM layer(s) of {', '.join(map(str, info.state_sizes))} units"
    )
    for label, text in info.provenance.describe() if info.provenance else ():
        print(f"  {label:<14} {safe(text)}")
    seed = _mapping(_mapping(info.config).get("train")).get("seed")
    if type(seed) is int:  # training's; the split's seed is in the split line
        print(f"  training seed  {seed}")
    best = _mapping(summary["metrics"])
    if best:
        # Files from before development parts chose by the validation loss and do not say so.
        key = info.metrics.get("selected_by", "val_loss")
        chosen = SELECTED_BY.get(key, "?") if isinstance(key, str) else "?"
        total = _epochs(info.metrics, info.config)
        print(
            f"  best epoch     {_text(best.get('epoch'))} of {total} (by {chosen}): "
            f"validation loss {_number(best.get('val_loss'), '.4f')}, "
            f"perplexity {_number(best.get('val_perplexity'), '.1f')}, "
            f"accuracy {_number(best.get('val_accuracy'), '.2%')}, "
            f"top-5 {_number(best.get('val_top5_accuracy'), '.2%')} (validation text in training's windows)"
        )
    for precision in ("fp32", "int8", "fp32_cache", "int8_cache"):
        figures = _mapping(info.quality.get(precision))
        if figures:
            name = precision.replace("_cache", "+cache")
            print(
                f"  quality {name:<11}validation documents: "
                f"perplexity {_number(figures.get('perplexity'), '.2f')}, "
                f"accuracy {_number(figures.get('accuracy'), '.2%')}, "
                f"top-5 {_number(figures.get('top5_accuracy'), '.2%')}"
            )
    p = info.parity
    if p:
        diffs = [v for v in (p.get("max_abs_diff_random"), p.get("max_abs_diff_real")) if _is_number(v)]
        print(
            f"  parity         max |Keras - ONNX| {_number(max(diffs, default=None), '.2e')} "
            f"(tolerance {_number(p.get('tolerance'), 'g')}), "
            f"greedy identical {_text(p.get('greedy_identical'))}/{_text(p.get('greedy_sequences'))}"
        )
        q = _mapping(p.get("int8_vs_fp32"))
        if q:
            print(
                f"  int8 vs fp32   max |logit difference| {_number(q.get('max_abs_logit_diff'), '.3g')}, "
                f"greedy identical {_text(q.get('greedy_identical'))}/{_text(q.get('greedy_sequences'))}"
            )
    if info.cache is not None:
        tuned = info.cache.tuning
        gain = (
            f" (development perplexity {_number(tuned.get('perplexity_without'), '.1f')} -> "
            f"{_number(tuned.get('perplexity_with'), '.1f')} on {_text(tuned.get('documents', '?'))} "
            "training documents held out of training)"
            if "perplexity_with" in tuned
            else ""
        )
        print(f"  cache          {cache_text(info.cache)}{gain}")
    defaults = info.generation.changes()
    if defaults:
        shown = ", ".join(f"{k}={_text(v)}" for k, v in defaults.items())
        print(f"  decoding       {shown} (model defaults)")
    print("  versions       " + ", ".join(f"{_text(k)} {_text(v)}" for k, v in info.versions.items()))
    return 0


def _epochs(metrics: dict[str, Any], config: dict[str, Any]) -> str:
    """The epochs the run planned, and how many it trained when that is fewer: "3", "3 (stopped
    after 1)", "10 (stopped early after 5)". Files from before ``epochs_planned`` was recorded: the
    epochs of the training settings, unless the run trained more (resumed with more epochs)."""
    epochs = metrics.get("epochs")
    done = len(epochs) if isinstance(epochs, list) else None
    planned = metrics.get("epochs_planned")
    if not (type(planned) is int and planned > 0):
        first = _mapping(config.get("train")).get("epochs")
        planned = max(first, done or 0) if type(first) is int and first > 0 else done
    if planned is None:
        return "?"
    if done is None or done >= planned:
        return str(planned)
    early = "early " if metrics.get("stopped_early") is True else ""
    return f"{planned} (stopped {early}after {done})"


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: metadata fields may have any type."""
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> TypeGuard[float]:  # an int or a float from the file: formats as a float
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(value: Any, spec: str) -> str:
    """A number from a file formatted with ``spec``, or "?" when it is not a number (or an integer too
    large for the float a spec such as ".2f" makes of it)."""
    if not _is_number(value):
        return "?"
    try:
        return figure(value, spec)
    except OverflowError:
        return "?"


def _text(value: Any) -> str:
    """A value from a file for a person to read: "?" when missing, made safe for the terminal."""
    return "?" if value is None else safe(value)
