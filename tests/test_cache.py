"""The continuous cache in the runtime: the mixture it computes, where it is used, and that files
without cache settings behave exactly as before."""

from __future__ import annotations

import dataclasses
import json
import math
import threading

import numpy as np
import pytest

from nextword.runtime import GenerationConfig, ModelFileError, evaluate, load
from nextword.runtime.cache import CacheConfig, ContinuousCache, resolve_cache
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.logits import log_softmax
from nextword.runtime.model import NextWordModel
from nextword.runtime.scoring import cached_document_scores, token_logprobs

SETTINGS = CacheConfig(theta=0.07, mix=0.18, window=256)
TEXTS = [
    "A barometer neuron enhances the stability of a tracking system. The barometer neuron compares sensor "
    "plots with track positions, and the barometer neuron inhibits false pairings of sensor plots.",
    "The present invention relates to a speech recognizer. The speech recognizer receives speech.",
    "An image sensor outputs image data to a convolutional network; the convolutional network classifies "
    "the image data and the image sensor stores the classes.",
]


def with_cache(model: NextWordModel, settings: CacheConfig | None = SETTINGS) -> NextWordModel:
    """The same session and file, with ``settings`` as if the file stored them."""
    return NextWordModel(model.session, dataclasses.replace(model.info, cache=settings), model.source)


@pytest.fixture(scope="module")
def shipped():
    """The bundled file as shipped, with the cache settings its export tuned."""
    return load(BUNDLED_MODEL)


@pytest.fixture(scope="module")
def bundled(shipped):
    """The bundled model's session as a file without cache settings."""
    return with_cache(shipped, None)


def test_the_shipped_file_mixes_in_its_own_cache_by_default(shipped, bundled):
    settings = shipped.cache_settings
    assert settings is not None and settings.tuning["perplexity_with"] < settings.tuning["perplexity_without"]
    assert evaluate(shipped, TEXTS) == evaluate(bundled, TEXTS, cache=settings)
    assert evaluate(shipped, TEXTS, cache=False) == evaluate(bundled, TEXTS)
    assert shipped.score(TEXTS[0]).perplexity < shipped.score(TEXTS[0], cache=False).perplexity


@pytest.fixture(scope="module")
def cached(bundled):
    return with_cache(bundled)


@pytest.fixture(scope="module")
def tiny_cached(model):
    """An fp32 model: a batch row's logits are those it gets alone (int8 rows share a scale)."""
    return with_cache(model, dataclasses.replace(SETTINGS, theta=0.5, mix=0.3))


def reference_logprobs(model, ids: list[int], settings: CacheConfig) -> np.ndarray:
    """The mixture written out position by position in float64, straight from the paper's formula:
    p(w) = (1 - mix) p_model(w) + mix sum_{i kept, x_{i+1} = w} exp(theta h_t.h_i) / sum_{i kept} ..."""
    state = model.initial_state(1)
    states, out = [], []
    for t in range(len(ids) - 1):
        logits, state = model.forward(np.array([[ids[t]]]), state)
        h = state[-2][0].astype(np.float64)
        p = np.exp(log_softmax(logits[0, -1]))
        kept = range(max(0, t - settings.window), t)
        if kept:
            weights = np.array([math.exp(settings.theta * float(h @ states[i])) for i in kept])
            cache = np.zeros_like(p)
            for i, weight in zip(kept, weights / weights.sum(), strict=True):
                cache[ids[i + 1]] += weight
            p = (1 - settings.mix) * p + settings.mix * cache
        states.append(h)
        out.append(math.log(p[ids[t + 1]]))
    return np.array(out)


@pytest.mark.parametrize("window", [256, 7, 1])
def test_scores_follow_the_formula(bundled, window):
    settings = dataclasses.replace(SETTINGS, window=window)
    ids = [*bundled.prompt_ids(TEXTS[0]), bundled.tokenizer.eod_id]
    got, _ = token_logprobs(bundled, np.array(ids), cache=settings)
    np.testing.assert_allclose(got, reference_logprobs(bundled, ids, settings), rtol=0, atol=2e-5)


def test_the_cache_helps_on_text_that_repeats_itself(bundled, cached):
    for text in TEXTS:
        assert cached.score(text).perplexity < bundled.score(text).perplexity


def test_batched_documents_score_as_each_alone(tiny_cached):
    cached, settings = tiny_cached, tiny_cached.cache_settings
    docs = [np.array([*cached.prompt_ids(t), cached.tokenizer.eod_id]) for t in TEXTS * 3]
    alone = [token_logprobs(cached, d, cache=settings) for d in docs]
    together = list(cached_document_scores(cached, docs, settings, batch=4))
    assert len(together) == len(docs)
    for ids, logprobs, ranks in together:
        j = next(j for j, d in enumerate(docs) if d is ids)
        np.testing.assert_allclose(logprobs, alone[j][0], rtol=0, atol=1e-5)
        assert (ranks == alone[j][1]).all()


def test_evaluate_uses_the_files_cache_by_default(bundled, cached):
    plain, mixed = evaluate(cached, TEXTS, cache=False), evaluate(cached, TEXTS)
    assert mixed.words == plain.words and mixed.perplexity < plain.perplexity
    assert plain == evaluate(bundled, TEXTS)  # cache=False is the file without settings
    assert evaluate(bundled, TEXTS, cache=SETTINGS) == mixed  # settings can be passed directly


def test_next_words_and_score_follow_the_cache(bundled, cached):
    prompt = "the convolutional network classifies the image data. the"
    plain = dict(cached.next_words(prompt, k=20, cache=False))
    mixed = dict(cached.next_words(prompt, k=20))
    assert plain == dict(bundled.next_words(prompt, k=20))
    assert mixed["convolutional"] > plain["convolutional"]
    assert cached.score(TEXTS[1], cache=False) == bundled.score(TEXTS[1])


def test_files_without_cache_settings_are_unchanged(bundled):
    assert bundled.info.cache is None and bundled.cache_settings is None
    assert resolve_cache(bundled, None) is None
    with pytest.raises(ValueError, match="no continuous-cache settings"):
        bundled.score(TEXTS[0], cache=True)
    with pytest.raises(ValueError, match="no continuous-cache settings"):
        bundled.generate("the network", cache=True)


def reference_greedy(model, prompt: str, settings: CacheConfig, max_words: int) -> list[int]:
    """Greedy decoding with the cache, one token at a time, from the formula."""
    tok = model.tokenizer
    ids = model.prompt_ids(prompt)
    chosen = []
    for _ in range(max_words):
        state = model.initial_state(1)
        states = []
        for token in ids:
            logits, state = model.forward(np.array([[token]]), state)
            states.append(state[-2][0].astype(np.float64))
        p = np.exp(log_softmax(logits[0, -1]))
        t = len(ids) - 1
        kept = range(max(0, t - settings.window), t)
        if kept:
            weights = np.array([math.exp(settings.theta * float(states[t] @ states[i])) for i in kept])
            cache = np.zeros_like(p)
            for i, weight in zip(kept, weights / weights.sum(), strict=True):
                cache[ids[i + 1]] += weight
            p = (1 - settings.mix) * p + settings.mix * cache
        p[[tok.pad_id, tok.unk_id]] = -1
        token = int(np.argmax(p))
        if token == tok.eod_id:
            break
        chosen.append(token)
        ids.append(token)
    return chosen


def test_greedy_generation_follows_the_formula(cached):
    for prompt in ("the image sensor", "a neural network comprises a plurality of neurons. the neural"):
        got = cached.generate_ids(
            cached.prompt_ids(prompt), GenerationConfig(max_words=12, temperature=0, cache=True)
        )
        assert got == reference_greedy(cached, prompt, SETTINGS, 12)


def test_cache_is_off_by_default_for_generation(bundled, cached):
    for options in ({"seed": 1}, {"temperature": 0}, {"num_beams": 3}):
        assert cached.generate("the network", max_words=20, **options) == bundled.generate(
            "the network", max_words=20, **options
        )


def test_rows_with_a_cache_are_independent_of_the_batch(tiny_cached):
    cached = tiny_cached
    prompts = ["the image sensor", "", "a neural network comprises a plurality of neurons. the neural"]
    greedy = GenerationConfig(max_words=25, temperature=0, cache=True)
    assert cached.generate(prompts, greedy) == [cached.generate(p, greedy) for p in prompts]
    config = GenerationConfig(max_words=25, seed=3, cache=True, num_return_sequences=2)
    together = cached.generate(prompts, config)
    # Joined with rows without a cache, of other lengths, some cancelled: the same texts.
    gen = cached.generator()
    plain = gen.add(["each neuron", "the"], GenerationConfig(max_words=7, seed=1))
    rows = gen.add(prompts, config)
    gen.step()
    doomed = gen.add(["the weights of"], GenerationConfig(max_words=30, seed=5, cache=True))
    gen.step()
    gen.cancel(plain[1])
    gen.cancel(doomed[0])
    gen.run()
    assert [gen.text(r) for r in rows] == together
    assert gen.text(plain[0]) == cached.generate("each neuron", max_words=7, seed=1)
    assert gen.finish_reason(doomed[0]) == "cancelled"


def test_stream_and_logprobs_with_the_cache(cached):
    config = GenerationConfig(max_words=30, seed=7, cache=True)
    assert "".join(cached.stream("the image sensor", config)) == cached.generate("the image sensor", config)
    gen = cached.generator()
    gen.add(
        "the image sensor outputs image data. the image",
        GenerationConfig(max_words=1, temperature=0, cache=True),
        logprobs=3,
    )
    updates: list = []
    while not updates:  # with a cache the prompt is fed one token per step
        updates = gen.step()
    (update,) = updates
    probs = dict(cached.next_words("the image sensor outputs image data. the image", k=3))
    assert update.top_logprobs[0][0] in probs
    assert update.logprob == pytest.approx(math.log(probs[cached.tokenizer.token_of(update.token)]), abs=1e-5)


def test_beam_search_with_the_cache(cached):
    one = cached.generate("the image sensor", max_words=15, num_beams=1, temperature=0, cache=True)
    assert one == cached.generate("the image sensor", max_words=15, temperature=0, cache=True)
    beams = cached.generate(["the image sensor", "a network"], max_words=15, num_beams=3, cache=True)
    assert len(beams) == 2 and all(beams)
    assert beams != cached.generate(["the image sensor", "a network"], max_words=15, num_beams=3)


def test_threads_with_the_cache_give_the_serial_texts(tiny_cached):
    cached = tiny_cached
    config = GenerationConfig(max_words=15, cache=True)
    serial = [cached.generate("the network", config, seed=s) for s in range(32)]
    results: dict[int, str] = {}

    def work(seed: int) -> None:
        results[seed] = cached.generate("the network", config, seed=seed)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[s] for s in range(32)] == serial


def test_ring_buffer_keeps_the_newest_positions():
    cache = ContinuousCache(CacheConfig(theta=1.0, mix=0.5, window=3), rows=1, units=2)
    for token in range(6):  # positions 0..5; pairs (h_i, token_{i+1})
        cache.observe(np.array([token]), np.array([[float(token), 1.0]], dtype=np.float32))
    assert cache.count[0] == 5 and sorted(cache.values[0, :3].tolist()) == [3, 4, 5]
    logprobs = np.log(np.full((1, 10), 0.1))
    cache.mix_logprobs(logprobs)
    assert np.exp(logprobs).sum() == pytest.approx(1.0)
    assert np.exp(logprobs[0, :3]) == pytest.approx([0.05] * 3)  # outside the window: model share only


def test_cache_settings_are_validated():
    for bad in (
        {"theta": -1},
        {"mix": 0},
        {"mix": 1.0},
        {"window": 0},
        {"window": 10**6},
        {"theta": float("nan")},
        {"theta": 10**400},  # an integer beyond a float's range (JSON allows it): not OverflowError
        {"mix": -(10**400)},
        {"mix": None, "gate": (0.5, 10**400)},
    ):
        with pytest.raises(ValueError, match="cache"):
            dataclasses.replace(SETTINGS, **bad)
    with pytest.raises(ValueError, match="unknown keys"):
        CacheConfig.from_dict({**SETTINGS.to_dict(), "extra": 1})
    assert CacheConfig.from_dict(json.loads(json.dumps(SETTINGS.to_dict()))) == SETTINGS


def test_model_file_cache_metadata(model_path, tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to edit model files")
    from nextword.runtime.model_file import KEY_CACHE

    def written(value: str):
        proto = onnx.load(str(model_path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = KEY_CACHE, value
        path = tmp_path / "cache.onnx"
        onnx.save(proto, str(path))
        return path

    model = load(written(json.dumps(SETTINGS.to_dict())))
    assert model.info.cache == SETTINGS and model.cache_settings == SETTINGS
    huge = json.dumps({**SETTINGS.to_dict(), "theta": 10**400})
    for bad in ("{", "[]", json.dumps({"theta": 0.1}), json.dumps({**SETTINGS.to_dict(), "mix": 2}), huge):
        with pytest.raises(ModelFileError, match=r"nextword\.cache"):
            load(written(bad))
