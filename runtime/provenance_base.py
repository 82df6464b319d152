"""What ``nextword info`` says of the base a fine-tuned model started from (:class:`BaseRun`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .provenance import BaseRun, DataCounts

__all__ = ["describe_base"]


def describe_base(base: BaseRun, data: DataCounts) -> str:
    """``nextword info``'s line on the run a fine-tuned model started from (``data``: the fine-tuned
    model's own counts)."""
    text = f"{'model file' if base.kind == 'model file' else 'run'} {base.run or '?'}"
    notes = ["int8 weights"] if base.kind == "model file" and base.quantized else []
    notes += [f"its epoch {base.best_epoch}"] if base.best_epoch is not None else []
    text += f" ({', '.join(notes)})" if notes else ""
    text += f", trained on {base.corpus or '?'}: {_number(base.documents)} documents"
    if base.unknown_share is not None:
        text += f"; {100 * base.unknown_share:.1f}% of the fine-tuning words were outside its vocabulary"
    if base.added_words:
        share = (
            "" if base.added_share is None else f" ({100 * base.added_share:.1f}% of the fine-tuning words)"
        )
        added = f"{base.added_words} word was" if base.added_words == 1 else f"{base.added_words} words were"
        text += f"; {added} added to it{share}"
    if base.val_overlap is not None or base.dev_overlap is not None:
        text += "; " + _overlap(base, data)
    elif base.overlap_unchecked:
        text += (
            "; its held-out documents were not checked against those the base trained on "
            f"({base.overlap_unchecked})"
        )
    if base.val_trained:
        text += (
            f"; it trained on copies of {base.val_trained} of the base's {_number(base.val_documents)} "
            "validation documents"
        )
    return text + (f"; trained with {base.train_command}" if base.train_command else "")


def _overlap(base: BaseRun, data: DataCounts) -> str:
    """How many held-out documents of the fine-tuning corpus copy the base's training documents."""
    if not base.val_overlap and not base.dev_overlap:
        return "none of its held-out documents is a copy or near-duplicate of one the base trained on"
    parts = [
        f"{_number(count)} of its {_number(total)} {side} documents"
        for count, total, side in (
            (base.val_overlap, data.val_documents, "validation"),
            (base.dev_overlap, data.dev_documents, "development"),
        )
        if count
    ]
    if (base.val_overlap or 0) + (base.dev_overlap or 0) == 1:
        return f"{parts[0]} is a copy or near-duplicate of a document the base trained on"
    return f"{' and '.join(parts)} are copies or near-duplicates of documents the base trained on"


def _number(value: int | None) -> str:
    return "?" if value is None else str(value)
