"""The gated cache on cosine similarities (format 3 settings): its arithmetic against a direct
computation, position by position, for each similarity and each kind of share; its settings; files."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from nextword.cli.main import main
from nextword.runtime import ModelFileError, load
from nextword.runtime.cache import CacheConfig, ContinuousCache
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.logits import log_softmax
from nextword.runtime.model import NextWordModel
from nextword.runtime.model_file import SUPPORTED_FORMAT_VERSIONS, format_version_for
from nextword.runtime.scoring import cached_document_scores, token_logprobs

SHARES = {"mix": {"mix": 0.3}, "gate": {"mix": None, "gate": (-1.5, 0.4)}}
KINDS = [(similarity, share) for similarity in ("dot", "cosine") for share in SHARES]
GATED = CacheConfig(theta=10.0, mix=None, window=256, similarity="cosine", gate=(-7.62, 0.814))


def settings(similarity: str, share: str, theta: float = 0.8, window: int = 5) -> CacheConfig:
    return CacheConfig(theta=theta, window=window, similarity=similarity, **SHARES[share])


def stored(h: np.ndarray, similarity: str) -> np.ndarray:
    """A state as the cache keeps it: as it is, or unit length (float64 norm, float32 values)."""
    h = np.asarray(h, dtype=np.float32)
    if similarity == "dot":
        return h
    norm = math.sqrt(sum(float(x) ** 2 for x in h))
    return h if norm == 0 else np.array([float(x) / norm for x in h], dtype=np.float32)


def reference_mixture(states, tokens, p_model, config: CacheConfig) -> np.ndarray:
    """p(w) at position t of one document, written out with loops: ``states[t]`` is h_t after reading
    ``tokens[t]``; the cache holds (h_i, tokens[i + 1]) for the newest ``window`` positions i < t."""
    t = len(states) - 1
    kept = range(max(0, t - config.window), t)
    if not kept:
        return p_model
    query = stored(states[t], config.similarity)
    scores = [config.theta * float(np.dot(query, stored(states[i], config.similarity))) for i in kept]
    peak = max(scores)
    total = sum(math.exp(s - peak) for s in scores)
    cache = np.zeros_like(p_model)
    for i, s in zip(kept, scores, strict=True):
        cache[tokens[i + 1]] += math.exp(s - peak) / total
    if config.gate is None:
        share = config.mix
    else:
        a, b = config.gate
        share = 1 / (1 + math.exp(-(a + b * (peak + math.log(total)))))
    return (1 - share) * p_model + share * cache


@pytest.mark.parametrize(("similarity", "share"), KINDS)
def test_mixture_follows_the_formula_and_rows_are_independent(similarity, share):
    """Rows observed at different times, of different lengths, mixed together: each row's
    log-probabilities and mixed logits are those of its own document, from the formula."""
    config = settings(similarity, share)
    rng = np.random.default_rng(0)
    rows, units, vocab = 4, 6, 9
    cache = ContinuousCache(config, rows, units)
    history: list[tuple[list, list]] = [([], []) for _ in range(rows)]
    for step in range(14):
        active = np.flatnonzero(rng.random(rows) < 0.7) if step else np.arange(rows)
        tokens = rng.integers(0, vocab, len(active))
        h = rng.normal(size=(len(active), units)).astype(np.float32)
        if step == 3:
            h[0] = 0  # a zero state stays zero with cosine similarities
        cache.observe(tokens, h, active)
        for j, row in enumerate(active.tolist()):
            history[row][0].append(h[j])
            history[row][1].append(int(tokens[j]))
        logits = rng.normal(size=(rows, vocab)).astype(np.float32)
        logprobs = log_softmax(logits.astype(np.float64))
        mixed_logits, mixed_logprobs = logits.copy(), logprobs.copy()
        cache.mix_logits(mixed_logits)
        cache.mix_logprobs(mixed_logprobs)
        for row, (states, tokens_seen) in enumerate(history):
            expected = reference_mixture(states, tokens_seen, np.exp(logprobs[row]), config)
            np.testing.assert_allclose(np.exp(mixed_logprobs[row]), expected, rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(
                np.exp(log_softmax(mixed_logits[row].astype(np.float64))), expected, rtol=1e-5, atol=1e-8
            )


def test_the_gate_moves_the_share_with_the_caches_confidence():
    """Only the gate's share grows with L: a state seen before (high similarity) gets a larger share."""
    gate = CacheConfig(theta=5.0, mix=None, window=8, similarity="cosine", gate=(-3.0, 1.0))
    shares = []
    for query in ([1.0, 0.0], [0.0, 1.0]):  # the same as the stored key, then orthogonal to it
        cache = ContinuousCache(gate, rows=1, units=2)
        cache.observe(np.array([0]), np.array([[3.0, 0.0]], dtype=np.float32))
        cache.observe(np.array([1]), np.array([query], dtype=np.float32))
        logprobs = np.log(np.full((1, 4), 0.25))
        cache.mix_logprobs(logprobs)
        shares.append(1 - np.exp(logprobs[0, 0]) / 0.25)  # token 0 is not in the cache: (1 - share) p
    sigmoid = [1 / (1 + math.exp(-(-3.0 + 1.0 * 5.0 * cos))) for cos in (1.0, 0.0)]
    assert shares == pytest.approx(sigmoid, rel=1e-9) and shares[0] > shares[1]


@pytest.fixture(scope="module")
def bundled():
    """The bundled model's session as a file without cache settings."""
    shipped = load(BUNDLED_MODEL)
    return NextWordModel(shipped.session, dataclasses.replace(shipped.info, cache=None), shipped.source)


@pytest.mark.parametrize(("similarity", "share"), KINDS)
def test_document_scores_follow_the_formula(bundled, similarity, share):
    config = settings(similarity, share, theta=10.0 if similarity == "cosine" else 0.07, window=9)
    ids = [*bundled.prompt_ids("the image sensor outputs image data to the image network."), 2]
    got, _ = token_logprobs(bundled, np.array(ids), cache=config)
    state, states, expected = bundled.initial_state(1), [], []
    for t in range(len(ids) - 1):
        logits, state = bundled.forward(np.array([[ids[t]]]), state)
        states.append(state[-2][0].copy())
        p = reference_mixture(states, ids, np.exp(log_softmax(logits[0, -1].astype(np.float64))), config)
        expected.append(math.log(p[ids[t + 1]]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)


def test_batched_documents_score_as_each_alone_with_a_gate(model):
    texts = ["the network receives the signal. the network", "a neuron", "the weights of the layer"] * 3
    docs = [np.array([*model.prompt_ids(t), model.tokenizer.eod_id]) for t in texts]
    config = dataclasses.replace(GATED, theta=3.0, gate=(-1.0, 0.5))
    alone = [token_logprobs(model, d, cache=config) for d in docs]
    for ids, logprobs, ranks in cached_document_scores(model, docs, config, batch=4):
        j = next(j for j, d in enumerate(docs) if d is ids)
        np.testing.assert_allclose(logprobs, alone[j][0], rtol=0, atol=1e-5)
        assert (ranks == alone[j][1]).all()


def test_settings_round_trip_and_old_settings_are_written_as_before():
    plain = CacheConfig(theta=0.07, mix=0.18, window=256, tuning={"words": 3})
    assert plain.to_dict() == {"theta": 0.07, "mix": 0.18, "window": 256, "tuning": {"words": 3}}
    assert list(plain.to_dict()) == ["theta", "mix", "window", "tuning"]
    assert GATED.to_dict() == {
        "theta": 10.0,
        "window": 256,
        "tuning": {},
        "similarity": "cosine",
        "gate": [-7.62, 0.814],
    }
    for config in (plain, GATED, dataclasses.replace(plain, similarity="cosine")):
        assert CacheConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert CacheConfig.from_dict({**GATED.to_dict(), "mix": None}) == GATED
    assert (format_version_for(None), format_version_for(plain)) == (2, 2)
    assert (
        format_version_for(GATED) == format_version_for(dataclasses.replace(plain, similarity="cosine")) == 3
    )
    assert format_version_for(dataclasses.replace(GATED, similarity="dot")) == 3
    assert GATED.describe() == "theta 10, gate (-7.62, 0.814), cosine similarity, window 256"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"theta": 1, "mix": 0.2, "gate": [0, 1], "window": 8}, "exactly one of mix .* got both"),
        ({"theta": 1, "window": 8}, "exactly one of mix .* got neither"),
        ({"theta": 1, "mix": None, "gate": None, "window": 8}, "exactly one of mix .* got neither"),
        (
            {"theta": 1, "mix": 0.2, "window": 8, "similarity": "l2"},
            "similarity must be one of 'dot', 'cosine', got 'l2'",
        ),
        ({"theta": 1, "mix": 0.2, "window": 8, "similarity": None}, "similarity must be one of"),
        ({"theta": 1, "gate": [0, float("nan")], "window": 8}, "gate must be finite numbers, got nan"),
        ({"theta": 1, "gate": [float("inf"), 1], "window": 8}, "gate must be finite numbers, got inf"),
        ({"theta": 1, "gate": [0, True], "window": 8}, "gate must be finite numbers, got True"),
        ({"theta": 1, "gate": [0, 1, 2], "window": 8}, r"gate must be two numbers \[a, b\], got 3"),
        ({"theta": 1, "gate": "ab", "window": 8}, r"gate must be two numbers \[a, b\], got 'ab'"),
        ({"theta": 1, "gate": 0.5, "window": 8}, r"gate must be two numbers \[a, b\], got 0.5"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(data, match):
    with pytest.raises(ValueError, match=match):
        CacheConfig.from_dict(data)


def _file_with(model_path, tmp_path, cache: str, version: str):
    onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to edit model files")
    proto = onnx.load(str(model_path))
    entries = {p.key: p for p in proto.metadata_props}
    entries["nextword.format_version"].value = version
    entry = proto.metadata_props.add()
    entry.key, entry.value = "nextword.cache", cache
    path = tmp_path / f"cache-v{version}.onnx"
    onnx.save(proto, str(path))
    return path


def test_a_format_3_file_loads_and_info_shows_its_cache(model_path, tmp_path, capsys):
    assert {1, 2, 3} == SUPPORTED_FORMAT_VERSIONS
    path = _file_with(model_path, tmp_path, json.dumps(GATED.to_dict()), "3")
    model = load(path)
    assert model.info.format_version == 3 and model.cache_settings == GATED
    assert model.score("the network receives the network").perplexity > 0
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nextword format 3" in out
    assert "cache          theta 10, gate (-7.62, 0.814), cosine similarity, window 256" in out
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cache"] == GATED.to_dict()
    # Liberal in what is read: a version-2 file whose cache uses the newer keys is still read.
    assert load(_file_with(model_path, tmp_path, json.dumps(GATED.to_dict()), "2")).cache_settings == GATED
    both = json.dumps({**GATED.to_dict(), "mix": 0.2})
    with pytest.raises(ModelFileError, match=r"nextword\.cache.*exactly one of mix"):
        load(_file_with(model_path, tmp_path, both, "3"))
