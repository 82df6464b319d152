"""Tracing a model over documents for benchmarks.cache_variants: per document, the last LSTM layer's
state after each position, the model's log-probabilities over the document's own vocabulary and its
top candidates; saved to and read from one NPZ file so a rerun skips the model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BATCH", "TOP", "Traced", "batched_inputs", "load_traces", "save_traces", "trace"]

TOP = 5  # model candidates kept per position: top-5 accuracy is exact with 5
BATCH = 32  # documents stepped side by side


@dataclass(frozen=True)
class Traced:
    """One document stepped through the model."""

    states: np.ndarray  # (T, U) float32 the last layer's h after each position
    target_index: np.ndarray  # (T,) each next token's place in vocab
    vocab: np.ndarray  # (D,) the distinct next tokens of the document, sorted
    logprobs: np.ndarray  # (T, D) the model's log-probabilities of vocab at each position
    top_ids: np.ndarray  # (T, TOP) the model's most likely tokens
    top_logprobs: np.ndarray  # (T, TOP)


def batched_inputs(
    documents: Sequence[Sequence[int] | np.ndarray], pad: int, batch: int = BATCH
) -> Iterator[tuple[list[np.ndarray], list[int], np.ndarray]]:
    """``documents`` (each ``<eod> ids... <eod>``) ``batch`` at a time: the batch's documents, the
    positions each predicts (its length less one) and the ids fed, (batch, longest) padded with ``pad``."""
    for start in range(0, len(documents), batch):
        docs = [np.asarray(d, dtype=np.int64) for d in documents[start : start + batch]]
        lengths = [len(d) - 1 for d in docs]
        inputs = np.full((len(docs), max(lengths)), pad, dtype=np.int64)
        for j, d in enumerate(docs):
            inputs[j, : lengths[j]] = d[:-1]
        yield docs, lengths, inputs


def trace(model: Any, documents: Sequence[Sequence[int]]) -> list[Traced]:
    """Step ``documents`` (each ``<eod> ids... <eod>``) one token at a time, ``BATCH`` at once."""
    from nextword.runtime.logits import log_softmax

    out: list[Traced] = []
    for docs, lengths, inputs in batched_inputs(documents, model.tokenizer.eod_id):
        vocabs = [np.unique(d[1:]) for d in docs]
        state = model.initial_state(len(docs))
        states = np.empty((len(docs), inputs.shape[1], state[-2].shape[1]), dtype=np.float32)
        on_vocab = [np.empty((n, len(v))) for n, v in zip(lengths, vocabs, strict=True)]
        top_ids = np.empty((len(docs), inputs.shape[1], TOP), dtype=np.int64)
        top_logprobs = np.empty((len(docs), inputs.shape[1], TOP))
        for t in range(inputs.shape[1]):
            logits, state = model.forward(inputs[:, t : t + 1], state)  # (B, 1, V)
            logp = log_softmax(logits[:, 0])  # (B, V)
            states[:, t] = state[-2]
            top = np.argpartition(-logp, TOP, axis=1)[:, :TOP]  # (B, TOP)
            top_ids[:, t], top_logprobs[:, t] = top, np.take_along_axis(logp, top, axis=1)
            for j, n in enumerate(lengths):
                if t < n:
                    on_vocab[j][t] = logp[j, vocabs[j]]
        for j, d in enumerate(docs):
            n = lengths[j]
            index = np.searchsorted(vocabs[j], d[1:])
            out.append(
                Traced(states[j, :n], index, vocabs[j], on_vocab[j], top_ids[j, :n], top_logprobs[j, :n])
            )
    return out


def save_traces(path: Path, splits: dict[str, list[Traced]], tag: str) -> None:
    """Write the traces of each split to ``path`` (NPZ), with ``tag`` naming what they were made from."""
    arrays: dict[str, np.ndarray] = {"tag": np.array(tag)}
    for name, docs in splits.items():
        arrays[f"{name}_lengths"] = np.array([len(d.target_index) for d in docs])
        arrays[f"{name}_sizes"] = np.array([len(d.vocab) for d in docs])
        for field in ("states", "target_index", "top_ids", "top_logprobs"):
            arrays[f"{name}_{field}"] = np.concatenate([getattr(d, field) for d in docs])
        arrays[f"{name}_vocab"] = np.concatenate([d.vocab for d in docs])
        arrays[f"{name}_logprobs"] = np.concatenate([d.logprobs.ravel() for d in docs])
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub: a key could be allow_pickle
    tmp.replace(path)


def load_traces(path: Path, names: Iterable[str], tag: str | None = None) -> dict[str, list[Traced]] | None:
    """The traces :func:`save_traces` wrote; None when they were made from something else than ``tag``."""
    data = np.load(path)
    if tag is not None and str(data["tag"]) != tag:
        return None
    splits = {}
    for name in names:
        lengths, sizes = data[f"{name}_lengths"], data[f"{name}_sizes"]
        rows = np.concatenate([[0], np.cumsum(lengths)])
        voc = np.concatenate([[0], np.cumsum(sizes)])
        cells = np.concatenate([[0], np.cumsum(lengths * sizes)])
        # Each array read once: every ``data[key]`` reads a new copy of the whole array, and a
        # document's slice of it would keep that copy alive.
        fields = ("states", "target_index", "top_ids", "top_logprobs", "vocab", "logprobs")
        part = {f: data[f"{name}_{f}"] for f in fields}
        splits[name] = [
            Traced(
                part["states"][rows[k] : rows[k + 1]],
                part["target_index"][rows[k] : rows[k + 1]],
                part["vocab"][voc[k] : voc[k + 1]],
                part["logprobs"][cells[k] : cells[k + 1]].reshape(lengths[k], sizes[k]),
                part["top_ids"][rows[k] : rows[k + 1]],
                part["top_logprobs"][rows[k] : rows[k + 1]],
            )
            for k in range(len(lengths))
        ]
    return splits
