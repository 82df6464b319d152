"""What a notebook shows for the objects the runtime hands back: short reprs that name what they hold
(a 2,000-word text's TextScore printed 177,000 characters, a model's info 12,000)."""

from __future__ import annotations

from nextword.runtime import BUNDLED_MODEL, load


def test_a_long_score_and_the_model_info_print_short():
    model = load(BUNDLED_MODEL)
    text = "a neural network receives an input signal and the processor computes the weights. " * 120
    score = model.score(text)
    assert len(score.words) > 1000
    shown = repr(score)
    assert len(shown) < 600 and f"\u2026 {len(score.words) - 3:,} more])" in shown, shown
    assert repr(score.words[0]) in shown and f"perplexity={score.perplexity!r}" in shown
    short = model.score("a neural network")
    assert repr(short).endswith(f"words={short.words!r})")  # a few words: every one shown

    info = repr(model.info)
    assert len(info) < 2000, len(info)
    for part in (
        "format_version=3",
        "vocab_size=8058",
        "state_sizes=(448,)",
        "'fp32_cache': \u2026",
        "provenance=<corpus ['neural_network_patent_query.csv']>",
        "similarity='cosine'",
    ):
        assert part in info, (part, info)
    assert "cosine_thetas" not in info  # the cache's tuning tables stay in its field
    assert model.info.cache is not None and "cosine_thetas" in model.info.cache.tuning
