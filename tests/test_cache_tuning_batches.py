"""The cache search's development traces (export's tune_cache) when there are more development
documents than one batch steps at once, or more words than it traces: every document is traced once, in
order, as it is alone; documents past ``max_words`` are left out whole. On the session's fp32 tiny
model: an int8 model's numbers depend on the batch (onnxruntime quantizes a batch's activations
together)."""

from __future__ import annotations

import numpy as np
import pytest

from nextword.runtime import NextWordModel

cache_tuning = pytest.importorskip("nextword.export.cache_tuning")


def _documents(model: NextWordModel, count: int) -> list[list[int]]:
    """``count`` documents of 3 to 12 words, each ``<eod> ids... <eod>``."""
    rng = np.random.default_rng(4)
    eod = model.tokenizer.eod_id
    return [
        [eod, *rng.integers(3, model.vocab_size, size=int(rng.integers(3, 13))).tolist(), eod]
        for _ in range(count)
    ]


def test_documents_over_several_batches_are_traced_once_each_in_order(
    model: NextWordModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With batches of 3, seven documents give seven traces (none repeated or dropped), each the trace
    of that document stepped on its own."""
    documents = _documents(model, 7)
    alone = [cache_tuning.trace_documents(model, [d])[0] for d in documents]
    monkeypatch.setattr(cache_tuning, "TRACE_BATCH", 3)
    batched = cache_tuning.trace_documents(model, documents)
    assert len(batched) == len(documents)
    for got, expected, document in zip(batched, alone, documents, strict=True):
        assert got.targets.tolist() == document[1:]
        np.testing.assert_allclose(got.model_logprobs, expected.model_logprobs, rtol=0, atol=1e-4)
        np.testing.assert_allclose(got.states, expected.states, rtol=0, atol=1e-4)


def test_tracing_stops_at_max_words_after_whole_documents(model: NextWordModel) -> None:
    """Documents are traced until max_words positions are reached: the one that crosses the bound is
    traced whole, none after it."""
    documents = _documents(model, 6)
    positions = [len(d) - 1 for d in documents]
    bound = positions[0] + 1  # crossed by the second document
    traces = cache_tuning.trace_documents(model, documents, max_words=bound)
    assert [len(t.targets) for t in traces] == positions[:2]


def test_no_traces_tune_no_cache() -> None:
    """Without development documents there is nothing to tune: no cache settings."""
    assert cache_tuning.tune_cache([]) is None
